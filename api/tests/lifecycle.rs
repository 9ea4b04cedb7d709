//! Agencies change through the API: edited with a JSON merge patch (validated as onboarding is,
//! audited, applied to the cluster), suspended and resumed (the pod quota drops to zero and comes
//! back; the quota timeline marks the suspended time). Tried from the other side too.

mod support;

use axum::http::{Method, StatusCode};
use govcloud_tenant::crd::Tenant;
use govcloud_testing::eventually;
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::Api;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::TestApi;

async fn patch(api: &TestApi, tenant: &str, role: &str, body: Value) -> (StatusCode, Value) {
    api.call(
        Method::PATCH,
        &format!("/v1/tenants/{tenant}"),
        Some(role),
        Some(body),
    )
    .await
}

async fn in_cluster(api: &TestApi, name: &str) -> Tenant {
    Api::<Tenant>::all(api.kube())
        .get(name)
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_org_admin_edits_an_agency_and_the_cluster_gets_it(db: PgPool) {
    let api = TestApi::new(db).await;
    let links_before = in_cluster(&api, "demo-stttt").await.spec.network.allow_from;
    assert!(!links_before.is_empty(), "the demo agency has a link");
    let (_, before) = api.get("/v1/tenants/demo-stttt", "org-admin").await;
    let (status, body) = patch(
        &api,
        "demo-stttt",
        "org-admin",
        json!({"displayName": "Sở TT&TT (mới)", "podSecurity": "baseline",
               "network": {"egress": "None"},
               "limits": {"default": {"cpu": "1", "memory": "1Gi"}}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["displayName"], "Sở TT&TT (mới)");
    assert_eq!(body["podSecurity"], "baseline");
    assert_eq!(body["network"]["egress"], "None");
    assert_eq!(body["limits"]["default"]["cpu"], "1");
    // What was not named is kept: the default requests, the owners, the quotas, the links.
    assert_eq!(
        body["limits"]["defaultRequest"],
        before["limits"]["defaultRequest"]
    );
    assert_eq!(body["owners"], before["owners"]);
    assert_eq!(body["namespaces"], before["namespaces"]);
    assert_eq!(
        body["sync"]["specVersion"].as_i64(),
        before["sync"]["specVersion"].as_i64().map(|v| v + 1)
    );
    let t = in_cluster(&api, "demo-stttt").await;
    assert_eq!(t.spec.display_name, "Sở TT&TT (mới)");
    assert_eq!(t.spec.pod_security.as_str(), "baseline");
    assert_eq!(
        t.spec.network.allow_from, links_before,
        "links change only through /v1/links"
    );
    let (_, events) = api
        .get("/v1/audit-events?action=tenant.update", "auditor")
        .await;
    assert_eq!(
        events["items"][0]["detail"]["changed"],
        json!(["displayName", "limits", "podSecurity", "network"])
    );
    assert_eq!(events["items"][0]["actor"], "demo-province-it");

    // The same patch again changes nothing and writes nothing.
    let (status, again) = patch(
        &api,
        "demo-stttt",
        "org-admin",
        json!({"podSecurity": "baseline"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["sync"]["specVersion"], body["sync"]["specVersion"]);
    // `null` resets a field to its default.
    let (_, reset) = patch(&api, "demo-stttt", "org-admin", json!({"limits": null})).await;
    assert_eq!(reset["limits"]["default"]["cpu"], "500m");
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_agency_admin_edits_its_owners_only_and_nobody_else_edits_at_all(db: PgPool) {
    let api = TestApi::new(db).await;
    let owners = json!([{"kind": "Group", "name": "demo:stttt:admins"}, {"kind": "User", "name": "an@demo.gov.vn"}]);
    let (status, body) = patch(
        &api,
        "demo-stttt",
        "tenant-admin",
        json!({"owners": owners}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["owners"], owners);
    let (status, body) = patch(
        &api,
        "demo-stttt",
        "tenant-admin",
        json!({"owners": [], "podSecurity": "baseline"}),
    )
    .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("podSecurity")
    );
    assert_eq!(
        api.get("/v1/tenants/demo-stttt", "org-admin").await.1["owners"],
        owners
    );
    // A sibling agency's admin, another organization's admin: as if it did not exist.
    let (status, _) = patch(
        &api,
        "demo-sotc",
        "tenant-admin",
        json!({"displayName": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = patch(
        &api,
        "demo-ministry-data",
        "org-admin",
        json!({"displayName": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for role in ["finance", "auditor"] {
        let (status, _) = patch(&api, "demo-stttt", role, json!({"displayName": "x"})).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
    let (_, ministry) = api
        .get("/v1/tenants/demo-ministry-data", "platform-admin")
        .await;
    assert_eq!(
        ministry["displayName"],
        "Trung tâm Dữ liệu (ministry data centre)"
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_bad_edit_names_the_field_and_changes_nothing(db: PgPool) {
    let api = TestApi::new(db).await;
    let (_, before) = api.get("/v1/tenants/demo-stttt", "org-admin").await;
    let cases = [
        (json!({"network": {"allowFrom": []}}), "network.allowFrom"),
        (json!({"displayName": null}), "displayName"),
        (json!({"displayName": "  "}), "displayName"),
        (
            json!({"limits": {"default": {"cpu": "lots"}}}),
            "limits.default.cpu",
        ),
        (json!({"podSecurity": "privileged"}), "podSecurity"),
        (json!({"namespaces": []}), "namespaces"),
        (json!({"suspended": true}), "suspended"),
        (json!(["owners"]), "body"),
    ];
    for (body, field) in cases {
        let (status, problem) = patch(&api, "demo-stttt", "org-admin", body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body}: {problem}"
        );
        assert_eq!(problem["errors"][0]["field"], field, "{body}: {problem}");
    }
    let (_, after) = api.get("/v1/tenants/demo-stttt", "org-admin").await;
    assert_eq!(after["sync"]["specVersion"], before["sync"]["specVersion"]);
    assert_eq!(after["displayName"], before["displayName"]);
}

fn pods(q: &ResourceQuota) -> Option<String> {
    q.spec
        .as_ref()?
        .hard
        .as_ref()?
        .get("pods")
        .map(|p| p.0.clone())
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn suspension_drops_the_pod_quota_and_resume_restores_it(db: PgPool) {
    let api = TestApi::new(db).await;
    support::start_operator(&api).await;
    let quotas = Api::<ResourceQuota>::namespaced(api.kube(), "demo-stttt-prod");
    let pods_are = |want: &'static str| {
        let quotas = quotas.clone();
        async move {
            eventually(format!("pods quota {want}"), || async {
                let q = quotas
                    .get("govcloud-quota")
                    .await
                    .map_err(|e| e.to_string())?;
                let got = pods(&q);
                (got.as_deref() == Some(want))
                    .then_some(())
                    .ok_or(format!("{got:?}"))
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        }
    };
    pods_are("50").await;

    // Only the province or the platform suspends, and always says why.
    let suspend = |role: &'static str, body: Value| {
        let api = &api;
        async move { api.post("/v1/tenants/demo-stttt/suspend", role, body).await }
    };
    assert_eq!(
        suspend("tenant-admin", json!({"reason": "x"})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        suspend("org-admin", json!({})).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    let (status, body) = suspend("org-admin", json!({"reason": "unpaid invoice"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["suspended"], true);
    assert_eq!(body["suspendReason"], "unpaid invoice");
    assert_eq!(
        body["namespaces"][0]["quota"]["pods"], 50,
        "the quota itself is kept"
    );
    assert!(in_cluster(&api, "demo-stttt").await.spec.suspended);
    pods_are("0").await;
    let (status, _) = suspend("org-admin", json!({"reason": "again"})).await;
    assert_eq!(status, StatusCode::CONFLICT);
    // The agency still reads its own tenant while suspended.
    assert_eq!(
        api.get("/v1/tenants/demo-stttt", "tenant-admin").await.0,
        StatusCode::OK
    );

    let (status, body) = api
        .post(
            "/v1/tenants/demo-stttt/resume",
            "org-admin",
            json!({"reason": "paid"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["suspended"], false);
    assert!(body.get("suspendReason").is_none());
    pods_are("50").await;

    // The timeline marks the suspended time for each namespace: billing charges no reservation
    // between the two entries.
    let (_, timeline) = api
        .get("/v1/tenants/demo-stttt/quota-changes", "finance")
        .await;
    let prod: Vec<&Value> = timeline["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["namespace"] == "prod")
        .collect();
    let flags: Vec<bool> = prod.iter().map(|c| c["suspended"] == true).collect();
    assert_eq!(flags, [false, true, false], "{timeline}");
    assert_eq!(prod[1]["from"], prod[1]["to"]);
    let (_, events) = api
        .get("/v1/audit-events?tenant=demo-stttt", "auditor")
        .await;
    let actions: Vec<&str> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(
        actions.starts_with(&["tenant.resume", "tenant.suspend"]),
        "{actions:?}"
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_tenant_changed_in_the_cluster_gets_the_apis_spec_back_and_it_is_reported(db: PgPool) {
    use kube::api::{Patch, PatchParams, PostParams};
    let api = TestApi::new(db).await;
    let tenants = Api::<Tenant>::all(api.kube());
    let managed = in_cluster(&api, "demo-stttt").await;
    assert_eq!(
        managed
            .metadata
            .labels
            .unwrap_or_default()
            .get("app.kubernetes.io/managed-by"),
        Some(&"govcloud-api".to_string())
    );
    // Someone with cluster access opens the agency up behind the API's back.
    tenants
        .patch(
            "demo-stttt",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"podSecurity": "baseline", "network": {"egress": "None"}}}),
            ),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // A Tenant made directly in the cluster, which the API does not manage, is left alone.
    let mut own: Tenant = serde_yaml::from_str(include_str!("../../docs/examples/tenant.yaml"))
        .unwrap_or_else(|e| panic!("{e}"));
    own.metadata.name = Some("cluster-only".into());
    own.spec.network.allow_from.clear();
    tenants
        .create(&PostParams::default(), &own)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("the API's watch to see the change", || async {
        let seen = api
            .state
            .cluster
            .seen_spec("demo-stttt")
            .map(|s| s.pod_security.as_str());
        (seen == Some("baseline"))
            .then_some(())
            .ok_or(format!("{seen:?}"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // The periodic full pass puts the API's spec back and says so.
    govcloud_api::app::sync::sync_once(&api.state, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let back = in_cluster(&api, "demo-stttt").await;
    assert_eq!(back.spec.pod_security.as_str(), "restricted");
    assert_eq!(
        back.spec.network.egress,
        govcloud_tenant::crd::Egress::Internet
    );
    let events = Api::<k8s_openapi::api::events::v1::Event>::all(api.kube())
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let reverted: Vec<String> = events
        .items
        .iter()
        .filter(|e| e.reason.as_deref() == Some("SpecReverted"))
        .filter_map(|e| e.note.clone())
        .collect();
    assert_eq!(reverted.len(), 1, "{reverted:?}");
    assert!(reverted[0].contains("podSecurity, network"), "{reverted:?}");
    assert!(
        api.state
            .metrics
            .render()
            .contains("govcloud_api_tenant_spec_reverted_total 1"),
        "{}",
        api.state.metrics.render()
    );
    // The Tenant the API does not know is exactly as it was made.
    let untouched = in_cluster(&api, "cluster-only").await;
    assert_eq!(untouched.spec, own.spec);
    assert!(
        !untouched
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("app.kubernetes.io/managed-by")
    );
}
