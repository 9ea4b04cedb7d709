//! The grants a providing agency's Tenant carries: exactly its approved links.

use uuid::Uuid;

use crate::app::AppResult;
use crate::db;
use crate::domain::link::{LinkState, grants};

/// Rewrites the tenant's `network.allowFrom` from its approved links and bumps its version;
/// answers the new version. Call inside the transaction that approved or closed a link.
pub async fn rewrite(tx: &mut sqlx::PgConnection, to_tenant_id: Uuid) -> AppResult<i64> {
    let approved = db::links::approved_into(&mut *tx, to_tenant_id).await?;
    db::tenants::set_allow_from(&mut *tx, to_tenant_id, &grants(&approved)).await?;
    Ok(db::tenants::bump_version(&mut *tx, to_tenant_id).await?)
}

/// Closes every open link of an agency being offboarded; answers the providing agencies whose
/// grants changed, to apply once the transaction commits.
pub async fn close_all_of(
    tx: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    by: &str,
) -> AppResult<Vec<Uuid>> {
    let mut providers = Vec::new();
    for link in db::links::open_involving(&mut *tx, tenant_id).await? {
        let to = match link.state {
            LinkState::Approved => LinkState::Revoked,
            _ => LinkState::Cancelled,
        };
        let reason = "an agency of the link was offboarded";
        db::links::close(&mut *tx, link.link_id, to, by, Some(reason)).await?;
        if to == LinkState::Revoked && link.to_tenant_id != tenant_id {
            rewrite(&mut *tx, link.to_tenant_id).await?;
            providers.push(link.to_tenant_id);
        }
    }
    Ok(providers)
}
