//! The Namespace of a tenant namespace: its labels carry the tenant, the organization and the
//! Pod Security Admission level.

use k8s_openapi::api::core::v1::Namespace;
use kube::ResourceExt;

use super::{LABEL_NAMESPACE, LABEL_ORGANIZATION, meta};
use govcloud_tenant::crd::{Tenant, TenantNamespace};
use govcloud_tenant::names::namespace_name;

pub fn build_namespace(tenant: &Tenant, ns: &TenantNamespace) -> Namespace {
    let mut metadata = meta(tenant, &namespace_name(&tenant.name_any(), &ns.name), None);
    let labels = metadata.labels.get_or_insert_default();
    labels.insert(LABEL_ORGANIZATION.into(), tenant.spec.organization.clone());
    labels.insert(LABEL_NAMESPACE.into(), ns.name.clone());
    let level = tenant.spec.pod_security.as_str();
    for mode in ["enforce", "warn", "audit"] {
        labels.insert(format!("pod-security.kubernetes.io/{mode}"), level.into());
        labels.insert(
            format!("pod-security.kubernetes.io/{mode}-version"),
            "latest".into(),
        );
    }
    Namespace {
        metadata,
        ..Namespace::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use govcloud_tenant::fixtures::{TENANT, tenant};

    #[test]
    fn namespaces_carry_tenant_organization_and_pod_security() {
        let t = tenant(TENANT);
        let ns = build_namespace(&t, &t.spec.namespaces[0]);
        assert_eq!(ns.metadata.name.as_deref(), Some("nghean-stttt-prod"));
        let labels = ns.metadata.labels.unwrap_or_default();
        assert_eq!(
            labels.get("govcloud.io/tenant").map(String::as_str),
            Some("nghean-stttt")
        );
        assert_eq!(
            labels.get("govcloud.io/organization").map(String::as_str),
            Some("nghe-an")
        );
        assert_eq!(
            labels.get("govcloud.io/namespace").map(String::as_str),
            Some("prod")
        );
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/enforce")
                .map(String::as_str),
            Some("restricted")
        );
        assert_eq!(
            labels
                .get("pod-security.kubernetes.io/audit")
                .map(String::as_str),
            Some("restricted")
        );
        let owner = &ns.metadata.owner_references.unwrap_or_default()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.controller),
            ("Tenant", "nghean-stttt", Some(true))
        );
    }
}
