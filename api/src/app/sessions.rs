//! The web console's sessions: signing in (OIDC authorization code with PKCE in production; in
//! `govcloud dev`, as any seeded person), who a session is, and signing out. The cookie is a
//! 256-bit secret; the database keeps only its hash, with the session's CSRF token. Signing in
//! and out are audited.

use chrono::{Duration as ChronoDuration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::AppState;
use crate::app::principals::caller_for_identity;
use crate::app::{AppError, AppResult};
use crate::db::audit::{self, Actor, Event};
use crate::db::console::{self, NewSession, SignableRow};
use crate::domain::principal::Caller;
use crate::domain::token;

pub use crate::db::console::SessionRow;

/// How long a sign-in may stay at the issuer before its callback is refused.
const SIGN_IN_TTL_MINUTES: i64 = 10;

/// A session just opened: the cookie's value (shown to the browser once) and where to go.
pub struct Opened {
    pub cookie: String,
    pub return_to: String,
}

/// The session behind a cookie, if it is live.
pub async fn session(state: &AppState, cookie: &str) -> AppResult<Option<SessionRow>> {
    Ok(console::session(&state.db, &token::hash(cookie)).await?)
}

async fn open(
    state: &AppState,
    principal_id: Option<Uuid>,
    caller: &Caller,
    how: &str,
    return_to: String,
) -> AppResult<Opened> {
    let cookie = token::secret();
    let ttl = ChronoDuration::from_std(state.settings.console.session_ttl)
        .map_err(|e| AppError::Internal(format!("session lifetime: {e}")))?;
    let mut tx = state.db.begin().await?;
    console::insert_session(
        &mut *tx,
        &NewSession {
            session_hash: &token::hash(&cookie),
            principal_id,
            caller,
            csrf_token: &token::secret(),
            expires_at: Utc::now() + ttl,
        },
    )
    .await?;
    audit::record(
        &mut *tx,
        Event {
            actor: &Actor::from(caller),
            action: "console.sign-in",
            object_kind: "session",
            object_id: caller.name.clone(),
            organization_id: caller.organization_id,
            tenant_id: caller.tenant_id,
            detail: json!({"method": how}),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Opened { cookie, return_to })
}

/// The people one may sign in as without a password: `govcloud dev` only.
pub async fn dev_people(state: &AppState) -> AppResult<Vec<SignableRow>> {
    if !state.settings.console.dev_sign_in {
        return Err(AppError::not_found("page", "/sign-in/dev"));
    }
    Ok(console::signable(&state.db).await?)
}

/// Signs in as a seeded person: `govcloud dev` only.
pub async fn sign_in_dev(state: &AppState, principal_id: Uuid) -> AppResult<Opened> {
    let person = dev_people(state)
        .await?
        .into_iter()
        .find(|p| p.principal_id == principal_id)
        .ok_or_else(|| AppError::invalid("principal", "no such person"))?;
    let caller = Caller {
        name: person.name,
        role: person.role,
        organization_id: person.organization_id,
        tenant_id: person.tenant_id,
    };
    open(state, Some(principal_id), &caller, "dev", "/".into()).await
}

/// A relative path of this site, or `/`: never another site (no open redirect).
pub fn safe_return_to(to: &str) -> String {
    let ok = to.starts_with('/')
        && !to.starts_with("//")
        && !to.contains('\\')
        && !to.chars().any(char::is_control);
    if ok { to.into() } else { "/".into() }
}

fn oidc(state: &AppState) -> AppResult<(&crate::app::oidc::Oidc, &crate::app::oidc::Client)> {
    match (&state.oidc, &state.settings.console.oidc_client) {
        (Some(o), Some(c)) => Ok((o, c)),
        _ => Err(AppError::not_found("page", "/sign-in/oidc")),
    }
}

/// Starts an OIDC sign-in: answers the issuer's authorization URL to send the browser to, with
/// a fresh `state`, `nonce` and PKCE challenge (S256); the verifier stays here.
pub async fn begin_oidc(state: &AppState, return_to: &str) -> AppResult<String> {
    let (oidc, client) = oidc(state)?;
    let endpoints = oidc
        .endpoints()
        .await
        .map_err(|e| AppError::ClusterUnavailable(format!("the identity provider: {e}")))?;
    let (sign_in_state, nonce, verifier) = (token::secret(), token::secret(), token::secret());
    console::insert_sign_in(
        &state.db,
        &token::hash(&sign_in_state),
        &verifier,
        &nonce,
        &safe_return_to(return_to),
        Utc::now() + ChronoDuration::minutes(SIGN_IN_TTL_MINUTES),
    )
    .await?;
    let url = reqwest::Url::parse_with_params(
        &endpoints.authorization_endpoint,
        &[
            ("response_type", "code"),
            ("client_id", client.client_id.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid profile email"),
            ("state", sign_in_state.as_str()),
            ("nonce", nonce.as_str()),
            ("code_challenge", token::pkce_challenge(&verifier).as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
    .map_err(|e| {
        AppError::Internal(format!(
            "the issuer's authorization endpoint is not a URL: {e}"
        ))
    })?;
    Ok(url.into())
}

/// Finishes an OIDC sign-in at the callback: the `state` must be one this API sent (once, and
/// recently), the code is traded with its PKCE verifier, and the ID token must carry the nonce.
/// The person is the principal registered for its subject, or what a group rule makes of it.
pub async fn finish_oidc(state: &AppState, code: &str, sign_in_state: &str) -> AppResult<Opened> {
    let (oidc, client) = oidc(state)?;
    let Some(pending) = console::take_sign_in(&state.db, &token::hash(sign_in_state)).await? else {
        return Err(AppError::Conflict(
            "this sign-in is unknown, used or expired; sign in again".into(),
        ));
    };
    let identity = oidc
        .exchange(client, code, &pending.code_verifier, &pending.nonce)
        .await
        .map_err(|e| {
            tracing::info!(error = %e, "an OIDC sign-in was refused");
            AppError::Forbidden(format!("the identity provider's answer was refused: {e}"))
        })?;
    let principal_id = console::principal_of_subject(&state.db, &identity.subject).await?;
    let Some(caller) = caller_for_identity(state, &identity).await? else {
        return Err(AppError::Forbidden(
            "you signed in, but no role in govcloud is given to you: ask the platform's administrators".into(),
        ));
    };
    open(state, principal_id, &caller, "oidc", pending.return_to).await
}

/// Ends a session.
pub async fn sign_out(state: &AppState, cookie: &str, caller: &Caller) -> AppResult<()> {
    let mut tx = state.db.begin().await?;
    if console::delete_session(&mut *tx, &token::hash(cookie)).await? {
        audit::record(
            &mut *tx,
            Event {
                actor: &Actor::from(caller),
                action: "console.sign-out",
                object_kind: "session",
                object_id: caller.name.clone(),
                organization_id: caller.organization_id,
                tenant_id: caller.tenant_id,
                detail: json!({}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Forgets expired sessions and sign-ins.
pub async fn sweep(state: &AppState) -> AppResult<u64> {
    Ok(console::delete_expired(&state.db).await?)
}
