//! The Tenant controller against kubesim, through real `kube::Client`s.

use std::collections::BTreeMap;

use govcloud_e2e::{Cluster, TestResult, eventually, tenant};
use govcloud_tenant::crd::{Phase, Tenant};
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, Pod, ResourceQuota, ServiceAccount,
};
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

const STTTT: &str = r#"
apiVersion: govcloud.io/v1alpha1
kind: Tenant
metadata: { name: nghean-stttt }
spec:
  displayName: Sở Thông tin và Truyền thông Nghệ An
  organization: nghe-an
  owners: [ { kind: Group, name: "nghean:stttt:admins" } ]
  namespaces:
    - { name: prod,    quota: { cpu: "8", memory: 32Gi, storage: 200Gi, pods: 100, loadBalancers: 1 } }
    - { name: staging, quota: { cpu: "2", memory: 8Gi,  storage: 50Gi,  pods: 30 } }
  network: { egress: Internet }
  billing: { plan: Reserved, costCenter: "NA-STTTT" }
"#;

async fn create(c: &Cluster, yaml: &str) -> TestResult<Tenant> {
    Ok(c.tenants()
        .create(&PostParams::default(), &tenant(yaml)?)
        .await?)
}

async fn phase_is(c: &Cluster, name: &str, phase: Phase) -> TestResult<Tenant> {
    let api = c.tenants();
    eventually(&format!("{name} to be {phase:?}"), || async {
        let t = api.get(name).await.ok()?;
        let s = t.status.as_ref()?;
        (s.phase == Some(phase) && s.observed_generation == t.metadata.generation).then_some(t)
    })
    .await
    .map_err(Into::into)
}

fn hard(q: &ResourceQuota) -> BTreeMap<String, String> {
    q.spec
        .as_ref()
        .and_then(|s| s.hard.clone())
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect()
}

async fn quota(client: &Client, ns: &str) -> TestResult<ResourceQuota> {
    Ok(Api::<ResourceQuota>::namespaced(client.clone(), ns)
        .get("govcloud-quota")
        .await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_becomes_isolated_bounded_namespaces() -> TestResult {
    let mut c = Cluster::new().await?;
    c.start_operator()?;
    create(&c, STTTT).await?;
    let t = phase_is(&c, "nghean-stttt", Phase::Ready).await?;
    let status = t.status.clone().unwrap_or_default();
    assert_eq!(
        status
            .namespaces
            .iter()
            .map(|n| n.name.as_str())
            .collect::<Vec<_>>(),
        ["nghean-stttt-prod", "nghean-stttt-staging"]
    );
    assert_eq!(
        status.namespaces[0]
            .hard
            .get("requests.cpu")
            .map(String::as_str),
        Some("8")
    );
    assert_eq!(
        status.namespaces[0].used.get("pods").map(String::as_str),
        Some("0")
    );
    assert!(t.finalizers().iter().any(|f| f == "govcloud.io/cleanup"));

    let ns = Api::<Namespace>::all(c.client.clone())
        .get("nghean-stttt-prod")
        .await?;
    let labels = ns.labels();
    assert_eq!(
        labels.get("govcloud.io/tenant").map(String::as_str),
        Some("nghean-stttt")
    );
    assert_eq!(
        labels.get("govcloud.io/organization").map(String::as_str),
        Some("nghe-an")
    );
    assert_eq!(
        labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted")
    );

    let q = hard(&quota(&c.client, "nghean-stttt-prod").await?);
    assert_eq!(
        (
            q.get("pods").map(String::as_str),
            q.get("services.nodeports").map(String::as_str)
        ),
        (Some("100"), Some("0"))
    );
    assert!(
        Api::<LimitRange>::namespaced(c.client.clone(), "nghean-stttt-prod")
            .get_opt("govcloud-limits")
            .await?
            .is_some()
    );
    assert!(
        Api::<ServiceAccount>::namespaced(c.client.clone(), "nghean-stttt-prod")
            .get_opt("deployer")
            .await?
            .is_some()
    );
    let owners = Api::<RoleBinding>::namespaced(c.client.clone(), "nghean-stttt-prod")
        .get("govcloud-owners")
        .await?;
    assert_eq!(owners.role_ref.name, "govcloud-tenant-admin");
    let policies = Api::<NetworkPolicy>::namespaced(c.client.clone(), "nghean-stttt-staging")
        .list(&ListParams::default())
        .await?;
    let mut names: Vec<String> = policies.items.iter().map(ResourceExt::name_any).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "govcloud-allow-dns",
            "govcloud-allow-ingress-controller",
            "govcloud-allow-internet",
            "govcloud-allow-same-tenant",
            "govcloud-default-deny"
        ]
    );

    // The LimitRange's defaults and the quota act on pods, as the cluster enforces them.
    let pods = Api::<Pod>::namespaced(c.client.clone(), "nghean-stttt-staging");
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}}),
    )?;
    let created = pods.create(&PostParams::default(), &pod).await?;
    let limits = created
        .spec
        .and_then(|s| s.containers.into_iter().next())
        .and_then(|c| c.resources)
        .and_then(|r| r.limits)
        .unwrap_or_default();
    assert_eq!(limits.get("cpu").map(|q| q.0.as_str()), Some("500m"));

    let events = Api::<Event>::all(c.client.clone())
        .list(&ListParams::default())
        .await?;
    assert!(
        events
            .items
            .iter()
            .any(
                |e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("nghean-stttt")
                    && e.reason.as_deref() == Some("Ready")
            ),
        "an Event says the tenant became Ready"
    );
    c.stop_operators().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_changes_suspension_and_namespace_removal() -> TestResult {
    let mut c = Cluster::new().await?;
    c.start_operator()?;
    create(&c, STTTT).await?;
    phase_is(&c, "nghean-stttt", Phase::Ready).await?;
    let api = c.tenants();
    let pp = PatchParams::default();

    api.patch(
        "nghean-stttt",
        &pp,
        &Patch::Json::<()>(serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/namespaces/0/quota/cpu", "value": "12"}]))?),
    )
    .await?;
    let client = c.client.clone();
    eventually("the new CPU quota", || async {
        (hard(&quota(&client, "nghean-stttt-prod").await.ok()?).get("requests.cpu")? == "12")
            .then_some(())
    })
    .await?;

    api.patch(
        "nghean-stttt",
        &pp,
        &Patch::Merge(json!({"spec": {"suspended": true}})),
    )
    .await?;
    phase_is(&c, "nghean-stttt", Phase::Suspended).await?;
    assert_eq!(
        hard(&quota(&c.client, "nghean-stttt-prod").await?)
            .get("pods")
            .map(String::as_str),
        Some("0")
    );
    let pod: Pod = serde_json::from_value(
        json!({"metadata": {"name": "blocked"}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}}),
    )?;
    let refused = Api::<Pod>::namespaced(c.client.clone(), "nghean-stttt-prod")
        .create(&PostParams::default(), &pod)
        .await;
    assert!(
        matches!(refused, Err(kube::Error::Api(ref s)) if s.code == 403 && s.message.contains("exceeded quota")),
        "{refused:?}"
    );
    assert!(
        Api::<Namespace>::all(c.client.clone())
            .get_opt("nghean-stttt-prod")
            .await?
            .is_some(),
        "suspension deletes nothing"
    );

    api.patch(
        "nghean-stttt",
        &pp,
        &Patch::Merge(json!({"spec": {"suspended": false}})),
    )
    .await?;
    phase_is(&c, "nghean-stttt", Phase::Ready).await?;
    api.patch(
        "nghean-stttt",
        &pp,
        &Patch::Json::<()>(serde_json::from_value(
            json!([{"op": "remove", "path": "/spec/namespaces/1"}]),
        )?),
    )
    .await?;
    let namespaces = Api::<Namespace>::all(c.client.clone());
    eventually("staging to be deleted", || async {
        namespaces
            .get_opt("nghean-stttt-staging")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await?;
    let t = phase_is(&c, "nghean-stttt", Phase::Ready).await?;
    assert_eq!(t.status.unwrap_or_default().namespaces.len(), 1);
    c.stop_operators().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_undone() -> TestResult {
    let mut c = Cluster::new().await?;
    c.start_operator()?;
    create(&c, STTTT).await?;
    phase_is(&c, "nghean-stttt", Phase::Ready).await?;
    let ns = "nghean-stttt-prod";
    let dp = DeleteParams::default();

    let policies = Api::<NetworkPolicy>::namespaced(c.client.clone(), ns);
    policies.delete("govcloud-default-deny", &dp).await?;
    eventually("the deny-all policy back", || async {
        policies
            .get_opt("govcloud-default-deny")
            .await
            .ok()?
            .map(|_| ())
    })
    .await?;

    let quotas = Api::<ResourceQuota>::namespaced(c.client.clone(), ns);
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    quotas
        .patch(
            "govcloud-quota",
            &edit,
            &Patch::Merge(json!({"spec": {"hard": {"pods": "1000", "services.nodeports": "5"}}})),
        )
        .await?;
    eventually("the quota restored", || async {
        let h = hard(&quotas.get("govcloud-quota").await.ok()?);
        (h.get("pods")? == "100" && h.get("services.nodeports")? == "0").then_some(())
    })
    .await?;

    let lrs = Api::<LimitRange>::namespaced(c.client.clone(), ns);
    lrs.delete("govcloud-limits", &dp).await?;
    eventually("the LimitRange back", || async {
        lrs.get_opt("govcloud-limits").await.ok()?.map(|_| ())
    })
    .await?;

    let bindings = Api::<RoleBinding>::namespaced(c.client.clone(), ns);
    bindings.patch("govcloud-owners", &edit, &Patch::Merge(json!({"subjects": [{"kind": "User", "name": "intruder", "apiGroup": "rbac.authorization.k8s.io"}]}))).await?;
    eventually("the owners binding restored", || async {
        let b = bindings.get("govcloud-owners").await.ok()?;
        (b.subjects?
            .iter()
            .map(|s| s.name.as_str())
            .collect::<Vec<_>>()
            == ["nghean:stttt:admins"])
        .then_some(())
    })
    .await?;
    bindings.delete("govcloud-deployer", &dp).await?;
    eventually("the deployer binding back", || async {
        bindings
            .get_opt("govcloud-deployer")
            .await
            .ok()?
            .map(|_| ())
    })
    .await?;
    c.stop_operators().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_writes_nothing_and_undoes_what_changed_while_it_was_down() -> TestResult {
    use std::sync::Arc;
    let mut c = Cluster::new().await?;
    c.start_operator()?;
    create(&c, STTTT).await?;
    phase_is(&c, "nghean-stttt", Phase::Ready).await?;
    // Let the last status and Event land, then stop.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    c.stop_operators().await;

    // Nothing changed: a new operator reconciles the tenant and writes nothing at all.
    let before = c.sim.resource_version();
    let calls = c.sim.requests();
    let telemetry = Arc::new(govcloud_operator::telemetry::Telemetry::default());
    c.start_operator_with(telemetry.clone())?;
    eventually("the restarted operator to reconcile", || async {
        (telemetry.reconciles.get() >= 1).then_some(())
    })
    .await?;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(
        c.sim.resource_version(),
        before,
        "a reconcile with nothing changed wrote to the cluster"
    );
    // Nor does it call the API server per object: its eight watches list and watch (16 calls),
    // and the ClusterRole is applied once per process. Re-applying the tenant's 2 namespaces
    // would take 20 calls more.
    let made = c.sim.requests() - calls;
    assert!(made <= 24, "{made} calls to resync one unchanged tenant");
    c.stop_operators().await;

    // While it is down, someone edits the quota, empties the owners binding and removes a
    // policy: the objects still carry the digest they were applied from, and the next
    // operator must not take them for unchanged.
    let ns = "nghean-stttt-prod";
    let edit = PatchParams {
        field_manager: Some("kubectl-edit".into()),
        ..PatchParams::default()
    };
    let quotas = Api::<ResourceQuota>::namespaced(c.client.clone(), ns);
    quotas
        .patch(
            "govcloud-quota",
            &edit,
            &Patch::Merge(json!({"spec": {"hard": {"pods": "1000"}}})),
        )
        .await?;
    let bindings = Api::<RoleBinding>::namespaced(c.client.clone(), ns);
    bindings
        .patch(
            "govcloud-owners",
            &edit,
            &Patch::Merge(json!({"subjects": [{"kind": "User", "name": "intruder", "apiGroup": "rbac.authorization.k8s.io"}]})),
        )
        .await?;
    let policies = Api::<NetworkPolicy>::namespaced(c.client.clone(), ns);
    policies
        .delete("govcloud-default-deny", &DeleteParams::default())
        .await?;
    c.start_operator()?;
    eventually("the quota, the binding and the policy restored", || async {
        let h = hard(&quotas.get("govcloud-quota").await.ok()?);
        let b = bindings.get("govcloud-owners").await.ok()?;
        let subjects: Vec<String> = b.subjects?.into_iter().map(|s| s.name).collect();
        let deny = policies.get_opt("govcloud-default-deny").await.ok()??;
        (h.get("pods")? == "100"
            && subjects == ["nghean:stttt:admins"]
            && deny.metadata.uid.is_some())
        .then_some(())
    })
    .await?;
    // The tenant reports the quota in force, as restored.
    let t = phase_is(&c, "nghean-stttt", Phase::Ready).await?;
    let prod = t
        .status
        .unwrap_or_default()
        .namespaces
        .into_iter()
        .find(|n| n.name == ns)
        .ok_or("no status of prod")?;
    eventually("the status to show the restored limit", || async {
        let t = c.tenants().get("nghean-stttt").await.ok()?;
        let n = t.status?.namespaces.into_iter().find(|n| n.name == ns)?;
        (n.hard.get("pods").map(String::as_str) == Some("100")).then_some(())
    })
    .await?;
    assert!(prod.ready);
    c.stop_operators().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_spec_waits_with_a_reason_and_creates_nothing() -> TestResult {
    let mut c = Cluster::new().await?;
    c.start_operator()?;
    // The schema accepts it; only the operator can tell the default request exceeds the default limit.
    create(&c, &STTTT.replace("billing:", "limits: { defaultRequest: { cpu: \"2\", memory: 128Mi }, default: { cpu: 500m, memory: 512Mi } }\n  billing:")).await?;
    let t = phase_is(&c, "nghean-stttt", Phase::Degraded).await?;
    let ready = t
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .ok_or("no Ready condition")?;
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "InvalidSpec")
    );
    assert_eq!(
        ready.message,
        "spec.limits.defaultRequest.cpu: \"2\" is more than the default limit \"500m\""
    );
    let owned = Api::<Namespace>::all(c.client.clone())
        .list(&ListParams::default().labels("govcloud.io/tenant=nghean-stttt"))
        .await?;
    assert!(owned.items.is_empty(), "nothing partial is created");

    // Fixing the spec is all it takes.
    c.tenants()
        .patch(
            "nghean-stttt",
            &PatchParams::default(),
            &Patch::Json::<()>(serde_json::from_value(json!([
        {"op": "replace", "path": "/spec/limits/defaultRequest/cpu", "value": "100m"}]))?),
        )
        .await?;
    phase_is(&c, "nghean-stttt", Phase::Ready).await?;
    c.stop_operators().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_tenant_removes_its_namespaces_before_it_goes() -> TestResult {
    let mut c = Cluster::new().await?;
    c.start_operator()?;
    create(&c, STTTT).await?;
    phase_is(&c, "nghean-stttt", Phase::Ready).await?;
    // Something in a namespace that takes time to go: the namespace stays Terminating meanwhile.
    let cms = Api::<ConfigMap>::namespaced(c.client.clone(), "nghean-stttt-prod");
    cms.create(
        &PostParams::default(),
        &serde_json::from_value(
            json!({"metadata": {"name": "slow", "finalizers": ["example.com/slow"]}}),
        )?,
    )
    .await?;

    c.tenants()
        .delete("nghean-stttt", &DeleteParams::default())
        .await?;
    let namespaces = Api::<Namespace>::all(c.client.clone());
    eventually("staging gone", || async {
        namespaces
            .get_opt("nghean-stttt-staging")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await?;
    // Once the operator has reconciled after staging went, the tenant is still there.
    eventually("a reconcile that saw staging gone", || async {
        let t = c
            .tenants()
            .get("nghean-stttt")
            .await
            .map_err(|e| e.to_string())?;
        let message = t
            .status
            .and_then(|s| s.conditions.first().map(|c| c.message.clone()))
            .unwrap_or_default();
        (message == "deleting namespaces: nghean-stttt-prod")
            .then_some(())
            .ok_or(message)
    })
    .await?;
    assert!(
        c.tenants().get_opt("nghean-stttt").await?.is_some(),
        "the tenant waits for its namespaces"
    );
    let terminating = c.tenants().get("nghean-stttt").await?;
    let status = terminating.status.unwrap_or_default();
    assert_eq!(status.phase, Some(Phase::Terminating));
    assert_eq!(
        status.conditions[0].message,
        "deleting namespaces: nghean-stttt-prod"
    );

    cms.patch(
        "slow",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"finalizers": null}})),
    )
    .await?;
    let tenants = c.tenants();
    eventually("the tenant gone", || async {
        tenants
            .get_opt("nghean-stttt")
            .await
            .ok()?
            .is_none()
            .then_some(())
    })
    .await?;
    assert!(namespaces.get_opt("nghean-stttt-prod").await?.is_none());
    c.stop_operators().await;
    Ok(())
}

const SOTC: &str = r#"
apiVersion: govcloud.io/v1alpha1
kind: Tenant
metadata: { name: nghean-sotc }
spec:
  displayName: Sở Tài chính Nghệ An
  organization: nghe-an
  owners: [ { kind: Group, name: "nghean:sotc:admins" } ]
  namespaces:
    - { name: prod, quota: { cpu: "4", memory: 16Gi, storage: 100Gi, pods: 50 } }
  network: { allowFrom: [ { tenant: nghean-stttt, namespace: prod, ports: [443, 8443] } ] }
  billing: { plan: Usage }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_are_isolated_except_for_an_explicit_link() -> TestResult {
    let mut c = Cluster::new().await?;
    c.start_operator()?;
    create(&c, STTTT).await?;
    create(&c, SOTC).await?;
    phase_is(&c, "nghean-stttt", Phase::Ready).await?;
    let sotc = phase_is(&c, "nghean-sotc", Phase::Ready).await?;
    let links = sotc
        .status
        .unwrap_or_default()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "LinksResolved")
        .ok_or("no LinksResolved")?;
    assert_eq!(links.status, "True");

    // Each tenant's owners are bound only in their own namespaces.
    for (ns, owner) in [
        ("nghean-stttt-prod", "nghean:stttt:admins"),
        ("nghean-sotc-prod", "nghean:sotc:admins"),
    ] {
        let b = Api::<RoleBinding>::namespaced(c.client.clone(), ns)
            .get("govcloud-owners")
            .await?;
        assert_eq!(
            b.subjects
                .unwrap_or_default()
                .iter()
                .map(|s| s.name.as_str())
                .collect::<Vec<_>>(),
            [owner]
        );
    }
    // Same-tenant traffic selects only the tenant itself.
    let same = Api::<NetworkPolicy>::namespaced(c.client.clone(), "nghean-sotc-prod")
        .get("govcloud-allow-same-tenant")
        .await?;
    let from = same.spec.and_then(|s| s.ingress).unwrap_or_default()[0]
        .from
        .clone()
        .unwrap_or_default();
    assert_eq!(
        from[0]
            .namespace_selector
            .clone()
            .and_then(|s| s.match_labels),
        Some(BTreeMap::from([(
            "govcloud.io/tenant".into(),
            "nghean-sotc".into()
        )]))
    );

    // The link: sotc lets stttt/prod in on 443 and 8443; stttt/prod (only) gets the egress to sotc.
    let inbound = Api::<NetworkPolicy>::namespaced(c.client.clone(), "nghean-sotc-prod")
        .get("govcloud-link-from.nghean-stttt.prod")
        .await?;
    let rule = inbound
        .spec
        .and_then(|s| s.ingress)
        .unwrap_or_default()
        .remove(0);
    let ports: Vec<String> = rule
        .ports
        .unwrap_or_default()
        .iter()
        .filter_map(|p| p.port.as_ref())
        .map(|p| format!("{p:?}"))
        .collect();
    assert_eq!(ports, ["Int(443)", "Int(8443)"]);
    let prod = Api::<NetworkPolicy>::namespaced(c.client.clone(), "nghean-stttt-prod");
    eventually("egress from stttt/prod to sotc", || async {
        prod.get_opt("govcloud-link-to.nghean-sotc")
            .await
            .ok()?
            .map(|_| ())
    })
    .await?;
    let staging = Api::<NetworkPolicy>::namespaced(c.client.clone(), "nghean-stttt-staging");
    assert!(
        staging
            .get_opt("govcloud-link-to.nghean-sotc")
            .await?
            .is_none(),
        "staging was not granted"
    );

    // Revoking the grant closes both ends.
    c.tenants()
        .patch(
            "nghean-sotc",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"network": {"allowFrom": []}}})),
        )
        .await?;
    eventually("the link closed on both ends", || async {
        let inbound = Api::<NetworkPolicy>::namespaced(c.client.clone(), "nghean-sotc-prod")
            .get_opt("govcloud-link-from.nghean-stttt.prod")
            .await
            .ok()?;
        let outbound = prod.get_opt("govcloud-link-to.nghean-sotc").await.ok()?;
        (inbound.is_none() && outbound.is_none()).then_some(())
    })
    .await?;
    c.stop_operators().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_grant_to_a_missing_tenant_is_reported_until_it_exists() -> TestResult {
    let mut c = Cluster::new().await?;
    c.start_operator()?;
    create(&c, SOTC).await?;
    let api = c.tenants();
    eventually("LinksResolved=False naming the missing tenant", || async {
        let t = api.get("nghean-sotc").await.ok()?;
        let cond = t
            .status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "LinksResolved")?;
        (cond.status == "False"
            && cond.message
                == "spec.network.allowFrom[0].tenant: tenant \"nghean-stttt\" does not exist")
            .then_some(())
    })
    .await?;
    create(&c, STTTT).await?;
    eventually("LinksResolved=True once it exists", || async {
        let t = api.get("nghean-sotc").await.ok()?;
        (t.status?
            .conditions
            .into_iter()
            .find(|c| c.type_ == "LinksResolved")?
            .status
            == "True")
            .then_some(())
    })
    .await?;
    c.stop_operators().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_crd_schema_refuses_what_it_promises() -> TestResult {
    let c = Cluster::new().await?;
    let gvk = kube::core::GroupVersionKind::gvk("govcloud.io", "v1alpha1", "Tenant");
    let raw: Api<kube::core::DynamicObject> =
        Api::all_with(c.client.clone(), &kube::core::ApiResource::from_gvk(&gvk));
    let mut bad: serde_json::Value = serde_yaml::from_str(STTTT)?;
    bad["spec"]["podSecurity"] = json!("privileged");
    bad["spec"]["namespaces"][1]["name"] = json!("prod");
    bad["spec"]["namespaces"][0]["quota"]["cpu"] = json!("eight");
    bad["spec"]["organization"] = json!("Nghe An");
    let refused = raw
        .create(&PostParams::default(), &serde_json::from_value(bad)?)
        .await;
    let Err(kube::Error::Api(status)) = refused else {
        return Err(format!("the API must refuse it: {refused:?}").into());
    };
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    for expected in [
        "spec.podSecurity: Unsupported value: \"privileged\": supported values: \"restricted\", \"baseline\"",
        "spec.namespaces[1]: Duplicate value: {\"name\":\"prod\"}",
        "spec.namespaces[0].quota.cpu: Invalid value: \"eight\"",
        "spec.organization: Invalid value: \"Nghe An\"",
    ] {
        assert!(
            status.message.contains(expected),
            "missing {expected:?} in {}",
            status.message
        );
    }
    // Defaults come from the schema: limits and podSecurity are filled in.
    let mut minimal: serde_json::Value = serde_yaml::from_str(STTTT)?;
    minimal["spec"]
        .as_object_mut()
        .ok_or("spec")?
        .remove("network");
    let created = raw
        .create(&PostParams::default(), &serde_json::from_value(minimal)?)
        .await?;
    assert_eq!(created.data["spec"]["podSecurity"], "restricted");
    assert_eq!(created.data["spec"]["limits"]["default"]["memory"], "512Mi");
    Ok(())
}
