//! Metering: the operator's second loop (leader only). It keeps watch caches of pods,
//! ResourceQuotas, PersistentVolumeClaims and tenant namespaces, integrates what each tenant
//! namespace holds over windows aligned to the clock ([`track`]), and at each window's end
//! posts the window's samples to the API ([`deliver`]).
//!
//! A window is reported only if it was observed whole: every watch had listed before it
//! started and none restarted during it. Any other window is not reported, and the API shows
//! it as unmetered time: never guessed, never back-filled. Use (`cpu.used`, `memory.used`)
//! comes from one list of `metrics.k8s.io` PodMetrics per window (that API has no watch); where
//! the cluster does not serve it, use is absent, not zero.

pub mod deliver;
pub mod observe;
pub mod track;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use govcloud_tenant::names::{FIELD_MANAGER, LABEL_MANAGED_BY, LABEL_TENANT};
use govcloud_tenant::usage::{Batch, Metric, Sample, window_start};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolumeClaim, Pod, ResourceQuota};
use kube::api::{Api, ApiResource, DynamicObject, ListParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};

use crate::telemetry::{OutcomeLabels, Telemetry};
use deliver::{Buffer, Target};
use track::{Amount, Source, Tracker};

/// The most samples the operator puts in one batch (the API takes up to 50,000).
pub const BATCH_SAMPLES: usize = 10_000;

/// How metering runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub target: Target,
    /// The window length; it divides an hour.
    pub window: Duration,
    /// How long undelivered batches are kept and retried (at most the API's grace period).
    pub buffer: Duration,
}

/// Which watches have listed, and whether the current window was disturbed.
#[derive(Debug, Default)]
struct Observing {
    tracker: Tracker,
    /// Tenant namespaces: name → tenant.
    namespaces: BTreeMap<String, String>,
    /// When each watch (pods, quotas, claims, namespaces) last finished listing.
    listed: [Option<i64>; 4],
    /// Something went wrong with a watch in the current window.
    disturbed: bool,
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

type Shared = Arc<Mutex<Observing>>;

fn state(s: &Shared) -> std::sync::MutexGuard<'_, Observing> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Feeds one watch into the tracker until the stream ends.
async fn follow<K>(
    api: Api<K>,
    config: watcher::Config,
    slot: usize,
    shared: Shared,
    apply: impl Fn(&mut Observing, &K, i64) + Send + 'static,
    delete: impl Fn(&mut Observing, &K, i64) + Send + 'static,
    forget: impl Fn(&mut Observing, i64) + Send + 'static,
) where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    loop {
        let next = stream.try_next().await;
        let at = now_ms();
        let mut s = state(&shared);
        match next {
            Ok(Some(Event::Init)) => {
                // A (re)list: what it does not list again is gone.
                forget(&mut s, at);
                s.listed[slot] = None;
                s.disturbed = true;
            }
            Ok(Some(Event::InitApply(o) | Event::Apply(o))) => apply(&mut s, &o, at),
            Ok(Some(Event::Delete(o))) => delete(&mut s, &o, at),
            Ok(Some(Event::InitDone)) => s.listed[slot] = Some(at),
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "a metering watch failed; the window is not reported");
                s.disturbed = true;
            }
        }
    }
}

fn uid<K: Resource>(o: &K) -> String {
    o.meta().uid.clone().unwrap_or_default()
}

fn spawn_watches(client: &Client, shared: &Shared) -> Vec<tokio::task::JoinHandle<()>> {
    let owned = watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={FIELD_MANAGER}"));
    vec![
        tokio::spawn(follow(
            Api::<Pod>::all(client.clone()),
            watcher::Config::default(),
            0,
            shared.clone(),
            |s, p, at| {
                let ns = p.namespace().unwrap_or_default();
                s.tracker
                    .apply(Source::Pod, &uid(p), &ns, observe::pod(p), at);
            },
            |s, p, at| s.tracker.delete(Source::Pod, &uid(p), at),
            |s, at| s.tracker.forget(Source::Pod, at),
        )),
        tokio::spawn(follow(
            Api::<ResourceQuota>::all(client.clone()),
            owned.clone(),
            1,
            shared.clone(),
            |s, q, at| {
                let ns = q.namespace().unwrap_or_default();
                s.tracker
                    .apply(Source::Quota, &uid(q), &ns, observe::quota(q), at);
            },
            |s, q, at| s.tracker.delete(Source::Quota, &uid(q), at),
            |s, at| s.tracker.forget(Source::Quota, at),
        )),
        tokio::spawn(follow(
            Api::<PersistentVolumeClaim>::all(client.clone()),
            watcher::Config::default(),
            2,
            shared.clone(),
            |s, c, at| {
                let ns = c.namespace().unwrap_or_default();
                s.tracker
                    .apply(Source::Claim, &uid(c), &ns, observe::claim(c), at);
            },
            |s, c, at| s.tracker.delete(Source::Claim, &uid(c), at),
            |s, at| s.tracker.forget(Source::Claim, at),
        )),
        tokio::spawn(follow(
            Api::<Namespace>::all(client.clone()),
            owned,
            3,
            shared.clone(),
            |s, n, _| {
                if let Some(t) = n.labels().get(LABEL_TENANT) {
                    s.namespaces.insert(n.name_any(), t.clone());
                }
            },
            |s, n, _| {
                s.namespaces.remove(&n.name_any());
            },
            |s, _| s.namespaces.clear(),
        )),
    ]
}

/// What each tenant namespace's pods use now, from `metrics.k8s.io` (none: not served).
async fn pod_usage(client: &Client) -> Option<BTreeMap<String, (i64, i64)>> {
    let ar = ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    };
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    let list = tokio::time::timeout(Duration::from_secs(10), api.list(&ListParams::default()))
        .await
        .ok()?
        .map_err(|e| tracing::debug!(error = %e, "no resource metrics this window"))
        .ok()?;
    let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for m in list.items {
        let (cpu, memory) = observe::pod_usage(&m.data["containers"]);
        let e = out.entry(m.namespace().unwrap_or_default()).or_default();
        e.0 = e.0.saturating_add(cpu);
        e.1 = e.1.saturating_add(memory);
    }
    Some(out)
}

const SCALAR: [(Amount, Metric); 7] = [
    (Amount::CpuReserved, Metric::CpuReserved),
    (Amount::MemoryReserved, Metric::MemoryReserved),
    (Amount::StorageReserved, Metric::StorageReserved),
    (Amount::LoadbalancersReserved, Metric::LoadbalancersReserved),
    (Amount::CpuRequested, Metric::CpuRequested),
    (Amount::MemoryRequested, Metric::MemoryRequested),
    (Amount::StorageBound, Metric::StorageBound),
];

/// The samples of one observed window: every metric of every tenant namespace (zero where it
/// held nothing), GPUs where requested, and use where the metrics API answered.
pub fn window_samples(
    start: DateTime<Utc>,
    seconds: i64,
    namespaces: &BTreeMap<String, String>,
    integrals: &BTreeMap<String, BTreeMap<Amount, i64>>,
    usage: Option<&BTreeMap<String, (i64, i64)>>,
) -> Vec<Sample> {
    let empty = BTreeMap::new();
    let mut out = Vec::new();
    for (ns, tenant) in namespaces {
        let sample = |metric, resource: Option<String>, quantity| Sample {
            tenant: tenant.clone(),
            namespace: ns.clone(),
            metric,
            resource,
            window_start: start,
            quantity,
        };
        let window = integrals.get(ns).unwrap_or(&empty);
        for (amount, metric) in &SCALAR {
            out.push(sample(
                *metric,
                None,
                window.get(amount).copied().unwrap_or(0),
            ));
        }
        for (amount, q) in window {
            if let Amount::Gpu(name) = amount
                && *q > 0
            {
                out.push(sample(Metric::GpuRequested, Some(name.clone()), *q));
            }
        }
        if let Some(usage) = usage {
            let (cpu, memory) = usage.get(ns).copied().unwrap_or_default();
            out.push(sample(Metric::CpuUsed, None, cpu.saturating_mul(seconds)));
            out.push(sample(
                Metric::MemoryUsed,
                None,
                memory.saturating_mul(seconds),
            ));
        }
    }
    out
}

/// Runs metering until `shutdown`.
pub async fn run(
    client: Client,
    settings: Settings,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let window_s = u32::try_from(settings.window.as_secs().clamp(10, 3600)).unwrap_or(60);
    let first = window_start(Utc::now(), window_s);
    let shared: Shared = Arc::new(Mutex::new(Observing {
        tracker: Tracker::new(first.timestamp_millis()),
        ..Observing::default()
    }));
    let mut tasks = Tasks(spawn_watches(&client, &shared));
    let buffer = Arc::new(Buffer::default());
    let max_batches = usize::try_from(settings.buffer.as_secs() / u64::from(window_s))
        .unwrap_or(1)
        .max(1)
        * 20;
    tasks.0.push(tokio::spawn(deliver::run(
        buffer.clone(),
        settings.target.clone(),
        settings.buffer,
        telemetry.clone(),
    )));
    tracing::info!(window_seconds = window_s, url = %settings.target.url, "metering");
    let mut start = first;
    let ticking = async {
        loop {
            let end = start + chrono::Duration::seconds(i64::from(window_s));
            let wait = (end - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            let (observed, namespaces, integrals) = {
                let mut s = state(&shared);
                let integrals = s.tracker.close(end.timestamp_millis());
                let observed = !s.disturbed
                    && s.listed
                        .iter()
                        .all(|l| l.is_some_and(|at| at <= start.timestamp_millis()));
                s.disturbed = false;
                (observed, s.namespaces.clone(), integrals)
            };
            if observed {
                let usage = pod_usage(&client).await;
                let samples = window_samples(
                    start,
                    i64::from(window_s),
                    &namespaces,
                    &integrals,
                    usage.as_ref(),
                );
                let batches: Vec<Batch> = samples
                    .chunks(BATCH_SAMPLES)
                    .map(|c| Batch {
                        window_seconds: window_s,
                        samples: c.to_vec(),
                    })
                    .collect();
                tracing::debug!(%start, samples = samples.len(), "window observed");
                buffer.push(start, batches, max_batches, &telemetry);
                telemetry
                    .metering_windows
                    .get_or_create(&OutcomeLabels {
                        outcome: "observed",
                    })
                    .inc();
            } else {
                tracing::info!(%start, "window not observed whole; it stays unmetered");
                telemetry
                    .metering_windows
                    .get_or_create(&OutcomeLabels {
                        outcome: "unobserved",
                    })
                    .inc();
            }
            start = end;
        }
    };
    tokio::select! {
        () = ticking => {}
        () = shutdown => {}
    }
    // What is buffered gets a moment to go out; the API takes a batch sent twice as a duplicate.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !buffer.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(tasks);
}

/// The watches and the sender: aborted when metering ends or is dropped.
struct Tasks(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tenant_namespace_gets_every_metric_each_window() {
        let start: DateTime<Utc> = "2026-11-25T10:00:00Z".parse().unwrap_or_default();
        let namespaces = BTreeMap::from([
            ("a-prod".to_string(), "a".to_string()),
            ("b-dev".to_string(), "b".to_string()),
        ]);
        let integrals = BTreeMap::from([(
            "a-prod".to_string(),
            BTreeMap::from([
                (Amount::CpuRequested, 30_000),
                (Amount::Gpu("nvidia.com/gpu".into()), 60),
            ]),
        )]);
        let without_metrics = window_samples(start, 60, &namespaces, &integrals, None);
        assert_eq!(without_metrics.len(), 2 * 7 + 1);
        assert!(
            !without_metrics
                .iter()
                .any(|s| matches!(s.metric, Metric::CpuUsed | Metric::MemoryUsed)),
            "use is absent, not zero, without the metrics API"
        );
        let usage = BTreeMap::from([("a-prod".to_string(), (100, 1 << 20))]);
        let with = window_samples(start, 60, &namespaces, &integrals, Some(&usage));
        let used: Vec<(&str, i64)> = with
            .iter()
            .filter(|s| s.metric == Metric::CpuUsed)
            .map(|s| (s.namespace.as_str(), s.quantity))
            .collect();
        assert_eq!(used, [("a-prod", 6000), ("b-dev", 0)]);
        assert!(with.iter().all(|s| s.window_start == start));
    }
}
