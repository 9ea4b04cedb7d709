//! Tenants (agencies) and their namespaces.

use chrono::{DateTime, Utc};
use govcloud_tenant::crd::{Billing, Grant, Limits, Network, Owner, PodSecurityLevel};
use sqlx::PgExecutor;
use sqlx::types::Json;
use uuid::Uuid;

use crate::domain::quota::{Quota, QuotaPatch};
use crate::domain::tenant::{Agency, AgencyNamespace, SyncFacts};

#[derive(Debug, Clone)]
pub struct TenantRow {
    pub tenant_id: Uuid,
    pub name: String,
    pub organization_id: Uuid,
    pub organization: String,
    pub display_name: String,
    pub owners: Json<Vec<Owner>>,
    pub limits: Json<Limits>,
    pub pod_security: Json<PodSecurityLevel>,
    pub network: Json<Network>,
    pub billing: Json<Billing>,
    pub suspended: bool,
    /// When, by whom and why the tenant was last suspended (kept after it resumes).
    pub suspended_at: Option<DateTime<Utc>>,
    pub suspended_by: Option<String>,
    pub suspend_reason: Option<String>,
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
    /// Its namespaces, when the query asked for them in the same round trip
    /// ([`by_name_with_namespaces`]).
    pub namespaces: Option<Json<Vec<NamespaceRow>>>,
}

impl TenantRow {
    /// The agency this row and its namespaces describe.
    pub fn agency(&self, namespaces: &[NamespaceRow]) -> Agency {
        Agency {
            name: self.name.clone(),
            display_name: self.display_name.clone(),
            organization: self.organization.clone(),
            owners: self.owners.0.clone(),
            namespaces: namespaces
                .iter()
                .map(|n| AgencyNamespace {
                    name: n.name.clone(),
                    quota: n.quota(),
                })
                .collect(),
            limits: self.limits.0.clone(),
            pod_security: self.pod_security.0,
            network: self.network.0.clone(),
            billing: self.billing.0.clone(),
            suspended: self.suspended,
        }
    }

    pub fn sync_facts(&self) -> SyncFacts {
        SyncFacts {
            offboarded: self.offboarded_at.is_some(),
            spec_version: self.spec_version,
            applied_version: self.applied_version,
            refused: self.apply_refused,
            attempts: self.apply_attempts,
        }
    }
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct NamespaceRow {
    pub tenant_id: Uuid,
    pub name: String,
    pub cpu_milli: i64,
    pub memory_bytes: i64,
    pub storage_bytes: i64,
    pub pods: i32,
    pub load_balancers: i32,
}

impl NamespaceRow {
    pub fn quota(&self) -> Quota {
        Quota {
            cpu_milli: self.cpu_milli,
            memory_bytes: self.memory_bytes,
            storage_bytes: self.storage_bytes,
            pods: self.pods,
            load_balancers: self.load_balancers,
        }
    }
}

/// A namespace that holds capacity, with its tenant's name and organization.
#[derive(Debug, Clone)]
pub struct HeldNamespaceRow {
    pub organization_id: Uuid,
    pub tenant: String,
    pub name: String,
    pub quota: Quota,
}

/// Selects [`TenantRow`]s: the columns, then `$rest` (the where clause and so on).
macro_rules! select_tenants {
    ($rest:literal $(, $arg:expr)* $(,)?) => {
        select_tenants!(@with "null::jsonb", $rest $(, $arg)*)
    };
    (@with $namespaces:literal, $rest:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            TenantRow,
            r#"select t.tenant_id, t.name, t.organization_id, o.name as organization, t.display_name,
                      t.owners as "owners: Json<Vec<Owner>>", t.limits as "limits: Json<Limits>",
                      to_jsonb(t.pod_security) as "pod_security!: Json<PodSecurityLevel>",
                      t.network as "network: Json<Network>", t.billing as "billing: Json<Billing>",
                      t.suspended, t.suspended_at, t.suspended_by, t.suspend_reason, t.spec_version, t.applied_version, t.applied_at, t.apply_error,
                      t.apply_attempts, t.next_apply_at, t.apply_refused, t.offboarded_at,
                      t.offboarded_by, t.gone_at, t.created_at, t.updated_at, "# + $namespaces + r#" as "namespaces: Json<Vec<NamespaceRow>>"
               from tenant t join organization o using (organization_id) "# + $rest
            $(, $arg)*
        )
    };
}

/// What onboarding stores; the rest of the row starts at its defaults.
pub struct NewTenant<'a> {
    pub name: &'a str,
    pub organization_id: Uuid,
    pub display_name: &'a str,
    pub owners: &'a [Owner],
    pub limits: &'a Limits,
    pub pod_security: PodSecurityLevel,
    pub network: &'a Network,
    pub billing: &'a Billing,
}

pub async fn insert(db: impl PgExecutor<'_>, t: NewTenant<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "insert into tenant (name, organization_id, display_name, owners, limits, pod_security, network, billing)
         values ($1, $2, $3, $4, $5, $6, $7, $8) returning tenant_id",
        t.name,
        t.organization_id,
        t.display_name,
        Json(t.owners) as _,
        Json(t.limits) as _,
        t.pod_security.as_str(),
        Json(t.network) as _,
        Json(t.billing) as _,
    )
    .fetch_one(db)
    .await
}

/// Changes a namespace's quota by `patch` under the row's lock; answers the quota before and
/// after.
pub async fn change_namespace_quota(
    db: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    name: &str,
    patch: QuotaPatch,
) -> sqlx::Result<(Quota, Quota)> {
    let before = sqlx::query_as!(
        NamespaceRow,
        "select tenant_id, name, cpu_milli, memory_bytes, storage_bytes, pods, load_balancers
         from tenant_namespace where tenant_id = $1 and name = $2 for update",
        tenant_id,
        name,
    )
    .fetch_one(&mut *db)
    .await?
    .quota();
    let after = patch.apply_to(before);
    sqlx::query!(
        "update tenant_namespace
            set cpu_milli = $3, memory_bytes = $4, storage_bytes = $5, pods = $6, load_balancers = $7
         where tenant_id = $1 and name = $2",
        tenant_id,
        name,
        after.cpu_milli,
        after.memory_bytes,
        after.storage_bytes,
        after.pods,
        after.load_balancers,
    )
    .execute(&mut *db)
    .await?;
    Ok((before, after))
}

/// What an edit may change of a tenant.
pub struct EditedTenant<'a> {
    pub display_name: &'a str,
    pub owners: &'a [Owner],
    pub limits: &'a Limits,
    pub pod_security: PodSecurityLevel,
    pub network: &'a Network,
}

/// Stores an edit of the tenant's spec (the caller bumps its version).
pub async fn update_spec(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    e: EditedTenant<'_>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update tenant set display_name = $2, owners = $3, limits = $4, pod_security = $5, network = $6,
                updated_at = now()
         where tenant_id = $1",
        tenant_id,
        e.display_name,
        Json(e.owners) as _,
        Json(e.limits) as _,
        e.pod_security.as_str(),
        Json(e.network) as _,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Suspends (`true`) or resumes a tenant under its row lock; answers false when it already was
/// in that state.
pub async fn set_suspended(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    suspended: bool,
    by: &str,
    reason: &str,
) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update tenant set suspended = $2, updated_at = now(),
                suspended_at = case when $2 then now() else suspended_at end,
                suspended_by = case when $2 then $3 else suspended_by end,
                suspend_reason = case when $2 then $4 else suspend_reason end
         where tenant_id = $1 and suspended <> $2",
        tenant_id,
        suspended,
        by,
        reason,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Sets the tenant's `network.allowFrom` (the grants of its approved links).
pub async fn set_allow_from(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    grants: &[Grant],
) -> sqlx::Result<()> {
    sqlx::query!(
        "update tenant set network = jsonb_set(network, '{allowFrom}', $2), updated_at = now()
         where tenant_id = $1",
        tenant_id,
        Json(grants) as _,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Locks the tenant's row for the rest of the transaction.
pub async fn lock(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<Option<TenantRow>> {
    select_tenants!("where t.tenant_id = $1 for update of t", tenant_id)
        .fetch_optional(db)
        .await
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
    sqlx::query!(
        "insert into tenant_namespace (tenant_id, name, kube_name, cpu_milli, memory_bytes, storage_bytes, pods, load_balancers)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        tenant_id,
        name,
        kube_name,
        q.cpu_milli,
        q.memory_bytes,
        q.storage_bytes,
        q.pods,
        q.load_balancers,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A tenant not yet gone, by name.
pub async fn by_name(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<TenantRow>> {
    select_tenants!("where t.name = $1 and t.gone_at is null", name)
        .fetch_optional(db)
        .await
}

/// A tenant by name (unless gone) with its namespaces, in one round trip.
pub async fn by_name_with_namespaces(
    db: impl PgExecutor<'_>,
    name: &str,
) -> sqlx::Result<Option<(TenantRow, Vec<NamespaceRow>)>> {
    let row = select_tenants!(
        @with
        "(select coalesce(jsonb_agg(jsonb_build_object('tenant_id', n.tenant_id, 'name', n.name,
              'cpu_milli', n.cpu_milli, 'memory_bytes', n.memory_bytes, 'storage_bytes', n.storage_bytes,
              'pods', n.pods, 'load_balancers', n.load_balancers) order by n.name), '[]'::jsonb)
           from tenant_namespace n where n.tenant_id = t.tenant_id)",
        "where t.name = $1 and t.gone_at is null",
        name
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|mut t| {
        let namespaces = t.namespaces.take().map(|j| j.0).unwrap_or_default();
        (t, namespaces)
    }))
}

/// A tenant by id, even once gone.
pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<TenantRow>> {
    select_tenants!("where t.tenant_id = $1", id)
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
    select_tenants!(
        "where t.gone_at is null and ($1::uuid is null or t.organization_id = $1)
           and ($2::uuid is null or t.tenant_id = $2)
           and ($3::text is null or o.name = $3)
           and ($4::text is null or t.name > $4)
         order by t.name limit $5",
        only_organization,
        only_tenant,
        organization_name,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// The namespaces of these tenants, by tenant and name.
pub async fn namespaces(
    db: impl PgExecutor<'_>,
    tenant_ids: &[Uuid],
) -> sqlx::Result<Vec<NamespaceRow>> {
    sqlx::query_as!(
        NamespaceRow,
        "select tenant_id, name, cpu_milli, memory_bytes, storage_bytes, pods, load_balancers
         from tenant_namespace where tenant_id = any($1) order by tenant_id, name",
        tenant_ids,
    )
    .fetch_all(db)
    .await
}

/// Every namespace that holds capacity, with its tenant's name and organization.
pub async fn held_namespaces(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<HeldNamespaceRow>> {
    let rows = sqlx::query!(
        r#"select organization_id as "organization_id!", tenant as "tenant!", name as "name!",
                  cpu_milli as "cpu_milli!", memory_bytes as "memory_bytes!",
                  storage_bytes as "storage_bytes!", pods as "pods!", load_balancers as "load_balancers!"
           from held_namespace"#
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| HeldNamespaceRow {
            organization_id: r.organization_id,
            tenant: r.tenant,
            name: r.name,
            quota: Quota {
                cpu_milli: r.cpu_milli,
                memory_bytes: r.memory_bytes,
                storage_bytes: r.storage_bytes,
                pods: r.pods,
                load_balancers: r.load_balancers,
            },
        })
        .collect())
}

/// Records that the tenant's desired state changed; answers the new version.
pub async fn bump_version(db: impl PgExecutor<'_>, tenant_id: Uuid) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        "update tenant set spec_version = spec_version + 1, next_apply_at = null, updated_at = now()
         where tenant_id = $1 returning spec_version",
        tenant_id,
    )
    .fetch_one(db)
    .await
}

pub async fn mark_applied(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
    version: i64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update tenant set applied_version = greatest(applied_version, $2), applied_at = now(), apply_error = null,
                apply_attempts = 0, next_apply_at = null, apply_refused = false
         where tenant_id = $1",
        tenant_id,
        version,
    )
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
    sqlx::query_scalar!(
        "update tenant t set apply_error = $2, apply_refused = $3, apply_attempts = t.apply_attempts + 1,
                next_apply_at = now() + make_interval(secs => $4)
         from (select tenant_id, apply_error from tenant where tenant_id = $1) before
         where t.tenant_id = before.tenant_id
         returning before.apply_error",
        tenant_id,
        error,
        refused,
        retry_in,
    )
    .fetch_one(db)
    .await
}

/// Tenants whose desired state the cluster does not have yet and whose backoff is over; with
/// `all`, also every other tenant the cluster has not refused (the periodic full pass). Never
/// an offboarded one.
pub async fn to_apply(db: impl PgExecutor<'_>, all: bool) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar!(
        "select tenant_id from tenant
         where offboarded_at is null
           and (($1 and not apply_refused)
                or (applied_version < spec_version and (next_apply_at is null or next_apply_at <= now())))
         order by name",
        all,
    )
    .fetch_all(db)
    .await
}

/// How many tenants the cluster does not have the latest desired state of (offboarded ones
/// aside).
pub async fn count_unapplied(db: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(
        r#"select count(*) as "count!" from tenant where offboarded_at is null and applied_version < spec_version"#,
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
    let updated = sqlx::query!(
        "update tenant set offboarded_at = now(), offboarded_by = $2, updated_at = now()
         where tenant_id = $1 and offboarded_at is null",
        tenant_id,
        by,
    )
    .execute(db)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// An offboarded tenant the cluster may still hold.
#[derive(Debug, Clone)]
pub struct Terminating {
    pub tenant_id: Uuid,
    pub name: String,
    pub organization_id: Uuid,
}

/// Offboarded tenants the cluster may still hold.
pub async fn terminating(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<Terminating>> {
    sqlx::query_as!(
        Terminating,
        "select tenant_id, name, organization_id from tenant
         where offboarded_at is not null and gone_at is null order by name",
    )
    .fetch_all(db)
    .await
}

/// Records that the cluster no longer has the tenant: its namespace names are free again.
/// Answers false when it was already recorded.
pub async fn mark_gone(db: &mut sqlx::PgConnection, tenant_id: Uuid) -> sqlx::Result<bool> {
    let updated = sqlx::query!(
        "update tenant set gone_at = now(), updated_at = now()
         where tenant_id = $1 and offboarded_at is not null and gone_at is null",
        tenant_id,
    )
    .execute(&mut *db)
    .await?;
    if updated.rows_affected() == 0 {
        return Ok(false);
    }
    sqlx::query!(
        "update tenant_namespace set released_at = now() where tenant_id = $1",
        tenant_id,
    )
    .execute(&mut *db)
    .await?;
    Ok(true)
}

/// The tenants of an organization, offboarded ones included: (id, name).
pub async fn in_organization(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
) -> sqlx::Result<Vec<(Uuid, String)>> {
    let rows = sqlx::query!(
        "select tenant_id, name from tenant where organization_id = $1 order by name",
        organization_id
    )
    .fetch_all(db)
    .await?;
    Ok(rows.into_iter().map(|r| (r.tenant_id, r.name)).collect())
}
