//! Two operator replicas: only the lease holder reconciles, and the other takes over when it stops.

use govcloud_e2e::{Cluster, TestResult, eventually, tenant};
use govcloud_tenant::crd::Phase;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, PostParams};

const TENANT: &str = r#"
apiVersion: govcloud.io/v1alpha1
kind: Tenant
metadata: { name: NAME }
spec:
  displayName: An agency
  organization: nghe-an
  namespaces: [ { name: prod, quota: { cpu: "1", memory: 1Gi, storage: 1Gi, pods: 5 } } ]
  billing: { plan: Reserved }
"#;

async fn holder(c: &Cluster) -> Option<String> {
    let lease = Api::<Lease>::namespaced(c.client.clone(), "default")
        .get_opt("govcloud-operator")
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

/// Who published Events about a tenant.
async fn reporters(c: &Cluster, name: &str) -> Vec<String> {
    let events = Api::<Event>::all(c.client.clone())
        .list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default();
    let mut who: Vec<String> = events
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reporting_instance)
        .collect();
    who.sort();
    who.dedup();
    who
}

async fn ready(c: &Cluster, name: &str) -> TestResult {
    c.tenants()
        .create(
            &PostParams::default(),
            &tenant(&TENANT.replace("NAME", name))?,
        )
        .await?;
    let api = c.tenants();
    eventually(format!("{name} Ready"), || async {
        (api.get(name).await.ok()?.status?.phase == Some(Phase::Ready)).then_some(())
    })
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_leader_reconciles_and_the_other_takes_over() -> TestResult {
    let mut c = Cluster::new().await?;
    c.start_replica("replica-a")?;
    let first = eventually("a leader", || holder(&c)).await?;
    assert_eq!(first, "replica-a");
    c.start_replica("replica-b")?;
    ready(&c, "first").await?;
    assert_eq!(
        reporters(&c, "first").await,
        ["replica-a"],
        "the follower wrote nothing"
    );
    assert_eq!(
        holder(&c).await.as_deref(),
        Some("replica-a"),
        "the leader keeps renewing"
    );

    // The leader stops (and releases the lease): the follower takes over.
    c.stop_replica(0).await;
    eventually("replica-b to lead", || async {
        (holder(&c).await? == "replica-b").then_some(())
    })
    .await?;
    ready(&c, "second").await?;
    assert_eq!(reporters(&c, "second").await, ["replica-b"]);
    let lease = Api::<Lease>::namespaced(c.client.clone(), "default")
        .get("govcloud-operator")
        .await?;
    assert_eq!(lease.spec.and_then(|s| s.lease_transitions), Some(1));
    c.stop_operators().await;
    Ok(())
}
