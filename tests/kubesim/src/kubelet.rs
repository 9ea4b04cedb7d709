//! A simulated scheduler and kubelet: what a cluster does to pods after they are created.
//!
//! - Scheduling: a pending pod without `spec.nodeName` is bound to the Ready node with the most
//!   CPU left whose allocatable cpu, memory and pod count still fit the pod's requests (as the
//!   scheduler's resource-fit filter does); when none fits, the pod stays `Pending` with
//!   `PodScheduled=False`, reason `Unschedulable`, and is tried again.
//! - Running: a bound pod moves to `Running` with `startTime`, `hostIP`, `podIP`, its
//!   containers `running` since then, and `PodScheduled`, `Initialized`, `ContainersReady` and
//!   `Ready` true. Containers never exit on their own.
//! - Deletion: a pod on a node is deleted gracefully (see [`crate::store::Store::delete`]); the
//!   kubelet stops its containers at once and removes it.
//!
//! Each step is its own write, so watchers see the same sequence of events as in a cluster:
//! binding, then the status update, then deletion.

use std::collections::HashMap;

use govcloud_kube_values::quantity::{self, Nanos};
use serde_json::{Value, json};

use crate::admission::pod_amount;
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{EventType, Store, now};

fn pods_and_nodes(store: &Store) -> Option<(ResourceType, ResourceType)> {
    Some((
        store.registry.find("", "v1", "pods")?.clone(),
        store.registry.find("", "v1", "nodes")?.clone(),
    ))
}

fn list_all(store: &Store, rt: &ResourceType) -> Vec<std::sync::Arc<Value>> {
    store
        .list(
            rt,
            None,
            &LabelSelector::default(),
            &FieldSelector::default(),
            None,
            None,
        )
        .map(|p| p.items)
        .unwrap_or_default()
}

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn is_terminal(pod: &Value) -> bool {
    matches!(str_at(pod, "/status/phase"), "Succeeded" | "Failed")
}

/// What is left on a node: (cpu, memory, pods), in nano-units for the first two.
fn free_capacity(node: &Value, pods: &[std::sync::Arc<Value>]) -> (Nanos, Nanos, Nanos) {
    let alloc = |r: &str| {
        node.pointer(&format!("/status/allocatable/{r}"))
            .and_then(Value::as_str)
            .and_then(quantity::nanos)
            .unwrap_or(0)
    };
    let name = str_at(node, "/metadata/name");
    let on_node: Vec<&Value> = pods
        .iter()
        .map(|p| p.as_ref())
        .filter(|p| str_at(p, "/spec/nodeName") == name && !is_terminal(p))
        .collect();
    let used = |r: &str| -> Nanos { on_node.iter().map(|p| pod_amount(p, "requests", r)).sum() };
    (
        alloc("cpu") - used("cpu"),
        alloc("memory") - used("memory"),
        alloc("pods") - Nanos::try_from(on_node.len()).unwrap_or(Nanos::MAX) * 1_000_000_000,
    )
}

fn node_ready(node: &Value) -> bool {
    node.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
}

fn condition(kind: &str, status: &str, at: &str) -> Value {
    json!({"type": kind, "status": status, "lastProbeTime": null, "lastTransitionTime": at})
}

/// The pod's IP: stable per pod, in 10.244.0.0/16.
fn pod_ip(uid: &str) -> String {
    let h = uid
        .bytes()
        .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("10.244.{}.{}", (h >> 8) % 256, h % 254 + 1)
}

/// One pass over the pods: bind, start and remove what is due. Returns how many writes it made.
pub fn step(store: &mut Store) -> usize {
    let Some((pods_rt, nodes_rt)) = pods_and_nodes(store) else {
        return 0;
    };
    let pods = list_all(store, &pods_rt);
    let nodes = list_all(store, &nodes_rt);
    let mut writes = 0;
    let mut bound_now: HashMap<String, Vec<std::sync::Arc<Value>>> = HashMap::new();
    for pod in &pods {
        let ns = str_at(pod, "/metadata/namespace").to_string();
        let name = str_at(pod, "/metadata/name").to_string();
        if pod.pointer("/metadata/deletionTimestamp").is_some() {
            let finalizers = pod
                .pointer("/metadata/finalizers")
                .and_then(Value::as_array)
                .is_some_and(|f| !f.is_empty());
            if !finalizers {
                // The containers stop at once; the kubelet removes the pod.
                let gone = store.commit(&pods_rt, &ns, &name, (**pod).clone(), EventType::Deleted);
                store.after_delete(&pods_rt, &ns, &gone);
                writes += 1;
            }
            continue;
        }
        if is_terminal(pod) {
            continue;
        }
        let at = now();
        let node_name = str_at(pod, "/spec/nodeName").to_string();
        if node_name.is_empty() {
            // Schedule: the fitting Ready node with the most cpu left.
            let cpu = pod_amount(pod, "requests", "cpu");
            let memory = pod_amount(pod, "requests", "memory");
            let mut all: Vec<std::sync::Arc<Value>> = pods.clone();
            for extra in bound_now.values() {
                all.extend(extra.iter().cloned());
            }
            let best = nodes
                .iter()
                .filter(|n| node_ready(n))
                .map(|n| (n, free_capacity(n, &all)))
                .filter(|(_, (c, m, p))| *c >= cpu && *m >= memory && *p >= 1_000_000_000)
                .max_by_key(|(_, (c, _, _))| *c);
            let mut next = (**pod).clone();
            match best {
                Some((node, _)) => {
                    let node = str_at(node, "/metadata/name").to_string();
                    next["spec"]["nodeName"] = json!(node);
                    next["status"]["conditions"] = json!([condition("PodScheduled", "True", &at)]);
                    let stored = store.commit(&pods_rt, &ns, &name, next, EventType::Modified);
                    bound_now.entry(node).or_default().push(stored);
                }
                None => {
                    let already = str_at(pod, "/status/conditions/0/reason") == "Unschedulable";
                    if already {
                        continue;
                    }
                    next["status"]["phase"] = json!("Pending");
                    next["status"]["conditions"] = json!([{
                        "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                        "message": format!("0/{} nodes are available: insufficient cpu, memory or pods.", nodes.len()),
                        "lastProbeTime": null, "lastTransitionTime": at,
                    }]);
                    store.commit(&pods_rt, &ns, &name, next, EventType::Modified);
                }
            }
            writes += 1;
            continue;
        }
        if str_at(pod, "/status/phase") == "Running" {
            continue;
        }
        let host_ip = nodes
            .iter()
            .position(|n| str_at(n, "/metadata/name") == node_name)
            .map_or_else(|| "10.0.0.1".to_string(), |i| format!("10.0.0.{}", i + 1));
        let uid = str_at(pod, "/metadata/uid");
        let statuses: Vec<Value> = pod
            .pointer("/spec/containers")
            .and_then(Value::as_array)
            .map(|cs| {
                cs.iter()
                    .map(|c| {
                        json!({
                            "name": c["name"], "image": c["image"], "imageID": "",
                            "containerID": format!("containerd://{}-{}", uid, c["name"].as_str().unwrap_or_default()),
                            "ready": true, "started": true, "restartCount": 0,
                            "state": {"running": {"startedAt": at}},
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        let mut next = (**pod).clone();
        next["status"] = json!({
            "phase": "Running",
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip(uid),
            "podIPs": [{"ip": pod_ip(uid)}],
            "startTime": at,
            "qosClass": next.pointer("/status/qosClass").cloned().unwrap_or_else(|| json!(crate::admission::qos_class(&next))),
            "conditions": [
                condition("PodReadyToStartContainers", "True", &at),
                condition("Initialized", "True", &at),
                condition("Ready", "True", &at),
                condition("ContainersReady", "True", &at),
                condition("PodScheduled", "True", &at),
            ],
            "containerStatuses": statuses,
        });
        store.commit(&pods_rt, &ns, &name, next, EventType::Modified);
        writes += 1;
    }
    writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::WriteCtx;

    pub(super) fn store() -> Store {
        let mut s = Store::new(1000);
        let nodes = s.registry.find("", "v1", "nodes").cloned();
        let ns = s.registry.find("", "v1", "namespaces").cloned();
        let ctx = WriteCtx::default();
        if let (Some(nodes), Some(ns)) = (nodes, ns) {
            let _ = s.create(&ns, "", json!({"metadata": {"name": "a"}}), &ctx);
            let res = json!({"cpu": "1", "memory": "1Gi", "pods": "10"});
            let r = s.create(
                &nodes,
                "",
                json!({"metadata": {"name": "n1"}, "status": {"allocatable": res,
                "conditions": [{"type": "Ready", "status": "True"}]}}),
                &ctx,
            );
            assert!(r.is_ok(), "{r:?}");
        }
        s
    }

    pub(super) fn pod(s: &mut Store, name: &str, cpu: &str) {
        if let Some(rt) = s.registry.find("", "v1", "pods").cloned() {
            let r = s.create(
                &rt,
                "a",
                json!({"metadata": {"name": name}, "spec": {"containers": [
                {"name": "app", "image": "nginx", "resources": {"requests": {"cpu": cpu}}}]}}),
                &WriteCtx::default(),
            );
            assert!(r.is_ok(), "{r:?}");
        }
    }

    fn phase(s: &Store, name: &str) -> (String, String) {
        let rt = s.registry.find("", "v1", "pods").cloned();
        let p = rt.and_then(|rt| s.get(&rt, "a", name).ok());
        p.map(|p| {
            (
                str_at(&p, "/status/phase").to_string(),
                str_at(&p, "/spec/nodeName").to_string(),
            )
        })
        .unwrap_or_default()
    }

    #[test]
    fn pods_are_bound_then_run_and_what_does_not_fit_waits() {
        let mut s = store();
        // pods are taken in name order: "first" is bound before "second"
        pod(&mut s, "first", "600m");
        pod(&mut s, "second", "600m");
        step(&mut s);
        assert_eq!(phase(&s, "first").1, "n1");
        step(&mut s);
        assert_eq!(phase(&s, "first"), ("Running".into(), "n1".into()));
        // 600m + 600m does not fit a 1-cpu node
        assert_eq!(phase(&s, "second"), ("Pending".into(), String::new()));
    }
}
