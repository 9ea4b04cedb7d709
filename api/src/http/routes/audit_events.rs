//! The audit log: every state change, who made it, when. Auditors and platform admins.

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::AppState;
use crate::app::audit::{self as use_case, Filter};
use crate::domain::principal::Caller;
use crate::http::error::ApiResult;
use crate::http::extract::{AppJson, AppQuery};
use crate::http::page::{PageParams, next_cursor, page};

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/audit-events", get(list))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuditEvent {
    pub id: i64,
    pub occurred_at: DateTime<Utc>,
    /// Who: a principal's name, or `system:…` for the API's own work.
    pub actor: String,
    pub actor_role: String,
    /// What: `tenant.create`, `capacity_request.approve`, …
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub detail: serde_json::Value,
}

page!(AuditEventPage, AuditEvent);

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditFilter {
    pub organization: Option<String>,
    pub tenant: Option<String>,
    /// Only this action, such as `capacity_request.approve`.
    pub action: Option<String>,
    pub limit: Option<i64>,
    pub cursor: Option<String>,
}

/// Lists audit events, newest first.
#[utoipa::path(get, path = "/v1/audit-events", tag = "audit",
    params(AuditFilter),
    responses((status = 200, body = AuditEventPage)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(f): AppQuery<AuditFilter>,
) -> ApiResult<AppJson<AuditEventPage>> {
    let page = PageParams {
        limit: f.limit,
        cursor: f.cursor,
    };
    let limit = page.limit()?;
    let before = page.cursor_as::<i64>()?;
    let rows = use_case::list(
        &state,
        &caller,
        Filter {
            organization: f.organization.as_deref(),
            tenant: f.tenant.as_deref(),
            action: f.action.as_deref(),
            before,
            limit,
        },
    )
    .await?;
    let next = next_cursor(&rows, limit, |r| r.audit_event_id.to_string());
    Ok(AppJson(AuditEventPage {
        items: rows
            .into_iter()
            .map(|r| AuditEvent {
                id: r.audit_event_id,
                occurred_at: r.occurred_at,
                actor: r.actor,
                actor_role: r.actor_role,
                action: r.action,
                object_kind: r.object_kind,
                object_id: r.object_id,
                organization: r.organization,
                tenant: r.tenant,
                detail: r.detail.0,
            })
            .collect(),
        next_cursor: next,
    }))
}
