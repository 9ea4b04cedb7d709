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
    record_all(db, std::slice::from_ref(&e)).await
}

/// Records these events in one statement, in their order.
pub async fn record_all(db: impl PgExecutor<'_>, events: &[Event<'_>]) -> sqlx::Result<()> {
    let text =
        |f: for<'e> fn(&'e Event<'e>) -> &'e str| events.iter().map(f).collect::<Vec<&str>>();
    let ids = |f: fn(&Event<'_>) -> Option<Uuid>| events.iter().map(f).collect::<Vec<_>>();
    let object_ids: Vec<&str> = events.iter().map(|e| e.object_id.as_str()).collect();
    let details: Vec<Json<&serde_json::Value>> = events.iter().map(|e| Json(&e.detail)).collect();
    sqlx::query!(
        "insert into audit_event (actor, actor_role, action, object_kind, object_id, organization_id, tenant_id, detail)
         select * from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[],
             $7::uuid[], $8::jsonb[])",
        &text(|e| e.actor.name.as_str()) as &[&str],
        &text(|e| e.actor.role.as_str()) as &[&str],
        &text(|e| e.action) as &[&str],
        &text(|e| e.object_kind) as &[&str],
        &object_ids as &[&str],
        &ids(|e| e.organization_id) as &[Option<Uuid>],
        &ids(|e| e.tenant_id) as &[Option<Uuid>],
        &details as _,
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
