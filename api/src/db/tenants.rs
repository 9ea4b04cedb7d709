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

/// Writes a namespace's quota: `insert` for a new namespace, else an update of an existing one.
async fn write_namespace(
    db: impl PgExecutor<'_>,
    sql: &str,
    tenant_id: Uuid,
    name: &str,
    q: Quota,
) -> sqlx::Result<()> {
    sqlx::query(sql)
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

pub async fn insert_namespace(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    name: &str,
    q: Quota,
) -> sqlx::Result<()> {
    write_namespace(
        db,
        "insert into tenant_namespace (tenant_id, name, cpu_milli, memory_bytes, storage_bytes, pods, load_balancers)
         values ($1, $2, $3, $4, $5, $6, $7)",
        tenant_id,
        name,
        q,
    )
    .await
}

pub async fn set_namespace_quota(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    name: &str,
    q: Quota,
) -> sqlx::Result<()> {
    write_namespace(
        db,
        "update tenant_namespace set cpu_milli = $3, memory_bytes = $4, storage_bytes = $5, pods = $6, load_balancers = $7
         where tenant_id = $1 and name = $2",
        tenant_id,
        name,
        q,
    )
    .await
}

pub async fn by_name(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<TenantRow>> {
    sqlx::query_as(&format!("{SELECT} where t.name = $1"))
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
         from ({SELECT} where t.name = $1) x"
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
        "{SELECT} where ($1::uuid is null or t.organization_id = $1)
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

/// Every namespace of the cluster, with its tenant's name and organization.
pub async fn all_namespaces(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<TenantNamespaceRow>> {
    sqlx::query_as(
        "select t.organization_id, t.name as tenant, n.* from tenant_namespace n join tenant t using (tenant_id)",
    )
    .fetch_all(db)
    .await
}

/// Records that the tenant's desired state changed; answers the new version.
pub async fn bump_version(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "update tenant set spec_version = spec_version + 1, updated_at = now() where tenant_id = $1 returning spec_version",
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
        "update tenant set applied_version = greatest(applied_version, $2), applied_at = now(), apply_error = null
         where tenant_id = $1",
    )
    .bind(tenant_id)
    .bind(version)
    .execute(db)
    .await?;
    Ok(())
}

pub async fn mark_apply_failed(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    error: &str,
) -> sqlx::Result<()> {
    sqlx::query("update tenant set apply_error = $2 where tenant_id = $1")
        .bind(tenant_id)
        .bind(error)
        .execute(db)
        .await?;
    Ok(())
}

/// Tenants whose desired state the cluster does not have yet (`all`: every tenant).
pub async fn to_apply(db: impl PgExecutor<'_>, all: bool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "select tenant_id from tenant where $1 or applied_version < spec_version order by name",
    )
    .bind(all)
    .fetch_all(db)
    .await
}
