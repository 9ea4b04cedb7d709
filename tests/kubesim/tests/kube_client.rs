//! kubesim as kube-rs sees it: every call here goes through a real `kube::Client` over HTTP.

use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use govcloud_testing::eventually;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, ServiceAccount,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind, Status};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Error};
use kubesim::{Config, KubeSim};
use serde_json::json;

type TestResult = Result<(), Box<dyn std::error::Error>>;

async fn sim() -> Result<(KubeSim, Client), Box<dyn std::error::Error>> {
    let config = Config {
        bookmark_interval: Duration::from_secs(60),
        ..Config::default()
    };
    let sim = KubeSim::start_with(config, "127.0.0.1:0".parse()?).await?;
    let client = sim.client()?;
    Ok((sim, client))
}

/// The `Status` of a refused call; any other failure is a test failure.
fn api_error(e: Error) -> Status {
    match e {
        Error::Api(s) => *s,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn cm(name: &str, data: serde_json::Value) -> Result<ConfigMap, serde_json::Error> {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": data}))
}

#[tokio::test]
async fn crud_with_resource_versions_and_optimistic_concurrency() -> TestResult {
    let (_sim, client) = sim().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");

    let created = cms
        .create(&PostParams::default(), &cm("settings", json!({"a": "1"}))?)
        .await?;
    let rv1 = created
        .metadata
        .resource_version
        .clone()
        .ok_or("no resourceVersion")?;
    assert!(created.metadata.uid.is_some() && created.metadata.creation_timestamp.is_some());

    let dup = cms
        .create(&PostParams::default(), &cm("settings", json!({}))?)
        .await
        .map_err(api_error)
        .err();
    assert_eq!(
        dup.map(|e| (e.code, e.reason)),
        Some((409, "AlreadyExists".into()))
    );

    let mut fetched = cms.get("settings").await?;
    fetched
        .data
        .get_or_insert_default()
        .insert("b".into(), "2".into());
    let replaced = cms
        .replace("settings", &PostParams::default(), &fetched)
        .await?;
    assert_ne!(
        replaced.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );

    // Replacing with the first, now stale, resourceVersion is refused.
    let mut stale = created.clone();
    stale.data = Some([("c".to_string(), "3".to_string())].into());
    let err = cms
        .replace("settings", &PostParams::default(), &stale)
        .await
        .map_err(api_error)
        .err();
    assert_eq!(
        err.map(|e| (e.code, e.reason)),
        Some((409, "Conflict".into()))
    );

    let merged = cms
        .patch(
            "settings",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"a": null, "d": "4"}})),
        )
        .await?;
    assert_eq!(
        merged.data,
        Some(
            [
                ("b".to_string(), "2".to_string()),
                ("d".to_string(), "4".to_string())
            ]
            .into()
        )
    );
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/data/b", "value": "20"}]))?;
    let patched = cms
        .patch("settings", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await?;
    assert_eq!(
        patched
            .data
            .as_ref()
            .and_then(|d| d.get("b"))
            .map(String::as_str),
        Some("20")
    );

    cms.delete("settings", &DeleteParams::default()).await?;
    let gone = cms.get("settings").await.map_err(api_error).err();
    assert_eq!(
        gone.map(|e| (e.code, e.reason)),
        Some((404, "NotFound".into()))
    );
    Ok(())
}

#[tokio::test]
async fn invalid_names_and_missing_namespaces_are_refused() -> TestResult {
    let (_sim, client) = sim().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let err = cms
        .create(&PostParams::default(), &cm("Not_Valid", json!({}))?)
        .await
        .map_err(api_error)
        .err();
    assert_eq!(
        err.map(|e| (e.code, e.reason)),
        Some((422, "Invalid".into()))
    );
    let elsewhere: Api<ConfigMap> = Api::namespaced(client, "no-such-ns");
    let err = elsewhere
        .create(&PostParams::default(), &cm("x", json!({}))?)
        .await
        .map_err(api_error)
        .err();
    assert_eq!(
        err.map(|e| (e.code, e.message)),
        Some((404, "namespaces \"no-such-ns\" not found".into()))
    );
    Ok(())
}

#[tokio::test]
async fn lists_filter_by_selectors_and_paginate() -> TestResult {
    let (_sim, client) = sim().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    for i in 0..7 {
        let tier = if i % 2 == 0 { "front" } else { "back" };
        let obj: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": format!("cm-{i}"), "labels": {"tier": tier}}}),
        )?;
        cms.create(&PostParams::default(), &obj).await?;
    }
    let front = cms
        .list(&ListParams::default().labels("tier=front"))
        .await?;
    assert_eq!(front.items.len(), 4);
    let not_front = cms
        .list(&ListParams::default().labels("tier notin (front)"))
        .await?;
    assert_eq!(not_front.items.len(), 3);
    let by_name = cms
        .list(&ListParams::default().fields("metadata.name=cm-3"))
        .await?;
    assert_eq!(
        by_name
            .items
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect::<Vec<_>>(),
        vec!["cm-3"]
    );

    let mut names = Vec::new();
    let mut params = ListParams::default().limit(3);
    loop {
        let page = cms.list(&params).await?;
        assert!(page.items.len() <= 3);
        names.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => params = ListParams::default().limit(3).continue_token(&token),
            None => break,
        }
    }
    assert_eq!(names, (0..7).map(|i| format!("cm-{i}")).collect::<Vec<_>>());
    // remainingItemCount only without selectors, as the API server documents it.
    let first = cms.list(&ListParams::default().limit(3)).await?;
    assert_eq!(first.metadata.remaining_item_count, Some(4));
    let mut front = Vec::new();
    let mut params = ListParams::default().labels("tier=front").limit(3);
    loop {
        let page = cms.list(&params).await?;
        assert_eq!(page.metadata.remaining_item_count, None);
        front.extend(page.items.iter().filter_map(|c| c.metadata.name.clone()));
        match page.metadata.continue_.filter(|c| !c.is_empty()) {
            Some(token) => {
                params = ListParams::default()
                    .labels("tier=front")
                    .limit(3)
                    .continue_token(&token)
            }
            None => break,
        }
    }
    assert_eq!(front, ["cm-0", "cm-2", "cm-4", "cm-6"]);
    Ok(())
}

#[tokio::test]
async fn server_side_apply_owns_fields_and_reports_conflicts() -> TestResult {
    let (_sim, client) = sim().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"owned": "yes", "other": "1"}});
    let created = cms
        .patch(
            "applied",
            &PatchParams::apply("operator"),
            &Patch::Apply(&config),
        )
        .await?;
    let managers = created.metadata.managed_fields.clone().unwrap_or_default();
    assert_eq!(managers.len(), 1);
    assert_eq!(
        (
            managers[0].manager.as_deref(),
            managers[0].operation.as_deref()
        ),
        (Some("operator"), Some("Apply"))
    );

    // Applying the same configuration again changes nothing, not even the resourceVersion.
    let again = cms
        .patch(
            "applied",
            &PatchParams::apply("operator"),
            &Patch::Apply(&config),
        )
        .await?;
    assert_eq!(
        again.metadata.resource_version,
        created.metadata.resource_version
    );

    // Someone edits a field the operator owns; the operator's next apply conflicts unless forced.
    cms.patch(
        "applied",
        &PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..Default::default()
        },
        &Patch::Merge(json!({"data": {"owned": "edited"}})),
    )
    .await?;
    let err = cms
        .patch(
            "applied",
            &PatchParams::apply("operator"),
            &Patch::Apply(&config),
        )
        .await
        .map_err(api_error)
        .err();
    let err = err.ok_or("a conflicting apply must fail")?;
    assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
    assert!(
        err.message.contains("kubectl-edit") && err.message.contains(".data.owned"),
        "{}",
        err.message
    );
    let forced = cms
        .patch(
            "applied",
            &PatchParams::apply("operator").force(),
            &Patch::Apply(&config),
        )
        .await?;
    assert_eq!(
        forced
            .data
            .as_ref()
            .and_then(|d| d.get("owned"))
            .map(String::as_str),
        Some("yes")
    );

    // A field the manager stops applying is removed.
    let smaller = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "applied"}, "data": {"owned": "yes"}});
    let pruned = cms
        .patch(
            "applied",
            &PatchParams::apply("operator"),
            &Patch::Apply(&smaller),
        )
        .await?;
    assert_eq!(
        pruned.data,
        Some([("owned".to_string(), "yes".to_string())].into())
    );
    Ok(())
}

#[tokio::test]
async fn an_applied_resource_version_is_a_precondition() -> TestResult {
    let (_sim, client) = sim().await?;
    let api: Api<ConfigMap> = Api::namespaced(client, "default");
    let params = PatchParams::apply("claimer").force();
    let first = api
        .patch(
            "held",
            &params,
            &Patch::Apply(
                json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"holder": "a"}}),
            ),
        )
        .await?;
    let rv = first.metadata.resource_version.clone().unwrap_or_default();
    // Someone else writes in between: an apply that names the version it read is refused.
    api.patch(
        "held",
        &PatchParams::apply("other").force(),
        &Patch::Apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "data": {"holder": "b"}})),
    )
    .await?;
    let stale = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"resourceVersion": rv}, "data": {"holder": "a"}});
    let refused = api_error(
        api.patch("held", &params, &Patch::Apply(&stale))
            .await
            .err()
            .ok_or("a stale apply was accepted")?,
    );
    assert_eq!((refused.code, refused.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        api.get("held")
            .await?
            .data
            .unwrap_or_default()
            .get("holder")
            .map(String::as_str),
        Some("b")
    );
    // With the current version it applies, and the version is not a field anyone owns.
    let current = api
        .get("held")
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let fresh = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"resourceVersion": current}, "data": {"holder": "a"}});
    let applied = api.patch("held", &params, &Patch::Apply(&fresh)).await?;
    assert_eq!(
        applied
            .data
            .unwrap_or_default()
            .get("holder")
            .map(String::as_str),
        Some("a")
    );
    assert_ne!(
        applied.metadata.resource_version.as_deref(),
        Some(current.as_str())
    );
    Ok(())
}

#[tokio::test]
async fn finalizers_hold_deletion_until_removed() -> TestResult {
    let (_sim, client) = sim().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let obj: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "held", "finalizers": ["govcloud.io/cleanup"]}}),
    )?;
    cms.create(&PostParams::default(), &obj).await?;
    cms.delete("held", &DeleteParams::default()).await?;
    let terminating = cms.get("held").await?;
    assert!(
        terminating.metadata.deletion_timestamp.is_some(),
        "deletionTimestamp is set while a finalizer remains"
    );
    let err = cms
        .patch(
            "held",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["govcloud.io/cleanup", "another"]}})),
        )
        .await
        .map_err(api_error)
        .err();
    assert_eq!(
        err.map(|e| e.code),
        Some(422),
        "no new finalizers while deleting"
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert_eq!(cms.get_opt("held").await?.map(|c| c.metadata.name), None);
    Ok(())
}

#[tokio::test]
async fn deleting_a_namespace_takes_its_contents_and_owners_take_dependents() -> TestResult {
    let (_sim, client) = sim().await?;
    let namespaces: Api<Namespace> = Api::all(client.clone());
    namespaces
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "agency"}}))?,
        )
        .await?;
    // The namespace gets its default ServiceAccount, as the ServiceAccount controller makes it.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), "agency");
    assert!(sas.get_opt("default").await?.is_some());

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "agency");
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({}))?)
        .await?;
    let dependent: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "dependent", "ownerReferences": [
        {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner.metadata.uid}]}}),
    )?;
    cms.create(&PostParams::default(), &dependent).await?;
    cms.delete("owner", &DeleteParams::background()).await?;
    assert!(
        cms.get_opt("dependent").await?.is_none(),
        "garbage collected with its owner"
    );

    let held: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "held", "finalizers": ["x/y"]}}))?;
    cms.create(&PostParams::default(), &held).await?;
    namespaces
        .delete("agency", &DeleteParams::default())
        .await?;
    let ns = namespaces.get("agency").await?;
    assert_eq!(
        ns.status.and_then(|s| s.phase).as_deref(),
        Some("Terminating")
    );
    let err = cms
        .create(&PostParams::default(), &cm("late", json!({}))?)
        .await
        .map_err(api_error)
        .err();
    assert_eq!(
        err.map(|e| e.code),
        Some(403),
        "no new content in a terminating namespace"
    );
    cms.patch(
        "held",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    assert!(
        namespaces.get_opt("agency").await?.is_none(),
        "gone once empty"
    );
    Ok(())
}

#[tokio::test]
async fn custom_resources_follow_their_definition() -> TestResult {
    let (_sim, client) = sim().await?;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_json::from_value(json!({
        "metadata": {"name": "widgets.example.com"},
        "spec": {"group": "example.com", "scope": "Cluster",
            "names": {"plural": "widgets", "singular": "widget", "kind": "Widget", "shortNames": ["wg"]},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
                "subresources": {"status": {}}}]}
    }))?;
    crds.create(&PostParams::default(), &crd).await?;
    let established = crds.get("widgets.example.com").await?;
    let conditions = established
        .status
        .and_then(|s| s.conditions)
        .unwrap_or_default();
    assert!(
        conditions
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );

    let gvk = GroupVersionKind::gvk("example.com", "v1", "Widget");
    let widgets: Api<DynamicObject> = Api::all_with(client.clone(), &ApiResource::from_gvk(&gvk));
    let w: DynamicObject =
        serde_json::from_value(json!({"apiVersion": "example.com/v1", "kind": "Widget",
        "metadata": {"name": "w1"}, "spec": {"size": 1}, "status": {"ignored": true}}))?;
    let created = widgets.create(&PostParams::default(), &w).await?;
    assert_eq!(created.metadata.generation, Some(1));
    assert!(
        created.data.get("status").is_none(),
        "status is dropped on create with a status subresource"
    );

    let status = widgets
        .patch_status(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"ready": true}})),
        )
        .await?;
    assert_eq!(
        status.metadata.generation,
        Some(1),
        "status changes leave generation alone"
    );
    let spec = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"size": 2}, "status": {"ready": false}})),
        )
        .await?;
    assert_eq!(
        spec.metadata.generation,
        Some(2),
        "spec changes bump generation"
    );
    assert_eq!(
        spec.data["status"]["ready"],
        json!(true),
        "the main resource cannot change status"
    );

    let err = widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {}})),
        )
        .await
        .map_err(api_error)
        .err();
    assert_eq!(
        err.map(|e| e.code),
        Some(415),
        "strategic merge patch is not for custom resources"
    );

    // Marking for deletion bumps generation, as the API server does.
    widgets
        .patch(
            "w1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"finalizers": ["example.com/hold"]}})),
        )
        .await?;
    widgets.delete("w1", &DeleteParams::default()).await?;
    let marked = widgets.get("w1").await?;
    assert_eq!(marked.metadata.generation, Some(3));
    assert!(marked.metadata.deletion_timestamp.is_some());

    crds.delete("widgets.example.com", &DeleteParams::default())
        .await?;
    let err = widgets.get("w1").await.map_err(api_error).err();
    assert_eq!(err.map(|e| e.code), Some(404));
    Ok(())
}

#[tokio::test]
async fn quotas_refuse_pods_and_track_usage_with_limit_range_defaults() -> TestResult {
    let (_sim, client) = sim().await?;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "default");
    let lrs: Api<LimitRange> = Api::namespaced(client.clone(), "default");
    let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
    lrs.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "defaults"},
        "spec": {"limits": [{"type": "Container", "defaultRequest": {"cpu": "250m", "memory": "128Mi"}, "default": {"cpu": "500m", "memory": "256Mi"}}]}}))?).await?;
    quotas.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "compute"},
        "spec": {"hard": {"pods": "2", "requests.cpu": "1", "requests.memory": "1Gi", "limits.cpu": "2"}}}))?).await?;

    let pod = |name: &str| {
        serde_json::from_value::<Pod>(
            json!({"metadata": {"name": name}, "spec": {"containers": [{"name": "app", "image": "nginx"}]}}),
        )
    };
    let first = pods.create(&PostParams::default(), &pod("p1")?).await?;
    let resources = first
        .spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.resources)
        .ok_or("no resources")?;
    assert_eq!(
        resources
            .requests
            .and_then(|r| r.get("cpu").map(|q| q.0.clone()))
            .as_deref(),
        Some("250m"),
        "LimitRange default request"
    );
    assert_eq!(
        resources
            .limits
            .and_then(|r| r.get("cpu").map(|q| q.0.clone()))
            .as_deref(),
        Some("500m"),
        "LimitRange default limit"
    );
    pods.create(&PostParams::default(), &pod("p2")?).await?;

    let used = quotas
        .get("compute")
        .await?
        .status
        .and_then(|s| s.used)
        .unwrap_or_default();
    assert_eq!(used.get("pods").map(|q| q.0.as_str()), Some("2"));
    assert_eq!(used.get("requests.cpu").map(|q| q.0.as_str()), Some("500m"));
    assert_eq!(
        used.get("requests.memory").map(|q| q.0.as_str()),
        Some("256Mi")
    );

    let err = pods
        .create(&PostParams::default(), &pod("p3")?)
        .await
        .map_err(api_error)
        .err()
        .ok_or("a third pod must be refused")?;
    assert_eq!((err.code, err.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        err.message,
        "pods \"p3\" is forbidden: exceeded quota: compute, requested: pods=1, used: pods=2, limited: pods=2"
    );

    pods.delete("p1", &DeleteParams::default()).await?;
    let used = quotas
        .get("compute")
        .await?
        .status
        .and_then(|s| s.used)
        .unwrap_or_default();
    assert_eq!(
        used.get("pods").map(|q| q.0.as_str()),
        Some("1"),
        "usage drops when a pod goes"
    );
    pods.create(&PostParams::default(), &pod("p3")?).await?;
    // The quota controller's writes are its own: a status-subresource entry under
    // kube-controller-manager, as on a real cluster (watchers tell them from their own).
    let fields = quotas
        .get("compute")
        .await?
        .metadata
        .managed_fields
        .unwrap_or_default();
    let controller = fields
        .iter()
        .find(|f| f.manager.as_deref() == Some("kube-controller-manager"))
        .ok_or("no managedFields entry of the quota controller")?;
    assert_eq!(controller.subresource.as_deref(), Some("status"));
    assert_eq!(controller.operation.as_deref(), Some("Update"));
    let owned = serde_json::to_value(&controller.fields_v1)?;
    assert!(
        owned.pointer("/f:status/f:used/f:pods").is_some(),
        "{owned}"
    );
    assert!(
        fields
            .iter()
            .filter(|f| f.manager.as_deref() != Some("kube-controller-manager"))
            .all(|f| f.subresource.is_none()),
        "the creator's entry stays the main resource's"
    );
    Ok(())
}

#[tokio::test]
async fn metadata_lists_gets_and_watches_carry_metadata_only() -> TestResult {
    let (_sim, client) = sim().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "a", "labels": {"app": "x"}}, "data": {"secret-ish": "v"}}),
        )?,
    )
    .await?;
    let list = cms.list_metadata(&ListParams::default()).await?;
    let a = list
        .items
        .iter()
        .find(|o| o.metadata.name.as_deref() == Some("a"))
        .ok_or("a is listed")?;
    assert_eq!(
        a.metadata
            .labels
            .as_ref()
            .and_then(|l| l.get("app"))
            .map(String::as_str),
        Some("x")
    );
    assert!(a.metadata.resource_version.is_some());
    let got = cms.get_metadata("a").await?;
    assert_eq!(got.metadata.uid, a.metadata.uid);
    // What is on the wire: no data, only metadata.
    let raw = client
        .request_text(
            http::Request::get("/api/v1/namespaces/default/configmaps/a")
                .header(
                    "accept",
                    "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                )
                .body(Vec::new())?,
        )
        .await?;
    let raw: serde_json::Value = serde_json::from_str(&raw)?;
    assert_eq!(raw["kind"], "PartialObjectMetadata");
    assert_eq!(raw["apiVersion"], "meta.k8s.io/v1");
    assert!(raw.get("data").is_none(), "{raw}");

    let stream = watcher(
        Api::<kube::core::PartialObjectMeta<ConfigMap>>::namespaced(client.clone(), "default"),
        watcher::Config::default(),
    )
    .applied_objects()
    .boxed();
    let mut stream = stream;
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"app": "y"}}})),
    )
    .await?;
    let seen = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(o) = stream.try_next().await? {
            if o.metadata
                .labels
                .as_ref()
                .and_then(|l| l.get("app"))
                .map(String::as_str)
                == Some("y")
            {
                return Ok::<_, watcher::Error>(Some(o));
            }
        }
        Ok(None)
    })
    .await??;
    assert!(seen.is_some(), "the label change arrives as metadata");
    Ok(())
}

#[tokio::test]
async fn token_requests_issue_tokens_for_service_accounts() -> TestResult {
    let (_sim, client) = sim().await?;
    let sas: Api<ServiceAccount> = Api::namespaced(client, "default");
    sas.create(
        &PostParams::default(),
        &serde_json::from_value(json!({"metadata": {"name": "deployer"}}))?,
    )
    .await?;
    let req: TokenRequest = serde_json::from_value(
        json!({"spec": {"audiences": ["govcloud"], "expirationSeconds": 3600}}),
    )?;
    let token = sas
        .create_token_request("deployer", &PostParams::default(), &req)
        .await?;
    let status = token.status.ok_or("no status")?;
    assert_eq!(status.token.split('.').count(), 3, "a JWT");
    let err = sas
        .create_token_request("nobody", &PostParams::default(), &req)
        .await
        .map_err(api_error)
        .err();
    assert_eq!(err.map(|e| e.code), Some(404));
    Ok(())
}

#[tokio::test]
async fn watcher_and_reflector_follow_changes_and_recover_from_410() -> TestResult {
    let (sim, client) = sim().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("before", json!({}))?)
        .await?;

    let (reader, writer) = reflector::store::<ConfigMap>();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let stream = watcher(cms.clone(), watcher::Config::default()).map(move |ev| {
        let _ = tx.send(match &ev {
            Ok(watcher::Event::Init) => "init".to_string(),
            Err(watcher::Error::WatchError(e)) => format!("error {}", e.code),
            _ => "other".to_string(),
        });
        ev
    });
    let task = tokio::spawn(
        stream
            .reflect(writer)
            .applied_objects()
            .for_each(|_| async {}),
    );
    let names = |r: &reflector::Store<ConfigMap>| {
        let mut v: Vec<String> = r
            .state()
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        v.sort();
        v
    };
    eventually("the initial list", || async {
        names(&reader) == ["before"]
    })
    .await?;

    cms.create(&PostParams::default(), &cm("added", json!({"v": "1"}))?)
        .await?;
    cms.patch(
        "added",
        &PatchParams::default(),
        &Patch::Merge(json!({"data": {"v": "2"}})),
    )
    .await?;
    cms.delete("before", &DeleteParams::default()).await?;
    eventually("create, update and delete", || async {
        names(&reader) == ["added"]
            && reader
                .state()
                .iter()
                .any(|c| c.data.as_ref().and_then(|d| d.get("v")).map(String::as_str) == Some("2"))
    })
    .await?;

    // Changes elsewhere move the cluster past the watcher's resourceVersion; then the history
    // is compacted and the watch connection dropped: resuming gets 410 Gone, and a re-list.
    let other: Api<ServiceAccount> = Api::namespaced(client.clone(), "default");
    other
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "elsewhere"}}))?,
        )
        .await?;
    sim.compact();
    sim.end_watches();
    cms.create(&PostParams::default(), &cm("after-410", json!({}))?)
        .await?;
    eventually("the re-list after 410", || async {
        names(&reader) == ["added", "after-410"]
    })
    .await?;
    let mut seen = Vec::new();
    while let Ok(e) = rx.try_recv() {
        seen.push(e);
    }
    let gone_at = seen
        .iter()
        .position(|e| e == "error 410")
        .ok_or(format!("no 410 seen: {seen:?}"))?;
    assert!(
        seen[gone_at..].iter().any(|e| e == "init"),
        "a fresh list follows the 410: {seen:?}"
    );
    task.abort();
    Ok(())
}

#[tokio::test]
async fn watches_replay_from_a_resource_version_and_send_bookmarks() -> TestResult {
    let config = Config {
        bookmark_interval: Duration::from_millis(200),
        ..Config::default()
    };
    let sim = KubeSim::start_with(config, "127.0.0.1:0".parse()?).await?;
    let cms: Api<ConfigMap> = Api::namespaced(sim.client()?, "default");
    let first = cms
        .create(&PostParams::default(), &cm("one", json!({}))?)
        .await?;
    let rv = first.metadata.resource_version.clone().ok_or("no rv")?;
    cms.create(&PostParams::default(), &cm("two", json!({}))?)
        .await?;
    cms.delete("one", &DeleteParams::default()).await?;

    let wp = kube::api::WatchParams::default().timeout(5);
    let mut stream = cms.watch(&wp, &rv).await?.boxed();
    let mut kinds = Vec::new();
    while let Some(ev) = tokio::time::timeout(Duration::from_secs(3), stream.try_next()).await?? {
        match ev {
            kube::api::WatchEvent::Added(c) => {
                kinds.push(format!("ADDED {}", c.metadata.name.unwrap_or_default()))
            }
            kube::api::WatchEvent::Deleted(c) => {
                kinds.push(format!("DELETED {}", c.metadata.name.unwrap_or_default()))
            }
            kube::api::WatchEvent::Bookmark(_) => {
                kinds.push("BOOKMARK".into());
                break;
            }
            other => kinds.push(format!("{other:?}")),
        }
    }
    assert_eq!(kinds, ["ADDED two", "DELETED one", "BOOKMARK"]);

    sim.compact();
    let mut stream = cms.watch(&wp, &rv).await?.boxed();
    match stream.try_next().await? {
        Some(kube::api::WatchEvent::Error(e)) => {
            assert_eq!((e.code, e.reason.as_str()), (410, "Expired"))
        }
        other => return Err(format!("expected 410 Gone, got {other:?}").into()),
    }
    Ok(())
}

#[tokio::test]
async fn watches_see_apply_creates_and_selector_transitions() -> TestResult {
    let (_sim, client) = sim().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    let start = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .ok_or("no list rv")?;
    let wp = kube::api::WatchParams::default()
        .labels("tier=front")
        .timeout(10);
    let mut stream = cms.watch(&wp, &start).await?.boxed();

    let config = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "moving", "labels": {"tier": "front"}}});
    let created = cms
        .patch(
            "moving",
            &PatchParams::apply("operator"),
            &Patch::Apply(&config),
        )
        .await?;
    cms.patch(
        "moving",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "back"}}})),
    )
    .await?;
    cms.patch(
        "moving",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "front"}}})),
    )
    .await?;

    let mut seen = Vec::new();
    while seen.len() < 3 {
        let ev = tokio::time::timeout(Duration::from_secs(3), stream.try_next())
            .await??
            .ok_or("watch ended")?;
        match ev {
            kube::api::WatchEvent::Added(c) => {
                if seen.is_empty() {
                    // What the watch saw of the applied create is what the apply answered.
                    assert_eq!(c.metadata.managed_fields, created.metadata.managed_fields);
                    assert_eq!(
                        c.metadata.resource_version,
                        created.metadata.resource_version
                    );
                }
                seen.push("ADDED");
            }
            kube::api::WatchEvent::Deleted(_) => seen.push("DELETED"),
            kube::api::WatchEvent::Modified(_) => seen.push("MODIFIED"),
            _ => {}
        }
    }
    assert_eq!(
        seen,
        ["ADDED", "DELETED", "ADDED"],
        "leaving and re-entering the selection"
    );
    Ok(())
}

#[tokio::test]
async fn object_count_quotas_refuse_node_ports_and_load_balancers() -> TestResult {
    let (_sim, client) = sim().await?;
    let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), "default");
    quotas.create(&PostParams::default(), &serde_json::from_value(json!({"metadata": {"name": "objects"},
        "spec": {"hard": {"services.nodeports": "0", "services.loadbalancers": "1", "count/configmaps": "1"}}}))?).await?;
    let services: Api<k8s_openapi::api::core::v1::Service> =
        Api::namespaced(client.clone(), "default");
    let svc = |name: &str, ty: &str| {
        serde_json::from_value::<k8s_openapi::api::core::v1::Service>(json!({
        "metadata": {"name": name}, "spec": {"type": ty, "selector": {"app": "web"}, "ports": [{"port": 443}]}}))
    };

    let internal = services
        .create(&PostParams::default(), &svc("internal", "ClusterIP")?)
        .await?;
    assert!(
        internal.spec.and_then(|s| s.cluster_ip).is_some(),
        "a ClusterIP is allocated"
    );
    let err = services
        .create(&PostParams::default(), &svc("exposed", "NodePort")?)
        .await
        .map_err(api_error)
        .err()
        .ok_or("NodePort must be refused")?;
    assert_eq!(err.code, 403);
    assert_eq!(
        err.message,
        "services \"exposed\" is forbidden: exceeded quota: objects, requested: services.nodeports=1, used: services.nodeports=0, limited: services.nodeports=0"
    );

    let cms: Api<ConfigMap> = Api::namespaced(client, "default");
    cms.create(&PostParams::default(), &cm("one", json!({}))?)
        .await?;
    let err = cms
        .create(&PostParams::default(), &cm("two", json!({}))?)
        .await
        .map_err(api_error)
        .err();
    assert_eq!(
        err.map(|e| e.code),
        Some(403),
        "count/configmaps is enforced"
    );
    let used = quotas
        .get("objects")
        .await?
        .status
        .and_then(|s| s.used)
        .unwrap_or_default();
    assert_eq!(
        used.get("count/configmaps").map(|q| q.0.as_str()),
        Some("1")
    );
    assert_eq!(
        used.get("services.nodeports").map(|q| q.0.as_str()),
        Some("0")
    );
    Ok(())
}

#[tokio::test]
async fn with_authorization_tokens_get_what_their_bindings_allow_and_no_more() -> TestResult {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let config = Config {
        authorization: true,
        ..Config::default()
    };
    let sim = KubeSim::start_with(config, "127.0.0.1:0".parse()?).await?;
    let admin = sim.client()?;
    for ns in ["team", "other"] {
        Api::<Namespace>::all(admin.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(json!({"metadata": {"name": ns}}))?,
            )
            .await?;
    }
    let accounts = Api::<ServiceAccount>::namespaced(admin.clone(), "team");
    accounts
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "app"}}))?,
        )
        .await?;
    Api::<Role>::namespaced(admin.clone(), "team")
        .create(&PostParams::default(), &serde_json::from_value(json!({
            "metadata": {"name": "cm"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "create"]}]
        }))?)
        .await?;
    Api::<RoleBinding>::namespaced(admin.clone(), "team")
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({
                "metadata": {"name": "cm"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "cm"},
                "subjects": [{"kind": "ServiceAccount", "name": "app", "namespace": "team"}]
            }))?,
        )
        .await?;
    let request = TokenRequest {
        spec: TokenRequestSpec {
            expiration_seconds: Some(600),
            ..TokenRequestSpec::default()
        },
        ..TokenRequest::default()
    };
    let token = accounts
        .create_token_request("app", &PostParams::default(), &request)
        .await?
        .status
        .map(|s| s.token)
        .unwrap_or_default();
    let app = sim.client_with_token(&token)?;
    let mine = Api::<ConfigMap>::namespaced(app.clone(), "team");
    mine.create(&PostParams::default(), &cm("settings", json!({"a": "1"}))?)
        .await?;
    assert_eq!(mine.list(&ListParams::default()).await?.items.len(), 1);
    // Another namespace, a verb the role lacks, a kind it lacks: 403 in the API server's words.
    let refused = api_error(
        Api::<ConfigMap>::namespaced(app.clone(), "other")
            .list(&ListParams::default())
            .await
            .err()
            .ok_or("listing another namespace was allowed")?,
    );
    assert_eq!((refused.code, refused.reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        refused.message,
        "configmaps is forbidden: User \"system:serviceaccount:team:app\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"other\""
    );
    let refused = mine
        .delete("settings", &DeleteParams::default())
        .await
        .err()
        .ok_or("delete was allowed")?;
    assert_eq!(api_error(refused).code, 403);
    let refused = Api::<Namespace>::all(app.clone())
        .list(&ListParams::default())
        .await
        .err()
        .ok_or("namespaces listed")?;
    assert_eq!(api_error(refused).code, 403);
    // No token, a made-up token, and the token of a deleted ServiceAccount: 401.
    for bad in ["", "eyJhbGciOiJSUzI1NiJ9.e30.forged"] {
        let refused = sim.client_with_token(bad)?.apiserver_version().await;
        assert!(
            refused.is_ok(),
            "discovery stays open only to valid tokens? {refused:?}"
        );
        let refused = Api::<ConfigMap>::namespaced(sim.client_with_token(bad)?, "team")
            .list(&ListParams::default())
            .await
            .err()
            .ok_or("an unknown token was accepted")?;
        assert_eq!(api_error(refused).code, 401, "{bad:?}");
    }
    accounts.delete("app", &DeleteParams::default()).await?;
    let refused = mine
        .list(&ListParams::default())
        .await
        .err()
        .ok_or("a deleted account's token still works")?;
    assert_eq!(api_error(refused).code, 401);
    Ok(())
}

/// A snapshot restores the cluster as it was: objects with their uids and owners, custom
/// resources (their CRDs first), and the ServiceAccount tokens issued.
#[tokio::test]
async fn a_snapshot_restores_objects_owners_and_tokens() -> TestResult {
    let (sim, client) = sim().await?;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": "keep"}}))?,
        )
        .await?;
    let cms = Api::<ConfigMap>::namespaced(client.clone(), "keep");
    let owner = cms
        .create(&PostParams::default(), &cm("owner", json!({"a": "1"}))?)
        .await?;
    let uid = owner.metadata.uid.clone().unwrap_or_default();
    let mut dependent = cm("dependent", json!({"b": "2"}))?;
    dependent.metadata.owner_references = Some(vec![serde_json::from_value(
        json!({"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": uid}),
    )?]);
    cms.create(&PostParams::default(), &dependent).await?;
    let token = Api::<ServiceAccount>::namespaced(client.clone(), "keep")
        .create_token_request("default", &PostParams::default(), &TokenRequest::default())
        .await?
        .status
        .map(|s| s.token)
        .unwrap_or_default();
    let snapshot = sim.snapshot();
    drop(sim);

    let config = Config {
        restore: Some(snapshot),
        authorization: true,
        ..Config::default()
    };
    let again = KubeSim::start_with(config, "127.0.0.1:0".parse()?).await?;
    let admin = again.client()?;
    let cms = Api::<ConfigMap>::namespaced(admin.clone(), "keep");
    let restored = cms.get("owner").await?;
    assert_eq!(restored.metadata.uid.as_deref(), Some(uid.as_str()));
    // the owner link still holds: deleting the owner takes its dependent
    cms.delete("owner", &DeleteParams::default()).await?;
    eventually("the dependent collected", || async {
        match cms.get_opt("dependent").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await?;
    // the token issued before still authenticates
    let sa = again.client_with_token(&token)?;
    let denied = Api::<ConfigMap>::namespaced(sa, "keep")
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(denied, Err(Error::Api(ref s)) if s.code == 403),
        "a known token is authenticated (then refused by RBAC): {denied:?}"
    );
    Ok(())
}

#[tokio::test]
async fn a_watch_event_names_its_type_before_its_object() -> TestResult {
    // As the API server writes them: a client that decodes the event as a tagged union reads the
    // tag first and never holds the whole object to look for it.
    let (_sim, client) = sim().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    cms.create(&PostParams::default(), &cm("watched", json!({"a": "1"}))?)
        .await?;
    let request =
        http::Request::get("/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=1")
            .body(Vec::new())?;
    let body = client.request_text(request).await?;
    let first = body.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(r#"{"type":"ADDED","object":{"#),
        "{first}"
    );
    let event: serde_json::Value = serde_json::from_str(first)?;
    assert_eq!(event["object"]["metadata"]["name"], "watched");
    Ok(())
}

#[tokio::test]
async fn events_written_faster_than_read_arrive_whole_and_in_order() -> TestResult {
    // A burst of writes reaches a watch as several events per write of the stream (the API
    // server flushes once its queue is empty); each must still be one whole line, in order.
    let (_sim, client) = sim().await?;
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
    let rv = cms
        .list(&ListParams::default())
        .await?
        .metadata
        .resource_version
        .unwrap_or_default();
    let request = http::Request::get(format!(
        "/api/v1/namespaces/default/configmaps?watch=true&timeoutSeconds=3&resourceVersion={rv}"
    ))
    .body(Vec::new())?;
    let reading = tokio::spawn({
        let client = client.clone();
        async move { client.request_text(request).await }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n = 600;
    futures::stream::iter(0..n)
        .map(|i| {
            let cms = cms.clone();
            async move {
                cms.create(
                    &PostParams::default(),
                    &cm(&format!("burst-{i:04}"), json!({"i": i.to_string()}))?,
                )
                .await?;
                Ok::<_, Box<dyn std::error::Error>>(())
            }
        })
        .buffer_unordered(16)
        .try_collect::<Vec<()>>()
        .await?;
    let body = reading.await??;
    let mut versions = Vec::new();
    let mut names = std::collections::BTreeSet::new();
    for line in body.lines() {
        let event: serde_json::Value = serde_json::from_str(line)?;
        assert_eq!(event["type"], "ADDED", "{line}");
        versions.push(
            event["object"]["metadata"]["resourceVersion"]
                .as_str()
                .unwrap_or_default()
                .parse::<u64>()?,
        );
        names.insert(
            event["object"]["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        );
    }
    assert_eq!(names.len(), n, "every object once");
    assert!(
        versions.windows(2).all(|w| w[0] < w[1]),
        "in the order written"
    );
    Ok(())
}
