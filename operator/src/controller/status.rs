//! The Tenant's status, computed by a pure function from what was validated and observed.

use std::collections::BTreeMap;

use govcloud_tenant::crd::{Condition, NamespaceStatus, Phase, TenantStatus};
use govcloud_tenant::validate::SpecError;

/// What the operator saw of one desired namespace after applying it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ObservedNamespace {
    pub name: String,
    /// The Namespace exists and is `Active`.
    pub active: bool,
    /// The quota's `status.hard` and `status.used`, when the quota has a status.
    pub hard: BTreeMap<String, String>,
    pub used: BTreeMap<String, String>,
    /// Why the tenant cannot have this namespace (another tenant's, or the platform's): then
    /// nothing was written to it.
    pub conflict: Option<String>,
}

/// Everything the status is made from.
#[derive(Debug, Clone, Default)]
pub struct Observation<'a> {
    pub generation: Option<i64>,
    pub suspended: bool,
    pub invalid: Option<&'a [SpecError]>,
    /// Why the cluster refused an object the tenant needs (forbidden, invalid), when it did.
    pub apply_failed: Option<&'a str>,
    pub namespaces: Vec<ObservedNamespace>,
    /// `spec.network.allowFrom[i].tenant` values that name no existing tenant, with their index.
    pub unknown_grants: Vec<(usize, String)>,
    pub now: &'a str,
}

/// Builds a condition, keeping the previous transition time when the status did not change.
fn condition(
    previous: Option<&TenantStatus>,
    type_: &str,
    ok: bool,
    reason: &str,
    message: String,
    obs: &Observation<'_>,
) -> Condition {
    let status = if ok { "True" } else { "False" };
    let last = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| obs.now.to_string());
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        last_transition_time: last,
        observed_generation: obs.generation,
    }
}

/// The reason on a tenant that asks for a namespace it cannot have.
pub const REASON_CONFLICT: &str = "NamespaceConflict";
/// The cluster refused an object the tenant needs: the operator cannot make it as specified.
pub const REASON_APPLY_FAILED: &str = "ApplyFailed";

/// The status of a tenant being deleted: its own namespaces go first, then the Tenant.
pub fn build_terminating_status(
    previous: Option<&TenantStatus>,
    generation: Option<i64>,
    remaining: &[String],
    now: &str,
) -> TenantStatus {
    let obs = Observation {
        generation,
        now,
        ..Observation::default()
    };
    let message = if remaining.is_empty() {
        "every namespace of the tenant is gone".to_string()
    } else {
        format!("deleting namespaces: {}", remaining.join(", "))
    };
    TenantStatus {
        phase: Some(Phase::Terminating),
        observed_generation: generation,
        conditions: vec![condition(
            previous,
            "Ready",
            false,
            "Terminating",
            message,
            &obs,
        )],
        namespaces: remaining
            .iter()
            .map(|n| NamespaceStatus {
                name: n.clone(),
                ready: false,
                ..NamespaceStatus::default()
            })
            .collect(),
    }
}

pub fn build_status(previous: Option<&TenantStatus>, obs: &Observation<'_>) -> TenantStatus {
    let namespaces: Vec<NamespaceStatus> = obs
        .namespaces
        .iter()
        .map(|n| NamespaceStatus {
            name: n.name.clone(),
            ready: n.active && !n.hard.is_empty(),
            hard: n.hard.clone(),
            used: n.used.clone(),
        })
        .collect();
    let (phase, ready) = if let Some(errors) = obs.invalid {
        let message = errors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        (
            Phase::Degraded,
            condition(previous, "Ready", false, "InvalidSpec", message, obs),
        )
    } else if let Some(message) = obs.apply_failed {
        (
            Phase::Degraded,
            condition(
                previous,
                "Ready",
                false,
                REASON_APPLY_FAILED,
                message.to_string(),
                obs,
            ),
        )
    } else if obs.namespaces.iter().any(|n| n.conflict.is_some()) {
        let message = obs
            .namespaces
            .iter()
            .filter_map(|n| n.conflict.clone())
            .collect::<Vec<_>>()
            .join("; ");
        (
            Phase::Degraded,
            condition(previous, "Ready", false, REASON_CONFLICT, message, obs),
        )
    } else if let Some(waiting) = namespaces.iter().find(|n| !n.ready) {
        let message = format!("namespace {} is not ready yet", waiting.name);
        (
            Phase::Provisioning,
            condition(previous, "Ready", false, "Provisioning", message, obs),
        )
    } else if obs.suspended {
        let message = "suspended: pods quota is 0 in every namespace; data is kept".to_string();
        (
            Phase::Suspended,
            condition(previous, "Ready", true, "Suspended", message, obs),
        )
    } else {
        let message = format!(
            "{} namespace(s) isolated and bounded as specified",
            namespaces.len()
        );
        (
            Phase::Ready,
            condition(previous, "Ready", true, "Reconciled", message, obs),
        )
    };
    let mut conditions = vec![ready];
    if obs.invalid.is_none() {
        let links = if obs.unknown_grants.is_empty() {
            condition(
                previous,
                "LinksResolved",
                true,
                "AllTenantsExist",
                "every allowFrom tenant exists".into(),
                obs,
            )
        } else {
            let message = obs
                .unknown_grants
                .iter()
                .map(|(i, t)| {
                    format!("spec.network.allowFrom[{i}].tenant: tenant {t:?} does not exist")
                })
                .collect::<Vec<_>>()
                .join("; ");
            condition(
                previous,
                "LinksResolved",
                false,
                "UnknownTenant",
                message,
                obs,
            )
        };
        conditions.push(links);
    }
    TenantStatus {
        phase: Some(phase),
        observed_generation: obs.generation,
        conditions,
        namespaces,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready_ns(name: &str) -> ObservedNamespace {
        ObservedNamespace {
            name: name.into(),
            active: true,
            hard: BTreeMap::from([("pods".into(), "10".into())]),
            used: BTreeMap::from([("pods".into(), "0".into())]),
            conflict: None,
        }
    }

    #[test]
    fn ready_when_every_namespace_is_in_place() {
        let obs = Observation {
            generation: Some(3),
            namespaces: vec![ready_ns("a-prod")],
            now: "t1",
            ..Observation::default()
        };
        let s = build_status(None, &obs);
        assert_eq!(
            (s.phase, s.observed_generation),
            (Some(Phase::Ready), Some(3))
        );
        assert_eq!(
            (
                s.conditions[0].status.as_str(),
                s.conditions[0].reason.as_str()
            ),
            ("True", "Reconciled")
        );
        // The transition time stays while the status stays.
        let again = build_status(
            Some(&s),
            &Observation {
                now: "t2",
                ..obs.clone()
            },
        );
        assert_eq!(again.conditions[0].last_transition_time, "t1");
    }

    #[test]
    fn invalid_spec_names_the_field() {
        let errors = vec![SpecError {
            field: "spec.namespaces[1].name".into(),
            message: "\"prod\" is listed twice".into(),
        }];
        let s = build_status(
            None,
            &Observation {
                invalid: Some(&errors),
                now: "t",
                ..Observation::default()
            },
        );
        assert_eq!(s.phase, Some(Phase::Degraded));
        assert_eq!(s.conditions[0].reason, "InvalidSpec");
        assert_eq!(
            s.conditions[0].message,
            "spec.namespaces[1].name: \"prod\" is listed twice"
        );
    }

    #[test]
    fn unknown_grant_tenants_are_reported_not_dropped() {
        let obs = Observation {
            namespaces: vec![ready_ns("a-prod")],
            unknown_grants: vec![(0, "ghost".into())],
            now: "t",
            ..Observation::default()
        };
        let s = build_status(None, &obs);
        let links = s
            .conditions
            .iter()
            .find(|c| c.type_ == "LinksResolved")
            .cloned()
            .unwrap_or_else(|| panic!("no LinksResolved"));
        assert_eq!(
            (links.status.as_str(), links.reason.as_str()),
            ("False", "UnknownTenant")
        );
        assert_eq!(
            links.message,
            "spec.network.allowFrom[0].tenant: tenant \"ghost\" does not exist"
        );
    }

    #[test]
    fn a_namespace_held_by_someone_else_is_a_conflict_not_ready() {
        let lost = ObservedNamespace {
            name: "a-b-c".into(),
            conflict: Some("namespace a-b-c already belongs to another tenant".into()),
            ..ObservedNamespace::default()
        };
        let s = build_status(
            None,
            &Observation {
                generation: Some(2),
                namespaces: vec![ready_ns("a-prod"), lost],
                now: "t",
                ..Observation::default()
            },
        );
        assert_eq!(s.phase, Some(Phase::Degraded));
        assert_eq!(
            (
                s.conditions[0].status.as_str(),
                s.conditions[0].reason.as_str(),
                s.conditions[0].message.as_str()
            ),
            (
                "False",
                "NamespaceConflict",
                "namespace a-b-c already belongs to another tenant"
            )
        );
        assert_eq!(
            s.namespaces
                .iter()
                .map(|n| (n.name.as_str(), n.ready))
                .collect::<Vec<_>>(),
            [("a-prod", true), ("a-b-c", false)]
        );
    }

    #[test]
    fn a_deleted_tenant_is_terminating_until_its_namespaces_are_gone() {
        let s = build_terminating_status(None, Some(4), &["a-prod".into()], "t");
        assert_eq!(s.phase, Some(Phase::Terminating));
        assert_eq!(s.conditions[0].reason, "Terminating");
        assert_eq!(s.conditions[0].message, "deleting namespaces: a-prod");
        assert_eq!(s.namespaces[0].name, "a-prod");
    }

    #[test]
    fn a_refused_object_degrades_the_tenant_with_the_clusters_words() {
        let s = build_status(
            None,
            &Observation {
                apply_failed: Some("applying NetworkPolicy x: networkpolicies is forbidden"),
                namespaces: vec![ready_ns("a")],
                now: "t",
                ..Observation::default()
            },
        );
        assert_eq!(s.phase, Some(Phase::Degraded));
        let ready = &s.conditions[0];
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", REASON_APPLY_FAILED)
        );
        assert!(ready.message.contains("forbidden"), "{}", ready.message);
    }

    #[test]
    fn suspended_and_provisioning_phases() {
        let s = build_status(
            None,
            &Observation {
                suspended: true,
                namespaces: vec![ready_ns("a")],
                now: "t",
                ..Observation::default()
            },
        );
        assert_eq!(s.phase, Some(Phase::Suspended));
        let waiting = ObservedNamespace {
            name: "a-prod".into(),
            active: true,
            ..ObservedNamespace::default()
        };
        let s = build_status(
            None,
            &Observation {
                namespaces: vec![waiting],
                now: "t",
                ..Observation::default()
            },
        );
        assert_eq!(
            (s.phase, s.conditions[0].reason.as_str()),
            (Some(Phase::Provisioning), "Provisioning")
        );
    }
}
