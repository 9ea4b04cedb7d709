//! The web console's sessions and its OIDC sign-ins in flight.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::domain::principal::{Caller, Role};

pub struct NewSession<'a> {
    pub session_hash: &'a [u8],
    pub principal_id: Option<Uuid>,
    pub caller: &'a Caller,
    pub csrf_token: &'a str,
    pub expires_at: DateTime<Utc>,
}

pub async fn insert_session(db: impl PgExecutor<'_>, s: &NewSession<'_>) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into console_session (session_hash, principal_id, caller_name, role,
             organization_id, tenant_id, csrf_token, expires_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8)",
        s.session_hash,
        s.principal_id,
        s.caller.name,
        s.caller.role as Role,
        s.caller.organization_id,
        s.caller.tenant_id,
        s.csrf_token,
        s.expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// A live session: who it is now and its CSRF token.
pub struct SessionRow {
    pub caller: Caller,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

/// The session with this hash, unless it expired or its principal was removed. A registered
/// principal's session answers the principal as it is now (its role may have changed).
pub async fn session(db: impl PgExecutor<'_>, hash: &[u8]) -> sqlx::Result<Option<SessionRow>> {
    let row = sqlx::query!(
        r#"select coalesce(p.name, s.caller_name) as "name!",
                  coalesce(p.role, s.role) as "role!: Role",
                  case when p.principal_id is null then s.organization_id
                       else coalesce(p.organization_id, t.organization_id) end as organization_id,
                  case when p.principal_id is null then s.tenant_id else p.tenant_id end as tenant_id,
                  s.csrf_token, s.expires_at
           from console_session s
           left join principal p on p.principal_id = s.principal_id
           left join tenant t on t.tenant_id = p.tenant_id
           where s.session_hash = $1 and s.expires_at > now()
             and (s.principal_id is null or p.deleted_at is null)"#,
        hash,
    )
    .fetch_optional(db)
    .await?;
    Ok(row.map(|r| SessionRow {
        caller: Caller {
            name: r.name,
            role: r.role,
            organization_id: r.organization_id,
            tenant_id: r.tenant_id,
        },
        csrf_token: r.csrf_token,
        expires_at: r.expires_at,
    }))
}

pub async fn delete_session(db: impl PgExecutor<'_>, hash: &[u8]) -> sqlx::Result<bool> {
    let done = sqlx::query!("delete from console_session where session_hash = $1", hash)
        .execute(db)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Forgets sessions and sign-ins that have expired.
pub async fn delete_expired(db: impl PgExecutor<'_> + Copy) -> sqlx::Result<u64> {
    let sessions = sqlx::query!("delete from console_session where expires_at <= now()")
        .execute(db)
        .await?;
    let sign_ins = sqlx::query!("delete from console_sign_in where expires_at <= now()")
        .execute(db)
        .await?;
    Ok(sessions.rows_affected() + sign_ins.rows_affected())
}

pub async fn insert_sign_in(
    db: impl PgExecutor<'_>,
    state_hash: &[u8],
    code_verifier: &str,
    nonce: &str,
    return_to: &str,
    expires_at: DateTime<Utc>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into console_sign_in (state_hash, code_verifier, nonce, return_to, expires_at)
         values ($1, $2, $3, $4, $5)",
        state_hash,
        code_verifier,
        nonce,
        return_to,
        expires_at,
    )
    .execute(db)
    .await?;
    Ok(())
}

pub struct SignInRow {
    pub code_verifier: String,
    pub nonce: String,
    pub return_to: String,
}

/// Takes the sign-in with this state (it can be used once), unless it expired.
pub async fn take_sign_in(
    db: impl PgExecutor<'_>,
    state_hash: &[u8],
) -> sqlx::Result<Option<SignInRow>> {
    sqlx::query_as!(
        SignInRow,
        "delete from console_sign_in where state_hash = $1 and expires_at > now()
         returning code_verifier, nonce, return_to",
        state_hash,
    )
    .fetch_optional(db)
    .await
}

/// A principal one may sign in as in `govcloud dev`.
pub struct SignableRow {
    pub principal_id: Uuid,
    pub name: String,
    pub role: Role,
    pub organization_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
    pub scope_name: Option<String>,
}

/// The principals not removed, people's roles only (not the metering account).
pub async fn signable(db: impl PgExecutor<'_>) -> sqlx::Result<Vec<SignableRow>> {
    sqlx::query_as!(
        SignableRow,
        r#"select p.principal_id, p.name, p.role as "role: Role",
                  coalesce(p.organization_id, t.organization_id) as organization_id, p.tenant_id,
                  coalesce(t.display_name, o.display_name) as scope_name
           from principal p
           left join tenant t on t.tenant_id = p.tenant_id
           left join organization o on o.organization_id = p.organization_id
           where p.deleted_at is null and p.role <> 'metering'
           order by p.role, p.name"#,
    )
    .fetch_all(db)
    .await
}

/// The principal registered for an OIDC subject, unless removed.
pub async fn principal_of_subject(
    db: impl PgExecutor<'_>,
    subject: &str,
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "select principal_id from principal where oidc_subject = $1 and deleted_at is null",
        subject,
    )
    .fetch_optional(db)
    .await
}
