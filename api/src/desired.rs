//! The Tenant custom resource that the database describes: what the API applies to the cluster.

use std::collections::BTreeMap;

use govcloud_operator::crd::{NamespaceQuota, Tenant, TenantNamespace, TenantSpec};
use kube::api::ObjectMeta;

use crate::db::tenants::{NamespaceRow, TenantRow};
use crate::quota::{format_bytes, format_cpu};

pub const LABEL_ORGANIZATION: &str = "govcloud.io/organization";

#[derive(Debug, thiserror::Error)]
#[error("tenant {tenant}: stored field {field} does not read as the Tenant spec: {source}")]
pub struct BuildTenantError {
    pub tenant: String,
    pub field: &'static str,
    #[source]
    pub source: serde_json::Error,
}

fn field<T: serde::de::DeserializeOwned>(
    tenant: &str,
    field: &'static str,
    v: &serde_json::Value,
) -> Result<T, BuildTenantError> {
    serde_json::from_value(v.clone()).map_err(|source| BuildTenantError {
        tenant: tenant.to_string(),
        field,
        source,
    })
}

/// Builds the Tenant from its row and its namespaces' rows.
pub fn build_tenant(
    t: &TenantRow,
    namespaces: &[NamespaceRow],
) -> Result<Tenant, BuildTenantError> {
    let spec = TenantSpec {
        display_name: t.display_name.clone(),
        organization: t.organization.clone(),
        owners: field(&t.name, "owners", &t.owners)?,
        namespaces: namespaces
            .iter()
            .map(|n| TenantNamespace {
                name: n.name.clone(),
                quota: NamespaceQuota {
                    cpu: format_cpu(n.quota.cpu_milli).as_str().into(),
                    memory: format_bytes(n.quota.memory_bytes).as_str().into(),
                    storage: format_bytes(n.quota.storage_bytes).as_str().into(),
                    pods: n.quota.pods,
                    load_balancers: n.quota.load_balancers,
                },
            })
            .collect(),
        limits: field(&t.name, "limits", &t.limits)?,
        pod_security: field(
            &t.name,
            "podSecurity",
            &serde_json::Value::String(t.pod_security.clone()),
        )?,
        network: field(&t.name, "network", &t.network)?,
        billing: field(&t.name, "billing", &t.billing)?,
        suspended: t.suspended,
    };
    let mut tenant = Tenant::new(&t.name, spec);
    tenant.metadata = ObjectMeta {
        name: Some(t.name.clone()),
        labels: Some(BTreeMap::from([(
            LABEL_ORGANIZATION.to_string(),
            t.organization.clone(),
        )])),
        ..ObjectMeta::default()
    };
    Ok(tenant)
}
