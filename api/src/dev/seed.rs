//! The demo data of `govcloud dev`: a province with agencies, a ministry with one (so that
//! "someone else's tenant" can be tried), and one user per role with an API token.
//!
//! Everything but the first platform admin goes through the API's own routes, so the demo is
//! validated, applied to the cluster and audited like any real onboarding. The tokens file is
//! readable by its owner only.

use std::collections::BTreeMap;
use std::path::Path;

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::db::principals::{self, NewPrincipal};
use crate::domain::principal::Role;
use crate::domain::token;
use crate::{AppState, app, db};

pub const PROVINCE: &str = "demo-province";
pub const MINISTRY: &str = "demo-ministry";
/// The agency the demo tenant admin belongs to.
pub const AGENCY: &str = "demo-stttt";
pub const OTHER_AGENCY: &str = "demo-sotc";
pub const MINISTRY_AGENCY: &str = "demo-ministry-data";

/// The seeded users: name, role, organization, tenant.
const USERS: &[(&str, Role, Option<&str>, Option<&str>)] = &[
    ("demo-platform-admin", Role::PlatformAdmin, None, None),
    ("demo-province-it", Role::OrgAdmin, Some(PROVINCE), None),
    ("demo-stttt-admin", Role::TenantAdmin, None, Some(AGENCY)),
    ("demo-province-finance", Role::Finance, Some(PROVINCE), None),
    ("demo-auditor", Role::Auditor, None, None),
    // The operator's identity: it posts usage and can do nothing else.
    ("demo-operator-metering", Role::Metering, None, None),
];

fn organizations() -> Vec<Value> {
    vec![
        json!({"name": PROVINCE, "displayName": "Tỉnh Demo (demo province)",
               "allotment": {"cpu": "32", "memory": "128Gi", "storage": "2Ti"}}),
        json!({"name": MINISTRY, "displayName": "Bộ Demo (demo ministry)",
               "allotment": {"cpu": "8", "memory": "32Gi", "storage": "500Gi"}}),
    ]
}

fn tenants() -> Vec<Value> {
    vec![
        json!({
            "name": AGENCY, "organization": PROVINCE,
            "displayName": "Sở Thông tin và Truyền thông (Department of Information and Communications)",
            "owners": [{"kind": "Group", "name": "demo:stttt:admins"}],
            "namespaces": [
                {"name": "prod", "quota": {"cpu": "4", "memory": "16Gi", "storage": "100Gi", "pods": 50, "loadBalancers": 1}},
                {"name": "staging", "quota": {"cpu": "1", "memory": "4Gi", "storage": "20Gi", "pods": 20}}
            ],
            "network": {"egress": "Internet"},
            "billing": {"plan": "Reserved", "costCenter": "DEMO-STTTT"}
        }),
        json!({
            "name": OTHER_AGENCY, "organization": PROVINCE,
            "displayName": "Sở Tài chính (Department of Finance)",
            "owners": [{"kind": "Group", "name": "demo:sotc:admins"}],
            "namespaces": [
                {"name": "prod", "quota": {"cpu": "2", "memory": "8Gi", "storage": "50Gi", "pods": 30}}
            ],
            "billing": {"plan": "Usage", "costCenter": "DEMO-SOTC"}
        }),
        json!({
            "name": MINISTRY_AGENCY, "organization": MINISTRY,
            "displayName": "Trung tâm Dữ liệu (ministry data centre)",
            "namespaces": [
                {"name": "prod", "quota": {"cpu": "2", "memory": "8Gi", "storage": "100Gi", "pods": 30}}
            ],
            "billing": {"plan": "Reserved", "costCenter": "DEMO-MIN"}
        }),
    ]
}

async fn post(state: &AppState, token: &str, path: &str, body: &Value) -> Result<Value, String> {
    call(state, Method::POST, token, path, body).await
}

async fn call(
    state: &AppState,
    method: Method,
    token: &str,
    path: &str,
    body: &Value,
) -> Result<Value, String> {
    let request = Request::builder()
        .method(method.clone())
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .map_err(|e| e.to_string())?;
    let response = app(state.clone())
        .oneshot(request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| format!("{method} {path}: {e}"));
    }
    Err(format!(
        "{method} {path} answered {status}: {}",
        String::from_utf8_lossy(&bytes)
    ))
}

async fn token_for(state: &AppState, name: &str) -> Result<String, String> {
    let id = principals::id_by_name(&state.db, name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("principal {name} is missing"))?;
    let token = token::generate();
    principals::insert_token(&state.db, id, &token::hash(&token), None)
        .await
        .map_err(|e| e.to_string())?;
    Ok(token)
}

/// Seeds an empty database, and makes sure `tokens_path` holds a working token per role.
/// Answers the tokens by role.
pub async fn seed(
    state: &AppState,
    tokens_path: &Path,
) -> Result<BTreeMap<String, String>, String> {
    let seeded = db::organizations::by_name(&state.db, PROVINCE)
        .await
        .map_err(|e| e.to_string())?
        .is_some();
    if seeded && let Ok(text) = std::fs::read_to_string(tokens_path) {
        let tokens: BTreeMap<String, String> = serde_json::from_str(&text).unwrap_or_default();
        let mut valid = !tokens.is_empty();
        for t in tokens.values() {
            valid &= principals::by_token_hash(&state.db, &token::hash(t))
                .await
                .map_err(|e| e.to_string())?
                .is_some();
        }
        if valid {
            return Ok(tokens);
        }
    }
    let mut tokens = BTreeMap::new();
    if !seeded {
        let (admin, _, _, _) = USERS[0];
        principals::insert(
            &state.db,
            NewPrincipal {
                name: admin,
                role: Role::PlatformAdmin,
                organization_id: None,
                tenant_id: None,
                oidc_subject: None,
                created_by: "system:dev",
            },
        )
        .await
        .map_err(|e| e.to_string())?;
        let token = token_for(state, admin).await?;
        for o in organizations() {
            post(state, &token, "/v1/organizations", &o).await?;
        }
        for t in tenants() {
            post(state, &token, "/v1/tenants", &t).await?;
        }
        tokens.insert(Role::PlatformAdmin.to_string(), token.clone());
        post(
            state,
            &token,
            "/v1/rate-cards",
            &rate_card(chrono::Utc::now())?,
        )
        .await?;
        if let Some(vat) = next_vat(chrono::Utc::now()) {
            let cards = app::rate_cards::list(
                state,
                &crate::domain::principal::Caller {
                    name: admin.into(),
                    role: Role::PlatformAdmin,
                    organization_id: None,
                    tenant_id: None,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
            if let Some(card) = cards.first() {
                post(
                    state,
                    &token,
                    &format!("/v1/rate-cards/{}/vat-rates", card.id),
                    &vat,
                )
                .await?;
            }
        }
        // The Department of Finance reads the agency's API over a link that the agency approved.
        let link = json!({"from": {"tenant": OTHER_AGENCY, "namespace": "prod"},
                          "to": {"tenant": AGENCY}, "ports": [443],
                          "purpose": "the finance department reads the agency's budget figures"});
        let asked = post(state, &token, "/v1/links", &link).await?;
        let id = asked["id"]
            .as_str()
            .ok_or_else(|| "asking for the demo link answered no id".to_string())?;
        post(
            state,
            &token,
            &format!("/v1/links/{id}/approve"),
            &json!({}),
        )
        .await?;
        // The others are registered through the API, as a platform admin would.
        for (name, role, org, tenant) in &USERS[1..] {
            let body = json!({"name": name, "role": role, "organization": org, "tenant": tenant});
            let answer = post(state, &token, "/v1/principals", &body).await?;
            let issued = answer["token"]
                .as_str()
                .ok_or_else(|| format!("registering {name} answered no token"))?;
            tokens.insert(role.to_string(), issued.to_string());
        }
    } else {
        for (name, role, _, _) in USERS {
            tokens.insert(role.to_string(), token_for(state, name).await?);
        }
    }
    let text = serde_json::to_string_pretty(&tokens).map_err(|e| e.to_string())?;
    write_private(tokens_path, &format!("{text}\n"))
        .map_err(|e| format!("writing {}: {e}", tokens_path.display()))?;
    Ok(tokens)
}

/// The platform's demo rate card, in force from the start of the month before last (so the
/// seeded month is priced), at prices of the order a Vietnamese provincial cloud charges.
fn rate_card(now: chrono::DateTime<chrono::Utc>) -> Result<Value, String> {
    use crate::domain::period::{month_before, month_range};
    let (last_month, _) = month_range(&month_before(now))?;
    let (from, _) = month_range(&month_before(last_month))?;
    Ok(json!({
        "name": "Bảng giá dịch vụ điện toán đám mây dùng chung (demo)",
        "effectiveFrom": from,
        "prices": [
            {"resource": "cpu", "price": "200", "usagePrice": "260"},
            {"resource": "memory", "price": "50", "usagePrice": "65"},
            {"resource": "storage", "price": "2500"},
            {"resource": "load-balancers", "price": "300000"},
            {"resource": "gpu", "class": "nvidia.com/gpu", "price": "40000"}
        ],
        // VAT is 8 % until the end of 2026 (Resolution 204/2025/QH15), 10 % from 2027
        "vat": {"rate": "0.08", "effectiveFrom": from},
    }))
}

/// VAT back to 10 % from 2027, while that is still ahead.
fn next_vat(now: chrono::DateTime<chrono::Utc>) -> Option<Value> {
    let from = crate::domain::period::parse_instant("2027-01-01").ok()?;
    (from > now).then(|| json!({"rate": "0.10", "effectiveFrom": "2027-01-01"}))
}

/// Last month's invoices of the demo agencies, issued by the platform admin (the month's
/// grace period has not necessarily ended: a platform admin may issue once the month is
/// over), this month's drafts, and a budget for the demo agency below what it spends, so a
/// newcomer acting as `finance` has an invoice to approve and an alert to see at once. Does
/// nothing once an invoice has been issued.
pub async fn seed_billing(state: &AppState, admin_token: &str) -> Result<usize, String> {
    use crate::domain::period::{month_before, month_of};
    let issued = db::invoices::list(
        &state.db,
        db::invoices::ListFilter {
            scope_organization: None,
            scope_tenant: None,
            organization: None,
            tenant: None,
            month: None,
            state: Some("issued"),
            kind: None,
            after: None,
            limit: 1,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    if !issued.is_empty() {
        return Ok(0);
    }
    let now = chrono::Utc::now();
    let close = app::billing::Close {
        grace: chrono::Duration::from_std(state.settings.billing.grace)
            .unwrap_or(chrono::Duration::days(2)),
        auto_issue: false,
    };
    app::billing::close(state, close, now)
        .await
        .map_err(|e| e.to_string())?;
    let last = month_before(now);
    let drafts = db::invoices::drafts_of_month(&state.db, &last)
        .await
        .map_err(|e| e.to_string())?;
    let mut agency_total = None;
    for id in &drafts {
        let answer = post(
            state,
            admin_token,
            &format!("/v1/invoices/{id}/issue"),
            &json!({}),
        )
        .await?;
        if answer["tenant"] == AGENCY {
            agency_total = answer["total"].as_str().map(String::from);
        }
    }
    if let Some(total) = agency_total.and_then(|t| t.parse::<i64>().ok()) {
        // Half of last month: this month's forecast passes it.
        let budget = (total / 2 / 100_000).max(1) * 100_000;
        call(
            state,
            Method::PUT,
            admin_token,
            &format!("/v1/tenants/{AGENCY}/budget"),
            &json!({"amount": budget.to_string()}),
        )
        .await?;
        app::billing::check_budgets(state, &month_of(now), now)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(drafts.len())
}

/// Writes a file only its owner may read (it holds API tokens), whatever it was before.
fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    // A file made by an older run keeps its mode on open: tighten it too.
    #[cfg(unix)]
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    file.write_all(text.as_bytes())
}

/// The demo namespaces' quotas, as `tenants()` gives them: (tenant, namespace in Kubernetes,
/// cpu millicores, memory bytes, storage bytes, load balancers).
fn demo_quotas() -> Vec<(String, String, i64, i64, i64, i64)> {
    let mut out = Vec::new();
    for t in tenants() {
        let tenant = t["name"].as_str().unwrap_or_default().to_string();
        for n in t["namespaces"].as_array().into_iter().flatten() {
            let q = &n["quota"];
            let s = |k: &str| q[k].as_str().unwrap_or("0").to_string();
            out.push((
                tenant.clone(),
                govcloud_tenant::names::namespace_name(
                    &tenant,
                    n["name"].as_str().unwrap_or_default(),
                ),
                crate::domain::quota::parse_cpu(&s("cpu")).unwrap_or(0),
                crate::domain::quota::parse_bytes(&s("memory")).unwrap_or(0),
                crate::domain::quota::parse_bytes(&s("storage")).unwrap_or(0),
                q["loadBalancers"].as_i64().unwrap_or(0),
            ));
        }
    }
    out
}

/// A busy share of a quota, in percent, for one hour of the demo: agencies work weekdays from
/// 08:00 to 17:00 in Hà Nội and idle otherwise.
fn demo_share(local: chrono::DateTime<chrono_tz::Tz>, busy: i64, idle: i64) -> i64 {
    use chrono::{Datelike, Timelike};
    let weekday = local.weekday().num_days_from_monday() < 5;
    if weekday && (8..17).contains(&local.hour()) {
        busy
    } else {
        idle
    }
}

/// The previous calendar month of the demo agencies' usage, posted through the ingest endpoint
/// as the operator would (hour-long windows), after dating the demo agencies' first quotas to
/// the start of that month. Does nothing once the ledger holds anything.
pub async fn seed_usage(state: &AppState, metering_token: &str) -> Result<usize, String> {
    use crate::domain::period::{Granularity, month_before, month_range, next_bucket};
    if db::usage::any_metered(&state.db)
        .await
        .map_err(|e| e.to_string())?
    {
        return Ok(0);
    }
    let now = chrono::Utc::now();
    let (from, to) = month_range(&month_before(now))?;
    db::usage::date_demo_from(&state.db, from)
        .await
        .map_err(|e| e.to_string())?;
    let mut samples = Vec::new();
    let mut hour = from;
    while hour < to {
        let local = hour.with_timezone(&chrono_tz::Asia::Ho_Chi_Minh);
        for (tenant, namespace, cpu, memory, storage, lbs) in demo_quotas() {
            let requested = demo_share(local, 60, 25);
            let used = demo_share(local, 45, 10);
            for (metric, rate) in [
                ("cpu.reserved", cpu),
                ("memory.reserved", memory),
                ("storage.reserved", storage),
                ("loadbalancers.reserved", lbs),
                ("cpu.requested", cpu * requested / 100),
                ("memory.requested", memory * requested / 100),
                ("cpu.used", cpu * used / 100),
                ("memory.used", memory * used / 100),
                ("storage.bound", storage * 40 / 100),
            ] {
                samples.push(
                    json!({"tenant": tenant, "namespace": namespace, "metric": metric,
                    "windowStart": hour, "quantity": rate * 3600}),
                );
            }
        }
        hour = next_bucket(hour, Granularity::Hour);
    }
    let count = samples.len();
    for chunk in samples.chunks(govcloud_tenant::usage::MAX_SAMPLES_PER_BATCH) {
        let batch = json!({"windowSeconds": 3600, "samples": chunk});
        post(state, metering_token, "/v1/usage/batches", &batch).await?;
    }
    Ok(count)
}
