//! Owned objects as the operator's watches decode them: what [`super::owned`] keeps of each, and
//! nothing it would throw away. Each managedFields entry is read for who wrote the object, how
//! and when, but its field set (`fieldsV1`, a tree as large as the object) is skipped while
//! parsing instead of built and dropped: at 20,000 namespaces those trees were most of the
//! operator's work at a cold start.
//!
//! [`Meta`] is the metadata-only view (`PartialObjectMetadata`, as `kube`'s `PartialObjectMeta`
//! asks for it); [`Quota`] is a whole ResourceQuota, since its status is the tenant's.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;

use k8s_openapi::api::core::v1::{ResourceQuota, ResourceQuotaSpec, ResourceQuotaStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, OwnerReference, Time};
use kube::Resource;
use kube::api::ObjectMeta;
use serde::{Deserialize, Deserializer};

/// A managedFields entry without its field set.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    api_version: Option<String>,
    fields_type: Option<String>,
    manager: Option<String>,
    operation: Option<String>,
    subresource: Option<String>,
    time: Option<Time>,
}

/// The metadata the operator reads: names, ownership, labels and annotations, deletion, and who
/// wrote the object when. Anything else in it is skipped.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Metadata {
    name: Option<String>,
    namespace: Option<String>,
    uid: Option<String>,
    resource_version: Option<String>,
    generation: Option<i64>,
    creation_timestamp: Option<Time>,
    deletion_timestamp: Option<Time>,
    labels: Option<BTreeMap<String, String>>,
    annotations: Option<BTreeMap<String, String>>,
    owner_references: Option<Vec<OwnerReference>>,
    finalizers: Option<Vec<String>>,
    managed_fields: Option<Vec<Entry>>,
}

impl From<Metadata> for ObjectMeta {
    fn from(m: Metadata) -> Self {
        ObjectMeta {
            name: m.name,
            namespace: m.namespace,
            uid: m.uid,
            resource_version: m.resource_version,
            generation: m.generation,
            creation_timestamp: m.creation_timestamp,
            deletion_timestamp: m.deletion_timestamp,
            labels: m.labels,
            annotations: m.annotations,
            owner_references: m.owner_references,
            finalizers: m.finalizers,
            managed_fields: m.managed_fields.map(|entries| {
                entries
                    .into_iter()
                    .map(|e| ManagedFieldsEntry {
                        api_version: e.api_version,
                        fields_type: e.fields_type,
                        fields_v1: None,
                        manager: e.manager,
                        operation: e.operation,
                        subresource: e.subresource,
                        time: e.time,
                    })
                    .collect()
            }),
            ..ObjectMeta::default()
        }
    }
}

/// An owned object's metadata, asked for and decoded as `PartialObjectMetadata`.
pub struct Meta<K> {
    pub metadata: ObjectMeta,
    _kind: PhantomData<fn() -> K>,
}

// (by hand: derived ones would ask the same of `K`)
impl<K> Clone for Meta<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Meta<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("metadata", &self.metadata)
            .finish()
    }
}

impl<K> From<ObjectMeta> for Meta<K> {
    fn from(metadata: ObjectMeta) -> Self {
        Self {
            metadata,
            _kind: PhantomData,
        }
    }
}

impl<'de, K> Deserialize<'de> for Meta<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: Metadata,
        }
        let metadata: ObjectMeta = Wire::deserialize(d)?.metadata.into();
        Ok(metadata.into())
    }
}

/// `Resource` for a view of `K` holding `metadata`: `K`'s kind and URL, asked for as metadata
/// only or not.
macro_rules! resource_of {
    ($view:ident, $metadata_only:expr) => {
        impl<K: Resource> Resource for $view<K> {
            type DynamicType = K::DynamicType;
            type Scope = K::Scope;

            fn metadata_api() -> bool {
                $metadata_only
            }

            fn kind(dt: &Self::DynamicType) -> Cow<'_, str> {
                K::kind(dt)
            }

            fn group(dt: &Self::DynamicType) -> Cow<'_, str> {
                K::group(dt)
            }

            fn version(dt: &Self::DynamicType) -> Cow<'_, str> {
                K::version(dt)
            }

            fn plural(dt: &Self::DynamicType) -> Cow<'_, str> {
                K::plural(dt)
            }

            fn meta(&self) -> &ObjectMeta {
                &self.metadata
            }

            fn meta_mut(&mut self) -> &mut ObjectMeta {
                &mut self.metadata
            }
        }
    };
}

resource_of!(Meta, true);

/// The server's answer to a write whose result the operator does not read (the watches bring
/// what it keeps): parsed to its end and dropped, never built. At a cold start these answers,
/// each a whole object with its managedFields' field sets, were the operator's largest decode.
pub struct Written<K> {
    metadata: ObjectMeta,
    _kind: PhantomData<fn() -> K>,
}

impl<K> Clone for Written<K> {
    fn clone(&self) -> Self {
        Self {
            metadata: self.metadata.clone(),
            _kind: PhantomData,
        }
    }
}

impl<K> std::fmt::Debug for Written<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Written")
    }
}

impl<'de, K> Deserialize<'de> for Written<K> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Self {
            metadata: ObjectMeta::default(),
            _kind: PhantomData,
        })
    }
}

resource_of!(Written, false);

/// A ResourceQuota, whole but for its managedFields' field sets.
#[derive(Clone, Debug)]
pub struct Quota(pub ResourceQuota);

impl<'de> Deserialize<'de> for Quota {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Wire {
            #[serde(default)]
            metadata: Metadata,
            spec: Option<ResourceQuotaSpec>,
            status: Option<ResourceQuotaStatus>,
        }
        let w = Wire::deserialize(d)?;
        Ok(Quota(ResourceQuota {
            metadata: w.metadata.into(),
            spec: w.spec,
            status: w.status,
        }))
    }
}

impl Resource for Quota {
    type DynamicType = ();
    type Scope = <ResourceQuota as Resource>::Scope;

    fn kind(dt: &()) -> Cow<'_, str> {
        ResourceQuota::kind(dt)
    }

    fn group(dt: &()) -> Cow<'_, str> {
        ResourceQuota::group(dt)
    }

    fn version(dt: &()) -> Cow<'_, str> {
        ResourceQuota::version(dt)
    }

    fn plural(dt: &()) -> Cow<'_, str> {
        ResourceQuota::plural(dt)
    }

    fn meta(&self) -> &ObjectMeta {
        &self.0.metadata
    }

    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.0.metadata
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::Namespace;
    use serde_json::json;

    fn object(api_version: &str, kind: &str) -> serde_json::Value {
        json!({
            "apiVersion": api_version, "kind": kind,
            "metadata": {
                "name": "a-prod", "namespace": "a-prod", "uid": "u", "resourceVersion": "7",
                "generation": 2, "creationTimestamp": "2026-12-01T00:00:00Z",
                "deletionTimestamp": "2026-12-02T00:00:00Z",
                "labels": {"govcloud.io/tenant": "a"}, "annotations": {"govcloud.io/applied": "ab"},
                "ownerReferences": [{"apiVersion": "govcloud.io/v1alpha1", "kind": "Tenant", "name": "a",
                                     "uid": "t", "controller": true}],
                "finalizers": ["kubernetes"], "selfLink": "/x",
                "managedFields": [
                    {"manager": "govcloud-operator", "operation": "Apply", "apiVersion": "v1",
                     "time": "2026-12-01T00:00:01Z", "fieldsType": "FieldsV1",
                     "fieldsV1": {"f:metadata": {"f:labels": {"f:govcloud.io/tenant": {}}}}},
                    {"manager": "kube-controller-manager", "operation": "Update", "apiVersion": "v1",
                     "time": "2026-12-01T00:00:02Z", "fieldsType": "FieldsV1", "subresource": "status",
                     "fieldsV1": {"f:status": {}}}
                ]
            },
            "spec": {"hard": {"cpu": "4"}},
            "status": {"hard": {"cpu": "4"}, "used": {"cpu": "1"}}
        })
    }

    #[test]
    fn metadata_reads_as_the_full_decoder_reads_it_but_for_field_sets()
    -> Result<(), serde_json::Error> {
        let partial = object("meta.k8s.io/v1", "PartialObjectMetadata");
        let full: ObjectMeta = serde_json::from_value(partial["metadata"].clone())?;
        let lean: Meta<Namespace> = serde_json::from_value(partial)?;
        let mut expected = full.clone();
        for e in expected.managed_fields.iter_mut().flatten() {
            e.fields_v1 = None;
        }
        // selfLink is deprecated and unused: the only other field left behind
        expected.self_link = None;
        assert_eq!(lean.metadata, expected);
        assert!(
            full.managed_fields
                .iter()
                .flatten()
                .all(|e| e.fields_v1.is_some())
        );
        Ok(())
    }

    #[test]
    fn a_quota_keeps_its_spec_and_status() -> Result<(), serde_json::Error> {
        let quota = object("v1", "ResourceQuota");
        let full: ResourceQuota = serde_json::from_value(quota.clone())?;
        let Quota(lean) = serde_json::from_value(quota)?;
        assert_eq!(lean.spec, full.spec);
        assert_eq!(lean.status, full.status);
        assert_eq!(lean.metadata.annotations, full.metadata.annotations);
        let entries = |m: &ObjectMeta| {
            m.managed_fields
                .iter()
                .flatten()
                .map(|e| (e.manager.clone(), e.subresource.clone(), e.time.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(entries(&lean.metadata), entries(&full.metadata));
        assert!(Meta::<Namespace>::metadata_api() && !Quota::metadata_api());
        Ok(())
    }

    #[test]
    fn a_written_answer_is_parsed_to_its_end_and_kept_as_nothing() -> Result<(), serde_json::Error>
    {
        let answer = serde_json::to_string(&object("v1", "ResourceQuota"))?;
        let written: Written<ResourceQuota> = serde_json::from_str(&answer)?;
        assert_eq!(written.metadata, ObjectMeta::default());
        // A cut-off answer is still an error, not a success.
        assert!(
            serde_json::from_str::<Written<ResourceQuota>>(&answer[..answer.len() / 2]).is_err()
        );
        // Written to the object's own URL, not as a metadata-only request.
        assert_eq!(Written::<ResourceQuota>::plural(&()), "resourcequotas");
        assert!(!Written::<Namespace>::metadata_api());
        Ok(())
    }
}
