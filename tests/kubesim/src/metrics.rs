//! The resource metrics API, `metrics.k8s.io/v1beta1`, as metrics-server serves it: `PodMetrics`
//! for every running pod (get and list, namespaced or across namespaces, with label
//! selectors) and `NodeMetrics` for every node (the sum over its running pods). No watch, no
//! writes: the verbs are `get` and `list`, as in a cluster.
//!
//! What pods use is whatever the test (or `govcloud dev`) set with
//! [`crate::KubeSim::set_pod_usage`]; a running pod nobody set uses nothing. Clusters without
//! metrics-server are simulated with [`crate::Config::metrics_api`] off: the group is then not
//! served at all, and its paths answer 404.

use std::collections::HashMap;

use govcloud_kube_values::quantity::{self, Format, Nanos};
use serde_json::{Value, json};

use crate::error::{ApiError, ApiResult};
use crate::selector::{FieldSelector, LabelSelector};
use crate::store::{Store, now};

/// What a pod uses: cpu and memory quantities, reported for its first container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodUsage {
    pub cpu: String,
    pub memory: String,
}

/// Set usages, by (namespace, pod).
pub type Usages = HashMap<(String, String), PodUsage>;

/// The window metrics-server averages over.
const WINDOW: &str = "15s";

fn str_at<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or_default()
}

fn running_pods(store: &Store, ns: Option<&str>, labels: &LabelSelector) -> Vec<Value> {
    let Some(rt) = store.registry.find("", "v1", "pods").cloned() else {
        return Vec::new();
    };
    store
        .list(&rt, ns, labels, &FieldSelector::default(), None, None)
        .map(|p| p.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| str_at(p, "/status/phase") == "Running")
        .map(|p| (*p).clone())
        .collect()
}

fn pod_metrics(pod: &Value, usages: &Usages, at: &str) -> Value {
    let ns = str_at(pod, "/metadata/namespace");
    let name = str_at(pod, "/metadata/name");
    let set = usages.get(&(ns.to_string(), name.to_string()));
    let containers: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .enumerate()
                .map(|(i, c)| {
                    let (cpu, memory) = match (i, set) {
                        (0, Some(u)) => (u.cpu.clone(), u.memory.clone()),
                        _ => ("0".to_string(), "0".to_string()),
                    };
                    json!({"name": c["name"], "usage": {"cpu": cpu, "memory": memory}})
                })
                .collect()
        })
        .unwrap_or_default();
    json!({
        "kind": "PodMetrics",
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {
            "name": name, "namespace": ns, "creationTimestamp": at,
            "labels": pod.pointer("/metadata/labels").cloned().unwrap_or(json!({})),
        },
        "timestamp": at,
        "window": WINDOW,
        "containers": containers,
    })
}

fn sum_usage(metrics: &[Value], resource: &str) -> Nanos {
    metrics
        .iter()
        .flat_map(|m| m["containers"].as_array().cloned().unwrap_or_default())
        .filter_map(|c| c["usage"][resource].as_str().and_then(quantity::nanos))
        .sum()
}

/// Answers a GET under `/apis/metrics.k8s.io/v1beta1`: `plural` is `pods` or `nodes`.
pub fn get(
    store: &Store,
    usages: &Usages,
    plural: &str,
    ns: Option<&str>,
    name: Option<&str>,
    labels: &LabelSelector,
) -> ApiResult<Value> {
    let at = now();
    match plural {
        "pods" => {
            let pods = running_pods(store, ns, labels);
            match name {
                Some(name) => pods
                    .iter()
                    .find(|p| str_at(p, "/metadata/name") == name)
                    .map(|p| pod_metrics(p, usages, &at))
                    .ok_or_else(|| ApiError::not_found("metrics.k8s.io", "pods", name)),
                None => {
                    let items: Vec<Value> =
                        pods.iter().map(|p| pod_metrics(p, usages, &at)).collect();
                    Ok(
                        json!({"kind": "PodMetricsList", "apiVersion": "metrics.k8s.io/v1beta1",
                        "metadata": {}, "items": items}),
                    )
                }
            }
        }
        "nodes" => {
            let Some(nodes_rt) = store.registry.find("", "v1", "nodes").cloned() else {
                return Err(ApiError::internal("nodes not registered"));
            };
            let nodes = store
                .list(
                    &nodes_rt,
                    None,
                    labels,
                    &FieldSelector::default(),
                    None,
                    None,
                )?
                .items;
            let pods = running_pods(store, None, &LabelSelector::default());
            let node_metrics = |node: &Value| {
                let node_name = str_at(node, "/metadata/name");
                let on_node: Vec<Value> = pods
                    .iter()
                    .filter(|p| str_at(p, "/spec/nodeName") == node_name)
                    .map(|p| pod_metrics(p, usages, &at))
                    .collect();
                json!({
                    "kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
                    "metadata": {"name": node_name, "creationTimestamp": at,
                        "labels": node.pointer("/metadata/labels").cloned().unwrap_or(json!({}))},
                    "timestamp": at, "window": WINDOW,
                    "usage": {
                        "cpu": quantity::format(sum_usage(&on_node, "cpu"), Format::DecimalSi),
                        "memory": quantity::format(sum_usage(&on_node, "memory"), Format::BinarySi),
                    },
                })
            };
            match name {
                Some(name) => nodes
                    .iter()
                    .find(|n| str_at(n, "/metadata/name") == name)
                    .map(|n| node_metrics(n))
                    .ok_or_else(|| ApiError::not_found("metrics.k8s.io", "nodes", name)),
                None => {
                    let items: Vec<Value> = nodes.iter().map(|n| node_metrics(n)).collect();
                    Ok(
                        json!({"kind": "NodeMetricsList", "apiVersion": "metrics.k8s.io/v1beta1",
                        "metadata": {}, "items": items}),
                    )
                }
            }
        }
        other => Err(ApiError::not_found("metrics.k8s.io", other, "")),
    }
}
