//! People and tokens through the API: registered, listed, rotated and removed by the roles that
//! may, each change audited; a token is shown once and a revoked one stops working on the very
//! next request. Tried from the other side too: another organization's admin, an agency admin,
//! a removed principal.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{TestApi, call_with};

/// Calls the API with a raw token.
async fn as_token(
    api: &TestApi,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    call_with(api.router(), method, path, Some(token), body).await
}

async fn register(api: &TestApi, role: &str, body: Value) -> (StatusCode, Value) {
    api.post("/v1/principals", role, body).await
}

fn names(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["name"].as_str().map(String::from))
        .collect()
}

async fn audited(api: &TestApi, action: &str, object: &str) -> bool {
    let (_, events) = api
        .get(&format!("/v1/audit-events?action={action}"), "auditor")
        .await;
    events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|e| e["objectId"] == object)
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_org_admin_registers_rotates_and_removes_an_agency_admin(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, body) = register(
        &api,
        "org-admin",
        json!({"name": "lan.tran@demo.gov.vn", "role": "tenant-admin", "tenant": "demo-sotc"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["principal"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let first = body["token"].as_str().unwrap_or_default().to_string();
    assert!(first.starts_with("gct_"), "{body}");
    assert_eq!(body["principal"]["organization"], "demo-province");
    assert_eq!(body["principal"]["tenant"], "demo-sotc");
    assert_eq!(body["principal"]["activeTokens"], 1);
    assert_eq!(body["principal"]["createdBy"], "demo-province-it");
    assert!(audited(&api, "principal.create", "lan.tran@demo.gov.vn").await);

    // The token works at once, and sees its agency only.
    let (status, tenants) = as_token(&api, &first, Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&tenants), ["demo-sotc"]);
    // It is never shown again.
    let (_, shown) = api.get(&format!("/v1/principals/{id}"), "org-admin").await;
    assert!(
        shown.get("token").is_none() && !shown.to_string().contains(&first),
        "{shown}"
    );

    // Rotation: a new token, and the old one stops on its next request.
    let (status, rotated) = api
        .post(
            &format!("/v1/principals/{id}/token"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let second = rotated["token"].as_str().unwrap_or_default().to_string();
    assert!(second.starts_with("gct_") && second != first);
    assert_eq!(rotated["principal"]["activeTokens"], 1);
    let (status, _) = as_token(&api, &first, Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = as_token(&api, &second, Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(audited(&api, "principal.token.rotate", "lan.tran@demo.gov.vn").await);

    // Anyone may rotate their own token, even a role that manages nobody.
    let (status, own) = as_token(
        &api,
        &second,
        Method::POST,
        &format!("/v1/principals/{id}/token"),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{own}");
    let third = own["token"].as_str().unwrap_or_default().to_string();
    let (status, _) = as_token(&api, &second, Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // Removal: the token stops on its next request; the name is never given out again.
    let (status, _) = api
        .call(
            Method::DELETE,
            &format!("/v1/principals/{id}"),
            Some("org-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = as_token(&api, &third, Method::GET, "/v1/tenants", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(audited(&api, "principal.delete", "lan.tran@demo.gov.vn").await);
    let (status, _) = api.get(&format!("/v1/principals/{id}"), "org-admin").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, again) = register(
        &api,
        "org-admin",
        json!({"name": "lan.tran@demo.gov.vn", "role": "finance", "organization": "demo-province"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{again}");
    assert!(
        again["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("never reused")
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_org_admin_cannot_reach_another_organizations_people_or_platform_roles(db: PgPool) {
    let api = TestApi::new(db).await;
    // The ministry's own finance officer, registered by the platform.
    let (status, ministry) = register(
        &api,
        "platform-admin",
        json!({"name": "ministry-finance", "role": "finance", "organization": "demo-ministry"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{ministry}");
    let ministry_id = ministry["principal"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();

    // The province's IT department: not in its list, not readable, not removable, not rotatable.
    let (_, list) = api.get("/v1/principals?limit=200", "org-admin").await;
    let seen = names(&list);
    assert!(!seen.contains(&"ministry-finance".to_string()), "{seen:?}");
    assert!(
        !seen.contains(&"demo-platform-admin".to_string()),
        "{seen:?}"
    );
    assert!(!seen.contains(&"demo-auditor".to_string()), "{seen:?}");
    for n in [
        "demo-province-it",
        "demo-province-finance",
        "demo-stttt-admin",
    ] {
        assert!(seen.contains(&n.to_string()), "{n} missing from {seen:?}");
    }
    let path = format!("/v1/principals/{ministry_id}");
    assert_eq!(api.get(&path, "org-admin").await.0, StatusCode::NOT_FOUND);
    let (status, _) = api
        .call(Method::DELETE, &path, Some("org-admin"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .post(&format!("{path}/token"), "org-admin", json!({}))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nor register people in the ministry or its agencies.
    let (status, _) = register(
        &api,
        "org-admin",
        json!({"name": "mole", "role": "finance", "organization": "demo-ministry"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = register(
        &api,
        "org-admin",
        json!({"name": "mole", "role": "tenant-admin", "tenant": "demo-ministry-data"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Nor a platform-wide role.
    for role in ["platform-admin", "auditor"] {
        let (status, body) =
            register(&api, "org-admin", json!({"name": "mole", "role": role})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}: {body}");
    }
    // The ministry's token still works: nothing above touched it.
    let token = ministry["token"].as_str().unwrap_or_default();
    let (status, _) = as_token(&api, token, Method::GET, "/v1/organizations", None).await;
    assert_eq!(status, StatusCode::OK);

    // An agency admin and a finance officer manage nobody and list nobody.
    for role in ["tenant-admin", "finance"] {
        assert_eq!(
            api.get("/v1/principals", role).await.0,
            StatusCode::FORBIDDEN
        );
        let (status, _) = register(
            &api,
            role,
            json!({"name": "helper", "role": "tenant-admin", "tenant": "demo-stttt"}),
        )
        .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
    // An auditor reads everyone and changes no one.
    let (_, all) = api.get("/v1/principals?limit=200", "auditor").await;
    assert!(names(&all).contains(&"ministry-finance".to_string()));
    let (status, _) = api.call(Method::DELETE, &path, Some("auditor"), None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(api.get(&path, "platform-admin").await.1["activeTokens"], 1);
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn bad_registrations_change_nothing_and_say_why(db: PgPool) {
    let api = TestApi::new(db).await;
    let cases = [
        (
            json!({"name": "two words", "role": "finance", "organization": "demo-province"}),
            "name",
        ),
        (json!({"name": "x", "role": "finance"}), "role"),
        (
            json!({"name": "x", "role": "tenant-admin", "organization": "demo-province"}),
            "role",
        ),
        (
            json!({"name": "x", "role": "org-admin", "organization": "demo-province", "apiToken": false}),
            "apiToken",
        ),
        (
            json!({"name": "x", "role": "org-admin", "organization": "demo-province", "tokenExpiresAt": "2020-01-01T00:00:00Z"}),
            "tokenExpiresAt",
        ),
        (
            json!({"name": "x", "role": "org-admin", "organization": "demo-province", "tokenExpiresAt": "2999-01-01T00:00:00Z"}),
            "tokenExpiresAt",
        ),
        (
            json!({"name": "x", "role": "root", "organization": "demo-province"}),
            "role",
        ),
        (
            json!({"name": 7, "role": "finance", "organization": "demo-province"}),
            "name",
        ),
    ];
    for (body, field) in cases {
        let (status, problem) = register(&api, "platform-admin", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(
            problem["type"],
            "https://govcloud.io/problems/invalid-fields"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    let (_, list) = api.get("/v1/principals?limit=200", "platform-admin").await;
    assert!(!names(&list).contains(&"x".to_string()));

    // Nobody removes themselves.
    let (_, me) = api.get("/v1/principals?role=org-admin", "org-admin").await;
    let my_id = me["items"][0]["id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let (status, body) = api
        .call(
            Method::DELETE,
            &format!("/v1/principals/{my_id}"),
            Some("org-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(api.get("/v1/tenants", "org-admin").await.0, StatusCode::OK);
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn offboarding_an_agency_ends_its_admins_access(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, _) = api.get("/v1/tenants/demo-stttt", "tenant-admin").await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/tenants/demo-stttt",
            Some("org-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // The agency admin's token stops on its next request; the province's keep working.
    let (status, _) = api.get("/v1/tenants", "tenant-admin").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(api.get("/v1/tenants", "org-admin").await.0, StatusCode::OK);
    let (_, events) = api
        .get("/v1/audit-events?action=tenant.delete", "auditor")
        .await;
    assert_eq!(
        events["items"][0]["detail"]["removedPrincipals"],
        json!(["demo-stttt-admin"])
    );
    // No new admin for an agency on its way out.
    let (status, body) = register(
        &api,
        "org-admin",
        json!({"name": "late", "role": "tenant-admin", "tenant": "demo-stttt"}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_body_of_the_wrong_shape_names_the_field(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, problem) = api
        .post(
            "/v1/tenants",
            "org-admin",
            json!({"name": "shape", "organization": "demo-province", "displayName": "Shape",
                   "namespaces": [{"name": "prod", "quota": {"cpu": "1", "memory": "1Gi", "storage": "1Gi", "pods": "many"}}],
                   "billing": {"plan": "Usage"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(
        problem["type"],
        "https://govcloud.io/problems/invalid-fields"
    );
    assert_eq!(problem["errors"][0]["field"], "namespaces[0].quota.pods");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("invalid type: string \"many\""),
        "{problem}"
    );
    // A date past the horizon is refused in plain words, not stored.
    let (status, problem) = api
        .post(
            "/v1/capacity-requests",
            "tenant-admin",
            json!({"tenant": "demo-stttt", "namespace": "prod", "quota": {"cpu": "5"},
                   "reason": "typo in the year", "effectiveFrom": "2206-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "effectiveFrom");
    assert!(
        problem["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .starts_with("must be within 2 years from now"),
        "{problem}"
    );
    let (_, requests) = api.get("/v1/capacity-requests", "tenant-admin").await;
    assert_eq!(requests["items"], json!([]));
}
