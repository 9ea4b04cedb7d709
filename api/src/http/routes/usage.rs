//! Usage: the operator's samples in, usage and utilisation out.

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use govcloud_tenant::usage::{Batch, BatchOutcome, Metric};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::app::AppError;
use crate::app::metering;
use crate::app::usage::{self as use_case, Usage, UsageQuery, Utilisation};
use crate::domain::field::FieldError;
use crate::domain::period::{Granularity, parse_instant};
use crate::domain::principal::Caller;
use crate::http::error::ApiResult;
use crate::http::extract::{AppJson, AppQuery};

/// The largest ingest body: a full batch of samples, with room to spare.
const MAX_BATCH_BYTES: usize = 32 * 1024 * 1024;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/usage/batches",
            post(ingest).layer(DefaultBodyLimit::max(MAX_BATCH_BYTES)),
        )
        .route("/v1/usage", get(usage))
        .route("/v1/utilisation", get(utilisation))
}

/// Ingests a batch of usage samples (the operator's `metering` identity only). A bad batch —
/// a misaligned or future window, a negative or overflowing quantity, a namespace its tenant
/// does not have, more than 50,000 samples — is refused whole and stores nothing. Otherwise
/// each sample is accepted, a duplicate of what is stored (nothing changes), or refused: a
/// different quantity is already stored under its key, or its hour is closed.
#[utoipa::path(post, path = "/v1/usage/batches", tag = "usage",
    request_body = Batch,
    responses((status = 200, body = BatchOutcome)))]
pub(crate) async fn ingest(
    State(state): State<AppState>,
    caller: Caller,
    AppJson(batch): AppJson<Batch>,
) -> ApiResult<AppJson<BatchOutcome>> {
    Ok(AppJson(metering::ingest(&state, &caller, batch).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UsageParams {
    /// The tenant (required).
    pub tenant: String,
    /// Only this namespace (its name in Kubernetes).
    pub namespace: Option<String>,
    /// Only this metric.
    pub metric: Option<Metric>,
    /// A whole hour (RFC 3339) or a date (midnight in Asia/Ho_Chi_Minh); default: the start of
    /// this month.
    pub from: Option<String>,
    /// A whole hour or a date, excluded; default: the end of this hour.
    pub to: Option<String>,
    /// Buckets of an hour, a day or a calendar month in Asia/Ho_Chi_Minh; default: day.
    pub granularity: Option<Granularity>,
}

fn instant(
    field: &str,
    value: Option<&str>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, FieldError> {
    value
        .map(|v| parse_instant(v).map_err(|m| FieldError::new(field, m)))
        .transpose()
}

/// A tenant's usage per namespace and metric in buckets: the quantity (an integer in the
/// metric's base unit, as a decimal string), and the seconds metered and unmetered. Reserved
/// metrics come from the quota timeline; the others from the operator's samples.
#[utoipa::path(get, path = "/v1/usage", tag = "usage",
    params(UsageParams),
    responses((status = 200, body = Usage)))]
pub(crate) async fn usage(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(p): AppQuery<UsageParams>,
) -> ApiResult<AppJson<Usage>> {
    let from = instant("from", p.from.as_deref());
    let to = instant("to", p.to.as_deref());
    let (from, to) = match (from, to) {
        (Ok(f), Ok(t)) => (f, t),
        (f, t) => {
            return Err(
                AppError::Invalid([f.err(), t.err()].into_iter().flatten().collect()).into(),
            );
        }
    };
    let q = UsageQuery {
        tenant: p.tenant,
        namespace: p.namespace,
        metric: p.metric,
        from,
        to,
        granularity: p.granularity.unwrap_or_default(),
    };
    Ok(AppJson(use_case::usage(&state, &caller, q).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UtilisationParams {
    /// The organization.
    pub organization: String,
    /// The calendar month in Asia/Ho_Chi_Minh, as YYYY-MM.
    pub month: String,
}

/// Reserved vs requested vs used per tenant and namespace over a month: what each agency rents,
/// asks for and uses, to right-size it before the next monthly capacity window.
#[utoipa::path(get, path = "/v1/utilisation", tag = "usage",
    params(UtilisationParams),
    responses((status = 200, body = Utilisation)))]
pub(crate) async fn utilisation(
    State(state): State<AppState>,
    caller: Caller,
    AppQuery(p): AppQuery<UtilisationParams>,
) -> ApiResult<AppJson<Utilisation>> {
    Ok(AppJson(
        use_case::utilisation(&state, &caller, &p.organization, &p.month).await?,
    ))
}
