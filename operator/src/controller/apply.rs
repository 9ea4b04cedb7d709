//! The I/O edge of reconciliation: server-side apply of the desired objects under one field
//! manager, deletion of what the spec no longer asks for, and reading back what status needs.

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::Error;
use super::lean::{Quota, Written};
use super::owned::{ANNOTATION_APPLIED, Kind, Owned, QuotaStatus, digest};
use super::status::ObservedNamespace;
use crate::build::network::{OutboundLink, build_network_policies};
use crate::build::quota::{build_limit_range, build_resource_quota};
use crate::build::rbac::{
    build_deployer_role_binding, build_deployer_service_account, build_owner_role_binding,
};
use crate::build::{
    FIELD_MANAGER, LABEL_MANAGED_BY, LABEL_TENANT, Platform, namespace::build_namespace,
};
use govcloud_tenant::crd::Tenant;
use govcloud_tenant::names::{Claim, judge_namespace, namespace_name};

/// Server-side applies one object, forcing ownership of the fields the operator manages.
pub async fn apply<K>(api: &Api<K>, obj: &K) -> Result<K, Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
    K::DynamicType: Default,
{
    apply_as(api, obj).await
}

/// [`apply`], the server's answer decoded as `A` (a lean view of `K`, or nothing at all).
pub async fn apply_as<K, A>(api: &Api<A>, obj: &K) -> Result<A, Error>
where
    K: Resource + Serialize + Debug,
    A: Resource + DeserializeOwned + Clone + Debug,
    A::DynamicType: Default,
{
    let name = obj.meta().name.clone().unwrap_or_default();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(|source| Error::ApplyObject {
        kind: A::kind(&Default::default()).into_owned(),
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

/// How long a reconcile waits for the quota controller to report a quota it has just written
/// (Ready means the quota is in force as specified); after that the tenant is Provisioning and
/// the report, when it comes, triggers a reconcile.
pub const QUOTA_REPORT_WAIT: Duration = Duration::from_secs(2);

/// Writes a tenant's objects: each stamped with the digest of its desired object, and applied
/// only when the watches do not already show it applied from the same desired object and
/// untouched by anyone else since.
pub struct Applier<'a> {
    pub client: &'a Client,
    pub platform: &'a Platform,
    pub owned: &'a Owned,
}

/// A desired object with [`ANNOTATION_APPLIED`] set to its digest, and the digest.
fn stamped<K>(obj: &K) -> Result<(K, String), Error>
where
    K: Resource + Serialize + Clone,
    K::DynamicType: Default,
{
    let digest = digest(obj).map_err(|source| Error::Encode {
        kind: K::kind(&Default::default()).into_owned(),
        name: obj.meta().name.clone().unwrap_or_default(),
        source,
    })?;
    let mut stamped = obj.clone();
    stamped
        .meta_mut()
        .annotations
        .get_or_insert_with(Default::default)
        .insert(ANNOTATION_APPLIED.into(), digest.clone());
    Ok((stamped, digest))
}

impl Applier<'_> {
    /// Applies one namespaced object unless it is unchanged. The server's answer is not read:
    /// the watches bring the object as written.
    async fn apply_owned<K>(&self, kind: Kind, namespace: &str, obj: &K) -> Result<(), Error>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
            + Serialize
            + Clone
            + Debug,
    {
        let (obj, digest) = stamped(obj)?;
        let name = obj.meta().name.clone().unwrap_or_default();
        if self.owned.unchanged(kind, namespace, &name, &digest) {
            return Ok(());
        }
        apply_as(
            &Api::<Written<K>>::namespaced(self.client.clone(), namespace),
            &obj,
        )
        .await
        .map(|_| ())
    }

    /// Applies everything a valid tenant asks for, removes what it no longer asks for, and
    /// returns what each namespace looks like afterwards.
    pub async fn apply_tenant(
        &self,
        tenant: &Tenant,
        outbound: &[OutboundLink],
    ) -> Result<Vec<ObservedNamespace>, Error> {
        let name = tenant.name_any();
        let (client, platform) = (self.client, self.platform);
        let namespaces_api = Api::<Namespace>::all(client.clone());
        let mut observed = Vec::new();
        let mut wanted = BTreeSet::new();
        let reserved = platform.platform_namespaces();
        for ns in &tenant.spec.namespaces {
            let full = namespace_name(&name, &ns.name);
            wanted.insert(full.clone());
            let (desired, digest) = stamped(&build_namespace(tenant, ns))?;
            let active = if self.owned.unchanged(Kind::Namespace, "", &full, &digest) {
                true
            } else {
                // Known to the watches as ours (labelled so) or not at all: a create first
                // when the watches have listed and do not know it.
                let known =
                    self.owned.contains(Kind::Namespace, "", &full) || !self.owned.is_synced();
                match claim_namespace(&namespaces_api, &desired, tenant, &reserved, known).await? {
                    Ok(namespace) => {
                        namespace.metadata.deletion_timestamp.is_none()
                            && namespace
                                .status
                                .and_then(|s| s.phase)
                                .is_none_or(|p| p == "Active")
                    }
                    Err(conflict) => {
                        // Someone else's: nothing is written into it, and it is never deleted
                        // for us.
                        observed.push(ObservedNamespace {
                            name: full,
                            conflict: Some(conflict),
                            ..ObservedNamespace::default()
                        });
                        continue;
                    }
                }
            };
            self.apply_owned(
                Kind::ServiceAccount,
                &full,
                &build_deployer_service_account(tenant, ns),
            )
            .await?;
            self.apply_owned(
                Kind::RoleBinding,
                &full,
                &build_owner_role_binding(tenant, ns, platform),
            )
            .await?;
            self.apply_owned(
                Kind::RoleBinding,
                &full,
                &build_deployer_role_binding(tenant, ns, platform),
            )
            .await?;
            let (quota, digest) = stamped(&build_resource_quota(tenant, ns, platform))?;
            let quota_name = quota.metadata.name.clone().unwrap_or_default();
            let (quota, expected) =
                if self
                    .owned
                    .unchanged(Kind::ResourceQuota, &full, &quota_name, &digest)
                {
                    // Unchanged: what the watches last saw. Not yet reported (a restart
                    // between the write and the report): the report will trigger.
                    let seen = self.owned.get(Kind::ResourceQuota, &full, &quota_name);
                    (seen.and_then(|s| s.quota).unwrap_or_default(), None)
                } else {
                    // Expected before it is written: the controller's report may come back
                    // before the response does.
                    let expected = self.owned.expect_quota(&full, &quota_name);
                    let Quota(applied) =
                        apply_as(&Api::<Quota>::namespaced(client.clone(), &full), &quota).await?;
                    (
                        QuotaStatus::of(&applied).unwrap_or_default(),
                        Some(expected),
                    )
                };
            self.apply_owned(Kind::LimitRange, &full, &build_limit_range(tenant, ns))
                .await?;
            let policies_api = Api::<NetworkPolicy>::namespaced(client.clone(), &full);
            let policies = build_network_policies(tenant, ns, outbound, platform);
            let keep: BTreeSet<String> = policies
                .iter()
                .filter_map(|p| p.metadata.name.clone())
                .collect();
            for p in &policies {
                self.apply_owned(Kind::NetworkPolicy, &full, p).await?;
            }
            let present = if self.owned.is_synced() {
                self.owned.names_in(Kind::NetworkPolicy, &full, &name)
            } else {
                list_names(&policies_api, &owned_selector(&name)).await?
            };
            for stale in present.into_iter().filter(|n| !keep.contains(n)) {
                delete(&policies_api, &stale).await?;
            }
            // Ready means the quota is in force as written: wait (briefly) for the quota
            // controller's report of a quota just written.
            let quota = match expected {
                Some(expected) if !quota.in_force() => self
                    .owned
                    .wait_for_quota(expected, &quota.spec_hard, QUOTA_REPORT_WAIT)
                    .await
                    .unwrap_or(quota),
                Some(expected) => {
                    self.owned.release(expected);
                    quota
                }
                None => quota,
            };
            observed.push(ObservedNamespace {
                name: full,
                active,
                hard: quota.hard,
                used: quota.used,
                conflict: None,
            });
        }
        // Namespaces removed from the spec go, with everything in them. Only a spec change can
        // orphan one, and until its status is written the tenant's generation and
        // observedGeneration differ: looking for them is needed only then, not on each resync.
        let observed_generation = tenant.status.as_ref().and_then(|s| s.observed_generation);
        if observed_generation.is_none() || observed_generation != tenant.metadata.generation {
            let stale = if self.owned.is_synced() {
                // The watches know every namespace labelled as the tenant's: only those no
                // longer wanted are read, and deleted when they really are its own.
                let mut stale = Vec::new();
                for candidate in self
                    .owned
                    .namespaces_of(&name)
                    .into_iter()
                    .filter(|n| !wanted.contains(n))
                {
                    let live = namespaces_api.get_opt(&candidate).await.map_err(|source| {
                        Error::ReadObject {
                            kind: "Namespace".into(),
                            name: candidate.clone(),
                            source: Box::new(source),
                        }
                    })?;
                    if live.is_some_and(|n| {
                        judge_namespace(&candidate, Some(&n.metadata), &name, &reserved)
                            == Claim::Ours
                    }) {
                        stale.push(candidate);
                    }
                }
                stale
            } else {
                own_namespaces(&namespaces_api, &name, &reserved)
                    .await?
                    .into_iter()
                    .filter(|n| !wanted.contains(n))
                    .collect()
            };
            for n in stale {
                delete(&namespaces_api, &n).await?;
            }
        }
        Ok(observed)
    }
}

/// Whether the live namespace already carries everything the desired one asks for.
fn namespace_up_to_date(live: &Namespace, desired: &Namespace) -> bool {
    let labels = live.metadata.labels.clone().unwrap_or_default();
    let wanted_labels = desired
        .metadata
        .labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let owners = live.metadata.owner_references.clone().unwrap_or_default();
    let wanted_owners = desired.metadata.owner_references.iter().flatten().all(|o| {
        owners
            .iter()
            .any(|l| l.uid == o.uid && l.controller == o.controller)
    });
    let annotations = live.metadata.annotations.clone().unwrap_or_default();
    let wanted_annotations = desired
        .metadata
        .annotations
        .iter()
        .flatten()
        .all(|(k, v)| annotations.get(k) == Some(v));
    wanted_labels && wanted_owners && wanted_annotations
}

/// Takes the namespace for the tenant, or answers why it cannot: creates it when absent (a
/// create, not an apply, so two tenants racing for one name cannot both win), and otherwise
/// writes to it only when [`judge_namespace`] says it is this tenant's own, with its
/// resourceVersion as a precondition, so it cannot change hands between the read and the write.
async fn claim_namespace(
    api: &Api<Namespace>,
    desired: &Namespace,
    tenant: &Tenant,
    reserved: &[String],
    known: bool,
) -> Result<Result<Namespace, String>, Error> {
    let name = desired.name_any();
    let tenant_name = tenant.name_any();
    let read_error = |source| Error::ReadObject {
        kind: "Namespace".into(),
        name: name.clone(),
        source: Box::new(source),
    };
    if let Claim::Taken(why) = judge_namespace(&name, None, &tenant_name, reserved) {
        return Ok(Err(why));
    }
    // A namespace the watches do not know may still exist (someone else's, unlabelled): the
    // create says so with a 409, and then it is read and judged.
    let mut live = if known {
        api.get_opt(&name).await.map_err(read_error)?
    } else {
        None
    };
    if live.is_none() {
        let params = PostParams {
            field_manager: Some(FIELD_MANAGER.into()),
            ..PostParams::default()
        };
        match api.create(&params, desired).await {
            Ok(created) => return Ok(Ok(created)),
            // Created by someone else since the read: judge what is there now.
            Err(kube::Error::Api(s)) if s.code == 409 => {
                live = api.get_opt(&name).await.map_err(read_error)?;
            }
            Err(source) => {
                return Err(Error::ApplyObject {
                    kind: "Namespace".into(),
                    name,
                    source: Box::new(source),
                });
            }
        }
    }
    let Some(live) = live else {
        return Err(Error::NamespaceRace { name });
    };
    match judge_namespace(&name, Some(&live.metadata), &tenant_name, reserved) {
        Claim::Ours if namespace_up_to_date(&live, desired) => Ok(Ok(live)),
        Claim::Ours | Claim::Free => {
            let mut locked = desired.clone();
            locked.metadata.resource_version = live.metadata.resource_version.clone();
            apply(api, &locked).await.map(Ok)
        }
        Claim::Taken(why) => Ok(Err(why)),
    }
}

/// The namespaces labelled as the tenant's that really are its own (never a reserved one, never
/// one another Tenant owns): the only ones it may delete.
async fn own_namespaces(
    api: &Api<Namespace>,
    tenant: &str,
    reserved: &[String],
) -> Result<Vec<String>, Error> {
    let list = api
        .list(&ListParams::default().labels(&owned_selector(tenant)))
        .await
        .map_err(|source| Error::ListObjects {
            kind: "Namespace".into(),
            source: Box::new(source),
        })?;
    Ok(list
        .items
        .iter()
        .filter(|n| {
            judge_namespace(&n.name_any(), Some(&n.metadata), tenant, reserved) == Claim::Ours
        })
        .map(ResourceExt::name_any)
        .collect())
}

/// Deletes every namespace that is the tenant's own; returns the names still present
/// (terminating). Namespaces it lost to another tenant or the platform are not touched.
pub async fn delete_tenant_namespaces(
    client: &Client,
    tenant: &str,
    platform: &Platform,
) -> Result<Vec<String>, Error> {
    let api = Api::<Namespace>::all(client.clone());
    let reserved = platform.platform_namespaces();
    let names = own_namespaces(&api, tenant, &reserved).await?;
    for n in &names {
        delete(&api, n).await?;
    }
    own_namespaces(&api, tenant, &reserved).await
}
