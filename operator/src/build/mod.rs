//! The desired Kubernetes objects for a tenant, built by pure functions from a validated spec:
//! no client, no clock. One builder per kind; [`meta`] gives every object the same labels and an
//! owner reference to its Tenant, so watches bring drift back to it and orphans can be found.

pub mod namespace;
pub mod network;
pub mod quota;
pub mod rbac;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};

use govcloud_tenant::crd::Tenant;
use govcloud_tenant::names::namespace_name;

pub use govcloud_tenant::names::{
    DEFAULT_INGRESS_NAMESPACE, DEFAULT_PLATFORM_NAMESPACE, FIELD_MANAGER, LABEL_MANAGED_BY,
    LABEL_NAMESPACE, LABEL_ORGANIZATION, LABEL_TENANT,
};

/// Platform settings the builders need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    /// The namespace of the platform's ingress controller, allowed into every tenant namespace.
    pub ingress_namespace: String,
    /// The ClusterRole tenant owners and deployers are bound to.
    pub tenant_role: String,
    /// The most PersistentVolumeClaims one namespace may hold.
    pub max_claims_per_namespace: u32,
    /// The platform's own namespaces besides Kubernetes' (`default`, `kube-*`): govcloud's own
    /// and any the platform's operators list. No tenant may have them, even before they exist.
    pub reserved_namespaces: Vec<String>,
}

impl Platform {
    /// Every namespace name the platform keeps: the listed ones and the ingress controller's.
    pub fn platform_namespaces(&self) -> Vec<String> {
        let mut all = self.reserved_namespaces.clone();
        all.push(self.ingress_namespace.clone());
        all
    }
}

impl Default for Platform {
    fn default() -> Self {
        Self {
            ingress_namespace: DEFAULT_INGRESS_NAMESPACE.into(),
            tenant_role: "govcloud-tenant-admin".into(),
            max_claims_per_namespace: 50,
            reserved_namespaces: vec![DEFAULT_PLATFORM_NAMESPACE.to_string()],
        }
    }
}

/// The tenant's own labels, on everything it owns.
pub fn tenant_labels(tenant: &Tenant) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_MANAGED_BY.to_string(), FIELD_MANAGER.to_string()),
        (LABEL_TENANT.to_string(), tenant.name_any()),
    ])
}

/// The owner reference every object of a tenant carries.
pub fn owner_reference(tenant: &Tenant) -> OwnerReference {
    OwnerReference {
        api_version: Tenant::api_version(&()).into_owned(),
        kind: Tenant::kind(&()).into_owned(),
        name: tenant.name_any(),
        uid: tenant.metadata.uid.clone().unwrap_or_default(),
        controller: Some(true),
        block_owner_deletion: Some(true),
    }
}

/// Metadata for an object of `tenant`, named `name`, in `namespace` (None: cluster-scoped).
pub fn meta(tenant: &Tenant, name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: namespace.map(str::to_string),
        labels: Some(tenant_labels(tenant)),
        owner_references: Some(vec![owner_reference(tenant)]),
        ..ObjectMeta::default()
    }
}

/// The full Kubernetes names of a tenant's namespaces, in spec order.
pub fn namespace_names(tenant: &Tenant) -> Vec<String> {
    let name = tenant.name_any();
    tenant
        .spec
        .namespaces
        .iter()
        .map(|n| namespace_name(&name, &n.name))
        .collect()
}
