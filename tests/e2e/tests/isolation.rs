//! No tenant can take, change or delete another tenant's namespace, or the platform's: tried from
//! the other side, with Tenants applied through kubectl and through a `kube::Client`, in both
//! creation orders and across organizations.

use govcloud_e2e::{Cluster, Kubectl, TestResult, eventually};
use govcloud_tenant::crd::{Phase, Tenant};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::RoleBinding;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;

/// A tenant of `organization` with one namespace `short`, owned by the group `<name>:admins`.
fn tenant_yaml(name: &str, organization: &str, short: &str, pods: u32) -> String {
    format!(
        r#"
apiVersion: govcloud.io/v1alpha1
kind: Tenant
metadata: {{ name: {name} }}
spec:
  displayName: "Agency {name}"
  organization: {organization}
  owners: [ {{ kind: Group, name: "{name}:admins" }} ]
  namespaces:
    - {{ name: {short}, quota: {{ cpu: "2", memory: 4Gi, storage: 10Gi, pods: {pods} }} }}
  billing: {{ plan: Reserved }}
"#
    )
}

async fn create(client: &Client, yaml: &str) -> TestResult<Tenant> {
    let t: Tenant = serde_yaml::from_str(yaml)?;
    Ok(Api::<Tenant>::all(client.clone())
        .create(&PostParams::default(), &t)
        .await?)
}

/// Waits for the tenant's status to describe its current generation, and answers it.
async fn settled(client: &Client, name: &str, phase: Phase) -> TestResult<Tenant> {
    let api = Api::<Tenant>::all(client.clone());
    eventually(&format!("{name} to be {phase:?}"), || async {
        let t = api.get(name).await.ok()?;
        let s = t.status.as_ref()?;
        (s.phase == Some(phase) && s.observed_generation == t.metadata.generation).then_some(t)
    })
    .await
    .map_err(Into::into)
}

fn ready_condition(t: &Tenant) -> (String, String, String) {
    t.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
        .unwrap_or_default()
}

async fn delete_and_wait(client: &Client, name: &str) -> TestResult {
    let api = Api::<Tenant>::all(client.clone());
    api.delete(name, &DeleteParams::default()).await?;
    eventually(&format!("tenant {name} gone"), || async {
        api.get_opt(name).await.ok()?.is_none().then_some(())
    })
    .await
    .map_err(Into::into)
}

/// Everything a namespace's holder relies on, as it stands: the labels, the owners' binding
/// subjects, the quota's pods and the deployer's presence.
async fn holding(client: &Client, ns: &str) -> TestResult<String> {
    let n = Api::<Namespace>::all(client.clone()).get(ns).await?;
    let labels = n.labels().clone();
    let owners = Api::<RoleBinding>::namespaced(client.clone(), ns)
        .get("govcloud-owners")
        .await?
        .subjects
        .unwrap_or_default()
        .into_iter()
        .map(|s| s.name)
        .collect::<Vec<_>>();
    let pods = Api::<ResourceQuota>::namespaced(client.clone(), ns)
        .get("govcloud-quota")
        .await?
        .spec
        .and_then(|s| s.hard)
        .and_then(|h| h.get("pods").map(|q| q.0.clone()))
        .unwrap_or_default();
    let owner_refs = n
        .owner_references()
        .iter()
        .map(|o| o.name.clone())
        .collect::<Vec<_>>();
    Ok(format!(
        "tenant={:?} org={:?} owners={owners:?} pods={pods} ownerRefs={owner_refs:?}",
        labels.get("govcloud.io/tenant"),
        labels.get("govcloud.io/organization"),
    ))
}

/// Tenant `first` holds `<first>-<first_ns>`; `second` asks for the same Kubernetes name from
/// another organization. The second gets a NamespaceConflict, changes nothing of the holder, and
/// deleting it leaves the holder's namespace in place.
async fn collide(first: (&str, &str), second: (&str, &str)) -> TestResult {
    let mut c = Cluster::new().await?;
    c.start_operator()?;
    let full = format!("{}-{}", first.0, first.1);
    assert_eq!(full, format!("{}-{}", second.0, second.1));
    create(&c.client, &tenant_yaml(first.0, "nghe-an", first.1, 10)).await?;
    settled(&c.client, first.0, Phase::Ready).await?;
    let before = holding(&c.client, &full).await?;
    assert!(
        before.contains(&format!("tenant=Some({:?})", first.0)),
        "{before}"
    );

    // The newcomer also has a namespace of its own, which it gets.
    let mut yaml = tenant_yaml(second.0, "bo-tai-chinh", second.1, 1);
    yaml = yaml.replace(
        "  billing:",
        "    - { name: own, quota: { cpu: \"1\", memory: 1Gi, storage: 1Gi, pods: 5 } }\n  billing:",
    );
    create(&c.client, &yaml).await?;
    let loser = settled(&c.client, second.0, Phase::Degraded).await?;
    let (status, reason, message) = ready_condition(&loser);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "NamespaceConflict")
    );
    assert!(message.contains(&full), "{message}");
    assert!(message.contains("another tenant"), "{message}");
    let own = format!("{}-own", second.0);
    let own_ns = Api::<Namespace>::all(c.client.clone()).get(&own).await?;
    assert_eq!(
        own_ns
            .labels()
            .get("govcloud.io/tenant")
            .map(String::as_str),
        Some(second.0)
    );

    // After another full reconcile of the loser (its spec edited, so its generation moves and
    // the operator reports it observed), the holder is exactly as it was, and still Ready.
    let tenants = Api::<Tenant>::all(c.client.clone());
    let edited = tenants
        .patch(
            second.0,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"displayName": "Edited to be reconciled again"}})),
        )
        .await?;
    let generation = edited.metadata.generation;
    eventually("the loser reconciled at its new generation", || async {
        let t = tenants.get(second.0).await.map_err(|e| e.to_string())?;
        let observed = t.status.and_then(|s| s.observed_generation);
        (observed == generation)
            .then_some(())
            .ok_or(format!("observed {observed:?}, generation {generation:?}"))
    })
    .await?;
    assert_eq!(holding(&c.client, &full).await?, before);
    settled(&c.client, first.0, Phase::Ready).await?;
    let events = Api::<k8s_openapi::api::events::v1::Event>::all(c.client.clone())
        .list(&ListParams::default())
        .await?;
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("NamespaceConflict")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(second.0)),
        "the loser gets a Warning event"
    );

    // Deleting the loser removes its own namespace, not the holder's.
    delete_and_wait(&c.client, second.0).await?;
    let namespaces = Api::<Namespace>::all(c.client.clone());
    assert!(namespaces.get_opt(&own).await?.is_none());
    assert_eq!(holding(&c.client, &full).await?, before);
    settled(&c.client, first.0, Phase::Ready).await?;

    // Once the holder goes, the name is free: a new tenant may have it.
    delete_and_wait(&c.client, first.0).await?;
    create(
        &c.client,
        &tenant_yaml(second.0, "bo-tai-chinh", second.1, 1),
    )
    .await?;
    settled(&c.client, second.0, Phase::Ready).await?;
    assert!(
        holding(&c.client, &full)
            .await?
            .contains(&format!("tenant=Some({:?})", second.0))
    );
    c.stop_operators().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_longer_tenant_name_holds_first() -> TestResult {
    collide(("a-b", "c"), ("a", "b-c")).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shorter_tenant_name_holds_first() -> TestResult {
    collide(("a", "b-c"), ("a-b", "c")).await
}

/// What a takeover of a platform namespace would change, as it stands.
async fn untouched(client: &Client, ns: &str) -> TestResult<String> {
    let n = Api::<Namespace>::all(client.clone()).get(ns).await?;
    let policies = Api::<NetworkPolicy>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .len();
    let quotas = Api::<ResourceQuota>::namespaced(client.clone(), ns)
        .list(&ListParams::default())
        .await?
        .items
        .len();
    let deployer = Api::<ServiceAccount>::namespaced(client.clone(), ns)
        .get_opt("deployer")
        .await?
        .is_some();
    Ok(format!(
        "labels={:?} ownerRefs={} policies={policies} quotas={quotas} deployer={deployer}",
        n.labels(),
        n.owner_references().len()
    ))
}

/// Through kubectl, as a cluster admin would: Tenants that name the platform's namespaces, or a
/// namespace someone made by hand, get a NamespaceConflict, write nothing into them, and
/// deleting them deletes none of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn platform_and_foreign_namespaces_are_never_a_tenants() -> TestResult {
    let mut c = Cluster::new().await?;
    c.start_operator()?;
    let kubectl = Kubectl::new(&c.sim)?;
    kubectl
        .ok(&["create", "namespace", "monitoring-prod"], None)
        .await?;
    // (tenant, its namespace, the namespace it would be, whether it exists yet)
    let cases = [
        ("kube", "system", "kube-system", true),
        ("kube", "public", "kube-public", true),
        ("kube", "node-lease", "kube-node-lease", true),
        ("kube", "future", "kube-future", false),
        ("govcloud", "system", "govcloud-system", false),
        ("ingress", "nginx", "ingress-nginx", false),
        ("monitoring", "prod", "monitoring-prod", true),
    ];
    for (tenant, short, full, exists) in cases {
        let before = if exists {
            Some(untouched(&c.client, full).await?)
        } else {
            None
        };
        kubectl
            .ok(
                &["apply", "-f", "-"],
                Some(&tenant_yaml(tenant, "nghe-an", short, 1)),
            )
            .await?;
        let t = settled(&c.client, tenant, Phase::Degraded).await?;
        let (status, reason, message) = ready_condition(&t);
        assert_eq!(
            (status.as_str(), reason.as_str()),
            ("False", "NamespaceConflict"),
            "{full}"
        );
        assert!(message.contains(full), "{message}");
        let shown = kubectl
            .ok(
                &["get", "tenant", tenant, "-o", "jsonpath={.status.phase}"],
                None,
            )
            .await?;
        assert_eq!(shown, "Degraded");
        match &before {
            Some(b) => assert_eq!(&untouched(&c.client, full).await?, b, "{full} changed"),
            None => assert!(
                Api::<Namespace>::all(c.client.clone())
                    .get_opt(full)
                    .await?
                    .is_none(),
                "{full} was created for a tenant"
            ),
        }
        kubectl
            .ok(
                &["delete", "tenant", tenant, "--wait=true", "--timeout=30s"],
                None,
            )
            .await?;
        match &before {
            Some(b) => assert_eq!(&untouched(&c.client, full).await?, b, "{full} after delete"),
            None => assert!(
                Api::<Namespace>::all(c.client.clone())
                    .get_opt(full)
                    .await?
                    .is_none()
            ),
        }
    }
    c.stop_operators().await;
    Ok(())
}

/// Two tenants racing for one name from cold: exactly one holds it, the other reports the
/// conflict, and the namespace's labels and owner agree on who holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_race_for_one_name_has_one_winner() -> TestResult {
    let mut c = Cluster::new().await?;
    // Both Tenants exist before the operator starts, so both are reconciled at once.
    create(&c.client, &tenant_yaml("x-y", "nghe-an", "z", 3)).await?;
    create(&c.client, &tenant_yaml("x", "ha-tinh", "y-z", 4)).await?;
    c.start_operator()?;
    let api = Api::<Tenant>::all(c.client.clone());
    let phases = eventually("both tenants settled", || async {
        let mut out = Vec::new();
        for name in ["x-y", "x"] {
            let t = api.get(name).await.ok()?;
            let s = t.status.as_ref()?;
            if s.observed_generation != t.metadata.generation
                || !matches!(s.phase, Some(Phase::Ready | Phase::Degraded))
            {
                return None;
            }
            out.push((name, s.phase?));
        }
        Some(out)
    })
    .await?;
    let winners: Vec<&str> = phases
        .iter()
        .filter(|(_, p)| *p == Phase::Ready)
        .map(|(n, _)| *n)
        .collect();
    assert_eq!(winners.len(), 1, "{phases:?}");
    let held = holding(&c.client, "x-y-z").await?;
    assert!(
        held.contains(&format!("tenant=Some({:?})", winners[0])),
        "{held}"
    );
    assert!(
        held.contains(&format!("ownerRefs=[{:?}]", winners[0])),
        "{held}"
    );
    c.stop_operators().await;
    Ok(())
}
