//! Usage in and out through the API: ingest by the metering identity only, duplicates and
//! contradictions, bad batches refused whole, the roll-up closing hours, and usage and
//! utilisation read back in buckets, scoped like every read.

mod support;

use axum::http::{Method, StatusCode};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::TestApi;

fn hour_ago(hours: i64) -> DateTime<Utc> {
    Utc::now()
        .duration_trunc(Duration::hours(1))
        .unwrap_or_default()
        - Duration::hours(hours)
}

fn sample(ns: &str, metric: &str, start: DateTime<Utc>, quantity: i64) -> Value {
    let tenant = if ns.starts_with("demo-sotc") {
        "demo-sotc"
    } else {
        "demo-stttt"
    };
    json!({"tenant": tenant, "namespace": ns, "metric": metric, "windowStart": start, "quantity": quantity})
}

fn batch(samples: Vec<Value>) -> Value {
    json!({"windowSeconds": 60, "samples": samples})
}

async fn ingest(api: &TestApi, body: Value) -> (StatusCode, Value) {
    api.post("/v1/usage/batches", "metering", body).await
}

async fn stored_windows(db: &PgPool) -> i64 {
    sqlx::query_scalar::<_, i64>("select count(*) from usage_window")
        .fetch_one(db)
        .await
        .unwrap_or(-1)
}

fn fields(body: &Value) -> Vec<String> {
    body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str().map(str::to_string))
        .collect()
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_batch_sent_twice_changes_nothing_and_a_contradiction_is_refused(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let w = hour_ago(1);
    let first = batch(vec![
        sample("demo-stttt-prod", "cpu.requested", w, 30_000),
        sample("demo-stttt-prod", "memory.requested", w, 60 << 30),
        sample("demo-sotc-prod", "cpu.requested", w, 6_000),
    ]);
    let (status, body) = ingest(&api, first.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["duplicate"].as_u64()),
        (Some(3), Some(0))
    );
    let (_, body) = ingest(&api, first).await;
    assert_eq!(
        (body["accepted"].as_u64(), body["duplicate"].as_u64()),
        (Some(0), Some(3))
    );
    // the same key with another quantity is refused and counted, and the first one stays
    let (status, body) = ingest(
        &api,
        batch(vec![
            sample("demo-stttt-prod", "cpu.requested", w, 99_999),
            sample("demo-stttt-prod", "cpu.used", w, 12_000),
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["accepted"], 1);
    assert_eq!(body["refused"], 1);
    assert_eq!(
        body["refusals"],
        json!([{"reason": "contradicts", "count": 1}])
    );
    // the window gained its use and kept everything it had
    let stored: (Option<i64>, Option<i64>, Option<i64>) = sqlx::query_as(
        "select cpu_requested, memory_requested, cpu_used from usage_window u join metered_namespace m using (metered_namespace_id) where m.kube_name = 'demo-stttt-prod'",
    )
    .fetch_one(&db)
    .await
    .unwrap_or_default();
    assert_eq!(stored, (Some(30_000), Some(60 << 30), Some(12_000)));
    let (_, metrics) = api.call(Method::GET, "/metrics", None, None).await;
    assert!(
        metrics
            .as_str()
            .unwrap_or_default()
            .contains(r#"govcloud_api_usage_samples_total{outcome="contradicts"} 1"#),
        "{metrics}"
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn bad_batches_are_refused_whole_and_store_nothing(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let w = hour_ago(1);
    let good = sample("demo-stttt-prod", "cpu.requested", w, 1);
    let cases: Vec<(Value, Vec<&str>)> = vec![
        (
            batch(vec![
                good.clone(),
                json!({"tenant": "nobody", "namespace": "nobody-prod",
                "metric": "cpu.requested", "windowStart": w, "quantity": 1}),
            ]),
            vec!["samples[1].namespace"],
        ),
        (
            // another tenant's namespace under this tenant's name
            batch(vec![
                good.clone(),
                json!({"tenant": "demo-stttt", "namespace": "demo-sotc-prod",
                "metric": "cpu.requested", "windowStart": w, "quantity": 1}),
            ]),
            vec!["samples[1].namespace"],
        ),
        (
            batch(vec![
                good.clone(),
                sample("demo-stttt-prod", "cpu.used", w, -5),
            ]),
            vec!["samples[1].quantity"],
        ),
        (
            batch(vec![
                good.clone(),
                sample("demo-stttt-prod", "cpu.used", w, i64::MAX),
            ]),
            vec!["samples[1].quantity"],
        ),
        (
            batch(vec![
                good.clone(),
                sample("demo-stttt-prod", "cpu.used", w + Duration::seconds(30), 5),
            ]),
            vec!["samples[1].windowStart"],
        ),
        (
            batch(vec![
                good.clone(),
                sample("demo-stttt-prod", "cpu.used", hour_ago(-2), 5),
            ]),
            vec!["samples[1].windowStart"],
        ),
        (
            json!({"windowSeconds": 7, "samples": [good.clone()]}),
            vec!["windowSeconds"],
        ),
    ];
    for (body, expected) in cases {
        let (status, answer) = ingest(&api, body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        assert_eq!(fields(&answer), expected, "{answer}");
        assert_eq!(stored_windows(&db).await, 0, "a bad batch stored something");
    }
    // 100,000 samples in one request: refused, with what to do about it
    let many: Vec<Value> = (0..100_000).map(|_| good.clone()).collect();
    let (status, answer) = ingest(&api, batch(many)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(fields(&answer), ["samples"]);
    assert!(answer.to_string().contains("split it"), "{answer}");
    assert_eq!(stored_windows(&db).await, 0);
    // an unknown metric is named by its path
    let (status, answer) = ingest(
        &api,
        batch(vec![
            json!({"tenant": "demo-stttt", "namespace": "demo-stttt-prod",
            "metric": "cpu.burst", "windowStart": w, "quantity": 1}),
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
    assert_eq!(stored_windows(&db).await, 0);
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn only_the_metering_identity_ingests_and_it_reads_nothing(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let body = batch(vec![sample(
        "demo-stttt-prod",
        "cpu.requested",
        hour_ago(1),
        1,
    )]);
    for role in [
        "platform-admin",
        "org-admin",
        "tenant-admin",
        "finance",
        "auditor",
    ] {
        let (status, answer) = api.post("/v1/usage/batches", role, body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}: {answer}");
    }
    let (status, _) = api
        .call(Method::POST, "/v1/usage/batches", None, Some(body))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(stored_windows(&db).await, 0);
    for path in [
        "/v1/usage?tenant=demo-stttt",
        "/v1/utilisation?organization=demo-province&month=2026-10",
        "/v1/tenants",
        "/v1/tenants/demo-stttt",
        "/v1/organizations/demo-province",
        "/v1/audit-events",
    ] {
        let (status, answer) = api.get(path, "metering").await;
        assert!(
            matches!(status, StatusCode::NOT_FOUND | StatusCode::FORBIDDEN)
                || answer["items"].as_array().is_some_and(Vec::is_empty),
            "metering read {path}: {status} {answer}"
        );
    }
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn usage_adds_up_with_unmetered_time_and_closed_hours_refuse_late_samples(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let h = hour_ago(2);
    // 50 of the hour's 60 windows of demo-stttt-prod: 500m requested, 200m used
    let mut samples = Vec::new();
    for i in 0..50 {
        let w = h + Duration::minutes(i);
        samples.push(sample("demo-stttt-prod", "cpu.requested", w, 500 * 60));
        samples.push(sample(
            "demo-stttt-prod",
            "memory.requested",
            w,
            (1 << 30) * 60,
        ));
        samples.push(sample("demo-stttt-prod", "cpu.used", w, 200 * 60));
        samples.push(sample("demo-stttt-prod", "memory.used", w, (1 << 29) * 60));
        samples.push(sample(
            "demo-stttt-prod",
            "storage.bound",
            w,
            (10 << 30) * 60,
        ));
        if i < 10 {
            let mut gpu = sample("demo-stttt-prod", "gpu.requested", w, 60);
            gpu["resource"] = json!("nvidia.com/gpu");
            samples.push(gpu);
        }
    }
    let (status, body) = ingest(&api, batch(samples)).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::OK, Some(260)),
        "{body}"
    );

    let path = format!(
        "/v1/usage?tenant=demo-stttt&namespace=demo-stttt-prod&metric=cpu.requested&granularity=hour&from={}&to={}",
        h.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        (h + Duration::hours(1)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    );
    let (status, before) = api.get(&path, "tenant-admin").await;
    assert_eq!(status, StatusCode::OK, "{before}");
    let bucket = &before["series"][0]["buckets"][0];
    assert_eq!(bucket["quantity"], (500 * 60 * 50).to_string());
    assert_eq!(bucket["meteredSeconds"], 3000);

    // The roll-up closes the hour: the same answer from the hourly ledger, and late samples
    // for it are refused.
    let rolled =
        govcloud_api::app::metering::roll_up(&api.state, Duration::minutes(10), Utc::now())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(rolled >= 1);
    assert_eq!(stored_windows(&db).await, 0);
    let (_, after) = api.get(&path, "tenant-admin").await;
    assert_eq!(after["series"], before["series"]);
    // Bound storage and GPUs, recomputed here: 10 GiB for 50 minutes, one GPU for 10 minutes
    // (metered as the hour's requests were: 3,000 s).
    for (metric, quantity, metered) in [
        ("storage.bound", (10i64 << 30) * 3000, 3000),
        ("gpu.requested", 600, 3000),
    ] {
        let (_, u) = api
            .get(
                &path.replace("metric=cpu.requested", &format!("metric={metric}")),
                "tenant-admin",
            )
            .await;
        let b = &u["series"][0]["buckets"][0];
        assert_eq!(b["quantity"], quantity.to_string(), "{metric}: {u}");
        assert_eq!(b["meteredSeconds"], metered, "{metric}: {u}");
        if metric == "gpu.requested" {
            assert_eq!(u["series"][0]["resource"], "nvidia.com/gpu");
            assert_eq!(u["series"][0]["unit"], "count-seconds");
        }
    }
    // Every usage route is in the OpenAPI document.
    let (_, doc) = api.call(Method::GET, "/openapi.json", None, None).await;
    for (route, method) in [
        ("/v1/usage/batches", "post"),
        ("/v1/usage", "get"),
        ("/v1/utilisation", "get"),
    ] {
        assert!(
            doc["paths"][route][method].is_object(),
            "{route} {method} not documented"
        );
    }
    let (status, late) = ingest(
        &api,
        batch(vec![sample(
            "demo-stttt-prod",
            "cpu.requested",
            h + Duration::minutes(55),
            1,
        )]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(late["refusals"], json!([{"reason": "late", "count": 1}]));

    // Reserved comes from the quota timeline: 4 cpu for every second of the namespace's life
    // (onboarded moments ago: let a few seconds pass).
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (_, reserved) = api
        .get(
            &format!(
                "/v1/usage?tenant=demo-stttt&namespace=demo-stttt-prod&metric=cpu.reserved&granularity=hour&from={}",
                hour_ago(0).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            "tenant-admin",
        )
        .await;
    let b = &reserved["series"][0]["buckets"][0];
    let metered = b["meteredSeconds"].as_i64().unwrap_or_default();
    assert!(metered > 0, "{reserved}");
    assert_eq!(b["quantity"], (4000 * metered).to_string(), "{reserved}");
    assert_eq!(b["unmeteredSeconds"], 0);

    // Utilisation: the month holds what was ingested, as averages against the reservation.
    let month = govcloud_api::domain::period::month_of(h);
    let (status, u) = api
        .get(
            &format!("/v1/utilisation?organization=demo-province&month={month}"),
            "org-admin",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{u}");
    let prod = u["tenants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["tenant"] == "demo-stttt")
        .flat_map(|t| t["namespaces"].as_array().cloned().unwrap_or_default())
        .find(|n| n["namespace"] == "demo-stttt-prod")
        .unwrap_or_default();
    assert_eq!(prod["cpu"]["averageRequested"], "500", "{prod}");
    assert_eq!(prod["cpu"]["averageUsed"], "200", "{prod}");
    assert_eq!(prod["cpu"]["averageReserved"], "4000", "{prod}");
    assert_eq!(prod["cpu"]["requestedPercent"], "12.5", "{prod}");
    assert_eq!(prod["requestedMeteredSeconds"], 3000);
    // Right-sizing: 200m at peak + 30 % = 260m, 300m in whole tenths of a core, against the
    // 4 cores reserved; 512 MiB + 30 % in whole 128 MiB steps is 768 MiB against 16 GiB.
    assert_eq!(prod["cpu"]["peakUsed"], "200", "{prod}");
    assert_eq!(
        prod["cpu"]["suggestion"],
        json!({"reserve": "300", "reservedNow": "4000", "change": "lower"}),
        "{prod}"
    );
    assert_eq!(
        prod["memory"]["peakUsed"],
        (1i64 << 29).to_string(),
        "{prod}"
    );
    assert_eq!(
        prod["memory"]["suggestion"],
        json!({"reserve": (6i64 * (128 << 20)).to_string(), "reservedNow": (16i64 << 30).to_string(), "change": "lower"}),
        "{prod}"
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn another_agency_or_organization_cannot_read_usage(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let w = hour_ago(1);
    let (status, _) = ingest(
        &api,
        batch(vec![sample("demo-sotc-prod", "cpu.requested", w, 60)]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    // demo-stttt's admin asking for demo-sotc's usage: as if it did not exist
    let (status, body) = api.get("/v1/usage?tenant=demo-sotc", "tenant-admin").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    // ... and for its own tenant, another tenant's namespace is not there either
    let (status, _) = api
        .get(
            "/v1/usage?tenant=demo-stttt&namespace=demo-sotc-prod",
            "tenant-admin",
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // the province's people read nothing of the ministry's agencies
    for role in ["org-admin", "finance"] {
        let (status, _) = api.get("/v1/usage?tenant=demo-ministry-data", role).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{role}");
        let (status, _) = api
            .get(
                "/v1/utilisation?organization=demo-ministry&month=2026-10",
                role,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{role}");
    }
    // a tenant admin's utilisation holds its own agency only
    let (status, u) = api
        .get(
            "/v1/utilisation?organization=demo-province&month=2026-10",
            "tenant-admin",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{u}");
    let tenants: Vec<&str> = u["tenants"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["tenant"].as_str())
        .collect();
    assert_eq!(tenants, ["demo-stttt"]);
    // finance of the province sees both of its agencies
    let (_, u) = api
        .get(
            "/v1/utilisation?organization=demo-province&month=2026-10",
            "finance",
        )
        .await;
    assert_eq!(u["tenants"].as_array().map(Vec::len), Some(2), "{u}");
    // bad periods are named
    let (status, body) = api
        .get(
            "/v1/usage?tenant=demo-stttt&from=2026-10-01T00:30:00Z",
            "tenant-admin",
        )
        .await;
    assert_eq!(
        (status, fields(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, vec!["from".to_string()])
    );
    let (status, _) = api
        .get(
            "/v1/utilisation?organization=demo-province&month=2026-13",
            "finance",
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}
