//! Tenants read by name are cached, and a change is read back at once: on the replica that
//! made it at the next request, on another replica as soon as PostgreSQL announces it, and
//! after a change made in SQL by hand. What a caller may see is never cached.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use govcloud_testing::eventually_within;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{TestApi, call_with, state_for};

async fn live(state: &govcloud_api::AppState) {
    eventually_within(Duration::from_secs(10), "the announcements", || async {
        state.tenants.is_live().then_some(()).ok_or("not yet")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn tenant(router: &axum::Router, token: &str, name: &str) -> (StatusCode, Value) {
    call_with(
        router.clone(),
        Method::GET,
        &format!("/v1/tenants/{name}"),
        Some(token),
        None,
    )
    .await
}

async fn display_name(router: &axum::Router, token: &str) -> String {
    let (status, body) = tenant(router, token, "demo-stttt").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["displayName"].as_str().unwrap_or_default().to_string()
}

/// Waits (up to 2 s: the announcement's way from PostgreSQL) until `router` answers `want`.
async fn shows_soon(router: &axum::Router, token: &str, want: &str) {
    eventually_within(Duration::from_secs(2), want, || async {
        let now = display_name(router, token).await;
        (now == want).then_some(()).ok_or(now)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_change_is_read_back_at_once_and_reaches_every_replica(db: PgPool) {
    let a = TestApi::new(db.clone()).await;
    let b = state_for(db.clone(), &a.sim, govcloud_api::Settings::default()).await;
    live(&a.state).await;
    live(&b).await;
    let (router_a, router_b) = (a.router(), govcloud_api::app(b.clone()));
    let admin = a.token("platform-admin").to_string();
    let before = display_name(&router_a, &admin).await;
    assert_eq!(display_name(&router_b, &admin).await, before);

    // The cache is what answers: a change that announces nothing (triggers off for this
    // session) is not seen until an announcement comes.
    let mut conn = db.acquire().await.unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("set session_replication_role = replica")
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    sqlx::query("update tenant set display_name = 'Unannounced' where name = 'demo-stttt'")
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        display_name(&router_a, &admin).await,
        before,
        "served from the cache"
    );
    sqlx::query("notify govcloud_tenants")
        .execute(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    shows_soon(&router_a, &admin, "Unannounced").await;
    shows_soon(&router_b, &admin, "Unannounced").await;

    // Changed through replica A: A answers the change at the very next request, B as soon
    // as it hears.
    let (status, body) = call_with(
        router_a.clone(),
        Method::PATCH,
        "/v1/tenants/demo-stttt",
        Some(&admin),
        Some(json!({"displayName": "Through A"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(display_name(&router_a, &admin).await, "Through A");
    shows_soon(&router_b, &admin, "Through A").await;

    // By hand in SQL, announced by the trigger: both.
    sqlx::query("update tenant set display_name = 'By hand' where name = 'demo-stttt'")
        .execute(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    shows_soon(&router_a, &admin, "By hand").await;
    shows_soon(&router_b, &admin, "By hand").await;

    // A namespace's quota, changed by hand: the tenant's answer follows.
    sqlx::query(
        "update tenant_namespace set cpu_milli = 7000 from tenant
         where tenant.tenant_id = tenant_namespace.tenant_id and tenant.name = 'demo-stttt' and tenant_namespace.name = 'prod'",
    )
    .execute(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    eventually_within(Duration::from_secs(2), "prod at 7 cpu", || async {
        let (_, body) = tenant(&router_b, &admin, "demo-stttt").await;
        let cpu = body["namespaces"]
            .as_array()
            .and_then(|ns| ns.iter().find(|n| n["name"] == "prod"))
            .map(|n| n["quota"]["cpu"].clone());
        (cpu == Some(json!("7")))
            .then_some(())
            .ok_or(format!("{cpu:?}"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn who_may_see_a_cached_tenant_is_decided_on_every_request(db: PgPool) {
    let api = TestApi::new(db).await;
    live(&api.state).await;
    let router = api.router();
    // The platform admin's reads put a sibling agency and another organization's in the
    // cache...
    for name in ["demo-sotc", "demo-ministry-data"] {
        let (status, _) = tenant(&router, api.token("platform-admin"), name).await;
        assert_eq!(status, StatusCode::OK);
    }
    // ...and neither the sibling's admin nor the province's IT sees what is not theirs, on
    // the first read from the cache or the next.
    for _ in 0..2 {
        let (status, body) = tenant(&router, api.token("tenant-admin"), "demo-sotc").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let (status, body) = tenant(&router, api.token("org-admin"), "demo-ministry-data").await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    }
    // Its own agency still answers.
    let (status, _) = tenant(&router, api.token("tenant-admin"), "demo-stttt").await;
    assert_eq!(status, StatusCode::OK);
}
