//! Reads what a capacity judgement needs (quotas, scheduled changes, the cluster's nodes) and
//! asks [`crate::capacity`] whether a change fits.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::PgConnection;

use crate::AppState;
use crate::capacity::{NamespaceKey, Scheduled, Totals, check_allotment, check_cluster, project};
use crate::db;
use crate::db::organizations::OrganizationRow;
use crate::error::{ApiError, ApiResult};
use crate::quota::Quota;

/// Serialises every quota judgement, across organizations and API replicas, for the rest of
/// the transaction: two approvals judged at once could together break a limit.
async fn lock_judgements(tx: &mut PgConnection) -> sqlx::Result<()> {
    // Any constant works: it names the lock; "govcloud" in ASCII.
    sqlx::query("select pg_advisory_xact_lock(7453766)")
        .execute(tx)
        .await?;
    Ok(())
}

/// A change to judge: new namespaces, or a scheduled change of an existing one.
pub enum Change {
    Add(Vec<(NamespaceKey, Quota)>),
    Schedule(Scheduled),
}

/// What was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// False when no node has been seen yet, so the cluster's capacity is unknown.
    pub cluster_checked: bool,
}

fn totals_before_after(
    current: BTreeMap<NamespaceKey, Quota>,
    mut scheduled: Vec<Scheduled>,
    change: &Change,
) -> (Totals, Totals) {
    let before = Totals::of(project(&current, &scheduled).values());
    let mut after_current = current;
    match change {
        Change::Add(new) => {
            for (k, q) in new {
                after_current.insert(k.clone(), *q);
            }
        }
        Change::Schedule(s) => scheduled.push(s.clone()),
    }
    let after = Totals::of(project(&after_current, &scheduled).values());
    (before, after)
}

async fn current(
    tx: &mut PgConnection,
    organization: Option<uuid::Uuid>,
) -> sqlx::Result<(BTreeMap<NamespaceKey, Quota>, Vec<Scheduled>)> {
    let current = db::tenants::all_namespaces(&mut *tx, organization)
        .await?
        .into_iter()
        .map(|n| ((n.tenant, n.name), n.quota))
        .collect();
    let scheduled = db::capacity_requests::scheduled(&mut *tx, organization).await?;
    Ok((current, scheduled))
}

/// Refuses a change that would take the organization past its allotment, or the cluster past
/// its allocatable capacity times the overcommit ratio. Judged on the quotas as they will be
/// once every approved change has taken effect.
pub async fn judge(
    tx: &mut PgConnection,
    state: &AppState,
    organization: &OrganizationRow,
    change: &Change,
) -> ApiResult<Judgement> {
    lock_judgements(tx).await?;
    let (cur, sched) = current(tx, Some(organization.organization_id)).await?;
    let (before, after) = totals_before_after(cur, sched, change);
    check_allotment(&organization.name, before, after, organization.allotment())
        .map_err(ApiError::OverCapacity)?;
    if state.cluster.allocatable().is_none() {
        // Just started: give the Node watch a moment for its first list.
        state.cluster.wait_for_nodes(Duration::from_secs(3)).await;
    }
    let Some(allocatable) = state.cluster.allocatable() else {
        tracing::warn!("no node seen yet: the cluster's capacity is not checked");
        return Ok(Judgement {
            cluster_checked: false,
        });
    };
    let (cur, sched) = current(tx, None).await?;
    let (before, after) = totals_before_after(cur, sched, change);
    check_cluster(before, after, allocatable, state.settings.overcommit)
        .map_err(ApiError::OverCapacity)?;
    Ok(Judgement {
        cluster_checked: true,
    })
}
