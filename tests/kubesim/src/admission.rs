//! The admission and controller logic that shapes what clients observe: LimitRange defaults,
//! ResourceQuota usage and refusal, in the wording Kubernetes uses. Pure functions over JSON.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::resources::ResourceType;
use govcloud_kube_values::quantity::{self, Format, Nanos};

const ONE: Nanos = 1_000_000_000;

pub type Usage = BTreeMap<String, Nanos>;

fn is_terminal(pod: &Value) -> bool {
    matches!(
        pod.pointer("/status/phase").and_then(Value::as_str),
        Some("Succeeded" | "Failed")
    )
}

fn containers<'a>(pod: &'a Value, field: &str) -> impl Iterator<Item = &'a Value> {
    pod.pointer(&format!("/spec/{field}"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

fn resource_of(container: &Value, kind: &str, name: &str) -> Option<Nanos> {
    // A quantity may be written as a JSON number (`cpu: 2` in YAML), as the API server accepts.
    match container.pointer(&format!("/resources/{kind}/{name}"))? {
        Value::String(s) => quantity::nanos(s),
        Value::Number(n) => quantity::nanos(&n.to_string()),
        _ => None,
    }
}

/// A pod's effective request or limit: the larger of the sum over containers and the largest
/// init container, plus overhead, as the scheduler and quota count it.
pub fn pod_amount(pod: &Value, kind: &str, name: &str) -> Nanos {
    let sum: Nanos = containers(pod, "containers")
        .filter_map(|c| resource_of(c, kind, name))
        .sum();
    let init = containers(pod, "initContainers")
        .filter_map(|c| resource_of(c, kind, name))
        .max()
        .unwrap_or(0);
    let overhead = pod
        .pointer(&format!("/spec/overhead/{name}"))
        .and_then(Value::as_str)
        .and_then(quantity::nanos)
        .unwrap_or(0);
    sum.max(init) + overhead
}

/// A pod's QoS class, as Kubernetes computes it: `Guaranteed` when every container (init
/// containers too) limits cpu and memory and requests exactly that (a missing request takes the
/// limit); `BestEffort` when no container requests or limits either; `Burstable` otherwise.
pub fn qos_class(pod: &Value) -> &'static str {
    let all: Vec<&Value> = containers(pod, "containers")
        .chain(containers(pod, "initContainers"))
        .collect();
    let any = all.iter().any(|c| {
        ["cpu", "memory"].iter().any(|r| {
            resource_of(c, "requests", r).is_some_and(|v| v != 0)
                || resource_of(c, "limits", r).is_some_and(|v| v != 0)
        })
    });
    if !any {
        return "BestEffort";
    }
    let guaranteed = all.iter().all(|c| {
        ["cpu", "memory"]
            .iter()
            .all(|r| match resource_of(c, "limits", r) {
                Some(limit) if limit != 0 => {
                    resource_of(c, "requests", r).unwrap_or(limit) == limit
                }
                _ => false,
            })
    });
    if guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// What one object counts against a ResourceQuota, by quota key.
pub fn usage_of(rt: &ResourceType, obj: &Value) -> Usage {
    let mut u = Usage::new();
    let count_key = if rt.group.is_empty() {
        format!("count/{}", rt.plural)
    } else {
        format!("count/{}.{}", rt.plural, rt.group)
    };
    match (rt.group.as_str(), rt.plural.as_str()) {
        ("", "pods") => {
            if is_terminal(obj) {
                return u;
            }
            u.insert("pods".into(), ONE);
            u.insert(count_key, ONE);
            for name in ["cpu", "memory", "ephemeral-storage"] {
                let req = pod_amount(obj, "requests", name);
                let lim = pod_amount(obj, "limits", name);
                u.insert(format!("requests.{name}"), req);
                u.insert(format!("limits.{name}"), lim);
                u.insert(name.into(), req);
            }
        }
        ("", "services") => {
            u.insert("services".into(), ONE);
            u.insert(count_key, ONE);
            let ty = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .unwrap_or("ClusterIP");
            let ports = obj
                .pointer("/spec/ports")
                .and_then(Value::as_array)
                .map_or(0, Vec::len) as Nanos;
            u.insert(
                "services.loadbalancers".into(),
                if ty == "LoadBalancer" { ONE } else { 0 },
            );
            u.insert(
                "services.nodeports".into(),
                if matches!(ty, "NodePort" | "LoadBalancer") {
                    ports * ONE
                } else {
                    0
                },
            );
        }
        ("", "persistentvolumeclaims") => {
            u.insert("persistentvolumeclaims".into(), ONE);
            u.insert(count_key, ONE);
            let storage = obj
                .pointer("/spec/resources/requests/storage")
                .and_then(Value::as_str)
                .and_then(quantity::nanos)
                .unwrap_or(0);
            u.insert("requests.storage".into(), storage);
        }
        ("", plural @ ("configmaps" | "secrets" | "resourcequotas" | "replicationcontrollers")) => {
            u.insert(plural.into(), ONE);
            u.insert(count_key, ONE);
        }
        _ => {
            u.insert(count_key, ONE);
        }
    }
    u
}

pub fn add_usage(total: &mut Usage, more: &Usage) {
    for (k, v) in more {
        *total.entry(k.clone()).or_default() += v;
    }
}

/// `status` for a ResourceQuota given the namespace's usage: `hard` mirrors `spec.hard`, `used`
/// has every hard key, printed in the suffix family of its limit.
pub fn quota_status(quota: &Value, usage: &Usage) -> Value {
    let hard = quota
        .pointer("/spec/hard")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let mut used = Map::new();
    for (k, v) in &hard {
        let fmt = v
            .as_str()
            .and_then(quantity::parse)
            .map_or(Format::DecimalSi, |(_, f)| f);
        used.insert(
            k.clone(),
            json!(quantity::format(usage.get(k).copied().unwrap_or(0), fmt)),
        );
    }
    json!({ "hard": hard, "used": used })
}

fn fmt_list(items: &[(String, String)]) -> String {
    items
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Refuses a new object that would take a namespace past a quota. `quotas` are the namespace's
/// ResourceQuota objects and `current` its usage before the object. The message is Kubernetes'.
pub fn check_quota(
    rt: &ResourceType,
    obj: &Value,
    quotas: &[&Value],
    current: &Usage,
) -> Result<(), String> {
    let delta = usage_of(rt, obj);
    let mut sorted: Vec<&&Value> = quotas.iter().collect();
    sorted.sort_by_key(|q| {
        q.pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    });
    for q in sorted {
        let qname = q
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(hard) = q.pointer("/spec/hard").and_then(Value::as_object) else {
            continue;
        };
        if rt.is("", "pods") {
            let mut missing = Vec::new();
            for key in [
                "requests.cpu",
                "requests.memory",
                "limits.cpu",
                "limits.memory",
                "cpu",
                "memory",
            ] {
                if !hard.contains_key(key) {
                    continue;
                }
                let (kind, name) = key.split_once('.').unwrap_or(("requests", key));
                let lacking: Vec<&str> = containers(obj, "containers")
                    .filter(|c| resource_of(c, kind, name).is_none())
                    .filter_map(|c| c["name"].as_str())
                    .collect();
                if !lacking.is_empty() {
                    missing.push(format!("{kind}.{name} for: {}", lacking.join(",")));
                }
            }
            if !missing.is_empty() {
                missing.dedup();
                return Err(format!(
                    "failed quota: {qname}: must specify {}",
                    missing.join("; ")
                ));
            }
        }
        let (mut requested, mut used, mut limited) = (Vec::new(), Vec::new(), Vec::new());
        for (key, limit) in hard {
            let Some(d) = delta.get(key).copied().filter(|d| *d > 0) else {
                continue;
            };
            let (limit, fmt) = limit
                .as_str()
                .and_then(quantity::parse)
                .unwrap_or((0, Format::DecimalSi));
            let now = current.get(key).copied().unwrap_or(0);
            if now + d > limit {
                requested.push((key.clone(), quantity::format(d, fmt)));
                used.push((key.clone(), quantity::format(now, fmt)));
                limited.push((key.clone(), quantity::format(limit, fmt)));
            }
        }
        if !requested.is_empty() {
            return Err(format!(
                "exceeded quota: {qname}, requested: {}, used: {}, limited: {}",
                fmt_list(&requested),
                fmt_list(&used),
                fmt_list(&limited)
            ));
        }
    }
    Ok(())
}

/// LimitRanger: fills in missing container requests and limits from the namespace's
/// LimitRanges (`defaultRequest`, `default`; a missing `defaultRequest` falls back to `default`
/// and a missing `default` to `max`, as the LimitRange API defaults them) and then enforces
/// their `min` and `max` per container.
pub fn apply_limit_ranges(pod: &mut Value, limit_ranges: &[&Value]) -> Result<(), String> {
    for lr in limit_ranges {
        let Some(items) = lr.pointer("/spec/limits").and_then(Value::as_array) else {
            continue;
        };
        for item in items
            .iter()
            .filter(|i| i["type"].as_str() == Some("Container"))
        {
            let pick = |field: &str| {
                item.get(field)
                    .and_then(Value::as_object)
                    .cloned()
                    .unwrap_or_default()
            };
            let max = pick("max");
            let min = pick("min");
            let default = if item.get("default").is_some() {
                pick("default")
            } else {
                max.clone()
            };
            let default_request = if item.get("defaultRequest").is_some() {
                pick("defaultRequest")
            } else {
                default.clone()
            };
            for field in ["containers", "initContainers"] {
                let Some(list) = pod
                    .pointer_mut(&format!("/spec/{field}"))
                    .and_then(Value::as_array_mut)
                else {
                    continue;
                };
                for c in list.iter_mut() {
                    let res = c
                        .as_object_mut()
                        .map(|m| m.entry("resources").or_insert_with(|| json!({})));
                    let Some(res) = res.and_then(Value::as_object_mut) else {
                        continue;
                    };
                    for (kind, defaults) in [("limits", &default), ("requests", &default_request)] {
                        let slot = res.entry(kind).or_insert_with(|| json!({}));
                        if let Some(slot) = slot.as_object_mut() {
                            for (name, v) in defaults {
                                slot.entry(name.clone()).or_insert_with(|| v.clone());
                            }
                        }
                    }
                    for (name, bound) in &max {
                        let b = bound
                            .as_str()
                            .and_then(quantity::nanos)
                            .unwrap_or(Nanos::MAX);
                        match resource_of(c, "limits", name) {
                            Some(l) if l > b => {
                                return Err(format!(
                                    "maximum {name} usage per Container is {}, but limit is {}",
                                    bound.as_str().unwrap_or_default(),
                                    c.pointer(&format!("/resources/limits/{name}"))
                                        .and_then(Value::as_str)
                                        .unwrap_or_default()
                                ));
                            }
                            None => {
                                return Err(format!(
                                    "maximum {name} usage per Container is {}.  No limit is specified",
                                    bound.as_str().unwrap_or_default()
                                ));
                            }
                            _ => {}
                        }
                    }
                    for (name, bound) in &min {
                        let b = bound.as_str().and_then(quantity::nanos).unwrap_or(0);
                        if resource_of(c, "requests", name).is_some_and(|r| r < b) {
                            return Err(format!(
                                "minimum {name} usage per Container is {}, but request is {}",
                                bound.as_str().unwrap_or_default(),
                                c.pointer(&format!("/resources/requests/{name}"))
                                    .and_then(Value::as_str)
                                    .unwrap_or_default()
                            ));
                        }
                    }
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::Registry;

    fn pods() -> ResourceType {
        Registry::default()
            .find("", "v1", "pods")
            .cloned()
            .unwrap_or_else(|| panic!("pods are built in"))
    }

    fn pod(cpu: &str) -> Value {
        json!({"metadata": {"name": "p"}, "spec": {"containers": [
            {"name": "app", "resources": {"requests": {"cpu": cpu, "memory": "64Mi"}, "limits": {"cpu": cpu, "memory": "64Mi"}}}]}})
    }

    #[test]
    fn qos_classes() {
        let pod = |resources: Value| json!({"spec": {"containers": [{"name": "a", "resources": resources}]}});
        assert_eq!(qos_class(&pod(json!({}))), "BestEffort");
        assert_eq!(
            qos_class(&pod(json!({"requests": {"cpu": "100m"}}))),
            "Burstable"
        );
        assert_eq!(
            qos_class(&pod(json!({"limits": {"cpu": "1", "memory": "1Gi"}}))),
            "Guaranteed"
        );
        assert_eq!(
            qos_class(&pod(
                json!({"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "1", "memory": "1Gi"}})
            )),
            "Burstable"
        );
    }

    #[test]
    fn quota_refuses_what_would_exceed_it_with_kubernetes_wording() {
        let quota = json!({"metadata": {"name": "compute"}, "spec": {"hard": {"pods": "2", "requests.cpu": "1"}}});
        let mut used = Usage::new();
        add_usage(&mut used, &usage_of(&pods(), &pod("600m")));
        assert_eq!(check_quota(&pods(), &pod("400m"), &[&quota], &used), Ok(()));
        assert_eq!(
            check_quota(&pods(), &pod("500m"), &[&quota], &used),
            Err("exceeded quota: compute, requested: requests.cpu=500m, used: requests.cpu=600m, limited: requests.cpu=1".into())
        );
        let bare = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "app"}]}});
        assert_eq!(
            check_quota(&pods(), &bare, &[&quota], &Usage::new()),
            Err("failed quota: compute: must specify requests.cpu for: app".into())
        );
    }

    #[test]
    fn quota_status_prints_usage_in_the_limit_family() {
        let quota = json!({"spec": {"hard": {"requests.memory": "1Gi", "pods": "10"}}});
        let mut used = Usage::new();
        add_usage(&mut used, &usage_of(&pods(), &pod("1")));
        add_usage(&mut used, &usage_of(&pods(), &pod("1")));
        assert_eq!(
            quota_status(&quota, &used)["used"],
            json!({"requests.memory": "128Mi", "pods": "2"})
        );
    }

    #[test]
    fn limit_ranges_default_and_bound_containers() {
        let lr = json!({"spec": {"limits": [{"type": "Container",
            "default": {"cpu": "500m"}, "defaultRequest": {"cpu": "100m"}, "max": {"cpu": "2"}}]}});
        let mut p = json!({"spec": {"containers": [{"name": "app"}]}});
        assert_eq!(apply_limit_ranges(&mut p, &[&lr]), Ok(()));
        assert_eq!(
            p["spec"]["containers"][0]["resources"],
            json!({"limits": {"cpu": "500m"}, "requests": {"cpu": "100m"}})
        );
        let mut big = pod("4");
        assert_eq!(
            apply_limit_ranges(&mut big, &[&lr]),
            Err("maximum cpu usage per Container is 2, but limit is 4".into())
        );
    }
}
