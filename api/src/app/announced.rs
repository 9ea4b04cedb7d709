//! A cache whose entries PostgreSQL's announcements invalidate: what token and tenant reads
//! share. It holds anything only while the announcement channel is connected (see
//! [`follow`]); every announcement empties it; an entry lives at most its TTL in any case; and
//! a read that started before an emptying cannot put its stale answer back (its generation).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub struct Announced<K, V> {
    entries: RwLock<HashMap<K, (V, Instant)>>,
    generation: AtomicU64,
    /// Whether announcements are being received (only then is anything remembered).
    live: AtomicBool,
    ttl: Duration,
    /// The most entries; past it the cache starts again empty.
    capacity: usize,
}

impl<K: Eq + Hash, V: Clone> Announced<K, V> {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            generation: AtomicU64::new(0),
            live: AtomicBool::new(false),
            ttl,
            capacity,
        }
    }

    /// A remembered value, if it is younger than the TTL.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_if(key, |_| true)
    }

    /// A remembered value, if it is younger than the TTL and `valid` says it still holds.
    pub fn get_if<Q>(&self, key: &Q, valid: impl Fn(&V) -> bool) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.live.load(Ordering::Acquire) {
            return None;
        }
        let entries = self.entries.read().ok()?;
        let (value, stored) = entries.get(key)?;
        (stored.elapsed() < self.ttl && valid(value)).then(|| value.clone())
    }

    /// Where the cache stands before a read: pass it to [`Self::put`].
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Remembers a value read, unless the cache was emptied since `generation`.
    pub fn put(&self, key: K, value: V, generation: u64) {
        if !self.live.load(Ordering::Acquire) {
            return;
        }
        let Ok(mut entries) = self.entries.write() else {
            return;
        };
        // Checked under the lock that `clear` takes too.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= self.capacity {
            entries.clear();
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Forgets everything.
    pub fn clear(&self) {
        let mut entries = match self.entries.write() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        self.generation.fetch_add(1, Ordering::AcqRel);
        entries.clear();
    }

    /// Whether announcements are received; turning it on or off forgets everything.
    pub fn set_live(&self, live: bool) {
        self.clear();
        self.live.store(live, Ordering::Release);
    }

    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }
}

/// Keeps the caches in step with the database's announcements (`govcloud_auth` empties the
/// token cache, `govcloud_tenants` the tenant cache), reconnecting when the connection drops,
/// until the task is dropped.
pub async fn follow(
    tokens: std::sync::Arc<super::token_cache::TokenCache>,
    tenants: std::sync::Arc<super::tenant_cache::TenantCache>,
    db: sqlx::PgPool,
) {
    use crate::db::announcements::{Announcement, Announcements};
    let set_live = |live: bool| {
        tokens.set_live(live);
        tenants.set_live(live);
    };
    loop {
        match Announcements::listen(&db).await {
            Ok(mut changes) => {
                set_live(true);
                loop {
                    match changes.next().await {
                        Ok(Some(Announcement::Auth)) => tokens.clear(),
                        Ok(Some(Announcement::Tenants)) => tenants.clear(),
                        Ok(None) => {
                            // Reconnected: what was announced meanwhile is lost.
                            tracing::info!(
                                "the announcements' connection was lost; the token and tenant caches start again empty"
                            );
                            tokens.clear();
                            tenants.clear();
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "the announcements stopped; tokens and tenants are read from the database on every request until they are back");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for announcements; tokens and tenants are read from the database on every request");
            }
        }
        set_live(false);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nothing_is_remembered_unless_live_and_a_read_from_before_a_clear_is_not_stored() {
        let c: Announced<u8, u8> = Announced::new(Duration::from_secs(60), 10);
        c.put(1, 1, c.generation());
        assert_eq!(c.get(&1), None);
        c.set_live(true);
        c.put(1, 1, c.generation());
        assert_eq!(c.get(&1), Some(1));
        assert_eq!(
            c.get_if(&1, |_| false),
            None,
            "what no longer holds is not answered"
        );
        let before = c.generation();
        c.clear();
        c.put(2, 2, before);
        assert_eq!(c.get(&2), None);
        c.set_live(false);
        assert_eq!(c.get(&1), None);
    }

    #[test]
    fn entries_age_out_and_capacity_starts_it_again() {
        let c: Announced<u8, u8> = Announced::new(Duration::from_millis(1), 2);
        c.set_live(true);
        c.put(1, 1, c.generation());
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(c.get(&1), None);
        let c: Announced<u8, u8> = Announced::new(Duration::from_secs(60), 2);
        c.set_live(true);
        for k in 0..3 {
            c.put(k, k, c.generation());
        }
        assert_eq!(c.get(&0), None);
        assert_eq!(c.get(&2), Some(2));
    }
}
