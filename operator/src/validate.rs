//! Validation of a Tenant beyond what the CRD's schema enforces: what needs more than one field
//! to check, or arithmetic on quantities. Pure: no client, no clock.
//!
//! A tenant that fails here gets `Ready=False` with reason `InvalidSpec` and a message naming
//! the field, and the operator creates nothing for it until the spec is edited.

use std::collections::BTreeSet;

use govcloud_kube_values::name::is_dns_label;
use govcloud_kube_values::quantity::{self, Nanos};

use crate::crd::{Quantity, Tenant};

/// The longest name Kubernetes allows for a namespace.
pub const MAX_NAMESPACE_NAME: usize = 63;

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

/// The Kubernetes namespace a tenant's namespace becomes.
pub fn namespace_name(tenant: &str, short: &str) -> String {
    format!("{tenant}-{short}")
}

/// Checks a tenant; all problems are reported at once, in field order.
pub fn validate(tenant: &Tenant) -> Result<(), Vec<SpecError>> {
    let mut errors = Vec::new();
    let name = tenant.metadata.name.as_deref().unwrap_or_default();
    let spec = &tenant.spec;
    if !is_dns_label(name) {
        errors.push(err("metadata.name", format!("{name:?} must be a DNS label (lowercase letters, digits and '-'), as it prefixes namespace names")));
    }
    if !is_dns_label(&spec.organization) {
        errors.push(err(
            "spec.organization",
            format!("{:?} must be a DNS label", spec.organization),
        ));
    }
    if spec.namespaces.is_empty() {
        errors.push(err("spec.namespaces", "at least one namespace is required"));
    }
    let mut seen = BTreeSet::new();
    for (i, ns) in spec.namespaces.iter().enumerate() {
        let field = format!("spec.namespaces[{i}]");
        if !is_dns_label(&ns.name) {
            errors.push(err(
                format!("{field}.name"),
                format!("{:?} must be a DNS label", ns.name),
            ));
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
        if q.pods < 0 {
            errors.push(err(format!("{field}.quota.pods"), "must not be negative"));
        }
        if q.load_balancers < 0 {
            errors.push(err(
                format!("{field}.quota.loadBalancers"),
                "must not be negative",
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
        }
        if g.ports.is_empty() {
            errors.push(err(
                format!("{field}.ports"),
                "at least one port is required: links are explicit",
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
