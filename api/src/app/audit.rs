//! Reading the audit log (auditors and platform admins).

use crate::AppState;
use crate::app::AppResult;
use crate::db::audit::ListFilter;
use crate::domain::principal::{Caller, Role};

pub use crate::db::audit::AuditRow;

/// What a page of the audit log is narrowed to.
pub struct Filter<'a> {
    pub organization: Option<&'a str>,
    pub tenant: Option<&'a str>,
    pub action: Option<&'a str>,
    /// Continue before this event id (newest first).
    pub before: Option<i64>,
    pub limit: i64,
}

pub async fn list(state: &AppState, caller: &Caller, f: Filter<'_>) -> AppResult<Vec<AuditRow>> {
    caller.require(&[Role::PlatformAdmin, Role::Auditor], "read the audit log")?;
    Ok(crate::db::audit::list(
        &state.db,
        ListFilter {
            organization: f.organization,
            tenant: f.tenant,
            action: f.action,
            before: f.before,
            limit: f.limit,
        },
    )
    .await?)
}
