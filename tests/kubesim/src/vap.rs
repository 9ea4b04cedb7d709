//! ValidatingAdmissionPolicies, evaluated as the API server evaluates them
//! (<https://kubernetes.io/docs/reference/access-authn-authz/validating-admission-policy/>):
//! every binding whose policy's `matchConstraints` match the request (resource rules with
//! operations, a namespace selector) and whose `matchConditions` all hold has its policy's
//! `validations` judged, with `variables`, in CEL (the `cel` crate, optional syntax on). A
//! binding with the `Deny` action refuses the request when a validation is false; an
//! expression that fails refuses it under `failurePolicy: Fail` (the default) and is skipped
//! under `Ignore`.
//!
//! CEL variables: `object`, `oldObject` (null where there is none), `request` (`operation`,
//! `userInfo.username` and `groups`, `namespace`, `name`, `kind`, `resource`), `variables`,
//! `namespaceObject`, and `params` (always null: `paramKind` is not supported, and a policy that
//! names one is refused when it is written, as is a policy whose CEL does not compile).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use serde_json::{Value, json};

use crate::rbac::Identity;
use crate::selector::LabelSelector;

static ENV: LazyLock<Arc<cel::Env>> = LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// What is being admitted.
pub struct Request<'a> {
    /// `CREATE`, `UPDATE` or `DELETE`.
    pub operation: &'a str,
    pub user: &'a Identity,
    pub group: &'a str,
    pub version: &'a str,
    pub kind: &'a str,
    pub resource: &'a str,
    pub namespace: &'a str,
    pub name: &'a str,
    pub object: Option<&'a Value>,
    pub old_object: Option<&'a Value>,
    /// The namespace object the request is in (for a namespace, itself).
    pub namespace_object: Option<&'a Value>,
}

fn strs(v: Option<&Value>) -> Vec<&str> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn any_or(list: &[&str], wanted: &str) -> bool {
    list.iter().any(|x| *x == "*" || *x == wanted)
}

fn constraints_match(policy: &Value, r: &Request<'_>) -> bool {
    let mc = policy
        .pointer("/spec/matchConstraints")
        .unwrap_or(&Value::Null);
    let rule_ok = mc
        .get("resourceRules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|rule| {
            any_or(&strs(rule.get("apiGroups")), r.group)
                && any_or(&strs(rule.get("apiVersions")), r.version)
                && any_or(&strs(rule.get("resources")), r.resource)
                && any_or(&strs(rule.get("operations")), r.operation)
                && (strs(rule.get("resourceNames")).is_empty()
                    || strs(rule.get("resourceNames")).contains(&r.name))
        });
    if !rule_ok {
        return false;
    }
    match mc.get("namespaceSelector") {
        None => true,
        Some(sel) if sel.as_object().is_none_or(|m| m.is_empty()) => true,
        Some(sel) => match (LabelSelector::from_json(sel), r.namespace_object) {
            (Ok(s), Some(ns)) => s.matches(ns),
            // cluster-scoped objects other than namespaces are not selected by namespace
            (Ok(_), None) => r.namespace.is_empty() && r.resource != "namespaces",
            (Err(_), _) => false,
        },
    }
}

fn to_cel(v: &Value) -> cel::Value {
    cel::to_value(v).unwrap_or(cel::Value::Null)
}

fn context<'a>(r: &Request<'_>, variables: &BTreeMap<String, Value>) -> cel::Context<'a, 'a> {
    let mut ctx = cel::Context::with_env(ENV.clone());
    let null = Value::Null;
    ctx.add_variable_from_value("object", to_cel(r.object.unwrap_or(&null)));
    ctx.add_variable_from_value("oldObject", to_cel(r.old_object.unwrap_or(&null)));
    ctx.add_variable_from_value(
        "namespaceObject",
        to_cel(r.namespace_object.unwrap_or(&null)),
    );
    ctx.add_variable_from_value("params", cel::Value::Null);
    ctx.add_variable_from_value(
        "request",
        to_cel(&json!({
            "operation": r.operation,
            "userInfo": {"username": r.user.user, "groups": r.user.groups},
            "namespace": r.namespace,
            "name": r.name,
            "kind": {"group": r.group, "version": r.version, "kind": r.kind},
            "resource": {"group": r.group, "version": r.version, "resource": r.resource},
        })),
    );
    ctx.add_variable_from_value("variables", to_cel(&json!(variables)));
    ctx
}

/// The value of an expression as JSON (for variables), or why it failed.
fn eval(
    expr: &str,
    r: &Request<'_>,
    variables: &BTreeMap<String, Value>,
) -> Result<cel::Value, String> {
    let program = ENV
        .compile(expr)
        .map_err(|e| format!("compilation failed: {e}"))?;
    program
        .execute(&context(r, variables))
        .map_err(|e| format!("expression '{expr}' resulted in error: {e}"))
}

fn cel_to_json(v: &cel::Value) -> Value {
    match v {
        cel::Value::Null => Value::Null,
        cel::Value::Bool(b) => json!(b),
        cel::Value::Int(i) => json!(i),
        cel::Value::UInt(u) => json!(u),
        cel::Value::Float(f) => json!(f),
        cel::Value::String(s) => json!(s.as_str()),
        cel::Value::List(l) => Value::Array(l.iter().map(cel_to_json).collect()),
        cel::Value::Map(m) => {
            let mut out = serde_json::Map::new();
            for (k, v) in m.map.iter() {
                out.insert(format!("{k}").trim_matches('"').to_string(), cel_to_json(v));
            }
            Value::Object(out)
        }
        other => json!(format!("{other:?}")),
    }
}

/// Refuses a policy that the simulator would not evaluate faithfully: one whose CEL does not
/// compile, or that names a `paramKind`.
pub fn check_policy(policy: &Value) -> Result<(), String> {
    if policy.pointer("/spec/paramKind").is_some() {
        return Err(
            "spec.paramKind: Unsupported value: kubesim evaluates policies without params".into(),
        );
    }
    let spec = policy.get("spec").unwrap_or(&Value::Null);
    for (list, field) in [
        ("matchConditions", "expression"),
        ("variables", "expression"),
        ("validations", "expression"),
    ] {
        for (i, item) in spec
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let expr = item.get(field).and_then(Value::as_str).unwrap_or_default();
            ENV.compile(expr).map_err(|e| {
                format!(
                    "spec.{list}[{i}].{field}: Invalid value: {expr:?}: compilation failed: {e}"
                )
            })?;
        }
    }
    Ok(())
}

/// Judges the request against every policy bound with `Deny`; answers the refusal, in the API
/// server's words, if any.
pub fn admit(
    policies: &[Arc<Value>],
    bindings: &[Arc<Value>],
    r: &Request<'_>,
) -> Result<(), String> {
    for binding in bindings {
        let actions = strs(binding.pointer("/spec/validationActions"));
        if !actions.contains(&"Deny") {
            continue;
        }
        let policy_name = binding
            .pointer("/spec/policyName")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(policy) = policies
            .iter()
            .find(|p| p.pointer("/metadata/name").and_then(Value::as_str) == Some(policy_name))
        else {
            continue;
        };
        if !constraints_match(policy, r) {
            continue;
        }
        let fail_closed = policy
            .pointer("/spec/failurePolicy")
            .and_then(Value::as_str)
            != Some("Ignore");
        let binding_name = binding
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let refuse = |why: String| {
            format!(
                "ValidatingAdmissionPolicy '{policy_name}' with binding '{binding_name}' denied request: {why}"
            )
        };
        let spec = policy.get("spec").unwrap_or(&Value::Null);
        let mut variables = BTreeMap::new();
        let mut matched = true;
        for cond in spec
            .get("matchConditions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let expr = cond
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match eval(expr, r, &variables) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(_) => {
                    matched = false;
                    break;
                }
                Err(e) if fail_closed => return Err(refuse(e)),
                Err(_) => {
                    matched = false;
                    break;
                }
            }
        }
        if !matched {
            continue;
        }
        for var in spec
            .get("variables")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = var.get("name").and_then(Value::as_str).unwrap_or_default();
            let expr = var
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match eval(expr, r, &variables) {
                Ok(v) => {
                    variables.insert(name.to_string(), cel_to_json(&v));
                }
                Err(e) if fail_closed => return Err(refuse(e)),
                Err(_) => {}
            }
        }
        for v in spec
            .get("validations")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let expr = v
                .get("expression")
                .and_then(Value::as_str)
                .unwrap_or_default();
            match eval(expr, r, &variables) {
                Ok(cel::Value::Bool(true)) => {}
                Ok(_) => {
                    let message = v
                        .get("message")
                        .and_then(Value::as_str)
                        .map(String::from)
                        .unwrap_or_else(|| format!("failed expression: {expr}"));
                    return Err(refuse(message));
                }
                Err(e) if fail_closed => return Err(refuse(e)),
                Err(_) => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Identity {
        Identity {
            user: name.into(),
            groups: vec!["system:authenticated".into()],
        }
    }

    fn pull_always() -> (Arc<Value>, Arc<Value>) {
        (
            Arc::new(json!({"metadata": {"name": "pull"}, "spec": {
                "matchConstraints": {"namespaceSelector": {"matchExpressions": [{"key": "govcloud.io/tenant", "operator": "Exists"}]},
                    "resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["pods"], "operations": ["CREATE"]}]},
                "validations": [{"expression": "object.spec.containers.all(c, c.?imagePullPolicy.orValue('') == 'Always') && object.spec.?initContainers.orValue([]).all(c, c.?imagePullPolicy.orValue('') == 'Always')",
                                 "message": "pull Always"}]}})),
            Arc::new(
                json!({"metadata": {"name": "pull"}, "spec": {"policyName": "pull", "validationActions": ["Deny"]}}),
            ),
        )
    }

    fn pod_request<'a>(id: &'a Identity, pod: &'a Value, ns: &'a Value) -> Request<'a> {
        Request {
            operation: "CREATE",
            user: id,
            group: "",
            version: "v1",
            kind: "Pod",
            resource: "pods",
            namespace: "t-prod",
            name: "p",
            object: Some(pod),
            old_object: None,
            namespace_object: Some(ns),
        }
    }

    #[test]
    fn a_policy_with_optionals_and_macros_is_judged() {
        let (p, b) = pull_always();
        let id = user("alice");
        let tenant_ns =
            json!({"metadata": {"name": "t-prod", "labels": {"govcloud.io/tenant": "t"}}});
        let other_ns = json!({"metadata": {"name": "x"}});
        let good = json!({"spec": {"containers": [{"name": "a", "imagePullPolicy": "Always"}]}});
        let bad = json!({"spec": {"containers": [{"name": "a"}]}});
        assert_eq!(
            admit(
                std::slice::from_ref(&p),
                std::slice::from_ref(&b),
                &pod_request(&id, &good, &tenant_ns)
            ),
            Ok(())
        );
        let refused = admit(
            std::slice::from_ref(&p),
            std::slice::from_ref(&b),
            &pod_request(&id, &bad, &tenant_ns),
        );
        assert_eq!(
            refused,
            Err(
                "ValidatingAdmissionPolicy 'pull' with binding 'pull' denied request: pull Always"
                    .into()
            )
        );
        // outside the selected namespaces, nothing is judged
        assert_eq!(
            admit(&[p], &[b], &pod_request(&id, &bad, &other_ns)),
            Ok(())
        );
    }

    #[test]
    fn variables_match_conditions_and_old_objects() {
        let policy = Arc::new(json!({"metadata": {"name": "labels"}, "spec": {
            "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"], "resources": ["namespaces"], "operations": ["CREATE", "UPDATE"]}]},
            "matchConditions": [{"name": "not-operator", "expression": "request.userInfo.username != 'operator' && !request.userInfo.username.startsWith('system:serviceaccount:kube-system:')"}],
            "variables": [{"name": "keys", "expression": "['govcloud.io/tenant']"}],
            "validations": [{"expression": "request.operation != 'UPDATE' || variables.keys.all(k, object.metadata.?labels[?k] == oldObject.metadata.?labels[?k])", "message": "frozen"}]}}));
        let binding = Arc::new(
            json!({"metadata": {"name": "labels"}, "spec": {"policyName": "labels", "validationActions": ["Deny"]}}),
        );
        let old = json!({"metadata": {"name": "n", "labels": {"govcloud.io/tenant": "a"}}});
        let new = json!({"metadata": {"name": "n", "labels": {"govcloud.io/tenant": "b"}}});
        let same =
            json!({"metadata": {"name": "n", "labels": {"govcloud.io/tenant": "a", "x": "y"}}});
        for (who, object, want_ok) in [
            ("alice", &new, false),
            ("alice", &same, true),
            ("operator", &new, true),
        ] {
            let id = user(who);
            let r = Request {
                operation: "UPDATE",
                user: &id,
                group: "",
                version: "v1",
                kind: "Namespace",
                resource: "namespaces",
                namespace: "",
                name: "n",
                object: Some(object),
                old_object: Some(&old),
                namespace_object: Some(object),
            };
            assert_eq!(
                admit(
                    std::slice::from_ref(&policy),
                    std::slice::from_ref(&binding),
                    &r
                )
                .is_ok(),
                want_ok,
                "{who} {object}"
            );
        }
        assert!(
            check_policy(&json!({"spec": {"validations": [{"expression": "object.("}]}})).is_err()
        );
        assert!(check_policy(&policy).is_ok());
    }
}
