//! Who is calling, and what they may see and do.
//!
//! A caller presents `Authorization: Bearer <credential>`: either an API token (`gct_…`, looked
//! up by its SHA-256) or, when OIDC is configured, a JWT from the identity provider whose `sub`
//! is registered as a principal. Each principal has one role, scoped to an organization or a
//! tenant where the role needs one.

pub mod oidc;
pub mod tokens;

use std::fmt;
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::db;
use crate::error::ApiError;

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
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::PlatformAdmin,
        Role::OrgAdmin,
        Role::TenantAdmin,
        Role::Finance,
        Role::Auditor,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::PlatformAdmin => "platform-admin",
            Self::OrgAdmin => "org-admin",
            Self::TenantAdmin => "tenant-admin",
            Self::Finance => "finance",
            Self::Auditor => "auditor",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| format!("unknown role {s:?}"))
    }
}

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
            Role::TenantAdmin => match scope.tenant_id {
                Some(t) => self.tenant_id == Some(t),
                // A tenant admin sees its own organization, not its other tenants.
                None => self.organization_id == Some(scope.organization_id),
            },
        }
    }

    /// Refuses with 403 unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role], action: &str) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "the {} role may not {action}",
                self.role
            )))
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

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credential) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credential.trim())
        .filter(|c| !c.is_empty())
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let credential = bearer(parts).ok_or(ApiError::Unauthenticated)?;
        let found = if tokens::looks_like_token(credential) {
            db::principals::by_token_hash(&state.db, &tokens::hash(credential)).await?
        } else if let Some(oidc) = &state.oidc {
            match oidc.verify(credential).await {
                Ok(subject) => db::principals::by_oidc_subject(&state.db, &subject).await?,
                Err(e) => {
                    tracing::info!(error = %e, "bearer JWT refused");
                    None
                }
            }
        } else {
            None
        };
        found.ok_or(ApiError::Unauthenticated)
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
    fn roles_parse_from_their_names() {
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>(), Ok(r));
        }
        assert!("root".parse::<Role>().is_err());
    }
}
