//! Validation of a Tenant beyond what the CRD's schema enforces: what needs more than one field
//! to check, or arithmetic on quantities. Pure: no client, no clock.
//!
//! A tenant that fails here gets `Ready=False` with reason `InvalidSpec` and a message naming
//! the field, and the operator creates nothing for it until the spec is edited.

use std::collections::BTreeSet;

use govcloud_kube_values::name::is_dns_label;
use govcloud_kube_values::quantity::{self, Nanos};

use crate::crd::{Quantity, Tenant, limits};

pub use crate::names::{MAX_NAMESPACE_NAME, namespace_name};

/// One thing wrong with a spec, naming the field as `kubectl explain` would.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: field.into(),
        message: message.into(),
    }
}

/// A quantity that parsed and is not negative.
fn amount(field: &str, q: &Quantity, errors: &mut Vec<SpecError>) -> Option<Nanos> {
    match quantity::nanos(&q.0) {
        Some(v) if v >= 0 => Some(v),
        Some(_) => {
            errors.push(err(field, format!("must not be negative, got {:?}", q.0)));
            None
        }
        None => {
            errors.push(err(
                field,
                format!(
                    "{:?} is not a quantity (examples: 500m, 2, 512Mi, 10Gi)",
                    q.0
                ),
            ));
            None
        }
    }
}

/// A string's length in characters, as the CRD schema's `maxLength` counts it.
fn too_long(field: &str, value: &str, max: usize, errors: &mut Vec<SpecError>) {
    let n = value.chars().count();
    if n > max {
        errors.push(err(
            field,
            format!("must be at most {max} characters, got {n}"),
        ));
    }
}

/// Checks a tenant against everything the CRD's schema enforces and what it cannot express; all
/// problems are reported at once, in field order.
pub fn validate(tenant: &Tenant) -> Result<(), Vec<SpecError>> {
    let mut errors = Vec::new();
    let name = tenant.metadata.name.as_deref().unwrap_or_default();
    let spec = &tenant.spec;
    if !is_dns_label(name) {
        errors.push(err("metadata.name", format!("{name:?} must be a DNS label (lowercase letters, digits and '-'), as it prefixes namespace names")));
    }
    if spec.display_name.trim().is_empty() {
        errors.push(err("spec.displayName", "must not be empty"));
    }
    too_long(
        "spec.displayName",
        &spec.display_name,
        limits::DISPLAY_NAME,
        &mut errors,
    );
    if !is_dns_label(&spec.organization) {
        errors.push(err(
            "spec.organization",
            format!("{:?} must be a DNS label", spec.organization),
        ));
    }
    if spec.namespaces.is_empty() {
        errors.push(err("spec.namespaces", "at least one namespace is required"));
    }
    if spec.namespaces.len() > limits::NAMESPACES {
        errors.push(err(
            "spec.namespaces",
            format!("at most {} namespaces per tenant", limits::NAMESPACES),
        ));
    }
    let mut seen = BTreeSet::new();
    for (i, ns) in spec.namespaces.iter().enumerate() {
        let field = format!("spec.namespaces[{i}]");
        if !is_dns_label(&ns.name) {
            errors.push(err(
                format!("{field}.name"),
                format!("{:?} must be a DNS label", ns.name),
            ));
        } else {
            too_long(
                &format!("{field}.name"),
                &ns.name,
                limits::NAMESPACE_SHORT_NAME,
                &mut errors,
            );
        }
        let full = namespace_name(name, &ns.name);
        if full.len() > MAX_NAMESPACE_NAME {
            errors.push(err(
                format!("{field}.name"),
                format!("namespace {full:?} would be longer than {MAX_NAMESPACE_NAME} characters"),
            ));
        }
        if !seen.insert(ns.name.as_str()) {
            errors.push(err(
                format!("{field}.name"),
                format!("{:?} is listed twice", ns.name),
            ));
        }
        let q = &ns.quota;
        amount(&format!("{field}.quota.cpu"), &q.cpu, &mut errors);
        amount(&format!("{field}.quota.memory"), &q.memory, &mut errors);
        amount(&format!("{field}.quota.storage"), &q.storage, &mut errors);
        if !(0..=limits::PODS).contains(&q.pods) {
            errors.push(err(
                format!("{field}.quota.pods"),
                format!("must be between 0 and {}", limits::PODS),
            ));
        }
        if !(0..=limits::LOAD_BALANCERS).contains(&q.load_balancers) {
            errors.push(err(
                format!("{field}.quota.loadBalancers"),
                format!("must be between 0 and {}", limits::LOAD_BALANCERS),
            ));
        }
    }
    let limits = &spec.limits;
    for (res, request, limit) in [
        ("cpu", &limits.default_request.cpu, &limits.default.cpu),
        (
            "memory",
            &limits.default_request.memory,
            &limits.default.memory,
        ),
    ] {
        let r = amount(
            &format!("spec.limits.defaultRequest.{res}"),
            request,
            &mut errors,
        );
        let l = amount(&format!("spec.limits.default.{res}"), limit, &mut errors);
        if let (Some(r), Some(l)) = (r, l)
            && r > l
        {
            errors.push(err(
                format!("spec.limits.defaultRequest.{res}"),
                format!(
                    "{:?} is more than the default limit {:?}",
                    request.0, limit.0
                ),
            ));
        }
    }
    let mut owners = BTreeSet::new();
    for (i, o) in spec.owners.iter().enumerate() {
        if o.name.trim().is_empty() {
            errors.push(err(format!("spec.owners[{i}].name"), "must not be empty"));
        }
        too_long(
            &format!("spec.owners[{i}].name"),
            &o.name,
            limits::OWNER_NAME,
            &mut errors,
        );
        if !owners.insert((format!("{:?}", o.kind), o.name.as_str())) {
            errors.push(err(
                format!("spec.owners[{i}]"),
                format!("{:?} {:?} is listed twice", o.kind, o.name),
            ));
        }
    }
    for (i, g) in spec.network.allow_from.iter().enumerate() {
        let field = format!("spec.network.allowFrom[{i}]");
        if !is_dns_label(&g.tenant) {
            errors.push(err(
                format!("{field}.tenant"),
                format!("{:?} must be a tenant name", g.tenant),
            ));
        }
        if !is_dns_label(&g.namespace) {
            errors.push(err(
                format!("{field}.namespace"),
                format!("{:?} must be a namespace short name", g.namespace),
            ));
        } else {
            too_long(
                &format!("{field}.namespace"),
                &g.namespace,
                limits::NAMESPACE_SHORT_NAME,
                &mut errors,
            );
        }
        if g.ports.is_empty() {
            errors.push(err(
                format!("{field}.ports"),
                "at least one port is required: links are explicit",
            ));
        }
        if g.ports.len() > limits::GRANT_PORTS {
            errors.push(err(
                format!("{field}.ports"),
                format!("at most {} ports per link", limits::GRANT_PORTS),
            ));
        }
        for (j, p) in g.ports.iter().enumerate() {
            if !(1..=65535).contains(&p.0) {
                errors.push(err(
                    format!("{field}.ports[{j}]"),
                    format!("{} is not a port number", p.0),
                ));
            }
        }
    }
    too_long(
        "spec.billing.costCenter",
        &spec.billing.cost_center,
        limits::COST_CENTER,
        &mut errors,
    );
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::{TENANT as GOOD, tenant};

    #[test]
    fn the_documented_example_is_valid() {
        let t = tenant(GOOD);
        assert_eq!(validate(&t), Ok(()));
        assert_eq!(
            t.spec.namespaces[1].quota.cpu.0, "2",
            "integer quantities are read as quantities"
        );
        assert_eq!(t.spec.namespaces[1].quota.load_balancers, 0);
    }

    #[test]
    fn every_problem_is_reported_with_its_field() {
        let bad = GOOD
            .replace("cpu: \"8\"", "cpu: eight")
            .replace("name: staging", "name: prod")
            .replace("defaultRequest: { cpu: 100m", "defaultRequest: { cpu: 600m")
            .replace("ports: [443]", "ports: []");
        let errors = validate(&tenant(&bad)).err().unwrap_or_default();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "spec.namespaces[0].quota.cpu",
                "spec.namespaces[1].name",
                "spec.limits.defaultRequest.cpu",
                "spec.network.allowFrom[0].ports"
            ]
        );
        assert_eq!(
            errors[1].to_string(),
            "spec.namespaces[1].name: \"prod\" is listed twice"
        );
        assert_eq!(
            errors[2].message,
            "\"600m\" is more than the default limit \"500m\""
        );
    }

    /// Every limit of the CRD's schema, one over: the cluster refuses each of them, and so must
    /// `validate`, or the API would accept a tenant that never reaches the cluster. Checked
    /// against the generated CRD by the simulator's schema validation.
    #[test]
    fn what_validate_accepts_the_crd_schema_accepts() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(Tenant::crd()).unwrap_or_default();
        let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
        let schema_accepts = |t: &Tenant| {
            let mut v = serde_json::to_value(t).unwrap_or_default();
            kubesim::schema::check_resource(&mut v, &schema).invalid
        };
        let base = tenant(GOOD);
        type Mutation = Box<dyn Fn(&mut Tenant)>;
        let mutations: Vec<(&str, Mutation)> = vec![
            (
                "displayName",
                Box::new(|t| t.spec.display_name = "đ".repeat(257)),
            ),
            (
                "owner name",
                Box::new(|t| t.spec.owners[0].name = "x".repeat(257)),
            ),
            (
                "namespaces",
                Box::new(|t| {
                    let first = t.spec.namespaces[0].clone();
                    t.spec.namespaces = (0..33)
                        .map(|i| {
                            let mut n = first.clone();
                            n.name = format!("n{i}");
                            n
                        })
                        .collect();
                }),
            ),
            (
                "namespace name",
                Box::new(|t| {
                    t.metadata.name = Some("a".into());
                    t.spec.namespaces[0].name = "n".repeat(31);
                }),
            ),
            (
                "pods",
                Box::new(|t| t.spec.namespaces[0].quota.pods = limits::PODS + 1),
            ),
            (
                "loadBalancers",
                Box::new(|t| {
                    t.spec.namespaces[0].quota.load_balancers = limits::LOAD_BALANCERS + 1
                }),
            ),
            (
                "grant namespace",
                Box::new(|t| t.spec.network.allow_from[0].namespace = "n".repeat(31)),
            ),
            (
                "grant ports",
                Box::new(|t| {
                    t.spec.network.allow_from[0].ports = (1..=33).map(crate::crd::Port).collect()
                }),
            ),
            (
                "costCenter",
                Box::new(|t| t.spec.billing.cost_center = "c".repeat(65)),
            ),
        ];
        assert!(schema_accepts(&base).is_empty(), "the example itself");
        for (what, mutate) in mutations {
            let mut t = base.clone();
            mutate(&mut t);
            let refused_by_schema = schema_accepts(&t);
            assert!(
                !refused_by_schema.is_empty(),
                "{what}: the schema should refuse it"
            );
            assert!(
                validate(&t).is_err(),
                "{what}: the cluster refuses {refused_by_schema:?}, validate accepts it"
            );
        }
        // At the limits, both accept.
        let mut at = base.clone();
        at.spec.display_name = "đ".repeat(256);
        at.spec.owners[0].name = "x".repeat(256);
        at.spec.billing.cost_center = "c".repeat(64);
        at.spec.namespaces[0].quota.pods = limits::PODS;
        assert!(schema_accepts(&at).is_empty());
        assert_eq!(validate(&at), Ok(()));
    }

    #[test]
    fn namespace_names_must_fit_kubernetes() {
        let long = GOOD.replace("name: nghean-stttt", &format!("name: {}", "a".repeat(60)));
        let errors = validate(&tenant(&long)).err().unwrap_or_default();
        assert!(
            errors
                .iter()
                .any(|e| e.field == "spec.namespaces[0].name"
                    && e.message.contains("longer than 63"))
        );
        let dotted = GOOD.replace("name: nghean-stttt", "name: nghean.stttt");
        let errors = validate(&tenant(&dotted)).err().unwrap_or_default();
        assert_eq!(
            errors.first().map(|e| e.field.as_str()),
            Some("metadata.name")
        );
    }
}
