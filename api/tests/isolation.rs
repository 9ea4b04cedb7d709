//! Namespace names through the API: a name held by another agency, another organization or the
//! platform is refused and nothing changes; what the API accepts the cluster accepts; a tenant
//! the cluster refuses says so and holds no allotment; offboarding removes an agency and frees
//! its names.

mod support;

use axum::http::{Method, StatusCode};
use govcloud_tenant::crd::Tenant;
use govcloud_testing::eventually;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::{TestApi, new_request};

fn agency(name: &str, organization: &str, namespaces: &[&str]) -> Value {
    json!({
        "name": name, "organization": organization, "displayName": "Cơ quan thử nghiệm",
        "owners": [{"kind": "Group", "name": format!("{name}:admins")}],
        "namespaces": namespaces.iter().map(|n| json!(
            {"name": n, "quota": {"cpu": "500m", "memory": "1Gi", "storage": "5Gi", "pods": 10}}
        )).collect::<Vec<_>>(),
        "billing": {"plan": "Reserved"}
    })
}

/// What a refused request could have changed: tenants, namespaces, timeline and audit rows, and
/// the Tenants in the cluster.
async fn footprint(api: &TestApi) -> (i64, i64, i64, i64, usize) {
    let count = |table: &'static str| {
        let db = api.state.db.clone();
        async move {
            sqlx::query_scalar::<_, i64>(&format!("select count(*) from {table}"))
                .fetch_one(&db)
                .await
                .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let in_cluster = Api::<Tenant>::all(api.kube())
        .list(&Default::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .items
        .len();
    (
        count("tenant").await,
        count("tenant_namespace").await,
        count("quota_change").await,
        count("audit_event").await,
        in_cluster,
    )
}

fn problem_type(body: &Value) -> &str {
    body["type"]
        .as_str()
        .unwrap_or_default()
        .trim_start_matches("https://govcloud.io/problems/")
}

/// Onboarding `body` must answer 409 namespace-taken with `detail`, and change nothing.
async fn refused(api: &TestApi, role: &str, body: Value, detail: &str) {
    let before = footprint(api).await;
    let name = body["name"].as_str().unwrap_or_default().to_string();
    let (status, answer) = api.post("/v1/tenants", role, body).await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(problem_type(&answer), "namespace-taken", "{answer}");
    assert_eq!(answer["detail"], detail);
    assert_eq!(
        footprint(api).await,
        before,
        "a refused onboarding changed something"
    );
    let (status, _) = api
        .get(&format!("/v1/tenants/{name}"), "platform-admin")
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// Like [`refused`], for a name the cluster has only just got: waits until the API's watches
/// have seen it (refusals change nothing, so retrying is harmless).
async fn refused_once_seen(api: &TestApi, role: &str, body: Value, detail: &str) {
    eventually("the API's watches to see the refusal", || async {
        let (s, b) = api.post("/v1/tenants", role, body.clone()).await;
        (s == StatusCode::CONFLICT)
            .then_some(())
            .ok_or(format!("{s}: {b}"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    refused(api, role, body, detail).await;
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_namespace_name_another_tenant_holds_is_refused_in_either_order(db: PgPool) {
    let api = TestApi::new(db).await;
    let taken = |ns: &str| {
        format!("namespace {ns} already belongs to another tenant; choose another namespace name")
    };
    // Across organizations: the province's IT department asks for the ministry agency's
    // namespace (demo-ministry-data + prod) as its own tenant demo-ministry + data-prod. The
    // answer names the namespace, never who holds it.
    refused(
        &api,
        "org-admin",
        agency("demo-ministry", "demo-province", &["data-prod"]),
        &taken("demo-ministry-data-prod"),
    )
    .await;
    // Within one province, in both orders: the longer tenant name first...
    let (status, body) = api
        .post(
            "/v1/tenants",
            "org-admin",
            agency("x-y", "demo-province", &["z"]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    refused(
        &api,
        "org-admin",
        agency("x", "demo-province", &["y-z", "ok"]),
        &taken("x-y-z"),
    )
    .await;
    // ...and the shorter one first.
    let (status, body) = api
        .post(
            "/v1/tenants",
            "org-admin",
            agency("p", "demo-province", &["q-r"]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    refused(
        &api,
        "platform-admin",
        agency("p-q", "demo-ministry", &["r"]),
        &taken("p-q-r"),
    )
    .await;
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn the_database_keeps_a_name_to_one_tenant_even_when_the_cluster_cannot_tell(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let (status, body) = api
        .post(
            "/v1/tenants",
            "org-admin",
            agency("x-y", "demo-province", &["z"]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // A second API replica whose cluster view is empty (a fresh cluster) relies on the database.
    let other = kubesim::KubeSim::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    support::install_crd(&other.client().unwrap_or_else(|e| panic!("{e}"))).await;
    let state = support::state_for(db, &other, govcloud_api::Settings::default()).await;
    let (status, answer) = support::call_with(
        govcloud_api::app(state),
        Method::POST,
        "/v1/tenants",
        Some(api.token("org-admin")),
        Some(agency("x", "demo-province", &["y-z"])),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    assert_eq!(problem_type(&answer), "namespace-taken");
    let (status, _) = api.get("/v1/tenants/x", "platform-admin").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "nothing was stored");
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn platform_namespaces_and_ones_govcloud_did_not_make_are_never_available(db: PgPool) {
    let api = TestApi::new(db).await;
    let reserved = |ns: &str| {
        format!("namespace {ns} is reserved for the platform; choose another namespace name")
    };
    for (tenant, ns, full) in [
        ("kube", "system", "kube-system"),
        ("kube", "public", "kube-public"),
        ("kube", "not-yet", "kube-not-yet"),
        ("govcloud", "system", "govcloud-system"),
        ("ingress", "nginx", "ingress-nginx"),
    ] {
        refused(
            &api,
            "platform-admin",
            agency(tenant, "demo-province", &[ns]),
            &reserved(full),
        )
        .await;
    }
    // A namespace someone made by hand, and one a Tenant the API does not know asks for.
    let client = api.kube();
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "legacy-app"}}))
                .unwrap_or_else(|e| panic!("{e}")),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let rogue: Tenant = serde_json::from_value(json!({
        "apiVersion": "govcloud.io/v1alpha1", "kind": "Tenant", "metadata": {"name": "rogue-a"},
        "spec": {"displayName": "Rogue", "organization": "elsewhere",
                 "namespaces": [{"name": "b", "quota": {"cpu": "1", "memory": "1Gi", "storage": "1Gi", "pods": 1}}],
                 "billing": {"plan": "Usage"}}
    }))
    .unwrap_or_else(|e| panic!("{e}"));
    Api::<Tenant>::all(client)
        .create(&PostParams::default(), &rogue)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    // Once the API's watches have seen them.
    refused_once_seen(
        &api,
        "platform-admin",
        agency("legacy", "demo-province", &["app"]),
        "namespace legacy-app already exists and was not made by govcloud for this tenant; choose another namespace name",
    )
    .await;
    refused_once_seen(
        &api,
        "org-admin",
        agency("rogue", "demo-province", &["a-b"]),
        "namespace rogue-a-b already belongs to another tenant; choose another namespace name",
    )
    .await;
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn what_the_api_accepts_the_cluster_accepts(db: PgPool) {
    let api = TestApi::new(db).await;
    let before = footprint(&api).await;
    let mut long_owner = agency("demo-bqlda", "demo-province", &["prod"]);
    long_owner["owners"][0]["name"] = json!("o".repeat(257));
    let too_many: Vec<String> = (0..33).map(|i| format!("n{i}")).collect();
    let too_many = agency(
        "demo-many",
        "demo-province",
        &too_many.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let mut long_name = agency("demo-x", "demo-province", &["prod"]);
    long_name["namespaces"][0]["name"] = json!("n".repeat(31));
    for (body, field) in [
        (long_owner, "owners[0].name"),
        (too_many, "namespaces"),
        (long_name, "namespaces[0].name"),
    ] {
        let (status, answer) = api.post("/v1/tenants", "org-admin", body).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{answer}");
        let fields: Vec<&str> = answer["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| e["field"].as_str())
            .collect();
        assert!(fields.contains(&field), "{field}: {answer}");
    }
    assert_eq!(footprint(&api).await, before);
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_tenant_the_cluster_refuses_says_why_waits_and_holds_no_allotment(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let reserved_cpu = |api: &TestApi| {
        let api_state = api.state.clone();
        let token = api.token("org-admin").to_string();
        async move {
            let (_, body) = support::call_with(
                govcloud_api::app(api_state),
                Method::GET,
                "/v1/organizations/demo-province",
                Some(&token),
                None,
            )
            .await;
            body["reserved"]["cpu"].clone()
        }
    };
    let before = reserved_cpu(&api).await;
    let (status, body) = api
        .post(
            "/v1/tenants",
            "org-admin",
            agency("demo-old", "demo-province", &["prod"]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_ne!(
        reserved_cpu(&api).await,
        before,
        "a running tenant holds allotment"
    );
    // A row from before the API checked owner names (as an older release stored it), never
    // applied: the cluster's schema refuses it.
    sqlx::query(
        "update tenant set owners = $1, applied_version = 0, spec_version = 2 where name = 'demo-old'",
    )
    .bind(json!([{"kind": "Group", "name": "o".repeat(300)}]))
    .execute(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    Api::<Tenant>::all(api.kube())
        .delete("demo-old", &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    govcloud_api::app::sync::sync_once(&api.state, false)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, shown) = api.get("/v1/tenants/demo-old", "org-admin").await;
    assert_eq!(status, StatusCode::OK);
    let sync = &shown["sync"];
    assert_eq!(sync["state"], "Refused", "{shown}");
    let error = sync["error"].as_str().unwrap_or_default();
    assert!(
        error.starts_with("the cluster refused it: ") && error.contains("spec.owners[0].name"),
        "in plain words: {error}"
    );
    assert!(
        !error.contains("ErrorResponse"),
        "no client internals: {error}"
    );
    assert_eq!(sync["attempts"], 1);
    assert!(sync["nextAttemptAt"].is_string());
    assert_eq!(
        reserved_cpu(&api).await,
        before,
        "a tenant the cluster refused holds none of the allotment"
    );
    // The next passes wait out the backoff instead of trying (and logging) every time.
    for _ in 0..3 {
        govcloud_api::app::sync::sync_once(&api.state, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    let (_, shown) = api.get("/v1/tenants/demo-old", "org-admin").await;
    assert_eq!(shown["sync"]["attempts"], 1, "{shown}");
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn offboarding_removes_the_agency_then_frees_its_names(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    support::start_operator(&api).await;
    let (status, body) = api
        .post(
            "/v1/tenants",
            "org-admin",
            agency("demo-bqlda", "demo-province", &["prod"]),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let namespaces = Api::<Namespace>::all(api.kube());
    eventually("namespace demo-bqlda-prod", || async {
        namespaces.get_opt("demo-bqlda-prod").await.ok()?
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let request = new_request(&api, "demo-bqlda", "1").await;

    // A tenant admin cannot offboard even its own agency.
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/tenants/demo-stttt",
            Some("tenant-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let (status, body) = api
        .call(
            Method::DELETE,
            "/v1/tenants/demo-bqlda",
            Some("org-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["lifecycle"], "Terminating");
    assert_eq!(body["sync"]["state"], "Removing");
    assert_eq!(body["offboardedBy"], "demo-province-it");
    // Asking again changes nothing.
    let (status, _) = api
        .call(
            Method::DELETE,
            "/v1/tenants/demo-bqlda",
            Some("platform-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    // A terminating agency takes no more changes.
    let (status, body) = api
        .post(
            "/v1/capacity-requests",
            "org-admin",
            json!({"tenant": "demo-bqlda", "namespace": "prod", "quota": {"cpu": "1"}, "reason": "late"}),
        )
        .await;
    assert_eq!(
        (status, problem_type(&body)),
        (StatusCode::CONFLICT, "tenant-offboarding")
    );
    let (_, body) = api
        .get(&format!("/v1/capacity-requests/{request}"), "org-admin")
        .await;
    assert_eq!(body["state"], "cancelled", "{body}");

    // The operator deletes its namespaces, then the Tenant goes; the sync pass records it gone.
    eventually("demo-bqlda gone from the cluster", || async {
        govcloud_api::app::sync::remove_offboarded(&api.state)
            .await
            .ok()?;
        let (s, _) = api.get("/v1/tenants/demo-bqlda", "org-admin").await;
        (s == StatusCode::NOT_FOUND).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        namespaces
            .get_opt("demo-bqlda-prod")
            .await
            .ok()
            .flatten()
            .is_none()
    );
    let (_, list) = api.get("/v1/tenants", "org-admin").await;
    assert!(!list.to_string().contains("demo-bqlda"), "{list}");
    // Its reserved quota ends in the timeline; the history stays in the database.
    let ended: Vec<(i64, String)> = sqlx::query_as(
        "select q.to_cpu_milli, q.changed_by from quota_change q join tenant t using (tenant_id)
         where t.name = 'demo-bqlda' order by q.quota_change_id desc limit 1",
    )
    .fetch_all(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ended, [(0, "demo-province-it".to_string())]);
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from audit_event where object_id = 'demo-bqlda' order by audit_event_id",
    )
    .fetch_all(&db)
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(actions, ["tenant.create", "tenant.delete", "tenant.gone"]);

    // The namespace name is free for someone else; the tenant name is never reused.
    // (once the API's namespace watch has seen the old namespace go)
    eventually("the freed name to be taken again", || async {
        let (s, b) = api
            .post(
                "/v1/tenants",
                "org-admin",
                agency("demo", "demo-province", &["bqlda-prod"]),
            )
            .await;
        (s == StatusCode::CREATED)
            .then_some(())
            .ok_or(format!("{s}: {b}"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let (status, body) = api
        .post(
            "/v1/tenants",
            "org-admin",
            agency("demo-bqlda", "demo-province", &["other"]),
        )
        .await;
    assert_eq!(
        (status, problem_type(&body)),
        (StatusCode::CONFLICT, "conflict"),
        "{body}"
    );
}
