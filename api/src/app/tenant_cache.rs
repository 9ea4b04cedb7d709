//! Tenants as read by name, remembered briefly so `GET /v1/tenants/{name}` costs no database
//! round trip — and forgotten the moment anything about a tenant changes.
//!
//! Every insert, update or delete of a tenant, a tenant namespace or an organization is
//! announced by PostgreSQL on the channel `govcloud_tenants` when it commits (migration 0011);
//! every replica empties this cache on each announcement ([`super::announced::follow`]), and
//! holds nothing while the channel is down. A replica also empties it after every request that
//! may write (anything but GET and HEAD), before the response leaves, so whoever changed a
//! tenant reads the change back at once from the same replica; other replicas drop it when the
//! announcement arrives (milliseconds). An entry lives at most [`TTL`]. What a caller may see is
//! decided on every request, never cached; the tenant's state in the cluster is read live.

use std::time::Duration;

use super::announced::Announced;
use crate::db::tenants::{NamespaceRow, TenantRow};

/// The longest a tenant is remembered.
pub const TTL: Duration = Duration::from_secs(10);
/// The most tenants remembered; past it the cache starts again empty.
const CAPACITY: usize = 20_000;

/// Tenants by name, with their namespaces.
pub type TenantCache = Announced<String, (TenantRow, Vec<NamespaceRow>)>;

impl Default for TenantCache {
    fn default() -> Self {
        Announced::new(TTL, CAPACITY)
    }
}
