//! Kubeconfig issuance for a tenant's namespace.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::ToSchema;

use crate::AppState;
use crate::app::kubeconfig::{self as use_case, KubeconfigRequest};
use crate::domain::principal::Caller;
use crate::http::error::ApiResult;
use crate::http::extract::AppJson;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tenants/{name}/kubeconfig", post(issue))
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct IssuedKubeconfig {
    /// A kubeconfig (YAML) whose context is the namespace.
    pub kubeconfig: String,
    /// When its token stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// The namespace in the cluster.
    pub namespace: String,
}

/// Issues a kubeconfig for one of the tenant's namespaces (its tenant admins, platform admins):
/// a short-lived token for the namespace's `deployer` ServiceAccount, for helm and kubectl.
#[utoipa::path(post, path = "/v1/tenants/{name}/kubeconfig", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    request_body = KubeconfigRequest,
    responses((status = 200, body = IssuedKubeconfig)))]
pub(crate) async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    AppJson(body): AppJson<KubeconfigRequest>,
) -> ApiResult<AppJson<IssuedKubeconfig>> {
    let issued = use_case::issue(&state, &caller, &name, &body).await?;
    Ok(AppJson(IssuedKubeconfig {
        kubeconfig: issued.kubeconfig,
        expires_at: issued.expires_at,
        namespace: issued.namespace,
    }))
}
