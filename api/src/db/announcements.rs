//! PostgreSQL's announcements of changes the API caches depend on (migrations 0010, 0011).

/// What an announcement says changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// A token or a principal (`govcloud_auth`).
    Auth,
    /// A tenant, its namespaces or an organization (`govcloud_tenants`).
    Tenants,
}

pub struct Announcements(sqlx::postgres::PgListener);

impl Announcements {
    pub async fn listen(pool: &sqlx::PgPool) -> sqlx::Result<Self> {
        let mut l = sqlx::postgres::PgListener::connect_with(pool).await?;
        l.listen_all(["govcloud_auth", "govcloud_tenants"]).await?;
        Ok(Self(l))
    }

    /// The next announcement; `Ok(None)` when the connection was lost (and announcements with
    /// it; the next call reconnects).
    pub async fn next(&mut self) -> sqlx::Result<Option<Announcement>> {
        Ok(self.0.try_recv().await?.map(|n| match n.channel() {
            "govcloud_auth" => Announcement::Auth,
            _ => Announcement::Tenants,
        }))
    }
}
