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
//! `system:masters` may do anything. Non-resource URLs are not modelled: discovery is open to
//! every authenticated caller.

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

fn role_rules<'a>(
    policy: &'a Policy,
    role_ref: &Value,
    binding_ns: Option<&str>,
) -> Vec<&'a Value> {
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
            .map(|r| cluster_role_rules(policy, r))
            .unwrap_or_default(),
        ("Role", Some(ns)) => policy
            .roles
            .iter()
            .find(|r| meta(r, "name") == name && meta(r, "namespace") == ns)
            .and_then(|r| r.get("rules").and_then(Value::as_array))
            .map(|r| r.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
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
            out.extend(role_rules(
                policy,
                b.get("roleRef").unwrap_or(&Value::Null),
                None,
            ));
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
                out.extend(role_rules(
                    policy,
                    b.get("roleRef").unwrap_or(&Value::Null),
                    Some(ns),
                ));
            }
        }
    }
    out
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
    rules_for(policy, id, a.namespace.as_deref())
        .into_iter()
        .any(|r| rule_matches(r, &a))
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
