//! Data-sharing links between agencies as a workflow: asked for by the consuming agency,
//! approved by the providing one (and by both organizations when they differ), written into
//! the provider's Tenant only then, closed by either side at once. See [`crate::domain::link`]
//! for who may do what.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::sync::{Apply, apply_tenant};
use crate::app::tenants::{ensure_active, visible_with_namespaces};
use crate::app::{AppError, AppResult, grants};
use crate::db::links::{ListFilter, NewLink};
use crate::db::{self, audit};
use crate::domain::field::{FieldError, REASON, check_text};
use crate::domain::link::{Approval, LinkState, Parties, check_ports};
use crate::domain::principal::Caller;

pub use crate::db::links::LinkRow;

/// The consuming side of a link: one of its agency's namespaces.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkFrom {
    #[schema(example = "demo-sotc")]
    pub tenant: String,
    #[schema(example = "prod")]
    pub namespace: String,
}

/// The providing side of a link: the agency whose namespaces it opens.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkTo {
    #[schema(example = "demo-stttt")]
    pub tenant: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLinkDoc {
    pub from: LinkFrom,
    pub to: LinkTo,
    /// The TCP ports to reach.
    #[schema(example = json!([443]))]
    pub ports: Vec<i32>,
    /// What the data is shared for, for the providing agency to judge.
    #[schema(example = "the land registry reads citizen records")]
    pub purpose: String,
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkReason {
    /// Why: required to reject, optional to close.
    pub reason: Option<String>,
}

fn parse_id(id: &str) -> AppResult<Uuid> {
    id.parse::<Uuid>()
        .map_err(|_| AppError::not_found("link", id))
}

/// A link the caller may see (it sees either agency), or not found.
fn visible(caller: &Caller, row: Option<LinkRow>, id: &str) -> AppResult<LinkRow> {
    row.filter(|l| l.parties().visible_to(caller))
        .ok_or_else(|| AppError::not_found("link", id))
}

async fn reread(db: impl sqlx::PgExecutor<'_>, id: Uuid) -> AppResult<LinkRow> {
    db::links::get(db, id)
        .await?
        .ok_or_else(|| AppError::Internal("link vanished".into()))
}

/// Asks for a link from one of the caller's agency's namespaces to another agency. Nothing is
/// open until the providing side approves. When the asker is the consuming organization's
/// admin (or a platform admin), the request counts as that organization's approval.
pub async fn request(state: &AppState, caller: &Caller, body: &NewLinkDoc) -> AppResult<LinkRow> {
    let (from, namespaces) = visible_with_namespaces(state, caller, &body.from.tenant).await?;
    let to = db::tenants::by_name(&state.db, &body.to.tenant)
        .await?
        .ok_or_else(|| AppError::not_found("tenant", &body.to.tenant))?;
    let parties = Parties {
        from_organization: from.organization_id,
        from_tenant: from.tenant_id,
        to_organization: to.organization_id,
        to_tenant: to.tenant_id,
    };
    if !parties.may_request(caller) {
        return Err(AppError::Forbidden(format!(
            "the {} role may not ask for links from {}",
            caller.role, from.name
        )));
    }
    ensure_active(&from)?;
    ensure_active(&to)?;
    let mut errors = Vec::new();
    if !namespaces.iter().any(|n| n.name == body.from.namespace) {
        errors.push(FieldError::new(
            "from.namespace",
            format!(
                "tenant {} has no namespace {:?}",
                from.name, body.from.namespace
            ),
        ));
    }
    if from.tenant_id == to.tenant_id {
        errors.push(FieldError::new(
            "to.tenant",
            "an agency's own namespaces reach each other without a link",
        ));
    }
    let ports = check_ports(&body.ports)
        .map_err(|m| errors.push(FieldError::new("ports", m)))
        .ok();
    check_text("purpose", &body.purpose, REASON, &mut errors);
    AppError::check(errors)?;
    let ports = ports.unwrap_or_default();
    let mut tx = state.db.begin().await?;
    if db::links::open_exists(&mut *tx, from.tenant_id, &body.from.namespace, to.tenant_id).await? {
        return Err(AppError::Conflict(format!(
            "a link from {}/{} to {} is already asked for or open; close it first to change its ports",
            from.name, body.from.namespace, to.name
        )));
    }
    let id = db::links::insert(
        &mut *tx,
        NewLink {
            from_tenant_id: from.tenant_id,
            from_namespace: &body.from.namespace,
            to_tenant_id: to.tenant_id,
            ports: &ports,
            purpose: &body.purpose,
            requested_by: &caller.name,
        },
    )
    .await?;
    let consumer_approves = parties.approvals_by(caller).contains(&Approval::Consumer);
    if consumer_approves {
        db::links::approve_consumer(&mut *tx, id, &caller.name).await?;
    }
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "link.request",
            object_kind: "link",
            object_id: id.to_string(),
            organization_id: Some(from.organization_id),
            tenant_id: Some(from.tenant_id),
            detail: json!({
                "from": {"tenant": from.name, "namespace": body.from.namespace},
                "to": {"tenant": to.name}, "ports": ports, "purpose": body.purpose,
                "crossOrganization": parties.cross_organization(),
                "consumerApproved": consumer_approves,
            }),
        },
    )
    .await?;
    let row = reread(&mut *tx, id).await?;
    tx.commit().await?;
    Ok(row)
}

/// What a list of links is narrowed to.
pub struct Filter<'a> {
    pub tenant: Option<&'a str>,
    pub state: Option<LinkState>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// A page of the links the caller may see (either side in its scope), newest first: who can
/// reach whom.
pub async fn list(state: &AppState, caller: &Caller, f: Filter<'_>) -> AppResult<Vec<LinkRow>> {
    Ok(db::links::list(
        &state.db,
        ListFilter {
            only_organization: caller.organization_filter(),
            only_tenant: caller.tenant_filter(),
            tenant_name: f.tenant,
            state: f.state,
            after: f.after,
            limit: f.limit,
        },
    )
    .await?)
}

pub async fn show(state: &AppState, caller: &Caller, id: &str) -> AppResult<LinkRow> {
    let row = db::links::get(&state.db, parse_id(id)?).await?;
    visible(caller, row, id)
}

fn given(l: &LinkRow, a: Approval) -> bool {
    match a {
        Approval::Provider => l.provider_approved_at.is_some(),
        Approval::Consumer => l.consumer_approved_at.is_some(),
    }
}

/// The approvals a link still waits for.
pub fn awaiting(l: &LinkRow) -> Vec<Approval> {
    if l.state != LinkState::Pending {
        return Vec::new();
    }
    l.parties()
        .needed()
        .into_iter()
        .filter(|a| !given(l, *a))
        .collect()
}

/// Gives the caller's side's approval. Once every approval is in, the link is written into the
/// providing agency's Tenant and applied.
pub async fn approve(state: &AppState, caller: &Caller, id: &str) -> AppResult<LinkRow> {
    let mut tx = state.db.begin().await?;
    let link = visible(caller, db::links::lock(&mut *tx, parse_id(id)?).await?, id)?;
    let parties = link.parties();
    let mine = parties.approvals_by(caller);
    if mine.is_empty() {
        return Err(AppError::Forbidden(
            "only the providing agency's admins approve a link (and, across organizations, each organization's admin)".into(),
        ));
    }
    if link.state != LinkState::Pending {
        return Err(AppError::Conflict(format!(
            "the link is {}; only a pending link can be approved",
            link.state
        )));
    }
    let new: Vec<Approval> = mine.into_iter().filter(|a| !given(&link, *a)).collect();
    if new.is_empty() {
        return Err(AppError::Conflict(format!(
            "your side has approved already; the link waits for: {}",
            awaiting(&link)
                .iter()
                .map(|a| match a {
                    Approval::Provider => "the providing agency",
                    Approval::Consumer => "the asking agency's organization",
                })
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    for a in &new {
        match a {
            Approval::Provider => {
                db::links::approve_provider(&mut *tx, link.link_id, &caller.name).await?
            }
            Approval::Consumer => {
                db::links::approve_consumer(&mut *tx, link.link_id, &caller.name).await?
            }
        }
    }
    let after = reread(&mut *tx, link.link_id).await?;
    let complete = parties.needed().iter().all(|a| given(&after, *a));
    let mut version = None;
    if complete {
        db::links::mark_approved(&mut *tx, link.link_id).await?;
        version = Some(grants::rewrite(&mut tx, link.to_tenant_id).await?);
    }
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "link.approve",
            object_kind: "link",
            object_id: link.link_id.to_string(),
            organization_id: Some(link.to_organization_id),
            tenant_id: Some(link.to_tenant_id),
            detail: json!({
                "from": {"tenant": link.from_tenant, "namespace": link.from_namespace},
                "to": {"tenant": link.to_tenant}, "ports": link.ports, "approvals": new,
                "open": complete, "providerVersion": version,
            }),
        },
    )
    .await?;
    let row = reread(&mut *tx, link.link_id).await?;
    tx.commit().await?;
    if complete {
        apply_tenant(state, link.to_tenant_id, Apply::Always).await?;
    }
    Ok(row)
}

/// Rejects a pending link, with a reason: anyone whose approval it needs.
pub async fn reject(
    state: &AppState,
    caller: &Caller,
    id: &str,
    reason: Option<&str>,
) -> AppResult<LinkRow> {
    let mut tx = state.db.begin().await?;
    let link = visible(caller, db::links::lock(&mut *tx, parse_id(id)?).await?, id)?;
    if link.parties().approvals_by(caller).is_empty() {
        return Err(AppError::Forbidden(
            "only those who approve a link may reject it".into(),
        ));
    }
    let Some(reason) = reason else {
        return Err(AppError::invalid("reason", "a rejection must say why"));
    };
    let mut errors = Vec::new();
    check_text("reason", reason, REASON, &mut errors);
    AppError::check(errors)?;
    if link.state != LinkState::Pending {
        return Err(AppError::Conflict(format!(
            "the link is {}; only a pending link can be rejected",
            link.state
        )));
    }
    db::links::close(
        &mut *tx,
        link.link_id,
        LinkState::Rejected,
        &caller.name,
        Some(reason),
    )
    .await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "link.reject",
            object_kind: "link",
            object_id: link.link_id.to_string(),
            organization_id: Some(link.to_organization_id),
            tenant_id: Some(link.to_tenant_id),
            detail: json!({ "from": link.from_tenant, "to": link.to_tenant, "reason": reason }),
        },
    )
    .await?;
    let row = reread(&mut *tx, link.link_id).await?;
    tx.commit().await?;
    Ok(row)
}

/// Closes a link, by either side: a pending one is cancelled, an approved one revoked — taken
/// out of the providing agency's Tenant at once.
pub async fn close(
    state: &AppState,
    caller: &Caller,
    id: &str,
    reason: Option<&str>,
) -> AppResult<LinkRow> {
    let mut tx = state.db.begin().await?;
    let link = visible(caller, db::links::lock(&mut *tx, parse_id(id)?).await?, id)?;
    if !link.parties().may_close(caller) {
        return Err(AppError::Forbidden(format!(
            "the {} role may not close links",
            caller.role
        )));
    }
    if let Some(r) = reason {
        let mut errors = Vec::new();
        check_text("reason", r, REASON, &mut errors);
        AppError::check(errors)?;
    }
    let to = match link.state {
        LinkState::Pending => LinkState::Cancelled,
        LinkState::Approved => LinkState::Revoked,
        other => {
            return Err(AppError::Conflict(format!("the link is {other} already")));
        }
    };
    db::links::close(&mut *tx, link.link_id, to, &caller.name, reason).await?;
    let version = match to {
        LinkState::Revoked => Some(grants::rewrite(&mut tx, link.to_tenant_id).await?),
        _ => None,
    };
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: if to == LinkState::Revoked {
                "link.revoke"
            } else {
                "link.cancel"
            },
            object_kind: "link",
            object_id: link.link_id.to_string(),
            organization_id: Some(link.to_organization_id),
            tenant_id: Some(link.to_tenant_id),
            detail: json!({
                "from": link.from_tenant, "to": link.to_tenant, "reason": reason,
                "providerVersion": version,
            }),
        },
    )
    .await?;
    let row = reread(&mut *tx, link.link_id).await?;
    tx.commit().await?;
    if version.is_some() {
        apply_tenant(state, link.to_tenant_id, Apply::Always).await?;
    }
    Ok(row)
}
