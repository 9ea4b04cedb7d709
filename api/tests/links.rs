//! Data-sharing links as a workflow: asked for by one agency, approved by the other (and by both
//! organizations across organizations), only then granted in the provider's Tenant — where the
//! operator opens both ends — and closed by either side at once. Tried from the other side too.

mod support;

use axum::http::{Method, StatusCode};
use govcloud_tenant::crd::Tenant;
use govcloud_testing::eventually;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::Api;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{TestApi, call_with};

async fn grants_of(api: &TestApi, tenant: &str) -> Vec<String> {
    Api::<Tenant>::all(api.kube())
        .get(tenant)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .spec
        .network
        .allow_from
        .iter()
        .map(|g| {
            format!(
                "{}/{}:{:?}",
                g.tenant,
                g.namespace,
                g.ports.iter().map(|p| p.0).collect::<Vec<_>>()
            )
        })
        .collect()
}

fn link_body(from: &str, ns: &str, to: &str) -> Value {
    json!({"from": {"tenant": from, "namespace": ns}, "to": {"tenant": to}, "ports": [443, 8443],
           "purpose": "reads the other agency's records"})
}

/// Waits until the NetworkPolicy exists (`true`) or is gone (`false`).
async fn policy(api: &TestApi, namespace: &str, name: &str, present: bool) {
    let policies = Api::<NetworkPolicy>::namespaced(api.kube(), namespace);
    eventually(format!("{namespace}/{name} present={present}"), || async {
        let found = policies
            .get_opt(name)
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        (found == present)
            .then_some(())
            .ok_or(format!("present={found}"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_link_opens_only_once_the_provider_approves_and_closes_at_once(db: PgPool) {
    let api = TestApi::new(db).await;
    support::start_operator(&api).await;
    // The agency asks to reach its sibling's namespaces.
    let (status, link) = api
        .post(
            "/v1/links",
            "tenant-admin",
            link_body("demo-stttt", "prod", "demo-sotc"),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    assert_eq!(link["state"], "pending");
    assert_eq!(link["awaiting"], json!(["provider"]));
    let id = link["id"].as_str().unwrap_or_default().to_string();
    // Pending: the provider's Tenant grants nothing to the asker.
    assert!(grants_of(&api, "demo-sotc").await.is_empty());
    // The asker cannot approve its own request; finance and the auditor cannot either.
    for role in ["tenant-admin", "finance", "auditor"] {
        let (status, _) = api
            .post(&format!("/v1/links/{id}/approve"), role, json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
    assert!(grants_of(&api, "demo-sotc").await.is_empty());

    // The providing agency's organization approves: both ends open.
    let (status, approved) = api
        .post(&format!("/v1/links/{id}/approve"), "org-admin", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "approved");
    assert_eq!(approved["providerApprovedBy"], "demo-province-it");
    assert_eq!(
        grants_of(&api, "demo-sotc").await,
        ["demo-stttt/prod:[443, 8443]"]
    );
    policy(
        &api,
        "demo-sotc-prod",
        "govcloud-link-from.demo-stttt.prod",
        true,
    )
    .await;
    policy(&api, "demo-stttt-prod", "govcloud-link-to.demo-sotc", true).await;
    let (status, _) = api
        .post(&format!("/v1/links/{id}/approve"), "org-admin", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // Who can reach whom, for the province's security officer.
    let (_, open) = api
        .get("/v1/links?state=approved&tenant=demo-sotc", "org-admin")
        .await;
    let pairs: Vec<String> = open["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| {
            format!(
                "{}->{}",
                l["from"]["tenant"].as_str().unwrap_or_default(),
                l["to"]["tenant"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(pairs, ["demo-stttt->demo-sotc", "demo-sotc->demo-stttt"]);

    // The asking side closes it: revoked, the grant and both policies go.
    let (status, closed) = api
        .call(
            Method::DELETE,
            &format!("/v1/links/{id}"),
            Some("tenant-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert_eq!(closed["state"], "revoked");
    assert!(grants_of(&api, "demo-sotc").await.is_empty());
    policy(
        &api,
        "demo-sotc-prod",
        "govcloud-link-from.demo-stttt.prod",
        false,
    )
    .await;
    policy(&api, "demo-stttt-prod", "govcloud-link-to.demo-sotc", false).await;
    let (_, events) = api
        .get("/v1/audit-events?action=link.revoke", "auditor")
        .await;
    assert_eq!(events["items"][0]["objectId"], id.as_str());
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_link_from_a_namespace_the_asker_cannot_see_is_not_found(db: PgPool) {
    let api = TestApi::new(db).await;
    // An agency speaking for its sibling, a province speaking for a ministry's agency.
    let (status, _) = api
        .post(
            "/v1/links",
            "tenant-admin",
            link_body("demo-sotc", "prod", "demo-stttt"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .post(
            "/v1/links",
            "org-admin",
            link_body("demo-ministry-data", "prod", "demo-stttt"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = api
        .post(
            "/v1/links",
            "tenant-admin",
            link_body("demo-stttt", "prod", "no-such-agency"),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for role in ["finance", "auditor"] {
        let (status, _) = api
            .post(
                "/v1/links",
                role,
                link_body("demo-stttt", "prod", "demo-sotc"),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
    // Bad fields are named, and nothing is asked for.
    let (status, problem) = api
        .post(
            "/v1/links",
            "tenant-admin",
            json!({"from": {"tenant": "demo-stttt", "namespace": "nope"}, "to": {"tenant": "demo-stttt"},
                   "ports": [0], "purpose": " "}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["from.namespace", "to.tenant", "ports", "purpose"]);
    let (_, mine) = api.get("/v1/links?state=pending", "tenant-admin").await;
    assert_eq!(mine["items"], json!([]));
    // A ministry's link is invisible to the province and to the agency.
    let (_, ministry) = api
        .post(
            "/v1/links",
            "platform-admin",
            link_body("demo-ministry-data", "prod", "demo-sotc"),
        )
        .await;
    let path = format!("/v1/links/{}", ministry["id"].as_str().unwrap_or_default());
    assert_eq!(
        api.get(&path, "tenant-admin").await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        api.get(&path, "org-admin").await.0,
        StatusCode::OK,
        "the province provides it"
    );
    let (status, _) = api
        .call(Method::DELETE, &path, Some("tenant-admin"), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn across_organizations_both_organizations_approve(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, ministry_it) = api
        .post(
            "/v1/principals",
            "platform-admin",
            json!({"name": "ministry-it", "role": "org-admin", "organization": "demo-ministry"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ministry_it}");
    let ministry = ministry_it["token"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let as_ministry = |method: Method, path: String, body: Option<Value>| {
        let api = &api;
        let token = ministry.clone();
        async move { call_with(api.router(), method, &path, Some(&token), body).await }
    };
    let (status, link) = as_ministry(
        Method::POST,
        "/v1/links".into(),
        Some(link_body("demo-ministry-data", "prod", "demo-stttt")),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{link}");
    assert_eq!(link["crossOrganization"], true);
    assert_eq!(
        link["consumerApprovedBy"], "ministry-it",
        "asking is its organization's approval"
    );
    assert_eq!(link["awaiting"], json!(["provider"]));
    let id = link["id"].as_str().unwrap_or_default().to_string();
    // Across organizations the agency alone cannot open itself: its organization decides.
    let (status, _) = api
        .post(
            &format!("/v1/links/{id}/approve"),
            "tenant-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        grants_of(&api, "demo-stttt")
            .await
            .iter()
            .all(|g| !g.starts_with("demo-ministry-data"))
    );
    // The ministry cannot approve the province's side either.
    let (status, _) = as_ministry(
        Method::POST,
        format!("/v1/links/{id}/approve"),
        Some(json!({})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, approved) = api
        .post(&format!("/v1/links/{id}/approve"), "org-admin", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "approved");
    assert!(
        grants_of(&api, "demo-stttt")
            .await
            .contains(&"demo-ministry-data/prod:[443, 8443]".to_string())
    );
    // Each sees it; another province's agency would not. The province's finance reads it.
    assert_eq!(
        as_ministry(Method::GET, format!("/v1/links/{id}"), None)
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        api.get(&format!("/v1/links/{id}"), "finance").await.0,
        StatusCode::OK
    );
    // The ministry closes it: the province's agency is closed to it again.
    let (status, closed) = as_ministry(Method::DELETE, format!("/v1/links/{id}"), None).await;
    assert_eq!(status, StatusCode::OK, "{closed}");
    assert!(
        grants_of(&api, "demo-stttt")
            .await
            .iter()
            .all(|g| !g.starts_with("demo-ministry-data"))
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn rejected_links_and_offboarded_agencies_open_nothing(db: PgPool) {
    let api = TestApi::new(db).await;
    let (_, link) = api
        .post(
            "/v1/links",
            "tenant-admin",
            link_body("demo-stttt", "prod", "demo-sotc"),
        )
        .await;
    let id = link["id"].as_str().unwrap_or_default().to_string();
    let (status, _) = api
        .post(&format!("/v1/links/{id}/reject"), "org-admin", json!({}))
        .await;
    assert_eq!(
        status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "a rejection says why"
    );
    let (status, rejected) = api
        .post(
            &format!("/v1/links/{id}/reject"),
            "org-admin",
            json!({"reason": "no legal basis"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["state"], "rejected");
    let (status, _) = api
        .post(&format!("/v1/links/{id}/approve"), "org-admin", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(grants_of(&api, "demo-sotc").await.is_empty());
    // Onboarding cannot open a link behind the workflow's back.
    let (status, problem) = api
        .post(
            "/v1/tenants",
            "org-admin",
            json!({"name": "sneaky", "organization": "demo-province", "displayName": "Sneaky",
                   "namespaces": [{"name": "prod", "quota": {"cpu": "100m", "memory": "128Mi", "storage": "1Gi", "pods": 5}}],
                   "network": {"allowFrom": [{"tenant": "demo-sotc", "namespace": "prod", "ports": [443]}]},
                   "billing": {"plan": "Usage"}}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "network.allowFrom");

    // The demo's link (the finance department into the agency) closes when it is offboarded.
    assert_eq!(
        grants_of(&api, "demo-stttt").await,
        ["demo-sotc/prod:[443]"]
    );
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/tenants/demo-sotc",
            Some("org-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert!(grants_of(&api, "demo-stttt").await.is_empty());
    let (_, links) = api.get("/v1/links?tenant=demo-stttt", "org-admin").await;
    let states: Vec<&str> = links["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|l| l["state"].as_str())
        .collect();
    assert_eq!(states, ["rejected", "revoked"]);
}
