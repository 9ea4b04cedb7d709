//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go does it: the holder renews
//! `renewTime` within `leaseDurationSeconds`; anyone may take a lease that was not renewed in
//! time; every write carries the resourceVersion read, so two candidates cannot both win. Only
//! the leader runs the controller. On shutdown the leader releases the lease so another replica
//! takes over at once; a leader that cannot renew stops reconciling before its lease runs out.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::telemetry::Telemetry;

/// Where the lease is and how it is timed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    pub namespace: String,
    pub name: String,
    /// This replica's identity (its pod name in a cluster).
    pub identity: String,
    pub lease_duration: Duration,
    pub renew_interval: Duration,
    pub retry_interval: Duration,
}

impl LeaseSettings {
    pub fn new(namespace: &str, identity: &str) -> Self {
        Self {
            namespace: namespace.into(),
            name: "govcloud-operator".into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_interval: Duration::from_secs(5),
            retry_interval: Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("reading or writing lease {namespace}/{name}: {source}")]
    AccessLease {
        namespace: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("lost lease {namespace}/{name}: it was not renewed in time or another replica took it")]
    LeaseLost { namespace: String, name: String },
}

/// Whether `me` may take or keep a lease at `now`.
pub fn may_hold(spec: Option<&LeaseSpec>, me: &str, now: jiff::Timestamp) -> bool {
    let Some(spec) = spec else { return true };
    match spec.holder_identity.as_deref() {
        None | Some("") => true,
        Some(holder) if holder == me => true,
        Some(_) => {
            let duration = jiff::SignedDuration::from_secs(i64::from(
                spec.lease_duration_seconds.unwrap_or(0),
            ));
            spec.renew_time
                .as_ref()
                .is_none_or(|t| t.0.checked_add(duration).is_ok_and(|expiry| expiry < now))
        }
    }
}

/// The lease as `me` writes it when taking or renewing it.
pub fn held_by(
    current: Option<&LeaseSpec>,
    me: &str,
    now: jiff::Timestamp,
    duration: Duration,
) -> LeaseSpec {
    let same_holder = current.and_then(|s| s.holder_identity.as_deref()) == Some(me);
    let transitions = current.and_then(|s| s.lease_transitions).unwrap_or(0);
    LeaseSpec {
        holder_identity: Some(me.into()),
        lease_duration_seconds: Some(i32::try_from(duration.as_secs()).unwrap_or(i32::MAX)),
        acquire_time: if same_holder {
            current.and_then(|s| s.acquire_time.clone())
        } else {
            Some(MicroTime(now))
        },
        renew_time: Some(MicroTime(now)),
        // As client-go counts: any change of holder of an existing lease, a released one included.
        lease_transitions: Some(if same_holder || current.is_none() {
            transitions
        } else {
            transitions + 1
        }),
        ..LeaseSpec::default()
    }
}

/// One attempt to take or renew the lease; `Ok(false)` when someone else holds it.
pub async fn try_hold(api: &Api<Lease>, s: &LeaseSettings) -> Result<bool, Error> {
    let access = |source: kube::Error| Error::AccessLease {
        namespace: s.namespace.clone(),
        name: s.name.clone(),
        source: Box::new(source),
    };
    let now = jiff::Timestamp::now();
    match api.get_opt(&s.name).await.map_err(access)? {
        None => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(s.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(held_by(None, &s.identity, now, s.lease_duration)),
            };
            match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(access(e)),
            }
        }
        Some(mut lease) => {
            if !may_hold(lease.spec.as_ref(), &s.identity, now) {
                return Ok(false);
            }
            lease.spec = Some(held_by(
                lease.spec.as_ref(),
                &s.identity,
                now,
                s.lease_duration,
            ));
            match api.replace(&s.name, &PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(e)) if e.code == 409 => Ok(false),
                Err(e) => Err(access(e)),
            }
        }
    }
}

/// Gives the lease up if this replica holds it, so another can take over at once.
pub async fn release(api: &Api<Lease>, s: &LeaseSettings) {
    let Ok(Some(mut lease)) = api.get_opt(&s.name).await else {
        return;
    };
    if lease
        .spec
        .as_ref()
        .and_then(|sp| sp.holder_identity.as_deref())
        != Some(s.identity.as_str())
    {
        return;
    }
    if let Some(spec) = lease.spec.as_mut() {
        spec.holder_identity = Some(String::new());
        spec.lease_duration_seconds = Some(1);
    }
    if let Err(e) = api.replace(&s.name, &PostParams::default(), &lease).await {
        tracing::warn!(error = %e, "cannot release the lease");
    }
}

/// Waits for the lease, then runs the controller while holding it. Returns `Ok` after a
/// shutdown (having released the lease) and `Err(LeaseLost)` when leadership was lost.
pub async fn run_as_leader(
    client: Client,
    controller: crate::controller::Settings,
    settings: LeaseSettings,
    telemetry: Arc<Telemetry>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let api: Api<Lease> = Api::namespaced(client.clone(), &settings.namespace);
    let shutdown = shutdown.boxed().shared();
    loop {
        let attempt = try_hold(&api, &settings).await;
        telemetry.set_api_reachable(attempt.is_ok());
        match attempt {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "cannot reach the lease; retrying"),
        }
        tokio::select! {
            _ = shutdown.clone() => return Ok(()),
            _ = tokio::time::sleep(settings.retry_interval) => {}
        }
    }
    tracing::info!(identity = %settings.identity, lease = %settings.name, "became the leader");
    telemetry.leader.set(1);
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let renew = {
        let (api, s, telemetry) = (api.clone(), settings.clone(), telemetry.clone());
        tokio::spawn(async move {
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(s.renew_interval).await;
                let attempt = try_hold(&api, &s).await;
                telemetry.set_api_reachable(attempt.is_ok());
                match attempt {
                    Ok(true) => last_renewed = tokio::time::Instant::now(),
                    Ok(false) => break,
                    // Stop before the lease can run out under us, leaving a margin.
                    Err(e) if last_renewed.elapsed() + s.renew_interval >= s.lease_duration => {
                        tracing::warn!(error = %e, "cannot renew the lease in time");
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot renew the lease; retrying"),
                }
            }
            let _ = lost_tx.send(());
        })
    };
    let lost = lost_rx.shared();
    let stop = {
        let (shutdown, lost) = (shutdown.clone(), lost.clone());
        async move {
            tokio::select! {
                _ = shutdown => {}
                _ = lost => {}
            }
        }
    };
    crate::controller::run(
        client,
        crate::controller::Settings {
            instance: Some(settings.identity.clone()),
            ..controller
        },
        telemetry.clone(),
        stop,
    )
    .await;
    renew.abort();
    telemetry.leader.set(0);
    if lost.peek().is_some() {
        return Err(Error::LeaseLost {
            namespace: settings.namespace,
            name: settings.name,
        });
    }
    release(&api, &settings).await;
    tracing::info!(identity = %settings.identity, "released the lease");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: i64) -> jiff::Timestamp {
        jiff::Timestamp::from_second(s).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_lease_is_free_when_unheld_ours_or_expired() {
        let held = held_by(None, "a", ts(1000), Duration::from_secs(15));
        assert!(may_hold(None, "b", ts(1000)));
        assert!(may_hold(Some(&held), "a", ts(1001)), "the holder renews");
        assert!(
            !may_hold(Some(&held), "b", ts(1010)),
            "someone else's live lease"
        );
        assert!(
            may_hold(Some(&held), "b", ts(1016)),
            "an expired lease can be taken"
        );
        let released = LeaseSpec {
            holder_identity: Some(String::new()),
            ..held.clone()
        };
        assert!(
            may_hold(Some(&released), "b", ts(1001)),
            "a released lease can be taken at once"
        );
    }

    #[test]
    fn taking_over_counts_a_transition_and_renewing_does_not() {
        let a = held_by(None, "a", ts(1000), Duration::from_secs(15));
        assert_eq!(a.lease_transitions, Some(0));
        let renewed = held_by(Some(&a), "a", ts(1005), Duration::from_secs(15));
        assert_eq!(
            (renewed.lease_transitions, renewed.acquire_time.clone()),
            (Some(0), a.acquire_time.clone())
        );
        let b = held_by(Some(&renewed), "b", ts(1030), Duration::from_secs(15));
        assert_eq!(
            (b.holder_identity.as_deref(), b.lease_transitions),
            (Some("b"), Some(1))
        );
        let released = LeaseSpec {
            holder_identity: Some(String::new()),
            ..b.clone()
        };
        assert_eq!(
            held_by(Some(&released), "a", ts(1031), Duration::from_secs(15)).lease_transitions,
            Some(2)
        );
    }
}
