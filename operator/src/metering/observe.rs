//! What one object contributes to its namespace's metered amounts: pure functions of the object.

use govcloud_kube_values::quantity;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, ResourceQuota};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::track::{Amount, Amounts};

const NANO: i128 = 1_000_000_000;

fn nanos(q: &Quantity) -> i128 {
    quantity::nanos(&q.0).unwrap_or(0)
}

/// Millicores of a cpu quantity (rounded up, as Kubernetes rounds requests).
fn milli(n: i128) -> i64 {
    i64::try_from((n + 999_999).div_euclid(1_000_000)).unwrap_or(i64::MAX)
}

/// Whole units of a quantity (bytes, counts), rounded up.
fn whole(n: i128) -> i64 {
    i64::try_from((n + NANO - 1).div_euclid(NANO)).unwrap_or(i64::MAX)
}

fn is_gpu(resource: &str) -> bool {
    resource.contains('/') && resource.ends_with("gpu")
}

/// A pod's requests while it is in phase Running: cpu, memory and GPUs, each the larger of the
/// sum over its containers and its largest init container, plus overhead (as the scheduler
/// and ResourceQuota count them). Any other phase contributes nothing.
pub fn pod(p: &Pod) -> Amounts {
    let mut out = Amounts::new();
    let running = p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running");
    let Some(spec) = p.spec.as_ref().filter(|_| running) else {
        return out;
    };
    let mut resources: std::collections::BTreeSet<String> =
        ["cpu", "memory"].into_iter().map(String::from).collect();
    for c in spec
        .containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
    {
        if let Some(r) = c.resources.as_ref().and_then(|r| r.requests.as_ref()) {
            resources.extend(r.keys().filter(|k| is_gpu(k)).cloned());
        }
    }
    for resource in resources {
        let of = |c: &k8s_openapi::api::core::v1::Container| {
            c.resources
                .as_ref()
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get(&resource))
                .map_or(0, nanos)
        };
        let sum: i128 = spec.containers.iter().map(of).sum();
        let init = spec
            .init_containers
            .iter()
            .flatten()
            .map(of)
            .max()
            .unwrap_or(0);
        let overhead = spec
            .overhead
            .as_ref()
            .and_then(|o| o.get(&resource))
            .map_or(0, nanos);
        let n = sum.max(init) + overhead;
        match resource.as_str() {
            "cpu" => {
                out.insert(Amount::CpuRequested, milli(n));
            }
            "memory" => {
                out.insert(Amount::MemoryRequested, whole(n));
            }
            gpu => {
                out.insert(Amount::Gpu(gpu.to_string()), whole(n));
            }
        }
    }
    out.retain(|_, v| *v != 0);
    out
}

/// A ResourceQuota's hard: cpu and memory requests, storage requests and load balancers.
pub fn quota(q: &ResourceQuota) -> Amounts {
    let mut out = Amounts::new();
    let Some(hard) = q.spec.as_ref().and_then(|s| s.hard.as_ref()) else {
        return out;
    };
    for (key, amount, scale) in [
        ("requests.cpu", Amount::CpuReserved, true),
        ("requests.memory", Amount::MemoryReserved, false),
        ("requests.storage", Amount::StorageReserved, false),
        (
            "services.loadbalancers",
            Amount::LoadbalancersReserved,
            false,
        ),
    ] {
        if let Some(v) = hard.get(key) {
            let n = nanos(v);
            out.insert(amount, if scale { milli(n) } else { whole(n) });
        }
    }
    out
}

/// A claim's capacity while it is Bound.
pub fn claim(c: &PersistentVolumeClaim) -> Amounts {
    let mut out = Amounts::new();
    let status = c.status.as_ref();
    if status.and_then(|s| s.phase.as_deref()) != Some("Bound") {
        return out;
    }
    if let Some(cap) = status
        .and_then(|s| s.capacity.as_ref())
        .and_then(|c| c.get("storage"))
    {
        out.insert(Amount::StorageBound, whole(nanos(cap)));
    }
    out
}

/// What the resource metrics API reports a pod using now: (millicores, bytes).
pub fn pod_usage(containers: &serde_json::Value) -> (i64, i64) {
    let mut cpu = 0i128;
    let mut memory = 0i128;
    for c in containers.as_array().into_iter().flatten() {
        let q = |r: &str| {
            c.pointer(&format!("/usage/{r}"))
                .and_then(serde_json::Value::as_str)
                .and_then(quantity::nanos)
                .unwrap_or(0)
        };
        cpu += q("cpu");
        memory += q("memory");
    }
    (milli(cpu), whole(memory))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
        serde_json::from_value(v).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_running_pod_counts_its_effective_requests() {
        let p: Pod = from(json!({
            "metadata": {"name": "p"},
            "spec": {
                "containers": [
                    {"name": "a", "resources": {"requests": {"cpu": "250m", "memory": "64Mi", "nvidia.com/gpu": "1"}}},
                    {"name": "b", "resources": {"requests": {"cpu": "0.25", "memory": "64Mi"}}}
                ],
                "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "1"}}}],
                "overhead": {"cpu": "10m"}
            },
            "status": {"phase": "Running"}
        }));
        let a = pod(&p);
        assert_eq!(a[&Amount::CpuRequested], 1010);
        assert_eq!(a[&Amount::MemoryRequested], 128 * 1024 * 1024);
        assert_eq!(a[&Amount::Gpu("nvidia.com/gpu".into())], 1);
        let mut pending = p.clone();
        pending.status = Some(from(json!({"phase": "Pending"})));
        assert!(pod(&pending).is_empty());
    }

    #[test]
    fn quotas_and_bound_claims() {
        let q: ResourceQuota = from(json!({"spec": {"hard": {
            "requests.cpu": "4", "requests.memory": "8Gi", "requests.storage": "100Gi",
            "services.loadbalancers": "1", "pods": "20"}}}));
        let a = quota(&q);
        assert_eq!(a[&Amount::CpuReserved], 4000);
        assert_eq!(a[&Amount::MemoryReserved], 8 << 30);
        assert_eq!(a[&Amount::LoadbalancersReserved], 1);
        let c: PersistentVolumeClaim =
            from(json!({"status": {"phase": "Bound", "capacity": {"storage": "10Gi"}}}));
        assert_eq!(claim(&c)[&Amount::StorageBound], 10 << 30);
        let pending: PersistentVolumeClaim = from(json!({"status": {"phase": "Pending"}}));
        assert!(claim(&pending).is_empty());
    }
}
