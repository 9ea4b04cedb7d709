//! The ResourceQuota and LimitRange that bound a tenant namespace.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

use super::{Platform, meta};
use govcloud_tenant::crd::{Tenant, TenantNamespace};
use govcloud_tenant::names::namespace_name;
use kube::ResourceExt;

pub const QUOTA_NAME: &str = "govcloud-quota";
pub const LIMIT_RANGE_NAME: &str = "govcloud-limits";

fn q(s: impl Into<String>) -> Quantity {
    Quantity(s.into())
}

/// The quota: CPU and memory bound both requests and limits; a suspended tenant gets zero pods.
pub fn build_resource_quota(
    tenant: &Tenant,
    ns: &TenantNamespace,
    platform: &Platform,
) -> ResourceQuota {
    let quota = &ns.quota;
    let pods = if tenant.spec.suspended { 0 } else { quota.pods };
    let hard = BTreeMap::from([
        ("requests.cpu".to_string(), q(&quota.cpu.0)),
        ("limits.cpu".to_string(), q(&quota.cpu.0)),
        ("requests.memory".to_string(), q(&quota.memory.0)),
        ("limits.memory".to_string(), q(&quota.memory.0)),
        ("requests.storage".to_string(), q(&quota.storage.0)),
        (
            "persistentvolumeclaims".to_string(),
            q(platform.max_claims_per_namespace.to_string()),
        ),
        ("pods".to_string(), q(pods.to_string())),
        (
            "services.loadbalancers".to_string(),
            q(quota.load_balancers.to_string()),
        ),
        ("services.nodeports".to_string(), q("0")),
    ]);
    let name = namespace_name(&tenant.name_any(), &ns.name);
    ResourceQuota {
        metadata: meta(tenant, QUOTA_NAME, Some(&name)),
        spec: Some(ResourceQuotaSpec {
            hard: Some(hard),
            ..ResourceQuotaSpec::default()
        }),
        status: None,
    }
}

/// The LimitRange giving containers the tenant's default requests and limits.
pub fn build_limit_range(tenant: &Tenant, ns: &TenantNamespace) -> LimitRange {
    let l = &tenant.spec.limits;
    let resources = |cpu: &str, memory: &str| {
        BTreeMap::from([
            ("cpu".to_string(), q(cpu)),
            ("memory".to_string(), q(memory)),
        ])
    };
    let name = namespace_name(&tenant.name_any(), &ns.name);
    LimitRange {
        metadata: meta(tenant, LIMIT_RANGE_NAME, Some(&name)),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".into(),
                default: Some(resources(&l.default.cpu.0, &l.default.memory.0)),
                default_request: Some(resources(
                    &l.default_request.cpu.0,
                    &l.default_request.memory.0,
                )),
                ..LimitRangeItem::default()
            }],
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use govcloud_tenant::fixtures::{TENANT, tenant};

    fn hard(rq: &ResourceQuota) -> BTreeMap<String, String> {
        rq.spec
            .as_ref()
            .and_then(|s| s.hard.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0))
            .collect()
    }

    #[test]
    fn quota_bounds_requests_limits_storage_pods_and_forbids_node_ports() {
        let t = tenant(TENANT);
        let rq = build_resource_quota(&t, &t.spec.namespaces[0], &Platform::default());
        assert_eq!(rq.metadata.namespace.as_deref(), Some("nghean-stttt-prod"));
        let h = hard(&rq);
        for (k, v) in [
            ("requests.cpu", "8"),
            ("limits.cpu", "8"),
            ("requests.memory", "32Gi"),
            ("limits.memory", "32Gi"),
            ("requests.storage", "200Gi"),
            ("pods", "100"),
            ("services.loadbalancers", "1"),
            ("services.nodeports", "0"),
            ("persistentvolumeclaims", "50"),
        ] {
            assert_eq!(h.get(k).map(String::as_str), Some(v), "{k}");
        }
    }

    #[test]
    fn suspension_drops_pods_to_zero_and_keeps_the_rest() {
        let t = tenant(&TENANT.replace("billing:", "suspended: true\n  billing:"));
        let h = hard(&build_resource_quota(
            &t,
            &t.spec.namespaces[1],
            &Platform::default(),
        ));
        assert_eq!(h.get("pods").map(String::as_str), Some("0"));
        assert_eq!(h.get("requests.cpu").map(String::as_str), Some("2"));
    }

    #[test]
    fn limit_range_has_the_tenant_defaults() {
        let t = tenant(TENANT);
        let lr = build_limit_range(&t, &t.spec.namespaces[0]);
        let item = &lr.spec.unwrap_or_default().limits[0];
        assert_eq!(item.type_, "Container");
        assert_eq!(
            item.default_request
                .as_ref()
                .and_then(|d| d.get("cpu"))
                .map(|q| q.0.as_str()),
            Some("100m")
        );
        assert_eq!(
            item.default
                .as_ref()
                .and_then(|d| d.get("memory"))
                .map(|q| q.0.as_str()),
            Some("512Mi")
        );
    }
}
