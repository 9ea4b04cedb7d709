//! kubesim: a Kubernetes API simulator for govcloud's tests.
//!
//! No kube-apiserver can run on the machines govcloud is built and tested on, so this crate
//! serves the Kubernetes API over plain HTTP on loopback, with the wire protocol real clients
//! (kube-rs, kubectl, helm) use as they are: discovery, get/list/watch with resourceVersions,
//! label and field selectors, pagination, create/replace/patch (JSON, merge, strategic merge)
//! and server-side apply with managedFields, the status subresource, deletion with finalizers,
//! namespace termination, garbage collection through ownerReferences, custom resources from
//! CustomResourceDefinitions, the TokenRequest API, LimitRange defaults and ResourceQuota
//! admission and usage.
//!
//! # Where it deliberately differs from Kubernetes
//! - No authentication and no authorization unless [`Config::authorization`] asks for them; then
//!   RBAC decides (see [`rbac`]) but escalation prevention on `bind`/`escalate`, access reviews
//!   and non-resource URL rules are not modelled. TokenRequest tokens are well-formed JWTs that
//!   are not signed; the simulator remembers which it issued.
//! - No admission webhooks, and ValidatingAdmissionPolicies are stored but not evaluated. Custom resources are validated, defaulted and pruned against their
//!   CRD's schema without CEL rules (see [`schema`]); built-in kinds get only the validation
//!   listed here (names, labels, quota, limit ranges), not their full schemas.
//! - A simulated scheduler and kubelet ([`kubelet`]) bind pods to nodes by their requests, run
//!   them at once (containers never fail or exit), and remove gracefully deleted pods at once
//!   (no grace period is waited out). No workload controllers: Deployments make no ReplicaSets
//!   or Pods. Deletion of other objects is immediate.
//! - The resource metrics API ([`metrics`]) reports what a test sets, not measured use.
//! - Controllers whose effects clients see (namespace finalization, garbage collection, quota
//!   usage, CRD `Established`, the `default` ServiceAccount of a namespace) act synchronously,
//!   inside the request that causes them, where Kubernetes acts within moments.
//! - Server-side apply treats lists as atomic (Kubernetes merges lists keyed by merge keys item
//!   by item); strategic merge patch knows the merge keys of the common built-in lists only.
//! - A continued list (`continue=`) reads the current state, not a snapshot at the first page's
//!   resourceVersion. Every object of a custom resource is stored once and served in any served
//!   version unchanged (conversion strategy `None`).
//! - Tables (`kubectl get`) have Name, a custom resource's printer columns, and Age only.
//! - Answers in JSON only. Protobuf request bodies are read for the kinds typed clients write
//!   (see [`protobuf`]); other protobuf kinds and CBOR get 415; OpenAPI v3 documents carry operations, not schemas.

pub mod admission;
pub mod discovery;
pub mod error;
pub mod kubelet;
pub mod managed;
pub mod metrics;
pub mod netpol;
pub mod patch;
pub mod protobuf;
pub mod psa;
pub mod rbac;
pub mod resources;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod table;
pub mod vap;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::server::Shared;
use crate::store::{Store, WriteCtx};

/// A node the simulated cluster reports, with its allocatable capacity.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub name: String,
    pub cpu: String,
    pub memory: String,
    pub pods: u32,
}

/// How a simulated cluster starts.
#[derive(Debug, Clone)]
pub struct Config {
    /// Nodes to create at start.
    pub nodes: Vec<Node>,
    /// How many events watches can replay; a watch from an older resourceVersion gets 410 Gone.
    pub history_limit: usize,
    /// How often watches that allow bookmarks get one.
    pub bookmark_interval: Duration,
    /// Authenticate every request and authorize it with RBAC, as an API server does: the
    /// administrator's token (`kubesim`, in the kubeconfig and [`KubeSim::client`]) may do
    /// anything; a ServiceAccount's token from TokenRequest may do what its bindings allow, until
    /// it expires or the ServiceAccount is deleted. Off by default: everyone may do anything.
    pub authorization: bool,
    /// Serve the resource metrics API (`metrics.k8s.io`), as a cluster with metrics-server does.
    /// On by default.
    pub metrics_api: bool,
    /// Run the simulated scheduler and kubelet (see [`kubelet`]): pods are bound, run and are
    /// removed after graceful deletion. On by default; off, pods stay as written.
    pub kubelet: bool,
    /// Enforce Pod Security Admission (see [`psa`]): a pod that breaks its namespace's
    /// `pod-security.kubernetes.io/enforce` level is refused, as an API server does. Off by
    /// default.
    pub pod_security: bool,
    /// Start from a [`KubeSim::snapshot`] instead of an empty cluster (what `govcloud dev`
    /// keeps in its state directory across restarts).
    pub restore: Option<serde_json::Value>,
    /// Serve HTTPS with this certificate instead of plain HTTP. kubectl sends bearer tokens
    /// only over TLS, so a test that runs kubectl with a ServiceAccount's token needs it.
    pub tls: Option<Tls>,
}

/// A serving certificate, its key and the CA that signed it, in PEM.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_pem: Vec<u8>,
    pub key_pem: Vec<u8>,
    pub ca_pem: Vec<u8>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            nodes: (1..=3)
                .map(|i| Node {
                    name: format!("kubesim-node-{i}"),
                    cpu: "16".into(),
                    memory: "64Gi".into(),
                    pods: 110,
                })
                .collect(),
            history_limit: 100_000,
            bookmark_interval: Duration::from_secs(5),
            authorization: false,
            metrics_api: true,
            kubelet: true,
            pod_security: false,
            restore: None,
            tls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot seed the simulated cluster: {0}")]
    Seed(#[from] error::ApiError),
    #[error("cannot load the serving certificate: {0}")]
    Tls(std::io::Error),
    #[error("cannot restore the snapshot: {0}")]
    Restore(String),
}

/// A running simulator. Dropping it stops the server.
pub struct KubeSim {
    addr: SocketAddr,
    tls: Option<Tls>,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    kubelet: Option<JoinHandle<()>>,
}

/// The kubelet's loop: a pass whenever the cluster changed, checked every 50 ms.
async fn run_kubelet(shared: Arc<Shared>) {
    let mut seen = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(50));
    loop {
        tick.tick().await;
        let mut store = shared.store();
        let rv = store.resource_version();
        if rv != seen {
            // Binding, then running: each pass takes a pod one step further.
            for _ in 0..3 {
                if kubelet::step(&mut store) == 0 {
                    break;
                }
            }
            seen = store.resource_version();
        }
    }
}

impl KubeSim {
    /// Starts a simulator with the default cluster on a free loopback port.
    pub async fn start() -> Result<Self, StartError> {
        Self::start_with(Config::default(), SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    pub async fn start_with(config: Config, addr: SocketAddr) -> Result<Self, StartError> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| StartError::Bind { addr, source })?;
        let mut store = Store::new(config.history_limit);
        store.pod_security = config.pod_security;
        if !config.metrics_api {
            store.registry.remove_group("metrics.k8s.io");
        }
        seed(&mut store, &config)?;
        if let Some(snapshot) = &config.restore {
            store.restore(snapshot).map_err(StartError::Restore)?;
        }
        let (epoch, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            requests: std::sync::atomic::AtomicU64::new(0),
            store: Mutex::new(store),
            watch_epoch: epoch,
            bookmark_interval: config.bookmark_interval,
            server_address: addr.to_string(),
            authorize: config.authorization,
            usages: Mutex::new(Default::default()),
        });
        let app = axum::Router::new()
            .fallback(server::handle)
            .with_state(shared.clone());
        let (tx, rx) = oneshot::channel::<()>();
        let task = match &config.tls {
            None => tokio::spawn(async move {
                // As Go's net/http (and so the API server) does: no Nagle delays on small writes.
                let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                    if let Err(e) = tcp.set_nodelay(true) {
                        tracing::debug!(error = %e, "cannot set TCP_NODELAY");
                    }
                });
                let serve = axum::serve(listener, app).with_graceful_shutdown(async {
                    let _ = rx.await;
                });
                if let Err(e) = serve.await {
                    tracing::error!(error = %e, "kubesim server stopped");
                }
            }),
            Some(tls) => {
                // Only the ring provider is built in; installing it twice is harmless.
                let _ = rustls::crypto::ring::default_provider().install_default();
                let rustls_config = axum_server::tls_rustls::RustlsConfig::from_pem(
                    tls.cert_pem.clone(),
                    tls.key_pem.clone(),
                )
                .await
                .map_err(StartError::Tls)?;
                let std_listener = listener
                    .into_std()
                    .map_err(|source| StartError::Bind { addr, source })?;
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                tokio::spawn(async move {
                    let _ = rx.await;
                    stopper.graceful_shutdown(Some(Duration::from_secs(1)));
                });
                tokio::spawn(async move {
                    let served = axum_server::from_tcp_rustls(std_listener, rustls_config)
                        .handle(handle)
                        .serve(app.into_make_service())
                        .await;
                    if let Err(e) = served {
                        tracing::error!(error = %e, "kubesim server stopped");
                    }
                })
            }
        };
        tracing::info!(%addr, "kubesim listening");
        let kubelet = config
            .kubelet
            .then(|| tokio::spawn(run_kubelet(shared.clone())));
        Ok(Self {
            addr,
            tls: config.tls.clone(),
            shared,
            shutdown: Some(tx),
            task: Some(task),
            kubelet,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The CA that signed the serving certificate, base64 of its PEM as kubeconfigs carry it
    /// (`certificate-authority-data`); none over plain HTTP.
    pub fn ca_data(&self) -> Option<String> {
        use base64::Engine;
        self.tls
            .as_ref()
            .map(|t| base64::engine::general_purpose::STANDARD.encode(&t.ca_pem))
    }

    /// A real `kube::Client` talking HTTP to this simulator, as its administrator.
    pub fn client(&self) -> Result<kube::Client, kube::Error> {
        self.client_with_token(server::ADMIN_TOKEN)
    }

    /// A real `kube::Client` presenting `token` (a ServiceAccount's, from TokenRequest).
    pub fn client_with_token(&self, token: &str) -> Result<kube::Client, kube::Error> {
        let uri: http::Uri = self
            .url()
            .parse()
            .map_err(|e: http::uri::InvalidUri| kube::Error::Service(Box::new(e)))?;
        let mut config = kube::Config::new(uri);
        config.auth_info.token = Some(token.to_string().into());
        if let Some(tls) = &self.tls {
            let ders = pem_certificates(&tls.ca_pem);
            config.root_cert = Some(ders);
        }
        kube::Client::try_from(config)
    }

    /// A kubeconfig that kubectl, helm and kube-rs use as it is.
    pub fn kubeconfig(&self) -> String {
        let yaml = kubeconfig_yaml(&self.url());
        match self.ca_data() {
            Some(ca) => yaml.replacen(
                "    server: ",
                &format!("    certificate-authority-data: {ca}\n    server: "),
                1,
            ),
            None => yaml,
        }
    }

    pub fn write_kubeconfig(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, self.kubeconfig())
    }

    /// Whether pod `from` (namespace, name) may open a TCP connection to pod `to` on `port`,
    /// as the cluster's NetworkPolicies decide it (the simulated network's answer, for tests:
    /// there is no traffic to send); `None` while a pod is missing or has no IP.
    pub fn can_reach(&self, from: (&str, &str), to: (&str, &str), port: i64) -> Option<bool> {
        self.shared.store().reachable(from, to, port)
    }

    /// Everything the cluster holds, for [`Config::restore`].
    pub fn snapshot(&self) -> serde_json::Value {
        self.shared.store().snapshot()
    }

    /// A function that takes the snapshot as JSON bytes, for a task that outlives a borrow.
    pub fn snapshot_handle(&self) -> impl Fn() -> Vec<u8> + Send + Sync + 'static {
        let shared = self.shared.clone();
        move || serde_json::to_vec(&shared.store().snapshot()).unwrap_or_default()
    }

    /// Forgets the watch history: watches resuming from any earlier resourceVersion get 410 Gone.
    pub fn compact(&self) {
        self.shared.store().compact();
    }

    /// Ends every open watch, as an API server restart does; clients re-watch from where they were.
    pub fn end_watches(&self) {
        self.shared.watch_epoch.send_modify(|e| *e += 1);
    }

    /// How many requests the simulator has served (every client, watches counted once).
    pub fn requests(&self) -> u64 {
        self.shared
            .requests
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The current resourceVersion of the cluster.
    pub fn resource_version(&self) -> u64 {
        self.shared.store().resource_version()
    }

    /// Sets what a pod uses, as the resource metrics API reports it (for its first container).
    pub fn set_pod_usage(&self, namespace: &str, pod: &str, cpu: &str, memory: &str) {
        self.shared
            .usages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(
                (namespace.to_string(), pod.to_string()),
                metrics::PodUsage {
                    cpu: cpu.to_string(),
                    memory: memory.to_string(),
                },
            );
    }

    /// Stops the server and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(k) = self.kubelet.take() {
            k.abort();
        }
        self.end_watches();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for KubeSim {
    fn drop(&mut self) {
        if let Some(k) = self.kubelet.take() {
            k.abort();
        }
        self.shared.watch_epoch.send_modify(|e| *e += 1);
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The DER certificates of a PEM bundle.
fn pem_certificates(pem: &[u8]) -> Vec<Vec<u8>> {
    use base64::Engine;
    let text = String::from_utf8_lossy(pem);
    let mut out = Vec::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        match line.trim() {
            "-----BEGIN CERTIFICATE-----" => current = Some(String::new()),
            "-----END CERTIFICATE-----" => {
                if let Some(b64) = current.take()
                    && let Ok(der) = base64::engine::general_purpose::STANDARD.decode(b64)
                {
                    out.push(der);
                }
            }
            l => {
                if let Some(c) = current.as_mut() {
                    c.push_str(l);
                }
            }
        }
    }
    out
}

pub fn kubeconfig_yaml(server: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: kubesim\n  cluster:\n    server: {server}\ncontexts:\n- name: kubesim\n  context:\n    cluster: kubesim\n    user: kubesim\n    namespace: default\ncurrent-context: kubesim\nusers:\n- name: kubesim\n  user:\n    token: kubesim\n"
    )
}

fn seed(store: &mut Store, config: &Config) -> Result<(), error::ApiError> {
    let ctx = WriteCtx {
        manager: "kubesim".into(),
        ..WriteCtx::default()
    };
    let find = |store: &Store, g: &str, p: &str| {
        store
            .registry
            .find(g, "v1", p)
            .cloned()
            .ok_or_else(|| error::ApiError::internal(format!("{p} not registered")))
    };
    let ns = find(store, "", "namespaces")?;
    for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
        store.create(&ns, "", json!({"metadata": {"name": name}}), &ctx)?;
    }
    let nodes = find(store, "", "nodes")?;
    for n in &config.nodes {
        let resources = json!({"cpu": n.cpu, "memory": n.memory, "pods": n.pods.to_string(), "ephemeral-storage": "100Gi"});
        store.create(&nodes, "", json!({
            "metadata": {"name": n.name, "labels": {"kubernetes.io/hostname": n.name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64"}},
            "spec": {},
            "status": {
                "capacity": resources, "allocatable": resources,
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "kubelet is posting ready status"}],
                "nodeInfo": {"kubeletVersion": "v1.35.0", "operatingSystem": "linux", "architecture": "amd64"}
            }
        }), &ctx)?;
    }
    let sc = find(store, "storage.k8s.io", "storageclasses")?;
    store.create(&sc, "", json!({
        "metadata": {"name": "standard", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "kubesim.local/none", "reclaimPolicy": "Delete", "volumeBindingMode": "Immediate"
    }), &ctx)?;
    // Kubernetes' bootstrap superuser role, as every cluster has it (bound to system:masters).
    let cr = find(store, "rbac.authorization.k8s.io", "clusterroles")?;
    store.create(&cr, "", json!({
        "metadata": {"name": "cluster-admin", "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"}},
        "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
                  {"nonResourceURLs": ["*"], "verbs": ["*"]}]
    }), &ctx)?;
    Ok(())
}
