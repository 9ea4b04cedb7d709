//! A province's IT department asks the platform's operator for its organization's allotment,
//! in the capacity-request workflow: platform admins decide, judged against what the agencies
//! hold and the cluster's capacity; the allotment timeline records it. Tried from the other side.

mod support;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;
use support::TestApi;

fn ask(cpu: &str, memory: &str) -> Value {
    json!({"organization": "demo-province", "allotment": {"cpu": cpu, "memory": memory, "storage": "2Ti"},
           "reason": "three more agencies move in next quarter"})
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_org_admin_asks_for_allotment_and_gets_it_once_the_platform_approves(db: PgPool) {
    let api = TestApi::new(db).await;
    let (status, request) = api
        .post("/v1/capacity-requests", "org-admin", ask("40", "160Gi"))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    assert_eq!(request["kind"], "allotment");
    assert_eq!(request["state"], "pending");
    assert_eq!(request["allotment"]["cpu"], "40");
    assert!(request.get("tenant").is_none() && request.get("quota").is_none());
    let id = request["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/v1/capacity-requests/{id}");

    // The province's agencies do not see it; the province cannot approve its own request.
    assert_eq!(
        api.get(&path, "tenant-admin").await.0,
        StatusCode::NOT_FOUND
    );
    let (_, agency_list) = api.get("/v1/capacity-requests", "tenant-admin").await;
    assert!(!agency_list.to_string().contains(&id));
    assert_eq!(api.get(&path, "finance").await.0, StatusCode::OK);
    let (status, _) = api
        .post(&format!("{path}/approve"), "org-admin", json!({}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, org) = api
        .get("/v1/organizations/demo-province", "org-admin")
        .await;
    assert_eq!(
        org["allotment"]["cpu"], "32",
        "nothing changes before approval"
    );

    let (status, approved) = api
        .post(&format!("{path}/approve"), "platform-admin", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "approved");
    let (_, org) = api
        .get("/v1/organizations/demo-province", "org-admin")
        .await;
    assert_eq!(
        org["allotment"],
        json!({"cpu": "40", "memory": "160Gi", "storage": "2Ti"})
    );
    let (_, timeline) = api
        .get(
            "/v1/organizations/demo-province/allotment-changes",
            "finance",
        )
        .await;
    let items = timeline["items"].as_array().cloned().unwrap_or_default();
    assert_eq!(items.len(), 2, "{timeline}");
    assert!(items[0].get("from").is_none(), "the first allotment");
    assert_eq!(items[1]["from"]["cpu"], "32");
    assert_eq!(items[1]["to"]["cpu"], "40");
    assert_eq!(items[1]["capacityRequest"], id.as_str());
    assert_eq!(items[1]["changedBy"], "demo-platform-admin");
    let (_, events) = api
        .get(
            "/v1/audit-events?action=capacity_request.approve",
            "auditor",
        )
        .await;
    assert_eq!(events["items"][0]["objectId"], id.as_str());
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_allotment_never_drops_below_what_agencies_hold_nor_past_the_cluster(db: PgPool) {
    let api = TestApi::new(db).await;
    // The province's agencies hold 4 + 1 + 2 = 7 cores: 6 is refused at once, and nothing is asked.
    let (status, problem) = api
        .post("/v1/capacity-requests", "org-admin", ask("6", "128Gi"))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        problem["type"],
        "https://govcloud.io/problems/below-reserved"
    );
    assert_eq!(
        (
            &problem["resource"],
            &problem["requested"],
            &problem["limit"],
            &problem["overBy"]
        ),
        (&json!("cpu"), &json!("6"), &json!("7"), &json!("1"))
    );
    let (_, list) = api.get("/v1/capacity-requests", "org-admin").await;
    assert!(!list.to_string().contains("\"allotment\""), "{list}");

    // 3 nodes × 16 cores = 48; the ministry holds 8 of it, so the province can have 40, not 41.
    let (_, too_big) = api
        .post("/v1/capacity-requests", "org-admin", ask("41", "128Gi"))
        .await;
    let path = format!(
        "/v1/capacity-requests/{}",
        too_big["id"].as_str().unwrap_or_default()
    );
    let (status, problem) = api
        .post(&format!("{path}/approve"), "platform-admin", json!({}))
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        problem["type"],
        "https://govcloud.io/problems/over-cluster-capacity"
    );
    assert_eq!(problem["overBy"], "1");
    assert_eq!(api.get(&path, "org-admin").await.1["state"], "pending");
    let (status, rejected) = api
        .post(
            &format!("{path}/reject"),
            "platform-admin",
            json!({"reason": "the cluster is full"}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rejected}");
    assert_eq!(rejected["state"], "rejected");
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn a_lowering_approved_for_later_binds_agencies_now_and_lands_on_its_date(db: PgPool) {
    let api = TestApi::new(db.clone()).await;
    let later = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let mut body = ask("7", "128Gi");
    body["effectiveFrom"] = json!(later);
    let (status, request) = api.post("/v1/capacity-requests", "org-admin", body).await;
    assert_eq!(status, StatusCode::CREATED, "{request}");
    let id = request["id"].as_str().unwrap_or_default().to_string();
    let (status, approved) = api
        .post(
            &format!("/v1/capacity-requests/{id}/approve"),
            "platform-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{approved}");
    assert_eq!(approved["state"], "approved-pending");
    assert_eq!(
        api.get("/v1/organizations/demo-province", "org-admin")
            .await
            .1["allotment"]["cpu"],
        "32",
        "not before its date"
    );
    // An agency's raise is judged against the lower allotment already.
    let agency = support::new_request(&api, "demo-stttt", "5").await;
    let (status, problem) = api
        .post(
            &format!("/v1/capacity-requests/{agency}/approve"),
            "org-admin",
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert_eq!(
        problem["type"],
        "https://govcloud.io/problems/over-allotment"
    );

    // Its date comes: the sync loop writes it, once.
    sqlx::query("update capacity_request set effective_from = now() - interval '1 second' where capacity_request_id = $1::uuid")
        .bind(&id)
        .execute(&db)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..2 {
        govcloud_api::app::sync::sync_once(&api.state, false)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
    }
    assert_eq!(
        api.get("/v1/organizations/demo-province", "org-admin")
            .await
            .1["allotment"]["cpu"],
        "7"
    );
    assert_eq!(
        api.get(&format!("/v1/capacity-requests/{id}"), "org-admin")
            .await
            .1["state"],
        "approved"
    );
    let (_, timeline) = api
        .get(
            "/v1/organizations/demo-province/allotment-changes",
            "org-admin",
        )
        .await;
    assert_eq!(
        timeline["items"].as_array().map(Vec::len),
        Some(2),
        "{timeline}"
    );
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn only_an_organizations_own_admins_ask_for_its_allotment(db: PgPool) {
    let api = TestApi::new(db).await;
    for role in ["tenant-admin", "finance", "auditor"] {
        let (status, _) = api
            .post("/v1/capacity-requests", role, ask("40", "160Gi"))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{role}");
    }
    let mut ministry = ask("40", "160Gi");
    ministry["organization"] = json!("demo-ministry");
    let (status, _) = api
        .post("/v1/capacity-requests", "org-admin", ministry)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A request is for a namespace or for an allotment, never both; each needs its fields.
    let (status, problem) = api
        .post(
            "/v1/capacity-requests",
            "org-admin",
            json!({"organization": "demo-province", "tenant": "demo-stttt", "reason": "both"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert_eq!(fields, ["tenant", "allotment"]);
    let (status, problem) = api
        .post(
            "/v1/capacity-requests",
            "org-admin",
            json!({"reason": "neither"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{problem}");
    assert_eq!(problem["errors"][0]["field"], "tenant");
    // The province withdraws its own request; the platform alone rejects.
    let (_, mine) = api
        .post("/v1/capacity-requests", "org-admin", ask("40", "160Gi"))
        .await;
    let path = format!(
        "/v1/capacity-requests/{}",
        mine["id"].as_str().unwrap_or_default()
    );
    let (status, _) = api
        .post(
            &format!("{path}/reject"),
            "org-admin",
            json!({"reason": "no"}),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, cancelled) = api
        .call(
            Method::POST,
            &format!("{path}/cancel"),
            Some("org-admin"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
}
