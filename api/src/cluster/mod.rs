//! Everything the API says to Kubernetes: it applies Tenants (server-side apply), watches
//! Tenants (for the status the operator reports), Nodes (for allocatable capacity) and
//! Namespaces (for names already taken), deletes offboarded Tenants, and asks for
//! ServiceAccount tokens for kubeconfigs ([`kubeconfig`]).

pub mod kubeconfig;

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt;
use govcloud_tenant::crd::{Tenant, TenantSpec, TenantStatus};
use govcloud_tenant::names::{Claim, judge_namespace, namespace_name};
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{Namespace, Node, ServiceAccount};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::events::{Event as KubeEvent, EventType, Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Client, Resource};

pub use self::kubeconfig::KubeconfigTarget;
use crate::domain::capacity::Totals;
use crate::domain::quota::{bytes_floor, cpu_milli_floor};

/// The field manager of the API's writes to the cluster.
pub const FIELD_MANAGER: &str = "govcloud-api";

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("applying Tenant {tenant}: {source}")]
    ApplyTenant {
        tenant: String,
        #[source]
        source: kube::Error,
    },
    #[error("requesting a token for {namespace}/{service_account}: {source}")]
    RequestToken {
        namespace: String,
        service_account: String,
        #[source]
        source: kube::Error,
    },
    #[error("the token request for {namespace}/{service_account} answered no token")]
    EmptyToken {
        namespace: String,
        service_account: String,
    },
    #[error("deleting Tenant {tenant}: {source}")]
    DeleteTenant {
        tenant: String,
        #[source]
        source: kube::Error,
    },
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
}

impl ClusterError {
    /// Whether the cluster refused the request itself (it is invalid or forbidden), as opposed
    /// to not answering: trying the same again will not help.
    pub fn is_refusal(&self) -> bool {
        match self {
            Self::ApplyTenant { source, .. }
            | Self::RequestToken { source, .. }
            | Self::DeleteTenant { source, .. } => {
                matches!(source, kube::Error::Api(s) if matches!(s.code, 400 | 403 | 404 | 409 | 422))
            }
            Self::EmptyToken { .. } | Self::Timeout { .. } => false,
        }
    }

    /// The cause in plain words for the people who manage the tenant: what the API server said,
    /// without the client's wrapping.
    pub fn plain(&self) -> String {
        match self {
            Self::ApplyTenant { source, .. }
            | Self::RequestToken { source, .. }
            | Self::DeleteTenant { source, .. } => match source {
                kube::Error::Api(s) if matches!(s.code, 400 | 403 | 404 | 409 | 422) => {
                    format!("the cluster refused it: {}", s.message)
                }
                kube::Error::Api(s) => format!(
                    "the cluster answered an error ({} {}): {}",
                    s.code, s.reason, s.message
                ),
                other => format!("the cluster could not be reached: {other}"),
            },
            Self::EmptyToken { .. } => self.to_string(),
            Self::Timeout { after, .. } => {
                format!("the cluster did not answer within {after:?}")
            }
        }
    }
}

pub struct Cluster {
    client: Client,
    tenants: Store<Tenant>,
    nodes: Store<Node>,
    namespaces: Store<Namespace>,
    pub target: KubeconfigTarget,
    pub timeout: Duration,
}

impl Cluster {
    /// The cluster handle and the future that keeps its watches running (spawn it).
    pub fn new(
        client: Client,
        target: KubeconfigTarget,
    ) -> (Self, impl Future<Output = ()> + Send + 'static) {
        let (tenants, tenant_writer) = reflector::store();
        let (nodes, node_writer) = reflector::store();
        let (namespaces, namespace_writer) = reflector::store();
        let tenant_watch = watcher(
            Api::<Tenant>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(tenant_writer)
        .for_each(|e| async move {
            if let Err(e) = e {
                tracing::debug!(error = %e, "Tenant watch");
            }
        });
        let node_watch = watcher(Api::<Node>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .reflect(node_writer)
            .for_each(|e| async move {
                if let Err(e) = e {
                    tracing::debug!(error = %e, "Node watch");
                }
            });
        // Every namespace, so onboarding can refuse a name the cluster already has.
        let namespace_watch = watcher(
            Api::<Namespace>::all(client.clone()),
            watcher::Config::default(),
        )
        .default_backoff()
        .reflect(namespace_writer)
        .for_each(|e| async move {
            if let Err(e) = e {
                tracing::debug!(error = %e, "Namespace watch");
            }
        });
        let watches = async move {
            futures::join!(tenant_watch, node_watch, namespace_watch);
        };
        (
            Self {
                client,
                tenants,
                nodes,
                namespaces,
                target,
                timeout: Duration::from_secs(10),
            },
            watches,
        )
    }

    async fn bounded<T, E>(
        &self,
        what: impl FnOnce() -> String,
        f: impl Future<Output = Result<T, E>>,
        wrap: impl FnOnce(E) -> ClusterError,
    ) -> Result<T, ClusterError> {
        match tokio::time::timeout(self.timeout, f).await {
            Ok(r) => r.map_err(wrap),
            Err(_) => Err(ClusterError::Timeout {
                what: what(),
                after: self.timeout,
            }),
        }
    }

    /// Applies the Tenant with server-side apply under the API's field manager.
    pub async fn apply_tenant(&self, tenant: &Tenant) -> Result<(), ClusterError> {
        let name = tenant.metadata.name.clone().unwrap_or_default();
        let api = Api::<Tenant>::all(self.client.clone());
        let params = PatchParams::apply(FIELD_MANAGER).force();
        self.bounded(
            || format!("applying Tenant {name}"),
            api.patch(&name, &params, &Patch::Apply(tenant)),
            |source| ClusterError::ApplyTenant {
                tenant: name.clone(),
                source,
            },
        )
        .await
        .map(|_| ())
    }

    /// Why `tenant` cannot have the namespace `name`, as far as the cluster can tell: the
    /// platform keeps it, a namespace of that name exists that is not this tenant's own, or
    /// another Tenant in the cluster (one the API may not know) asks for it. `None`: free.
    pub fn namespace_taken(&self, name: &str, tenant: &str, reserved: &[String]) -> Option<String> {
        let existing = self.namespaces.get(&ObjectRef::new(name));
        if let Claim::Taken(why) = judge_namespace(
            name,
            existing.as_ref().map(|n| &n.metadata),
            tenant,
            reserved,
        ) {
            return Some(why);
        }
        let claimed = self.tenants.state().into_iter().any(|t| {
            t.metadata.name.as_deref() != Some(tenant)
                && t.spec.namespaces.iter().any(|n| {
                    namespace_name(t.metadata.name.as_deref().unwrap_or_default(), &n.name) == name
                })
        });
        claimed.then(|| {
            format!(
                "namespace {name} already belongs to another tenant; choose another namespace name"
            )
        })
    }

    /// Whether the namespace `name` exists and was made for `tenant` (never another tenant's
    /// namespace of the same name), as the watch last saw it.
    pub fn namespace_is_own(&self, name: &str, tenant: &str, reserved: &[String]) -> bool {
        self.namespaces.get(&ObjectRef::new(name)).is_some_and(|n| {
            judge_namespace(name, Some(&n.metadata), tenant, reserved) == Claim::Ours
        })
    }

    /// Asks the cluster to delete a Tenant (the operator removes its namespaces first); answers
    /// whether it is gone.
    pub async fn delete_tenant(&self, name: &str) -> Result<bool, ClusterError> {
        let api = Api::<Tenant>::all(self.client.clone());
        let result = self
            .bounded(
                || format!("deleting Tenant {name}"),
                api.delete(name, &DeleteParams::default()),
                |source| ClusterError::DeleteTenant {
                    tenant: name.to_string(),
                    source,
                },
            )
            .await;
        match result {
            Ok(either) => Ok(either.is_right()),
            Err(ClusterError::DeleteTenant {
                source: kube::Error::Api(s),
                ..
            }) if s.code == 404 => Ok(true),
            Err(e) => Err(e),
        }
    }

    /// The spec of a Tenant as the watch last saw it in the cluster.
    pub fn seen_spec(&self, name: &str) -> Option<TenantSpec> {
        self.tenants
            .get(&ObjectRef::new(name))
            .map(|t| t.spec.clone())
    }

    /// Publishes a Warning Event on a Tenant (best effort: a failure is logged).
    pub async fn warn_on_tenant(&self, tenant: &Tenant, reason: &str, note: String) {
        let recorder = Recorder::new(
            self.client.clone(),
            Reporter {
                controller: FIELD_MANAGER.into(),
                instance: None,
            },
        );
        let event = KubeEvent {
            type_: EventType::Warning,
            reason: reason.into(),
            note: Some(note),
            action: "Sync".into(),
            secondary: None,
        };
        if let Err(e) = recorder.publish(&event, &tenant.object_ref(&())).await {
            tracing::warn!(tenant = ?tenant.metadata.name, error = %e, "cannot publish event");
        }
    }

    /// Whether the watch has seen this tenant in the cluster with exactly this spec.
    pub fn has_tenant(&self, tenant: &Tenant) -> bool {
        let name = tenant.metadata.name.as_deref().unwrap_or_default();
        self.tenants
            .get(&ObjectRef::new(name))
            .is_some_and(|seen| seen.spec == tenant.spec)
    }

    /// The status the operator last reported for a tenant, as last seen by the watch.
    pub fn tenant_status(&self, name: &str) -> Option<TenantStatus> {
        self.tenants
            .get(&ObjectRef::new(name))
            .and_then(|t| t.status.clone())
    }

    /// Waits up to `timeout` for the first list of Nodes (at start, before the watch has one).
    pub async fn wait_for_nodes(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.nodes.wait_until_ready())
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// The nodes' allocatable cpu and memory, or `None` before any node has been seen.
    pub fn allocatable(&self) -> Option<Totals> {
        let nodes = self.nodes.state();
        if nodes.is_empty() {
            return None;
        }
        let mut total = Totals::default();
        for n in nodes {
            let Some(alloc) = n.status.as_ref().and_then(|s| s.allocatable.as_ref()) else {
                continue;
            };
            let get = |k: &str, floor: fn(&str) -> Option<i64>| {
                alloc.get(k).and_then(|q| floor(&q.0)).unwrap_or(0)
            };
            total.cpu_milli += i128::from(get("cpu", cpu_milli_floor));
            total.memory_bytes += i128::from(get("memory", bytes_floor));
        }
        Some(total)
    }

    /// A token for a ServiceAccount, valid for `ttl`.
    pub async fn service_account_token(
        &self,
        namespace: &str,
        service_account: &str,
        ttl: Duration,
    ) -> Result<(String, Option<DateTime<Utc>>), ClusterError> {
        let api = Api::<ServiceAccount>::namespaced(self.client.clone(), namespace);
        let request = TokenRequest {
            spec: TokenRequestSpec {
                audiences: Vec::new(),
                expiration_seconds: i64::try_from(ttl.as_secs()).ok(),
                ..TokenRequestSpec::default()
            },
            ..TokenRequest::default()
        };
        let answer = self
            .bounded(
                || format!("requesting a token for {namespace}/{service_account}"),
                api.create_token_request(service_account, &PostParams::default(), &request),
                |source| ClusterError::RequestToken {
                    namespace: namespace.to_string(),
                    service_account: service_account.to_string(),
                    source,
                },
            )
            .await?;
        let Some(status) = answer.status.filter(|s| !s.token.is_empty()) else {
            return Err(ClusterError::EmptyToken {
                namespace: namespace.to_string(),
                service_account: service_account.to_string(),
            });
        };
        let expires = DateTime::<Utc>::from_timestamp(status.expiration_timestamp.0.as_second(), 0);
        Ok((status.token, expires))
    }
}
