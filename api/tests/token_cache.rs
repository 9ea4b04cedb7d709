//! Verified tokens are cached, and a revoked or expired token is still refused at once: on the
//! replica that revoked it at the next request, on another replica as soon as PostgreSQL
//! announces the change, and after any revocation made in SQL by hand.

mod support;

use std::time::Duration;

use axum::http::{Method, StatusCode};
use govcloud_testing::eventually_within;
use serde_json::json;
use sqlx::PgPool;
use support::{TestApi, call_with, state_for};

async fn status_of(router: axum::Router, token: &str) -> StatusCode {
    call_with(
        router,
        Method::GET,
        "/v1/tenants/demo-stttt",
        Some(token),
        None,
    )
    .await
    .0
}

/// Waits (up to 2 s: the announcement's way from PostgreSQL) until `router` refuses `token`.
async fn refused_soon(router: &axum::Router, token: &str, what: &str) {
    eventually_within(Duration::from_secs(2), what, || async {
        let s = status_of(router.clone(), token).await;
        (s == StatusCode::UNAUTHORIZED)
            .then_some(())
            .ok_or(s.to_string())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

async fn live(state: &govcloud_api::AppState) {
    eventually_within(
        Duration::from_secs(10),
        "the token announcements",
        || async { state.tokens.is_live().then_some(()).ok_or("not yet") },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// Registers an agency admin with a token; answers its id and token.
async fn person(
    api: &TestApi,
    name: &str,
    expires: Option<chrono::DateTime<chrono::Utc>>,
) -> (String, String) {
    let mut body = json!({"name": name, "role": "tenant-admin", "tenant": "demo-stttt"});
    if let Some(at) = expires {
        body["tokenExpiresAt"] = json!(at);
    }
    let (status, made) = api.post("/v1/principals", "platform-admin", body).await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    (
        made["principal"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        made["token"].as_str().unwrap_or_default().to_string(),
    )
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn revoked_tokens_are_refused_at_once_on_every_replica(db: PgPool) {
    let a = TestApi::new(db.clone()).await;
    // A second replica: its own cache, the same database.
    let b = state_for(db.clone(), &a.sim, govcloud_api::Settings::default()).await;
    live(&a.state).await;
    live(&b).await;
    let (router_a, router_b) = (a.router(), govcloud_api::app(b.clone()));

    // Removed through replica A: A refuses the next request, B as soon as it hears.
    let (id, token) = person(&a, "cache.one@demo.gov.vn", None).await;
    for router in [&router_a, &router_b] {
        assert_eq!(status_of(router.clone(), &token).await, StatusCode::OK);
        assert_eq!(
            status_of(router.clone(), &token).await,
            StatusCode::OK,
            "from the cache"
        );
    }
    let (status, _) = a
        .call(
            Method::DELETE,
            &format!("/v1/principals/{id}"),
            Some("platform-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        status_of(router_a.clone(), &token).await,
        StatusCode::UNAUTHORIZED
    );
    refused_soon(
        &router_b,
        &token,
        "replica B refuses the removed person's token",
    )
    .await;

    // Revoked by hand in SQL: both replicas hear it from the database.
    let (_, token) = person(&a, "cache.two@demo.gov.vn", None).await;
    for router in [&router_a, &router_b] {
        assert_eq!(status_of(router.clone(), &token).await, StatusCode::OK);
    }
    sqlx::query(
        "update api_token set revoked_at = now(), revoked_by = 'dba' where token_hash = $1",
    )
    .bind(govcloud_api::domain::token::hash(&token))
    .execute(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    for (name, router) in [("A", &router_a), ("B", &router_b)] {
        refused_soon(
            router,
            &token,
            &format!("replica {name} refuses a token revoked in SQL"),
        )
        .await;
    }

    // Rotated: the old token stops on the very next request here.
    let (id, token) = person(&a, "cache.three@demo.gov.vn", None).await;
    assert_eq!(status_of(router_a.clone(), &token).await, StatusCode::OK);
    let (status, rotated) = a
        .post(
            &format!("/v1/principals/{id}/token"),
            "platform-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    assert_eq!(
        status_of(router_a.clone(), &token).await,
        StatusCode::UNAUTHORIZED
    );
    let new = rotated["token"].as_str().unwrap_or_default();
    assert_eq!(status_of(router_a.clone(), new).await, StatusCode::OK);
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_expired_token_is_refused_even_while_cached(db: PgPool) {
    let api = TestApi::new(db).await;
    live(&api.state).await;
    let expires = chrono::Utc::now() + chrono::Duration::seconds(2);
    let (_, token) = person(&api, "cache.short@demo.gov.vn", Some(expires)).await;
    assert_eq!(status_of(api.router(), &token).await, StatusCode::OK);
    assert_eq!(status_of(api.router(), &token).await, StatusCode::OK);
    let wait =
        (expires - chrono::Utc::now()).to_std().unwrap_or_default() + Duration::from_millis(50);
    tokio::time::sleep(wait).await;
    assert_eq!(
        status_of(api.router(), &token).await,
        StatusCode::UNAUTHORIZED
    );
}
