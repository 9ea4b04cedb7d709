//! The demo data of `govcloud dev`: a province with agencies, a ministry with one (so that
//! "someone else's tenant" can be tried), and one user per role with an API token.
//!
//! Everything but the first platform admin goes through the API's own routes, so the demo is
//! validated, applied to the cluster and audited like any real onboarding.

use std::collections::BTreeMap;
use std::path::Path;

use axum::body::Body;
use axum::http::{Method, Request, header};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::auth::{Role, tokens};
use crate::db::principals::{self, NewPrincipal};
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
            "network": {"egress": "Internet", "allowFrom": [{"tenant": OTHER_AGENCY, "namespace": "prod", "ports": [443]}]},
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

async fn post(state: &AppState, token: &str, path: &str, body: &Value) -> Result<(), String> {
    let request = Request::builder()
        .method(Method::POST)
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
    if status.is_success() {
        return Ok(());
    }
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    Err(format!(
        "POST {path} answered {status}: {}",
        String::from_utf8_lossy(&bytes)
    ))
}

async fn token_for(state: &AppState, name: &str) -> Result<String, String> {
    let id = principals::id_by_name(&state.db, name)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("principal {name} is missing"))?;
    let token = tokens::generate();
    principals::insert_token(&state.db, id, &tokens::hash(&token))
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
            valid &= principals::by_token_hash(&state.db, &tokens::hash(t))
                .await
                .map_err(|e| e.to_string())?
                .is_some();
        }
        if valid {
            return Ok(tokens);
        }
    }
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
        for (name, role, org, tenant) in &USERS[1..] {
            let organization_id = match org {
                Some(o) => db::organizations::by_name(&state.db, o)
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|o| o.organization_id),
                None => None,
            };
            let tenant_id = match tenant {
                Some(t) => db::tenants::by_name(&state.db, t)
                    .await
                    .map_err(|e| e.to_string())?
                    .map(|t| t.tenant_id),
                None => None,
            };
            principals::insert(
                &state.db,
                NewPrincipal {
                    name,
                    role: *role,
                    organization_id,
                    tenant_id,
                    oidc_subject: None,
                },
            )
            .await
            .map_err(|e| e.to_string())?;
        }
    }
    let mut tokens = BTreeMap::new();
    for (name, role, _, _) in USERS {
        tokens.insert(role.to_string(), token_for(state, name).await?);
    }
    let text = serde_json::to_string_pretty(&tokens).map_err(|e| e.to_string())?;
    std::fs::write(tokens_path, format!("{text}\n"))
        .map_err(|e| format!("writing {}: {e}", tokens_path.display()))?;
    Ok(tokens)
}
