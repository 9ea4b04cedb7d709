//! Kubernetes Events about tenants, one kube [`Recorder`] per tenant.
//!
//! kube's `Recorder` folds a repeated event into its first one (a series) from a cache of what
//! it published in the last six minutes, and walks that whole cache on every publish to drop
//! what has expired. One recorder for the whole operator made a cold start of N tenants walk
//! N²/2 cached events: at 3,000 tenants a `retain` over that cache was 2 % of the operator's
//! CPU, and it holds the cache's write lock meanwhile, so reconciles publishing at once waited
//! on each other. An event's series key names the object it regards, so a recorder per tenant
//! folds exactly what the single one did; each walks only its own tenant's events.
//!
//! Recorders idle for longer than kube's cache keeps an event hold nothing that could still be
//! folded into; they are dropped, at most once a minute, so the operator's memory does not keep
//! one per tenant it has ever spoken of.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::Client;
use kube::runtime::events::{Event, Recorder, Reporter};

/// How long kube's recorder keeps a published event to fold repeats into (its `CACHE_TTL`).
pub const FOLD_WINDOW: Duration = Duration::from_secs(6 * 60);

/// How often idle recorders are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

struct Shard {
    recorder: Recorder,
    last_used: Instant,
}

struct Shards {
    by_object: HashMap<String, Shard>,
    last_sweep: Instant,
}

/// Publishes Events, each object's through its own recorder.
pub struct Events {
    client: Client,
    reporter: Reporter,
    shards: Mutex<Shards>,
}

impl Events {
    pub fn new(client: Client, reporter: Reporter) -> Self {
        Self {
            client,
            reporter,
            shards: Mutex::new(Shards {
                by_object: HashMap::new(),
                last_sweep: Instant::now(),
            }),
        }
    }

    /// The recorder of the object `key` names (made if there is none), sweeping idle ones
    /// first when it is time to.
    fn recorder(&self, key: &str, now: Instant) -> Recorder {
        let mut shards = self
            .shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if now.saturating_duration_since(shards.last_sweep) >= SWEEP_EVERY {
            shards
                .by_object
                .retain(|_, s| now.saturating_duration_since(s.last_used) < FOLD_WINDOW);
            shards.last_sweep = now;
        }
        let shard = shards
            .by_object
            .entry(key.to_string())
            .or_insert_with(|| Shard {
                recorder: Recorder::new(self.client.clone(), self.reporter.clone()),
                last_used: now,
            });
        shard.last_used = now;
        shard.recorder.clone()
    }

    /// Publishes an event about `regarding` (a repeat within [`FOLD_WINDOW`] raises the count
    /// of the first one).
    pub async fn publish(
        &self,
        event: &Event,
        regarding: &ObjectReference,
    ) -> Result<(), kube::Error> {
        let key = format!(
            "{}/{}/{}/{}",
            regarding.api_version.as_deref().unwrap_or_default(),
            regarding.kind.as_deref().unwrap_or_default(),
            regarding.namespace.as_deref().unwrap_or_default(),
            regarding.name.as_deref().unwrap_or_default(),
        );
        self.recorder(&key, Instant::now())
            .publish(event, regarding)
            .await
    }

    /// How many recorders are held (for tests).
    pub fn held(&self) -> usize {
        self.shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_object
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::events::v1::Event as K8sEvent;
    use kube::api::{Api, ListParams};
    use kube::runtime::events::EventType;

    fn regarding(name: &str) -> ObjectReference {
        ObjectReference {
            api_version: Some("govcloud.io/v1alpha1".into()),
            kind: Some("Tenant".into()),
            name: Some(name.into()),
            uid: Some(format!("uid-{name}")),
            ..ObjectReference::default()
        }
    }

    fn ready() -> Event {
        Event {
            type_: EventType::Normal,
            reason: "Ready".into(),
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
                instance: None,
            },
        );
        events.publish(&ready(), &regarding("a")).await?;
        events.publish(&ready(), &regarding("b")).await?;
        events.publish(&ready(), &regarding("a")).await?;
        let list = Api::<K8sEvent>::namespaced(client, "default")
            .list(&ListParams::default())
            .await?;
        let count_of = |name: &str| -> Vec<i32> {
            list.items
                .iter()
                .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
                .map(|e| e.series.as_ref().map_or(1, |s| s.count))
                .collect()
        };
        // One Event for a, counted twice; one for b, once.
        assert_eq!(count_of("a"), vec![2]);
        assert_eq!(count_of("b"), vec![1]);
        assert_eq!(events.held(), 2);
        sim.shutdown().await;
        Ok(())
    }

    #[tokio::test]
    async fn recorders_idle_longer_than_the_fold_window_are_dropped_at_the_next_sweep()
    -> anyhow::Result<()> {
        let sim = kubesim::KubeSim::start().await?;
        let events = Events::new(
            sim.client()?,
            Reporter {
                controller: "govcloud-operator".into(),
                instance: None,
            },
        );
        let t0 = Instant::now();
        events.recorder("a", t0);
        // A minute on: a sweep, too soon for a to be idle.
        events.recorder("b", t0 + SWEEP_EVERY);
        assert_eq!(events.held(), 2);
        // Past a's window, not b's: a is dropped, b kept, c made.
        events.recorder("c", t0 + FOLD_WINDOW + Duration::from_secs(1));
        let mut held: Vec<String> = events
            .shards
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .by_object
            .keys()
            .cloned()
            .collect();
        held.sort();
        assert_eq!(held, ["b", "c"]);
        sim.shutdown().await;
        Ok(())
    }
}
