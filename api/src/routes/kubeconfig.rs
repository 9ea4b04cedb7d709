//! Kubeconfig issuance: a short-lived token for a namespace's `deployer` ServiceAccount,
//! wrapped in a kubeconfig that helm and kubectl use as they are.

use axum::Router;
use axum::extract::{Path, State};
use axum::routing::post;
use chrono::{DateTime, Utc};
use govcloud_operator::names::namespace_name;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;

use super::tenants::visible_with_namespaces;
use crate::AppState;
use crate::auth::{Caller, Role};
use crate::cluster::{ClusterError, DEPLOYER, KubeconfigTarget};
use crate::db::audit;
use crate::error::{ApiError, ApiResult};
use crate::extract::AppJson;

pub fn router() -> Router<AppState> {
    Router::new().route("/v1/tenants/{name}/kubeconfig", post(issue))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeconfigRequest {
    /// The namespace's short name, as in the tenant's spec.
    #[schema(example = "prod")]
    pub namespace: String,
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

/// The kubeconfig document: one cluster, one user with the token, one context on the namespace.
pub fn render_kubeconfig(
    target: &KubeconfigTarget,
    tenant: &str,
    namespace: &str,
    token: &str,
) -> Result<String, serde_yaml::Error> {
    let mut cluster = json!({ "server": target.server });
    if let Some(ca) = &target.certificate_authority_data {
        cluster["certificate-authority-data"] = json!(ca);
    }
    if target.insecure_skip_tls_verify {
        cluster["insecure-skip-tls-verify"] = json!(true);
    }
    let user = format!("{tenant}-{DEPLOYER}");
    let doc = json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{ "name": "govcloud", "cluster": cluster }],
        "users": [{ "name": user, "user": { "token": token } }],
        "contexts": [{ "name": namespace, "context": { "cluster": "govcloud", "user": user, "namespace": namespace } }],
        "current-context": namespace,
    });
    serde_yaml::to_string(&doc)
}

/// Issues a kubeconfig for one of the tenant's namespaces (its tenant admins, platform admins).
#[utoipa::path(post, path = "/v1/tenants/{name}/kubeconfig", tag = "tenants",
    params(("name" = String, Path, description = "The tenant's name")),
    request_body = KubeconfigRequest,
    responses((status = 200, body = IssuedKubeconfig)))]
async fn issue(
    State(state): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    AppJson(body): AppJson<KubeconfigRequest>,
) -> ApiResult<AppJson<IssuedKubeconfig>> {
    let (tenant, namespaces) = visible_with_namespaces(&state, &caller, &name).await?;
    caller.require(
        &[Role::PlatformAdmin, Role::TenantAdmin],
        "obtain deploy credentials",
    )?;
    if !namespaces.iter().any(|n| n.name == body.namespace) {
        return Err(ApiError::invalid(
            "namespace",
            format!(
                "tenant {} has no namespace {:?}",
                tenant.name, body.namespace
            ),
        ));
    }
    super::tenants::ensure_active(&tenant)?;
    let namespace = namespace_name(&tenant.name, &body.namespace);
    // Never a token for a namespace of the same name that is not this tenant's own.
    if !state.cluster.namespace_is_own(
        &namespace,
        &tenant.name,
        &state.settings.platform_namespaces,
    ) {
        return Err(ApiError::NamespaceNotReady(namespace));
    }
    let (token, expires_at) = state
        .cluster
        .service_account_token(&namespace, DEPLOYER, state.settings.kubeconfig_ttl)
        .await
        .map_err(|e| match e {
            ClusterError::RequestToken {
                source: kube::Error::Api(status),
                ..
            } if status.is_not_found() => ApiError::NamespaceNotReady(namespace.clone()),
            other => ApiError::ClusterUnavailable(other.to_string()),
        })?;
    let kubeconfig = render_kubeconfig(&state.cluster.target, &tenant.name, &namespace, &token)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &(&caller).into(),
            action: "kubeconfig.issue",
            object_kind: "tenant",
            object_id: tenant.name.clone(),
            organization_id: Some(tenant.organization_id),
            tenant_id: Some(tenant.tenant_id),
            detail: json!({ "namespace": namespace, "serviceAccount": DEPLOYER, "expiresAt": expires_at }),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(AppJson(IssuedKubeconfig {
        kubeconfig,
        expires_at,
        namespace,
    }))
}
