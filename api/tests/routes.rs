//! Every route of the API on a real PostgreSQL (`#[sqlx::test]`) and a simulated cluster.

mod support;

use axum::http::{Method, StatusCode};
use govcloud_tenant::crd::Tenant;
use govcloud_testing::eventually;
use kube::api::Api;
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{TestApi, new_request};

fn field_names(problem: &Value) -> Vec<String> {
    problem["errors"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["field"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn audit_actions(api: &TestApi, query: &str) -> Vec<String> {
    let (status, body) = api
        .get(&format!("/v1/audit-events?{query}"), "auditor")
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["action"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

async fn tenant_cpu_in_cluster(api: &TestApi, tenant: &str, ns: &str) -> String {
    let t = Api::<Tenant>::all(api.kube())
        .get(tenant)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    t.spec
        .namespaces
        .iter()
        .find(|n| n.name == ns)
        .map(|n| n.quota.cpu.0.clone())
        .unwrap_or_else(|| panic!("no namespace {ns}"))
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn organizations_are_created_listed_and_shown(db: PgPool) {
    let api = TestApi::new(db).await;
    let new = json!({"name": "ha-tinh", "displayName": "Tỉnh Hà Tĩnh",
                     "allotment": {"cpu": "16", "memory": "64Gi", "storage": "1Ti"}});
    let (status, body) = api
        .post("/v1/organizations", "platform-admin", new.clone())
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["allotment"],
        json!({"cpu": "16", "memory": "64Gi", "storage": "1Ti"})
    );
    assert_eq!(body["reserved"]["cpu"], "0");

    let (status, body) = api.post("/v1/organizations", "platform-admin", new).await;
    assert_eq!(
        (status, body["type"].as_str()),
        (
            StatusCode::CONFLICT,
            Some("https://govcloud.io/problems/conflict")
        )
    );

    let (status, body) = api
        .post("/v1/organizations", "platform-admin",
              json!({"name": "Bad_Name", "displayName": " ", "allotment": {"cpu": "lots", "memory": "1Gi", "storage": "-1"}}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_names(&body),
        ["name", "displayName", "allotment.cpu", "allotment.storage"]
    );

    // The demo province's tenants reserve 4+1+2 CPU.
    let (status, body) = api.get("/v1/organizations/demo-province", "finance").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body["reserved"],
        json!({"cpu": "7", "memory": "28Gi", "storage": "170Gi"})
    );

    // Pages follow each other without overlap.
    let (_, first) = api.get("/v1/organizations?limit=2", "platform-admin").await;
    let names: Vec<&str> = first["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|o| o["name"].as_str())
        .collect();
    assert_eq!(names, ["demo-ministry", "demo-province"]);
    let cursor = first["nextCursor"]
        .as_str()
        .unwrap_or_else(|| panic!("a full page has a cursor"));
    let (_, second) = api
        .get(
            &format!("/v1/organizations?limit=2&cursor={cursor}"),
            "platform-admin",
        )
        .await;
    assert_eq!(second["items"][0]["name"], "ha-tinh");
    assert!(second.get("nextCursor").is_none());

    let (status, _) = api.get("/v1/organizations?limit=0", "platform-admin").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .get("/v1/organizations?cursor=%%%", "platform-admin")
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        audit_actions(&api, "action=organization.create&limit=1").await,
        ["organization.create"]
    );
}

fn agency(name: &str, cpu: &str) -> Value {
    json!({
        "name": name, "organization": "demo-province", "displayName": "Ban Quản lý dự án",
        "owners": [{"kind": "Group", "name": "bqlda:admins"}],
        "namespaces": [{"name": "prod", "quota": {"cpu": cpu, "memory": "4Gi", "storage": "10Gi", "pods": 20}}],
        "billing": {"plan": "Reserved", "costCenter": "BQLDA"}
    })
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn onboarding_applies_the_tenant_and_starts_its_timeline(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, body) = api
        .post("/v1/tenants", "org-admin", agency("demo-bqlda", "2"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        body["sync"]["appliedVersion"], 1,
        "the cluster has it at once: {body}"
    );
    assert_eq!(tenant_cpu_in_cluster(&api, "demo-bqlda", "prod").await, "2");

    let (status, body) = api
        .get("/v1/tenants/demo-bqlda/quota-changes", "org-admin")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["to"]["cpu"], "2");
    assert!(body["items"][0].get("from").is_none());
    assert_eq!(body["items"][0]["changedBy"], "demo-province-it");

    let (status, _) = api
        .post("/v1/tenants", "org-admin", agency("demo-bqlda", "2"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let mut bad = agency("Demo", "0.0001");
    bad["namespaces"][0]["quota"]["pods"] = json!(-5);
    bad["limits"] = json!({"defaultRequest": {"cpu": "2", "memory": "128Mi"}, "default": {"cpu": "1", "memory": "512Mi"}});
    let (status, body) = api.post("/v1/tenants", "org-admin", bad).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_names(&body),
        [
            "namespaces[0].quota.cpu",
            "namespaces[0].quota.pods",
            "name",
            "limits.defaultRequest.cpu"
        ]
    );

    // The province has 32 CPU and 7 + 2 reserved: 24 more is one too many.
    let (status, body) = api
        .post("/v1/tenants", "org-admin", agency("demo-big", "24"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["type"], "https://govcloud.io/problems/over-allotment");
    assert_eq!(
        (body["resource"].as_str(), body["overBy"].as_str()),
        (Some("cpu"), Some("1"))
    );
    let (status, _) = api.get("/v1/tenants/demo-big", "platform-admin").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a refused onboarding leaves nothing behind"
    );

    let (status, body) = api
        .get("/v1/tenants?organization=demo-province", "platform-admin")
        .await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<&str> = body["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert_eq!(names, ["demo-bqlda", "demo-sotc", "demo-stttt"]);
    assert_eq!(
        audit_actions(&api, "tenant=demo-bqlda").await,
        ["tenant.create"]
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_approved_request_changes_the_quota_once_and_is_recorded(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, req) = api
        .post("/v1/capacity-requests", "tenant-admin",
              json!({"tenant": "demo-stttt", "namespace": "prod", "quota": {"cpu": "6", "memory": "24Gi"}, "reason": "tax season"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{req}");
    assert_eq!(req["state"], "pending");
    let id = req["id"].as_str().unwrap_or_default().to_string();

    let (status, body) = api
        .get(
            "/v1/capacity-requests?tenant=demo-stttt&state=pending",
            "org-admin",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"][0]["id"], id.as_str());

    let (status, body) = api
        .post(
            &format!("/v1/capacity-requests/{id}/approve"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "approved", "{body}");
    assert_eq!(body["decidedBy"], "demo-province-it");
    assert_eq!(tenant_cpu_in_cluster(&api, "demo-stttt", "prod").await, "6");

    let (status, body) = api
        .post(
            &format!("/v1/capacity-requests/{id}/approve"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "approving twice: {body}");

    let (_, timeline) = api
        .get("/v1/tenants/demo-stttt/quota-changes", "tenant-admin")
        .await;
    let changes: Vec<&Value> = timeline["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["capacityRequest"] == id.as_str())
        .collect();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        (
            changes[0]["from"]["cpu"].as_str(),
            changes[0]["to"]["cpu"].as_str()
        ),
        (Some("4"), Some("6"))
    );
    assert_eq!(
        (
            changes[0]["from"]["memory"].as_str(),
            changes[0]["to"]["memory"].as_str()
        ),
        (Some("16Gi"), Some("24Gi"))
    );
    assert_eq!(
        changes[0]["to"]["storage"], "100Gi",
        "what was not asked for stays"
    );

    let actions = audit_actions(&api, "tenant=demo-stttt&limit=3").await;
    assert_eq!(
        actions,
        [
            "capacity_request.applied",
            "capacity_request.approve",
            "capacity_request.create"
        ]
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn bad_requests_are_refused_and_change_nothing(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, body) = api
        .post("/v1/capacity-requests", "tenant-admin",
              json!({"tenant": "demo-stttt", "namespace": "nope", "quota": {}, "reason": "", "effectiveFrom": "2020-01-01T00:00:00Z"}))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        field_names(&body),
        ["namespace", "quota", "reason", "effectiveFrom"]
    );
    let (status, body) = api
        .call(
            Method::POST,
            "/v1/capacity-requests",
            Some("tenant-admin"),
            Some(json!({"tenant": 1})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let (status, _) = api
        .get("/v1/capacity-requests/not-a-uuid", "platform-admin")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, body) = api.get("/v1/capacity-requests", "platform-admin").await;
    assert_eq!(body["items"], json!([]));

    // Text PostgreSQL cannot store is the caller's fault, not a server error.
    let (status, _) = api.get("/v1/tenants/demo%00stttt", "platform-admin").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .post(
            "/v1/capacity-requests",
            "tenant-admin",
            json!({"tenant": "demo-stttt", "namespace": "prod", "quota": {"cpu": "5"}, "reason": "a\u{0}b"}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // A rejection needs a reason; a rejected request cannot be approved.
    let id = new_request(&api, "demo-stttt", "5").await;
    let (status, body) = api
        .post(
            &format!("/v1/capacity-requests/{id}/reject"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, field_names(&body)),
        (StatusCode::UNPROCESSABLE_ENTITY, vec!["reason".to_string()])
    );
    let (status, body) = api
        .post(
            &format!("/v1/capacity-requests/{id}/reject"),
            "org-admin",
            json!({"reason": "use staging first"}),
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("rejected"))
    );
    assert_eq!(body["decisionReason"], "use staging first");
    let (status, _) = api
        .post(
            &format!("/v1/capacity-requests/{id}/approve"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A tenant admin withdraws its own request, with or without a body.
    let id = new_request(&api, "demo-stttt", "5").await;
    let (status, body) = api
        .call(
            Method::POST,
            &format!("/v1/capacity-requests/{id}/cancel"),
            Some("tenant-admin"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("cancelled")),
        "{body}"
    );
    assert_eq!(tenant_cpu_in_cluster(&api, "demo-stttt", "prod").await, "4");
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn approvals_past_the_allotment_or_the_cluster_are_refused(db: PgPool) {
    let settings = govcloud_api::Settings {
        overcommit: govcloud_api::domain::capacity::Overcommit {
            cpu: "1.5".parse().unwrap_or_default(),
            memory: rust_decimal::Decimal::ONE,
        },
        ..Default::default()
    };
    let api = TestApi::with_settings(db.clone(), settings).await;
    let id = new_request(&api, "demo-stttt", "30").await;
    let (status, body) = api
        .post(
            &format!("/v1/capacity-requests/{id}/approve"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["type"], "https://govcloud.io/problems/over-allotment");
    assert_eq!(
        body["detail"],
        "this would bring organization demo-province's cpu quotas to 33, past its allotment of 32 by 1"
    );
    let (_, r) = api
        .get(&format!("/v1/capacity-requests/{id}"), "org-admin")
        .await;
    assert_eq!(r["state"], "pending", "a refused approval changes nothing");

    // With a large allotment, the cluster is the limit: 3 nodes × 16 CPU × 1.5 = 72 CPU,
    // and the demo tenants hold 9.
    sqlx::query(
        "update organization set allotment_cpu_milli = 1000000 where name = 'demo-province'",
    )
    .execute(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let id = new_request(&api, "demo-stttt", "70").await;
    let (status, body) = api
        .post(
            &format!("/v1/capacity-requests/{id}/approve"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(
        body["type"],
        "https://govcloud.io/problems/over-cluster-capacity"
    );
    assert_eq!(
        (
            body["resource"].as_str(),
            body["limit"].as_str(),
            body["overBy"].as_str()
        ),
        (Some("cpu"), Some("72"), Some("3"))
    );
    let id = new_request(&api, "demo-stttt", "67").await;
    let (status, body) = api
        .post(
            &format!("/v1/capacity-requests/{id}/approve"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "exactly at the limit: {body}");
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_request_for_a_later_date_waits_for_it(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let later = (chrono::Utc::now() + chrono::Duration::days(9)).to_rfc3339();
    let (status, req) = api
        .post("/v1/capacity-requests", "tenant-admin",
              json!({"tenant": "demo-stttt", "namespace": "prod", "quota": {"cpu": "8"}, "reason": "next month", "effectiveFrom": later}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = req["id"].as_str().unwrap_or_default().to_string();
    let (status, body) = api
        .post(
            &format!("/v1/capacity-requests/{id}/approve"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("approved-pending"))
    );

    // A second change is judged with the first one counted: 32 - (7 + 4) = 21 left, and
    // demo-sotc going from 2 to 24 CPU takes 22.
    let id2 = new_request(&api, "demo-sotc", "24").await;
    let (status, body) = api
        .post(
            &format!("/v1/capacity-requests/{id2}/approve"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(
        (status, body["overBy"].as_str()),
        (StatusCode::CONFLICT, Some("1")),
        "{body}"
    );

    govcloud_api::app::sync::sync_once(&api.state, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        tenant_cpu_in_cluster(&api, "demo-stttt", "prod").await,
        "4",
        "not before its date"
    );

    // Its date comes.
    let due = chrono::Utc::now() - chrono::Duration::seconds(1);
    sqlx::query(
        "update capacity_request set effective_from = $1 where capacity_request_id = $2::uuid",
    )
    .bind(due)
    .bind(&id)
    .execute(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    govcloud_api::app::sync::sync_once(&api.state, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    govcloud_api::app::sync::sync_once(&api.state, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(tenant_cpu_in_cluster(&api, "demo-stttt", "prod").await, "8");
    let (_, body) = api
        .get(&format!("/v1/capacity-requests/{id}"), "tenant-admin")
        .await;
    assert_eq!(body["state"], "approved");
    let (_, timeline) = api
        .get("/v1/tenants/demo-stttt/quota-changes", "tenant-admin")
        .await;
    let entries: Vec<&Value> = timeline["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["capacityRequest"] == id.as_str())
        .collect();
    assert_eq!(entries.len(), 1, "written once, however many passes run");
    let at: chrono::DateTime<chrono::Utc> = entries[0]["effectiveAt"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        (at - due).num_milliseconds().abs() < 1,
        "in effect from its date, not from when the loop ran"
    );
    assert_eq!(
        audit_actions(&api, "tenant=demo-stttt&limit=2").await,
        ["capacity_request.applied", "capacity_request.effective"]
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_approval_while_the_cluster_is_down_is_applied_when_it_returns(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let addr = api.sim.addr();
    let id = new_request(&api, "demo-stttt", "5").await;
    let TestApi {
        state, sim, tokens, ..
    } = api;
    sim.shutdown().await;

    let (status, body) = support::call_with(
        govcloud_api::app(state.clone()),
        Method::POST,
        &format!("/v1/capacity-requests/{id}/approve"),
        tokens.get("org-admin").map(String::as_str),
        None,
    )
    .await;
    assert_eq!(
        (status, body["state"].as_str()),
        (StatusCode::OK, Some("approved-pending")),
        "{body}"
    );
    let left = govcloud_api::app::sync::sync_once(&state, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(left, 1, "still waiting for the cluster");

    // The cluster comes back (empty: as after a restore).
    let sim = kubesim::KubeSim::start_with(kubesim::Config::default(), addr)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    support::install_crd(&sim.client().unwrap_or_else(|e| panic!("{e}"))).await;
    assert_eq!(
        govcloud_api::app::sync::sync_once(&state, true)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        0
    );
    assert_eq!(
        govcloud_api::app::sync::sync_once(&state, true)
            .await
            .unwrap_or_else(|e| panic!("{e}")),
        0
    );
    let t = Api::<Tenant>::all(sim.client().unwrap_or_else(|e| panic!("{e}")))
        .get("demo-stttt")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.spec.namespaces[0].quota.cpu.0, "5");
    let written: i64 = sqlx::query_scalar(
        "select count(*) from quota_change where capacity_request_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(written, 1, "nothing applied twice");
    let state_now: String = sqlx::query_scalar(
        "select state from capacity_request where capacity_request_id = $1::uuid",
    )
    .bind(&id)
    .fetch_one(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(state_now, "approved");
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_kubeconfig_is_issued_for_the_deployer_of_a_namespace(db: PgPool) {
    let api = TestApi::new(db).await;
    let issue = || {
        api.post(
            "/v1/tenants/demo-stttt/kubeconfig",
            "tenant-admin",
            json!({"namespace": "prod"}),
        )
    };
    let (status, body) = issue().await;
    assert_eq!(
        status,
        StatusCode::CONFLICT,
        "no operator has made the deployer yet: {body}"
    );
    assert_eq!(
        body["type"],
        "https://govcloud.io/problems/namespace-not-ready"
    );
    support::start_operator(&api).await;
    let body = eventually(
        "a kubeconfig once the operator made the deployer",
        || async {
            let (status, body) = issue().await;
            (status == StatusCode::OK)
                .then_some(body.clone())
                .ok_or(format!("{status}: {body}"))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["namespace"], "demo-stttt-prod");
    let expires: chrono::DateTime<chrono::Utc> = body["expiresAt"]
        .as_str()
        .unwrap_or_default()
        .parse()
        .unwrap_or_else(|e| panic!("{e}"));
    let ttl = expires - chrono::Utc::now();
    assert!(
        ttl > chrono::Duration::minutes(55) && ttl <= chrono::Duration::minutes(60),
        "{ttl}"
    );
    let kc: Value = serde_yaml::from_str(body["kubeconfig"].as_str().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"],
        api.sim.url().as_str()
    );
    assert_eq!(kc["contexts"][0]["context"]["namespace"], "demo-stttt-prod");
    assert_eq!(kc["current-context"], "demo-stttt-prod");
    let token = kc["users"][0]["user"]["token"].as_str().unwrap_or_default();
    let claims = token.split('.').nth(1).unwrap_or_default();
    use base64::Engine;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(claims)
            .unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        claims["sub"],
        "system:serviceaccount:demo-stttt-prod:deployer"
    );

    let (status, body) = api
        .post(
            "/v1/tenants/demo-stttt/kubeconfig",
            "tenant-admin",
            json!({"namespace": "dev"}),
        )
        .await;
    assert_eq!(
        (status, field_names(&body)),
        (
            StatusCode::UNPROCESSABLE_ENTITY,
            vec!["namespace".to_string()]
        )
    );
    assert_eq!(
        audit_actions(&api, "action=kubeconfig.issue").await,
        ["kubeconfig.issue"]
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn the_audit_log_pages_newest_first(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, first) = api.get("/v1/audit-events?limit=2", "platform-admin").await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<i64> = first["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["id"].as_i64())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] > ids[1]);
    let cursor = first["nextCursor"].as_str().unwrap_or_default();
    let (_, second) = api
        .get(
            &format!("/v1/audit-events?limit=2&cursor={cursor}"),
            "platform-admin",
        )
        .await;
    assert!(second["items"][0]["id"].as_i64().unwrap_or(i64::MAX) < ids[1]);
    // The seed's onboardings are there, made by the seeding platform admin.
    let (_, body) = api
        .get("/v1/audit-events?action=tenant.create", "auditor")
        .await;
    assert_eq!(body["items"].as_array().map(Vec::len), Some(3));
    assert_eq!(body["items"][0]["actor"], "demo-platform-admin");
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn health_metrics_openapi_and_unknown_routes(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, _) = api.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let _ = api.get("/v1/tenants/demo-stttt", "tenant-admin").await;
    let (status, body) = api.call(Method::GET, "/metrics", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let text = body.as_str().unwrap_or_default();
    assert!(text.contains(r#"govcloud_api_http_requests_total{method="GET",route="/v1/tenants/{name}",status="200"} 1"#), "{text}");
    let (status, doc) = api.call(Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["paths"]["/v1/capacity-requests/{id}/approve"]["post"]["responses"]["409"].is_object()
    );
    let (status, body) = api
        .call(Method::GET, "/v1/nothing", Some("auditor"), None)
        .await;
    assert_eq!(
        (status, body["type"].as_str()),
        (
            StatusCode::NOT_FOUND,
            Some("https://govcloud.io/problems/not-found")
        )
    );
    let (status, _) = api
        .call(Method::DELETE, "/v1/tenants", Some("auditor"), None)
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _) = api.call(Method::GET, "/v1/tenants", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn the_full_pass_writes_only_what_drifted(db: PgPool) {
    let api = TestApi::new(db).await;
    let tenants = Api::<Tenant>::all(api.kube());
    // Once the API's watch has seen the seeded tenants, a full pass writes nothing.
    eventually("a full pass that writes nothing", || async {
        match sync_writes(&api).await {
            0 => Ok(()),
            n => Err(format!("{n} writes")),
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let before = api.sim.resource_version();
    let left = govcloud_api::app::sync::sync_once(&api.state, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (left, api.sim.resource_version()),
        (0, before),
        "nothing drifted, nothing written"
    );

    // Someone deletes a Tenant behind the API's back: the next full pass brings it back.
    tenants
        .delete("demo-sotc", &Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    eventually("demo-sotc back in the cluster", || async {
        govcloud_api::app::sync::sync_once(&api.state, true)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        tenants.get_opt("demo-sotc").await.ok().flatten()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
}

/// How many writes a full pass makes now.
async fn sync_writes(api: &TestApi) -> u64 {
    let before = api.sim.resource_version();
    govcloud_api::app::sync::sync_once(&api.state, true)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    api.sim.resource_version() - before
}

/// A new request is written in one statement with its audit event: what the answer says is what
/// is stored, and the audit log names it.
#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_new_capacity_request_answers_what_is_stored_and_is_audited(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, made) = api
        .post(
            "/v1/capacity-requests",
            "tenant-admin",
            json!({"tenant": "demo-stttt", "namespace": "prod", "quota": {"cpu": "6", "pods": 60},
                   "reason": "tuyển sinh", "effectiveFrom": (chrono::Utc::now() + chrono::Duration::days(3))}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{made}");
    let id = made["id"].as_str().unwrap_or_default();
    let (status, stored) = api
        .get(&format!("/v1/capacity-requests/{id}"), "tenant-admin")
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(made, stored);
    let (_, events) = api
        .get("/v1/audit-events?action=capacity_request.create", "auditor")
        .await;
    let event = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|e| e["objectId"] == id)
        .cloned()
        .unwrap_or_default();
    assert_eq!(event["actor"], "demo-stttt-admin", "{events}");
    assert_eq!(event["tenant"], "demo-stttt", "{event}");
    assert_eq!(event["detail"]["reason"], "tuyển sinh", "{event}");
}
