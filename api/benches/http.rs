//! Throughput and latency of two API routes at 64 concurrent connections (and the GET once more
//! with the tenant cache off, the cost of a miss), beside a minimal
//! axum handler that runs one comparable query on the same database in the same run (its own
//! pool of the same size, with sqlx's defaults; the API's pool is `govcloud serve`'s).
//!
//!   cargo bench -p govcloud-api --bench http [-- SECONDS]     (default 10 s per route)
//!
//! Self-contained: a private PostgreSQL from the machine's binaries (in a temporary directory),
//! the simulated cluster, the demo data of `govcloud dev`; the load comes from this process
//! over loopback HTTP/1.1 keep-alive connections, so client and server share the machine.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use serde_json::{Value, json};
use sqlx::PgPool;

const CONNECTIONS: usize = 64;

struct Figures {
    requests: usize,
    errors: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Figures {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64()
    }
}

#[derive(Clone)]
struct Target {
    method: reqwest::Method,
    url: String,
    token: Option<String>,
    body: Option<Value>,
}

async fn load(target: Target, seconds: u64) -> Figures {
    // A short warm-up, then the measured run.
    let _ = drive(target.clone(), Duration::from_secs(1)).await;
    drive(target, Duration::from_secs(seconds)).await
}

async fn drive(target: Target, run_for: Duration) -> Figures {
    let started = Instant::now();
    let deadline = started + run_for;
    let mut tasks = Vec::new();
    for _ in 0..CONNECTIONS {
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap_or_default();
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            while Instant::now() < deadline {
                let mut req = client.request(target.method.clone(), &target.url);
                if let Some(t) = &target.token {
                    req = req.bearer_auth(t);
                }
                if let Some(b) = &target.body {
                    req = req.json(b);
                }
                let t0 = Instant::now();
                match req.send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        latencies.push(t0.elapsed());
                    }
                    _ => errors += 1,
                }
            }
            (latencies, errors)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for t in tasks {
        if let Ok((l, e)) = t.await {
            all.extend(l);
            errors += e;
        }
    }
    let elapsed = started.elapsed();
    all.sort();
    let pick = |q: f64| {
        all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
            .copied()
            .unwrap_or_default()
    };
    Figures {
        requests: all.len(),
        errors,
        elapsed,
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

/// The baseline: one axum handler, one query, no authentication, no extra work.
fn minimal(db: PgPool) -> Router {
    Router::new()
        .route(
            "/tenants/{name}",
            get(|State(db): State<PgPool>, Path(name): Path<String>| async move {
                let row: Option<(String, String)> =
                    sqlx::query_as("select name, display_name from tenant where name = $1").bind(name).fetch_optional(&db).await.ok().flatten();
                axum::Json(row.map(|(n, d)| json!({"name": n, "displayName": d})))
            }),
        )
        .route(
            "/capacity-requests",
            post(|State(db): State<PgPool>, axum::Json(body): axum::Json<Value>| async move {
                let id: Option<uuid::Uuid> = sqlx::query_scalar(
                    "insert into capacity_request (tenant_id, namespace, cpu_milli, reason, effective_from, state, requested_by)
                     select tenant_id, 'prod', 6000, $2, now(), 'pending', 'bench' from tenant where name = $1 returning capacity_request_id",
                )
                .bind(body["tenant"].as_str().unwrap_or_default())
                .bind(body["reason"].as_str().unwrap_or_default())
                .fetch_optional(&db)
                .await
                .ok()
                .flatten();
                (axum::http::StatusCode::CREATED, axum::Json(json!({ "id": id })))
            }),
        )
        .with_state(db)
}

async fn listen(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

fn row(name: &str, f: &Figures) {
    println!(
        "| {name:<44} | {:>9.0} | {:>8.2} | {:>8.2} | {:>6} |",
        f.rate(),
        f.p50.as_secs_f64() * 1e3,
        f.p99.as_secs_f64() * 1e3,
        f.errors
    );
}

#[tokio::main]
async fn main() {
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10);
    let bench = support::start(20).await;
    let (state, tokens) = (bench.state.clone(), bench.tokens.clone());
    let state_for_misses = state.clone();
    let api = listen(govcloud_api::app(state)).await;
    // The baseline's own pool of the same size, as sqlx makes one by default.
    let bare = sqlx::postgres::PgPoolOptions::new()
        .max_connections(20)
        .connect(&bench.pg_url)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let base = listen(minimal(bare)).await;
    let token = tokens.get("tenant-admin").cloned();
    let request = json!({"tenant": "demo-stttt", "namespace": "prod", "quota": {"cpu": "6"}, "reason": "benchmark"});

    println!(
        "{CONNECTIONS} connections, {seconds} s per row, PostgreSQL {}, {} cores\n",
        bench.pg_url.rsplit('@').next().unwrap_or(""),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| {:<44} | {:>9} | {:>8} | {:>8} | {:>6} |",
        "route", "req/s", "p50 ms", "p99 ms", "errors"
    );
    println!(
        "|{}|{}|{}|{}|{}|",
        "-".repeat(46),
        "-".repeat(11),
        "-".repeat(10),
        "-".repeat(10),
        "-".repeat(8)
    );
    let get_tenant = Target {
        method: reqwest::Method::GET,
        url: format!("http://{api}/v1/tenants/demo-stttt"),
        token: token.clone(),
        body: None,
    };
    let get_api = load(get_tenant.clone(), seconds).await;
    row("GET /v1/tenants/{name} (govcloud)", &get_api);
    let get_min = load(
        Target {
            method: reqwest::Method::GET,
            url: format!("http://{base}/tenants/demo-stttt"),
            token: None,
            body: None,
        },
        seconds,
    )
    .await;
    row("minimal axum: one select by name", &get_min);
    let post_api = load(
        Target {
            method: reqwest::Method::POST,
            url: format!("http://{api}/v1/capacity-requests"),
            token: token.clone(),
            body: Some(request.clone()),
        },
        seconds,
    )
    .await;
    row("POST /v1/capacity-requests (govcloud)", &post_api);
    let post_min = load(
        Target {
            method: reqwest::Method::POST,
            url: format!("http://{base}/capacity-requests"),
            token: None,
            body: Some(request),
        },
        seconds,
    )
    .await;
    row("minimal axum: one insert", &post_min);
    // The same GET with the tenant cache off (as while its announcements are down): every
    // read from PostgreSQL, the cost of a miss.
    state_for_misses.tenants.set_live(false);
    let get_miss = load(get_tenant, seconds).await;
    row("GET /v1/tenants/{name}, tenant cache off", &get_miss);
    println!(
        "\nratio govcloud / minimal, req/s: GET {:.2} (cache off: {:.2}), POST {:.2}; p99: GET {:.2}, POST {:.2}",
        get_api.rate() / get_min.rate(),
        get_miss.rate() / get_min.rate(),
        post_api.rate() / post_min.rate(),
        get_api.p99.as_secs_f64() / get_min.p99.as_secs_f64(),
        post_api.p99.as_secs_f64() / post_min.p99.as_secs_f64(),
    );
    bench.stop();
}
