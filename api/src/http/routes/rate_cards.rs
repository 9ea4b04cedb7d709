//! Rate cards: the platform's default and organizations' own, with their versions and VAT
//! rates. A version in force never changes; a new one supersedes it from its date.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::app::AppError;
use crate::app::rate_cards::{self as use_case, NewRateCard, NewVat, NewVersion, RateCardView};
use crate::domain::principal::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::extract::AppJson;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/v1/rate-cards", get(list).post(create))
        .route("/v1/rate-cards/{id}", get(show))
        .route("/v1/rate-cards/{id}/versions", post(add_version))
        .route("/v1/rate-cards/{id}/vat-rates", post(add_vat))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RateCardList {
    pub items: Vec<RateCardView>,
}

fn id(s: &str) -> Result<Uuid, ApiError> {
    s.parse()
        .map_err(|_| AppError::not_found("rate card", s.to_string()).into())
}

/// Lists the rate cards the caller may see: the platform's, and its organization's own.
#[utoipa::path(get, path = "/v1/rate-cards", tag = "rate-cards",
    responses((status = 200, body = RateCardList)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<AppJson<RateCardList>> {
    Ok(AppJson(RateCardList {
        items: use_case::list(&state, &caller).await?,
    }))
}

/// Shows a rate card with every version and VAT rate.
#[utoipa::path(get, path = "/v1/rate-cards/{id}", tag = "rate-cards",
    params(("id" = String, Path, description = "The rate card's id")),
    responses((status = 200, body = RateCardView)))]
pub(crate) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
) -> ApiResult<AppJson<RateCardView>> {
    Ok(AppJson(use_case::show(&state, &caller, id(&i)?).await?))
}

/// Writes a rate card with its first version and VAT rate (platform admins): the platform's
/// default, or an organization's own. One card per scope; it changes by new versions.
#[utoipa::path(post, path = "/v1/rate-cards", tag = "rate-cards",
    request_body = NewRateCard,
    responses((status = 201, body = RateCardView)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(body): AppJson<NewRateCard>,
) -> ApiResult<(StatusCode, AppJson<RateCardView>)> {
    let card = use_case::create(&state, &caller, body).await?;
    Ok((StatusCode::CREATED, AppJson(card)))
}

/// Adds a version in force from a future date (platform admins).
#[utoipa::path(post, path = "/v1/rate-cards/{id}/versions", tag = "rate-cards",
    params(("id" = String, Path, description = "The rate card's id")),
    request_body = NewVersion,
    responses((status = 201, body = RateCardView)))]
pub(crate) async fn add_version(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
    AppJson(body): AppJson<NewVersion>,
) -> ApiResult<(StatusCode, AppJson<RateCardView>)> {
    let card = use_case::add_version(&state, &caller, id(&i)?, body).await?;
    Ok((StatusCode::CREATED, AppJson(card)))
}

/// Adds a VAT rate in force from a future date (platform admins).
#[utoipa::path(post, path = "/v1/rate-cards/{id}/vat-rates", tag = "rate-cards",
    params(("id" = String, Path, description = "The rate card's id")),
    request_body = NewVat,
    responses((status = 201, body = RateCardView)))]
pub(crate) async fn add_vat(
    State(state): State<AppState>,
    caller: Caller,
    Path(i): Path<String>,
    AppJson(body): AppJson<NewVat>,
) -> ApiResult<(StatusCode, AppJson<RateCardView>)> {
    let card = use_case::add_vat(&state, &caller, id(&i)?, body).await?;
    Ok((StatusCode::CREATED, AppJson(card)))
}
