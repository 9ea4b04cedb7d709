//! Kubeconfig issuance: a short-lived token for a namespace's `deployer` ServiceAccount,
//! wrapped in a kubeconfig that helm and kubectl use as they are.

use chrono::{DateTime, Utc};
use govcloud_tenant::names::{DEPLOYER, namespace_name};
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;

use crate::AppState;
use crate::app::tenants::{ensure_active, visible_with_namespaces};
use crate::app::{AppError, AppResult};
use crate::cluster::ClusterError;
use crate::cluster::kubeconfig::render_kubeconfig;
use crate::db::audit;
use crate::domain::principal::{Caller, Role};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KubeconfigRequest {
    /// The namespace's short name, as in the tenant's spec.
    #[schema(example = "prod")]
    pub namespace: String,
}

/// An issued kubeconfig.
pub struct Issued {
    pub kubeconfig: String,
    pub expires_at: Option<DateTime<Utc>>,
    /// The namespace in the cluster.
    pub namespace: String,
}

/// Issues a kubeconfig for one of the tenant's namespaces (its tenant admins, platform admins).
pub async fn issue(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    body: &KubeconfigRequest,
) -> AppResult<Issued> {
    let (tenant, namespaces) = visible_with_namespaces(state, caller, tenant).await?;
    caller.require(
        &[Role::PlatformAdmin, Role::TenantAdmin],
        "obtain deploy credentials",
    )?;
    if !namespaces.iter().any(|n| n.name == body.namespace) {
        return Err(AppError::invalid(
            "namespace",
            format!(
                "tenant {} has no namespace {:?}",
                tenant.name, body.namespace
            ),
        ));
    }
    ensure_active(&tenant)?;
    let namespace = namespace_name(&tenant.name, &body.namespace);
    // Never a token for a namespace of the same name that is not this tenant's own.
    if !state.cluster.namespace_is_own(
        &namespace,
        &tenant.name,
        &state.settings.platform_namespaces,
    ) {
        return Err(AppError::NamespaceNotReady(namespace));
    }
    let (token, expires_at) = state
        .cluster
        .service_account_token(&namespace, DEPLOYER, state.settings.kubeconfig_ttl)
        .await
        .map_err(|e| match e {
            ClusterError::RequestToken {
                source: kube::Error::Api(status),
                ..
            } if status.is_not_found() => AppError::NamespaceNotReady(namespace.clone()),
            other => AppError::ClusterUnavailable(other.to_string()),
        })?;
    let kubeconfig = render_kubeconfig(&state.cluster.target, &tenant.name, &namespace, &token)
        .map_err(|e| AppError::Internal(e.to_string()))?;
    let mut tx = state.db.begin().await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &caller.into(),
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
    Ok(Issued {
        kubeconfig,
        expires_at,
        namespace,
    })
}
