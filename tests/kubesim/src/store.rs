//! The simulated cluster state: every object, one global resourceVersion counter, the event
//! history that watches replay, and the controllers whose effects clients observe synchronously
//! (namespace finalization, garbage collection by ownerReferences, quota usage, CRD
//! registration, default ServiceAccounts).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::sync::Arc;

use base64::Engine;
use rand::Rng;
use serde_json::{Value, json};
use tokio::sync::broadcast;

use govcloud_kube_values::name::{is_dns_label, is_dns_subdomain};

use crate::admission::{self, Usage};
use crate::error::{ApiError, ApiResult};
use crate::managed::{self, ApplyRequest};
use crate::patch;
use crate::resources::{Registry, ResKey, ResourceType};
use crate::selector::{FieldSelector, LabelSelector};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Added => "ADDED",
            Self::Modified => "MODIFIED",
            Self::Deleted => "DELETED",
        }
    }
}

/// One change, as watches see it. `previous` lets a selector-filtered watch turn a change that
/// moves an object out of (or into) its selection into DELETED (or ADDED), as Kubernetes does.
#[derive(Debug)]
pub struct Event {
    pub rv: u64,
    pub key: ResKey,
    pub namespace: String,
    pub kind: EventType,
    pub object: Arc<Value>,
    pub previous: Option<Arc<Value>>,
}

/// Which part of an object a write addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Main,
    Status,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Json,
    Merge,
    Strategic,
    Apply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Propagation {
    #[default]
    Background,
    Foreground,
    Orphan,
}

/// Options that every write carries.
#[derive(Debug, Clone, Default)]
pub struct WriteCtx {
    pub manager: String,
    pub dry_run: bool,
    pub force: bool,
    /// `fieldValidation=Strict`: unknown fields are refused instead of pruned.
    pub strict: bool,
    /// Who writes, when requests are authenticated: ValidatingAdmissionPolicies judge it.
    pub user: Option<crate::rbac::Identity>,
}

#[derive(Debug, Clone, Default)]
pub struct DeleteOpts {
    pub propagation: Propagation,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    /// `gracePeriodSeconds`: for a pod on a node, how long its containers get to stop (none:
    /// the pod's `terminationGracePeriodSeconds`); 0 removes it at once.
    pub grace_period: Option<i64>,
}

/// One page of a list.
pub struct ListPage {
    pub items: Vec<Arc<Value>>,
    pub resource_version: u64,
    pub continue_token: Option<String>,
    pub remaining: Option<u64>,
}

/// What a new watch replays, and where the rest will come from.
pub type WatchStart = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

type ObjKey = (String, String);
type ObjRef = (ResKey, String, String);

pub struct Store {
    pub registry: Registry,
    objects: HashMap<ResKey, BTreeMap<ObjKey, Arc<Value>>>,
    by_uid: HashMap<String, ObjRef>,
    dependents: HashMap<String, BTreeSet<ObjRef>>,
    rv: u64,
    history: VecDeque<Arc<Event>>,
    history_limit: usize,
    /// Watches from a resourceVersion below this answer 410 Gone.
    compacted: u64,
    tx: broadcast::Sender<Arc<Event>>,
    next_ip: u32,
    next_node_port: u32,
    /// Tokens issued by TokenRequest: whose, and until when (unix seconds).
    tokens: HashMap<String, IssuedToken>,
    /// Whether Pod Security Admission enforces namespaces' `enforce` levels on pods.
    pub pod_security: bool,
}

/// A ServiceAccount token the simulator issued.
#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub namespace: String,
    pub service_account: String,
    pub uid: String,
    pub expires: i64,
}

pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
}

fn meta_mut(obj: &mut Value) -> &mut serde_json::Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata").and_then(Value::as_object_mut) {
        Some(m) => m,
        None => unreachable!("metadata was just made an object"),
    }
}

fn finalizers(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/finalizers")
        .and_then(Value::as_array)
        .map(|f| {
            f.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn owner_uids(obj: &Value) -> Vec<String> {
    obj.pointer("/metadata/ownerReferences")
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r["uid"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

const NAME_CHARS: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

fn random_suffix() -> String {
    let mut rng = rand::rng();
    (0..5)
        .map(|_| NAME_CHARS[rng.random_range(0..NAME_CHARS.len())] as char)
        .collect()
}

/// Validates an object's name by the rule of its kind, in Kubernetes' words.
fn validate_name(rt: &ResourceType, name: &str) -> ApiResult<()> {
    let (ok, what) = if rt.group == "rbac.authorization.k8s.io" {
        (
            !name.is_empty() && !name.contains(['/', '%']) && name != "." && name != "..",
            "may not contain '/' or '%'",
        )
    } else if rt.is("", "namespaces") || rt.is("", "services") {
        (
            is_dns_label(name),
            "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
        )
    } else {
        (
            is_dns_subdomain(name),
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
        )
    };
    if ok {
        Ok(())
    } else {
        Err(ApiError::invalid(
            &rt.kind,
            name,
            "metadata.name",
            &format!("Invalid value: {name:?}: {what}"),
        ))
    }
}

fn validate_labels(rt: &ResourceType, name: &str, obj: &Value) -> ApiResult<()> {
    if let Some(labels) = obj.pointer("/metadata/labels").and_then(Value::as_object) {
        for (k, v) in labels {
            let value = v.as_str().unwrap_or("\u{0}");
            let key_name = k.rsplit('/').next().unwrap_or_default();
            let ok_part = |s: &str, allow_empty: bool| {
                (allow_empty && s.is_empty())
                    || (!s.is_empty()
                        && s.len() <= 63
                        && s.bytes()
                            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
                        && s.as_bytes()[0].is_ascii_alphanumeric()
                        && s.as_bytes()[s.len() - 1].is_ascii_alphanumeric())
            };
            if !ok_part(key_name, false) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    name,
                    "metadata.labels",
                    &format!(
                        "Invalid value: {k:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                    ),
                ));
            }
            if !ok_part(value, true) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    name,
                    "metadata.labels",
                    &format!(
                        "Invalid value: {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The parts of an object that count as its spec for `generation`.
fn spec_part(rt: &ResourceType, obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(m) = v.as_object_mut() {
        m.remove("metadata");
        if rt.status_subresource {
            m.remove("status");
        }
        m.remove("apiVersion");
        m.remove("kind");
    }
    v
}

/// An object with the volatile parts removed, to tell a real change from a no-op write.
fn comparable(obj: &Value) -> Value {
    let mut v = obj.clone();
    let m = meta_mut(&mut v);
    m.remove("resourceVersion");
    if let Some(fields) = m.get_mut("managedFields").and_then(Value::as_array_mut) {
        for f in fields {
            if let Some(f) = f.as_object_mut() {
                f.remove("time");
            }
        }
    }
    v
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (tx, _) = broadcast::channel(65_536);
        Self {
            registry: Registry::default(),
            objects: HashMap::new(),
            by_uid: HashMap::new(),
            dependents: HashMap::new(),
            rv: 1,
            history: VecDeque::new(),
            history_limit: history_limit.max(1),
            compacted: 1,
            tx,
            pod_security: false,
            next_ip: 10,
            next_node_port: 30000,
            tokens: HashMap::new(),
        }
    }

    pub fn resource_version(&self) -> u64 {
        self.rv
    }

    /// Drops the watch history, so watches from any older resourceVersion get 410 Gone.
    pub fn compact(&mut self) {
        self.history.clear();
        self.compacted = self.rv;
    }

    fn map(&self, key: &ResKey) -> Option<&BTreeMap<ObjKey, Arc<Value>>> {
        self.objects.get(key)
    }

    fn lookup(&self, key: &ResKey, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.objects
            .get(key)
            .and_then(|m| m.get(&(ns.to_string(), name.to_string())))
            .cloned()
    }

    fn exists_uid(&self, uid: &str) -> bool {
        self.by_uid.contains_key(uid)
    }

    /// Stores (or removes) an object at a new resourceVersion and tells the watches.
    pub(crate) fn commit(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        mut obj: Value,
        kind: EventType,
    ) -> Arc<Value> {
        self.rv += 1;
        meta_mut(&mut obj).insert("resourceVersion".into(), json!(self.rv.to_string()));
        let obj = Arc::new(obj);
        let key = rt.key();
        let okey = (ns.to_string(), name.to_string());
        let previous = match kind {
            EventType::Deleted => self.objects.get_mut(&key).and_then(|m| m.remove(&okey)),
            _ => self
                .objects
                .entry(key.clone())
                .or_default()
                .insert(okey, obj.clone()),
        };
        // Keep the uid and owner indexes in step.
        if let Some(prev) = &previous {
            if let Some(uid) = meta_str(prev, "uid") {
                self.by_uid.remove(uid);
            }
            for owner in owner_uids(prev) {
                if let Some(deps) = self.dependents.get_mut(&owner) {
                    deps.remove(&(key.clone(), ns.to_string(), name.to_string()));
                    if deps.is_empty() {
                        self.dependents.remove(&owner);
                    }
                }
            }
        }
        if kind != EventType::Deleted {
            if let Some(uid) = meta_str(&obj, "uid") {
                self.by_uid.insert(
                    uid.to_string(),
                    (key.clone(), ns.to_string(), name.to_string()),
                );
            }
            for owner in owner_uids(&obj) {
                self.dependents.entry(owner).or_default().insert((
                    key.clone(),
                    ns.to_string(),
                    name.to_string(),
                ));
            }
        }
        let event = Arc::new(Event {
            rv: self.rv,
            key,
            namespace: ns.to_string(),
            kind,
            object: obj.clone(),
            previous,
        });
        self.history.push_back(event.clone());
        while self.history.len() > self.history_limit {
            if let Some(old) = self.history.pop_front() {
                self.compacted = old.rv;
            }
        }
        let _ = self.tx.send(event);
        obj
    }

    pub fn get(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<Arc<Value>> {
        self.lookup(&rt.key(), ns, name)
            .ok_or_else(|| ApiError::not_found(&rt.group, &rt.plural, name))
    }

    pub fn list(
        &self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        limit: Option<usize>,
        continue_token: Option<&str>,
    ) -> ApiResult<ListPage> {
        let start = match continue_token {
            Some(t) => Some(decode_continue(t, self.compacted)?),
            None => None,
        };
        let list_rv = start.as_ref().map_or(self.rv, |(rv, _)| *rv);
        let mut items = Vec::new();
        let mut continue_from = None;
        let mut remaining = 0u64;
        if let Some(map) = self.map(&rt.key()) {
            let iter: Box<dyn Iterator<Item = (&ObjKey, &Arc<Value>)>> = match (&start, ns) {
                (Some((_, after)), _) => Box::new(map.range::<ObjKey, _>((
                    std::ops::Bound::Excluded(after.clone()),
                    std::ops::Bound::Unbounded,
                ))),
                (None, Some(ns)) => {
                    Box::new(map.range::<ObjKey, _>((ns.to_string(), String::new())..))
                }
                (None, None) => Box::new(map.iter()),
            };
            for (k, obj) in iter {
                if let Some(ns) = ns
                    && k.0 != ns
                {
                    if k.0.as_str() > ns {
                        break;
                    }
                    continue;
                }
                if !labels.matches(obj) || !fields.matches(obj) {
                    continue;
                }
                if limit.is_some_and(|l| items.len() >= l) {
                    if continue_from.is_none() {
                        continue_from = Some(encode_continue(
                            list_rv,
                            items.last().map(|(k, _): &(ObjKey, _)| k.clone()),
                        ));
                    }
                    // As the API server: remainingItemCount only for a list without selectors
                    // ("if the list request contained label or field selectors, then the
                    // number of remaining items is unknown"), so a selective page costs its
                    // own size, not the rest of the collection.
                    if !labels.is_empty() || !fields.is_empty() {
                        break;
                    }
                    remaining += 1;
                    continue;
                }
                items.push((k.clone(), obj.clone()));
            }
        }
        Ok(ListPage {
            items: items.into_iter().map(|(_, v)| v).collect(),
            resource_version: list_rv,
            continue_token: continue_from,
            remaining: (remaining > 0).then_some(remaining),
        })
    }

    /// Starts a watch: the history after `from` (or, with `from` = None, nothing) and a receiver
    /// for what comes next. Fails with 410 when `from` is older than the history kept.
    pub fn watch(&self, from: Option<u64>) -> ApiResult<WatchStart> {
        let rx = self.tx.subscribe();
        let Some(from) = from else {
            return Ok((Vec::new(), rx));
        };
        if from < self.compacted {
            return Err(ApiError::expired(from, self.compacted));
        }
        Ok((
            self.history
                .iter()
                .filter(|e| e.rv > from)
                .cloned()
                .collect(),
            rx,
        ))
    }

    fn namespace_must_accept(&self, rt: &ResourceType, ns: &str, name: &str) -> ApiResult<()> {
        if !rt.namespaced {
            return Ok(());
        }
        let nskey = ResKey {
            group: String::new(),
            plural: "namespaces".into(),
        };
        match self.lookup(&nskey, "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if n.pointer("/metadata/deletionTimestamp").is_some() => {
                Err(ApiError::forbidden(
                    &rt.group,
                    &rt.plural,
                    name,
                    &format!(
                        "unable to create new content in namespace {ns} because it is being terminated"
                    ),
                ))
            }
            Some(_) => Ok(()),
        }
    }

    fn namespace_objects<'a>(
        &'a self,
        key: &ResKey,
        ns: &'a str,
    ) -> impl Iterator<Item = &'a Arc<Value>> + 'a {
        self.objects
            .get(key)
            .into_iter()
            .flat_map(move |m| {
                m.range::<ObjKey, _>((ns.to_string(), String::new())..)
                    .take_while(move |(k, _)| k.0 == ns)
            })
            .map(|(_, v)| v)
    }

    fn of_kind(&self, group: &str, plural: &str, ns: &str) -> Vec<Arc<Value>> {
        let key = ResKey {
            group: group.into(),
            plural: plural.into(),
        };
        self.namespace_objects(&key, ns).cloned().collect()
    }

    /// A namespace's current usage of every quota key.
    fn namespace_usage(&self, ns: &str) -> Usage {
        let mut total = Usage::new();
        // Each stored resource once, read as its preferred version.
        for key in self.objects.keys() {
            let Some(rt) = self.registry.preferred(key).filter(|t| t.namespaced) else {
                continue;
            };
            for obj in self.namespace_objects(key, ns) {
                if obj.pointer("/metadata/deletionTimestamp").is_none() || rt.plural != "pods" {
                    admission::add_usage(&mut total, &admission::usage_of(rt, obj));
                }
            }
        }
        total
    }

    /// Validates, defaults and prunes a custom resource against its CRD's schema.
    fn check_schema(
        rt: &ResourceType,
        name: &str,
        obj: &mut Value,
        ctx: &WriteCtx,
    ) -> ApiResult<()> {
        let Some(schema) = rt.schema.as_ref() else {
            return Ok(());
        };
        let out = crate::schema::check_resource(obj, schema);
        if !out.invalid.is_empty() {
            return Err(ApiError::invalid_fields(
                &format!("{}.{}", rt.kind, rt.group),
                name,
                &out.invalid,
            ));
        }
        if ctx.strict && !out.unknown.is_empty() {
            let fields: Vec<String> = out
                .unknown
                .iter()
                .map(|u| format!("unknown field \"{u}\""))
                .collect();
            return Err(ApiError::bad_request(format!(
                "strict decoding error: {}",
                fields.join(", ")
            )));
        }
        Ok(())
    }

    /// Admission for a new object: LimitRange defaults, ServiceAccount lookup, quota.
    fn admit(&mut self, rt: &ResourceType, ns: &str, name: &str, obj: &mut Value) -> ApiResult<()> {
        if !rt.namespaced || rt.crd.is_some() {
            return Ok(());
        }
        if rt.is("", "pods") {
            if self.pod_security {
                self.admit_pod_security(ns, name, obj)?;
            }
            let lrs = self.of_kind("", "limitranges", ns);
            let refs: Vec<&Value> = lrs.iter().map(|v| v.as_ref()).collect();
            admission::apply_limit_ranges(obj, &refs)
                .map_err(|why| ApiError::forbidden("", "pods", name, &why))?;
            // The QoS class, from the requests and limits as defaulted.
            let qos = admission::qos_class(obj);
            obj["status"]["qosClass"] = json!(qos);
            let sa = obj
                .pointer("/spec/serviceAccountName")
                .and_then(Value::as_str)
                .unwrap_or("default")
                .to_string();
            let sakey = ResKey {
                group: String::new(),
                plural: "serviceaccounts".into(),
            };
            if self.lookup(&sakey, ns, &sa).is_none() {
                return Err(ApiError::forbidden(
                    "",
                    "pods",
                    name,
                    &format!(
                        "error looking up service account {ns}/{sa}: serviceaccount \"{sa}\" not found"
                    ),
                ));
            }
        }
        if rt.is("", "services") {
            self.allocate_service(obj);
        }
        let quotas = self.of_kind("", "resourcequotas", ns);
        if !quotas.is_empty() {
            let usage = self.namespace_usage(ns);
            let refs: Vec<&Value> = quotas.iter().map(|v| v.as_ref()).collect();
            admission::check_quota(rt, obj, &refs, &usage)
                .map_err(|why| ApiError::forbidden(&rt.group, &rt.plural, name, &why))?;
        }
        Ok(())
    }

    /// Everything the cluster holds, to restore it later ([`Store::restore`]): every object as
    /// stored (uids, owner references and managed fields kept), CustomResourceDefinitions first,
    /// and the ServiceAccount tokens issued.
    pub fn snapshot(&self) -> Value {
        let crds = ResKey {
            group: "apiextensions.k8s.io".into(),
            plural: "customresourcedefinitions".into(),
        };
        let mut keys: Vec<&ResKey> = self.objects.keys().collect();
        keys.sort_by_key(|k| (**k != crds, (*k).clone()));
        let objects: Vec<Value> = keys
            .into_iter()
            .flat_map(|k| {
                self.objects[k]
                    .values()
                    .map(move |o| json!({"group": k.group, "plural": k.plural, "object": **o}))
            })
            .collect();
        let tokens: serde_json::Map<String, Value> = self
            .tokens
            .iter()
            .map(|(t, i)| {
                (
                    t.clone(),
                    json!({"namespace": i.namespace, "serviceAccount": i.service_account,
                           "uid": i.uid, "expires": i.expires}),
                )
            })
            .collect();
        json!({"kind": "KubesimSnapshot", "version": 1, "objects": objects, "tokens": tokens,
               "nextIp": self.next_ip, "nextNodePort": self.next_node_port})
    }

    /// Replaces what the cluster holds with a [`Store::snapshot`]. Objects keep their uids and
    /// owners; resourceVersions are new (clients list again, as after an API server restart).
    pub fn restore(&mut self, snapshot: &Value) -> Result<usize, String> {
        if snapshot.get("kind").and_then(Value::as_str) != Some("KubesimSnapshot") {
            return Err("not a kubesim snapshot".into());
        }
        self.objects.clear();
        self.by_uid.clear();
        self.dependents.clear();
        let mut restored = 0;
        for entry in snapshot
            .get("objects")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let group = entry
                .get("group")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let plural = entry
                .get("plural")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let obj = entry.get("object").cloned().unwrap_or(Value::Null);
            let version = obj
                .get("apiVersion")
                .and_then(Value::as_str)
                .map(|av| av.rsplit('/').next().unwrap_or(av).to_string())
                .unwrap_or_default();
            let Some(rt) = self.registry.find(group, &version, plural).cloned() else {
                return Err(format!("{plural}.{group}/{version} is not served"));
            };
            let ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
            let name = meta_str(&obj, "name").unwrap_or_default().to_string();
            let stored = self.commit(&rt, &ns, &name, obj, EventType::Added);
            if rt.is("apiextensions.k8s.io", "customresourcedefinitions") {
                self.registry.register_crd(&name, &stored);
            }
            restored += 1;
        }
        for (token, i) in snapshot
            .get("tokens")
            .and_then(Value::as_object)
            .into_iter()
            .flatten()
        {
            let text = |k: &str| {
                i.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string()
            };
            self.tokens.insert(
                token.clone(),
                IssuedToken {
                    namespace: text("namespace"),
                    service_account: text("serviceAccount"),
                    uid: text("uid"),
                    expires: i.get("expires").and_then(Value::as_i64).unwrap_or(0),
                },
            );
        }
        if let Some(ip) = snapshot.get("nextIp").and_then(Value::as_u64) {
            self.next_ip = u32::try_from(ip).unwrap_or(self.next_ip).max(self.next_ip);
        }
        if let Some(p) = snapshot.get("nextNodePort").and_then(Value::as_u64) {
            self.next_node_port = u32::try_from(p)
                .unwrap_or(self.next_node_port)
                .max(self.next_node_port);
        }
        Ok(restored)
    }

    /// Whether pod `from` (namespace, name) may open a TCP connection to pod `to` on `port`
    /// under the cluster's NetworkPolicies (see [`crate::netpol`]); `None` when a pod or its
    /// namespace does not exist, or a pod has no IP yet.
    pub fn reachable(&self, from: (&str, &str), to: (&str, &str), port: i64) -> Option<bool> {
        let pods = ResKey {
            group: String::new(),
            plural: "pods".into(),
        };
        let namespaces = ResKey {
            group: String::new(),
            plural: "namespaces".into(),
        };
        let end = |(ns, name): (&str, &str)| {
            let pod = self.lookup(&pods, ns, name)?;
            pod.pointer("/status/podIP")?;
            Some((pod, self.lookup(&namespaces, "", ns)?))
        };
        let (from_pod, from_ns) = end(from)?;
        let (to_pod, to_ns) = end(to)?;
        let key = ResKey {
            group: "networking.k8s.io".into(),
            plural: "networkpolicies".into(),
        };
        let policies: Vec<Arc<Value>> = self
            .objects
            .get(&key)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        let refs: Vec<&Value> = policies.iter().map(|p| p.as_ref()).collect();
        Some(crate::netpol::allowed(
            &refs,
            crate::netpol::End {
                pod: &from_pod,
                namespace: &from_ns,
            },
            crate::netpol::End {
                pod: &to_pod,
                namespace: &to_ns,
            },
            port,
            "TCP",
        ))
    }

    /// ValidatingAdmissionPolicies judge an authenticated write (see [`crate::vap`]); a policy
    /// whose CEL the simulator cannot evaluate is refused when it is written.
    #[allow(clippy::too_many_arguments)]
    fn admit_policies(
        &self,
        operation: &str,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        object: Option<&Value>,
        old_object: Option<&Value>,
        ctx: &WriteCtx,
    ) -> ApiResult<()> {
        if rt.is(
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
        ) && let Some(policy) = object
        {
            crate::vap::check_policy(policy)
                .map_err(|why| ApiError::invalid(&rt.kind, name, "spec", &why))?;
        }
        let Some(user) = &ctx.user else {
            return Ok(());
        };
        let policies = self.of_kind(
            "admissionregistration.k8s.io",
            "validatingadmissionpolicies",
            "",
        );
        if policies.is_empty() {
            return Ok(());
        }
        let bindings = self.of_kind(
            "admissionregistration.k8s.io",
            "validatingadmissionpolicybindings",
            "",
        );
        let nskey = ResKey {
            group: String::new(),
            plural: "namespaces".into(),
        };
        let namespace_object = if rt.is("", "namespaces") {
            object.or(old_object).cloned().map(Arc::new)
        } else if rt.namespaced {
            self.lookup(&nskey, "", ns)
        } else {
            None
        };
        let request = crate::vap::Request {
            operation,
            user,
            group: &rt.group,
            version: &rt.version,
            kind: &rt.kind,
            resource: &rt.plural,
            namespace: if rt.namespaced { ns } else { "" },
            name,
            object,
            old_object,
            namespace_object: namespace_object.as_deref(),
        };
        crate::vap::admit(&policies, &bindings, &request)
            .map_err(|why| ApiError::forbidden(&rt.group, &rt.plural, name, &why))
    }

    /// A namespace object, if it exists.
    pub fn namespace_object(&self, name: &str) -> Option<Arc<Value>> {
        let key = ResKey {
            group: String::new(),
            plural: "namespaces".into(),
        };
        self.lookup(&key, "", name)
    }

    /// Pod Security Admission: the pod is refused when it breaks its namespace's `enforce` level.
    fn admit_pod_security(&self, ns: &str, name: &str, pod: &Value) -> ApiResult<()> {
        let nskey = ResKey {
            group: String::new(),
            plural: "namespaces".into(),
        };
        let Some(level) = self
            .lookup(&nskey, "", ns)
            .and_then(|n| crate::psa::enforced(&n))
        else {
            return Ok(());
        };
        let v = crate::psa::violations(pod.get("spec").unwrap_or(&Value::Null), level);
        if v.is_empty() {
            return Ok(());
        }
        Err(ApiError::forbidden(
            "",
            "pods",
            name,
            &crate::psa::refusal(level, &v),
        ))
    }

    fn allocate_service(&mut self, svc: &mut Value) {
        let ty = svc
            .pointer("/spec/type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
            return;
        };
        spec.entry("type").or_insert_with(|| json!("ClusterIP"));
        if ty != "ExternalName"
            && spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
        {
            self.next_ip += 1;
            let ip = format!(
                "10.96.{}.{}",
                (self.next_ip >> 8) & 0xff,
                self.next_ip & 0xff
            );
            spec.insert("clusterIP".into(), json!(ip));
            spec.insert("clusterIPs".into(), json!([ip]));
        }
        if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                p.entry("protocol").or_insert_with(|| json!("TCP"));
                if let Some(port) = p.get("port").cloned() {
                    p.entry("targetPort").or_insert(port);
                }
                if matches!(ty.as_str(), "NodePort" | "LoadBalancer") && p.get("nodePort").is_none()
                {
                    p.insert("nodePort".into(), json!(self.next_node_port));
                    self.next_node_port = if self.next_node_port >= 32767 {
                        30000
                    } else {
                        self.next_node_port + 1
                    };
                }
            }
        }
    }

    /// Recomputes `status` of every ResourceQuota in a namespace, writing those that changed.
    fn refresh_quotas(&mut self, ns: &str) {
        let quotas = self.of_kind("", "resourcequotas", ns);
        if quotas.is_empty() {
            return;
        }
        let usage = self.namespace_usage(ns);
        let Some(rt) = self.registry.find("", "v1", "resourcequotas").cloned() else {
            return;
        };
        for q in quotas {
            let status = admission::quota_status(&q, &usage);
            if q.get("status") != Some(&status) {
                let mut updated = (*q).clone();
                updated["status"] = status;
                // The quota controller writes through the status subresource under its own
                // manager, as kube-controller-manager does: watchers see whose write it was.
                managed::record_update(
                    Some(&q),
                    &mut updated,
                    "kube-controller-manager",
                    "v1",
                    &now(),
                    Some("status"),
                );
                let name = meta_str(&q, "name").unwrap_or_default().to_string();
                self.commit(&rt, ns, &name, updated, EventType::Modified);
            }
        }
    }

    /// Creates an object (POST).
    pub fn create(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        obj: Value,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        self.create_inner(rt, ns, obj, ctx, false)
    }

    /// Creates an object; `applied` keeps the managedFields a server-side apply computed.
    fn create_inner(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        mut obj: Value,
        ctx: &WriteCtx,
        applied: bool,
    ) -> ApiResult<Value> {
        if !obj.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        if let Some(kind) = obj.get("kind").and_then(Value::as_str)
            && kind != rt.kind
        {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({}) or the kind {kind} does not match {}",
                obj.get("apiVersion")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                rt.api_version(),
                rt.kind
            )));
        }
        if rt.namespaced {
            match meta_str(&obj, "namespace") {
                Some(n) if !n.is_empty() && n != ns => {
                    return Err(ApiError::bad_request(
                        "the namespace of the provided object does not match the namespace sent on the request",
                    ));
                }
                _ => {}
            }
        }
        let name = match (
            meta_str(&obj, "name").filter(|n| !n.is_empty()),
            meta_str(&obj, "generateName"),
        ) {
            (Some(n), _) => n.to_string(),
            (None, Some(prefix)) if !prefix.is_empty() => format!("{prefix}{}", random_suffix()),
            _ => {
                return Err(ApiError::invalid(
                    &rt.kind,
                    "",
                    "metadata.name",
                    "Required value: name or generateName is required",
                ));
            }
        };
        validate_name(rt, &name)?;
        validate_labels(rt, &name, &obj)?;
        let ns = if rt.namespaced { ns } else { "" };
        if self.lookup(&rt.key(), ns, &name).is_some() {
            return Err(ApiError::already_exists(&rt.group, &rt.plural, &name));
        }
        self.namespace_must_accept(rt, ns, &name)?;
        obj["apiVersion"] = json!(rt.api_version());
        obj["kind"] = json!(rt.kind);
        let time = now();
        {
            let m = meta_mut(&mut obj);
            m.insert("name".into(), json!(name));
            if rt.namespaced {
                m.insert("namespace".into(), json!(ns));
            } else {
                m.remove("namespace");
            }
            m.insert("uid".into(), json!(uuid::Uuid::new_v4().to_string()));
            m.insert("creationTimestamp".into(), json!(time));
            m.remove("deletionTimestamp");
            m.remove("deletionGracePeriodSeconds");
            m.remove("resourceVersion");
            if !applied {
                m.remove("managedFields");
            }
            m.remove("selfLink");
            if rt.has_generation {
                m.insert("generation".into(), json!(1));
            } else {
                m.remove("generation");
            }
        }
        if rt.status_subresource
            && !rt.keeps_status_on_create
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        self.default_new(rt, &mut obj)?;
        Self::check_schema(rt, &name, &mut obj, ctx)?;
        self.admit(rt, ns, &name, &mut obj)?;
        self.admit_policies("CREATE", rt, ns, &name, Some(&obj), None, ctx)?;
        if !applied && !ctx.manager.is_empty() {
            managed::record_update(None, &mut obj, &ctx.manager, &rt.api_version(), &time, None);
        }
        if ctx.dry_run {
            return Ok(obj);
        }
        let stored = self.commit(rt, ns, &name, obj, EventType::Added);
        self.after_write(rt, ns, &stored);
        Ok((*stored).clone())
    }

    /// Server-side apply (PATCH with `application/apply-patch+yaml`): creates when absent.
    pub fn apply(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        config: Value,
        ctx: &WriteCtx,
        part: Part,
    ) -> ApiResult<Value> {
        if ctx.manager.is_empty() {
            return Err(ApiError::bad_request(
                "fieldManager is required for apply requests",
            ));
        }
        if let Some(n) = meta_str(&config, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        if config.get("apiVersion").is_none() || config.get("kind").is_none() {
            return Err(ApiError::bad_request(
                "apiVersion and kind must be set in an applied configuration",
            ));
        }
        let ns_key = if rt.namespaced { ns } else { "" };
        let time = now();
        let sub = (part == Part::Status).then_some("status");
        let req = ApplyRequest {
            manager: &ctx.manager,
            api_version: &rt.api_version(),
            time: &time,
            subresource: sub,
            force: ctx.force,
        };
        let mut config = config;
        if part == Part::Main
            && rt.status_subresource
            && let Some(m) = config.as_object_mut()
        {
            m.remove("status");
        }
        match self.lookup(&rt.key(), ns_key, name) {
            None if part == Part::Status => Err(ApiError::not_found(&rt.group, &rt.plural, name)),
            None => {
                let mut obj = json!({"apiVersion": rt.api_version(), "kind": rt.kind, "metadata": {"name": name}});
                if rt.namespaced {
                    obj["metadata"]["namespace"] = json!(ns);
                }
                let merged = managed::apply(&obj, &config, &req)
                    .map_err(|c| conflict_error(rt, name, &c))?;
                // The creation is recorded as the apply alone.
                self.create_inner(rt, ns, merged, ctx, true)
            }
            Some(live) => {
                // An applied configuration that carries a resourceVersion makes it a precondition
                // (an optimistic lock), as the API server does; without one it applies to the latest.
                if let Some(rv) = meta_str(&config, "resourceVersion").filter(|rv| !rv.is_empty())
                    && Some(rv) != meta_str(&live, "resourceVersion")
                {
                    return Err(ApiError::stale(&rt.group, &rt.plural, name));
                }
                let mut merged = managed::apply(&live, &config, &req)
                    .map_err(|c| conflict_error(rt, name, &c))?;
                if let Some(rv) = meta_str(&live, "resourceVersion").map(str::to_string) {
                    meta_mut(&mut merged).insert("resourceVersion".into(), json!(rv));
                }
                self.write_existing(rt, ns_key, name, &live, merged, ctx, part, false)
            }
        }
    }

    /// Replaces an object (PUT), on the main resource or its status.
    pub fn update(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        body: Value,
        ctx: &WriteCtx,
        part: Part,
    ) -> ApiResult<Value> {
        let ns = if rt.namespaced { ns } else { "" };
        let live = self.get(rt, ns, name)?;
        if let Some(n) = meta_str(&body, "name")
            && n != name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )));
        }
        self.write_existing(rt, ns, name, &live, body, ctx, part, true)
    }

    /// PATCH with JSON, merge or strategic merge patch (apply goes to [`Store::apply`]).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        kind: PatchKind,
        body: &[u8],
        ctx: &WriteCtx,
        part: Part,
    ) -> ApiResult<Value> {
        let ns = if rt.namespaced { ns } else { "" };
        let live = self.get(rt, ns, name)?;
        let parse = || -> ApiResult<Value> {
            serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))
        };
        let patched = match kind {
            PatchKind::Json => patch::json_patch(&live, body)?,
            PatchKind::Merge => patch::merge_patch(&live, &parse()?),
            PatchKind::Strategic => {
                if rt.crd.is_some() {
                    return Err(ApiError::unsupported_media_type(
                        "application/strategic-merge-patch+json",
                    ));
                }
                patch::strategic_merge(&live, &parse()?)?
            }
            PatchKind::Apply => return Err(ApiError::internal("apply patches go through apply")),
        };
        // A patch that sets a resourceVersion makes it a precondition; otherwise it applies to the latest.
        let precondition =
            meta_str(&patched, "resourceVersion") != meta_str(&live, "resourceVersion");
        self.write_existing(rt, ns, name, &live, patched, ctx, part, precondition)
    }

    /// The common end of update, patch and apply on an existing object.
    #[allow(clippy::too_many_arguments)]
    fn write_existing(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        live: &Arc<Value>,
        mut new: Value,
        ctx: &WriteCtx,
        part: Part,
        check_rv: bool,
    ) -> ApiResult<Value> {
        if !new.is_object() {
            return Err(ApiError::bad_request(
                "the body of the request must be an object",
            ));
        }
        if check_rv
            && let Some(rv) = meta_str(&new, "resourceVersion").filter(|rv| !rv.is_empty())
            && Some(rv) != meta_str(live, "resourceVersion")
        {
            return Err(ApiError::stale(&rt.group, &rt.plural, name));
        }
        if part == Part::Status {
            // Only status changes through /status.
            let status = new.get("status").cloned();
            new = (**live).clone();
            match status {
                Some(s) => new["status"] = s,
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        } else if rt.status_subresource {
            match live.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        new["apiVersion"] = json!(rt.api_version());
        new["kind"] = json!(rt.kind);
        {
            let old_meta = live.get("metadata").cloned().unwrap_or_default();
            let m = meta_mut(&mut new);
            for field in [
                "name",
                "namespace",
                "uid",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "generation",
                "resourceVersion",
            ] {
                match old_meta.get(field) {
                    Some(v) => m.insert(field.into(), v.clone()),
                    None => m.remove(field),
                };
            }
            if let Some(managed) = old_meta.get("managedFields") {
                m.entry("managedFields").or_insert(managed.clone());
            }
            if m.get("generateName").is_none()
                && let Some(g) = old_meta.get("generateName")
            {
                m.insert("generateName".into(), g.clone());
            }
        }
        validate_labels(rt, name, &new)?;
        Self::check_schema(rt, name, &mut new, ctx)?;
        if live.pointer("/metadata/deletionTimestamp").is_some() {
            let old_f = finalizers(live);
            if finalizers(&new).iter().any(|f| !old_f.contains(f)) {
                return Err(ApiError::invalid(
                    &rt.kind,
                    name,
                    "metadata.finalizers",
                    "Forbidden: no new finalizers can be added if the object is being deleted",
                ));
            }
        }
        if rt.is("", "services") {
            for f in ["clusterIP", "clusterIPs"] {
                if let Some(ip) = live.pointer(&format!("/spec/{f}"))
                    && new.pointer(&format!("/spec/{f}")).is_none()
                {
                    new["spec"][f] = ip.clone();
                }
            }
        }
        if rt.has_generation && spec_part(rt, live) != spec_part(rt, &new) {
            let g = live
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(0)
                + 1;
            meta_mut(&mut new).insert("generation".into(), json!(g));
        }
        let time = now();
        let sub = (part == Part::Status).then_some("status");
        if !ctx.manager.is_empty() {
            managed::record_update(
                Some(live),
                &mut new,
                &ctx.manager,
                &rt.api_version(),
                &time,
                sub,
            );
        }
        if comparable(&new) == comparable(live) {
            return Ok((**live).clone());
        }
        if part == Part::Main {
            self.admit_policies("UPDATE", rt, ns, name, Some(&new), Some(live), ctx)?;
        }
        if ctx.dry_run {
            return Ok(new);
        }
        let deleting = new.pointer("/metadata/deletionTimestamp").is_some();
        let spec_finalizers_done = !rt.is("", "namespaces")
            || new
                .pointer("/spec/finalizers")
                .and_then(Value::as_array)
                .is_none_or(Vec::is_empty);
        if deleting && finalizers(&new).is_empty() && spec_finalizers_done {
            let gone = self.commit(rt, ns, name, new, EventType::Deleted);
            self.after_delete(rt, ns, &gone);
            return Ok((*gone).clone());
        }
        let stored = self.commit(rt, ns, name, new, EventType::Modified);
        self.after_write(rt, ns, &stored);
        Ok((*stored).clone())
    }

    /// Defaults and status that the API server (or a controller, at once) gives a new object.
    fn default_new(&mut self, rt: &ResourceType, obj: &mut Value) -> ApiResult<()> {
        match (rt.group.as_str(), rt.plural.as_str()) {
            ("", "namespaces") => {
                obj["spec"] = json!({"finalizers": ["kubernetes"]});
                obj["status"] = json!({"phase": "Active"});
                let name = meta_str(obj, "name").unwrap_or_default().to_string();
                let labels = meta_mut(obj).entry("labels").or_insert_with(|| json!({}));
                labels["kubernetes.io/metadata.name"] = json!(name);
            }
            ("", "pods") => {
                if let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) {
                    spec.entry("serviceAccountName")
                        .or_insert_with(|| json!("default"));
                    spec.entry("restartPolicy")
                        .or_insert_with(|| json!("Always"));
                    spec.entry("dnsPolicy")
                        .or_insert_with(|| json!("ClusterFirst"));
                    spec.entry("schedulerName")
                        .or_insert_with(|| json!("default-scheduler"));
                    spec.entry("terminationGracePeriodSeconds")
                        .or_insert_with(|| json!(30));
                } else {
                    let name = meta_str(obj, "name").unwrap_or_default().to_string();
                    return Err(ApiError::invalid(
                        "Pod",
                        &name,
                        "spec.containers",
                        "Required value",
                    ));
                }
                obj["status"] = json!({"phase": "Pending"});
            }
            ("", "persistentvolumeclaims") => obj["status"] = json!({"phase": "Pending"}),
            ("", "secrets") => {
                if let Some(string_data) = obj.get("stringData").and_then(Value::as_object).cloned()
                {
                    let data = obj
                        .as_object_mut()
                        .map(|m| m.entry("data").or_insert_with(|| json!({})));
                    if let Some(data) = data.and_then(Value::as_object_mut) {
                        for (k, v) in string_data {
                            let raw = v.as_str().unwrap_or_default();
                            data.insert(
                                k,
                                json!(base64::engine::general_purpose::STANDARD.encode(raw)),
                            );
                        }
                    }
                    if let Some(m) = obj.as_object_mut() {
                        m.remove("stringData");
                    }
                }
                if let Some(m) = obj.as_object_mut() {
                    m.entry("type").or_insert_with(|| json!("Opaque"));
                }
            }
            ("apiextensions.k8s.io", "customresourcedefinitions") => {
                let spec = &obj["spec"];
                let expected = format!(
                    "{}.{}",
                    spec.pointer("/names/plural")
                        .and_then(Value::as_str)
                        .unwrap_or_default(),
                    spec["group"].as_str().unwrap_or_default()
                );
                let name = meta_str(obj, "name").unwrap_or_default().to_string();
                if name != expected {
                    return Err(ApiError::invalid(
                        "CustomResourceDefinition",
                        &name,
                        "metadata.name",
                        &format!(
                            "Invalid value: {name:?}: must be spec.names.plural+\".\"+spec.group"
                        ),
                    ));
                }
                let t = now();
                obj["status"] = json!({
                    "acceptedNames": spec["names"].clone(),
                    "storedVersions": spec["versions"].as_array().into_iter().flatten()
                        .filter(|v| v["storage"] == json!(true)).map(|v| v["name"].clone()).collect::<Vec<_>>(),
                    "conditions": [
                        {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": t},
                        {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": t}
                    ]
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Controllers reacting to a created or updated object.
    fn after_write(&mut self, rt: &ResourceType, ns: &str, obj: &Arc<Value>) {
        if rt.is("", "namespaces") && obj.pointer("/metadata/deletionTimestamp").is_none() {
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            if let Some(sa) = self.registry.find("", "v1", "serviceaccounts").cloned()
                && self.lookup(&sa.key(), &name, "default").is_none()
            {
                let ctx = WriteCtx::default();
                let _ = self.create(&sa, &name, json!({"metadata": {"name": "default"}}), &ctx);
            }
        }
        if rt.is("apiextensions.k8s.io", "customresourcedefinitions") {
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            self.registry.register_crd(&name, obj);
        }
        if rt.namespaced && rt.crd.is_none() && !matches!(rt.plural.as_str(), "events" | "leases") {
            self.refresh_quotas(ns);
        }
        // An object whose owners are all gone is garbage, as soon as it is written.
        let owners = owner_uids(obj);
        if !owners.is_empty() && owners.iter().all(|u| !self.exists_uid(u)) {
            let name = meta_str(obj, "name").unwrap_or_default().to_string();
            let _ = self.delete(rt, ns, &name, &DeleteOpts::default(), &WriteCtx::default());
        }
    }

    /// Deletes an object: at once, or by setting deletionTimestamp while finalizers remain.
    pub fn delete(
        &mut self,
        rt: &ResourceType,
        ns: &str,
        name: &str,
        opts: &DeleteOpts,
        ctx: &WriteCtx,
    ) -> ApiResult<Value> {
        let ns = if rt.namespaced { ns } else { "" };
        let live = self.get(rt, ns, name)?;
        for (field, wanted) in [
            ("UID", &opts.precondition_uid),
            ("ResourceVersion", &opts.precondition_rv),
        ] {
            let key = if field == "UID" {
                "uid"
            } else {
                "resourceVersion"
            };
            let have = meta_str(&live, key).unwrap_or_default();
            if let Some(wanted) = wanted
                && wanted != have
            {
                let why = format!(
                    "Precondition failed: {field} in precondition: {wanted}, {field} in object meta: {have}"
                );
                return Err(ApiError::conflict(&rt.group, &rt.plural, name, &why));
            }
        }
        self.admit_policies("DELETE", rt, ns, name, None, Some(&live), ctx)?;
        if ctx.dry_run {
            return Ok((*live).clone());
        }
        let is_pod = rt.is("", "pods");
        let on_node = live
            .pointer("/spec/nodeName")
            .and_then(Value::as_str)
            .is_some_and(|n| !n.is_empty());
        if live.pointer("/metadata/deletionTimestamp").is_some() {
            // A pod being stopped is removed at once by a delete with grace period 0 (a force
            // delete); any other repeated delete changes nothing.
            if is_pod && opts.grace_period == Some(0) && finalizers(&live).is_empty() {
                let gone = self.commit(rt, ns, name, (*live).clone(), EventType::Deleted);
                self.after_delete(rt, ns, &gone);
                return Ok((*gone).clone());
            }
            return Ok((*live).clone());
        }
        if is_pod && on_node && opts.grace_period != Some(0) {
            // Graceful deletion, as the API server does for a pod a kubelet runs: the pod is
            // marked, and the kubelet removes it once its containers have stopped.
            let grace = opts.grace_period.unwrap_or_else(|| {
                live.pointer("/spec/terminationGracePeriodSeconds")
                    .and_then(Value::as_i64)
                    .unwrap_or(30)
            });
            let mut marked = (*live).clone();
            let at = jiff::Timestamp::now()
                .checked_add(jiff::SignedDuration::from_secs(grace.max(0)))
                .unwrap_or_else(|_| jiff::Timestamp::now());
            let m = meta_mut(&mut marked);
            m.insert(
                "deletionTimestamp".into(),
                json!(at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()),
            );
            m.insert("deletionGracePeriodSeconds".into(), json!(grace));
            return Ok((*self.commit(rt, ns, name, marked, EventType::Modified)).clone());
        }
        let uid = meta_str(&live, "uid").unwrap_or_default().to_string();
        let has_dependents = self.dependents.get(&uid).is_some_and(|d| !d.is_empty());
        if opts.propagation == Propagation::Orphan && has_dependents {
            self.orphan_dependents(&uid);
        }
        let mut fins = finalizers(&live);
        if opts.propagation == Propagation::Foreground
            && has_dependents
            && !fins.iter().any(|f| f == "foregroundDeletion")
        {
            fins.push("foregroundDeletion".into());
        }
        let is_namespace = rt.is("", "namespaces");
        if fins.is_empty() && !is_namespace {
            let gone = self.commit(rt, ns, name, (*live).clone(), EventType::Deleted);
            self.after_delete(rt, ns, &gone);
            return Ok((*gone).clone());
        }
        let mut marked = (*live).clone();
        {
            let m = meta_mut(&mut marked);
            m.insert("deletionTimestamp".into(), json!(now()));
            m.insert("deletionGracePeriodSeconds".into(), json!(0));
            // Marking for deletion changes what the object means: its generation moves, as the API server does.
            if let Some(g) = m
                .get("generation")
                .and_then(Value::as_i64)
                .filter(|g| *g > 0)
            {
                m.insert("generation".into(), json!(g + 1));
            }
            m.insert("finalizers".into(), json!(fins));
            if fins.is_empty() {
                m.remove("finalizers");
            }
        }
        if is_namespace {
            marked["status"] = json!({"phase": "Terminating"});
        }
        let stored = self.commit(rt, ns, name, marked, EventType::Modified);
        if is_namespace {
            self.empty_namespace(name);
            self.finalize_namespace(name);
        }
        if fins.iter().any(|f| f == "foregroundDeletion") {
            self.delete_dependents(&uid);
            self.finish_foreground(&uid);
        }
        Ok(self
            .lookup(&rt.key(), ns, name)
            .map_or_else(|| (*stored).clone(), |v| (*v).clone()))
    }

    /// Deletes every object of a kind in a namespace that matches the selectors (DELETE on a collection).
    pub fn delete_collection(
        &mut self,
        rt: &ResourceType,
        ns: Option<&str>,
        labels: &LabelSelector,
        fields: &FieldSelector,
        opts: &DeleteOpts,
        ctx: &WriteCtx,
    ) -> ApiResult<Vec<Value>> {
        let page = self.list(rt, ns, labels, fields, None, None)?;
        let mut out = Vec::new();
        for obj in page.items {
            let name = meta_str(&obj, "name").unwrap_or_default().to_string();
            let ns = meta_str(&obj, "namespace").unwrap_or_default().to_string();
            out.push(self.delete(rt, &ns, &name, opts, ctx)?);
        }
        Ok(out)
    }

    fn orphan_dependents(&mut self, owner_uid: &str) {
        let deps: Vec<ObjRef> = self
            .dependents
            .get(owner_uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default();
        for (key, ns, name) in deps {
            let (Some(rt), Some(obj)) = (
                self.registry.preferred(&key).cloned(),
                self.lookup(&key, &ns, &name),
            ) else {
                continue;
            };
            let mut updated = (*obj).clone();
            if let Some(refs) = updated
                .pointer_mut("/metadata/ownerReferences")
                .and_then(Value::as_array_mut)
            {
                refs.retain(|r| r["uid"].as_str() != Some(owner_uid));
            }
            self.commit(&rt, &ns, &name, updated, EventType::Modified);
        }
    }

    fn delete_dependents(&mut self, owner_uid: &str) {
        let deps: Vec<ObjRef> = self
            .dependents
            .get(owner_uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default();
        for (key, ns, name) in deps {
            if let Some(rt) = self.registry.preferred(&key).cloned() {
                let _ = self.delete(
                    &rt,
                    &ns,
                    &name,
                    &DeleteOpts::default(),
                    &WriteCtx::default(),
                );
            }
        }
    }

    /// Removes the foregroundDeletion finalizer of an owner once its dependents are gone.
    fn finish_foreground(&mut self, owner_uid: &str) {
        if self
            .dependents
            .get(owner_uid)
            .is_some_and(|d| !d.is_empty())
        {
            return;
        }
        let Some((key, ns, name)) = self.by_uid.get(owner_uid).cloned() else {
            return;
        };
        let (Some(rt), Some(obj)) = (
            self.registry.preferred(&key).cloned(),
            self.lookup(&key, &ns, &name),
        ) else {
            return;
        };
        if !finalizers(&obj).iter().any(|f| f == "foregroundDeletion") {
            return;
        }
        let mut updated = (*obj).clone();
        let rest: Vec<String> = finalizers(&obj)
            .into_iter()
            .filter(|f| f != "foregroundDeletion")
            .collect();
        meta_mut(&mut updated).insert("finalizers".into(), json!(rest));
        if rest.is_empty() {
            let gone = self.commit(&rt, &ns, &name, updated, EventType::Deleted);
            self.after_delete(&rt, &ns, &gone);
        } else {
            self.commit(&rt, &ns, &name, updated, EventType::Modified);
        }
    }

    /// Controllers reacting to an object that is gone.
    pub(crate) fn after_delete(&mut self, rt: &ResourceType, ns: &str, gone: &Arc<Value>) {
        let uid = meta_str(gone, "uid").unwrap_or_default().to_string();
        // Garbage collection: dependents whose owners are now all gone.
        let deps: Vec<ObjRef> = self
            .dependents
            .get(&uid)
            .map(|d| d.iter().cloned().collect())
            .unwrap_or_default();
        for (key, dns, dname) in deps {
            let Some(dep) = self.lookup(&key, &dns, &dname) else {
                continue;
            };
            if owner_uids(&dep).iter().all(|u| !self.exists_uid(u))
                && let Some(drt) = self.registry.preferred(&key).cloned()
            {
                let _ = self.delete(
                    &drt,
                    &dns,
                    &dname,
                    &DeleteOpts::default(),
                    &WriteCtx::default(),
                );
            }
        }
        // A foreground-deleting owner may be waiting for this object.
        for owner in owner_uids(gone) {
            self.finish_foreground(&owner);
        }
        if rt.is("apiextensions.k8s.io", "customresourcedefinitions") {
            let name = meta_str(gone, "name").unwrap_or_default().to_string();
            let instances: Vec<ResourceType> = self
                .registry
                .all()
                .iter()
                .filter(|t| t.crd.as_deref() == Some(name.as_str()))
                .cloned()
                .collect();
            if let Some(irt) = instances.first() {
                let all: Vec<ObjKey> = self
                    .map(&irt.key())
                    .map(|m| m.keys().cloned().collect())
                    .unwrap_or_default();
                for (ins, iname) in all {
                    if let Some(obj) = self.lookup(&irt.key(), &ins, &iname) {
                        self.commit(irt, &ins, &iname, (*obj).clone(), EventType::Deleted);
                    }
                }
            }
            self.registry.unregister_crd(&name);
        }
        if rt.namespaced {
            if rt.crd.is_none() && !matches!(rt.plural.as_str(), "events" | "leases") {
                self.refresh_quotas(ns);
            }
            self.finalize_namespace(ns);
        }
    }

    /// The namespace controller: deletes everything in a terminating namespace.
    fn empty_namespace(&mut self, ns: &str) {
        let types: Vec<ResourceType> = self
            .registry
            .all()
            .iter()
            .filter(|t| {
                t.namespaced
                    && self.registry.preferred(&t.key()).map(|p| &p.version) == Some(&t.version)
            })
            .cloned()
            .collect();
        for rt in types {
            let names: Vec<String> = self
                .namespace_objects(&rt.key(), ns)
                .filter_map(|o| meta_str(o, "name").map(str::to_string))
                .collect();
            for name in names {
                let _ = self.delete(&rt, ns, &name, &DeleteOpts::default(), &WriteCtx::default());
            }
        }
    }

    /// Removes a terminating namespace once nothing is left in it.
    fn finalize_namespace(&mut self, ns: &str) {
        let Some(rt) = self.registry.find("", "v1", "namespaces").cloned() else {
            return;
        };
        let Some(nsobj) = self.lookup(&rt.key(), "", ns) else {
            return;
        };
        if nsobj.pointer("/metadata/deletionTimestamp").is_none() {
            return;
        }
        let keys: Vec<ResKey> = self.objects.keys().cloned().collect();
        if keys
            .iter()
            .any(|k| self.namespace_objects(k, ns).next().is_some())
        {
            return;
        }
        let mut updated = (*nsobj).clone();
        updated["spec"] = json!({});
        if finalizers(&updated).is_empty() {
            self.commit(&rt, "", ns, updated, EventType::Deleted);
        } else if nsobj
            .pointer("/spec/finalizers")
            .and_then(Value::as_array)
            .is_some_and(|f| !f.is_empty())
        {
            self.commit(&rt, "", ns, updated, EventType::Modified);
        }
    }

    /// The TokenRequest API: a token for a ServiceAccount (not signed: the simulator checks no credentials).
    /// The ServiceAccount a token was issued for, while it is valid: not expired, and the
    /// ServiceAccount it was issued for (same uid) still exists.
    pub fn token_owner(&self, token: &str) -> Option<IssuedToken> {
        let issued = self.tokens.get(token)?;
        if issued.expires <= jiff::Timestamp::now().as_second() {
            return None;
        }
        let key = ResKey {
            group: String::new(),
            plural: "serviceaccounts".into(),
        };
        let account = self.lookup(&key, &issued.namespace, &issued.service_account)?;
        (meta_str(&account, "uid") == Some(issued.uid.as_str())).then(|| issued.clone())
    }

    /// Every Role, ClusterRole and binding, for the authorizer.
    pub fn rbac_policy(&self) -> crate::rbac::Policy {
        let all = |plural: &str| -> Vec<Arc<Value>> {
            let key = ResKey {
                group: "rbac.authorization.k8s.io".into(),
                plural: plural.into(),
            };
            self.objects
                .get(&key)
                .map(|m| m.values().cloned().collect())
                .unwrap_or_default()
        };
        crate::rbac::Policy {
            roles: all("roles"),
            cluster_roles: all("clusterroles"),
            role_bindings: all("rolebindings"),
            cluster_role_bindings: all("clusterrolebindings"),
        }
    }

    pub fn token_request(&mut self, ns: &str, sa: &str, body: &Value) -> ApiResult<Value> {
        let key = ResKey {
            group: String::new(),
            plural: "serviceaccounts".into(),
        };
        let account = self
            .lookup(&key, ns, sa)
            .ok_or_else(|| ApiError::not_found("", "serviceaccounts", sa))?;
        let seconds = body
            .pointer("/spec/expirationSeconds")
            .and_then(Value::as_i64)
            .unwrap_or(3600);
        if seconds < 600 {
            return Err(ApiError::invalid(
                "TokenRequest",
                sa,
                "spec.expirationSeconds",
                "Invalid value: may not specify a duration less than 10 minutes",
            ));
        }
        let audiences = body
            .pointer("/spec/audiences")
            .cloned()
            .filter(|a| a.as_array().is_some_and(|a| !a.is_empty()))
            .unwrap_or(json!(["https://kubernetes.default.svc"]));
        let now = jiff::Timestamp::now();
        let exp = now.as_second() + seconds;
        let expires =
            jiff::Timestamp::from_second(exp).map_err(|e| ApiError::internal(e.to_string()))?;
        let b64 =
            |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
        let claims = json!({
            "iss": "https://kubesim.local", "sub": format!("system:serviceaccount:{ns}:{sa}"),
            "aud": audiences, "iat": now.as_second(), "exp": exp,
            "kubernetes.io": {"namespace": ns, "serviceaccount": {"name": sa, "uid": meta_str(&account, "uid")}}
        });
        let token = format!(
            "{}.{}.{}",
            b64(&json!({"alg": "RS256", "kid": "kubesim"})),
            b64(&claims),
            [
                random_suffix(),
                random_suffix(),
                random_suffix(),
                random_suffix()
            ]
            .concat()
        );
        self.tokens.insert(
            token.clone(),
            IssuedToken {
                namespace: ns.to_string(),
                service_account: sa.to_string(),
                uid: meta_str(&account, "uid").unwrap_or_default().to_string(),
                expires: exp,
            },
        );
        Ok(json!({
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": sa, "namespace": ns, "creationTimestamp": null},
            "spec": {"audiences": audiences, "expirationSeconds": seconds, "boundObjectRef": body.pointer("/spec/boundObjectRef").cloned()},
            "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()}
        }))
    }
}

fn conflict_error(rt: &ResourceType, name: &str, conflicts: &[managed::Conflict]) -> ApiError {
    let mut lines: Vec<String> = conflicts
        .iter()
        .map(|c| format!("conflict with \"{}\": .{}", c.manager, c.path.join(".")))
        .collect();
    lines.dedup();
    let message = if lines.len() == 1 {
        format!("Apply failed with 1 conflict: {}", lines[0])
    } else {
        format!(
            "Apply failed with {} conflicts: {}",
            lines.len(),
            lines.join("\n")
        )
    };
    let mut e = ApiError::conflict(&rt.group, &rt.plural, name, "");
    e.message = message;
    e.details = Some(json!({
        "name": name, "group": rt.group, "kind": rt.plural,
        "causes": conflicts.iter().map(|c| json!({"reason": "FieldManagerConflict", "message": format!("conflict with \"{}\"", c.manager), "field": format!(".{}", c.path.join("."))})).collect::<Vec<_>>()
    }));
    e
}

fn encode_continue(rv: u64, last: Option<ObjKey>) -> String {
    let (ns, name) = last.unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(json!({"rv": rv, "ns": ns, "name": name}).to_string())
}

fn decode_continue(token: &str, compacted: u64) -> ApiResult<(u64, ObjKey)> {
    let bad = || {
        ApiError::bad_request(
            "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
        )
    };
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    let rv = v["rv"].as_u64().ok_or_else(bad)?;
    if rv < compacted {
        let mut e = ApiError::expired(rv, compacted);
        e.message = "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results.".into();
        return Err(e);
    }
    Ok((
        rv,
        (
            v["ns"].as_str().unwrap_or_default().into(),
            v["name"].as_str().unwrap_or_default().into(),
        ),
    ))
}
