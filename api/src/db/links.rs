//! Data-sharing links between agencies.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::link::{ApprovedLink, LinkState, Parties};

#[derive(Debug, Clone)]
pub struct LinkRow {
    pub link_id: Uuid,
    pub from_tenant_id: Uuid,
    pub from_tenant: String,
    pub from_organization_id: Uuid,
    pub from_namespace: String,
    pub to_tenant_id: Uuid,
    pub to_tenant: String,
    pub to_organization_id: Uuid,
    pub ports: Vec<i32>,
    pub purpose: String,
    pub state: LinkState,
    pub requested_by: String,
    pub provider_approved_by: Option<String>,
    pub provider_approved_at: Option<DateTime<Utc>>,
    pub consumer_approved_by: Option<String>,
    pub consumer_approved_at: Option<DateTime<Utc>>,
    pub closed_by: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
    pub close_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl LinkRow {
    pub fn parties(&self) -> Parties {
        Parties {
            from_organization: self.from_organization_id,
            from_tenant: self.from_tenant_id,
            to_organization: self.to_organization_id,
            to_tenant: self.to_tenant_id,
        }
    }
}

/// Selects [`LinkRow`]s: the columns, then `$rest` (the where clause and so on).
macro_rules! select_links {
    ($rest:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            LinkRow,
            r#"select l.link_id, l.from_tenant_id, ft.name as from_tenant,
                      ft.organization_id as from_organization_id, l.from_namespace,
                      l.to_tenant_id, tt.name as to_tenant, tt.organization_id as to_organization_id,
                      l.ports, l.purpose, l.state as "state: LinkState", l.requested_by,
                      l.provider_approved_by, l.provider_approved_at, l.consumer_approved_by,
                      l.consumer_approved_at, l.closed_by, l.closed_at, l.close_reason,
                      l.created_at, l.updated_at
               from link l
               join tenant ft on ft.tenant_id = l.from_tenant_id
               join tenant tt on tt.tenant_id = l.to_tenant_id "# + $rest
            $(, $arg)*
        )
    };
}

pub struct NewLink<'a> {
    pub from_tenant_id: Uuid,
    pub from_namespace: &'a str,
    pub to_tenant_id: Uuid,
    pub ports: &'a [i32],
    pub purpose: &'a str,
    pub requested_by: &'a str,
}

/// Stores a pending link; answers its id.
pub async fn insert(db: impl PgExecutor<'_>, l: NewLink<'_>) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "insert into link (from_tenant_id, from_namespace, to_tenant_id, ports, purpose, state, requested_by)
         values ($1, $2, $3, $4, $5, $6, $7) returning link_id",
        l.from_tenant_id,
        l.from_namespace,
        l.to_tenant_id,
        l.ports,
        l.purpose,
        LinkState::Pending as LinkState,
        l.requested_by,
    )
    .fetch_one(db)
    .await
}

pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<LinkRow>> {
    select_links!("where l.link_id = $1", id)
        .fetch_optional(db)
        .await
}

/// Reads a link and locks it for the rest of the transaction.
pub async fn lock(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<LinkRow>> {
    select_links!("where l.link_id = $1 for update of l", id)
        .fetch_optional(db)
        .await
}

/// Whether an open link (pending or approved) already asks for the same thing.
pub async fn open_exists(
    db: impl PgExecutor<'_>,
    from_tenant_id: Uuid,
    from_namespace: &str,
    to_tenant_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"select exists (select 1 from link where from_tenant_id = $1 and from_namespace = $2
                  and to_tenant_id = $3 and state in ('pending', 'approved')) as "exists!""#,
        from_tenant_id,
        from_namespace,
        to_tenant_id,
    )
    .fetch_one(db)
    .await
}

pub struct ListFilter<'a> {
    /// Only links with an agency of this organization on either side.
    pub only_organization: Option<Uuid>,
    /// Only links with this agency on either side.
    pub only_tenant: Option<Uuid>,
    /// Only links with the agency of this name on either side.
    pub tenant_name: Option<&'a str>,
    pub state: Option<LinkState>,
    /// Continue after this (created_at, id), newest first.
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

pub async fn list(db: impl PgExecutor<'_>, f: ListFilter<'_>) -> sqlx::Result<Vec<LinkRow>> {
    select_links!(
        "where ($1::uuid is null or ft.organization_id = $1 or tt.organization_id = $1)
           and ($2::uuid is null or l.from_tenant_id = $2 or l.to_tenant_id = $2)
           and ($3::text is null or ft.name = $3 or tt.name = $3)
           and ($4::text is null or l.state = $4)
           and ($5::timestamptz is null or (l.created_at, l.link_id) < ($5, $6))
         order by l.created_at desc, l.link_id desc limit $7",
        f.only_organization,
        f.only_tenant,
        f.tenant_name,
        f.state as Option<LinkState>,
        f.after.map(|a| a.0),
        f.after.map(|a| a.1),
        f.limit,
    )
    .fetch_all(db)
    .await
}

/// Records the provider side's approval.
pub async fn approve_provider(db: impl PgExecutor<'_>, id: Uuid, by: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update link set provider_approved_by = $2, provider_approved_at = now(), updated_at = now()
         where link_id = $1 and provider_approved_at is null",
        id,
        by,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Records the consumer organization's approval.
pub async fn approve_consumer(db: impl PgExecutor<'_>, id: Uuid, by: &str) -> sqlx::Result<()> {
    sqlx::query!(
        "update link set consumer_approved_by = $2, consumer_approved_at = now(), updated_at = now()
         where link_id = $1 and consumer_approved_at is null",
        id,
        by,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Marks a link approved: every approval is in.
pub async fn mark_approved(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "update link set state = 'approved', updated_at = now() where link_id = $1 and state = 'pending'",
        id,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Closes an open link (rejected, cancelled or revoked), recording who and why.
pub async fn close(
    db: impl PgExecutor<'_>,
    id: Uuid,
    state: LinkState,
    by: &str,
    reason: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "update link set state = $2, closed_by = $3, closed_at = now(), close_reason = $4, updated_at = now()
         where link_id = $1 and state in ('pending', 'approved')",
        id,
        state as LinkState,
        by,
        reason,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// The approved links into a tenant: what its `allowFrom` grants.
pub async fn approved_into(
    db: impl PgExecutor<'_>,
    to_tenant_id: Uuid,
) -> sqlx::Result<Vec<ApprovedLink>> {
    sqlx::query_as!(
        ApprovedLink,
        "select ft.name as from_tenant, l.from_namespace, l.ports
         from link l join tenant ft on ft.tenant_id = l.from_tenant_id
         where l.to_tenant_id = $1 and l.state = 'approved'
         order by ft.name, l.from_namespace",
        to_tenant_id,
    )
    .fetch_all(db)
    .await
}

/// The open links with the tenant on either side, locked.
pub async fn open_involving(
    db: impl PgExecutor<'_>,
    tenant_id: Uuid,
) -> sqlx::Result<Vec<LinkRow>> {
    select_links!(
        "where (l.from_tenant_id = $1 or l.to_tenant_id = $1) and l.state in ('pending', 'approved')
         order by l.created_at for update of l",
        tenant_id,
    )
    .fetch_all(db)
    .await
}
