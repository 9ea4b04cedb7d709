use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use crate::quota::Quota;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantRow {
    pub tenant_id: Uuid,
    pub name: String,
    pub organization_id: Uuid,
    pub organization: String,
    pub display_name: String,
    pub owners: Json<serde_json::Value>,
    pub limits: Json<serde_json::Value>,
    pub pod_security: String,
    pub network: Json<serde_json::Value>,
    pub billing: Json<serde_json::Value>,
    pub suspended: bool,
    pub spec_version: i64,
    pub applied_version: i64,
    pub applied_at: Option<DateTime<Utc>>,
    pub apply_error: Option<String>,
    /// Consecutive failed attempts to apply, and when the next one is due.
    pub apply_attempts: i32,
    pub next_apply_at: Option<DateTime<Utc>>,
    /// The cluster refused the spec itself (not merely unreachable).
    pub apply_refused: bool,
    /// Offboarding was asked for (the tenant is terminating until `gone_at`).
    pub offboarded_at: Option<DateTime<Utc>>,
    pub offboarded_by: Option<String>,
    pub gone_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, sqlx::FromRow, serde::Deserialize)]
pub struct NamespaceRow {
    pub tenant_id: Uuid,
    pub name: String,
    #[sqlx(flatten)]
    #[serde(flatten)]
    pub quota: Quota,
}

/// A tenant with its namespaces, read in one query.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantWithNamespaces {
    #[sqlx(flatten)]
    pub tenant: TenantRow,
    pub namespaces: Json<Vec<NamespaceRow>>,
}

/// A namespace with its tenant's name, for sums across tenants.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantNamespaceRow {
    pub organization_id: Uuid,
    pub tenant: String,
    pub name: String,
    #[sqlx(flatten)]
    pub quota: Quota,
}

const SELECT: &str =
    "select t.*, o.name as organization from tenant t join organization o using (organization_id)";

/// What onboarding stores; the rest of the row starts at its defaults.
pub struct NewTenant<'a> {
    pub name: &'a str,
    pub organization_id: Uuid,
    pub display_name: &'a str,
    pub owners: serde_json::Value,
    pub limits: serde_json::Value,
    pub pod_security: &'a str,
    pub network: serde_json::Value,
    pub billing: serde_json::Value,
}

pub async fn insert(db: impl PgExecutor<'_>, t: NewTenant<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar(
        "insert into tenant (name, organization_id, display_name, owners, limits, pod_security, network, billing)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning tenant_id",
    )
    .bind(t.name)
    .bind(t.organization_id)
    .bind(t.display_name)
    .bind(Json(t.owners))
    .bind(Json(t.limits))
    .bind(t.pod_security)
    .bind(Json(t.network))
    .bind(Json(t.billing))
    .fetch_one(db)
    .await
}

pub async fn set_namespace_quota(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    name: &str,
    q: Quota,
) -> sqlx::Result<()> {
    sqlx::query(
        "update tenant_namespace set cpu_milli = $3, memory_bytes = $4, storage_bytes = $5, pods = $6, load_balancers = $7
         where tenant_id = $1 and name = $2",
    )
    .bind(tenant_id)
        .bind(name)
        .bind(q.cpu_milli)
        .bind(q.memory_bytes)
        .bind(q.storage_bytes)
        .bind(q.pods)
        .bind(q.load_balancers)
        .execute(db)
        .await?;
    Ok(())
}

/// The unique index that keeps a Kubernetes namespace name to one tenant.
pub const KUBE_NAME_KEY: &str = "tenant_namespace_kube_name_key";

/// Whether an error is the violation of [`KUBE_NAME_KEY`]: the namespace name is taken.
pub fn is_kube_name_taken(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.constraint() == Some(KUBE_NAME_KEY))
}

/// Adds a namespace to a tenant, with its Kubernetes name (`kube_name`), which the database
/// keeps unique among the namespaces held (see [`is_kube_name_taken`]).
pub async fn insert_namespace(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    name: &str,
    kube_name: &str,
    q: Quota,
) -> sqlx::Result<()> {
    sqlx::query(
        "insert into tenant_namespace (tenant_id, name, kube_name, cpu_milli, memory_bytes, storage_bytes, pods, load_balancers)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(tenant_id)
    .bind(name)
    .bind(kube_name)
    .bind(q.cpu_milli)
    .bind(q.memory_bytes)
    .bind(q.storage_bytes)
    .bind(q.pods)
    .bind(q.load_balancers)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn by_name(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<TenantRow>> {
    sqlx::query_as(&format!("{SELECT} where t.name = $1 and t.gone_at is null"))
        .bind(name)
        .fetch_optional(db)
        .await
}

/// A tenant and its namespaces by name, in one round trip.
pub async fn with_namespaces_by_name(
    db: impl PgExecutor<'_>,
    name: &str,
) -> sqlx::Result<Option<TenantWithNamespaces>> {
    sqlx::query_as(&format!(
        "select x.*, coalesce((select json_agg(n order by n.name) from tenant_namespace n where n.tenant_id = x.tenant_id), '[]') as namespaces
         from ({SELECT} where t.name = $1 and t.gone_at is null) x"
    ))
    .bind(name)
    .fetch_optional(db)
    .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<TenantRow>> {
    sqlx::query_as(&format!("{SELECT} where t.tenant_id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await
}

/// A page of tenants by name.
pub async fn list(
    db: impl PgExecutor<'_>,
    only_organization: Option<Uuid>,
    only_tenant: Option<Uuid>,
    organization_name: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<TenantRow>> {
    sqlx::query_as(&format!(
        "{SELECT} where t.gone_at is null and ($1::uuid is null or t.organization_id = $1)
           and ($2::uuid is null or t.tenant_id = $2)
           and ($3::text is null or o.name = $3)
           and ($4::text is null or t.name > $4)
         order by t.name limit $5"
    ))
    .bind(only_organization)
    .bind(only_tenant)
    .bind(organization_name)
    .bind(after)
    .bind(limit)
    .fetch_all(db)
    .await
}

pub async fn namespaces(
    db: impl PgExecutor<'_>,
    tenant_ids: &[Uuid],
) -> sqlx::Result<Vec<NamespaceRow>> {
    sqlx::query_as(
        "select * from tenant_namespace where tenant_id = any($1) order by tenant_id, name",
    )
    .bind(tenant_ids)
    .fetch_all(db)
    .await
}

/// Whether a tenant (`t`) holds capacity: until it is gone from the cluster, unless the cluster
/// refused it before ever running it.
pub const HOLDS_CAPACITY: &str =
    "t.gone_at is null and not (t.apply_refused and t.applied_version = 0)";

/// Every namespace that holds capacity, with its tenant's name and organization.
pub async fn all_namespaces(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<TenantNamespaceRow>> {
    sqlx::query_as(&format!(
        "select t.organization_id, t.name as tenant, n.* from tenant_namespace n join tenant t using (tenant_id)
         where {HOLDS_CAPACITY}"
    ))
    .fetch_all(db)
    .await
}

/// Records that the tenant's desired state changed; answers the new version.
pub async fn bump_version(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "update tenant set spec_version = spec_version + 1, next_apply_at = null, updated_at = now()
         where tenant_id = $1 returning spec_version",
    )
    .bind(tenant_id)
    .fetch_one(db)
    .await
}

pub async fn mark_applied(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    version: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "update tenant set applied_version = greatest(applied_version, $2), applied_at = now(), apply_error = null,
                apply_attempts = 0, next_apply_at = null, apply_refused = false
         where tenant_id = $1",
    )
    .bind(tenant_id)
    .bind(version)
    .execute(db)
    .await?;
    Ok(())
}

/// Records a failed attempt and when to try again (`retry_in` seconds from now); answers the
/// error recorded before this one.
pub async fn mark_apply_failed(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    error: &str,
    refused: bool,
    retry_in: f64,
) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar(
        "update tenant t set apply_error = $2, apply_refused = $3, apply_attempts = t.apply_attempts + 1,
                next_apply_at = now() + make_interval(secs => $4)
         from (select tenant_id, apply_error from tenant where tenant_id = $1) before
         where t.tenant_id = before.tenant_id
         returning before.apply_error",
    )
    .bind(tenant_id)
    .bind(error)
    .bind(refused)
    .bind(retry_in)
    .fetch_one(db)
    .await
}

/// Tenants whose desired state the cluster does not have yet and whose backoff is over; with
/// `all`, also every other tenant the cluster has not refused (the periodic full pass). Never
/// an offboarded one.
pub async fn to_apply(db: impl PgExecutor<'_>, all: bool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "select tenant_id from tenant
         where offboarded_at is null
           and (($1 and not apply_refused)
                or (applied_version < spec_version and (next_apply_at is null or next_apply_at <= now())))
         order by name",
    )
    .bind(all)
    .fetch_all(db)
    .await
}

/// How many tenants the cluster does not have the latest desired state of (offboarded ones
/// aside).
pub async fn count_unapplied(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "select count(*) from tenant where offboarded_at is null and applied_version < spec_version",
    )
    .fetch_one(db)
    .await
}

/// Marks a tenant offboarded, under its row lock; answers false when it already was.
pub async fn mark_offboarded(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    by: &str,
) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "update tenant set offboarded_at = now(), offboarded_by = $2, updated_at = now()
         where tenant_id = $1 and offboarded_at is null",
    )
    .bind(tenant_id)
    .bind(by)
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Offboarded tenants the cluster may still hold: (id, name, organization).
pub async fn terminating(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<(Uuid, String, Uuid)>> {
    sqlx::query_as(
        "select tenant_id, name, organization_id from tenant
         where offboarded_at is not null and gone_at is null order by name",
    )
    .fetch_all(db)
    .await
}

/// Records that the cluster no longer has the tenant: its namespace names are free again.
/// Answers false when it was already recorded.
pub async fn mark_gone(db: &mut sqlx::PgConnection, tenant_id: Uuid) -> sqlx::Result<bool> {
    let updated = sqlx::query(
        "update tenant set gone_at = now(), updated_at = now()
         where tenant_id = $1 and offboarded_at is not null and gone_at is null",
    )
    .bind(tenant_id)
    .execute(&mut *db)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query("update tenant_namespace set released_at = now() where tenant_id = $1")
        .bind(tenant_id)
        .execute(&mut *db)
        .await?;
    Ok(true)
}
