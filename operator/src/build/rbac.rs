//! RBAC for tenants: a platform ClusterRole like `admin` that cannot write NetworkPolicies,
//! ResourceQuotas or LimitRanges, bound in each tenant namespace to the owners and to the
//! `deployer` ServiceAccount that Helm uses. Nothing cluster-scoped is granted to a tenant.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::ResourceExt;

use super::{FIELD_MANAGER, LABEL_MANAGED_BY, Platform, meta};
use govcloud_tenant::crd::{OwnerKind, Tenant, TenantNamespace};
use govcloud_tenant::names::namespace_name;

pub const OWNERS_BINDING: &str = "govcloud-owners";
pub use govcloud_tenant::names::DEPLOYER;
pub const DEPLOYER_BINDING: &str = "govcloud-deployer";

const ALL: &[&str] = &[
    "get",
    "list",
    "watch",
    "create",
    "update",
    "patch",
    "delete",
    "deletecollection",
];
const READ: &[&str] = &["get", "list", "watch"];

fn rule(groups: &[&str], resources: &[&str], verbs: &[&str]) -> PolicyRule {
    let strings = |v: &[&str]| Some(v.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    PolicyRule {
        api_groups: strings(groups),
        resources: strings(resources),
        verbs: verbs.iter().map(|s| s.to_string()).collect(),
        ..PolicyRule::default()
    }
}

/// The ClusterRole tenants are bound to, namespace by namespace.
pub fn build_tenant_cluster_role(platform: &Platform) -> ClusterRole {
    ClusterRole {
        metadata: ObjectMeta {
            name: Some(platform.tenant_role.clone()),
            labels: Some(BTreeMap::from([(
                LABEL_MANAGED_BY.to_string(),
                FIELD_MANAGER.to_string(),
            )])),
            ..ObjectMeta::default()
        },
        rules: Some(vec![
            rule(
                &[""],
                &[
                    "pods",
                    "pods/log",
                    "pods/exec",
                    "pods/attach",
                    "pods/portforward",
                    "services",
                    "endpoints",
                    "configmaps",
                    "secrets",
                    "persistentvolumeclaims",
                    "serviceaccounts",
                ],
                ALL,
            ),
            rule(
                &[""],
                &[
                    "events",
                    "resourcequotas",
                    "limitranges",
                    "pods/status",
                    "services/status",
                ],
                READ,
            ),
            rule(&[""], &["namespaces"], &["get"]),
            rule(
                &["apps"],
                &[
                    "deployments",
                    "deployments/scale",
                    "statefulsets",
                    "statefulsets/scale",
                    "daemonsets",
                    "replicasets",
                    "replicasets/scale",
                ],
                ALL,
            ),
            rule(&["apps"], &["controllerrevisions"], READ),
            rule(&["batch"], &["jobs", "cronjobs"], ALL),
            rule(&["autoscaling"], &["horizontalpodautoscalers"], ALL),
            rule(&["policy"], &["poddisruptionbudgets"], ALL),
            rule(&["networking.k8s.io"], &["ingresses"], ALL),
            rule(&["networking.k8s.io"], &["networkpolicies"], READ),
            rule(&["discovery.k8s.io"], &["endpointslices"], READ),
            rule(
                &["rbac.authorization.k8s.io"],
                &["roles", "rolebindings"],
                ALL,
            ),
            rule(&["coordination.k8s.io"], &["leases"], ALL),
            rule(
                &["events.k8s.io"],
                &["events"],
                &["get", "list", "watch", "create", "patch"],
            ),
            rule(&["metrics.k8s.io"], &["pods"], &["get", "list"]),
        ]),
        aggregation_rule: None,
    }
}

fn binding(
    tenant: &Tenant,
    namespace: &str,
    name: &str,
    subjects: Vec<Subject>,
    platform: &Platform,
) -> RoleBinding {
    RoleBinding {
        metadata: meta(tenant, name, Some(namespace)),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".into(),
            kind: "ClusterRole".into(),
            name: platform.tenant_role.clone(),
        },
        subjects: Some(subjects),
    }
}

/// The tenant's owners, bound to the tenant role in this namespace only.
pub fn build_owner_role_binding(
    tenant: &Tenant,
    ns: &TenantNamespace,
    platform: &Platform,
) -> RoleBinding {
    let subjects = tenant
        .spec
        .owners
        .iter()
        .map(|o| Subject {
            kind: match o.kind {
                OwnerKind::User => "User".into(),
                OwnerKind::Group => "Group".into(),
            },
            name: o.name.clone(),
            api_group: Some("rbac.authorization.k8s.io".into()),
            namespace: None,
        })
        .collect();
    binding(
        tenant,
        &namespace_name(&tenant.name_any(), &ns.name),
        OWNERS_BINDING,
        subjects,
        platform,
    )
}

/// The ServiceAccount Helm deploys with (its kubeconfig comes from the API's TokenRequest).
pub fn build_deployer_service_account(tenant: &Tenant, ns: &TenantNamespace) -> ServiceAccount {
    ServiceAccount {
        metadata: meta(
            tenant,
            DEPLOYER,
            Some(&namespace_name(&tenant.name_any(), &ns.name)),
        ),
        ..ServiceAccount::default()
    }
}

pub fn build_deployer_role_binding(
    tenant: &Tenant,
    ns: &TenantNamespace,
    platform: &Platform,
) -> RoleBinding {
    let namespace = namespace_name(&tenant.name_any(), &ns.name);
    let subject = Subject {
        kind: "ServiceAccount".into(),
        name: DEPLOYER.into(),
        namespace: Some(namespace.clone()),
        api_group: None,
    };
    binding(
        tenant,
        &namespace,
        DEPLOYER_BINDING,
        vec![subject],
        platform,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use govcloud_tenant::fixtures::{TENANT, tenant};

    fn writes(role: &ClusterRole, group: &str, resource: &str) -> bool {
        role.rules.clone().unwrap_or_default().iter().any(|r| {
            r.api_groups
                .clone()
                .unwrap_or_default()
                .iter()
                .any(|g| g == group)
                && r.resources
                    .clone()
                    .unwrap_or_default()
                    .iter()
                    .any(|x| x == resource)
                && r.verbs
                    .iter()
                    .any(|v| matches!(v.as_str(), "create" | "update" | "patch" | "delete"))
        })
    }

    #[test]
    fn the_tenant_role_cannot_loosen_isolation() {
        let role = build_tenant_cluster_role(&Platform::default());
        assert!(writes(&role, "apps", "deployments") && writes(&role, "", "secrets"));
        assert!(!writes(&role, "networking.k8s.io", "networkpolicies"));
        assert!(!writes(&role, "", "resourcequotas"));
        assert!(!writes(&role, "", "limitranges"));
        assert!(!writes(&role, "", "namespaces"));
        let wildcard = role.rules.unwrap_or_default().iter().any(|r| {
            r.verbs.iter().any(|v| v == "*")
                || r.resources
                    .clone()
                    .unwrap_or_default()
                    .iter()
                    .any(|x| x == "*")
        });
        assert!(!wildcard, "no wildcards");
    }

    #[test]
    fn owners_and_deployer_are_bound_in_their_namespace_only() {
        let t = tenant(TENANT);
        let owners = build_owner_role_binding(&t, &t.spec.namespaces[1], &Platform::default());
        assert_eq!(
            owners.metadata.namespace.as_deref(),
            Some("nghean-stttt-staging")
        );
        assert_eq!(owners.role_ref.kind, "ClusterRole");
        let subjects = owners.subjects.unwrap_or_default();
        assert_eq!(
            (subjects[0].kind.as_str(), subjects[0].name.as_str()),
            ("Group", "nghean:stttt:admins")
        );
        let deployer = build_deployer_role_binding(&t, &t.spec.namespaces[1], &Platform::default());
        let s = &deployer.subjects.unwrap_or_default()[0];
        assert_eq!(
            (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()),
            ("ServiceAccount", "deployer", Some("nghean-stttt-staging"))
        );
    }
}
