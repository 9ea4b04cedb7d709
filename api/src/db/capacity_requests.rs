//! Capacity requests and their decisions: for one namespace of a tenant, or for an
//! organization's allotment.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::db::organizations::Allotment;
use crate::domain::capacity::{Scheduled, Totals};
use crate::domain::quota::QuotaPatch;
use crate::domain::request::RequestState;

#[derive(Debug, Clone)]
pub struct RequestRow {
    pub capacity_request_id: Uuid,
    /// The tenant and namespace of a namespace's request; `None` for an allotment's.
    pub tenant_id: Option<Uuid>,
    pub tenant: Option<String>,
    pub namespace: Option<String>,
    pub organization_id: Uuid,
    pub organization: String,
    pub cpu_milli: Option<i64>,
    pub memory_bytes: Option<i64>,
    pub storage_bytes: Option<i64>,
    pub pods: Option<i32>,
    pub load_balancers: Option<i32>,
    /// The allotment asked for, for an organization's request.
    pub allotment_cpu_milli: Option<i64>,
    pub allotment_memory_bytes: Option<i64>,
    pub allotment_storage_bytes: Option<i64>,
    pub reason: String,
    pub effective_from: DateTime<Utc>,
    pub state: RequestState,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub decision_reason: Option<String>,
    pub quota_written_at: Option<DateTime<Utc>>,
    pub tenant_version: Option<i64>,
    pub applied_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a request is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Subject {
    /// One namespace of a tenant.
    Namespace {
        tenant_id: Uuid,
        tenant: String,
        namespace: String,
    },
    /// The organization's allotment, as asked for.
    Allotment(Totals),
}

impl RequestRow {
    pub fn subject(&self) -> Subject {
        match (&self.tenant_id, &self.tenant, &self.namespace) {
            (Some(tenant_id), Some(tenant), Some(namespace)) => Subject::Namespace {
                tenant_id: *tenant_id,
                tenant: tenant.clone(),
                namespace: namespace.clone(),
            },
            _ => Subject::Allotment(Totals {
                cpu_milli: self.allotment_cpu_milli.unwrap_or_default().into(),
                memory_bytes: self.allotment_memory_bytes.unwrap_or_default().into(),
                storage_bytes: self.allotment_storage_bytes.unwrap_or_default().into(),
            }),
        }
    }

    /// The change asked for.
    pub fn patch(&self) -> QuotaPatch {
        QuotaPatch {
            cpu_milli: self.cpu_milli,
            memory_bytes: self.memory_bytes,
            storage_bytes: self.storage_bytes,
            pods: self.pods,
            load_balancers: self.load_balancers,
        }
    }
}

/// Selects [`RequestRow`]s: the columns, then `$rest` (the where clause and so on).
macro_rules! select_requests {
    ($rest:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            RequestRow,
            r#"select r.capacity_request_id, r.tenant_id, t.name as "tenant?", r.namespace,
                      o.organization_id, o.name as organization,
                      r.cpu_milli, r.memory_bytes, r.storage_bytes, r.pods, r.load_balancers,
                      r.allotment_cpu_milli, r.allotment_memory_bytes, r.allotment_storage_bytes, r.reason,
                      r.effective_from, r.state as "state: RequestState", r.requested_by, r.decided_by,
                      r.decided_at, r.decision_reason, r.quota_written_at, r.tenant_version, r.applied_at,
                      r.created_at, r.updated_at
               from capacity_request r
               left join tenant t on t.tenant_id = r.tenant_id
               join organization o on o.organization_id = coalesce(r.organization_id, t.organization_id) "# + $rest
            $(, $arg)*
        )
    };
}

pub struct NewRequest<'a> {
    pub namespace: &'a str,
    pub patch: QuotaPatch,
    pub reason: &'a str,
    pub effective_from: DateTime<Utc>,
    pub requested_by: &'a str,
}

/// Stores a new pending request for an organization's allotment; answers its id.
pub async fn insert_allotment(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
    allotment: &Allotment,
    reason: &str,
    effective_from: DateTime<Utc>,
    requested_by: &str,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "insert into capacity_request (organization_id, allotment_cpu_milli, allotment_memory_bytes,
                                       allotment_storage_bytes, reason, effective_from, state, requested_by)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning capacity_request_id",
        organization_id,
        allotment.cpu_milli,
        allotment.memory_bytes,
        allotment.storage_bytes,
        reason,
        effective_from,
        RequestState::Pending as RequestState,
        requested_by,
    )
    .fetch_one(db)
    .await
}

/// Stores a new pending request; answers its id.
/// Who may ask for a namespace's request: only tenants of this organization, and only this
/// tenant, where set (the caller's scope, as [`crate::domain::principal::Caller`] filters lists).
pub struct AskScope {
    pub only_organization: Option<Uuid>,
    pub only_tenant: Option<Uuid>,
}

/// Stores a new pending request for a namespace and its audit event, in one statement (so at
/// once, in one round trip): only when the tenant exists in the scope, is not being offboarded
/// and has the namespace. `None` otherwise, and nothing is written (the caller finds out why).
pub async fn insert_for_namespace(
    db: impl PgExecutor<'_>,
    tenant: &str,
    scope: &AskScope,
    r: &NewRequest<'_>,
    e: &crate::db::audit::Event<'_>,
) -> sqlx::Result<Option<Stored>> {
    sqlx::query_as!(
        Stored,
        r#"with t as (
               select t.tenant_id, t.organization_id, o.name as organization
               from tenant t join organization o using (organization_id)
               join tenant_namespace n on n.tenant_id = t.tenant_id and n.name = $2
               where t.name = $1 and t.gone_at is null and t.offboarded_at is null
                 and ($17::uuid is null or t.organization_id = $17)
                 and ($18::uuid is null or t.tenant_id = $18)),
           r as (
               insert into capacity_request (tenant_id, namespace, cpu_milli, memory_bytes, storage_bytes,
                                             pods, load_balancers, reason, effective_from, state, requested_by)
               select t.tenant_id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11 from t
               returning capacity_request_id, tenant_id, state, effective_from, created_at, updated_at),
           a as (
               insert into audit_event (actor, actor_role, action, object_kind, object_id,
                                        organization_id, tenant_id, detail)
               select $12, $13, $14, $15, r.capacity_request_id::text, t.organization_id, t.tenant_id, $16
               from r join t using (tenant_id))
           select r.capacity_request_id, r.tenant_id as "tenant_id!", t.organization_id as "organization_id!",
                  t.organization as "organization!", r.state as "state: RequestState", r.effective_from,
                  r.created_at, r.updated_at
           from r join t using (tenant_id)"#,
        tenant,
        r.namespace,
        r.patch.cpu_milli,
        r.patch.memory_bytes,
        r.patch.storage_bytes,
        r.patch.pods,
        r.patch.load_balancers,
        r.reason,
        r.effective_from,
        RequestState::Pending as RequestState,
        r.requested_by,
        e.actor.name,
        e.actor.role,
        e.action,
        e.object_kind,
        sqlx::types::Json(&e.detail) as _,
        scope.only_organization,
        scope.only_tenant,
    )
    .fetch_optional(db)
    .await
}

/// What the database gave a new request.
pub struct Stored {
    pub capacity_request_id: Uuid,
    pub tenant_id: Uuid,
    pub organization_id: Uuid,
    pub organization: String,
    pub state: RequestState,
    /// As stored (to the microsecond).
    pub effective_from: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<RequestRow>> {
    select_requests!("where r.capacity_request_id = $1", id)
        .fetch_optional(db)
        .await
}

/// Reads a request and locks it for the rest of the transaction.
pub async fn lock(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<RequestRow>> {
    select_requests!("where r.capacity_request_id = $1 for update of r", id)
        .fetch_optional(db)
        .await
}

pub struct ListFilter<'a> {
    pub only_organization: Option<Uuid>,
    /// Only this tenant's requests (never an allotment's).
    pub only_tenant: Option<Uuid>,
    pub tenant_name: Option<&'a str>,
    pub state: Option<RequestState>,
    /// Continue after this (created_at, id), newest first.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

pub async fn list(db: impl PgExecutor<'_>, f: ListFilter<'_>) -> sqlx::Result<Vec<RequestRow>> {
    select_requests!(
        "where ($1::uuid is null or o.organization_id = $1)
           and ($2::uuid is null or r.tenant_id = $2)
           and ($3::text is null or t.name = $3)
           and ($4::text is null or r.state = $4)
           and ($5::timestamptz is null or (r.created_at, r.capacity_request_id) < ($5, $6))
         order by r.created_at desc, r.capacity_request_id desc limit $7",
        f.only_organization,
        f.only_tenant,
        f.tenant_name,
        f.state as Option<RequestState>,
        f.after.map(|a| a.0),
        f.after.map(|a| a.1),
        f.limit,
    )
    .fetch_all(db)
    .await
}

/// Moves a request to `state`, recording who decided and why.
pub async fn decide(
    db: impl PgExecutor<'_>,
    id: Uuid,
    state: RequestState,
    decided_by: &str,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update capacity_request set state = $2, decided_by = $3, decided_at = now(), decision_reason = $4, updated_at = now()
         where capacity_request_id = $1",
        id,
        state as RequestState,
        decided_by,
        reason,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records that the request's quota is written, carried by tenant version `version`.
pub async fn mark_written(db: impl PgExecutor<'_>, id: Uuid, version: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "update capacity_request set quota_written_at = now(), tenant_version = $2, updated_at = now()
         where capacity_request_id = $1",
        id,
        version,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Approved namespace changes not yet in effect, with the organization of each.
pub async fn scheduled(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(Uuid, Scheduled)>> {
    let rows = select_requests!(
        "where r.state = 'approved-pending' and r.quota_written_at is null and r.tenant_id is not null
           and t.gone_at is null"
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| {
            let patch = r.patch();
            Some((
                r.organization_id,
                Scheduled {
                    namespace: (r.tenant?, r.namespace?),
                    effective_from: r.effective_from,
                    patch,
                },
            ))
        })
        .collect())
}

/// Approved allotment changes not yet in effect: (organization, when, the new allotment).
pub async fn scheduled_allotments(
    db: impl PgExecutor<'_>,
) -> sqlx::Result<Vec<(Uuid, DateTime<Utc>, Totals)>> {
    let rows = select_requests!(
        "where r.state = 'approved-pending' and r.quota_written_at is null and r.organization_id is not null"
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|r| match r.subject() {
            Subject::Allotment(t) => Some((r.organization_id, r.effective_from, t)),
            Subject::Namespace { .. } => None,
        })
        .collect())
}

/// The next approved request whose date has come and whose quota is not written yet, locked;
/// other replicas skip it.
pub async fn next_due(db: impl PgExecutor<'_>) -> sqlx::Result<Option<RequestRow>> {
    select_requests!(
        "where r.state = 'approved-pending' and r.quota_written_at is null and r.effective_from <= now()
         order by r.effective_from limit 1 for update of r skip locked"
    )
    .fetch_optional(db)
    .await
}

/// Marks an allotment request written and approved: an allotment needs nothing of the cluster.
pub async fn mark_allotment_done(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "update capacity_request set state = 'approved', quota_written_at = now(), applied_at = now(),
                updated_at = now()
         where capacity_request_id = $1 and organization_id is not null",
        id,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Marks approved every written request of the tenant that version `version` carries;
/// answers their ids.
pub async fn mark_applied(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    version: i64,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "update capacity_request set state = 'approved', applied_at = now(), updated_at = now()
         where tenant_id = $1 and state = 'approved-pending' and quota_written_at is not null and tenant_version <= $2
         returning capacity_request_id",
        tenant_id,
        version,
    )
    .fetch_all(db)
    .await
}

/// Cancels every request of the tenant still open (pending, or approved and not yet applied);
/// answers their ids.
pub async fn cancel_open(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    by: &str,
    reason: &str,
) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "update capacity_request set state = 'cancelled', decided_by = $2, decided_at = now(), decision_reason = $3,
                updated_at = now()
         where tenant_id = $1 and state in ('pending', 'approved-pending')
         returning capacity_request_id",
        tenant_id,
        by,
        reason,
    )
    .fetch_all(db)
    .await
}
