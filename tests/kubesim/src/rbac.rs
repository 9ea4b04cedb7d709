//! Authorization as the API server's RBAC authorizer decides it, from the Roles, ClusterRoles
//! and bindings in the store: who (a user and its groups) may do what (a verb on a resource,
//! maybe a subresource and a name, in a namespace or cluster-wide). Pure: the caller gathers the
//! objects; [`allowed`] judges.
//!
//! Followed from Kubernetes' `plugin/pkg/auth/authorizer/rbac`: a request is allowed when any
//! rule of any role bound to the user (ClusterRoleBindings everywhere, RoleBindings in their
//! namespace) matches it; `*` matches any verb, group or resource; `resource/subresource` and
//! `*/subresource` name subresources; `resourceNames` limit a rule to those names (and so never
//! match a `list`, `watch`, `deletecollection` or a `create` without a name); ClusterRoles with
//! an `aggregationRule` hold the rules of every ClusterRole their selectors match. Members of
//! `system:masters` may do anything. Every authenticated caller also holds what Kubernetes'
//! bootstrap roles `system:basic-user`, `system:discovery` and `system:public-info-viewer` give
//! `system:authenticated` ([`BOOTSTRAP`]): asking reviews of itself, and reading discovery, the
//! OpenAPI documents, health and version. Non-resource URLs are judged by `nonResourceURLs`
//! rules (an exact path, or a prefix ending in `*`).

use std::sync::Arc;

use serde_json::Value;

use crate::selector::LabelSelector;

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

impl Identity {
    /// A ServiceAccount's identity, with the groups Kubernetes gives it.
    pub fn service_account(namespace: &str, name: &str) -> Self {
        Self {
            user: format!("system:serviceaccount:{namespace}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{namespace}"),
                "system:authenticated".into(),
            ],
        }
    }
}

/// What is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub subresource: Option<String>,
    /// `None` for a cluster-scoped request.
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// The RBAC objects of the cluster, shared with the store (never copied per request).
#[derive(Debug, Default, Clone)]
pub struct Policy {
    pub roles: Vec<Arc<Value>>,
    pub cluster_roles: Vec<Arc<Value>>,
    pub role_bindings: Vec<Arc<Value>>,
    pub cluster_role_bindings: Vec<Arc<Value>>,
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn meta<'a>(o: &'a Value, key: &str) -> &'a str {
    o.pointer(&format!("/metadata/{key}"))
        .and_then(Value::as_str)
        .unwrap_or_default()
}

fn subject_matches(s: &Value, id: &Identity, binding_ns: &str) -> bool {
    let kind = s.get("kind").and_then(Value::as_str).unwrap_or_default();
    let name = s.get("name").and_then(Value::as_str).unwrap_or_default();
    match kind {
        "User" => id.user == name,
        "Group" => id.groups.iter().any(|g| g == name),
        "ServiceAccount" => {
            let ns = s
                .get("namespace")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            id.user == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn rule_matches(rule: &Value, a: &Attributes) -> bool {
    let verbs = strs(rule.get("verbs"));
    if !verbs.iter().any(|v| *v == "*" || *v == a.verb) {
        return false;
    }
    let groups = strs(rule.get("apiGroups"));
    if !groups.iter().any(|g| *g == "*" || *g == a.group) {
        return false;
    }
    let wanted = match &a.subresource {
        Some(sub) => format!("{}/{sub}", a.resource),
        None => a.resource.clone(),
    };
    let resources = strs(rule.get("resources"));
    let resource_ok = resources.iter().any(|r| {
        *r == "*"
            || *r == wanted
            || a.subresource
                .as_deref()
                .is_some_and(|sub| *r == format!("*/{sub}"))
    });
    if !resource_ok {
        return false;
    }
    let names = strs(rule.get("resourceNames"));
    names.is_empty() || a.name.as_deref().is_some_and(|n| names.contains(&n))
}

/// The rules of a ClusterRole, with those it aggregates.
fn cluster_role_rules<'a>(policy: &'a Policy, role: &'a Value) -> Vec<&'a Value> {
    let mut rules: Vec<&Value> = role
        .get("rules")
        .and_then(Value::as_array)
        .map(|r| r.iter().collect())
        .unwrap_or_default();
    let selectors = role
        .pointer("/aggregationRule/clusterRoleSelectors")
        .and_then(Value::as_array);
    for sel in selectors.into_iter().flatten() {
        let Ok(selector) = LabelSelector::from_json(sel) else {
            continue;
        };
        for other in &policy.cluster_roles {
            if meta(other, "name") == meta(role, "name") {
                continue;
            }
            if selector.matches(other) {
                rules.extend(
                    other
                        .get("rules")
                        .and_then(Value::as_array)
                        .into_iter()
                        .flatten(),
                );
            }
        }
    }
    rules
}

/// The rules `role_ref` names, for a binding in `binding_ns`; `None` when the role does not exist.
fn role_rules<'a>(
    policy: &'a Policy,
    role_ref: &Value,
    binding_ns: Option<&str>,
) -> Option<Vec<&'a Value>> {
    let kind = role_ref
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let name = role_ref
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    match (kind, binding_ns) {
        ("ClusterRole", _) => policy
            .cluster_roles
            .iter()
            .find(|r| meta(r, "name") == name)
            .map(|r| cluster_role_rules(policy, r)),
        ("Role", Some(ns)) => policy
            .roles
            .iter()
            .find(|r| meta(r, "name") == name && meta(r, "namespace") == ns)
            .map(|r| {
                r.get("rules")
                    .and_then(Value::as_array)
                    .map(|r| r.iter().collect())
                    .unwrap_or_default()
            }),
        _ => None,
    }
}

/// Every rule that applies to `id` for a request in `namespace` (`None`: cluster-wide).
pub fn rules_for<'a>(policy: &'a Policy, id: &Identity, namespace: Option<&str>) -> Vec<&'a Value> {
    let mut out = Vec::new();
    for b in &policy.cluster_role_bindings {
        if b.get("subjects")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|s| subject_matches(s, id, "")))
        {
            out.extend(
                role_rules(policy, b.get("roleRef").unwrap_or(&Value::Null), None)
                    .unwrap_or_default(),
            );
        }
    }
    if let Some(ns) = namespace {
        for b in policy
            .role_bindings
            .iter()
            .filter(|b| meta(b, "namespace") == ns)
        {
            let bound = b
                .get("subjects")
                .and_then(Value::as_array)
                .is_some_and(|s| s.iter().any(|s| subject_matches(s, id, ns)));
            if bound {
                out.extend(
                    role_rules(policy, b.get("roleRef").unwrap_or(&Value::Null), Some(ns))
                        .unwrap_or_default(),
                );
            }
        }
    }
    out
}

/// The rules a binding's `roleRef` grants, in the binding's namespace (`None`: cluster-wide);
/// `None` when the role does not exist.
pub fn granted_by<'a>(
    policy: &'a Policy,
    role_ref: &Value,
    namespace: Option<&str>,
) -> Option<Vec<&'a Value>> {
    role_rules(policy, role_ref, namespace)
}

fn rule_text(r: &Value) -> String {
    let list = |k: &str| {
        strs(r.get(k))
            .iter()
            .map(|s| format!("{s:?}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    if r.get("nonResourceURLs").is_some() {
        format!(
            "{{NonResourceURLs:[{}], Verbs:[{}]}}",
            list("nonResourceURLs"),
            list("verbs")
        )
    } else {
        let names = if r.get("resourceNames").is_some() {
            format!(", ResourceNames:[{}]", list("resourceNames"))
        } else {
            String::new()
        };
        format!(
            "{{APIGroups:[{}], Resources:[{}]{names}, Verbs:[{}]}}",
            list("apiGroups"),
            list("resources"),
            list("verbs")
        )
    }
}

/// Escalation prevention, as Kubernetes' RBAC storage does it: a caller may grant (in a Role or
/// ClusterRole, or by binding one) only permissions it already holds where they are granted.
/// Answers the rules it does not hold, as the API server lists them; empty when it may.
pub fn not_held(
    policy: &Policy,
    id: &Identity,
    rules: &[&Value],
    namespace: Option<&str>,
) -> Vec<String> {
    if id.groups.iter().any(|g| g == "system:masters") {
        return Vec::new();
    }
    let mut missing = Vec::new();
    for r in rules {
        let verbs = strs(r.get("verbs"));
        let held = if let Some(urls) = r.get("nonResourceURLs") {
            strs(Some(urls))
                .iter()
                .all(|u| verbs.iter().all(|v| allowed_path(policy, id, u, v)))
        } else {
            let groups = strs(r.get("apiGroups"));
            let resources = strs(r.get("resources"));
            let names = strs(r.get("resourceNames"));
            let names: Vec<Option<&str>> = if names.is_empty() {
                vec![None]
            } else {
                names.into_iter().map(Some).collect()
            };
            groups.iter().all(|g| {
                resources.iter().all(|res| {
                    let (resource, sub) = match res.split_once('/') {
                        Some((r, s)) => (r, Some(s.to_string())),
                        None => (*res, None),
                    };
                    verbs.iter().all(|v| {
                        names.iter().all(|n| {
                            let a = Attributes {
                                verb: v.to_string(),
                                group: g.to_string(),
                                resource: resource.to_string(),
                                subresource: sub.clone(),
                                namespace: namespace.map(String::from),
                                name: n.map(String::from),
                            };
                            // held by a rule of the caller's, literally ("*" only by "*")
                            rules_for(policy, id, namespace)
                                .iter()
                                .any(|mine| rule_matches(mine, &a))
                        })
                    })
                })
            })
        };
        if !held {
            missing.push(rule_text(r));
        }
    }
    missing
}

/// The API server's refusal of an escalation.
pub fn escalation_message(id: &Identity, missing: &[String]) -> String {
    format!(
        "user {:?} (groups={:?}) is attempting to grant RBAC permissions not currently held:\n{}",
        id.user,
        id.groups,
        missing.join("\n")
    )
}

/// What Kubernetes' bootstrap ClusterRoles bind to every authenticated user
/// (`system:basic-user`, `system:discovery`, `system:public-info-viewer`).
pub static BOOTSTRAP: std::sync::LazyLock<Vec<Value>> = std::sync::LazyLock::new(|| {
    vec![
        serde_json::json!({"apiGroups": ["authorization.k8s.io"],
            "resources": ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], "verbs": ["create"]}),
        serde_json::json!({"apiGroups": ["authentication.k8s.io"],
            "resources": ["selfsubjectreviews"], "verbs": ["create"]}),
        serde_json::json!({"nonResourceURLs": ["/api", "/api/*", "/apis", "/apis/*", "/healthz",
            "/livez", "/readyz", "/openapi", "/openapi/*", "/version", "/version/"], "verbs": ["get"]}),
    ]
});

fn authenticated(id: &Identity) -> bool {
    id.groups.iter().any(|g| g == "system:authenticated")
}

/// Whether RBAC allows `verb` on the non-resource `path` (`/healthz`, `/apis/…`).
pub fn allowed_path(policy: &Policy, id: &Identity, path: &str, verb: &str) -> bool {
    if id.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    let bootstrap = authenticated(id)
        .then(|| BOOTSTRAP.iter())
        .into_iter()
        .flatten();
    rules_for(policy, id, None)
        .into_iter()
        .chain(bootstrap)
        .any(|r| {
            let verbs = strs(r.get("verbs"));
            let urls = strs(r.get("nonResourceURLs"));
            verbs.iter().any(|v| *v == "*" || *v == verb)
                && urls.iter().any(|u| match u.strip_suffix('*') {
                    Some(prefix) => path.starts_with(prefix),
                    None => *u == path,
                })
        })
}

/// What a SelfSubjectRulesReview answers for `id` in `namespace`: its resource rules and its
/// non-resource rules, as the API server lists them (bootstrap rules included).
pub fn rules_review(policy: &Policy, id: &Identity, namespace: &str) -> (Vec<Value>, Vec<Value>) {
    if id.groups.iter().any(|g| g == "system:masters") {
        return (
            vec![serde_json::json!({"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]})],
            vec![serde_json::json!({"verbs": ["*"], "nonResourceURLs": ["*"]})],
        );
    }
    let bootstrap = authenticated(id)
        .then(|| BOOTSTRAP.iter())
        .into_iter()
        .flatten();
    let mut resources = Vec::new();
    let mut paths = Vec::new();
    for r in rules_for(policy, id, Some(namespace))
        .into_iter()
        .chain(bootstrap)
    {
        let verbs = r
            .get("verbs")
            .cloned()
            .unwrap_or_else(|| serde_json::json!([]));
        if let Some(urls) = r.get("nonResourceURLs") {
            paths.push(serde_json::json!({"verbs": verbs, "nonResourceURLs": urls}));
        } else {
            let mut rule = serde_json::json!({
                "verbs": verbs,
                "apiGroups": r.get("apiGroups").cloned().unwrap_or_else(|| serde_json::json!([])),
                "resources": r.get("resources").cloned().unwrap_or_else(|| serde_json::json!([])),
            });
            if let Some(names) = r.get("resourceNames") {
                rule["resourceNames"] = names.clone();
            }
            resources.push(rule);
        }
    }
    (resources, paths)
}

/// Whether RBAC allows the request.
pub fn allowed(policy: &Policy, id: &Identity, a: &Attributes) -> bool {
    if id.groups.iter().any(|g| g == "system:masters") {
        return true;
    }
    // A create names no object: a rule limited to names cannot allow it.
    let a = if a.verb == "create" && a.subresource.is_none() {
        Attributes {
            name: None,
            ..a.clone()
        }
    } else {
        a.clone()
    };
    let bootstrap = authenticated(id)
        .then(|| BOOTSTRAP.iter())
        .into_iter()
        .flatten();
    rules_for(policy, id, a.namespace.as_deref())
        .into_iter()
        .chain(bootstrap)
        .any(|r| r.get("nonResourceURLs").is_none() && rule_matches(r, &a))
}

/// The API server's 403 message for a refused request.
pub fn forbidden_message(id: &Identity, a: &Attributes) -> String {
    let resource = match &a.subresource {
        Some(s) => format!("{}/{s}", a.resource),
        None => a.resource.clone(),
    };
    let object = match &a.name {
        Some(n) => format!("{resource} \"{n}\" is forbidden"),
        None => format!("{resource} is forbidden"),
    };
    let scope = match &a.namespace {
        Some(ns) => format!(" in the namespace \"{ns}\""),
        None => " at the cluster scope".to_string(),
    };
    format!(
        "{object}: User \"{}\" cannot {} resource \"{resource}\" in API group \"{}\"{scope}",
        id.user, a.verb, a.group
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn attrs(
        verb: &str,
        group: &str,
        resource: &str,
        ns: Option<&str>,
        name: Option<&str>,
    ) -> Attributes {
        Attributes {
            verb: verb.into(),
            group: group.into(),
            resource: resource.into(),
            subresource: None,
            namespace: ns.map(String::from),
            name: name.map(String::from),
        }
    }

    fn arcs(v: Vec<Value>) -> Vec<Arc<Value>> {
        v.into_iter().map(Arc::new).collect()
    }

    fn policy() -> Policy {
        Policy {
            cluster_roles: arcs(vec![
                json!({"metadata": {"name": "reader"}, "rules": [
                    {"apiGroups": [""], "resources": ["pods", "pods/log"], "verbs": ["get", "list"]}]}),
                json!({"metadata": {"name": "lease", "labels": {"agg": "yes"}}, "rules": [
                    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "resourceNames": ["one"], "verbs": ["get", "update"]}]}),
                json!({"metadata": {"name": "aggregate"}, "aggregationRule": {"clusterRoleSelectors": [{"matchLabels": {"agg": "yes"}}]}, "rules": []}),
                json!({"metadata": {"name": "scale-anything"}, "rules": [
                    {"apiGroups": ["*"], "resources": ["*/scale"], "verbs": ["*"]}]}),
            ]),
            roles: arcs(vec![
                json!({"metadata": {"name": "cm", "namespace": "a"}, "rules": [
                {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["*"]}]}),
            ]),
            role_bindings: arcs(vec![
                json!({"metadata": {"name": "b", "namespace": "a"}, "roleRef": {"kind": "Role", "name": "cm"},
                       "subjects": [{"kind": "ServiceAccount", "name": "app"}]}),
                json!({"metadata": {"name": "r", "namespace": "a"}, "roleRef": {"kind": "ClusterRole", "name": "reader"},
                       "subjects": [{"kind": "Group", "name": "system:serviceaccounts:a"}]}),
            ]),
            cluster_role_bindings: arcs(vec![
                json!({"metadata": {"name": "agg"}, "roleRef": {"kind": "ClusterRole", "name": "aggregate"},
                       "subjects": [{"kind": "User", "name": "ops"}]}),
                json!({"metadata": {"name": "scale"}, "roleRef": {"kind": "ClusterRole", "name": "scale-anything"},
                       "subjects": [{"kind": "User", "name": "scaler"}]}),
            ]),
        }
    }

    #[test]
    fn nobody_grants_what_it_does_not_hold() {
        let p = policy();
        let app = Identity::service_account("a", "app");
        // it holds every configmap verb in a: it may bind the Role cm there, not the reader
        // ClusterRole's pods/log nor anything in b
        let cm =
            granted_by(&p, &json!({"kind": "Role", "name": "cm"}), Some("a")).unwrap_or_default();
        assert!(not_held(&p, &app, &cm, Some("a")).is_empty());
        let star = json!({"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]});
        let missing = not_held(&p, &app, &[&star], Some("a"));
        assert_eq!(
            missing,
            ["{APIGroups:[\"*\"], Resources:[\"*\"], Verbs:[\"*\"]}"]
        );
        assert!(!not_held(&p, &app, &cm, Some("b")).is_empty());
        assert!(
            granted_by(
                &p,
                &json!({"kind": "ClusterRole", "name": "missing"}),
                Some("a")
            )
            .is_none()
        );
        let masters = Identity {
            user: "root".into(),
            groups: vec!["system:masters".into()],
        };
        assert!(not_held(&p, &masters, &[&star], None).is_empty());
    }

    #[test]
    fn every_authenticated_user_may_ask_about_itself_and_read_discovery() {
        let p = policy();
        let app = Identity::service_account("a", "app");
        assert!(allowed(
            &p,
            &app,
            &attrs(
                "create",
                "authorization.k8s.io",
                "selfsubjectaccessreviews",
                None,
                None
            )
        ));
        assert!(allowed_path(&p, &app, "/apis/apps/v1", "get"));
        assert!(!allowed_path(&p, &app, "/metrics", "get"));
        let (resources, paths) = rules_review(&p, &app, "a");
        assert!(
            resources
                .iter()
                .any(|r| r["resources"] == json!(["configmaps"]))
        );
        assert!(!paths.is_empty());
        let (resources, _) = rules_review(&p, &app, "b");
        assert!(
            resources
                .iter()
                .all(|r| r["resources"] != json!(["configmaps"]))
        );
    }

    #[test]
    fn role_bindings_grant_in_their_namespace_only() {
        let p = policy();
        let app = Identity::service_account("a", "app");
        assert!(allowed(
            &p,
            &app,
            &attrs("delete", "", "configmaps", Some("a"), Some("x"))
        ));
        assert!(!allowed(
            &p,
            &app,
            &attrs("get", "", "configmaps", Some("b"), Some("x"))
        ));
        assert!(
            !allowed(&p, &app, &attrs("list", "", "configmaps", None, None)),
            "not cluster-wide"
        );
        // The group binding: every ServiceAccount of namespace a reads pods there, not secrets.
        let other = Identity::service_account("a", "other");
        assert!(allowed(
            &p,
            &other,
            &attrs("list", "", "pods", Some("a"), None)
        ));
        assert!(!allowed(
            &p,
            &other,
            &attrs("list", "", "secrets", Some("a"), None)
        ));
        assert!(!allowed(
            &p,
            &Identity::service_account("b", "app"),
            &attrs("list", "", "pods", Some("a"), None)
        ));
    }

    #[test]
    fn subresources_names_and_aggregation() {
        let p = policy();
        let other = Identity::service_account("a", "other");
        let mut log = attrs("get", "", "pods", Some("a"), Some("p"));
        log.subresource = Some("log".into());
        assert!(allowed(&p, &other, &log));
        log.subresource = Some("exec".into());
        assert!(!allowed(&p, &other, &log), "pods does not grant pods/exec");
        let ops = Identity {
            user: "ops".into(),
            groups: vec![],
        };
        let lease = |verb: &str, name: Option<&str>| {
            attrs(verb, "coordination.k8s.io", "leases", Some("x"), name)
        };
        assert!(
            allowed(&p, &ops, &lease("update", Some("one"))),
            "aggregated from the labelled role"
        );
        assert!(
            !allowed(&p, &ops, &lease("update", Some("two"))),
            "resourceNames"
        );
        assert!(
            !allowed(&p, &ops, &lease("list", None)),
            "a named rule never lists"
        );
        let scaler = Identity {
            user: "scaler".into(),
            groups: vec![],
        };
        let mut scale = attrs("patch", "apps", "deployments", Some("a"), Some("d"));
        scale.subresource = Some("scale".into());
        assert!(allowed(&p, &scaler, &scale));
        scale.subresource = None;
        assert!(!allowed(&p, &scaler, &scale));
        let root = Identity {
            user: "admin".into(),
            groups: vec!["system:masters".into()],
        };
        assert!(allowed(
            &p,
            &root,
            &attrs("delete", "", "nodes", None, Some("n"))
        ));
    }

    #[test]
    fn refusals_read_as_the_api_servers() {
        let id = Identity::service_account("t", "deployer");
        assert_eq!(
            forbidden_message(&id, &attrs("list", "", "secrets", Some("other"), None)),
            "secrets is forbidden: User \"system:serviceaccount:t:deployer\" cannot list resource \"secrets\" in API group \"\" in the namespace \"other\""
        );
        assert_eq!(
            forbidden_message(&id, &attrs("get", "", "nodes", None, Some("n1"))),
            "nodes \"n1\" is forbidden: User \"system:serviceaccount:t:deployer\" cannot get resource \"nodes\" in API group \"\" at the cluster scope"
        );
    }
}
