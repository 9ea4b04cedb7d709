//! An agency as the API keeps it, and the one builder of the Tenant custom resource that
//! describes it: for onboarding's validation, for the cluster, and for the API's documents.

use std::collections::BTreeMap;
use std::time::Duration;

use govcloud_tenant::crd::{
    Billing, Egress, Limits, NamespaceQuota, Network, Owner, PodSecurityLevel, Tenant,
    TenantNamespace, TenantSpec,
};
use govcloud_tenant::names::{LABEL_MANAGED_BY, LABEL_ORGANIZATION};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::domain::quota::{Quota, format_bytes, format_cpu};

/// The name the API writes to the cluster under (its field manager), and the value of the
/// `app.kubernetes.io/managed-by` label on the Tenants it manages: their spec is the API's.
pub const API_MANAGER: &str = "govcloud-api";

/// An agency's desired state: the Tenant spec, with its namespaces' quotas in base units.
#[derive(Debug, Clone, PartialEq)]
pub struct Agency {
    pub name: String,
    pub display_name: String,
    pub organization: String,
    pub owners: Vec<Owner>,
    pub namespaces: Vec<AgencyNamespace>,
    pub limits: Limits,
    pub pod_security: PodSecurityLevel,
    pub network: Network,
    pub billing: Billing,
    pub suspended: bool,
}

/// One of an agency's namespaces: its short name and quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgencyNamespace {
    pub name: String,
    pub quota: Quota,
}

/// The quota as the Tenant spells it.
pub fn namespace_quota(q: &Quota) -> NamespaceQuota {
    NamespaceQuota {
        cpu: format_cpu(q.cpu_milli).as_str().into(),
        memory: format_bytes(q.memory_bytes).as_str().into(),
        storage: format_bytes(q.storage_bytes).as_str().into(),
        pods: q.pods,
        load_balancers: q.load_balancers,
    }
}

/// The Tenant custom resource of an agency, labelled with its organization.
pub fn build_tenant(agency: &Agency) -> Tenant {
    let spec = TenantSpec {
        display_name: agency.display_name.clone(),
        organization: agency.organization.clone(),
        owners: agency.owners.clone(),
        namespaces: agency
            .namespaces
            .iter()
            .map(|n| TenantNamespace {
                name: n.name.clone(),
                quota: namespace_quota(&n.quota),
            })
            .collect(),
        limits: agency.limits.clone(),
        pod_security: agency.pod_security,
        network: agency.network.clone(),
        billing: agency.billing.clone(),
        suspended: agency.suspended,
    };
    let mut tenant = Tenant::new(&agency.name, spec);
    tenant.metadata.labels = Some(BTreeMap::from([
        (LABEL_ORGANIZATION.to_string(), agency.organization.clone()),
        (LABEL_MANAGED_BY.to_string(), API_MANAGER.to_string()),
    ]));
    tenant
}

/// What an edit may change of an agency: `PATCH /v1/tenants/{name}` applies its JSON merge
/// patch (RFC 7396) to this document. Links (`network.allowFrom`) change only through the link
/// workflow, quotas only through capacity requests, suspension through suspend and resume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Editable {
    pub display_name: String,
    #[serde(default)]
    pub owners: Vec<Owner>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub pod_security: PodSecurityLevel,
    #[serde(default)]
    pub network: EditableNetwork,
}

/// The part of the network settings an edit may change.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EditableNetwork {
    #[serde(default)]
    pub egress: Egress,
}

/// The fields of [`Editable`] a tenant admin may change for its own agency.
pub const TENANT_ADMIN_EDITS: [&str; 1] = ["owners"];

impl Editable {
    pub fn of(agency: &Agency) -> Self {
        Self {
            display_name: agency.display_name.clone(),
            owners: agency.owners.clone(),
            limits: agency.limits.clone(),
            pod_security: agency.pod_security,
            network: EditableNetwork {
                egress: agency.network.egress,
            },
        }
    }

    /// The agency with this edit; everything an edit cannot change is kept.
    pub fn applied_to(&self, agency: &Agency) -> Agency {
        Agency {
            display_name: self.display_name.clone(),
            owners: self.owners.clone(),
            limits: self.limits.clone(),
            pod_security: self.pod_security,
            network: Network {
                egress: self.network.egress,
                allow_from: agency.network.allow_from.clone(),
            },
            ..agency.clone()
        }
    }

    /// The fields that differ from `before`, by their JSON names.
    pub fn changed_since(&self, before: &Self) -> Vec<&'static str> {
        [
            ("displayName", self.display_name != before.display_name),
            ("owners", self.owners != before.owners),
            ("limits", self.limits != before.limits),
            ("podSecurity", self.pod_security != before.pod_security),
            ("network", self.network != before.network),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect()
    }
}

/// The fields of `seen` (a Tenant's spec as the cluster has it) that differ from `wanted` (the
/// API's), by their names in the spec.
pub fn drifted_fields(wanted: &TenantSpec, seen: &TenantSpec) -> Vec<&'static str> {
    [
        ("displayName", wanted.display_name != seen.display_name),
        ("organization", wanted.organization != seen.organization),
        ("owners", wanted.owners != seen.owners),
        ("namespaces", wanted.namespaces != seen.namespaces),
        ("limits", wanted.limits != seen.limits),
        ("podSecurity", wanted.pod_security != seen.pod_security),
        ("network", wanted.network != seen.network),
        ("billing", wanted.billing != seen.billing),
        ("suspended", wanted.suspended != seen.suspended),
    ]
    .into_iter()
    .filter_map(|(name, differs)| differs.then_some(name))
    .collect()
}

/// Where the tenant's latest desired state stands with the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum SyncState {
    /// The cluster has the latest version.
    Applied,
    /// Not applied yet; no attempt has failed.
    Pending,
    /// The cluster could not be reached; retried with backoff.
    Retrying,
    /// The cluster refused the spec (see `error`); retried with a longer backoff, and until it
    /// has ever accepted the tenant it holds none of the organization's allotment.
    Refused,
    /// Offboarded: the cluster is removing the tenant.
    Removing,
}

/// What the sync state is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncFacts {
    pub offboarded: bool,
    pub spec_version: i64,
    pub applied_version: i64,
    pub refused: bool,
    pub attempts: i32,
}

impl SyncState {
    pub fn of(f: SyncFacts) -> Self {
        if f.offboarded {
            Self::Removing
        } else if f.applied_version >= f.spec_version {
            Self::Applied
        } else if f.refused {
            Self::Refused
        } else if f.attempts > 0 {
            Self::Retrying
        } else {
            Self::Pending
        }
    }
}

/// An agency's place in its lifecycle, as the API sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
pub enum Lifecycle {
    Active,
    /// Offboarding was asked for; the cluster is deleting its namespaces.
    Terminating,
}

/// How long to wait before applying a tenant again after `attempt` consecutive failures: 2 s
/// doubling to 5 minutes when the cluster did not answer, 30 s doubling to 30 minutes when it
/// refused the spec (only an edit, or a changed cluster, will help).
pub fn retry_delay(attempt: i32, refused: bool) -> Duration {
    let (first, cap) = if refused {
        (Duration::from_secs(30), Duration::from_secs(1800))
    } else {
        (Duration::from_secs(2), Duration::from_secs(300))
    };
    let doublings = u32::try_from(attempt.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    first.saturating_mul(1u32 << doublings).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use govcloud_tenant::crd::Plan;
    use govcloud_tenant::validate::validate;

    fn agency(namespaces: Vec<AgencyNamespace>) -> Agency {
        Agency {
            name: "nghean-stttt".into(),
            display_name: "Sở TT&TT".into(),
            organization: "nghe-an".into(),
            owners: Vec::new(),
            namespaces,
            limits: Limits::default(),
            pod_security: PodSecurityLevel::default(),
            network: Network::default(),
            billing: Billing {
                plan: Plan::Reserved,
                cost_center: "NA-01".into(),
            },
            suspended: false,
        }
    }

    #[test]
    fn the_built_tenant_is_valid_and_carries_quotas_as_quantities() {
        let q = Quota {
            cpu_milli: 2500,
            memory_bytes: 8 << 30,
            storage_bytes: 100 << 30,
            pods: 20,
            load_balancers: 1,
        };
        let t = build_tenant(&agency(vec![AgencyNamespace {
            name: "prod".into(),
            quota: q,
        }]));
        assert_eq!(validate(&t), Ok(()));
        assert_eq!(t.metadata.name.as_deref(), Some("nghean-stttt"));
        let labels = t.metadata.labels.clone().unwrap_or_default();
        assert_eq!(labels.get(LABEL_ORGANIZATION), Some(&"nghe-an".to_string()));
        assert_eq!(labels.get(LABEL_MANAGED_BY), Some(&API_MANAGER.to_string()));
        let quota = &t.spec.namespaces[0].quota;
        assert_eq!(
            (quota.cpu.0.as_str(), quota.memory.0.as_str()),
            ("2500m", "8Gi")
        );
        assert_eq!((quota.pods, quota.load_balancers), (20, 1));
    }

    #[test]
    fn an_edit_changes_what_it_names_and_keeps_links_and_quotas() {
        let before = agency(Vec::new());
        let mut doc = serde_json::to_value(Editable::of(&before)).unwrap_or_default();
        json_patch::merge(
            &mut doc,
            &serde_json::json!({"network": {"egress": "Internet"}, "displayName": "B", "owners": null}),
        );
        let edited: Editable = serde_json::from_value(doc).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            edited.changed_since(&Editable::of(&before)),
            ["displayName", "network"]
        );
        let mut with_link = before.clone();
        with_link
            .network
            .allow_from
            .push(govcloud_tenant::crd::Grant {
                tenant: "other".into(),
                namespace: "prod".into(),
                ports: vec![govcloud_tenant::crd::Port(443)],
            });
        let after = edited.applied_to(&with_link);
        assert_eq!(after.network.allow_from, with_link.network.allow_from);
        assert_eq!(after.network.egress, Egress::Internet);
        assert_eq!(
            (after.display_name.as_str(), after.namespaces.len()),
            ("B", 0)
        );
    }

    #[test]
    fn drift_names_the_fields_changed_in_the_cluster() {
        let wanted = build_tenant(&agency(Vec::new())).spec;
        let mut seen = wanted.clone();
        assert!(drifted_fields(&wanted, &seen).is_empty());
        seen.suspended = true;
        seen.pod_security = PodSecurityLevel::Baseline;
        assert_eq!(drifted_fields(&wanted, &seen), ["podSecurity", "suspended"]);
    }

    #[test]
    fn sync_state_says_why_the_cluster_lacks_the_latest_version() {
        let f = SyncFacts {
            offboarded: false,
            spec_version: 3,
            applied_version: 2,
            refused: false,
            attempts: 0,
        };
        assert_eq!(SyncState::of(f), SyncState::Pending);
        assert_eq!(
            SyncState::of(SyncFacts { attempts: 2, ..f }),
            SyncState::Retrying
        );
        assert_eq!(
            SyncState::of(SyncFacts {
                attempts: 2,
                refused: true,
                ..f
            }),
            SyncState::Refused
        );
        assert_eq!(
            SyncState::of(SyncFacts {
                applied_version: 3,
                ..f
            }),
            SyncState::Applied
        );
        assert_eq!(
            SyncState::of(SyncFacts {
                offboarded: true,
                ..f
            }),
            SyncState::Removing
        );
    }

    #[test]
    fn retries_back_off_further_when_the_cluster_refused() {
        assert_eq!(retry_delay(1, false), Duration::from_secs(2));
        assert_eq!(retry_delay(3, false), Duration::from_secs(8));
        assert_eq!(retry_delay(40, false), Duration::from_secs(300));
        assert_eq!(retry_delay(1, true), Duration::from_secs(30));
        assert_eq!(retry_delay(40, true), Duration::from_secs(1800));
    }
}
