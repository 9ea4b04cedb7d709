//! Every SQL statement of the API, and nothing else: one module per table. Queries are
//! `sqlx::query!`/`query_as!`, checked against the schema at compile time (offline data in
//! `api/.sqlx`, written by `scripts/sqlx-prepare`). Functions take any executor, so they run on
//! the pool or inside a transaction.

pub mod announcements;
pub mod audit;
pub mod budgets;
pub mod capacity_requests;
pub mod console;
pub mod invoices;
pub mod links;
pub mod organizations;
pub mod principals;
pub mod quota_changes;
pub mod rate_cards;
pub mod tenants;
mod types;
pub mod usage;

/// The schema's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Whether an error is a unique-constraint violation (an object that already exists).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}

/// Whether PostgreSQL refused text it cannot store (a NUL character): the caller's fault.
pub fn is_unstorable_text(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("22021" | "22P05")))
}

/// Whether the database answers.
pub async fn ping(db: impl sqlx::PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query!("select 1 as one").fetch_one(db).await?;
    Ok(())
}

/// Serialises every quota judgement, across organizations and API replicas, for the rest of
/// the transaction: two approvals judged at once could together break a limit.
pub async fn lock_judgements(tx: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    // Any constant works: it names the lock; "govcloud" in ASCII.
    sqlx::query!("select pg_advisory_xact_lock(7453766)")
        .fetch_one(tx)
        .await?;
    Ok(())
}
