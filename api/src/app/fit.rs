//! Reads what a capacity judgement needs (quotas, scheduled changes, the cluster's nodes) and
//! asks [`crate::domain::capacity`] whether a change fits.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::AppState;
use crate::app::{AppError, AppResult};
use crate::db;
use crate::db::organizations::OrganizationRow;
use crate::domain::capacity::{
    NamespaceKey, Scheduled, Totals, check_allotment, check_cluster, project,
};
use crate::domain::quota::Quota;

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

/// Every namespace's quota and every scheduled change, each with its organization: read once
/// for both judgements.
struct Snapshot {
    current: Vec<(Uuid, NamespaceKey, Quota)>,
    scheduled: Vec<(Uuid, Scheduled)>,
}

impl Snapshot {
    async fn read(tx: &mut PgConnection) -> sqlx::Result<Self> {
        let current = db::tenants::held_namespaces(&mut *tx)
            .await?
            .into_iter()
            .map(|n| (n.organization_id, (n.tenant, n.name), n.quota))
            .collect();
        let scheduled = db::capacity_requests::scheduled(&mut *tx).await?;
        Ok(Self { current, scheduled })
    }

    /// The quotas and scheduled changes of one organization, or of all (`None`).
    fn of(&self, organization: Option<Uuid>) -> (BTreeMap<NamespaceKey, Quota>, Vec<Scheduled>) {
        let wanted = |o: &Uuid| organization.is_none_or(|w| w == *o);
        let current = self
            .current
            .iter()
            .filter(|(o, _, _)| wanted(o))
            .map(|(_, k, q)| (k.clone(), *q))
            .collect();
        let scheduled = self
            .scheduled
            .iter()
            .filter(|(o, _)| wanted(o))
            .map(|(_, s)| s.clone())
            .collect();
        (current, scheduled)
    }
}

/// Refuses a change that would take the organization past its allotment, or the cluster past
/// its allocatable capacity times the overcommit ratio. Judged on the quotas as they will be
/// once every approved change has taken effect.
pub async fn judge(
    tx: &mut PgConnection,
    state: &AppState,
    organization: &OrganizationRow,
    change: &Change,
) -> AppResult<Judgement> {
    if state.cluster.allocatable().is_none() {
        // Just started: give the Node watch a moment for its first list (before taking the lock).
        state.cluster.wait_for_nodes(Duration::from_secs(3)).await;
    }
    db::lock_judgements(tx).await?;
    let snapshot = Snapshot::read(tx).await?;
    let (cur, sched) = snapshot.of(Some(organization.organization_id));
    let (before, after) = totals_before_after(cur, sched, change);
    check_allotment(&organization.name, before, after, organization.allotment())
        .map_err(AppError::OverCapacity)?;
    let Some(allocatable) = state.cluster.allocatable() else {
        tracing::warn!("no node seen yet: the cluster's capacity is not checked");
        return Ok(Judgement {
            cluster_checked: false,
        });
    };
    let (cur, sched) = snapshot.of(None);
    let (before, after) = totals_before_after(cur, sched, change);
    check_cluster(before, after, allocatable, state.settings.overcommit)
        .map_err(AppError::OverCapacity)?;
    Ok(Judgement {
        cluster_checked: true,
    })
}
