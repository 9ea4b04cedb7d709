//! Verified API tokens, remembered briefly so a request costs no lookup of its token — and
//! forgotten the moment anything about who may call changes.
//!
//! Every update or delete of a token or a principal is announced by PostgreSQL on the channel
//! `govcloud_auth` when it commits (migration 0010), and every replica empties its cache on each
//! announcement. The cache is used only while that announcement channel is connected: when the
//! connection drops (announcements could be lost) it is emptied and every request looks its token
//! up again until it is back. A use case that revokes also empties this replica's cache itself
//! after committing, so the very next request here is refused without waiting for the
//! announcement; other replicas drop it when the announcement arrives (milliseconds). An entry
//! lives at most [`TTL`] in any case, and a token's expiry is checked on every hit.
//!
//! A lookup that started before a revocation cannot put its stale answer back: entries are
//! stored only if the cache was not emptied since the lookup began (its generation).

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::announced::Announced;
use crate::domain::principal::Caller;

/// The longest a verified token is remembered.
pub const TTL: Duration = Duration::from_secs(30);
/// The most tokens remembered; past it the cache starts again empty.
const CAPACITY: usize = 10_000;

/// Verified tokens by their hash: who they are, and until when.
pub struct TokenCache(Announced<Vec<u8>, (Caller, Option<DateTime<Utc>>)>);

impl Default for TokenCache {
    fn default() -> Self {
        Self(Announced::new(TTL, CAPACITY))
    }
}

impl TokenCache {
    /// The caller of a remembered token, if it is still good.
    pub fn get(&self, hash: &[u8]) -> Option<Caller> {
        self.0
            .get_if(hash, |(_, expires_at)| {
                expires_at.is_none_or(|at| at > Utc::now())
            })
            .map(|(caller, _)| caller)
    }

    /// Where the cache stands before a lookup: pass it to [`Self::put`].
    pub fn generation(&self) -> u64 {
        self.0.generation()
    }

    /// Remembers a verified token, unless the cache was emptied since `generation`.
    pub fn put(
        &self,
        hash: Vec<u8>,
        caller: Caller,
        expires_at: Option<DateTime<Utc>>,
        generation: u64,
    ) {
        self.0.put(hash, (caller, expires_at), generation);
    }

    /// Forgets every token.
    pub fn clear(&self) {
        self.0.clear();
    }

    /// Whether announcements are received; turning it off forgets everything.
    pub fn set_live(&self, live: bool) {
        self.0.set_live(live);
    }

    pub fn is_live(&self) -> bool {
        self.0.is_live()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::principal::Role;

    fn caller() -> Caller {
        Caller {
            name: "a".into(),
            role: Role::Auditor,
            organization_id: None,
            tenant_id: None,
        }
    }

    #[test]
    fn nothing_is_remembered_unless_announcements_are_received() {
        let c = TokenCache::default();
        c.put(vec![1], caller(), None, c.generation());
        assert_eq!(c.get(&[1]), None);
        c.set_live(true);
        c.put(vec![1], caller(), None, c.generation());
        assert_eq!(c.get(&[1]), Some(caller()));
        c.set_live(false);
        assert_eq!(c.get(&[1]), None);
    }

    #[test]
    fn a_lookup_from_before_a_clear_is_not_stored_and_expiry_is_checked_on_each_hit() {
        let c = TokenCache::default();
        c.set_live(true);
        let before = c.generation();
        c.clear(); // a revocation committed while the lookup ran
        c.put(vec![1], caller(), None, before);
        assert_eq!(c.get(&[1]), None);
        let past = Utc::now() - chrono::Duration::seconds(1);
        c.put(vec![2], caller(), Some(past), c.generation());
        assert_eq!(c.get(&[2]), None);
    }
}
