//! NetworkPolicy evaluation with Kubernetes' semantics
//! (<https://kubernetes.io/docs/concepts/services-networking/network-policies/>): whether a pod
//! may open a connection to another pod on a port. Pure: [`allowed`] judges from the policies,
//! the two pods and their namespaces.
//!
//! - A pod is isolated for ingress (egress) when a policy in its namespace selects it and has
//!   `Ingress` (`Egress`) among its `policyTypes` (absent: `Ingress`, plus `Egress` when it has
//!   egress rules). An isolated pod admits only what some rule of some such policy allows: the
//!   policies are a union, never an intersection.
//! - A connection needs both the source's egress and the destination's ingress allowed.
//! - A rule with no peers allows every peer; with no ports, every port. A peer is a
//!   `podSelector` (in the policy's namespace), a `namespaceSelector` (every pod there), both
//!   (the pods they select together), or an `ipBlock` (a CIDR less its `except`s, matched
//!   against the pod's IP). A port is a number or a named container port of the destination
//!   pod, with `endPort` for a range; the protocol defaults to TCP.

use std::net::IpAddr;

use serde_json::Value;

use crate::selector::LabelSelector;

/// One end of a connection: a pod and its namespace.
#[derive(Debug, Clone, Copy)]
pub struct End<'a> {
    pub pod: &'a Value,
    pub namespace: &'a Value,
}

impl End<'_> {
    fn ns_name(&self) -> &str {
        self.namespace
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    fn ip(&self) -> Option<IpAddr> {
        self.pod
            .pointer("/status/podIP")
            .and_then(Value::as_str)
            .and_then(|ip| ip.parse().ok())
    }
}

fn selects(selector: Option<&Value>, obj: &Value) -> bool {
    match selector {
        None => false,
        Some(s) => LabelSelector::from_json(s).is_ok_and(|sel| sel.matches(obj)),
    }
}

fn types(policy: &Value) -> (bool, bool) {
    let spec = policy.get("spec").unwrap_or(&Value::Null);
    match spec.get("policyTypes").and_then(Value::as_array) {
        Some(t) => (
            t.iter().any(|x| x == "Ingress"),
            t.iter().any(|x| x == "Egress"),
        ),
        None => (true, spec.get("egress").is_some()),
    }
}

fn parse_cidr(cidr: &str) -> Option<(IpAddr, u8)> {
    let (ip, len) = cidr.split_once('/')?;
    Some((ip.parse().ok()?, len.parse().ok()?))
}

fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let Some((net, len)) = parse_cidr(cidr) else {
        return false;
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if len <= 32 => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len))
            };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if len <= 128 => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len))
            };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Whether `peer` (a rule's `from` or `to` entry of a policy in `policy_ns`) is `other`.
fn peer_matches(peer: &Value, policy_ns: &str, other: End<'_>) -> bool {
    if let Some(block) = peer.get("ipBlock") {
        let cidr = block
            .get("cidr")
            .and_then(Value::as_str)
            .unwrap_or_default();
        return other.ip().is_some_and(|ip| {
            in_cidr(ip, cidr)
                && !block
                    .get("except")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|e| in_cidr(ip, e))
        });
    }
    let pods = peer.get("podSelector");
    let namespaces = peer.get("namespaceSelector");
    let ns_ok = match namespaces {
        Some(_) => selects(namespaces, other.namespace),
        None => other.ns_name() == policy_ns,
    };
    let pod_ok = match pods {
        Some(_) => selects(pods, other.pod),
        None => true,
    };
    (pods.is_some() || namespaces.is_some()) && ns_ok && pod_ok
}

/// The number of a named port among the destination pod's container ports.
fn named_port(dest: &Value, name: &str, protocol: &str) -> Option<i64> {
    dest.pointer("/spec/containers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .flat_map(|c| {
            c.get("ports")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .find(|p| {
            p.get("name").and_then(Value::as_str) == Some(name)
                && p.get("protocol").and_then(Value::as_str).unwrap_or("TCP") == protocol
        })
        .and_then(|p| p.get("containerPort").and_then(Value::as_i64))
}

fn port_matches(rule_port: &Value, dest: &Value, port: i64, protocol: &str) -> bool {
    let proto = rule_port
        .get("protocol")
        .and_then(Value::as_str)
        .unwrap_or("TCP");
    if proto != protocol {
        return false;
    }
    let start = match rule_port.get("port") {
        None => return true,
        Some(Value::Number(n)) => n.as_i64(),
        Some(Value::String(s)) => s
            .parse::<i64>()
            .ok()
            .or_else(|| named_port(dest, s, protocol)),
        Some(_) => None,
    };
    let Some(start) = start else {
        return false;
    };
    match rule_port.get("endPort").and_then(Value::as_i64) {
        Some(end) => (start..=end).contains(&port),
        None => start == port,
    }
}

fn rule_allows(
    rule: &Value,
    peers_key: &str,
    policy_ns: &str,
    other: End<'_>,
    dest: &Value,
    port: i64,
    protocol: &str,
) -> bool {
    let peers_ok = match rule.get(peers_key).and_then(Value::as_array) {
        None => true,
        Some(p) if p.is_empty() => true,
        Some(p) => p.iter().any(|peer| peer_matches(peer, policy_ns, other)),
    };
    let ports_ok = match rule.get("ports").and_then(Value::as_array) {
        None => true,
        Some(p) if p.is_empty() => true,
        Some(p) => p.iter().any(|rp| port_matches(rp, dest, port, protocol)),
    };
    peers_ok && ports_ok
}

/// Whether the policies of `policies` (every NetworkPolicy of the cluster) let `from` open a
/// connection to `to` on `port`/`protocol`.
pub fn allowed(policies: &[&Value], from: End<'_>, to: End<'_>, port: i64, protocol: &str) -> bool {
    let judge = |subject: End<'_>, other: End<'_>, ingress: bool| {
        let ns = subject.ns_name();
        let mut isolated = false;
        for p in policies
            .iter()
            .filter(|p| p.pointer("/metadata/namespace").and_then(Value::as_str) == Some(ns))
        {
            let (ing, eg) = types(p);
            if !(if ingress { ing } else { eg }) {
                continue;
            }
            // podSelector is required; `{}` selects every pod of the namespace
            match p.pointer("/spec/podSelector") {
                Some(sel) if !sel.is_null() && selects(Some(sel), subject.pod) => {}
                _ => continue,
            }
            isolated = true;
            let (key, rules) = if ingress {
                ("from", "ingress")
            } else {
                ("to", "egress")
            };
            let hit = p
                .pointer(&format!("/spec/{rules}"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .any(|r| rule_allows(r, key, ns, other, to.pod, port, protocol));
            if hit {
                return true;
            }
        }
        !isolated
    };
    judge(from, to, false) && judge(to, from, true)
}

#[cfg(test)]
mod tests {
    //! Cases of the upstream e2e suite's model (kubernetes/kubernetes,
    //! `test/e2e/network/netpol/network_policy.go`: namespaces x, y, z, each with pods a, b, c
    //! labelled `pod: <name>`, namespaces labelled `ns: <name>`; the truth tables there say which
    //! of the 9 × 9 connections on port 80 the policy allows), reproduced here as the pairs
    //! each table changes.
    use super::*;
    use serde_json::json;

    struct Model {
        pods: Vec<(String, Value)>,
        namespaces: Vec<Value>,
    }

    fn model() -> Model {
        let mut pods = Vec::new();
        let mut namespaces = Vec::new();
        for (i, ns) in ["x", "y", "z"].iter().enumerate() {
            namespaces.push(json!({"metadata": {"name": ns, "labels": {"ns": ns, "kubernetes.io/metadata.name": ns}}}));
            for (j, pod) in ["a", "b", "c"].iter().enumerate() {
                pods.push((
                    format!("{ns}/{pod}"),
                    json!({"metadata": {"name": pod, "namespace": ns, "labels": {"pod": pod}},
                           "spec": {"containers": [{"name": "c", "ports": [{"name": "serve-80", "containerPort": 80}, {"name": "serve-81", "containerPort": 81}]}]},
                           "status": {"podIP": format!("10.0.{i}.{}", j + 1)}}),
                ));
            }
        }
        Model { pods, namespaces }
    }

    impl Model {
        fn end(&self, who: &str) -> End<'_> {
            let pod = &self
                .pods
                .iter()
                .find(|(n, _)| n == who)
                .map(|(_, p)| p)
                .unwrap_or(&Value::Null);
            let ns = who.split('/').next().unwrap_or_default();
            let namespace = self
                .namespaces
                .iter()
                .find(|n| n["metadata"]["name"] == ns)
                .unwrap_or(&Value::Null);
            End { pod, namespace }
        }

        /// The connections the policies allow on `port`, as "x/a->y/b".
        fn reachable(&self, policies: &[Value], port: i64) -> Vec<String> {
            let refs: Vec<&Value> = policies.iter().collect();
            let mut out = Vec::new();
            for (from, _) in &self.pods {
                for (to, _) in &self.pods {
                    if allowed(&refs, self.end(from), self.end(to), port, "TCP") {
                        out.push(format!("{from}->{to}"));
                    }
                }
            }
            out
        }
    }

    fn all_to(m: &Model, to: &str) -> Vec<String> {
        m.pods.iter().map(|(f, _)| format!("{f}->{to}")).collect()
    }

    #[test]
    fn without_policies_everything_reaches_everything() {
        let m = model();
        assert_eq!(m.reachable(&[], 80).len(), 81);
    }

    #[test]
    fn default_deny_ingress_isolates_every_pod_of_the_namespace() {
        // "should support a 'default-deny-ingress' policy"
        let m = model();
        let deny = json!({"metadata": {"name": "deny", "namespace": "x"}, "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}});
        let r = m.reachable(&[deny], 80);
        assert_eq!(r.len(), 81 - 27);
        assert!(
            !r.iter()
                .any(|c| c.ends_with("->x/a") || c.ends_with("->x/b") || c.ends_with("->x/c"))
        );
        // egress from x is untouched
        assert!(r.contains(&"x/a->y/b".to_string()));
    }

    #[test]
    fn pod_and_namespace_selectors_in_one_peer_are_anded_and_in_two_ored() {
        // "should enforce policy based on PodSelector and NamespaceSelector" (one peer) versus
        // "...with OR operator" (two peers)
        let m = model();
        let and = json!({"metadata": {"name": "p", "namespace": "x"}, "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]},
                                   "podSelector": {"matchLabels": {"pod": "b"}}}]}]}});
        let r = m.reachable(&[and], 80);
        let into_xa: Vec<&String> = r.iter().filter(|c| c.ends_with("->x/a")).collect();
        assert_eq!(into_xa, ["y/b->x/a", "z/b->x/a"]);
        let or = json!({"metadata": {"name": "p", "namespace": "x"}, "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchExpressions": [{"key": "ns", "operator": "NotIn", "values": ["x"]}]}},
                                  {"podSelector": {"matchLabels": {"pod": "b"}}}]}]}});
        let r = m.reachable(&[or], 80);
        let mut into_xa: Vec<&String> = r.iter().filter(|c| c.ends_with("->x/a")).collect();
        into_xa.sort();
        assert_eq!(
            into_xa,
            [
                "x/b->x/a", "y/a->x/a", "y/b->x/a", "y/c->x/a", "z/a->x/a", "z/b->x/a", "z/c->x/a"
            ]
        );
    }

    #[test]
    fn policies_are_a_union() {
        // "should allow ingress access from namespace on one named port" plus a second policy
        let m = model();
        let from_y = json!({"metadata": {"name": "p1", "namespace": "x"}, "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "y"}}}]}]}});
        let from_z = json!({"metadata": {"name": "p2", "namespace": "x"}, "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"from": [{"namespaceSelector": {"matchLabels": {"ns": "z"}}}]}]}});
        let r = m.reachable(&[from_y, from_z], 80);
        let into_xa: Vec<&String> = r.iter().filter(|c| c.ends_with("->x/a")).collect();
        assert_eq!(into_xa.len(), 6);
        assert!(!into_xa.iter().any(|c| c.starts_with("x/")));
    }

    #[test]
    fn named_ports_and_port_ranges() {
        // "should allow ingress access on one named port"; "should support allow-all policy
        // with endPort" (ranges)
        let m = model();
        let named = json!({"metadata": {"name": "p", "namespace": "x"}, "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"port": "serve-81", "protocol": "TCP"}]}]}});
        assert!(
            !m.reachable(std::slice::from_ref(&named), 80)
                .contains(&"y/a->x/a".to_string())
        );
        assert!(
            m.reachable(std::slice::from_ref(&named), 81)
                .contains(&"y/a->x/a".to_string())
        );
        let range = json!({"metadata": {"name": "p", "namespace": "x"}, "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
            "ingress": [{"ports": [{"port": 81, "endPort": 90}]}]}});
        assert!(
            !m.reachable(std::slice::from_ref(&range), 80)
                .contains(&"y/a->x/a".to_string())
        );
        assert!(
            m.reachable(std::slice::from_ref(&range), 81)
                .contains(&"y/a->x/a".to_string())
        );
    }

    #[test]
    fn ip_blocks_with_except_and_egress() {
        // "should allow egress access to server in CIDR block" / "...with except clause"
        let m = model();
        let egress = json!({"metadata": {"name": "p", "namespace": "x"}, "spec": {"podSelector": {"matchLabels": {"pod": "a"}},
            "policyTypes": ["Egress"],
            "egress": [{"to": [{"ipBlock": {"cidr": "10.0.1.0/24", "except": ["10.0.1.2/32"]}}]}]}});
        let r = m.reachable(&[egress], 80);
        let from_xa: Vec<&String> = r.iter().filter(|c| c.starts_with("x/a->")).collect();
        assert_eq!(from_xa, ["x/a->y/a", "x/a->y/c"]);
        // the other pods of x are not selected: they reach everything
        assert_eq!(r.iter().filter(|c| c.starts_with("x/b->")).count(), 9);
        assert_eq!(all_to(&m, "x/a").len(), 9);
    }
}
