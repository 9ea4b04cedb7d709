//! NetworkPolicies of a tenant namespace: deny everything, then allow DNS, the tenant's own
//! namespaces, the platform's ingress controller, internet egress when the spec asks for it, and
//! each explicit data-sharing link between agencies, on both of its ends.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt;

use super::{LABEL_NAMESPACE, LABEL_TENANT, Platform, meta};
use govcloud_tenant::crd::{Egress, Tenant, TenantNamespace};
use govcloud_tenant::names::namespace_name;

/// Label every namespace gets from Kubernetes itself.
const LABEL_NAMESPACE_NAME: &str = "kubernetes.io/metadata.name";

/// Address ranges that are not "the internet": private, carrier-grade NAT and link-local
/// (cloud metadata services live there).
const NOT_INTERNET: [&str; 5] = [
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "169.254.0.0/16",
];

/// A link another tenant granted: pods in this tenant's `from_namespace` may connect to the
/// `to_tenant`'s namespaces on `ports`. It needs an egress rule on this side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundLink {
    pub to_tenant: String,
    pub from_namespace: String,
    pub ports: BTreeSet<i32>,
}

/// Every link that other tenants grant to `me`, merged per (target tenant, source namespace).
pub fn outbound_links<'a>(
    me: &str,
    tenants: impl IntoIterator<Item = &'a Tenant>,
) -> Vec<OutboundLink> {
    let mut merged: BTreeMap<(String, String), BTreeSet<i32>> = BTreeMap::new();
    for t in tenants
        .into_iter()
        .filter(|t| t.name_any() != me && t.metadata.deletion_timestamp.is_none())
    {
        for g in t.spec.network.allow_from.iter().filter(|g| g.tenant == me) {
            merged
                .entry((t.name_any(), g.namespace.clone()))
                .or_default()
                .extend(g.ports.iter().map(|p| p.0));
        }
    }
    merged
        .into_iter()
        .map(|((to_tenant, from_namespace), ports)| OutboundLink {
            to_tenant,
            from_namespace,
            ports,
        })
        .collect()
}

fn selector(labels: &[(&str, &str)]) -> LabelSelector {
    LabelSelector {
        match_labels: Some(
            labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
        match_expressions: None,
    }
}

fn namespaces(labels: &[(&str, &str)]) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(selector(labels)),
        ..NetworkPolicyPeer::default()
    }
}

fn tcp(ports: &BTreeSet<i32>) -> Vec<NetworkPolicyPort> {
    ports
        .iter()
        .map(|p| NetworkPolicyPort {
            port: Some(IntOrString::Int(*p)),
            protocol: Some("TCP".into()),
            end_port: None,
        })
        .collect()
}

fn policy(
    tenant: &Tenant,
    namespace: &str,
    name: &str,
    ingress: Option<Vec<NetworkPolicyIngressRule>>,
    egress: Option<Vec<NetworkPolicyEgressRule>>,
) -> NetworkPolicy {
    let mut types = Vec::new();
    if ingress.is_some() {
        types.push("Ingress".to_string());
    }
    if egress.is_some() {
        types.push("Egress".to_string());
    }
    NetworkPolicy {
        metadata: meta(tenant, name, Some(namespace)),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(types),
            ingress,
            egress,
        }),
    }
}

/// The policy that lets `tenant`'s namespace `namespace` in. Tenant and namespace names are DNS
/// labels, which hold no dots, so dots keep the name unambiguous: `a` + `b-c` and `a-b` + `c`
/// differ (`govcloud-link-from.a.b-c`, `govcloud-link-from.a-b.c`), where dashes would not.
pub fn link_from_name(tenant: &str, namespace: &str) -> String {
    format!("govcloud-link-from.{tenant}.{namespace}")
}

/// The policy that lets this namespace reach `tenant`, which granted it a link.
pub fn link_to_name(tenant: &str) -> String {
    format!("govcloud-link-to.{tenant}")
}

/// All NetworkPolicies of one tenant namespace, given the links other tenants grant it.
pub fn build_network_policies(
    tenant: &Tenant,
    ns: &TenantNamespace,
    outbound: &[OutboundLink],
    platform: &Platform,
) -> Vec<NetworkPolicy> {
    let me = tenant.name_any();
    let namespace = namespace_name(&me, &ns.name);
    let ns = ns.name.as_str();
    let dns_ports = ["UDP", "TCP"]
        .into_iter()
        .map(|p| NetworkPolicyPort {
            port: Some(IntOrString::Int(53)),
            protocol: Some(p.into()),
            end_port: None,
        })
        .collect();
    let mut out = vec![
        policy(
            tenant,
            &namespace,
            "govcloud-default-deny",
            Some(vec![]),
            Some(vec![]),
        ),
        policy(
            tenant,
            &namespace,
            "govcloud-allow-dns",
            None,
            Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    namespace_selector: Some(selector(&[(LABEL_NAMESPACE_NAME, "kube-system")])),
                    pod_selector: Some(selector(&[("k8s-app", "kube-dns")])),
                    ip_block: None,
                }]),
                ports: Some(dns_ports),
            }]),
        ),
        policy(
            tenant,
            &namespace,
            "govcloud-allow-same-tenant",
            Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![namespaces(&[(LABEL_TENANT, &me)])]),
                ports: None,
            }]),
            Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![namespaces(&[(LABEL_TENANT, &me)])]),
                ports: None,
            }]),
        ),
        policy(
            tenant,
            &namespace,
            "govcloud-allow-ingress-controller",
            Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![namespaces(&[(
                    LABEL_NAMESPACE_NAME,
                    &platform.ingress_namespace,
                )])]),
                ports: None,
            }]),
            None,
        ),
    ];
    if tenant.spec.network.egress == Egress::Internet {
        out.push(policy(
            tenant,
            &namespace,
            "govcloud-allow-internet",
            None,
            Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![NetworkPolicyPeer {
                    ip_block: Some(IPBlock {
                        cidr: "0.0.0.0/0".into(),
                        except: Some(NOT_INTERNET.iter().map(|s| s.to_string()).collect()),
                    }),
                    ..NetworkPolicyPeer::default()
                }]),
                ports: None,
            }]),
        ));
    }
    let mut inbound: BTreeMap<(&str, &str), BTreeSet<i32>> = BTreeMap::new();
    for g in &tenant.spec.network.allow_from {
        inbound
            .entry((g.tenant.as_str(), g.namespace.as_str()))
            .or_default()
            .extend(g.ports.iter().map(|p| p.0));
    }
    for ((from_tenant, from_ns), ports) in inbound {
        out.push(policy(
            tenant,
            &namespace,
            &link_from_name(from_tenant, from_ns),
            Some(vec![NetworkPolicyIngressRule {
                from: Some(vec![namespaces(&[
                    (LABEL_TENANT, from_tenant),
                    (LABEL_NAMESPACE, from_ns),
                ])]),
                ports: Some(tcp(&ports)),
            }]),
            None,
        ));
    }
    for link in outbound.iter().filter(|l| l.from_namespace == ns) {
        out.push(policy(
            tenant,
            &namespace,
            &link_to_name(&link.to_tenant),
            None,
            Some(vec![NetworkPolicyEgressRule {
                to: Some(vec![namespaces(&[(LABEL_TENANT, &link.to_tenant)])]),
                ports: Some(tcp(&link.ports)),
            }]),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use govcloud_tenant::fixtures::{TENANT, tenant};

    fn names(policies: &[NetworkPolicy]) -> Vec<String> {
        policies
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect()
    }

    #[test]
    fn deny_by_default_then_explicit_allows() {
        let t = tenant(TENANT);
        let policies = build_network_policies(&t, &t.spec.namespaces[0], &[], &Platform::default());
        assert_eq!(
            names(&policies),
            [
                "govcloud-default-deny",
                "govcloud-allow-dns",
                "govcloud-allow-same-tenant",
                "govcloud-allow-ingress-controller",
                "govcloud-allow-internet",
                "govcloud-link-from.nghean-sotc.prod"
            ]
        );
        let deny = policies[0].spec.clone().unwrap_or_default();
        assert_eq!(
            deny.policy_types,
            Some(vec!["Ingress".to_string(), "Egress".to_string()])
        );
        assert_eq!(
            (deny.ingress, deny.egress),
            (Some(vec![]), Some(vec![])),
            "no rule: nothing allowed"
        );
        let link = policies[5]
            .spec
            .clone()
            .unwrap_or_default()
            .ingress
            .unwrap_or_default();
        let from = link[0].from.clone().unwrap_or_default()[0]
            .namespace_selector
            .clone()
            .and_then(|s| s.match_labels)
            .unwrap_or_default();
        assert_eq!(
            from.get("govcloud.io/tenant").map(String::as_str),
            Some("nghean-sotc")
        );
        assert_eq!(
            from.get("govcloud.io/namespace").map(String::as_str),
            Some("prod")
        );
        assert_eq!(
            link[0].ports.clone().unwrap_or_default()[0].port,
            Some(IntOrString::Int(443))
        );
    }

    #[test]
    fn no_internet_unless_asked() {
        let t = tenant(&TENANT.replace("egress: Internet", "egress: None"));
        let policies = build_network_policies(&t, &t.spec.namespaces[0], &[], &Platform::default());
        assert!(!names(&policies).contains(&"govcloud-allow-internet".to_string()));
    }

    #[test]
    fn a_grant_opens_egress_on_the_other_side_only_from_the_granted_namespace() {
        let granter = tenant(TENANT);
        let sotc = tenant(
            &TENANT
                .replace("name: nghean-stttt", "name: nghean-sotc")
                .replace(
                    "allowFrom: [ { tenant: nghean-sotc, namespace: prod, ports: [443] } ]",
                    "allowFrom: []",
                ),
        );
        let links = outbound_links("nghean-sotc", [&granter, &sotc]);
        assert_eq!(
            links,
            [OutboundLink {
                to_tenant: "nghean-stttt".into(),
                from_namespace: "prod".into(),
                ports: BTreeSet::from([443])
            }]
        );
        let prod = names(&build_network_policies(
            &sotc,
            &sotc.spec.namespaces[0],
            &links,
            &Platform::default(),
        ));
        assert!(prod.contains(&"govcloud-link-to.nghean-stttt".to_string()));
        let staging = names(&build_network_policies(
            &sotc,
            &sotc.spec.namespaces[1],
            &links,
            &Platform::default(),
        ));
        assert!(
            !staging.iter().any(|n| n.starts_with("govcloud-link-to")),
            "staging was not granted"
        );
    }

    #[test]
    fn link_policy_names_are_unambiguous_and_valid() {
        // Two different grants whose dashed names would be the same.
        let a = link_from_name("a", "b-c");
        let b = link_from_name("a-b", "c");
        assert_ne!(a, b);
        let longest = link_from_name(&"t".repeat(63), &"n".repeat(30));
        for name in [a, b, longest, link_to_name(&"t".repeat(63))] {
            assert!(
                govcloud_kube_values::name::is_dns_subdomain(&name),
                "{name} is not a valid object name"
            );
        }
        // Neither kind of link can be mistaken for the other or for a fixed policy.
        assert!(!link_to_name("from").starts_with("govcloud-link-from"));
    }
}
