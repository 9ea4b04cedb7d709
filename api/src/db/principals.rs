//! Principals (people and automation accounts) and their API tokens.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::principal::{Caller, PrincipalScope, Role};

/// A principal not removed, with the names of its organization and tenant. A tenant admin's
/// organization is its tenant's.
#[derive(Debug, Clone)]
pub struct PrincipalRow {
    pub principal_id: Uuid,
    pub name: String,
    pub role: Role,
    pub organization_id: Option<Uuid>,
    pub organization: Option<String>,
    pub tenant_id: Option<Uuid>,
    pub tenant: Option<String>,
    pub oidc_subject: Option<String>,
    /// Tokens neither revoked nor expired.
    pub active_tokens: i64,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<String>,
}

impl PrincipalRow {
    pub fn scope(&self) -> PrincipalScope {
        PrincipalScope {
            role: self.role,
            organization_id: self.organization_id,
            tenant_id: self.tenant_id,
        }
    }
}

/// Selects [`PrincipalRow`]s of principals not removed: the columns, then `$rest` (more of the
/// where clause and so on).
macro_rules! select_principals {
    ($rest:literal $(, $arg:expr)* $(,)?) => {
        sqlx::query_as!(
            PrincipalRow,
            r#"select p.principal_id, p.name, p.role as "role: Role",
                      coalesce(p.organization_id, t.organization_id) as organization_id,
                      o.name as "organization?", p.tenant_id, t.name as "tenant?", p.oidc_subject,
                      (select count(*) from api_token k where k.principal_id = p.principal_id
                          and k.revoked_at is null and (k.expires_at is null or k.expires_at > now()))
                        as "active_tokens!",
                      p.created_at, p.created_by
               from principal p
               left join tenant t on t.tenant_id = p.tenant_id
               left join organization o on o.organization_id = coalesce(p.organization_id, t.organization_id)
               where p.deleted_at is null "# + $rest
            $(, $arg)*
        )
    };
}

struct CallerRow {
    name: String,
    role: Role,
    organization_id: Option<Uuid>,
    tenant_id: Option<Uuid>,
}

impl From<CallerRow> for Caller {
    fn from(r: CallerRow) -> Self {
        Self {
            name: r.name,
            role: r.role,
            organization_id: r.organization_id,
            tenant_id: r.tenant_id,
        }
    }
}

/// The principal holding this token, when the token is neither revoked nor expired and the
/// principal not removed, with when the token expires.
pub async fn by_token_hash(
    db: impl PgExecutor<'_>,
    hash: &[u8],
) -> sqlx::Result<Option<(Caller, Option<DateTime<Utc>>)>> {
    let row = sqlx::query!(
        r#"select p.name, p.role as "role: Role",
                  coalesce(p.organization_id, t.organization_id) as organization_id, p.tenant_id,
                  k.expires_at
           from api_token k
           join principal p on p.principal_id = k.principal_id
           left join tenant t on t.tenant_id = p.tenant_id
           where k.token_hash = $1 and k.revoked_at is null
             and (k.expires_at is null or k.expires_at > now()) and p.deleted_at is null"#,
        hash,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| {
        (
            Caller {
                name: r.name,
                role: r.role,
                organization_id: r.organization_id,
                tenant_id: r.tenant_id,
            },
            r.expires_at,
        )
    }))
}

/// The principal registered for this OIDC subject, unless removed.
pub async fn by_oidc_subject(
    db: impl PgExecutor<'_>,
    subject: &str,
) -> sqlx::Result<Option<Caller>> {
    let row = sqlx::query_as!(
        CallerRow,
        r#"select p.name, p.role as "role: Role",
                  coalesce(p.organization_id, t.organization_id) as organization_id, p.tenant_id
           from principal p left join tenant t on t.tenant_id = p.tenant_id
           where p.oidc_subject = $1 and p.deleted_at is null"#,
        subject,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(Into::into))
}

pub struct NewPrincipal<'a> {
    pub name: &'a str,
    pub role: Role,
    pub organization_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub oidc_subject: Option<&'a str>,
    /// Who registered it: a principal's name, or `system:…`.
    pub created_by: &'a str,
}

/// Registers a principal; answers its id. A tenant admin is stored with its tenant only.
pub async fn insert(db: impl PgExecutor<'_>, p: NewPrincipal<'_>) -> sqlx::Result<Uuid> {
    let organization_id = match p.role {
        Role::TenantAdmin => None,
        _ => p.organization_id,
    };
    sqlx::query_scalar!(
        "insert into principal (name, role, organization_id, tenant_id, oidc_subject, created_by)
         values ($1, $2, $3, $4, $5, $6) returning principal_id",
        p.name,
        p.role as Role,
        organization_id,
        p.tenant_id,
        p.oidc_subject,
        p.created_by,
    )
    .fetch_one(db)
    .await
}

/// Stores a token's hash for a principal, valid until `expires_at` (or until revoked).
pub async fn insert_token(
    db: impl PgExecutor<'_>,
    principal_id: Uuid,
    hash: &[u8],
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into api_token (principal_id, token_hash, expires_at) values ($1, $2, $3)",
        principal_id,
        hash,
        expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Revokes every token of the principal still valid; answers how many.
pub async fn revoke_tokens(
    db: impl PgExecutor<'_>,
    principal_id: Uuid,
    by: &str,
) -> sqlx::Result<u64> {
    let done = sqlx::query!(
        "update api_token set revoked_at = now(), revoked_by = $2
         where principal_id = $1 and revoked_at is null",
        principal_id,
        by,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// A principal not removed, by id.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<PrincipalRow>> {
    select_principals!("and p.principal_id = $1", id)
        .fetch_optional(db)
        .await
}

/// A principal not removed, by id, locked for the rest of the transaction.
pub async fn lock(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<PrincipalRow>> {
    select_principals!("and p.principal_id = $1 for update of p", id)
        .fetch_optional(db)
        .await
}

/// The id of a principal not removed, by name.
pub async fn id_by_name(db: impl PgExecutor<'_>, name: &str) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "select principal_id from principal where name = $1 and deleted_at is null",
        name,
    )
    .fetch_optional(db)
    .await
}

/// A page of principals by name, limited to an organization's people (its agencies' included)
/// when `only_organization` is given.
pub async fn list(
    db: impl PgExecutor<'_>,
    only_organization: Option<Uuid>,
    role: Option<Role>,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<PrincipalRow>> {
    select_principals!(
        "and ($1::uuid is null or coalesce(p.organization_id, t.organization_id) = $1)
         and ($2::text is null or p.role = $2)
         and ($3::text is null or p.name > $3)
         order by p.name limit $4",
        only_organization,
        role as Option<Role>,
        after,
        limit,
    )
    .fetch_all(db)
    .await
}

/// Removes a principal: it can no longer sign in and its tokens stop working. The row stays,
/// and its name is never given to anyone else. Answers false when it was already removed.
pub async fn mark_deleted(db: impl PgExecutor<'_>, id: Uuid, by: &str) -> sqlx::Result<bool> {
    let done = sqlx::query!(
        "update principal set deleted_at = now(), deleted_by = $2, oidc_subject = null
         where principal_id = $1 and deleted_at is null",
        id,
        by,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes every principal of a tenant (its agency is offboarded) and revokes their tokens;
/// answers their names.
pub async fn delete_of_tenant(
    db: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    by: &str,
) -> sqlx::Result<Vec<String>> {
    let removed = sqlx::query!(
        "update principal set deleted_at = now(), deleted_by = $2, oidc_subject = null
         where tenant_id = $1 and deleted_at is null returning principal_id, name",
        tenant_id,
        by,
    )
    .fetch_all(&mut *db)
    .await?;
    let ids: Vec<Uuid> = removed.iter().map(|r| r.principal_id).collect();
    sqlx::query!(
        "update api_token set revoked_at = now(), revoked_by = $2
         where principal_id = any($1) and revoked_at is null",
        &ids,
        by,
    )
    .execute(&mut *db)
    .await?;
    Ok(removed.into_iter().map(|r| r.name).collect())
}
