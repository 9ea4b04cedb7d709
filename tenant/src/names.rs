//! Names: what a tenant's namespace is called in Kubernetes, which names the platform keeps for
//! itself, and whether an existing namespace is a tenant's own. Pure: no client.
//!
//! A tenant's namespace is `<tenant>-<name>`. That is readable but not unique on its own — tenant
//! `a` with namespace `b-c` and tenant `a-b` with namespace `c` both make `a-b-c` — so a name is
//! only ever *claimed*: the operator creates a namespace it finds absent, and touches an existing
//! one only when its labels say it was made for that very Tenant ([`judge_namespace`]). The API
//! keeps full names unique in its database before any Tenant reaches the cluster.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

/// The field manager of every write the operator makes.
pub const FIELD_MANAGER: &str = "govcloud-operator";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_TENANT: &str = "govcloud.io/tenant";
pub const LABEL_ORGANIZATION: &str = "govcloud.io/organization";
/// The short name of a tenant namespace (`prod` in `nghean-stttt-prod`), for grants' selectors.
pub const LABEL_NAMESPACE: &str = "govcloud.io/namespace";

/// The ServiceAccount each tenant namespace has for Helm: the operator makes it, the API issues
/// kubeconfigs for it.
pub const DEPLOYER: &str = "deployer";

/// The namespace govcloud itself runs in, unless configured otherwise.
pub const DEFAULT_PLATFORM_NAMESPACE: &str = "govcloud-system";
/// The namespace of the platform's ingress controller, unless configured otherwise.
pub const DEFAULT_INGRESS_NAMESPACE: &str = "ingress-nginx";

/// The platform's namespaces when nothing else is configured: govcloud's own and the ingress
/// controller's. Both binaries must be given the same list.
pub fn default_platform_namespaces() -> Vec<String> {
    vec![
        DEFAULT_PLATFORM_NAMESPACE.to_string(),
        DEFAULT_INGRESS_NAMESPACE.to_string(),
    ]
}

/// The longest name Kubernetes allows for a namespace.
pub const MAX_NAMESPACE_NAME: usize = 63;

/// Namespaces no tenant may ever have, whatever the configuration: Kubernetes' own.
pub const KUBERNETES_NAMESPACES: [&str; 1] = ["default"];
/// Kubernetes reserves this prefix for its system namespaces (`kube-system`, `kube-public`,
/// `kube-node-lease`, and any it adds later).
pub const KUBERNETES_PREFIX: &str = "kube-";

/// The Kubernetes namespace a tenant's namespace becomes.
pub fn namespace_name(tenant: &str, short: &str) -> String {
    format!("{tenant}-{short}")
}

/// Whether `name` belongs to the platform: Kubernetes' own namespaces, or one of
/// `platform_namespaces` (govcloud's own namespace, the ingress controller's, and any the
/// platform's operators list).
pub fn is_reserved_namespace(name: &str, platform_namespaces: &[String]) -> bool {
    KUBERNETES_NAMESPACES.contains(&name)
        || name.starts_with(KUBERNETES_PREFIX)
        || platform_namespaces.iter().any(|p| p == name)
}

/// What a tenant may do with a namespace name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// No such namespace: the tenant may create it.
    Free,
    /// The namespace was made for this tenant.
    Ours,
    /// Someone else's: the tenant must not touch it. The message names the namespace but never
    /// the holder.
    Taken(String),
}

/// Judges whether `tenant` may have the namespace `name`, given the namespace's metadata if it
/// exists. A namespace is a tenant's own only when it carries govcloud's managed-by label and
/// that tenant's label, and no owner reference to another Tenant; anything else — another
/// tenant's label or owner, or a namespace govcloud did not make — is taken.
pub fn judge_namespace(
    name: &str,
    existing: Option<&ObjectMeta>,
    tenant: &str,
    platform_namespaces: &[String],
) -> Claim {
    if is_reserved_namespace(name, platform_namespaces) {
        return Claim::Taken(format!(
            "namespace {name} is reserved for the platform; choose another namespace name"
        ));
    }
    let Some(meta) = existing else {
        return Claim::Free;
    };
    let empty = BTreeMap::new();
    let labels = meta.labels.as_ref().unwrap_or(&empty);
    let managed = labels.get(LABEL_MANAGED_BY).map(String::as_str) == Some(FIELD_MANAGER);
    let holder = labels.get(LABEL_TENANT).map(String::as_str);
    let other_owner = meta.owner_references.iter().flatten().any(|o| {
        o.kind == "Tenant" && o.api_version.starts_with("govcloud.io/") && o.name != tenant
    });
    if managed && holder == Some(tenant) && !other_owner {
        Claim::Ours
    } else if managed && holder.is_some() || other_owner {
        Claim::Taken(format!(
            "namespace {name} already belongs to another tenant; choose another namespace name"
        ))
    } else {
        Claim::Taken(format!(
            "namespace {name} already exists and was not made by govcloud for this tenant; choose another namespace name"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    fn meta(labels: &[(&str, &str)], owner: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            owner_references: owner.map(|o| {
                vec![OwnerReference {
                    api_version: "govcloud.io/v1alpha1".into(),
                    kind: "Tenant".into(),
                    name: o.into(),
                    uid: "u".into(),
                    ..OwnerReference::default()
                }]
            }),
            ..ObjectMeta::default()
        }
    }

    const MANAGED: (&str, &str) = (LABEL_MANAGED_BY, FIELD_MANAGER);

    #[test]
    fn kubernetes_and_platform_namespaces_are_never_a_tenants() {
        let platform = vec!["govcloud-system".to_string(), "ingress-nginx".to_string()];
        for name in [
            "default",
            "kube-system",
            "kube-public",
            "kube-node-lease",
            "kube-anything",
            "govcloud-system",
            "ingress-nginx",
        ] {
            assert!(is_reserved_namespace(name, &platform), "{name}");
            assert!(
                matches!(judge_namespace(name, None, "kube", &platform), Claim::Taken(m) if m.contains("reserved")),
                "{name} is refused even when it does not exist yet"
            );
        }
        for name in ["kubes-prod", "defaults", "govcloud-system-2", "a-kube-b"] {
            assert!(!is_reserved_namespace(name, &platform), "{name}");
        }
    }

    #[test]
    fn only_a_namespace_made_for_this_very_tenant_is_ours() {
        let p: Vec<String> = Vec::new();
        assert_eq!(judge_namespace("a-b-c", None, "a", &p), Claim::Free);
        let ours = meta(&[MANAGED, (LABEL_TENANT, "a-b")], Some("a-b"));
        assert_eq!(
            judge_namespace("a-b-c", Some(&ours), "a-b", &p),
            Claim::Ours
        );
        // `a` with namespace `b-c` asks for the same Kubernetes name.
        let Claim::Taken(msg) = judge_namespace("a-b-c", Some(&ours), "a", &p) else {
            panic!("another tenant's namespace was not taken");
        };
        assert!(msg.contains("a-b-c") && msg.contains("another tenant"));
        assert!(!msg.contains("a-b "), "the holder is not named: {msg}");
        // A label alone does not hand over a namespace whose owner is another Tenant.
        let mixed = meta(&[MANAGED, (LABEL_TENANT, "a")], Some("a-b"));
        assert!(matches!(
            judge_namespace("a-b-c", Some(&mixed), "a", &p),
            Claim::Taken(_)
        ));
        // A namespace someone made by hand, even labelled with the tenant's name, is not adopted.
        for foreign in [
            meta(&[], None),
            meta(&[(LABEL_TENANT, "a")], None),
            meta(&[MANAGED], None),
        ] {
            assert!(
                matches!(judge_namespace("a-x", Some(&foreign), "a", &p), Claim::Taken(m) if m.contains("not made by govcloud")),
                "{foreign:?}"
            );
        }
    }
}
