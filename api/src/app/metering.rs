//! Ingesting the operator's samples into the ledger, and rolling closed hours up.
//!
//! A batch is checked whole first ([`check_batch`]); any bad sample, or a sample naming a
//! namespace no tenant has, refuses the whole batch and stores nothing. Then, under the
//! ledger's lock, each sample meets what is stored under its key: new samples are accepted, the
//! same quantity again is a duplicate, another quantity is refused as contradicting — counted,
//! never replacing what was stored. Windows of hours already rolled up are refused as late.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use govcloud_tenant::usage::{Batch, BatchOutcome, Refusals};

use crate::AppState;
use crate::app::{AppError, AppResult};
use crate::db::usage::{self as ledger, StoredWindow, WindowColumns};
use crate::domain::field::FieldError;
use crate::domain::metering::{Meeting, RefusalReason, WindowRow, check_batch};
use crate::domain::period::{hour_of, hour_start, month_of, month_range};
use crate::domain::principal::{Caller, Role};

fn stored_row(w: &StoredWindow) -> Result<WindowRow, AppError> {
    let gpu = match &w.gpu_requested {
        None => None,
        Some(text) => Some(serde_json::from_str(text).map_err(|e| {
            AppError::Internal(format!("a stored window's GPU samples do not parse: {e}"))
        })?),
    };
    Ok(WindowRow {
        values: [
            w.cpu_reserved,
            w.memory_reserved,
            w.storage_reserved,
            w.loadbalancers_reserved,
            w.cpu_requested,
            w.memory_requested,
            w.cpu_used,
            w.memory_used,
            w.storage_bound,
        ],
        gpu,
    })
}

/// Counts what became of a batch's samples.
#[derive(Default)]
struct Tally {
    accepted: u64,
    duplicate: u64,
    refused: BTreeMap<RefusalReason, u64>,
}

impl Tally {
    fn refuse(&mut self, reason: RefusalReason) {
        *self.refused.entry(reason).or_default() += 1;
    }

    /// Counts a sample's meeting with its row; whether it changed the row.
    fn meet(&mut self, meeting: Meeting) -> bool {
        match meeting {
            Meeting::Accepted => self.accepted += 1,
            Meeting::Duplicate => self.duplicate += 1,
            Meeting::Contradicts => self.refuse(RefusalReason::Contradicts),
        }
        meeting == Meeting::Accepted
    }

    fn outcome(self) -> BatchOutcome {
        BatchOutcome {
            accepted: self.accepted,
            duplicate: self.duplicate,
            refused: self.refused.values().sum(),
            refusals: self
                .refused
                .into_iter()
                .map(|(r, count)| Refusals {
                    reason: r.as_str().to_string(),
                    count,
                })
                .collect(),
        }
    }
}

/// Window rows as the columns the database takes.
fn columns(
    window_seconds: i16,
    rows: &BTreeMap<(i32, DateTime<Utc>), WindowRow>,
) -> AppResult<WindowColumns> {
    let mut columns = WindowColumns::default();
    for (key, row) in rows {
        columns.ids.push(key.0);
        columns.starts.push(key.1);
        columns.seconds.push(window_seconds);
        for (column, value) in columns.values.iter_mut().zip(row.values) {
            column.push(value);
        }
        columns.gpu.push(match &row.gpu {
            None => None,
            Some(g) => {
                Some(serde_json::to_string(g).map_err(|e| {
                    AppError::Internal(format!("GPU samples do not serialise: {e}"))
                })?)
            }
        });
    }
    Ok(columns)
}

/// Ingests one batch (the `metering` role only).
pub async fn ingest(state: &AppState, caller: &Caller, batch: Batch) -> AppResult<BatchOutcome> {
    if caller.role != Role::Metering {
        return Err(AppError::Forbidden(
            "only the operator's metering identity ingests usage".into(),
        ));
    }
    let now = Utc::now();
    check_batch(&batch, now).map_err(AppError::Invalid)?;
    let w = i16::try_from(batch.window_seconds)
        .map_err(|_| AppError::invalid("windowSeconds", "must divide 3600"))?;

    let mut tx = state.db.begin().await?;
    ledger::lock_ledger(&mut tx).await?;

    // Every sample must name a namespace of its tenant.
    let mut pairs: Vec<(&str, &str)> = batch
        .samples
        .iter()
        .map(|s| (s.tenant.as_str(), s.namespace.as_str()))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();
    let (tenants, kube_names): (Vec<String>, Vec<String>) = pairs
        .iter()
        .map(|(t, n)| (t.to_string(), n.to_string()))
        .unzip();
    let found = ledger::metered_namespaces(&mut tx, &tenants, &kube_names).await?;
    let known: HashMap<(&str, &str), i32> = found
        .iter()
        .map(|m| ((m.tenant.as_str(), m.kube_name.as_str()), m.id))
        .collect();
    // Each sample's key, (namespace id, window start); a namespace its tenant lacks refuses it all.
    let mut keyed: Vec<(i32, DateTime<Utc>)> = Vec::with_capacity(batch.samples.len());
    let mut unknown = Vec::new();
    for (i, s) in batch.samples.iter().enumerate() {
        match known.get(&(s.tenant.as_str(), s.namespace.as_str())) {
            Some(id) => keyed.push((*id, s.window_start)),
            None if unknown.len() < 20 => unknown.push(FieldError::new(
                format!("samples[{i}].namespace"),
                format!(
                    "tenant {:?} has no namespace {:?}: nothing of this batch is stored",
                    s.tenant, s.namespace
                ),
            )),
            None => {}
        }
    }
    if !unknown.is_empty() {
        // Nothing is stored: not even the namespaces registered above.
        tx.rollback().await?;
        return Err(AppError::Invalid(unknown));
    }

    let mut keys: Vec<(i32, DateTime<Utc>)> = keyed.clone();
    keys.sort_unstable();
    keys.dedup();
    let mut hour_keys: Vec<(i32, DateTime<Utc>)> = keys
        .iter()
        .map(|(id, start)| (*id, hour_start(hour_of(*start))))
        .collect();
    hour_keys.dedup();
    let (hour_ids, hours): (Vec<i32>, Vec<DateTime<Utc>>) = hour_keys.into_iter().unzip();
    let other_length: HashSet<(i32, DateTime<Utc>)> =
        ledger::hours_of_other_length(&mut tx, &hour_ids, &hours, w)
            .await?
            .into_iter()
            .collect();
    let closed_before = ledger::rolled_until(&mut *tx).await?;

    // Late samples and samples of an hour of another window length are refused; the rest are
    // grouped by key.
    let mut tally = Tally::default();
    let mut by_key: BTreeMap<(i32, DateTime<Utc>), Vec<usize>> = BTreeMap::new();
    for (i, (s, key)) in batch.samples.iter().zip(&keyed).enumerate() {
        if closed_before.is_some_and(|c| s.window_start < c) {
            tally.refuse(RefusalReason::Late);
        } else if other_length.contains(&(key.0, hour_start(hour_of(s.window_start)))) {
            tally.refuse(RefusalReason::WindowLength);
        } else {
            by_key.entry(*key).or_default().push(i);
        }
    }

    // Windows new to the ledger (the common case) are inserted as the batch has them.
    let mut fresh: BTreeMap<(i32, DateTime<Utc>), WindowRow> = BTreeMap::new();
    for (key, samples) in &by_key {
        let row = fresh.entry(*key).or_default();
        for &i in samples {
            let s = &batch.samples[i];
            row.add(s.metric, s.resource.as_deref(), s.quantity);
        }
    }
    let inserted: HashSet<(i32, DateTime<Utc>)> =
        ledger::insert_new_windows(&mut tx, &columns(w, &fresh)?)
            .await?
            .into_iter()
            .collect();

    // The others meet what is stored: accepted where the window lacked the metric, duplicate
    // where it has the same quantity, refused where it has another.
    let existing: Vec<(i32, DateTime<Utc>)> = by_key
        .keys()
        .filter(|k| !inserted.contains(k))
        .copied()
        .collect();
    let (ids, starts): (Vec<i32>, Vec<DateTime<Utc>>) = existing.iter().copied().unzip();
    let mut rows: BTreeMap<(i32, DateTime<Utc>), WindowRow> = BTreeMap::new();
    if !existing.is_empty() {
        for stored in ledger::stored_windows(&mut tx, &ids, &starts).await? {
            rows.insert(
                (stored.metered_namespace_id, stored.window_start),
                stored_row(&stored)?,
            );
        }
    }
    let mut changed: BTreeMap<(i32, DateTime<Utc>), WindowRow> = BTreeMap::new();
    for (key, samples) in &by_key {
        let mut row = if inserted.contains(key) {
            WindowRow::default()
        } else {
            rows.remove(key).unwrap_or_default()
        };
        let mut accepted = false;
        for &i in samples {
            let s = &batch.samples[i];
            accepted |= tally.meet(row.add(s.metric, s.resource.as_deref(), s.quantity));
        }
        if accepted && !inserted.contains(key) {
            changed.insert(*key, row);
        }
    }
    // Windows that gained metrics are written again whole (under the lock, in this transaction).
    if !changed.is_empty() {
        let (ids, starts): (Vec<i32>, Vec<DateTime<Utc>>) = changed.keys().copied().unzip();
        ledger::delete_windows(&mut tx, &ids, &starts).await?;
        ledger::insert_new_windows(&mut tx, &columns(w, &changed)?).await?;
    }
    let outcome = tally.outcome();
    tx.commit().await?;
    state.metrics.record_ingest(&outcome);
    if outcome.refused > 0 {
        tracing::warn!(
            accepted = outcome.accepted,
            duplicate = outcome.duplicate,
            refused = outcome.refused,
            refusals = ?outcome.refusals,
            "usage samples refused"
        );
    }
    Ok(outcome)
}

/// Rolls every hour that ended more than `grace` ago into the hourly ledger and closes it.
/// Returns the namespace-hours rolled up.
pub async fn roll_up(state: &AppState, grace: Duration, now: DateTime<Utc>) -> AppResult<u64> {
    let until = hour_start(hour_of(now - grace));
    let mut tx = state.db.begin().await?;
    ledger::lock_ledger(&mut tx).await?;
    let mut rolled = 0;
    if let Some((first, last)) = ledger::hours_to_roll(&mut tx, until).await? {
        // Each month the hours fall in needs its partition.
        let mut month = month_of(first);
        loop {
            let (start, end) = month_range(&month).map_err(AppError::Internal)?;
            ledger::ensure_hour_partition(&mut tx, &month, hour_of(start), hour_of(end)).await?;
            if end > last {
                break;
            }
            month = month_of(end);
        }
        rolled = ledger::roll_up(&mut tx, until).await?;
    } else {
        ledger::roll_up(&mut tx, until).await?;
    }
    tx.commit().await?;
    if rolled > 0 {
        tracing::info!(rolled, %until, "usage rolled up into hours");
    }
    Ok(rolled)
}

/// Rolls up closed hours every minute, until the process ends.
pub async fn roll_up_loop(state: AppState, grace: Duration) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = roll_up(&state, grace, Utc::now()).await {
            tracing::warn!(error = %e, "rolling usage up failed; trying again in a minute");
        }
    }
}
