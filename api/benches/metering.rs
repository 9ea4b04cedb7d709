//! Metering at a province's scale, in figures:
//!
//! 1. ingest throughput in samples/s through `POST /v1/usage/batches` (over loopback HTTP, in
//!    batches of 10,000 samples as the operator sends them), beside a raw PostgreSQL `COPY` of
//!    the same rows into an unindexed table, in the same run;
//! 2. the ledger's size on disk for a month: the hourly roll-up at 1,000 namespaces (and at
//!    20,000 with `--full`; otherwise extrapolated linearly, and said so), and the windows kept
//!    until their hour is rolled up.
//!
//!   cargo bench -p govcloud-api --bench metering [-- --full] [-- --windows N]
//!
//! Self-contained: a private PostgreSQL from the machine's binaries in a temporary directory.

mod support;

use std::time::{Duration, Instant};

use chrono::{DateTime, DurationRound, Utc};
use serde_json::json;
use sqlx::PgPool;

const BATCH: usize = 10_000;
const METRICS: [&str; 9] = [
    "cpu.reserved",
    "memory.reserved",
    "storage.reserved",
    "loadbalancers.reserved",
    "cpu.requested",
    "memory.requested",
    "cpu.used",
    "memory.used",
    "storage.bound",
];

async fn exec(db: &PgPool, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(db)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn size(db: &PgPool, relation: &str) -> i64 {
    sqlx::query_scalar(&format!("select pg_total_relation_size('{relation}')"))
        .fetch_one(db)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn gib(bytes: f64) -> String {
    format!("{:.2} GiB", bytes / (1024.0 * 1024.0 * 1024.0))
}

/// `n` namespaces of bench tenants (two per tenant), straight into the tables.
async fn namespaces(db: &PgPool, n: usize) {
    exec(db, &format!(
        "insert into organization (name, display_name, allotment_cpu_milli, allotment_memory_bytes, allotment_storage_bytes)
           values ('bench', 'Bench', 0, 0, 0);
         insert into tenant (name, organization_id, display_name, limits, pod_security, network, billing)
           select 'bench-' || i, (select organization_id from organization where name = 'bench'), 'Bench',
                  '{{}}', 'restricted', '{{}}', '{{}}'
           from generate_series(1, {t}) i;
         insert into tenant_namespace (tenant_id, name, kube_name, cpu_milli, memory_bytes, storage_bytes, pods, load_balancers)
           select t.tenant_id, s, t.name || '-' || s, 4000, 8589934592, 107374182400, 50, 1
           from tenant t cross join (values ('prod'), ('staging')) v(s) where t.name like 'bench-%';",
        t = n / 2
    ))
    .await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let full = args.iter().any(|a| a == "--full");
    let windows: usize = args
        .iter()
        .position(|a| a == "--windows")
        .and_then(|i| args.get(i + 1))
        .and_then(|w| w.parse().ok())
        .unwrap_or(20);
    let bench = support::start(10).await;
    let (db, state, tokens) = (bench.db.clone(), bench.state.clone(), bench.tokens.clone());
    let direct = state.clone();
    let token = tokens.get("metering").cloned().unwrap_or_default();
    let n = 1_000;
    namespaces(&db, n).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, govcloud_api::app(state)).await;
    });
    println!(
        "metering at {n} namespaces, {windows} windows of 60 s, {} cores, PostgreSQL at {}\n",
        std::thread::available_parallelism().map_or(0, |c| c.get()),
        bench.pg_url.rsplit('@').next().unwrap_or("")
    );

    // The samples: every metric of every namespace for `windows` windows of the last hour.
    let hour: DateTime<Utc> = Utc::now()
        .duration_trunc(chrono::Duration::hours(1))
        .unwrap_or_default()
        - chrono::Duration::hours(1);
    let mut rows: Vec<(String, String, &str, DateTime<Utc>, i64)> = Vec::new();
    for w in 0..windows {
        let start = hour + chrono::Duration::minutes(i64::try_from(w).unwrap_or(0));
        for i in 0..n {
            let tenant = format!("bench-{}", i / 2 + 1);
            let ns = format!("{tenant}-{}", if i % 2 == 0 { "prod" } else { "staging" });
            for (m, metric) in METRICS.iter().enumerate() {
                let q = i64::try_from((i * 7 + m * 13 + w) % 5000).unwrap_or(0) * 60;
                rows.push((tenant.clone(), ns.clone(), metric, start, q));
            }
        }
    }
    let bodies: Vec<String> = rows
        .chunks(BATCH)
        .map(|c| {
            let samples: Vec<_> = c
                .iter()
                .map(|(t, ns, m, w, q)| json!({"tenant": t, "namespace": ns, "metric": m, "windowStart": w, "quantity": q}))
                .collect();
            json!({"windowSeconds": 60, "samples": samples}).to_string()
        })
        .collect();
    let csv: String = rows
        .iter()
        .map(|(t, ns, m, w, q)| format!("{t},{ns},{m},{},{q}\n", w.to_rfc3339()))
        .collect();

    // 1. COPY of the same rows into an unindexed table.
    exec(
        &db,
        "create table raw_sample (tenant text, namespace text, metric text, window_start timestamptz, quantity bigint)",
    )
    .await;
    let mut conn = db.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    let started = Instant::now();
    let mut copy = conn
        .copy_in_raw("copy raw_sample from stdin with (format csv)")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    copy.send(csv.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    copy.finish().await.unwrap_or_else(|e| panic!("{e}"));
    let copy_time = started.elapsed();
    drop(conn);

    // 2. The same samples through the API, as the operator posts them.
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/v1/usage/batches");
    let post_all = || async {
        let started = Instant::now();
        let mut accepted = 0u64;
        for body in &bodies {
            let r = http
                .post(&url)
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body.clone())
                .send()
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert!(r.status().is_success(), "{}", r.status());
            let o: serde_json::Value = r.json().await.unwrap_or_default();
            accepted += o["accepted"].as_u64().unwrap_or(0);
        }
        (started.elapsed(), accepted)
    };
    let (ingest_time, accepted) = post_all().await;
    assert_eq!(accepted as usize, rows.len(), "every sample accepted");
    // and again: every sample a duplicate, nothing changes
    let (again_time, accepted) = post_all().await;
    assert_eq!(accepted, 0, "nothing new the second time");

    // The same samples, one hour later, parsed here and handed to the use case directly: how
    // much of the time is HTTP and JSON, how much validation and the database.
    let later: Vec<govcloud_tenant::usage::Batch> = bodies
        .iter()
        .map(|b| {
            let mut batch: govcloud_tenant::usage::Batch =
                serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}"));
            for s in &mut batch.samples {
                s.window_start += chrono::Duration::minutes(30);
            }
            batch
        })
        .collect();
    let started = Instant::now();
    for b in &bodies {
        let parsed: govcloud_tenant::usage::Batch =
            serde_json::from_str(b).unwrap_or_else(|e| panic!("{e}"));
        std::hint::black_box(parsed);
    }
    let parse_time = started.elapsed();
    let caller = govcloud_api::domain::principal::Caller {
        name: "bench".into(),
        role: govcloud_api::domain::principal::Role::Metering,
        organization_id: None,
        tenant_id: None,
    };
    let started = Instant::now();
    for b in later {
        govcloud_api::app::metering::ingest(&direct, &caller, b)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let direct_time = started.elapsed();

    let rate = |d: Duration| rows.len() as f64 / d.as_secs_f64();
    println!(
        "| {:<52} | {:>12} | {:>9} |",
        "ingest", "samples/s", "vs COPY"
    );
    println!("|{}|{}|{}|", "-".repeat(54), "-".repeat(14), "-".repeat(11));
    println!(
        "| {:<52} | {:>12.0} | {:>9} |",
        "COPY into an unindexed table (same rows)",
        rate(copy_time),
        "1.00"
    );
    println!(
        "| {:<52} | {:>12.0} | {:>9.2} |",
        "POST /v1/usage/batches (10,000 per batch, new)",
        rate(ingest_time),
        rate(ingest_time) / rate(copy_time)
    );
    println!(
        "| {:<52} | {:>12.0} | {:>9.2} |",
        "POST /v1/usage/batches (the same again: duplicates)",
        rate(again_time),
        rate(again_time) / rate(copy_time)
    );
    println!(
        "| {:<52} | {:>12.0} | {:>9.2} |",
        "  of which: JSON parsing of the batches alone",
        rate(parse_time),
        rate(parse_time) / rate(copy_time)
    );
    println!(
        "| {:<52} | {:>12.0} | {:>9.2} |",
        "  of which: checks and database (no HTTP, no JSON)",
        rate(direct_time),
        rate(direct_time) / rate(copy_time)
    );

    // 3. The ledger's size.
    let window_rows: i64 = sqlx::query_scalar("select count(*) from usage_window")
        .fetch_one(&db)
        .await
        .unwrap_or_default();
    let raw_per_row = size(&db, "usage_window").await as f64 / window_rows.max(1) as f64;
    let month_hours = 744; // the longest month
    let first_hour = 500_000; // any month-long range of hour numbers
    exec(
        &db,
        &format!(
            "create table usage_hour_bench partition of usage_hour for values from ({first_hour}) to ({})",
            first_hour + month_hours
        ),
    )
    .await;
    let fill = |count: usize| {
        format!(
            "insert into usage_hour select ns, h, 1800000, 3865470566400, 720000, 1932735283200, 1900000, 3900000000000, 193273528320000, 3600, 3600, 3600
             from generate_series({first_hour}, {}) h, generate_series(1, {count}) ns order by h, ns",
            first_hour + month_hours - 1
        )
    };
    let started = Instant::now();
    exec(&db, &fill(n)).await;
    exec(&db, "analyze usage_hour_bench").await;
    let month_1k = size(&db, "usage_hour_bench").await as f64;
    let fill_1k = started.elapsed();
    let query = format!(
        "select sum(cpu_requested) from usage_hour where metered_namespace_id = 777 and hour >= {first_hour} and hour < {}",
        first_hour + month_hours
    );
    let started = Instant::now();
    exec(&db, &query).await;
    let one_ns_1k = started.elapsed();
    // the grace period (10 min) plus the hour being filled: on average about an hour of windows
    let raw_steady = |namespaces: f64| raw_per_row * namespaces * 60.0;
    println!(
        "\n| {:<52} | {:>14} | {:>14} |",
        "ledger on disk", "1,000 ns", "20,000 ns"
    );
    println!("|{}|{}|{}|", "-".repeat(54), "-".repeat(16), "-".repeat(16));
    let (month_20k, how) = if full {
        exec(&db, "truncate usage_hour_bench").await;
        let started = Instant::now();
        exec(&db, &fill(20_000)).await;
        exec(&db, "vacuum analyze usage_hour_bench").await;
        let s = size(&db, "usage_hour_bench").await as f64;
        println!(
            "(20,000-namespace month written in {:.0} s)",
            started.elapsed().as_secs_f64()
        );
        let started = Instant::now();
        exec(&db, &query).await;
        println!(
            "(one namespace's month summed in {:.1} ms at 20,000)",
            started.elapsed().as_secs_f64() * 1000.0
        );
        (s, "measured")
    } else {
        (month_1k * 20.0, "extrapolated ×20")
    };
    println!(
        "| {:<52} | {:>14} | {:>14} |",
        format!("hourly roll-up, one 744-hour month (20k: {how})"),
        mib(month_1k),
        gib(month_20k)
    );
    println!(
        "| {:<52} | {:>14} | {:>14} |",
        "windows awaiting roll-up (≈ 1 h of 60 s windows)",
        mib(raw_steady(1_000.0)),
        gib(raw_steady(20_000.0))
    );
    println!(
        "| {:<52} | {:>14} | {:>14} |",
        "total",
        mib(month_1k + raw_steady(1_000.0)),
        gib(month_20k + raw_steady(20_000.0))
    );
    println!(
        "\nwindow rows: {:.0} bytes each with their index; a 1,000-namespace month written in {:.1} s; one namespace's month summed in {:.1} ms",
        raw_per_row,
        fill_1k.as_secs_f64(),
        one_ns_1k.as_secs_f64() * 1000.0
    );
    bench.stop();
}
