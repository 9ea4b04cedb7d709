//! Rate cards, their versions with prices, and their VAT rates. Versions and VAT rates in
//! force are frozen by the database (migration 0008).

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct RateCardRow {
    pub rate_card_id: Uuid,
    pub organization_id: Option<Uuid>,
    pub organization: Option<String>,
    pub name: String,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

macro_rules! select_cards {
    ($filter:literal, $($arg:expr),*) => {
        sqlx::query_as!(
            RateCardRow,
            r#"select c.rate_card_id, c.organization_id, o.name as "organization?", c.name,
                   c.currency, c.created_at, c.created_by
               from rate_card c left join organization o on o.organization_id = c.organization_id
               where "# + $filter + " order by c.organization_id nulls first, c.name",
            $($arg),*
        )
    };
}

/// The cards of the platform and, where given, of one organization (none: every card).
pub async fn list(
    db: impl PgExecutor<'_>,
    organization_id: Option<Uuid>,
) -> sqlx::Result<Vec<RateCardRow>> {
    select_cards!(
        "($1::uuid is null or c.organization_id is null or c.organization_id = $1)",
        organization_id
    )
    .fetch_all(db)
    .await
}

pub async fn by_id(db: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<RateCardRow>> {
    select_cards!("c.rate_card_id = $1", id)
        .fetch_optional(db)
        .await
}

/// The platform's card and, where given, the organization's own.
pub async fn for_organization(
    db: impl PgExecutor<'_>,
    organization_id: Uuid,
) -> sqlx::Result<Vec<RateCardRow>> {
    select_cards!(
        "(c.organization_id is null or c.organization_id = $1)",
        organization_id
    )
    .fetch_all(db)
    .await
}

/// Makes a card; `None` when its scope already has one.
pub async fn insert(
    tx: &mut PgConnection,
    organization_id: Option<Uuid>,
    name: &str,
    by: &str,
) -> sqlx::Result<Option<Uuid>> {
    let id = sqlx::query_scalar!(
        "insert into rate_card (organization_id, name, created_by) values ($1, $2, $3)
         on conflict ((coalesce(organization_id, '00000000-0000-0000-0000-000000000000'::uuid)))
         do nothing returning rate_card_id",
        organization_id,
        name,
        by,
    )
    .fetch_optional(tx)
    .await?;
    Ok(id)
}

/// Locks a card for adding a version or a VAT rate.
pub async fn lock(tx: &mut PgConnection, id: Uuid) -> sqlx::Result<()> {
    sqlx::query!(
        "select rate_card_id from rate_card where rate_card_id = $1 for update",
        id
    )
    .fetch_optional(tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone)]
pub struct VersionRow {
    pub rate_card_version_id: Uuid,
    pub rate_card_id: Uuid,
    pub version: i32,
    pub effective_from: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

#[derive(Debug, Clone)]
pub struct PriceRow {
    pub rate_card_version_id: Uuid,
    pub resource: String,
    pub class: String,
    pub price: Decimal,
    pub usage_price: Option<Decimal>,
}

#[derive(Debug, Clone)]
pub struct VatRow {
    pub rate_card_id: Uuid,
    pub effective_from: DateTime<Utc>,
    pub rate: Decimal,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// Adds the next version of a card (the card is locked).
pub async fn insert_version(
    tx: &mut PgConnection,
    card: Uuid,
    effective_from: DateTime<Utc>,
    by: &str,
) -> sqlx::Result<(Uuid, i32)> {
    let r = sqlx::query!(
        "insert into rate_card_version (rate_card_id, version, effective_from, created_by)
         select $1, coalesce(max(version), 0) + 1, $2, $3 from rate_card_version where rate_card_id = $1
         returning rate_card_version_id, version",
        card,
        effective_from,
        by,
    )
    .fetch_one(tx)
    .await?;
    Ok((r.rate_card_version_id, r.version))
}

pub async fn insert_prices(
    tx: &mut PgConnection,
    version: Uuid,
    prices: &[crate::domain::rating::Price],
) -> sqlx::Result<()> {
    let resources: Vec<String> = prices.iter().map(|p| p.resource.to_string()).collect();
    let classes: Vec<String> = prices.iter().map(|p| p.class.clone()).collect();
    let amounts: Vec<Decimal> = prices.iter().map(|p| p.price).collect();
    let usage: Vec<Option<Decimal>> = prices.iter().map(|p| p.usage_price).collect();
    sqlx::query!(
        "insert into rate_card_price (rate_card_version_id, resource, class, price, usage_price)
         select $1, * from unnest($2::text[], $3::text[], $4::numeric[], $5::numeric[])",
        version,
        &resources,
        &classes,
        &amounts,
        &usage as &[Option<Decimal>],
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn insert_vat(
    tx: &mut PgConnection,
    card: Uuid,
    effective_from: DateTime<Utc>,
    rate: Decimal,
    by: &str,
) -> sqlx::Result<()> {
    sqlx::query!(
        "insert into rate_card_vat (rate_card_id, effective_from, rate, created_by) values ($1, $2, $3, $4)",
        card,
        effective_from,
        rate,
        by,
    )
    .execute(tx)
    .await?;
    Ok(())
}

pub async fn versions(db: impl PgExecutor<'_>, cards: &[Uuid]) -> sqlx::Result<Vec<VersionRow>> {
    sqlx::query_as!(
        VersionRow,
        "select rate_card_version_id, rate_card_id, version, effective_from, created_at, created_by
         from rate_card_version where rate_card_id = any($1) order by rate_card_id, effective_from",
        cards,
    )
    .fetch_all(db)
    .await
}

pub async fn prices(db: impl PgExecutor<'_>, versions: &[Uuid]) -> sqlx::Result<Vec<PriceRow>> {
    sqlx::query_as!(
        PriceRow,
        "select rate_card_version_id, resource, class, price, usage_price
         from rate_card_price where rate_card_version_id = any($1)
         order by rate_card_version_id, resource, class",
        versions,
    )
    .fetch_all(db)
    .await
}

pub async fn vat_rates(db: impl PgExecutor<'_>, cards: &[Uuid]) -> sqlx::Result<Vec<VatRow>> {
    sqlx::query_as!(
        VatRow,
        "select rate_card_id, effective_from, rate, created_at, created_by
         from rate_card_vat where rate_card_id = any($1) order by rate_card_id, effective_from",
        cards,
    )
    .fetch_all(db)
    .await
}
