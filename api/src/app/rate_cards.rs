//! Rate cards: the platform's default and organizations' own, in VND, changed only by new
//! versions (and VAT rates) that take effect later. Platform admins write them; everyone in
//! scope reads them.

use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::{AppError, AppResult, organizations};
use crate::db::audit;
use crate::db::rate_cards::{self as store, RateCardRow};
use crate::domain::field::{DISPLAY_NAME, FieldError, check_text};
use crate::domain::period::{is_whole_hour, parse_instant};
use crate::domain::principal::{Caller, Role, Scope};
use crate::domain::rating::{Price, Resource, check_prices};
use crate::domain::request::HORIZON_DAYS;

/// A price as written: decimal strings, never JSON numbers (which would pass through floating
/// point).
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PriceInput {
    pub resource: Resource,
    /// The GPU model (the extended resource's name, e.g. `nvidia.com/gpu`); only for GPUs.
    #[serde(default)]
    pub class: String,
    /// Đồng per unit: core-hour, GiB-hour, GiB-month, load-balancer-month or GPU-hour.
    #[schema(example = "250")]
    pub price: String,
    /// Đồng per unit for lines of the `Usage` plan, where it differs from `price`.
    pub usage_price: Option<String>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewVersion {
    /// A date (midnight in Asia/Ho_Chi_Minh) or a whole hour (RFC 3339). A card's first
    /// version may start in the past; later ones start in the future.
    #[schema(example = "2027-01-01")]
    pub effective_from: String,
    pub prices: Vec<PriceInput>,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewVat {
    /// The rate as a decimal string: `0.08` for 8 %.
    #[schema(example = "0.08")]
    pub rate: String,
    /// A date or an instant; a card's first rate may start in the past, later ones in the
    /// future.
    pub effective_from: String,
}

#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NewRateCard {
    /// The organization whose own card this is; absent: the platform's default.
    pub organization: Option<String>,
    pub name: String,
    /// The first version.
    pub effective_from: String,
    pub prices: Vec<PriceInput>,
    /// The first VAT rate.
    pub vat: NewVat,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct PriceView {
    pub resource: Resource,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub class: String,
    #[schema(example = "core-hour")]
    pub unit: &'static str,
    #[schema(value_type = String, example = "250")]
    pub price: Decimal,
    #[schema(value_type = Option<String>)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_price: Option<Decimal>,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VersionView {
    pub id: Uuid,
    pub version: i32,
    pub effective_from: DateTime<Utc>,
    /// Whether it has come into force (then it can never change).
    pub in_force: bool,
    pub prices: Vec<PriceView>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VatView {
    #[schema(value_type = String, example = "0.08")]
    pub rate: Decimal,
    pub effective_from: DateTime<Utc>,
    pub in_force: bool,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateCardView {
    pub id: Uuid,
    /// The organization whose card it is; absent: the platform's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    pub name: String,
    #[schema(example = "VND")]
    pub currency: String,
    pub versions: Vec<VersionView>,
    pub vat_rates: Vec<VatView>,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

fn decimal(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Decimal {
    match Decimal::from_str_exact(s.trim()) {
        Ok(d) => d,
        Err(_) => {
            errors.push(FieldError::new(
                field,
                format!("{s:?} is not a decimal number"),
            ));
            Decimal::ZERO
        }
    }
}

fn prices(input: &[PriceInput], errors: &mut Vec<FieldError>) -> Vec<Price> {
    let parsed: Vec<Price> = input
        .iter()
        .enumerate()
        .map(|(i, p)| Price {
            resource: p.resource,
            class: p.class.clone(),
            price: decimal(&format!("prices[{i}].price"), &p.price, errors),
            usage_price: p
                .usage_price
                .as_deref()
                .map(|u| decimal(&format!("prices[{i}].usagePrice"), u, errors)),
        })
        .collect();
    errors.extend(check_prices(&parsed));
    parsed
}

fn effective(
    field: &str,
    s: &str,
    now: DateTime<Utc>,
    errors: &mut Vec<FieldError>,
) -> DateTime<Utc> {
    match parse_instant(s) {
        Ok(t) if !is_whole_hour(t) => {
            errors.push(FieldError::new(field, "must be a date or a whole hour"));
            t
        }
        Ok(t) if t > now + chrono::Duration::days(HORIZON_DAYS) => {
            errors.push(FieldError::new(field, "must be within 2 years from now"));
            t
        }
        Ok(t) => t,
        Err(m) => {
            errors.push(FieldError::new(field, m));
            now
        }
    }
}

fn vat_rate(field: &str, s: &str, errors: &mut Vec<FieldError>) -> Decimal {
    let r = decimal(field, s, errors);
    if r.is_sign_negative() || r >= Decimal::ONE || r.scale() > 4 {
        errors.push(FieldError::new(
            field,
            "must be a rate from 0 to below 1 with at most 4 decimal places (0.08 for 8 %)",
        ));
    }
    r
}

/// The database refused a change of what is in force.
fn frozen(e: sqlx::Error) -> AppError {
    match &e {
        sqlx::Error::Database(d) if d.code().as_deref() == Some("23000") => {
            AppError::Conflict(d.message().to_string())
        }
        _ => e.into(),
    }
}

fn visible(caller: &Caller, card: &RateCardRow) -> bool {
    caller.role != Role::Metering
        && card
            .organization_id
            .is_none_or(|org| caller.sees(Scope::organization(org)))
}

async fn view(state: &AppState, cards: Vec<RateCardRow>) -> AppResult<Vec<RateCardView>> {
    let now = Utc::now();
    let ids: Vec<Uuid> = cards.iter().map(|c| c.rate_card_id).collect();
    let versions = store::versions(&state.db, &ids).await?;
    let version_ids: Vec<Uuid> = versions.iter().map(|v| v.rate_card_version_id).collect();
    let prices = store::prices(&state.db, &version_ids).await?;
    let vats = store::vat_rates(&state.db, &ids).await?;
    Ok(cards
        .into_iter()
        .map(|c| RateCardView {
            id: c.rate_card_id,
            organization: c.organization,
            name: c.name,
            currency: c.currency,
            versions: versions
                .iter()
                .filter(|v| v.rate_card_id == c.rate_card_id)
                .map(|v| VersionView {
                    id: v.rate_card_version_id,
                    version: v.version,
                    effective_from: v.effective_from,
                    in_force: v.effective_from <= now,
                    prices: prices
                        .iter()
                        .filter(|p| p.rate_card_version_id == v.rate_card_version_id)
                        .filter_map(|p| {
                            let resource = Resource::from_str(&p.resource).ok()?;
                            Some(PriceView {
                                resource,
                                class: p.class.clone(),
                                unit: resource.unit(),
                                price: p.price.normalize(),
                                usage_price: p.usage_price.map(|u| u.normalize()),
                            })
                        })
                        .collect(),
                    created_at: v.created_at,
                    created_by: v.created_by.clone(),
                })
                .collect(),
            vat_rates: vats
                .iter()
                .filter(|v| v.rate_card_id == c.rate_card_id)
                .map(|v| VatView {
                    rate: v.rate.normalize(),
                    effective_from: v.effective_from,
                    in_force: v.effective_from <= now,
                })
                .collect(),
            created_at: c.created_at,
            created_by: c.created_by,
        })
        .collect())
}

pub async fn list(state: &AppState, caller: &Caller) -> AppResult<Vec<RateCardView>> {
    caller.require(
        &[
            Role::PlatformAdmin,
            Role::Auditor,
            Role::OrgAdmin,
            Role::Finance,
            Role::TenantAdmin,
        ],
        "read rate cards",
    )?;
    let cards = store::list(&state.db, caller.organization_filter()).await?;
    view(
        state,
        cards.into_iter().filter(|c| visible(caller, c)).collect(),
    )
    .await
}

async fn visible_card(state: &AppState, caller: &Caller, id: Uuid) -> AppResult<RateCardRow> {
    store::by_id(&state.db, id)
        .await?
        .filter(|c| visible(caller, c))
        .ok_or_else(|| AppError::not_found("rate card", id.to_string()))
}

pub async fn show(state: &AppState, caller: &Caller, id: Uuid) -> AppResult<RateCardView> {
    let card = visible_card(state, caller, id).await?;
    view(state, vec![card])
        .await?
        .pop()
        .ok_or_else(|| AppError::not_found("rate card", id.to_string()))
}

/// Writes a new card with its first version and VAT rate (platform admins).
pub async fn create(
    state: &AppState,
    caller: &Caller,
    input: NewRateCard,
) -> AppResult<RateCardView> {
    let org = match &input.organization {
        Some(name) => Some(organizations::visible(state, caller, name).await?),
        None => None,
    };
    caller.require(&[Role::PlatformAdmin], "write rate cards")?;
    let now = Utc::now();
    let mut errors = Vec::new();
    check_text("name", &input.name, DISPLAY_NAME, &mut errors);
    let from = effective("effectiveFrom", &input.effective_from, now, &mut errors);
    let prices = prices(&input.prices, &mut errors);
    let rate = vat_rate("vat.rate", &input.vat.rate, &mut errors);
    let vat_from = effective(
        "vat.effectiveFrom",
        &input.vat.effective_from,
        now,
        &mut errors,
    );
    AppError::check(errors)?;
    let mut tx = state.db.begin().await?;
    let org_id = org.as_ref().map(|o| o.organization_id);
    let Some(id) = store::insert(&mut tx, org_id, input.name.trim(), &caller.name).await? else {
        return Err(AppError::Conflict(format!(
            "{} has a rate card already: add a version to it",
            org.as_ref().map_or("the platform".to_string(), |o| format!(
                "organization {}",
                o.name
            ))
        )));
    };
    let (version_id, _) = store::insert_version(&mut tx, id, from, &caller.name)
        .await
        .map_err(frozen)?;
    store::insert_prices(&mut tx, version_id, &prices)
        .await
        .map_err(frozen)?;
    store::insert_vat(&mut tx, id, vat_from, rate, &caller.name)
        .await
        .map_err(frozen)?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "rate-card.create",
            object_kind: "rate-card",
            object_id: id.to_string(),
            organization_id: org_id,
            tenant_id: None,
            detail: json!({"name": input.name.trim(), "effectiveFrom": from, "prices": prices.len(), "vatRate": rate}),
        },
    )
    .await?;
    tx.commit().await?;
    show(state, caller, id).await
}

/// Adds a version, in force from a later date (platform admins).
pub async fn add_version(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    input: NewVersion,
) -> AppResult<RateCardView> {
    let card = visible_card(state, caller, id).await?;
    caller.require(&[Role::PlatformAdmin], "write rate cards")?;
    let now = Utc::now();
    let mut errors = Vec::new();
    let from = effective("effectiveFrom", &input.effective_from, now, &mut errors);
    if from <= now {
        errors.push(FieldError::new(
            "effectiveFrom",
            "must be in the future: a version in force never changes, a new one supersedes it from its date",
        ));
    }
    let prices = prices(&input.prices, &mut errors);
    AppError::check(errors)?;
    let mut tx = state.db.begin().await?;
    store::lock(&mut tx, id).await?;
    let (version_id, version) = store::insert_version(&mut tx, id, from, &caller.name)
        .await
        .map_err(frozen)?;
    store::insert_prices(&mut tx, version_id, &prices)
        .await
        .map_err(frozen)?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "rate-card.version",
            object_kind: "rate-card",
            object_id: id.to_string(),
            organization_id: card.organization_id,
            tenant_id: None,
            detail: json!({"version": version, "effectiveFrom": from, "prices": prices.len()}),
        },
    )
    .await?;
    tx.commit().await?;
    show(state, caller, id).await
}

/// Adds a VAT rate, in force from a later date (platform admins).
pub async fn add_vat(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
    input: NewVat,
) -> AppResult<RateCardView> {
    let card = visible_card(state, caller, id).await?;
    caller.require(&[Role::PlatformAdmin], "write rate cards")?;
    let now = Utc::now();
    let mut errors = Vec::new();
    let rate = vat_rate("rate", &input.rate, &mut errors);
    let from = effective("effectiveFrom", &input.effective_from, now, &mut errors);
    if from <= now {
        errors.push(FieldError::new("effectiveFrom", "must be in the future"));
    }
    AppError::check(errors)?;
    let mut tx = state.db.begin().await?;
    store::lock(&mut tx, id).await?;
    store::insert_vat(&mut tx, id, from, rate, &caller.name)
        .await
        .map_err(frozen)?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
            action: "rate-card.vat",
            object_kind: "rate-card",
            object_id: id.to_string(),
            organization_id: card.organization_id,
            tenant_id: None,
            detail: json!({"rate": rate, "effectiveFrom": from}),
        },
    )
    .await?;
    tx.commit().await?;
    show(state, caller, id).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_decimal_strings_and_checked() {
        let mut errors = Vec::new();
        let input = vec![PriceInput {
            resource: Resource::Cpu,
            class: String::new(),
            price: "2.5e2".into(),
            usage_price: None,
        }];
        prices(&input, &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert!(fields.contains(&"prices[0].price"), "{fields:?}");
        assert!(fields.contains(&"prices"), "{fields:?}");
        let mut errors = Vec::new();
        assert_eq!(vat_rate("rate", "0.08", &mut errors), Decimal::new(8, 2));
        assert!(errors.is_empty());
        vat_rate("rate", "1.5", &mut errors);
        assert_eq!(errors.len(), 1);
    }
}
