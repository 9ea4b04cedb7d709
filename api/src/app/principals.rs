//! People and automation accounts, and their API tokens: who is calling ([`authenticate`]),
//! and registering, listing and removing principals and rotating their tokens — platform
//! admins for everyone, organization admins for their own organization's people. A token is
//! shown once; revoking one takes effect on the next request (every request looks it up).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::oidc::Identity;
use crate::app::{AppError, AppResult};
use crate::db::principals::NewPrincipal;
use crate::db::{self, audit};
use crate::domain::field::FieldError;
use crate::domain::principal::{
    Caller, GroupRole, PrincipalScope, Role, check_name, rule_for, scope_mismatch,
};
use crate::domain::request::HORIZON_DAYS;
use crate::domain::token;

pub use crate::db::principals::PrincipalRow;

/// The principal presenting `credential` (an API token, or an OIDC ID token when OIDC is
/// configured), if any. A person with an ID token is the principal registered for its subject;
/// failing that, the first group rule that names one of its groups gives its role.
pub async fn authenticate(state: &AppState, credential: &str) -> AppResult<Option<Caller>> {
    if token::looks_like_token(credential) {
        let hash = token::hash(credential);
        if let Some(caller) = state.tokens.get(&hash) {
            return Ok(Some(caller));
        }
        let generation = state.tokens.generation();
        let found = db::principals::by_token_hash(&state.db, &hash).await?;
        if let Some((caller, expires_at)) = &found {
            state
                .tokens
                .put(hash, caller.clone(), *expires_at, generation);
        }
        return Ok(found.map(|(caller, _)| caller));
    }
    let Some(oidc) = &state.oidc else {
        return Ok(None);
    };
    let identity = match oidc.verify(credential).await {
        Ok(identity) => identity,
        Err(e) => {
            tracing::info!(error = %e, "bearer JWT refused");
            return Ok(None);
        }
    };
    caller_for_identity(state, &identity).await
}

/// Who a verified OIDC identity is: the principal registered for its subject, else what the
/// first group rule naming one of its groups makes of it, else no one.
pub async fn caller_for_identity(
    state: &AppState,
    identity: &Identity,
) -> AppResult<Option<Caller>> {
    let Some(oidc) = &state.oidc else {
        return Ok(None);
    };
    if let Some(registered) = db::principals::by_oidc_subject(&state.db, &identity.subject).await? {
        return Ok(Some(registered));
    }
    let Some(rule) = rule_for(oidc.group_roles(), &identity.groups) else {
        return Ok(None);
    };
    caller_from_rule(state, rule, identity).await
}

/// The caller a group rule makes of a person, when its organization or tenant exists (and the
/// tenant is not being offboarded).
async fn caller_from_rule(
    state: &AppState,
    rule: &GroupRole,
    identity: &Identity,
) -> AppResult<Option<Caller>> {
    let (organization_id, tenant_id) = match (&rule.organization, &rule.tenant) {
        (Some(org), None) => match db::organizations::by_name(&state.db, org).await? {
            Some(o) => (Some(o.organization_id), None),
            None => return Ok(unresolved(rule)),
        },
        (None, Some(tenant)) => match db::tenants::by_name(&state.db, tenant).await? {
            Some(t) if t.offboarded_at.is_none() => (Some(t.organization_id), Some(t.tenant_id)),
            _ => return Ok(unresolved(rule)),
        },
        _ => (None, None),
    };
    Ok(Some(Caller {
        name: format!("oidc:{}", identity.display),
        role: rule.role,
        organization_id,
        tenant_id,
    }))
}

fn unresolved(rule: &GroupRole) -> Option<Caller> {
    tracing::warn!(group = %rule.group, "a group rule names an organization or tenant that does not exist (or is leaving)");
    None
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewPrincipalDoc {
    /// Unique for ever (the audit log names people by it): an email address works.
    #[schema(example = "an.nguyen@nghean.gov.vn")]
    pub name: String,
    pub role: Role,
    /// The organization of an org-admin or finance principal.
    #[schema(example = "nghe-an")]
    pub organization: Option<String>,
    /// The tenant of a tenant-admin principal.
    pub tenant: Option<String>,
    /// The OIDC `sub` of the person, so their ID tokens are accepted.
    pub oidc_subject: Option<String>,
    /// Whether to issue an API token now (shown once in the answer); true when absent.
    pub api_token: Option<bool>,
    /// When that token stops working; never when absent. At most 2 years ahead.
    pub token_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RotateToken {
    /// When the new token stops working; never when absent. At most 2 years ahead.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token just issued: the only time it is shown.
pub struct IssuedToken {
    pub token: String,
    pub expires_at: Option<DateTime<Utc>>,
}

fn check_expiry(field: &str, at: Option<DateTime<Utc>>, errors: &mut Vec<FieldError>) {
    let Some(at) = at else { return };
    let now = Utc::now();
    if at <= now {
        errors.push(FieldError::new(field, "must be in the future"));
    } else if at > now + chrono::Duration::days(HORIZON_DAYS) {
        errors.push(FieldError::new(
            field,
            "must be within 2 years from now; rotate the token before then",
        ));
    }
}

/// Issues a token for a principal, inside the caller's transaction.
async fn issue_token(
    tx: &mut sqlx::PgConnection,
    principal_id: Uuid,
    expires_at: Option<DateTime<Utc>>,
) -> AppResult<IssuedToken> {
    let token = token::generate();
    db::principals::insert_token(&mut *tx, principal_id, &token::hash(&token), expires_at).await?;
    Ok(IssuedToken { token, expires_at })
}

/// A principal the caller may see, or not found.
fn visible(caller: &Caller, row: Option<PrincipalRow>, id: &str) -> AppResult<PrincipalRow> {
    row.filter(|p| caller.sees_principal(&p.scope()))
        .ok_or_else(|| AppError::not_found("principal", id))
}

fn parse_id(id: &str) -> AppResult<Uuid> {
    id.parse::<Uuid>()
        .map_err(|_| AppError::not_found("principal", id))
}

/// A page of the principals the caller may see, by name: platform admins and auditors see
/// everyone, organization admins their organization's people.
pub async fn list(
    state: &AppState,
    caller: &Caller,
    role: Option<Role>,
    after: Option<&str>,
    limit: i64,
) -> AppResult<Vec<PrincipalRow>> {
    caller.require(
        &[Role::PlatformAdmin, Role::Auditor, Role::OrgAdmin],
        "list principals",
    )?;
    Ok(db::principals::list(&state.db, caller.organization_filter(), role, after, limit).await?)
}

pub async fn show(state: &AppState, caller: &Caller, id: &str) -> AppResult<PrincipalRow> {
    caller.require(
        &[Role::PlatformAdmin, Role::Auditor, Role::OrgAdmin],
        "read principals",
    )?;
    let row = db::principals::get(&state.db, parse_id(id)?).await?;
    visible(caller, row, id)
}

/// Registers a principal, with an API token unless asked not to.
pub async fn create(
    state: &AppState,
    caller: &Caller,
    body: &NewPrincipalDoc,
) -> AppResult<(PrincipalRow, Option<IssuedToken>)> {
    caller.require(
        &[Role::PlatformAdmin, Role::OrgAdmin],
        "register principals",
    )?;
    let mut errors = Vec::new();
    if let Err(m) = check_name(&body.name) {
        errors.push(FieldError::new("name", m));
    }
    if let Some(why) = scope_mismatch(
        body.role,
        body.organization.is_some(),
        body.tenant.is_some(),
    ) {
        errors.push(FieldError::new("role", why));
    }
    if body
        .oidc_subject
        .as_deref()
        .is_some_and(|s| s.trim().is_empty() || s.len() > 255)
    {
        errors.push(FieldError::new(
            "oidcSubject",
            "must be 1 to 255 characters",
        ));
    }
    let wants_token = body.api_token.unwrap_or(true);
    if !wants_token && body.token_expires_at.is_some() {
        errors.push(FieldError::new(
            "tokenExpiresAt",
            "only with an API token (apiToken true)",
        ));
    }
    if !wants_token && body.oidc_subject.is_none() {
        errors.push(FieldError::new(
            "apiToken",
            "a principal needs an API token or an OIDC subject to sign in with",
        ));
    }
    check_expiry("tokenExpiresAt", body.token_expires_at, &mut errors);
    AppError::check(errors)?;
    let organization_id = match &body.organization {
        Some(o) => Some(
            crate::app::organizations::visible(state, caller, o)
                .await?
                .organization_id,
        ),
        None => None,
    };
    let (tenant_id, tenant_org) = match &body.tenant {
        Some(t) => {
            let t = crate::app::tenants::visible(state, caller, t).await?;
            crate::app::tenants::ensure_active(&t)?;
            (Some(t.tenant_id), Some(t.organization_id))
        }
        None => (None, None),
    };
    caller.manages(&PrincipalScope {
        role: body.role,
        organization_id: organization_id.or(tenant_org),
        tenant_id,
    })?;
    let mut tx = state.db.begin().await?;
    let id = db::principals::insert(
        &mut *tx,
        NewPrincipal {
            name: &body.name,
            role: body.role,
            organization_id,
            tenant_id,
            oidc_subject: body.oidc_subject.as_deref(),
            created_by: &caller.name,
        },
    )
    .await
    .map_err(|e| {
        if db::is_unique_violation(&e) {
            AppError::Conflict(format!(
                "a principal named {:?} or with that OIDC subject exists or existed: names are never reused",
                body.name
            ))
        } else {
            e.into()
        }
    })?;
    let issued = match wants_token {
        true => Some(issue_token(&mut tx, id, body.token_expires_at).await?),
        false => None,
    };
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "principal.create",
            object_kind: "principal",
            object_id: body.name.clone(),
            organization_id: organization_id.or(tenant_org),
            tenant_id,
            detail: json!({
                "id": id, "role": body.role, "oidc": body.oidc_subject.is_some(),
                "apiToken": wants_token, "tokenExpiresAt": body.token_expires_at,
            }),
        },
    )
    .await?;
    let row = db::principals::get(&mut *tx, id)
        .await?
        .ok_or_else(|| AppError::Internal("principal vanished".into()))?;
    tx.commit().await?;
    Ok((row, issued))
}

/// Removes a principal: its tokens stop working at once and its OIDC identity is no longer
/// accepted. Nobody removes themselves (so an organization never locks itself out by mistake).
pub async fn delete(state: &AppState, caller: &Caller, id: &str) -> AppResult<()> {
    caller.require(&[Role::PlatformAdmin, Role::OrgAdmin], "remove principals")?;
    let mut tx = state.db.begin().await?;
    let row = db::principals::lock(&mut *tx, parse_id(id)?).await?;
    let row = visible(caller, row, id)?;
    caller.manages(&row.scope())?;
    if row.name == caller.name {
        return Err(AppError::Conflict(
            "a principal cannot remove itself; ask another admin".into(),
        ));
    }
    db::principals::mark_deleted(&mut *tx, row.principal_id, &caller.name).await?;
    let revoked = db::principals::revoke_tokens(&mut *tx, row.principal_id, &caller.name).await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "principal.delete",
            object_kind: "principal",
            object_id: row.name.clone(),
            organization_id: row.organization_id,
            tenant_id: row.tenant_id,
            detail: json!({ "id": row.principal_id, "role": row.role, "revokedTokens": revoked }),
        },
    )
    .await?;
    tx.commit().await?;
    // This replica refuses the token at once; the others when the database announces it.
    state.tokens.clear();
    Ok(())
}

/// Issues a new API token for a principal and revokes all its others: for the principal
/// itself, and for whoever manages it.
pub async fn rotate_token(
    state: &AppState,
    caller: &Caller,
    id: &str,
    body: &RotateToken,
) -> AppResult<(PrincipalRow, IssuedToken)> {
    let mut errors = Vec::new();
    check_expiry("expiresAt", body.expires_at, &mut errors);
    let mut tx = state.db.begin().await?;
    let row = db::principals::lock(&mut *tx, parse_id(id)?).await?;
    let own = row.as_ref().is_some_and(|r| r.name == caller.name);
    let row = match own {
        true => row.ok_or_else(|| AppError::not_found("principal", id))?,
        false => {
            let row = visible(caller, row, id)?;
            caller.manages(&row.scope())?;
            row
        }
    };
    AppError::check(errors)?;
    let revoked = db::principals::revoke_tokens(&mut *tx, row.principal_id, &caller.name).await?;
    let issued = issue_token(&mut tx, row.principal_id, body.expires_at).await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "principal.token.rotate",
            object_kind: "principal",
            object_id: row.name.clone(),
            organization_id: row.organization_id,
            tenant_id: row.tenant_id,
            detail: json!({
                "id": row.principal_id, "revokedTokens": revoked, "expiresAt": issued.expires_at,
            }),
        },
    )
    .await?;
    let row = db::principals::get(&mut *tx, row.principal_id)
        .await?
        .ok_or_else(|| AppError::Internal("principal vanished".into()))?;
    tx.commit().await?;
    state.tokens.clear();
    Ok((row, issued))
}
