//! Every SQL statement of the API, one module per table. Functions take any executor, so they
//! run on the pool or inside a transaction.

pub mod audit;
pub mod capacity_requests;
pub mod organizations;
pub mod principals;
pub mod quota_changes;
pub mod tenants;

/// The schema's migrations, embedded in the binary.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Whether an error is a unique-constraint violation (an object that already exists).
pub fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.is_unique_violation())
}
