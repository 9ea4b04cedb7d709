//! The HTTP side: parses Kubernetes API paths and query parameters, calls the store, and writes
//! objects, lists, tables, `Status` errors and watch streams as the API server does.

use std::borrow::Cow;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;

use crate::discovery;
use crate::error::{ApiError, ApiResult};
use crate::protobuf;
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{DeleteOpts, Event, EventType, Part, PatchKind, Propagation, Store, WriteCtx};
use crate::table;

/// State shared by every request.
pub struct Shared {
    pub store: Mutex<Store>,
    /// Every request served, for benchmarks that count a client's calls.
    pub requests: std::sync::atomic::AtomicU64,
    /// Bumped to end every open watch (a restart of the API server, as clients see it).
    pub watch_epoch: watch::Sender<u64>,
    pub bookmark_interval: Duration,
    pub server_address: String,
    /// Whether requests are authenticated and authorized (RBAC); off, everyone may do anything.
    pub authorize: bool,
    /// What pods use, as the resource metrics API reports it.
    pub usages: Mutex<crate::metrics::Usages>,
}

/// The bearer token of the simulator's administrator (`system:masters`), as in its kubeconfig.
pub const ADMIN_TOKEN: &str = "kubesim";

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The 401 the API server answers a request without valid credentials.
fn unauthorized() -> Response {
    json_response(
        StatusCode::UNAUTHORIZED,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "Unauthorized", "reason": "Unauthorized", "code": 401}),
    )
}

/// Who the caller is; `None` when its credentials are missing or invalid.
fn authenticate(shared: &Shared, headers: &HeaderMap) -> Option<crate::rbac::Identity> {
    let token = bearer(headers)?;
    if token == ADMIN_TOKEN {
        return Some(crate::rbac::Identity {
            user: "kubesim-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        });
    }
    let issued = shared.store().token_owner(token)?;
    Some(crate::rbac::Identity::service_account(
        &issued.namespace,
        &issued.service_account,
    ))
}

/// The `details` of a 403 Status: the object's name (when the request names one), group, kind.
fn forbidden_details(a: &crate::rbac::Attributes) -> Value {
    let mut d = json!({"group": a.group, "kind": a.resource});
    if let Some(name) = &a.name {
        d["name"] = json!(name);
    }
    d
}

/// The RBAC verb of a request.
fn verb(method: &Method, named: bool, q: &HashMap<String, String>) -> &'static str {
    match (method, named) {
        (&Method::GET, true) => "get",
        (&Method::GET, false) if flag(q, "watch") => "watch",
        (&Method::GET, false) => "list",
        (&Method::POST, _) => "create",
        (&Method::PUT, _) => "update",
        (&Method::PATCH, _) => "patch",
        (&Method::DELETE, true) => "delete",
        (&Method::DELETE, false) => "deletecollection",
        _ => "unknown",
    }
}

impl Shared {
    pub fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock would be a simulator bug; keep serving what is there.
        self.store
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn json_response<T: serde::Serialize + ?Sized>(code: StatusCode, body: &T) -> Response {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    (code, [(header::CONTENT_TYPE, "application/json")], bytes).into_response()
}

fn error_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.to_status())
}

/// What a resource path names.
struct Target {
    rt: ResourceType,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn parse_target(store: &Store, segments: &[&str]) -> ApiResult<Target> {
    let (group, version, rest) = match segments {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::not_found("", "", "")),
    };
    let find = |plural: &str| {
        store
            .registry
            .find(group, version, plural)
            .cloned()
            .ok_or_else(|| ApiError::not_found_path(&segments.join("/")))
    };
    let owned = |s: &&str| Some(s.to_string());
    match rest {
        ["namespaces", ns, plural, tail @ ..]
            if !(tail.is_empty() && matches!(*plural, "status" | "finalize")) =>
        {
            let rt = find(plural)?;
            if !rt.namespaced {
                return Err(ApiError::not_found_path(&segments.join("/")));
            }
            let (name, sub) = match tail {
                [] => (None, None),
                [n] => (owned(n), None),
                [n, s] => (owned(n), owned(s)),
                _ => return Err(ApiError::not_found_path(&segments.join("/"))),
            };
            Ok(Target {
                rt,
                namespace: Some(ns.to_string()),
                name,
                sub,
            })
        }
        [plural, tail @ ..] => {
            let rt = find(plural)?;
            let (name, sub) = match tail {
                [] => (None, None),
                [n] => (owned(n), None),
                [n, s] => (owned(n), owned(s)),
                _ => return Err(ApiError::not_found_path(&segments.join("/"))),
            };
            if rt.namespaced && name.is_some() {
                return Err(ApiError::not_found_path(&segments.join("/")));
            }
            Ok(Target {
                rt,
                namespace: None,
                name,
                sub,
            })
        }
        [] => Err(ApiError::not_found_path(&segments.join("/"))),
    }
}

impl ApiError {
    fn not_found_path(path: &str) -> Self {
        let mut e = ApiError::not_found("", "", "");
        e.message = format!("the server could not find the requested resource ({path})");
        e.details = None;
        e
    }
}

fn parse_query(uri: &Uri) -> HashMap<String, String> {
    uri.query()
        .map(|q| {
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (percent_decode(k), percent_decode(v))
                })
                .collect()
        })
        .unwrap_or_default()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                Ok(b) => {
                    out.push(b);
                    i += 2;
                }
                Err(_) => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn flag(q: &HashMap<String, String>, key: &str) -> bool {
    q.get(key).is_some_and(|v| v == "true" || v == "1")
}

/// The field manager of a write: `fieldManager=`, else the user agent's program name, as the API server derives it.
fn manager_of(q: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = q.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    let ua = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown");
    let program = ua.split('/').next().unwrap_or("unknown");
    program.chars().take(128).collect()
}

fn write_ctx(q: &HashMap<String, String>, headers: &HeaderMap) -> WriteCtx {
    WriteCtx {
        manager: manager_of(q, headers),
        dry_run: q.get("dryRun").is_some_and(|v| v == "All"),
        force: flag(q, "force"),
        strict: q.get("fieldValidation").is_some_and(|v| v == "Strict"),
        user: None,
    }
}

fn content_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn decode_body(headers: &HeaderMap, body: &[u8]) -> ApiResult<Value> {
    let ct = content_type(headers);
    match ct.as_str() {
        "application/json" | "" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}"))),
        "application/vnd.kubernetes.protobuf" => protobuf::decode(body),
        "application/yaml" | "application/apply-patch+yaml" | "text/yaml" => {
            serde_yaml::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
        }
        other => Err(ApiError::unsupported_media_type(other)),
    }
}

/// Whether the client asked for metadata only (`as=PartialObjectMetadata` or
/// `as=PartialObjectMetadataList`), as metadata informers do.
fn wants_metadata(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').next())
        .is_some_and(|first| first.contains("as=PartialObjectMetadata"))
}

/// An object as `meta.k8s.io/v1` PartialObjectMetadata: its metadata alone, written from the
/// stored object (not copied out of it first).
#[derive(serde::Serialize)]
struct Partial<'a> {
    #[serde(rename = "apiVersion")]
    api_version: &'static str,
    kind: &'static str,
    metadata: Option<&'a Value>,
}

fn partial(obj: &Value) -> Partial<'_> {
    Partial {
        api_version: "meta.k8s.io/v1",
        kind: "PartialObjectMetadata",
        metadata: obj.get("metadata"),
    }
}

/// A list as the API server writes it, its items written from the store.
#[derive(serde::Serialize)]
struct List<T> {
    #[serde(rename = "apiVersion")]
    api_version: String,
    items: Vec<T>,
    kind: String,
    metadata: Value,
}

fn wants_table(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split(',').next())
        .is_some_and(|first| first.contains("as=Table"))
}

/// Writes an object in the version the client asked for (custom resources are stored once,
/// whatever version wrote them: conversion strategy `None`).
fn present<'a>(rt: &ResourceType, obj: &'a Value) -> Cow<'a, Value> {
    if obj.get("apiVersion").and_then(Value::as_str) == Some(rt.api_version().as_str()) {
        return Cow::Borrowed(obj);
    }
    let mut o = obj.clone();
    o["apiVersion"] = json!(rt.api_version());
    Cow::Owned(o)
}

pub async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    shared
        .requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = uri.path().trim_end_matches('/').to_string();
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let q = parse_query(&uri);
    tracing::debug!(%method, %uri, "request");
    match (method.clone(), segments.as_slice()) {
        (Method::GET, ["version"]) => return json_response(StatusCode::OK, &discovery::version()),
        (Method::GET, ["healthz" | "readyz" | "livez"]) => {
            return (StatusCode::OK, "ok").into_response();
        }
        (Method::GET, ["api"]) => {
            return json_response(
                StatusCode::OK,
                &discovery::api_versions(&shared.server_address),
            );
        }
        (Method::GET, ["apis"]) => {
            return json_response(
                StatusCode::OK,
                &discovery::group_list(&shared.store().registry),
            );
        }
        (Method::GET, ["openapi", "v3"]) => {
            return json_response(
                StatusCode::OK,
                &discovery::openapi_index(&shared.store().registry),
            );
        }
        (Method::GET, ["openapi", "v3", rest @ ..]) => {
            let (g, v) = match rest {
                ["api", v] => ("", *v),
                ["apis", g, v] => (*g, *v),
                _ => ("-", "-"),
            };
            return match discovery::openapi_group_version(&shared.store().registry, g, v) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => error_response(&ApiError::not_found_path(&path)),
            };
        }
        (Method::GET, ["api", v]) => {
            return match discovery::resource_list(&shared.store().registry, "", v) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => error_response(&ApiError::not_found_path(&path)),
            };
        }
        (Method::GET, ["apis", g]) => {
            return match discovery::group(&shared.store().registry, g) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => error_response(&ApiError::not_found_path(&path)),
            };
        }
        (Method::GET, ["apis", g, v]) => {
            return match discovery::resource_list(&shared.store().registry, g, v) {
                Some(doc) => json_response(StatusCode::OK, &doc),
                None => error_response(&ApiError::not_found_path(&path)),
            };
        }
        _ => {}
    }
    // Discovery is open to every authenticated caller, as the system:discovery role makes it.
    let identity = if shared.authorize {
        match authenticate(&shared, &headers) {
            Some(id) => Some(id),
            None => return unauthorized(),
        }
    } else {
        None
    };
    if let (&Method::POST, ["apis", "authorization.k8s.io", "v1", kind]) =
        (&method, segments.as_slice())
        && matches!(
            *kind,
            "selfsubjectaccessreviews" | "selfsubjectrulesreviews"
        )
    {
        return match decode_body(&headers, &body) {
            Ok(asked) => review(&shared, identity.as_ref(), kind, asked),
            Err(e) => error_response(&e),
        };
    }
    let target = match parse_target(&shared.store(), &segments) {
        Ok(t) => t,
        Err(e) => return error_response(&e),
    };
    if let Some(id) = &identity {
        // As the API server's request info does: a request for a namespace object is in that
        // namespace, so a RoleBinding there can let its subjects read it.
        let namespace = if target.rt.is("", "namespaces") {
            target.name.clone()
        } else {
            target.namespace.clone()
        };
        let attrs = crate::rbac::Attributes {
            verb: verb(&method, target.name.is_some(), &q).to_string(),
            group: target.rt.group.clone(),
            resource: target.rt.plural.clone(),
            subresource: target.sub.clone(),
            namespace,
            name: target.name.clone(),
        };
        let policy = shared.store().rbac_policy();
        if !crate::rbac::allowed(&policy, id, &attrs) {
            tracing::debug!(user = %id.user, ?attrs, "forbidden");
            return json_response(
                StatusCode::FORBIDDEN,
                &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": crate::rbac::forbidden_message(id, &attrs), "reason": "Forbidden",
                        "details": forbidden_details(&attrs),
                        "code": 403}),
            );
        }
    }
    if let Some(id) = &identity
        && target.rt.group == "rbac.authorization.k8s.io"
        && matches!(method, Method::POST | Method::PUT)
        && let Err(e) = no_escalation(&shared, id, &target, &headers, &body)
    {
        return error_response(&e);
    }
    let warning = pod_template_warning(&shared, &method, &target, &headers, &body);
    let result = route(&shared, &method, target, &q, &headers, &body, identity).await;
    match result {
        Ok(mut resp) => {
            if let Some(w) = warning.and_then(|w| http::HeaderValue::from_str(&w).ok()) {
                resp.headers_mut().append("Warning", w);
            }
            resp
        }
        Err(e) => {
            tracing::debug!(code = e.code, reason = e.reason, message = %e.message, "request refused");
            error_response(&e)
        }
    }
}

/// Pod Security Admission's warning on a workload whose pod template breaks its namespace's
/// `warn` level (the API server admits the workload and warns; the pods it makes are refused).
fn pod_template_warning(
    shared: &Shared,
    method: &Method,
    t: &Target,
    headers: &HeaderMap,
    body: &[u8],
) -> Option<String> {
    if !matches!(*method, Method::POST | Method::PUT) || t.sub.is_some() {
        return None;
    }
    let template = match (t.rt.group.as_str(), t.rt.plural.as_str()) {
        ("apps", "deployments" | "statefulsets" | "daemonsets" | "replicasets")
        | ("batch", "jobs")
        | ("", "replicationcontrollers") => "/spec/template/spec",
        ("batch", "cronjobs") => "/spec/jobTemplate/spec/template/spec",
        ("", "podtemplates") => "/template/spec",
        _ => return None,
    };
    let store = shared.store();
    if !store.pod_security {
        return None;
    }
    let ns = store.namespace_object(t.namespace.as_deref()?)?;
    let level = ns
        .pointer("/metadata/labels/pod-security.kubernetes.io~1warn")
        .and_then(Value::as_str)
        .and_then(crate::psa::Level::parse)?;
    drop(store);
    let obj = decode_body(headers, body).ok()?;
    let v = crate::psa::violations(obj.pointer(template)?, level);
    (!v.is_empty()).then(|| {
        format!(
            "299 - \"would violate PodSecurity \\\"{}:latest\\\": {}\"",
            level.as_str(),
            v.join(", ").replace('"', "\\\"")
        )
    })
}

/// Escalation prevention on create and replace of Roles, ClusterRoles and their bindings: the
/// caller must hold what it grants, or have `escalate` on the role (to write it) or `bind` on
/// it (to bind it), as Kubernetes' RBAC storage checks. Patches are not checked (a gap,
/// docs/development/kubesim.md).
fn no_escalation(
    shared: &Shared,
    id: &crate::rbac::Identity,
    t: &Target,
    headers: &HeaderMap,
    body: &[u8],
) -> ApiResult<()> {
    let obj = decode_body(headers, body)?;
    let policy = shared.store().rbac_policy();
    let ns = t.namespace.as_deref();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .or(t.name.as_deref())
        .unwrap_or_default()
        .to_string();
    let may = |verb: &str, resource: &str, role: &str| {
        crate::rbac::allowed(
            &policy,
            id,
            &crate::rbac::Attributes {
                verb: verb.into(),
                group: "rbac.authorization.k8s.io".into(),
                resource: resource.into(),
                subresource: None,
                namespace: ns.map(String::from),
                name: Some(role.into()),
            },
        )
    };
    let missing = match t.rt.plural.as_str() {
        "roles" | "clusterroles" => {
            if may("escalate", &t.rt.plural, &name) {
                return Ok(());
            }
            let rules: Vec<&Value> = obj
                .get("rules")
                .and_then(Value::as_array)
                .map(|r| r.iter().collect())
                .unwrap_or_default();
            crate::rbac::not_held(&policy, id, &rules, ns)
        }
        "rolebindings" | "clusterrolebindings" => {
            let role_ref = obj.get("roleRef").cloned().unwrap_or(Value::Null);
            let kind = role_ref
                .get("kind")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let role = role_ref
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let resource = if kind == "ClusterRole" {
                "clusterroles"
            } else {
                "roles"
            };
            if may("bind", resource, role) {
                return Ok(());
            }
            // As the API server does: the rules of a role that does not exist cannot be held.
            let Some(rules) = crate::rbac::granted_by(&policy, &role_ref, ns) else {
                return Err(ApiError::not_found(
                    "rbac.authorization.k8s.io",
                    resource,
                    role,
                ));
            };
            crate::rbac::not_held(&policy, id, &rules, ns)
        }
        _ => Vec::new(),
    };
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            &t.rt.group,
            &t.rt.plural,
            &name,
            &crate::rbac::escalation_message(id, &missing),
        ))
    }
}

/// A SelfSubjectAccessReview (may the caller do this?) or SelfSubjectRulesReview (what may
/// it do in a namespace?), answered from RBAC as the API server does; nothing is stored. With
/// authorization off, the answer is yes to everything.
fn review(
    shared: &Shared,
    identity: Option<&crate::rbac::Identity>,
    kind: &str,
    asked: Value,
) -> Response {
    let policy = shared.store().rbac_policy();
    let masters = crate::rbac::Identity {
        user: "kubesim".into(),
        groups: vec!["system:masters".into(), "system:authenticated".into()],
    };
    let id = identity.unwrap_or(&masters);
    let spec = asked.get("spec").cloned().unwrap_or_else(|| json!({}));
    let text = |v: &Value, k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let status = if kind == "selfsubjectrulesreviews" {
        let (resources, paths) = crate::rbac::rules_review(&policy, id, &text(&spec, "namespace"));
        json!({"resourceRules": resources, "nonResourceRules": paths, "incomplete": false})
    } else if let Some(r) = spec.get("resourceAttributes") {
        let opt = |k: &str| Some(text(r, k)).filter(|s| !s.is_empty());
        let attrs = crate::rbac::Attributes {
            verb: text(r, "verb"),
            group: text(r, "group"),
            resource: text(r, "resource"),
            subresource: opt("subresource"),
            namespace: opt("namespace"),
            name: opt("name"),
        };
        let allowed = crate::rbac::allowed(&policy, id, &attrs);
        if allowed {
            json!({"allowed": true, "reason": "allowed by RBAC"})
        } else {
            json!({"allowed": false})
        }
    } else if let Some(n) = spec.get("nonResourceAttributes") {
        let allowed = crate::rbac::allowed_path(&policy, id, &text(n, "path"), &text(n, "verb"));
        json!({"allowed": allowed})
    } else {
        return error_response(&ApiError::bad_request(
            "spec: one of resourceAttributes or nonResourceAttributes is required",
        ));
    };
    let kind_name = if kind == "selfsubjectrulesreviews" {
        "SelfSubjectRulesReview"
    } else {
        "SelfSubjectAccessReview"
    };
    json_response(
        StatusCode::CREATED,
        &json!({"kind": kind_name, "apiVersion": "authorization.k8s.io/v1",
                "metadata": {"creationTimestamp": null}, "spec": spec, "status": status}),
    )
}

async fn route(
    shared: &Arc<Shared>,
    method: &Method,
    t: Target,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
    identity: Option<crate::rbac::Identity>,
) -> ApiResult<Response> {
    let rt = t.rt.clone();
    let ns = t.namespace.clone().unwrap_or_default();
    if rt.group == "metrics.k8s.io" {
        if method != Method::GET || flag(q, "watch") || t.sub.is_some() {
            return Err(ApiError::method_not_allowed(format!(
                "the resource metrics API serves get and list only, not {method}"
            )));
        }
        let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?;
        let usages = shared
            .usages
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let body = crate::metrics::get(
            &shared.store(),
            &usages,
            &rt.plural,
            t.namespace.as_deref(),
            t.name.as_deref(),
            &labels,
        )?;
        return Ok(json_response(StatusCode::OK, &body));
    }
    let part = match t.sub.as_deref() {
        None => Part::Main,
        Some("status") if rt.status_subresource => Part::Status,
        Some("token") if rt.is("", "serviceaccounts") => Part::Main,
        Some("finalize") if rt.is("", "namespaces") => Part::Main,
        Some(s) => return Err(ApiError::not_found_path(&format!("{}/{s}", rt.plural))),
    };
    let mut ctx = write_ctx(q, headers);
    ctx.user = identity;
    match (method, t.name.as_deref()) {
        (&Method::GET, None) if flag(q, "watch") => {
            watch(shared.clone(), rt, t.namespace, q, headers).await
        }
        (&Method::GET, None) => {
            let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?;
            let fields = FieldSelector::parse(
                q.get("fieldSelector").map_or("", String::as_str),
                &rt.field_selectors,
            )?;
            let limit = q
                .get("limit")
                .and_then(|l| l.parse::<usize>().ok())
                .filter(|l| *l > 0);
            let page = shared.store().list(
                &rt,
                t.namespace.as_deref(),
                &labels,
                &fields,
                limit,
                q.get("continue")
                    .map(String::as_str)
                    .filter(|c| !c.is_empty()),
            )?;
            let mut meta = json!({"resourceVersion": page.resource_version.to_string()});
            if let Some(c) = page.continue_token {
                meta["continue"] = json!(c);
            }
            if let Some(r) = page.remaining {
                meta["remainingItemCount"] = json!(r);
            }
            if wants_table(headers) {
                let objs: Vec<Value> = page
                    .items
                    .iter()
                    .map(|o| present(&rt, o).into_owned())
                    .collect();
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(&rt, &objs, meta, q.get("includeObject").map(String::as_str)),
                ));
            }
            if wants_metadata(headers) {
                return Ok(json_response(
                    StatusCode::OK,
                    &List {
                        api_version: "meta.k8s.io/v1".into(),
                        items: page.items.iter().map(|o| partial(o)).collect(),
                        kind: "PartialObjectMetadataList".into(),
                        metadata: meta,
                    },
                ));
            }
            Ok(json_response(
                StatusCode::OK,
                &List {
                    api_version: rt.api_version(),
                    items: page.items.iter().map(|o| present(&rt, o)).collect(),
                    kind: format!("{}List", rt.kind),
                    metadata: meta,
                },
            ))
        }
        (&Method::GET, Some(name)) => {
            let obj = shared.store().get(&rt, &ns, name)?;
            if wants_table(headers) {
                let meta = json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or_default()});
                return Ok(json_response(
                    StatusCode::OK,
                    &table::table(
                        &rt,
                        &[present(&rt, &obj).into_owned()],
                        meta,
                        q.get("includeObject").map(String::as_str),
                    ),
                ));
            }
            if wants_metadata(headers) {
                return Ok(json_response(StatusCode::OK, &partial(&obj)));
            }
            Ok(json_response(StatusCode::OK, &present(&rt, &obj)))
        }
        (&Method::POST, None) => {
            let obj = decode_body(headers, body)?;
            let created = shared.store().create(&rt, &ns, obj, &ctx)?;
            Ok(json_response(StatusCode::CREATED, &created))
        }
        (&Method::POST, Some(name)) if t.sub.as_deref() == Some("token") => {
            let req = decode_body(headers, body)?;
            let token = shared.store().token_request(&ns, name, &req)?;
            Ok(json_response(StatusCode::CREATED, &token))
        }
        (&Method::PUT, Some(name)) if t.sub.as_deref() == Some("finalize") => {
            let obj = decode_body(headers, body)?;
            let mut store = shared.store();
            let mut live = (*store.get(&rt, "", name)?).clone();
            live["spec"]["finalizers"] = obj
                .pointer("/spec/finalizers")
                .cloned()
                .unwrap_or(json!([]));
            if let Some(rv) = obj.pointer("/metadata/resourceVersion") {
                live["metadata"]["resourceVersion"] = rv.clone();
            }
            let updated = store.update(&rt, "", name, live, &ctx, Part::Main)?;
            Ok(json_response(StatusCode::OK, &updated))
        }
        (&Method::PUT, Some(name)) => {
            let obj = decode_body(headers, body)?;
            let updated = shared.store().update(&rt, &ns, name, obj, &ctx, part)?;
            Ok(json_response(StatusCode::OK, &present(&rt, &updated)))
        }
        (&Method::PATCH, Some(name)) => {
            let kind = match content_type(headers).as_str() {
                "application/json-patch+json" => PatchKind::Json,
                "application/merge-patch+json" => PatchKind::Merge,
                "application/strategic-merge-patch+json" => PatchKind::Strategic,
                "application/apply-patch+yaml" | "application/apply-patch+json" => PatchKind::Apply,
                other => return Err(ApiError::unsupported_media_type(other)),
            };
            let mut store = shared.store();
            if kind == PatchKind::Apply {
                let config = decode_body(headers, body).or_else(|_| {
                    serde_yaml::from_slice(body)
                        .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
                })?;
                let existed = store.get(&rt, &ns, name).is_ok();
                let out = store.apply(&rt, &ns, name, config, &ctx, part)?;
                let code = if existed {
                    StatusCode::OK
                } else {
                    StatusCode::CREATED
                };
                return Ok(json_response(code, &present(&rt, &out)));
            }
            let out = store.patch(&rt, &ns, name, kind, body, &ctx, part)?;
            Ok(json_response(StatusCode::OK, &present(&rt, &out)))
        }
        (&Method::DELETE, name) => {
            let opts_body: Value = if body.is_empty() {
                json!({})
            } else {
                decode_body(headers, body)?
            };
            let policy = q
                .get("propagationPolicy")
                .map(String::as_str)
                .or_else(|| opts_body["propagationPolicy"].as_str())
                .map(str::to_string)
                .or_else(|| {
                    match opts_body["orphanDependents"]
                        .as_bool()
                        .or_else(|| q.get("orphanDependents").map(|v| v == "true"))
                    {
                        Some(true) => Some("Orphan".into()),
                        _ => None,
                    }
                });
            let propagation = match policy.as_deref() {
                Some("Foreground") => Propagation::Foreground,
                Some("Orphan") => Propagation::Orphan,
                Some("Background") | None => Propagation::Background,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "unknown propagationPolicy {other:?}"
                    )));
                }
            };
            let opts = DeleteOpts {
                propagation,
                precondition_uid: opts_body
                    .pointer("/preconditions/uid")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                precondition_rv: opts_body
                    .pointer("/preconditions/resourceVersion")
                    .and_then(Value::as_str)
                    .map(str::to_string),
                grace_period: q
                    .get("gracePeriodSeconds")
                    .and_then(|g| g.parse().ok())
                    .or_else(|| opts_body["gracePeriodSeconds"].as_i64()),
            };
            let mut store = shared.store();
            match name {
                Some(name) => {
                    let out = store.delete(&rt, &ns, name, &opts, &ctx)?;
                    Ok(json_response(StatusCode::OK, &present(&rt, &out)))
                }
                None => {
                    let labels =
                        LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?;
                    let fields = FieldSelector::parse(
                        q.get("fieldSelector").map_or("", String::as_str),
                        &rt.field_selectors,
                    )?;
                    let items = store.delete_collection(
                        &rt,
                        t.namespace.as_deref(),
                        &labels,
                        &fields,
                        &opts,
                        &ctx,
                    )?;
                    Ok(json_response(
                        StatusCode::OK,
                        &json!({
                            "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(),
                            "metadata": {"resourceVersion": store.resource_version().to_string()}, "items": items
                        }),
                    ))
                }
            }
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))),
    }
}

/// How a change shows to a watch with a selector: objects leaving the selection are DELETED to
/// it and objects entering it are ADDED.
fn visible(e: &Event, labels: &LabelSelector, fields: &FieldSelector) -> Option<EventType> {
    let now = labels.matches(&e.object) && fields.matches(&e.object);
    let before = e
        .previous
        .as_ref()
        .is_some_and(|p| labels.matches(p) && fields.matches(p));
    match e.kind {
        EventType::Added => now.then_some(EventType::Added),
        EventType::Deleted => now.then_some(EventType::Deleted),
        EventType::Modified => match (before, now) {
            (true, true) => Some(EventType::Modified),
            (false, true) => Some(EventType::Added),
            (true, false) => Some(EventType::Deleted),
            (false, false) => None,
        },
    }
}

/// One watch event's line, `type` first and then `object`, in the order the API server writes
/// them (its `WatchEvent` struct's): a client decoding the event as a tagged union reads the
/// tag before the object instead of buffering the object to find it.
/// At most how many events a watch writes at once.
const WATCH_CHUNK: usize = 256;

fn frame<T: serde::Serialize + ?Sized>(kind: &str, object: &T) -> Bytes {
    let mut line = b"{\"type\":".to_vec();
    let written = serde_json::to_writer(&mut line, kind).and_then(|()| {
        line.extend_from_slice(b",\"object\":");
        serde_json::to_writer(&mut line, object)
    });
    match written {
        Ok(()) => {
            line.extend_from_slice(b"}\n");
            Bytes::from(line)
        }
        // (a JSON value always serializes; nothing is sent rather than half a line)
        Err(_) => Bytes::new(),
    }
}

async fn watch(
    shared: Arc<Shared>,
    rt: ResourceType,
    ns: Option<String>,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
) -> ApiResult<Response> {
    let labels = LabelSelector::parse(q.get("labelSelector").map_or("", String::as_str))?;
    let fields = FieldSelector::parse(
        q.get("fieldSelector").map_or("", String::as_str),
        &rt.field_selectors,
    )?;
    let bookmarks = flag(q, "allowWatchBookmarks");
    let send_initial = flag(q, "sendInitialEvents");
    let as_table = wants_table(headers);
    let as_metadata = wants_metadata(headers);
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(1800);
    let rv_param = q.get("resourceVersion").map(String::as_str).unwrap_or("");
    let from: Option<u64> = match rv_param {
        "" | "0" => None,
        v => Some(
            v.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid resource version: {v}")))?,
        ),
    };
    let mut epoch = shared.watch_epoch.subscribe();
    let (initial, start_rv, history, mut rx) = {
        let store = shared.store();
        let synthetic = from.is_none() || send_initial;
        let initial = if synthetic {
            store
                .list(&rt, ns.as_deref(), &labels, &fields, None, None)?
                .items
        } else {
            Vec::new()
        };
        let start_rv = store.resource_version();
        let (history, rx) = match store.watch(if synthetic { None } else { from }) {
            Ok(v) => v,
            Err(e) => {
                // As the API server's watch cache does: a 200 with one ERROR event.
                let body = frame("ERROR", &e.to_status());
                return Ok(Response::builder()
                    .status(StatusCode::OK)
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(Body::from(body))
                    .unwrap_or_default());
            }
        };
        (initial, start_rv, history, rx)
    };
    let (tx, body_rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    let interval = shared.bookmark_interval;
    let key = rt.key();
    tokio::spawn(async move {
        let wrap = |kind: &str, obj: &Value| -> Bytes {
            let obj = present(&rt, obj);
            if as_table {
                frame(
                    kind,
                    &table::table(
                        &rt,
                        std::slice::from_ref(&*obj),
                        json!({"resourceVersion": obj.pointer("/metadata/resourceVersion").cloned().unwrap_or_default()}),
                        None,
                    ),
                )
            } else if as_metadata {
                frame(kind, &partial(&obj))
            } else {
                frame(kind, &*obj)
            }
        };
        let bookmark = |rv: u64, initial_end: bool| -> Bytes {
            let mut meta = json!({"resourceVersion": rv.to_string()});
            if initial_end {
                meta["annotations"] = json!({"k8s.io/initial-events-end": "true"});
            }
            frame(
                "BOOKMARK",
                &json!({"kind": rt.kind, "apiVersion": rt.api_version(), "metadata": meta}),
            )
        };
        // Written in chunks of events, as the API server writes what is ready before it flushes.
        for objs in initial.chunks(WATCH_CHUNK) {
            let mut chunk = Vec::new();
            for obj in objs {
                chunk.extend_from_slice(&wrap("ADDED", obj));
            }
            if tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                return;
            }
        }
        if send_initial && bookmarks && tx.send(Ok(bookmark(start_rv, true))).await.is_err() {
            return;
        }
        let mut last_rv = start_rv;
        let in_scope = |e: &Event| e.key == key && ns.as_ref().is_none_or(|n| *n == e.namespace);
        for e in &history {
            last_rv = last_rv.max(e.rv);
            if !in_scope(e) {
                continue;
            }
            if let Some(kind) = visible(e, &labels, &fields)
                && tx.send(Ok(wrap(kind.as_str(), &e.object))).await.is_err()
            {
                return;
            }
        }
        let deadline = tokio::time::sleep(Duration::from_secs(timeout));
        tokio::pin!(deadline);
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            tokio::select! {
                _ = &mut deadline => return,
                _ = epoch.changed() => return,
                _ = tx.closed() => return,
                _ = ticker.tick(), if bookmarks => {
                    if tx.send(Ok(bookmark(last_rv, false))).await.is_err() {
                        return;
                    }
                }
                msg = rx.recv() => match msg {
                    Ok(e) => {
                        // This event and whatever else is ready, in one write: the API server
                        // flushes a watch once its queue is empty, not after every event.
                        let mut chunk = Vec::new();
                        let mut next = Some(e);
                        let mut ended = false;
                        let mut taken = 0;
                        while let Some(e) = next.take() {
                            last_rv = last_rv.max(e.rv);
                            if in_scope(&e)
                                && let Some(kind) = visible(&e, &labels, &fields)
                            {
                                chunk.extend_from_slice(&wrap(kind.as_str(), &e.object));
                                taken += 1;
                            }
                            if taken < WATCH_CHUNK {
                                match rx.try_recv() {
                                    Ok(e) => next = Some(e),
                                    Err(TryRecvError::Empty) => {}
                                    Err(TryRecvError::Lagged(_) | TryRecvError::Closed) => ended = true,
                                }
                            }
                        }
                        if !chunk.is_empty() && tx.send(Ok(Bytes::from(chunk))).await.is_err() {
                            return;
                        }
                        if ended {
                            return;
                        }
                    }
                    // A watcher too slow to keep up is dropped, as the API server does; it re-watches.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                }
            }
        }
    });
    let stream = tokio_stream::wrappers::ReceiverStream::new(body_rx);
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CACHE_CONTROL, "no-cache, private")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::internal(e.to_string()))
}
