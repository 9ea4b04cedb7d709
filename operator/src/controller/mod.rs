//! The Tenant controller: `reconcile` wraps the pipeline — validate (pure) → build (pure) →
//! apply (server-side apply) → status — in a finalizer whose cleanup deletes the tenant's
//! namespaces before the Tenant goes. Everything the operator makes carries an owner reference
//! to its Tenant and is watched, so a deleted or edited object is put back.

pub mod apply;
pub mod events;
pub mod grants;
pub mod lean;
pub mod owned;
pub mod status;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event as KubeEvent, EventType, Reporter};
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde_json::json;

use crate::build::network::outbound_links;
use crate::build::rbac::build_tenant_cluster_role;
use crate::build::{FIELD_MANAGER, LABEL_MANAGED_BY, Platform};
use crate::telemetry::Telemetry;
use govcloud_tenant::crd::Tenant;
use govcloud_tenant::validate::validate;
use grants::Grants;
use owned::{Kind, Owned, QuotaStatus};
use status::{Observation, REASON_CONFLICT, build_status, build_terminating_status};

/// How soon a tenant that asks for a namespace it cannot have looks again (the holder may go).
pub const CONFLICT_RETRY: Duration = Duration::from_secs(60);

/// How the controller runs.
#[derive(Debug, Clone)]
pub struct Settings {
    pub platform: Platform,
    /// This replica's name, in the Events it publishes.
    pub instance: Option<String>,
    /// How many tenants are reconciled at once.
    pub concurrency: u16,
    /// How long a burst of changes is gathered into one reconcile.
    pub debounce: Duration,
    /// How often a settled tenant is reconciled again with nothing having changed.
    pub resync: Duration,
    /// Metering, when the API to deliver to is configured (see [`crate::metering`]).
    pub metering: Option<crate::metering::Settings>,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            platform: Platform::default(),
            instance: None,
            concurrency: 16,
            debounce: Duration::from_millis(200),
            resync: RESYNC,
            metering: None,
        }
    }
}

/// How often a settled tenant is reconciled again with nothing having changed, by default: a
/// safety net, since the watches bring every change to the tenant and what it owns at once.
pub const RESYNC: Duration = Duration::from_secs(3600);

/// How long reconciles wait for the watches of owned objects to list what exists.
pub const OWNED_SYNC_WAIT: Duration = Duration::from_secs(30);

/// The finalizer that holds a Tenant until its namespaces are gone.
pub const FINALIZER: &str = "govcloud.io/cleanup";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("applying {kind} {name}: {source}")]
    ApplyObject {
        kind: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("deleting {kind} {name}: {source}")]
    DeleteObject {
        kind: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("reading {kind} {name}: {source}")]
    ReadObject {
        kind: String,
        name: String,
        source: Box<kube::Error>,
    },
    #[error("encoding {kind} {name}: {source}")]
    Encode {
        kind: String,
        name: String,
        source: serde_json::Error,
    },
    #[error("namespace {name} was created and deleted again while being claimed")]
    NamespaceRace { name: String },
    #[error("listing {kind}: {source}")]
    ListObjects {
        kind: String,
        source: Box<kube::Error>,
    },
    #[error("writing the status of tenant {name}: {source}")]
    WriteStatus {
        name: String,
        source: Box<kube::Error>,
    },
    #[error("namespaces of tenant {tenant} are still terminating: {remaining:?}")]
    NamespacesTerminating {
        tenant: String,
        remaining: Vec<String>,
    },
    #[error("finalizer of tenant {name}: {source}")]
    Finalizer {
        name: String,
        source: Box<kube::runtime::finalizer::Error<Error>>,
    },
}

impl Error {
    /// The cause in plain words, for a Tenant's condition: what the API server said, without
    /// the client's wrapping.
    pub fn plain(&self) -> String {
        match self {
            Self::ApplyObject { kind, name, source }
            | Self::DeleteObject { kind, name, source }
            | Self::ReadObject { kind, name, source } => {
                let verb = match self {
                    Self::ApplyObject { .. } => "applying",
                    Self::DeleteObject { .. } => "deleting",
                    _ => "reading",
                };
                match source.as_ref() {
                    kube::Error::Api(s) => format!("{verb} {kind} {name}: {}", s.message),
                    other => {
                        format!("{verb} {kind} {name}: the cluster could not be reached: {other}")
                    }
                }
            }
            other => other.to_string(),
        }
    }

    /// A static name for logs and metrics.
    pub fn category(&self) -> &'static str {
        match self {
            Self::ApplyObject { .. } => "apply_object",
            Self::DeleteObject { .. } => "delete_object",
            Self::ReadObject { .. } => "read_object",
            Self::Encode { .. } => "encode",
            Self::NamespaceRace { .. } => "namespace_race",
            Self::ListObjects { .. } => "list_objects",
            Self::WriteStatus { .. } => "write_status",
            Self::NamespacesTerminating { .. } => "namespaces_terminating",
            Self::Finalizer { .. } => "finalizer",
        }
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub platform: Platform,
    pub recorder: events::Events,
    /// All tenants, as the controller's own watch sees them (for links between tenants).
    pub tenants: Store<Tenant>,
    pub telemetry: Arc<Telemetry>,
    /// What the operator owns, as its watches see it.
    pub owned: Arc<Owned>,
    /// How often a settled tenant is reconciled again.
    pub resync: Duration,
    /// Who grants whom a link.
    pub grants: Arc<Grants>,
    /// The digest of the tenant ClusterRole this process has applied (once is enough: it is
    /// the same for every tenant).
    cluster_role: Mutex<Option<String>>,
    /// Consecutive failures per tenant, for backoff.
    failures: Mutex<HashMap<String, u32>>,
}

impl Context {
    pub fn new(
        client: Client,
        platform: Platform,
        tenants: Store<Tenant>,
        instance: Option<String>,
        telemetry: Arc<Telemetry>,
        owned: Arc<Owned>,
        grants: Arc<Grants>,
    ) -> Self {
        let reporter = Reporter {
            controller: FIELD_MANAGER.into(),
            instance,
        };
        Self {
            recorder: events::Events::new(client.clone(), reporter),
            client,
            platform,
            tenants,
            telemetry,
            owned,
            grants,
            resync: RESYNC,
            cluster_role: Mutex::new(None),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// Applies the ClusterRole tenants are bound to, unless this process already has.
    async fn ensure_cluster_role(&self) -> Result<(), Error> {
        let role = build_tenant_cluster_role(&self.platform);
        let digest = owned::digest(&role).map_err(|source| Error::Encode {
            kind: "ClusterRole".into(),
            name: role.metadata.name.clone().unwrap_or_default(),
            source,
        })?;
        let done = || {
            self.cluster_role
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_deref()
                == Some(digest.as_str())
        };
        if done() {
            return Ok(());
        }
        apply::apply(&Api::<ClusterRole>::all(self.client.clone()), &role).await?;
        *self
            .cluster_role
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(digest);
        Ok(())
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn event(&self, tenant: &Tenant, type_: EventType, reason: &str, note: String) {
        let ev = KubeEvent {
            type_,
            reason: reason.into(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&ev, &tenant.object_ref(&())).await {
            tracing::warn!(tenant = %tenant.name_any(), error = %e, "cannot publish event");
        }
    }
}

pub async fn reconcile(tenant: Arc<Tenant>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.telemetry.reconcile_started();
    let api: Api<Tenant> = Api::all(ctx.client.clone());
    let name = tenant.name_any();
    // Inside kube's span, which says why (the object or related object changed, a requeue).
    tracing::debug!(tenant = %name, "reconciling");
    // A new tenant gets its finalizer and its objects in the same pass (kube's helper would add
    // the finalizer and wait for that change to come back, which the Tenant stream's predicate
    // does not pass on).
    let tenant = match with_finalizer(&api, tenant).await {
        Ok(t) => t,
        Err(e) => {
            return Err(Error::Finalizer {
                name,
                source: Box::new(kube::runtime::finalizer::Error::AddFinalizer(e)),
            });
        }
    };
    let result = finalizer(&api, FINALIZER, tenant, |event| async {
        match event {
            Finalizer::Apply(t) => apply_tenant(&t, &ctx).await,
            Finalizer::Cleanup(t) => cleanup_tenant(&t, &ctx).await,
        }
    })
    .await;
    match result {
        Ok(action) => {
            ctx.failures().remove(&name);
            Ok(action)
        }
        Err(
            kube::runtime::finalizer::Error::ApplyFailed(e)
            | kube::runtime::finalizer::Error::CleanupFailed(e),
        ) => Err(e),
        Err(e) => Err(Error::Finalizer {
            name,
            source: Box::new(e),
        }),
    }
}

/// The tenant with the finalizer: added (guarded by its resourceVersion) unless it is there
/// or the tenant is being deleted.
async fn with_finalizer(
    api: &Api<Tenant>,
    tenant: Arc<Tenant>,
) -> Result<Arc<Tenant>, kube::Error> {
    let meta = tenant.meta();
    let has = meta.finalizers.iter().flatten().any(|f| f == FINALIZER);
    if has || meta.deletion_timestamp.is_some() {
        return Ok(tenant);
    }
    let rv = meta.resource_version.clone().unwrap_or_default();
    let patch: json_patch::Patch = serde_json::from_value(match &meta.finalizers {
        None => json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
        ]),
        Some(_) => json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": rv},
            {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
        ]),
    })
    .map_err(kube::Error::SerdeError)?;
    let patched = api
        .patch(
            &tenant.name_any(),
            &PatchParams::default(),
            &Patch::Json::<()>(patch),
        )
        .await?;
    Ok(Arc::new(patched))
}

/// What of a Tenant calls for a reconcile: its spec (generation), whether it is being deleted,
/// and others' finalizers. Its status and our own finalizer do not: both are the operator's own
/// writes (a reconcile adds the finalizer and applies in the same pass, and puts it back on the
/// next pass should anyone remove it).
fn tenant_trigger(t: &Tenant) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    t.meta().generation.hash(&mut h);
    t.meta().deletion_timestamp.is_some().hash(&mut h);
    for f in t
        .meta()
        .finalizers
        .iter()
        .flatten()
        .filter(|f| *f != FINALIZER)
    {
        f.hash(&mut h);
    }
    Some(h.finish())
}

/// The Tenant that owns an object, by its controller owner reference. Tenants are
/// cluster-scoped: the reference carries no namespace (kube's `owns` would put the child's
/// namespace in it, so a tenant's two namespaces would count as two other objects, reconciled
/// apart and at the same time as the tenant itself).
fn owner_tenant<K: Resource>(child: K) -> Option<ObjectRef<Tenant>> {
    let tenant_api = Tenant::api_version(&());
    child
        .meta()
        .owner_references
        .iter()
        .flatten()
        .find(|o| {
            o.controller == Some(true) && o.kind == Tenant::kind(&()) && o.api_version == tenant_api
        })
        .map(|o| ObjectRef::new(&o.name))
}

/// The partners of every changed Tenant, sent to `partners` to trigger: those it grants a
/// link, before and after the change, and those that grant it one. It looks at the events of
/// the controller's own Tenant watch once the store has taken them in, and keeps `grants`
/// current first, so a partner's reconcile finds the link as it now is. (A second watch of
/// every Tenant for this cost the cluster and the operator each Tenant event twice.)
fn partner_triggers(
    grants: Arc<Grants>,
    store: Store<Tenant>,
    partners: futures::channel::mpsc::UnboundedSender<ObjectRef<Tenant>>,
) -> impl FnMut(&Result<watcher::Event<Tenant>, watcher::Error>) + Send + 'static {
    move |event| {
        let changed: BTreeSet<String> = match event {
            Ok(watcher::Event::Apply(t) | watcher::Event::InitApply(t)) => {
                let mut all = grants.set(t);
                all.extend(grants.partners_of(&t.name_any()));
                all
            }
            Ok(watcher::Event::Delete(t)) => {
                let mut all = grants.remove(&t.name_any());
                all.extend(grants.partners_of(&t.name_any()));
                all
            }
            Ok(watcher::Event::Init | watcher::Event::InitDone) | Err(_) => BTreeSet::new(),
        };
        for name in changed {
            let partner = ObjectRef::new(&name);
            if store.get(&partner).is_some() {
                // (closed only once the controller is gone)
                let _ = partners.unbounded_send(partner);
            }
        }
    }
}

/// The delay before retrying a tenant that failed `n` times in a row: 0.5 s doubling to 5 min.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1u64 << n.min(10))).min(Duration::from_secs(300))
}

pub fn error_policy(tenant: Arc<Tenant>, error: &Error, ctx: Arc<Context>) -> Action {
    let name = tenant.name_any();
    let n = {
        let mut f = ctx.failures();
        let n = f.entry(name.clone()).or_insert(0);
        *n = n.saturating_add(1);
        *n
    };
    ctx.telemetry.reconcile_failed(error.category());
    tracing::warn!(tenant = %name, category = error.category(), error = %error, attempt = n, "reconcile failed");
    if matches!(error, Error::NamespacesTerminating { .. }) {
        return Action::requeue(Duration::from_secs(1));
    }
    Action::requeue(backoff(n - 1))
}

async fn write_status(
    tenant: &Tenant,
    ctx: &Context,
    status: govcloud_tenant::crd::TenantStatus,
) -> Result<(), Error> {
    if tenant.status.as_ref() == Some(&status) {
        return Ok(());
    }
    // (the answer is not read: the Tenant watch brings the status written)
    let api: Api<lean::Written<Tenant>> = Api::all(ctx.client.clone());
    let patch = json!({"apiVersion": "govcloud.io/v1alpha1", "kind": "Tenant", "status": status});
    api.patch_status(
        &tenant.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::WriteStatus {
        name: tenant.name_any(),
        source: Box::new(source),
    })?;
    Ok(())
}

fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

async fn apply_tenant(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let now = now();
    if let Err(errors) = validate(tenant) {
        let status = build_status(
            tenant.status.as_ref(),
            &Observation {
                generation: tenant.metadata.generation,
                invalid: Some(&errors),
                now: &now,
                ..Observation::default()
            },
        );
        let message = status
            .conditions
            .first()
            .map(|c| c.message.clone())
            .unwrap_or_default();
        if tenant
            .status
            .as_ref()
            .and_then(|s| s.conditions.first())
            .map(|c| &c.message)
            != Some(&message)
        {
            ctx.event(tenant, EventType::Warning, "InvalidSpec", message)
                .await;
        }
        write_status(tenant, ctx, status).await?;
        // Nothing to retry: a bad spec waits for an edit.
        return Ok(Action::await_change());
    }
    // Only the tenants that grant this one a link, from the index: not a walk over all.
    let granting: Vec<Arc<Tenant>> = ctx
        .grants
        .granters_of(&name)
        .iter()
        .filter_map(|g| ctx.tenants.get(&ObjectRef::new(g)))
        .collect();
    let outbound = outbound_links(&name, granting.iter().map(|t| &**t));
    let exists = |tenant: &str| ctx.tenants.get(&ObjectRef::new(tenant)).is_some();
    // Before the first reconcile the watches list what exists (a restart then writes nothing);
    // should they not manage, reconciles apply without skipping.
    if !ctx.owned.is_synced() && !ctx.owned.wait_synced(OWNED_SYNC_WAIT).await {
        tracing::warn!("the watches of owned objects have not listed yet: applying everything");
    }
    let applier = apply::Applier {
        client: &ctx.client,
        platform: &ctx.platform,
        owned: &ctx.owned,
    };
    let applied = match ctx.ensure_cluster_role().await {
        Ok(()) => applier.apply_tenant(tenant, &outbound).await,
        Err(e) => Err(e),
    };
    let observed = match applied {
        Ok(o) => o,
        Err(e) => {
            let message = e.plain();
            ctx.event(tenant, EventType::Warning, "ApplyFailed", message.clone())
                .await;
            // Say it on the Tenant too (best effort: the status may be refused as well).
            let status = build_status(
                tenant.status.as_ref(),
                &Observation {
                    generation: tenant.metadata.generation,
                    apply_failed: Some(&message),
                    now: &now,
                    ..Observation::default()
                },
            );
            if let Err(write) = write_status(tenant, ctx, status).await {
                tracing::warn!(tenant = %name, error = %write, "cannot record the failure in the status");
            }
            return Err(e);
        }
    };
    let unknown_grants = tenant
        .spec
        .network
        .allow_from
        .iter()
        .enumerate()
        .filter(|(_, g)| !exists(&g.tenant))
        .map(|(i, g)| (i, g.tenant.clone()))
        .collect();
    let status = build_status(
        tenant.status.as_ref(),
        &Observation {
            generation: tenant.metadata.generation,
            suspended: tenant.spec.suspended,
            invalid: None,
            apply_failed: None,
            namespaces: observed,
            unknown_grants,
            now: &now,
        },
    );
    let phase_changed = status.phase != tenant.status.as_ref().and_then(|s| s.phase);
    let provisioning = status.phase == Some(govcloud_tenant::crd::Phase::Provisioning);
    let ready = status.conditions.first();
    let conflict = ready
        .filter(|c| c.reason == REASON_CONFLICT)
        .map(|c| c.message.clone());
    let previous_message = tenant
        .status
        .as_ref()
        .and_then(|s| s.conditions.first())
        .map(|c| c.message.clone());
    if let Some(message) = &conflict
        && previous_message.as_ref() != Some(message)
    {
        tracing::warn!(tenant = %name, %message, "namespace conflict");
        ctx.event(tenant, EventType::Warning, REASON_CONFLICT, message.clone())
            .await;
    } else if phase_changed {
        let reason = format!(
            "{:?}",
            status
                .phase
                .unwrap_or(govcloud_tenant::crd::Phase::Provisioning)
        );
        let note = status
            .conditions
            .first()
            .map(|c| c.message.clone())
            .unwrap_or_default();
        ctx.event(tenant, EventType::Normal, &reason, note).await;
    }
    write_status(tenant, ctx, status).await?;
    Ok(if provisioning {
        Action::requeue(Duration::from_secs(2))
    } else if conflict.is_some() {
        Action::requeue(CONFLICT_RETRY)
    } else {
        Action::requeue(ctx.resync)
    })
}

async fn cleanup_tenant(tenant: &Tenant, ctx: &Context) -> Result<Action, Error> {
    let name = tenant.name_any();
    let remaining = apply::delete_tenant_namespaces(&ctx.client, &name, &ctx.platform).await?;
    let status = build_terminating_status(
        tenant.status.as_ref(),
        tenant.metadata.generation,
        &remaining,
        &now(),
    );
    if tenant.status.as_ref().and_then(|s| s.phase)
        != Some(govcloud_tenant::crd::Phase::Terminating)
    {
        ctx.event(
            tenant,
            EventType::Normal,
            "Terminating",
            status
                .conditions
                .first()
                .map(|c| c.message.clone())
                .unwrap_or_default(),
        )
        .await;
    }
    if !remaining.is_empty() {
        write_status(tenant, ctx, status).await?;
        return Err(Error::NamespacesTerminating {
            tenant: name,
            remaining,
        });
    }
    ctx.event(
        tenant,
        EventType::Normal,
        "Deleted",
        "every namespace of the tenant is gone".into(),
    )
    .await;
    Ok(Action::await_change())
}

/// Runs the controller until `shutdown` resolves.
pub async fn run(
    client: Client,
    settings: Settings,
    telemetry: Arc<Telemetry>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let tenants: Api<Tenant> = Api::all(client.clone());
    let owned_config =
        watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={FIELD_MANAGER}"));
    // The store sees every Tenant event; reconciles are triggered only by what calls for one.
    let (store, writer) = kube::runtime::reflector::store();
    let grants = Arc::new(Grants::default());
    let (partners_tx, partners_rx) = futures::channel::mpsc::unbounded();
    // The store keeps every Tenant without its managedFields and kubectl's last-applied copy
    // (nothing reads them; at 10,000 tenants they are a good part of the memory).
    let tenant_events = kube::runtime::reflector(
        writer,
        watcher(tenants.clone(), watcher::Config::default()).modify(|t| {
            t.managed_fields_mut().clear();
            // kubectl's copy of the whole object, when it was applied client-side.
            t.annotations_mut()
                .remove("kubectl.kubernetes.io/last-applied-configuration");
        }),
    )
    .inspect(partner_triggers(grants.clone(), store.clone(), partners_tx))
    .applied_objects()
    .predicate_filter(tenant_trigger, Default::default());
    let controller = Controller::for_stream(tenant_events, store).with_config(
        kube::runtime::controller::Config::default()
            .concurrency(settings.concurrency)
            .debounce(settings.debounce),
    );
    let Settings {
        platform,
        instance,
        metering,
        resync,
        ..
    } = settings;
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    // Metering lives and dies with the controller: dropping this future (a crash, a lost
    // lease) stops it too.
    let metering = metering.map(|m| {
        AbortOnDrop(Some(tokio::spawn(crate::metering::run(
            client.clone(),
            m,
            telemetry.clone(),
            shutdown.clone(),
        ))))
    });
    let store = controller.store();
    telemetry.watch_tenants(store.clone());
    let owned = Arc::new(Owned::default());
    let ctx = Arc::new(Context {
        resync,
        ..Context::new(
            client.clone(),
            platform,
            store,
            instance,
            telemetry,
            owned.clone(),
            grants.clone(),
        )
    });
    // Owned objects: metadata only (all a reconcile needs of them), but quotas whole (their
    // status is the tenant's), both without managedFields' field sets (`lean`). Each watch
    // keeps `owned` current and triggers on what others changed.
    fn meta_of<K>(
        client: &Client,
        owned: &Arc<Owned>,
        kind: Kind,
        config: &watcher::Config,
    ) -> impl futures::Stream<Item = Result<lean::Meta<K>, watcher::Error>> + Send + 'static
    where
        K: Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + 'static,
    {
        owned.clone().follow(
            kind,
            watcher(Api::<lean::Meta<K>>::all(client.clone()), config.clone()),
            |_| None,
        )
    }
    controller
        .watches_stream(
            meta_of::<Namespace>(&client, &owned, Kind::Namespace, &owned_config),
            owner_tenant,
        )
        .watches_stream(
            owned.clone().follow(
                Kind::ResourceQuota,
                watcher(
                    Api::<lean::Quota>::all(client.clone()),
                    owned_config.clone(),
                ),
                |q| QuotaStatus::of(&q.0),
            ),
            owner_tenant,
        )
        .watches_stream(
            meta_of::<LimitRange>(&client, &owned, Kind::LimitRange, &owned_config),
            owner_tenant,
        )
        .watches_stream(
            meta_of::<NetworkPolicy>(&client, &owned, Kind::NetworkPolicy, &owned_config),
            owner_tenant,
        )
        .watches_stream(
            meta_of::<RoleBinding>(&client, &owned, Kind::RoleBinding, &owned_config),
            owner_tenant,
        )
        .watches_stream(
            meta_of::<ServiceAccount>(&client, &owned, Kind::ServiceAccount, &owned_config),
            owner_tenant,
        )
        // A tenant's links concern others: the tenants it grants (their egress) and the tenants
        // that grant it (their LinksResolved condition). Every Tenant event, status included,
        // is mapped to its partners (before and after the change), never to itself.
        .reconcile_on(partners_rx)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(tenant = %obj.name, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile error"),
            }
        })
        .await;
    if let Some(mut m) = metering
        && let Some(task) = m.0.take()
    {
        // It stops on the same shutdown, after a last moment to deliver what it holds.
        let _ = task.await;
    }
}

/// A task that is aborted when its handle is dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    #[test]
    fn a_tenants_status_and_own_finalizer_do_not_trigger_but_its_spec_and_deletion_do() {
        let t: Tenant = serde_json::from_value(json!({
            "apiVersion": "govcloud.io/v1alpha1", "kind": "Tenant",
            "metadata": {"name": "a", "generation": 1},
            "spec": {"displayName": "A", "organization": "o", "owners": [], "namespaces": [], "billing": {"plan": "Reserved"}}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let base = tenant_trigger(&t);
        let mut with_status = t.clone();
        with_status.status = Some(govcloud_tenant::crd::TenantStatus::default());
        with_status.metadata.finalizers = Some(vec![FINALIZER.into()]);
        with_status.metadata.resource_version = Some("7".into());
        assert_eq!(tenant_trigger(&with_status), base);
        let mut edited = t.clone();
        edited.metadata.generation = Some(2);
        assert_ne!(tenant_trigger(&edited), base);
        let mut deleted = t.clone();
        deleted.metadata.deletion_timestamp = Some(Time(jiff::Timestamp::now()));
        assert_ne!(tenant_trigger(&deleted), base);
        let mut held = t;
        held.metadata.finalizers = Some(vec!["backup.example/hold".into()]);
        assert_ne!(tenant_trigger(&held), base);
    }

    #[test]
    fn an_owned_object_triggers_its_tenant_by_the_tenants_own_cluster_scoped_reference() {
        let child: k8s_openapi::api::core::v1::ResourceQuota = serde_json::from_value(json!({
            "metadata": {"name": "govcloud-quota", "namespace": "a-prod", "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "decoy", "uid": "1", "controller": false},
                {"apiVersion": "govcloud.io/v1alpha1", "kind": "Tenant", "name": "a", "uid": "2", "controller": true}
            ]}
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        // The same reference as the Tenant's own events: one queue entry, never two at once.
        assert_eq!(
            owner_tenant(child.clone()),
            Some(ObjectRef::<Tenant>::new("a"))
        );
        let mut orphan = child;
        orphan.metadata.owner_references = None;
        assert_eq!(owner_tenant(orphan), None);
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(500));
        assert_eq!(backoff(3), Duration::from_secs(4));
        assert_eq!(backoff(30), Duration::from_secs(300));
    }
}
