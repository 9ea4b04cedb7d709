//! The I/O edge of reconciliation: server-side apply of the desired objects under one field
//! manager, deletion of what the spec no longer asks for, and reading back what status needs.

use std::collections::BTreeSet;
use std::fmt::Debug;

use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use super::status::ObservedNamespace;
use crate::build::network::{OutboundLink, build_network_policies};
use crate::build::quota::{build_limit_range, build_resource_quota};
use crate::build::rbac::{
    build_deployer_role_binding, build_deployer_service_account, build_owner_role_binding,
    build_tenant_cluster_role,
};
use crate::build::{
    FIELD_MANAGER, LABEL_MANAGED_BY, LABEL_TENANT, Platform, namespace::build_namespace,
};
use crate::crd::Tenant;
use crate::validate::namespace_name;

/// Server-side applies one object, forcing ownership of the fields the operator manages.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K, Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
    K::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|source| Error::ApplyObject {
        kind: K::kind(&Default::default()).into_owned(),
        name,
        source: Box::new(source),
    })
}

async fn delete<K>(api: &Api<K>, name: &str) -> Result<(), Error>
where
    K: Resource + DeserializeOwned + Clone + Debug,
    K::DynamicType: Default,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::DeleteObject {
            kind: K::kind(&Default::default()).into_owned(),
            name: name.to_string(),
            source: Box::new(source),
        }),
    }
}

/// What a tenant owns, found by label: `app.kubernetes.io/managed-by` and `govcloud.io/tenant`.
pub fn owned_selector(tenant: &str) -> String {
    format!("{LABEL_MANAGED_BY}={FIELD_MANAGER},{LABEL_TENANT}={tenant}")
}

async fn list_names<K>(api: &Api<K>, selector: &str) -> Result<Vec<String>, Error>
where
    K: Resource + DeserializeOwned + Clone + Debug,
    K::DynamicType: Default,
{
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|source| Error::ListObjects {
            kind: K::kind(&Default::default()).into_owned(),
            source: Box::new(source),
        })?;
    Ok(list.items.iter().map(ResourceExt::name_any).collect())
}

/// Applies everything a valid tenant asks for, removes what it no longer asks for, and returns
/// what each namespace looks like afterwards.
pub async fn apply_tenant(
    client: &Client,
    tenant: &Tenant,
    outbound: &[OutboundLink],
    platform: &Platform,
) -> Result<Vec<ObservedNamespace>, Error> {
    let name = tenant.name_any();
    apply(
        &Api::<ClusterRole>::all(client.clone()),
        &build_tenant_cluster_role(platform),
    )
    .await?;
    let namespaces_api = Api::<Namespace>::all(client.clone());
    let mut observed = Vec::new();
    let mut wanted = BTreeSet::new();
    for ns in &tenant.spec.namespaces {
        let full = namespace_name(&name, &ns.name);
        wanted.insert(full.clone());
        let namespace = apply(&namespaces_api, &build_namespace(tenant, ns)).await?;
        apply(
            &Api::<ServiceAccount>::namespaced(client.clone(), &full),
            &build_deployer_service_account(tenant, ns),
        )
        .await?;
        let bindings = Api::<RoleBinding>::namespaced(client.clone(), &full);
        apply(&bindings, &build_owner_role_binding(tenant, ns, platform)).await?;
        apply(
            &bindings,
            &build_deployer_role_binding(tenant, ns, platform),
        )
        .await?;
        let quota = apply(
            &Api::<ResourceQuota>::namespaced(client.clone(), &full),
            &build_resource_quota(tenant, ns, platform),
        )
        .await?;
        apply(
            &Api::<LimitRange>::namespaced(client.clone(), &full),
            &build_limit_range(tenant, ns),
        )
        .await?;
        let policies_api = Api::<NetworkPolicy>::namespaced(client.clone(), &full);
        let policies = build_network_policies(tenant, ns, outbound, platform);
        let keep: BTreeSet<String> = policies
            .iter()
            .filter_map(|p| p.metadata.name.clone())
            .collect();
        for p in &policies {
            apply(&policies_api, p).await?;
        }
        for stale in list_names(&policies_api, &owned_selector(&name))
            .await?
            .into_iter()
            .filter(|n| !keep.contains(n))
        {
            delete(&policies_api, &stale).await?;
        }
        let quota_status = quota.status.unwrap_or_default();
        let strings = |m: Option<
            std::collections::BTreeMap<
                String,
                k8s_openapi::apimachinery::pkg::api::resource::Quantity,
            >,
        >| {
            m.unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect()
        };
        let active = namespace.metadata.deletion_timestamp.is_none()
            && namespace
                .status
                .and_then(|s| s.phase)
                .is_none_or(|p| p == "Active");
        observed.push(ObservedNamespace {
            name: full,
            active,
            hard: strings(quota_status.hard),
            used: strings(quota_status.used),
        });
    }
    // Namespaces removed from the spec go, with everything in them. Only a spec change can
    // orphan one, and until its status is written the tenant's generation and observedGeneration
    // differ: listing every namespace of the cluster is needed only then, not on each resync.
    let observed_generation = tenant.status.as_ref().and_then(|s| s.observed_generation);
    if observed_generation.is_none() || observed_generation != tenant.metadata.generation {
        for stale in list_names(&namespaces_api, &owned_selector(&name))
            .await?
            .into_iter()
            .filter(|n| !wanted.contains(n))
        {
            delete(&namespaces_api, &stale).await?;
        }
    }
    Ok(observed)
}

/// Deletes every namespace of a tenant; returns the names still present (terminating).
pub async fn delete_tenant_namespaces(client: &Client, tenant: &str) -> Result<Vec<String>, Error> {
    let api = Api::<Namespace>::all(client.clone());
    let names = list_names(&api, &owned_selector(tenant)).await?;
    for n in &names {
        delete(&api, n).await?;
    }
    list_names(&api, &owned_selector(tenant)).await
}
