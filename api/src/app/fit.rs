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
    NamespaceKey, Scheduled, Totals, check_allotment, check_allotment_change, check_cluster,
    project,
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
    /// Every organization's allotment, and the approved changes of it not yet in effect.
    allotments: Vec<(Uuid, Totals)>,
    scheduled_allotments: Vec<(Uuid, chrono::DateTime<chrono::Utc>, Totals)>,
}

impl Snapshot {
    async fn read(tx: &mut PgConnection) -> sqlx::Result<Self> {
        let current = db::tenants::held_namespaces(&mut *tx)
            .await?
            .into_iter()
            .map(|n| (n.organization_id, (n.tenant, n.name), n.quota))
            .collect();
        let scheduled = db::capacity_requests::scheduled(&mut *tx).await?;
        let allotments = db::organizations::allotments(&mut *tx).await?;
        let scheduled_allotments = db::capacity_requests::scheduled_allotments(&mut *tx).await?;
        Ok(Self {
            current,
            scheduled,
            allotments,
            scheduled_allotments,
        })
    }

    /// The allotment an organization's agencies are judged against: the least of its allotment
    /// now and every approved allotment it will have, so a lowering approved for next month
    /// already binds.
    fn binding_allotment(&self, organization: Uuid, now: Totals) -> Totals {
        self.scheduled_allotments
            .iter()
            .filter(|(o, _, _)| *o == organization)
            .fold(now, |m, (_, _, t)| Totals {
                cpu_milli: m.cpu_milli.min(t.cpu_milli),
                memory_bytes: m.memory_bytes.min(t.memory_bytes),
                storage_bytes: m.storage_bytes.min(t.storage_bytes),
            })
    }

    /// Each organization's allotment once every approved change has taken effect.
    fn projected_allotments(&self) -> Vec<(Uuid, Totals)> {
        let mut scheduled = self.scheduled_allotments.clone();
        scheduled.sort_by_key(|(_, at, _)| *at);
        self.allotments
            .iter()
            .map(|(o, now)| {
                let last = scheduled
                    .iter()
                    .rfind(|(so, _, _)| so == o)
                    .map_or(*now, |(_, _, t)| *t);
                (*o, last)
            })
            .collect()
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
    let allotment =
        snapshot.binding_allotment(organization.organization_id, organization.allotment());
    check_allotment(&organization.name, before, after, allotment)
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

fn sum(totals: impl IntoIterator<Item = Totals>) -> Totals {
    totals.into_iter().fold(Totals::default(), |a, t| Totals {
        cpu_milli: a.cpu_milli + t.cpu_milli,
        memory_bytes: a.memory_bytes + t.memory_bytes,
        storage_bytes: a.storage_bytes + t.storage_bytes,
    })
}

/// Refuses a new allotment for an organization that is below what its agencies hold (once every
/// approved change has taken effect), or that takes the sum of every organization's allotment
/// past the cluster's allocatable capacity times the overcommit ratio.
pub async fn judge_allotment(
    tx: &mut PgConnection,
    state: &AppState,
    organization: &OrganizationRow,
    new: Totals,
) -> AppResult<Judgement> {
    if state.cluster.allocatable().is_none() {
        state.cluster.wait_for_nodes(Duration::from_secs(3)).await;
    }
    db::lock_judgements(tx).await?;
    let snapshot = Snapshot::read(tx).await?;
    let (cur, sched) = snapshot.of(Some(organization.organization_id));
    let reserved = Totals::of(project(&cur, &sched).values());
    let projected = snapshot.projected_allotments();
    let before = sum(projected.iter().map(|(_, t)| *t));
    let after = sum(projected.iter().map(|(o, t)| {
        if *o == organization.organization_id {
            new
        } else {
            *t
        }
    }));
    let allocatable = state.cluster.allocatable();
    check_allotment_change(
        &organization.name,
        new,
        reserved,
        before,
        after,
        allocatable,
        state.settings.overcommit,
    )
    .map_err(AppError::OverCapacity)?;
    Ok(Judgement {
        cluster_checked: allocatable.is_some(),
    })
}
