//! The audit log: every state change, who made it, when.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::principal::Caller;

#[derive(Debug, Clone)]
pub struct AuditRow {
    pub audit_event_id: i64,
    pub occurred_at: DateTime<Utc>,
    pub actor: String,
    pub actor_role: String,
    pub action: String,
    pub object_kind: String,
    pub object_id: String,
    pub organization: Option<String>,
    pub tenant: Option<String>,
    pub detail: Json<serde_json::Value>,
}

/// Who did something: a caller, or the API itself (`system:…`).
#[derive(Debug, Clone)]
pub struct Actor {
    pub name: String,
    pub role: String,
}

impl From<&Caller> for Actor {
    fn from(c: &Caller) -> Self {
        Self {
            name: c.name.clone(),
            role: c.role.to_string(),
        }
    }
}

impl Actor {
    pub fn system(name: &str) -> Self {
        Self {
            name: format!("system:{name}"),
            role: "system".into(),
        }
    }
}

pub struct Event<'a> {
    pub actor: &'a Actor,
    pub action: &'a str,
    pub object_kind: &'a str,
    pub object_id: String,
    pub organization_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub detail: serde_json::Value,
}

pub async fn record(db: impl PgExecutor<'_>, e: Event<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into audit_event (actor, actor_role, action, object_kind, object_id, organization_id, tenant_id, detail)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        e.actor.name,
        e.actor.role,
        e.action,
        e.object_kind,
        e.object_id,
        e.organization_id,
        e.tenant_id,
        Json(e.detail) as _,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub struct ListFilter<'a> {
    pub organization: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub action: Option<&'a str>,
    /// Continue before this event id (newest first).
    pub before: Option<i64>,
    pub limit: i64,
}

pub async fn list(db: impl PgExecutor<'_>, f: ListFilter<'_>) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as!(
        AuditRow,
        r#"select a.audit_event_id, a.occurred_at, a.actor, a.actor_role, a.action, a.object_kind,
                  a.object_id, o.name as "organization?", t.name as "tenant?",
                  a.detail as "detail: Json<serde_json::Value>"
           from audit_event a
           left join organization o on o.organization_id = a.organization_id
           left join tenant t on t.tenant_id = a.tenant_id
           where ($1::text is null or o.name = $1) and ($2::text is null or t.name = $2)
             and ($3::text is null or a.action = $3) and ($4::bigint is null or a.audit_event_id < $4)
           order by a.audit_event_id desc limit $5"#,
        f.organization,
        f.tenant,
        f.action,
        f.before,
        f.limit,
    )
    .fetch_all(db)
    .await
}
