//! Data-sharing links between agencies: who may ask for one, who must approve it, and the
//! grants that approved links write into the providing agency's Tenant.
//!
//! Agency A (the consumer) asks to reach agency B (the provider) from one of its namespaces on
//! some TCP ports. B approves: its tenant admin or its organization's admin. When A and B are in
//! different organizations, both organizations' admins must approve (B's for B, A's for A). A
//! link is written into B's Tenant only once every approval is in; either side closes it.

use govcloud_tenant::crd::{Grant, Port, limits};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::principal::{Caller, Role};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LinkState {
    /// Asked for; waiting for approvals. Nothing is open.
    Pending,
    /// Every approval is in: the provider's Tenant grants it.
    Approved,
    Rejected,
    /// Withdrawn before it was approved.
    Cancelled,
    /// Closed after it was approved: the grant is gone.
    Revoked,
}

super::named!(LinkState, "link state", {
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
    Cancelled => "cancelled",
    Revoked => "revoked",
});

impl LinkState {
    /// Whether the link is pending or approved (not closed).
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Approved)
    }
}

/// The two agencies of a link, with their organizations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parties {
    pub from_organization: Uuid,
    pub from_tenant: Uuid,
    pub to_organization: Uuid,
    pub to_tenant: Uuid,
}

/// An approval a link needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Approval {
    /// The providing agency's (B's) side.
    Provider,
    /// The consuming agency's organization, for a link across organizations.
    Consumer,
}

impl Parties {
    pub fn cross_organization(&self) -> bool {
        self.from_organization != self.to_organization
    }

    fn admin_of_org(caller: &Caller, org: Uuid) -> bool {
        caller.role == Role::OrgAdmin && caller.organization_id == Some(org)
    }

    fn admin_of_tenant(caller: &Caller, tenant: Uuid) -> bool {
        caller.role == Role::TenantAdmin && caller.tenant_id == Some(tenant)
    }

    /// Whether the caller may see the link: it sees either agency.
    pub fn visible_to(&self, caller: &Caller) -> bool {
        use crate::domain::principal::Scope;
        caller.sees(Scope::tenant(self.from_organization, self.from_tenant))
            || caller.sees(Scope::tenant(self.to_organization, self.to_tenant))
    }

    /// Whether the caller may ask for a link from the consuming agency: its tenant admin, its
    /// organization's admin, a platform admin.
    pub fn may_request(&self, caller: &Caller) -> bool {
        caller.role == Role::PlatformAdmin
            || Self::admin_of_org(caller, self.from_organization)
            || Self::admin_of_tenant(caller, self.from_tenant)
    }

    /// The approvals the caller can give. For a link within one organization, the provider's
    /// tenant admin or the organization's admin; across organizations, each organization's
    /// admin for its own agency. Platform admins can give both.
    pub fn approvals_by(&self, caller: &Caller) -> Vec<Approval> {
        let mut out = Vec::new();
        let provider = caller.role == Role::PlatformAdmin
            || Self::admin_of_org(caller, self.to_organization)
            || (!self.cross_organization() && Self::admin_of_tenant(caller, self.to_tenant));
        if provider {
            out.push(Approval::Provider);
        }
        let consumer = self.cross_organization()
            && (caller.role == Role::PlatformAdmin
                || Self::admin_of_org(caller, self.from_organization));
        if consumer {
            out.push(Approval::Consumer);
        }
        out
    }

    /// The approvals the link needs.
    pub fn needed(&self) -> Vec<Approval> {
        if self.cross_organization() {
            vec![Approval::Provider, Approval::Consumer]
        } else {
            vec![Approval::Provider]
        }
    }

    /// Whether the caller may close the link: anyone who may ask for it or approve it, on
    /// either side.
    pub fn may_close(&self, caller: &Caller) -> bool {
        caller.role == Role::PlatformAdmin
            || Self::admin_of_org(caller, self.from_organization)
            || Self::admin_of_org(caller, self.to_organization)
            || Self::admin_of_tenant(caller, self.from_tenant)
            || Self::admin_of_tenant(caller, self.to_tenant)
    }
}

/// Checks the ports of a link: 1 to 32 TCP ports; answers them sorted, without repeats.
pub fn check_ports(ports: &[i32]) -> Result<Vec<i32>, String> {
    let set: BTreeSet<i32> = ports.iter().copied().collect();
    if set.is_empty() || set.len() > limits::GRANT_PORTS {
        return Err(format!("name 1 to {} TCP ports", limits::GRANT_PORTS));
    }
    if let Some(bad) = set.iter().find(|p| !(1..=65535).contains(*p)) {
        return Err(format!("{bad} is not a TCP port (1 to 65535)"));
    }
    Ok(set.into_iter().collect())
}

/// An approved link, as the provider's Tenant needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovedLink {
    pub from_tenant: String,
    pub from_namespace: String,
    pub ports: Vec<i32>,
}

/// The provider's `allowFrom`: one grant per consuming namespace, with the ports of every
/// approved link from it, in a stable order.
pub fn grants(links: &[ApprovedLink]) -> Vec<Grant> {
    let mut merged: BTreeMap<(&str, &str), BTreeSet<i32>> = BTreeMap::new();
    for l in links {
        merged
            .entry((&l.from_tenant, &l.from_namespace))
            .or_default()
            .extend(l.ports.iter().copied());
    }
    merged
        .into_iter()
        .map(|((tenant, namespace), ports)| Grant {
            tenant: tenant.to_string(),
            namespace: namespace.to_string(),
            ports: ports.into_iter().map(Port).collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(role: Role, org: Option<Uuid>, tenant: Option<Uuid>) -> Caller {
        Caller {
            name: "x".into(),
            role,
            organization_id: org,
            tenant_id: tenant,
        }
    }

    #[test]
    fn within_one_organization_the_provider_approves_alone() {
        let (org, a, b) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let p = Parties {
            from_organization: org,
            from_tenant: a,
            to_organization: org,
            to_tenant: b,
        };
        assert_eq!(p.needed(), [Approval::Provider]);
        let b_admin = caller(Role::TenantAdmin, Some(org), Some(b));
        let a_admin = caller(Role::TenantAdmin, Some(org), Some(a));
        assert_eq!(p.approvals_by(&b_admin), [Approval::Provider]);
        assert!(
            p.approvals_by(&a_admin).is_empty(),
            "the asker never approves its own link"
        );
        assert!(p.may_request(&a_admin) && !p.may_request(&b_admin));
        assert!(p.may_close(&a_admin) && p.may_close(&b_admin));
        let org_admin = caller(Role::OrgAdmin, Some(org), None);
        assert_eq!(p.approvals_by(&org_admin), [Approval::Provider]);
        let finance = caller(Role::Finance, Some(org), None);
        assert!(p.approvals_by(&finance).is_empty() && !p.may_close(&finance));
        assert!(p.visible_to(&finance));
    }

    #[test]
    fn across_organizations_both_organizations_admins_approve() {
        let (oa, ob, a, b) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let p = Parties {
            from_organization: oa,
            from_tenant: a,
            to_organization: ob,
            to_tenant: b,
        };
        assert_eq!(p.needed(), [Approval::Provider, Approval::Consumer]);
        let b_tenant = caller(Role::TenantAdmin, Some(ob), Some(b));
        assert!(
            p.approvals_by(&b_tenant).is_empty(),
            "across organizations, B's org decides"
        );
        assert_eq!(
            p.approvals_by(&caller(Role::OrgAdmin, Some(ob), None)),
            [Approval::Provider]
        );
        assert_eq!(
            p.approvals_by(&caller(Role::OrgAdmin, Some(oa), None)),
            [Approval::Consumer]
        );
        assert_eq!(
            p.approvals_by(&caller(Role::PlatformAdmin, None, None)),
            [Approval::Provider, Approval::Consumer]
        );
        let stranger = caller(Role::OrgAdmin, Some(Uuid::new_v4()), None);
        assert!(!p.visible_to(&stranger) && !p.may_close(&stranger));
    }

    #[test]
    fn ports_are_checked_and_grants_merge_per_namespace() {
        assert_eq!(check_ports(&[8443, 443, 443]), Ok(vec![443, 8443]));
        assert!(check_ports(&[]).is_err());
        assert!(check_ports(&[0]).is_err());
        assert!(check_ports(&[70000]).is_err());
        assert!(check_ports(&(1..=33).collect::<Vec<_>>()).is_err());
        let link = |t: &str, n: &str, p: &[i32]| ApprovedLink {
            from_tenant: t.into(),
            from_namespace: n.into(),
            ports: p.to_vec(),
        };
        let g = grants(&[
            link("b", "prod", &[8443]),
            link("a", "prod", &[443]),
            link("b", "prod", &[443]),
        ]);
        assert_eq!(g.len(), 2);
        assert_eq!((g[0].tenant.as_str(), g[0].ports.len()), ("a", 1));
        assert_eq!(g[1].ports, vec![Port(443), Port(8443)]);
    }
}
