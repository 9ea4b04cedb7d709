//! Kubernetes Events about tenants (`events.k8s.io/v1`), a repeat folded into its first event.
//!
//! As kube's `Recorder` does, an event repeated within six minutes (same object, type, action,
//! reason, reporter) raises the series count of the first one instead of making another. kube's
//! recorder keeps every event it published in those six minutes, whole, and walks them all on
//! every publish to drop the expired ones, under one write lock: over a cold start of N tenants
//! that is N²/2 entries walked (at 3,000 tenants 2 % of the operator's CPU, and reconciles
//! publishing at once waited on each other), and 10,000 whole events held. This keeps, per
//! event it may fold into, only its name and its count, and drops the expired at most once a
//! minute.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event as K8sEvent, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::Client;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event, EventType, Reporter};

/// How long a published event takes repeats (kube's recorder's `CACHE_TTL`).
pub const FOLD_WINDOW: Duration = Duration::from_secs(6 * 60);

/// How often expired events are forgotten.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// A published event repeats may still be folded into.
struct Folded {
    name: String,
    count: i32,
    last: Instant,
}

struct Published {
    by_key: HashMap<String, Folded>,
    last_sweep: Instant,
}

/// Publishes Events for the operator.
pub struct Events {
    client: Client,
    reporter: Reporter,
    published: Mutex<Published>,
}

/// What makes two events one series: the object they regard, and what happened.
fn fold_key(event: &Event, regarding: &ObjectReference) -> String {
    let r = regarding;
    let part = |s: &Option<String>| s.clone().unwrap_or_default();
    format!(
        "{}\u{0}{}\u{0}{}\u{0}{}\u{0}{}\u{0}{:?}\u{0}{}\u{0}{}\u{0}{}",
        part(&r.api_version),
        part(&r.kind),
        part(&r.namespace),
        part(&r.name),
        part(&r.uid),
        event.type_,
        event.action,
        event.reason,
        event.secondary.as_ref().map_or(String::new(), |s| format!(
            "{}/{}/{}/{}",
            part(&s.kind),
            part(&s.namespace),
            part(&s.name),
            part(&s.uid)
        )),
    )
}

/// What to do with an event: publish it new, or count it into the one named.
#[derive(Debug, PartialEq)]
enum Step {
    Create,
    Count { name: String, count: i32 },
}

impl Published {
    /// Decides, as of `now`, forgetting the expired first when it is time to.
    fn step(&mut self, key: &str, now: Instant) -> Step {
        if now.saturating_duration_since(self.last_sweep) >= SWEEP_EVERY {
            self.by_key
                .retain(|_, f| now.saturating_duration_since(f.last) < FOLD_WINDOW);
            self.last_sweep = now;
        }
        match self.by_key.get(key) {
            Some(f) if now.saturating_duration_since(f.last) < FOLD_WINDOW => Step::Count {
                name: f.name.clone(),
                count: f.count + 1,
            },
            _ => Step::Create,
        }
    }

    /// Records what was published.
    fn record(&mut self, key: String, name: String, count: i32, now: Instant) {
        self.by_key.insert(
            key,
            Folded {
                name,
                count,
                last: now,
            },
        );
    }
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            published: Mutex::new(Published {
                by_key: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    fn published(&self) -> std::sync::MutexGuard<'_, Published> {
        self.published
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Publishes an event about `regarding` (a cluster-scoped object's in `default`, as kube's
    /// recorder does); a repeat within [`FOLD_WINDOW`] raises the count of the first one.
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = fold_key(event, regarding);
        let step = self.published().step(&key, Instant::now());
        let namespace = regarding.namespace.as_deref().unwrap_or("default");
        let api: Api<K8sEvent> = Api::namespaced(self.client.clone(), namespace);
        let stamp = jiff::Timestamp::now();
        let (name, count) = match step {
            Step::Count { name, count } => {
                let series = serde_json::json!({"series": EventSeries {
                    count,
                    last_observed_time: MicroTime(stamp),
                }});
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&series))
                    .await?;
                (name, count)
            }
            Step::Create => {
                let name = format!(
                    "{}.{:x}",
                    regarding
                        .name
                        .as_deref()
                        .unwrap_or(&self.reporter.controller),
                    stamp.as_nanosecond()
                );
                let body = K8sEvent {
                    action: Some(event.action.clone()),
                    reason: Some(event.reason.clone()),
                    event_time: Some(MicroTime(stamp)),
                    regarding: Some(regarding.clone()),
                    related: event.secondary.clone(),
                    note: event.note.clone(),
                    metadata: ObjectMeta {
                        namespace: regarding.namespace.clone(),
                        name: Some(name.clone()),
                        ..ObjectMeta::default()
                    },
                    reporting_controller: Some(self.reporter.controller.clone()),
                    reporting_instance: Some(
                        self.reporter
                            .instance
                            .clone()
                            .unwrap_or_else(|| self.reporter.controller.clone()),
                    ),
                    type_: Some(
                        match event.type_ {
                            EventType::Normal => "Normal",
                            EventType::Warning => "Warning",
                        }
                        .into(),
                    ),
                    ..K8sEvent::default()
                };
                api.create(&PostParams::default(), &body).await?;
                (name, 1)
            }
        };
        self.published().record(key, name, count, Instant::now());
        Ok(())
    }

    /// How many published events are kept to fold repeats into (for tests).
    pub fn held(&self) -> usize {
        self.published().by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::api::ListParams;

    fn regarding(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("govcloud.io/v1alpha1".into()),
            kind: Some("Tenant".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn event(reason: &str) -> Event {
        Event {
            type_: EventType::Normal,
            reason: reason.into(),
            note: Some("every namespace is ready".into()),
            action: "Reconcile".into(),
            secondary: None,
        }
    }

    #[tokio::test]
    async fn a_repeat_is_folded_into_its_first_event_and_other_tenants_keep_their_own()
    -> anyhow::Result<()> {
        let sim = kubesim::KubeSim::start().await?;
        let client = sim.client()?;
        let events = Events::new(
            client.clone(),
            Reporter {
                controller: "govcloud-operator".into(),
                instance: Some("replica-1".into()),
            },
        );
        events.publish(&event("Ready"), &regarding("a")).await?;
        events.publish(&event("Ready"), &regarding("b")).await?;
        events.publish(&event("Ready"), &regarding("a")).await?;
        events.publish(&event("Ready"), &regarding("a")).await?;
        // Another reason is another event.
        events
            .publish(&event("Provisioning"), &regarding("a"))
            .await?;
        let list = Api::<K8sEvent>::namespaced(client, "default")
            .list(&ListParams::default())
            .await?;
        let of = |name: &str| -> Vec<(String, i32)> {
            let mut v: Vec<(String, i32)> = list
                .items
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .map(|e| {
                    (
                        e.reason.clone().unwrap_or_default(),
                        e.series.as_ref().map_or(1, |s| s.count),
                    )
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            of("a"),
            vec![("Provisioning".into(), 1), ("Ready".into(), 3)]
        );
        assert_eq!(of("b"), vec![("Ready".into(), 1)]);
        let ready = list
            .items
            .iter()
            .find(|e| e.reason.as_deref() == Some("Ready"))
            .ok_or_else(|| anyhow::anyhow!("no Ready event"))?;
        assert_eq!(
            ready.reporting_controller.as_deref(),
            Some("govcloud-operator")
        );
        assert_eq!(ready.reporting_instance.as_deref(), Some("replica-1"));
        assert_eq!(ready.type_.as_deref(), Some("Normal"));
        assert_eq!(ready.note.as_deref(), Some("every namespace is ready"));
        assert_eq!(events.held(), 3);
        sim.shutdown().await;
        Ok(())
    }

    #[test]
    fn a_repeat_after_the_window_is_a_new_event_and_the_expired_are_forgotten() {
        let t0 = Instant::now();
        let mut p = Published {
            by_key: HashMap::new(),
            last_sweep: t0,
        };
        assert_eq!(p.step("a", t0), Step::Create);
        p.record("a".into(), "a.1".into(), 1, t0);
        assert_eq!(
            p.step("a", t0 + SWEEP_EVERY),
            Step::Count {
                name: "a.1".into(),
                count: 2
            }
        );
        p.record("a".into(), "a.1".into(), 2, t0 + SWEEP_EVERY);
        p.record("b".into(), "b.1".into(), 1, t0 + FOLD_WINDOW);
        // Past a's window (counted from its last repeat), not b's.
        let later = t0 + SWEEP_EVERY + FOLD_WINDOW + Duration::from_secs(1);
        assert_eq!(p.step("a", later), Step::Create);
        let mut held: Vec<&String> = p.by_key.keys().collect();
        held.sort();
        assert_eq!(held, ["b"]);
        assert_eq!(
            p.step("b", later),
            Step::Count {
                name: "b.1".into(),
                count: 2
            }
        );
    }
}
