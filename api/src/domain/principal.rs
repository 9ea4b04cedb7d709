//! Who is calling, and what they may see and do.
//!
//! Each principal (a person or an automation account) has one role, scoped to an organization
//! or a tenant where the role needs one. What a caller may not see answers as if it did not
//! exist; what it may see but not do is forbidden.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Runs the shared cloud.
    PlatformAdmin,
    /// An organization's IT department.
    OrgAdmin,
    /// An agency.
    TenantAdmin,
    /// An organization's finance office.
    Finance,
    /// Reads everything, changes nothing.
    Auditor,
    /// The operator's identity: ingests usage samples, and can do nothing else.
    Metering,
}

super::named!(Role, "role", {
    PlatformAdmin => "platform-admin",
    OrgAdmin => "org-admin",
    TenantAdmin => "tenant-admin",
    Finance => "finance",
    Auditor => "auditor",
    Metering => "metering",
});

/// The authenticated caller of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The principal's name, as the audit log records it.
    pub name: String,
    pub role: Role,
    /// The organization the role is scoped to (for a tenant admin: its tenant's organization).
    pub organization_id: Option<Uuid>,
    /// The tenant a tenant admin is scoped to.
    pub tenant_id: Option<Uuid>,
}

/// Where an object lives, for deciding who may see it.
#[derive(Debug, Clone, Copy)]
pub struct Scope {
    pub organization_id: Uuid,
    pub tenant_id: Option<Uuid>,
}

impl Scope {
    pub fn organization(organization_id: Uuid) -> Self {
        Self {
            organization_id,
            tenant_id: None,
        }
    }

    pub fn tenant(organization_id: Uuid, tenant_id: Uuid) -> Self {
        Self {
            organization_id,
            tenant_id: Some(tenant_id),
        }
    }
}

impl Caller {
    /// Whether the caller may see an object in `scope`. What a caller may not see answers 404,
    /// exactly as if it did not exist.
    pub fn sees(&self, scope: Scope) -> bool {
        match self.role {
            Role::PlatformAdmin | Role::Auditor => true,
            Role::OrgAdmin | Role::Finance => self.organization_id == Some(scope.organization_id),
            Role::Metering => false,
            Role::TenantAdmin => match scope.tenant_id {
                Some(t) => self.tenant_id == Some(t),
                // A tenant admin sees its own organization, not its other tenants.
                None => self.organization_id == Some(scope.organization_id),
            },
        }
    }

    /// Refuses unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), Forbidden> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(Forbidden(format!(
                "the {} role may not {action}",
                self.role
            )))
        }
    }

    /// Whether the caller may see the principal `p` (platform admins and auditors: everyone;
    /// organization admins: their organization's people, its agencies' included).
    pub fn sees_principal(&self, p: &PrincipalScope) -> bool {
        match self.role {
            Role::PlatformAdmin | Role::Auditor => true,
            Role::OrgAdmin => {
                p.organization_id.is_some() && p.organization_id == self.organization_id
            }
            Role::TenantAdmin | Role::Finance | Role::Metering => false,
        }
    }

    /// Whether the caller may register, delete or rotate the token of a principal with this
    /// role and scope: platform admins anyone, organization admins their own organization's
    /// org admins, finance officers and agency admins (never a platform-wide role).
    pub fn manages(&self, p: &PrincipalScope) -> Result<(), Forbidden> {
        match self.role {
            Role::PlatformAdmin => Ok(()),
            Role::OrgAdmin => {
                if matches!(p.role, Role::PlatformAdmin | Role::Auditor | Role::Metering) {
                    Err(Forbidden(format!(
                        "an org-admin may not manage {} principals: only platform admins do",
                        p.role
                    )))
                } else if p.organization_id.is_some() && p.organization_id == self.organization_id {
                    Ok(())
                } else {
                    Err(Forbidden(
                        "an org-admin manages only its own organization's people".into(),
                    ))
                }
            }
            other => Err(Forbidden(format!(
                "the {other} role may not manage principals"
            ))),
        }
    }

    /// The organization a list is limited to, if any (`None`: every organization).
    pub fn organization_filter(&self) -> Option<Uuid> {
        match self.role {
            Role::PlatformAdmin | Role::Auditor => None,
            _ => self.organization_id.or(Some(Uuid::nil())),
        }
    }

    /// The tenant a list is limited to, if any.
    pub fn tenant_filter(&self) -> Option<Uuid> {
        match self.role {
            Role::TenantAdmin => self.tenant_id.or(Some(Uuid::nil())),
            _ => None,
        }
    }
}

/// A refusal: the caller may see the object but its role may not do this.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Forbidden(pub String);

/// A principal's role and where it is scoped (for a tenant admin: its tenant's organization).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrincipalScope {
    pub role: Role,
    pub organization_id: Option<Uuid>,
    pub tenant_id: Option<Uuid>,
}

/// A rule giving the people of an identity provider's group a role, so a province need not
/// register everyone one by one: `group: nghean:stttt:admins, role: tenant-admin, tenant:
/// nghean-stttt`. A registered principal always wins over a rule.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupRole {
    pub group: String,
    pub role: Role,
    #[serde(default)]
    pub organization: Option<String>,
    #[serde(default)]
    pub tenant: Option<String>,
}

/// Checks a list of group rules: each scoped as its role needs, no group twice.
pub fn check_group_roles(rules: &[GroupRole]) -> Result<(), String> {
    for (i, r) in rules.iter().enumerate() {
        if r.group.trim().is_empty() {
            return Err(format!("rule {i}: the group is empty"));
        }
        if let Some(why) = scope_mismatch(r.role, r.organization.is_some(), r.tenant.is_some()) {
            return Err(format!("rule {i} (group {}): {why}", r.group));
        }
        if rules[..i].iter().any(|o| o.group == r.group) {
            return Err(format!("rule {i}: group {} is mapped twice", r.group));
        }
    }
    Ok(())
}

/// The rule for a person in `groups`: the first in the list whose group they are in.
pub fn rule_for<'a>(rules: &'a [GroupRole], groups: &[String]) -> Option<&'a GroupRole> {
    rules.iter().find(|r| groups.contains(&r.group))
}

/// The most characters of a principal's name.
pub const MAX_NAME: usize = 128;

/// Refuses a principal name the audit log could not tell apart: 1 to 128 letters, digits,
/// `.`, `_`, `@` and `-`, never starting like the API's own actors (`system:`).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if name.is_empty() || name.chars().count() > MAX_NAME || !ok_chars {
        Err(format!(
            "must be 1 to {MAX_NAME} letters, digits, '.', '_', '@' or '-' (an email address works)"
        ))
    } else {
        Ok(())
    }
}

/// What a role needs to be scoped to, in words, when it is not: `None` when the scope fits.
pub fn scope_mismatch(role: Role, organization: bool, tenant: bool) -> Option<&'static str> {
    match (role, organization, tenant) {
        (Role::PlatformAdmin | Role::Auditor | Role::Metering, false, false) => None,
        (Role::PlatformAdmin | Role::Auditor | Role::Metering, _, _) => {
            Some("a platform-wide role takes neither an organization nor a tenant")
        }
        (Role::OrgAdmin | Role::Finance, true, false) => None,
        (Role::OrgAdmin | Role::Finance, _, _) => {
            Some("org-admin and finance take an organization and no tenant")
        }
        (Role::TenantAdmin, false, true) => None,
        (Role::TenantAdmin, _, _) => Some("tenant-admin takes a tenant and no organization"),
    }
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
    fn roles_see_their_own_scope_only() {
        let (org, other_org, t, other_t) = (
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
            Uuid::new_v4(),
        );
        let own_tenant = Scope::tenant(org, t);
        let sibling = Scope::tenant(org, other_t);
        let foreign = Scope::tenant(other_org, Uuid::new_v4());
        let ta = caller(Role::TenantAdmin, Some(org), Some(t));
        assert!(ta.sees(own_tenant) && !ta.sees(sibling) && !ta.sees(foreign));
        assert!(ta.sees(Scope::organization(org)));
        let oa = caller(Role::OrgAdmin, Some(org), None);
        assert!(oa.sees(own_tenant) && oa.sees(sibling) && !oa.sees(foreign));
        let fi = caller(Role::Finance, Some(org), None);
        assert!(fi.sees(sibling) && !fi.sees(Scope::organization(other_org)));
        for r in [Role::PlatformAdmin, Role::Auditor] {
            assert!(caller(r, None, None).sees(foreign));
        }
    }

    #[test]
    fn org_admins_manage_their_own_organizations_people_only() {
        let (org, other) = (Uuid::new_v4(), Uuid::new_v4());
        let oa = caller(Role::OrgAdmin, Some(org), None);
        let scope = |role, o| PrincipalScope {
            role,
            organization_id: o,
            tenant_id: None,
        };
        for role in [Role::OrgAdmin, Role::Finance, Role::TenantAdmin] {
            assert!(oa.manages(&scope(role, Some(org))).is_ok(), "{role}");
            assert!(oa.manages(&scope(role, Some(other))).is_err(), "{role}");
            assert!(oa.sees_principal(&scope(role, Some(org))));
            assert!(!oa.sees_principal(&scope(role, Some(other))));
        }
        for role in [Role::PlatformAdmin, Role::Auditor] {
            assert!(oa.manages(&scope(role, None)).is_err());
            assert!(!oa.sees_principal(&scope(role, None)));
        }
        let pa = caller(Role::PlatformAdmin, None, None);
        assert!(pa.manages(&scope(Role::PlatformAdmin, None)).is_ok());
        for role in [Role::TenantAdmin, Role::Finance, Role::Auditor] {
            let c = caller(role, Some(org), None);
            assert!(c.manages(&scope(Role::TenantAdmin, Some(org))).is_err());
        }
        assert!(
            caller(Role::Auditor, None, None).sees_principal(&scope(Role::PlatformAdmin, None))
        );
    }

    #[test]
    fn the_first_rule_of_a_persons_groups_gives_the_role() {
        let rule = |group: &str, role, org: Option<&str>, tenant: Option<&str>| GroupRole {
            group: group.into(),
            role,
            organization: org.map(String::from),
            tenant: tenant.map(String::from),
        };
        let rules = vec![
            rule("nghean:it", Role::OrgAdmin, Some("nghe-an"), None),
            rule(
                "nghean:stttt:admins",
                Role::TenantAdmin,
                None,
                Some("nghean-stttt"),
            ),
        ];
        assert_eq!(check_group_roles(&rules), Ok(()));
        let groups = |g: &[&str]| g.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            rule_for(&rules, &groups(&["x", "nghean:stttt:admins", "nghean:it"])).map(|r| r.role),
            Some(Role::OrgAdmin),
            "file order decides"
        );
        assert_eq!(
            rule_for(&rules, &groups(&["nghean:stttt"])),
            None,
            "whole names only"
        );
        let bad = vec![rule("g", Role::TenantAdmin, Some("nghe-an"), None)];
        assert!(check_group_roles(&bad).is_err());
        let twice = vec![rules[0].clone(), rules[0].clone()];
        assert!(check_group_roles(&twice).is_err());
    }

    #[test]
    fn principal_names_are_plain() {
        for good in ["an.nguyen@nghean.gov.vn", "ci-deployer", "a"] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        let long = "a".repeat(MAX_NAME + 1);
        for bad in [
            "",
            "system:sync",
            "two words",
            "tab\t",
            long.as_str(),
            "ngân",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn each_role_takes_its_own_scope() {
        assert_eq!(scope_mismatch(Role::PlatformAdmin, false, false), None);
        assert!(scope_mismatch(Role::Auditor, true, false).is_some());
        assert_eq!(scope_mismatch(Role::Finance, true, false), None);
        assert!(scope_mismatch(Role::OrgAdmin, false, false).is_some());
        assert_eq!(scope_mismatch(Role::TenantAdmin, false, true), None);
        assert!(scope_mismatch(Role::TenantAdmin, true, true).is_some());
    }

    #[test]
    fn roles_parse_from_their_names() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
