//! What the operator owns in the cluster, as its watches last saw it, kept small: for each
//! object the digest of the desired object it was last applied from (the
//! [`ANNOTATION_APPLIED`] annotation), whether anyone else has written it since, whether it is
//! being deleted, and for quotas the status. A reconcile skips every apply whose desired object
//! has the same digest and that nobody else has touched, so a resync in which nothing changed
//! (after a restart too) writes nothing and calls the API server for nothing.
//!
//! The same watches trigger reconciles: every change but the operator's own writes coming
//! back, and quota statuses a reconcile is waiting for (see [`Owned::wait_for_quota`]).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use futures::{Stream, StreamExt};
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::ObjectMeta;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tokio::sync::{oneshot, watch};

use crate::build::{FIELD_MANAGER, LABEL_TENANT};

/// The digest of the desired object an owned object was last applied from.
pub const ANNOTATION_APPLIED: &str = "govcloud.io/applied";

/// The kinds the operator makes in tenant namespaces (and the namespaces themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Namespace,
    ServiceAccount,
    RoleBinding,
    ResourceQuota,
    LimitRange,
    NetworkPolicy,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Namespace,
        Kind::ServiceAccount,
        Kind::RoleBinding,
        Kind::ResourceQuota,
        Kind::LimitRange,
        Kind::NetworkPolicy,
    ];
}

/// A quota's `spec.hard` and `status`, as strings (the status maps empty until the quota
/// controller has reported).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaStatus {
    pub spec_hard: BTreeMap<String, String>,
    pub hard: BTreeMap<String, String>,
    pub used: BTreeMap<String, String>,
}

fn strings(
    m: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
) -> BTreeMap<String, String> {
    m.into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect()
}

impl QuotaStatus {
    pub fn of(quota: &ResourceQuota) -> Option<Self> {
        let status = quota.status.as_ref();
        Some(Self {
            spec_hard: strings(quota.spec.as_ref().and_then(|s| s.hard.as_ref())),
            hard: strings(status.and_then(|s| s.hard.as_ref())),
            used: strings(status.and_then(|s| s.used.as_ref())),
        })
    }

    /// The quota controller has reported the limits the spec sets: the quota is in force as
    /// written.
    pub fn in_force(&self) -> bool {
        !self.hard.is_empty() && self.hard == self.spec_hard
    }
}

/// What the operator keeps of one owned object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Seen {
    /// The value of [`ANNOTATION_APPLIED`].
    pub applied: Option<String>,
    /// Nobody but the operator has written the object (its main resource) since the
    /// operator's own latest write.
    pub clean: bool,
    /// Its `govcloud.io/tenant` label (kept for namespaces and policies, the kinds looked up by
    /// tenant).
    pub tenant: Option<String>,
    /// It has a deletionTimestamp.
    pub terminating: bool,
    /// A quota's status.
    pub quota: Option<QuotaStatus>,
}

type Key = (Kind, String, String);

/// A quota map as kept: `key=value` lines in one allocation (resource names and quantities
/// hold neither `=` nor a line break), a tenth of a BTreeMap's size, for 20,000 quotas.
fn encode(m: &BTreeMap<String, String>) -> Box<str> {
    let mut out = String::new();
    for (k, v) in m {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(k);
        out.push('=');
        out.push_str(v);
    }
    out.into_boxed_str()
}

fn decode(s: &str) -> BTreeMap<String, String> {
    s.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A quota as kept: whether its report matches its spec, and the report.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KeptQuota {
    in_force: bool,
    hard: Box<str>,
    used: Box<str>,
}

/// What is kept of one object: [`Seen`], compactly (the digest as bytes, the maps as pairs).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    applied: Option<[u8; DIGEST_BYTES]>,
    clean: bool,
    terminating: bool,
    tenant: Option<Box<str>>,
    quota: Option<Box<KeptQuota>>,
}

impl Entry {
    fn of(seen: Seen) -> Self {
        Self {
            applied: seen.applied.as_deref().and_then(digest_bytes),
            clean: seen.clean,
            terminating: seen.terminating,
            tenant: seen.tenant.map(String::into_boxed_str),
            quota: seen.quota.map(|q| {
                Box::new(KeptQuota {
                    in_force: q.in_force(),
                    hard: encode(&q.hard),
                    used: encode(&q.used),
                })
            }),
        }
    }

    fn seen(&self) -> Seen {
        Seen {
            applied: self.applied.map(|d| hex(&d)),
            clean: self.clean,
            terminating: self.terminating,
            tenant: self.tenant.as_deref().map(str::to_string),
            quota: self.quota.as_ref().map(|q| {
                let hard = decode(&q.hard);
                QuotaStatus {
                    // Only whether they matched is kept of the spec's limits.
                    spec_hard: if q.in_force {
                        hard.clone()
                    } else {
                        BTreeMap::new()
                    },
                    hard,
                    used: decode(&q.used),
                }
            }),
        }
    }
}

const DIGEST_BYTES: usize = 12;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn digest_bytes(hex: &str) -> Option<[u8; DIGEST_BYTES]> {
    if hex.len() != DIGEST_BYTES * 2 || !hex.is_ascii() {
        return None;
    }
    let mut out = [0u8; DIGEST_BYTES];
    for (i, b) in out.iter_mut().enumerate() {
        *b = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// A quota about to be written whose report is awaited (see [`Owned::expect_quota`]).
pub struct Expected {
    namespace: String,
    name: String,
    rx: oneshot::Receiver<()>,
}

/// Reconciles waiting for a quota's status, by (namespace, name).
type Waiters = HashMap<(String, String), Vec<oneshot::Sender<()>>>;

/// The digest of a desired object: what [`ANNOTATION_APPLIED`] holds once it is applied.
pub fn digest<K: Serialize>(obj: &K) -> Result<String, serde_json::Error> {
    let bytes = serde_json::to_vec(obj)?;
    let sum = Sha256::digest(&bytes);
    Ok(hex(&sum[..DIGEST_BYTES]))
}

/// Whether nobody else has written the object's main resource since the operator last did:
/// every other manager's entry (status subresources aside) is strictly older than the
/// operator's latest. Times are to the second, so a write in the same second counts as newer.
pub fn untouched_by_others(meta: &ObjectMeta) -> bool {
    let main = || {
        meta.managed_fields
            .iter()
            .flatten()
            .filter(|e| e.subresource.as_deref().is_none_or(str::is_empty))
    };
    let Some(ours) = main()
        .filter(|e| e.manager.as_deref() == Some(FIELD_MANAGER))
        .filter_map(|e| e.time.as_ref().map(|t| t.0))
        .max()
    else {
        return false;
    };
    main()
        .filter(|e| e.manager.as_deref() != Some(FIELD_MANAGER))
        .all(|e| e.time.as_ref().is_some_and(|t| t.0 < ours))
}

/// Whether a watch event is only the operator's own write coming back: the latest entries of
/// its managedFields are all the operator's. Anyone else's change (in the same second or
/// later), and every deletion, still triggers a reconcile.
pub fn own_write(meta: &ObjectMeta) -> bool {
    let entries = meta.managed_fields.iter().flatten();
    let Some(latest) = entries
        .clone()
        .filter_map(|e| e.time.as_ref())
        .map(|t| t.0)
        .max()
    else {
        return false;
    };
    entries
        .filter(|e| e.time.as_ref().is_some_and(|t| t.0 == latest))
        .all(|e| e.manager.as_deref() == Some(FIELD_MANAGER))
}

fn seen(kind: Kind, meta: &ObjectMeta, quota: Option<QuotaStatus>) -> Seen {
    Seen {
        applied: meta
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_APPLIED))
            .cloned(),
        clean: untouched_by_others(meta),
        tenant: matches!(kind, Kind::Namespace | Kind::NetworkPolicy)
            .then(|| {
                meta.labels
                    .as_ref()
                    .and_then(|l| l.get(LABEL_TENANT))
                    .cloned()
            })
            .flatten(),
        terminating: meta.deletion_timestamp.is_some(),
        quota,
    }
}

/// The operator's view of what it owns. Shared by the watches (which write it) and the
/// reconciles (which read it).
pub struct Owned {
    objects: Mutex<BTreeMap<Key, Entry>>,
    /// Per kind, the keys seen during a relist in progress (what is not seen again is gone).
    relisting: Mutex<HashMap<Kind, BTreeSet<(String, String)>>>,
    /// Reconciles waiting for a quota's status: (namespace, name).
    waiters: Mutex<Waiters>,
    synced: watch::Sender<BTreeSet<Kind>>,
}

impl Default for Owned {
    fn default() -> Self {
        Self {
            objects: Mutex::new(BTreeMap::new()),
            relisting: Mutex::new(HashMap::new()),
            waiters: Mutex::new(HashMap::new()),
            synced: watch::Sender::new(BTreeSet::new()),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A namespaced object's key (cluster-scoped ones have an empty namespace).
fn key(kind: Kind, namespace: &str, name: &str) -> Key {
    (kind, namespace.to_string(), name.to_string())
}

impl Owned {
    /// What the watches last saw of an object.
    pub fn get(&self, kind: Kind, namespace: &str, name: &str) -> Option<Seen> {
        lock(&self.objects)
            .get(&key(kind, namespace, name))
            .map(Entry::seen)
    }

    /// Whether the watches know the object at all.
    pub fn contains(&self, kind: Kind, namespace: &str, name: &str) -> bool {
        lock(&self.objects).contains_key(&key(kind, namespace, name))
    }

    /// Whether applying `digest` to the object would change nothing: the object is there, was
    /// last applied from the same desired object, nobody else has written it since, and it is
    /// not going away.
    pub fn unchanged(&self, kind: Kind, namespace: &str, name: &str, digest: &str) -> bool {
        lock(&self.objects)
            .get(&key(kind, namespace, name))
            .is_some_and(|s| {
                s.clean
                    && !s.terminating
                    && s.applied.is_some()
                    && s.applied == digest_bytes(digest)
            })
    }

    /// The names of a kind in a namespace labelled as `tenant`'s.
    pub fn names_in(&self, kind: Kind, namespace: &str, tenant: &str) -> Vec<String> {
        let from = (kind, namespace.to_string(), String::new());
        lock(&self.objects)
            .range(from..)
            .take_while(|((k, ns, _), _)| *k == kind && ns == namespace)
            .filter(|(_, s)| s.tenant.as_deref() == Some(tenant))
            .map(|((_, _, n), _)| n.clone())
            .collect()
    }

    /// The namespaces labelled as `tenant`'s. Its namespaces are named `<tenant>-<name>`, so
    /// only those names are looked at.
    pub fn namespaces_of(&self, tenant: &str) -> Vec<String> {
        let prefix = format!("{tenant}-");
        let from = (Kind::Namespace, String::new(), prefix.clone());
        lock(&self.objects)
            .range(from..)
            .take_while(|((k, _, n), _)| *k == Kind::Namespace && n.starts_with(&prefix))
            .filter(|(_, s)| s.tenant.as_deref() == Some(tenant))
            .map(|((_, _, n), _)| n.clone())
            .collect()
    }

    /// How many objects are held (for the memory gauge and tests).
    pub fn len(&self) -> usize {
        lock(&self.objects).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every kind has been listed once, for at most `timeout`. Answers whether they
    /// have: if not, reconciles apply without skipping (correct, only slower).
    pub async fn wait_synced(&self, timeout: Duration) -> bool {
        let mut rx = self.synced.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|s| s.len() == Kind::ALL.len()))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    pub fn is_synced(&self) -> bool {
        self.synced.borrow().len() == Kind::ALL.len()
    }

    /// Says that the quota is about to be written and its report awaited: the quota
    /// controller's report, when it comes, wakes the writer instead of triggering a reconcile.
    pub fn expect_quota(&self, namespace: &str, name: &str) -> Expected {
        Expected {
            namespace: namespace.to_string(),
            name: name.to_string(),
            rx: self.register(namespace, name),
        }
    }

    fn register(&self, namespace: &str, name: &str) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters)
            .entry((namespace.to_string(), name.to_string()))
            .or_default()
            .push(tx);
        rx
    }

    /// Waits (at most `timeout`) until the watches show the expected quota with `status.hard`
    /// equal to `hard` (its spec), and answers its status then; `None` when it did not come in
    /// time.
    pub async fn wait_for_quota(
        &self,
        expected: Expected,
        hard: &BTreeMap<String, String>,
        timeout: Duration,
    ) -> Option<QuotaStatus> {
        let Expected {
            namespace,
            name,
            mut rx,
        } = expected;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Registered before looking, so a report arriving in between is not missed.
            let reported = lock(&self.objects)
                .get(&key(Kind::ResourceQuota, &namespace, &name))
                .filter(|e| e.quota.as_ref().is_some_and(|q| *q.hard == *encode(hard)))
                .map(Entry::seen)
                .and_then(|s| s.quota);
            if let Some(status) = reported {
                drop(rx);
                self.forget_waiters(&namespace, &name);
                return Some(status);
            }
            if tokio::time::timeout_at(deadline, rx).await.is_err() {
                self.forget_waiters(&namespace, &name);
                return None;
            }
            rx = self.register(&namespace, &name);
        }
    }

    /// No longer waits for the expected report (the quota was in force already).
    pub fn release(&self, expected: Expected) {
        let Expected {
            namespace,
            name,
            rx,
            ..
        } = expected;
        drop(rx);
        self.forget_waiters(&namespace, &name);
    }

    fn forget_waiters(&self, namespace: &str, name: &str) {
        let mut w = lock(&self.waiters);
        let k = (namespace.to_string(), name.to_string());
        if let Some(list) = w.get_mut(&k) {
            list.retain(|tx| !tx.is_closed());
            if list.is_empty() {
                w.remove(&k);
            }
        }
    }

    /// Wakes whoever waits for this quota; answers whether anyone did.
    fn wake(&self, namespace: &str, name: &str) -> bool {
        let Some(list) = lock(&self.waiters).remove(&(namespace.to_string(), name.to_string()))
        else {
            return false;
        };
        let mut woke = false;
        for tx in list {
            woke |= tx.send(()).is_ok();
        }
        woke
    }

    /// Takes in one watch event; answers the object when it calls for a reconcile.
    fn observe<K>(
        &self,
        kind: Kind,
        event: watcher::Event<K>,
        quota: fn(&K) -> Option<QuotaStatus>,
    ) -> Option<K>
    where
        K: Resource,
    {
        match event {
            watcher::Event::Init => {
                lock(&self.relisting).insert(kind, BTreeSet::new());
                None
            }
            watcher::Event::InitApply(o) => {
                let (ns, name) = (o.namespace().unwrap_or_default(), o.name_any());
                lock(&self.objects).insert(
                    key(kind, &ns, &name),
                    Entry::of(seen(kind, o.meta(), quota(&o))),
                );
                if let Some(set) = lock(&self.relisting).get_mut(&kind) {
                    set.insert((ns, name));
                }
                (!own_write(o.meta())).then_some(o)
            }
            watcher::Event::InitDone => {
                if let Some(listed) = lock(&self.relisting).remove(&kind) {
                    lock(&self.objects).retain(|(k, ns, name), _| {
                        *k != kind || listed.contains(&(ns.clone(), name.clone()))
                    });
                }
                self.synced.send_modify(|s| {
                    s.insert(kind);
                });
                None
            }
            watcher::Event::Apply(o) => {
                let (ns, name) = (o.namespace().unwrap_or_default(), o.name_any());
                let status = quota(&o);
                let has_status = status.as_ref().is_some_and(|q| !q.hard.is_empty());
                lock(&self.objects).insert(
                    key(kind, &ns, &name),
                    Entry::of(seen(kind, o.meta(), status)),
                );
                // A quota report someone waits for is theirs to read, not a new trigger, as long
                // as nobody else has changed the quota itself.
                if kind == Kind::ResourceQuota
                    && has_status
                    && self.wake(&ns, &name)
                    && untouched_by_others(o.meta())
                {
                    return None;
                }
                (!own_write(o.meta())).then_some(o)
            }
            watcher::Event::Delete(o) => {
                let (ns, name) = (o.namespace().unwrap_or_default(), o.name_any());
                lock(&self.objects).remove(&key(kind, &ns, &name));
                Some(o)
            }
        }
    }

    /// Follows one kind's watch: keeps the view current and answers the objects whose change
    /// calls for a reconcile of their owner.
    pub fn follow<K, S>(
        self: std::sync::Arc<Self>,
        kind: Kind,
        events: S,
        quota: fn(&K) -> Option<QuotaStatus>,
    ) -> impl Stream<Item = Result<K, watcher::Error>> + Send + 'static
    where
        K: Resource + Send + 'static,
        S: Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send + 'static,
    {
        events.filter_map(move |event| {
            let out = match event {
                Ok(e) => self.observe(kind, e, quota).map(Ok),
                Err(e) => Some(Err(e)),
            };
            futures::future::ready(out)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    fn entry(manager: &str, at: i64, subresource: Option<&str>) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            time: Some(Time(
                jiff::Timestamp::from_second(at).unwrap_or_else(|e| panic!("{e}")),
            )),
            subresource: subresource.map(str::to_string),
            ..ManagedFieldsEntry::default()
        }
    }

    fn meta(entries: Vec<ManagedFieldsEntry>) -> ObjectMeta {
        ObjectMeta {
            managed_fields: Some(entries),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn only_the_operators_own_latest_write_is_ignored() {
        // Ours is the latest: our write coming back.
        assert!(own_write(&meta(vec![
            entry("kube-controller-manager", 10, None),
            entry(FIELD_MANAGER, 20, None)
        ])));
        // Someone else wrote after us, or in the same second: a change to look at.
        assert!(!own_write(&meta(vec![
            entry(FIELD_MANAGER, 20, None),
            entry("kubectl-edit", 30, None)
        ])));
        assert!(!own_write(&meta(vec![
            entry(FIELD_MANAGER, 20, None),
            entry("kubectl-edit", 20, None)
        ])));
        // Nothing to tell by: look.
        assert!(!own_write(&meta(Vec::new())));
    }

    #[test]
    fn an_object_is_untouched_only_when_every_other_writer_is_older_than_ours() {
        // A controller's status report does not make the spec someone else's.
        assert!(untouched_by_others(&meta(vec![
            entry(FIELD_MANAGER, 20, None),
            entry("kube-controller-manager", 30, Some("status")),
        ])));
        assert!(untouched_by_others(&meta(vec![
            entry("kubectl-create", 10, None),
            entry(FIELD_MANAGER, 20, None),
        ])));
        // An edit after ours, or in the same second, or no write of ours at all.
        assert!(!untouched_by_others(&meta(vec![
            entry(FIELD_MANAGER, 20, None),
            entry("kubectl-edit", 30, None),
        ])));
        assert!(!untouched_by_others(&meta(vec![
            entry(FIELD_MANAGER, 20, None),
            entry("kubectl-edit", 20, None),
        ])));
        assert!(!untouched_by_others(&meta(vec![entry(
            "kubectl-edit",
            20,
            None
        )])));
        assert!(!untouched_by_others(&meta(Vec::new())));
    }

    #[test]
    fn a_kept_quota_map_reads_back_as_it_was() {
        let m = BTreeMap::from([
            ("limits.cpu".to_string(), "8".to_string()),
            ("requests.memory".to_string(), "32Gi".to_string()),
            ("services.nodeports".to_string(), "0".to_string()),
        ]);
        assert_eq!(decode(&encode(&m)), m);
        assert!(decode(&encode(&BTreeMap::new())).is_empty());
    }

    #[test]
    fn the_digest_follows_the_desired_object() -> Result<(), serde_json::Error> {
        let a = serde_json::json!({"spec": {"hard": {"cpu": "1"}}});
        let b = serde_json::json!({"spec": {"hard": {"cpu": "2"}}});
        assert_eq!(digest(&a)?, digest(&a.clone())?);
        assert_ne!(digest(&a)?, digest(&b)?);
        assert_eq!(digest(&a)?.len(), 24);
        Ok(())
    }

    const D1: &str = "0123456789abcdef01234567";
    const D2: &str = "0123456789abcdef01234568";

    fn quota(ns: &str, name: &str, hard: &str, entries: Vec<ManagedFieldsEntry>) -> ResourceQuota {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": ns, "annotations": {ANNOTATION_APPLIED: D1},
                "labels": {LABEL_TENANT: "a"}, "managedFields": entries},
            "spec": {"hard": {"pods": hard}},
            "status": {"hard": {"pods": hard}, "used": {"pods": "0"}},
        }))
        .unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_quota_status_someone_waits_for_wakes_them_instead_of_triggering() {
        let owned = std::sync::Arc::new(Owned::default());
        let ours = vec![entry(FIELD_MANAGER, 20, None)];
        let report = vec![
            entry(FIELD_MANAGER, 20, None),
            entry("kube-controller-manager", 21, Some("status")),
        ];
        // Nobody waits: the controller's report triggers (the tenant's status shows usage).
        assert!(
            owned
                .observe(
                    Kind::ResourceQuota,
                    watcher::Event::Apply(quota("n", "q", "5", report.clone())),
                    QuotaStatus::of
                )
                .is_some()
        );
        // Our own write coming back does not.
        assert!(
            owned
                .observe(
                    Kind::ResourceQuota,
                    watcher::Event::Apply(quota("n", "q", "5", ours)),
                    QuotaStatus::of
                )
                .is_none()
        );
        let hard = BTreeMap::from([("pods".to_string(), "9".to_string())]);
        let waiting = {
            let owned = owned.clone();
            let hard = hard.clone();
            let expected = owned.expect_quota("n", "q");
            tokio::spawn(async move {
                owned
                    .wait_for_quota(expected, &hard, Duration::from_secs(10))
                    .await
            })
        };
        // An unrelated report (the old limit) wakes the waiter, who goes on waiting.
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        let _ = owned.observe(
            Kind::ResourceQuota,
            watcher::Event::Apply(quota("n", "q", "5", report.clone())),
            QuotaStatus::of,
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        // The report of the new limit is the waiter's, and triggers nothing.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            owned
                .observe(
                    Kind::ResourceQuota,
                    watcher::Event::Apply(quota("n", "q", "9", report)),
                    QuotaStatus::of
                )
                .is_none()
        );
        let got = waiting.await.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(got.map(|q| q.hard), Some(hard));
    }

    #[tokio::test]
    async fn a_wait_for_a_status_that_never_comes_ends_and_leaves_nothing_behind() {
        let owned = Owned::default();
        let hard = BTreeMap::from([("pods".to_string(), "9".to_string())]);
        assert_eq!(
            owned
                .wait_for_quota(
                    owned.expect_quota("n", "q"),
                    &hard,
                    Duration::from_millis(50)
                )
                .await,
            None
        );
        assert!(lock(&owned.waiters).is_empty());
    }

    #[test]
    fn a_relist_forgets_what_is_gone_and_a_view_answers_by_namespace_and_tenant() {
        let owned = Owned::default();
        let q = |name: &str| quota("n", name, "5", vec![entry(FIELD_MANAGER, 20, None)]);
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(q("a")),
            watcher::Event::InitApply(q("b")),
            watcher::Event::InitDone,
        ] {
            let _ = owned.observe(Kind::ResourceQuota, e, QuotaStatus::of);
        }
        assert!(owned.unchanged(Kind::ResourceQuota, "n", "a", D1));
        assert!(!owned.unchanged(Kind::ResourceQuota, "n", "a", D2));
        assert!(!owned.unchanged(Kind::ResourceQuota, "n", "a", "not a digest"));
        // Tenants are kept for the kinds looked up by tenant only.
        assert!(owned.names_in(Kind::ResourceQuota, "n", "a").is_empty());
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(q("p1")),
            watcher::Event::InitApply(q("p2")),
            watcher::Event::InitDone,
        ] {
            let _ = owned.observe(Kind::NetworkPolicy, e, |_| None);
        }
        assert_eq!(owned.names_in(Kind::NetworkPolicy, "n", "a"), ["p1", "p2"]);
        assert!(
            owned
                .names_in(Kind::NetworkPolicy, "n", "other-tenant")
                .is_empty()
        );
        assert!(
            owned
                .names_in(Kind::NetworkPolicy, "other-ns", "a")
                .is_empty()
        );
        for e in [
            watcher::Event::Init,
            watcher::Event::InitApply(q("b")),
            watcher::Event::InitDone,
        ] {
            let _ = owned.observe(Kind::ResourceQuota, e, QuotaStatus::of);
        }
        assert_eq!(owned.get(Kind::ResourceQuota, "n", "a"), None);
        assert_eq!(owned.len(), 3, "b and the two policies");
    }
}
