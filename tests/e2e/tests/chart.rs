//! The Helm chart, rendered by the real `helm` (`$HELM`) and applied with kubectl to kubesim:
//! every object it makes is accepted by an API server, and the layout is the HA one (two
//! operator replicas, PDBs, the guards, least-privilege roles). kubesim does not evaluate RBAC
//! or CEL, so what this shows is that the objects are well-formed and complete, not that the
//! roles suffice at run time (see the note on the chart's issue).

use govcloud_e2e::chart::{apply_all, helm_template, token_of};
use govcloud_e2e::{Kubectl, TestResult};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::Api;

use govcloud_e2e::chart::CHART;

#[tokio::test]
async fn the_rendered_chart_applies_to_an_api_server() -> TestResult {
    let sim = kubesim::KubeSim::start().await?;
    let kubectl = Kubectl::new(&sim)?;
    kubectl
        .ok(&["create", "namespace", "govcloud-system"], None)
        .await?;
    let production = format!("{CHART}/ci/production-values.yaml");
    let rendered = helm_template(&["-f", &production])?;
    // The hook Job is applied like the rest (helm runs it first on a real install).
    let out = kubectl
        .ok(
            &["apply", "--server-side", "--field-manager=helm", "-f", "-"],
            Some(&rendered),
        )
        .await;
    // The Prometheus Operator's kinds are not in a bare cluster: apply all but those.
    let out = match out {
        Ok(out) => out,
        Err(_) => {
            let without: String = rendered
                .split("\n---")
                .filter(|doc| !doc.contains("monitoring.coreos.com/"))
                .collect::<Vec<_>>()
                .join("\n---");
            kubectl
                .ok(
                    &["apply", "--server-side", "--field-manager=helm", "-f", "-"],
                    Some(&without),
                )
                .await?
        }
    };
    for made in [
        "customresourcedefinition.apiextensions.k8s.io/tenants.govcloud.io",
        "deployment.apps/govcloud-operator",
        "deployment.apps/govcloud-api",
        "poddisruptionbudget.policy/govcloud-operator",
        "clusterrole.rbac.authorization.k8s.io/govcloud-operator",
        "clusterrole.rbac.authorization.k8s.io/govcloud-api",
        "role.rbac.authorization.k8s.io/govcloud-operator-leader",
        "networkpolicy.networking.k8s.io/govcloud-platform",
        "validatingadmissionpolicy.admissionregistration.k8s.io/govcloud-managed-objects",
        "validatingadmissionpolicybinding.admissionregistration.k8s.io/govcloud-pull-always",
        "job.batch/govcloud-migrate",
        "ingress.networking.k8s.io/govcloud-api",
    ] {
        assert!(out.contains(made), "{made} missing from:\n{out}");
    }
    let client = sim.client()?;
    let operator = Api::<Deployment>::namespaced(client.clone(), "govcloud-system")
        .get("govcloud-operator")
        .await?;
    let spec = operator.spec.unwrap_or_default();
    assert_eq!(spec.replicas, Some(2), "two operator replicas, one leading");
    let pod = spec.template.spec.unwrap_or_default();
    let security = pod.security_context.unwrap_or_default();
    assert_eq!(security.run_as_non_root, Some(true));
    let container = &pod.containers[0];
    let c = container.security_context.clone().unwrap_or_default();
    assert_eq!(c.read_only_root_filesystem, Some(true));
    assert_eq!(c.allow_privilege_escalation, Some(false));
    assert_eq!(
        c.capabilities.and_then(|k| k.drop),
        Some(vec!["ALL".to_string()])
    );
    // The API's role reaches no Secrets, ConfigMaps or Pods anywhere, and writes only Tenants.
    let api_role = Api::<ClusterRole>::all(client).get("govcloud-api").await?;
    for rule in api_role.rules.unwrap_or_default() {
        let resources = rule.resources.unwrap_or_default();
        assert!(
            !resources
                .iter()
                .any(|r| ["secrets", "configmaps", "pods", "*"].contains(&r.as_str())),
            "{resources:?}"
        );
        let writes = rule
            .verbs
            .iter()
            .any(|v| ["create", "patch", "update", "delete"].contains(&v.as_str()));
        if writes {
            assert!(
                resources
                    .iter()
                    .all(|r| ["tenants", "serviceaccounts/token", "events"].contains(&r.as_str())),
                "the API writes only Tenants, deployer tokens and Events: {resources:?}"
            );
        }
    }
    Ok(())
}

/// Server-side applies every object of a multi-document YAML, finding each kind by discovery.
/// A Tenant for the checks: the documented example without its link.
fn example(name: &str) -> TestResult<govcloud_tenant::crd::Tenant> {
    let yaml = include_str!("../../../docs/examples/tenant.yaml").replace("nghean-stttt", name);
    let mut t: govcloud_tenant::crd::Tenant = serde_yaml::from_str(&yaml)?;
    t.spec.network.allow_from.clear();
    Ok(t)
}

/// The operator's and the API's ServiceAccounts, each with its own token against a simulator
/// that enforces RBAC, can do their work with exactly the chart's roles — and a weakened role
/// makes the operator's work fail, so the check can fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_charts_service_accounts_are_enough_for_their_work() -> TestResult {
    use govcloud_tenant::crd::{Phase, Tenant};
    use k8s_openapi::api::core::v1::Namespace;
    use k8s_openapi::api::networking::v1::NetworkPolicy;
    use kube::api::{Patch, PatchParams, PostParams};
    use std::sync::Arc;

    let config = kubesim::Config {
        authorization: true,
        ..kubesim::Config::default()
    };
    let sim = kubesim::KubeSim::start_with(config, "127.0.0.1:0".parse()?).await?;
    // kubectl sends no bearer token over plain HTTP, so the administrator applies the chart
    // with kube-rs (server-side apply, as helm 4 does).
    let admin = sim.client()?;
    Api::<Namespace>::all(admin.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(serde_json::json!({"metadata": {"name": "govcloud-system"}}))?,
        )
        .await?;
    apply_all(&admin, &helm_template(&[])?).await?;

    // The operator, as its Deployment runs it: its own token, nothing else.
    let operator = sim.client_with_token(&token_of(&admin, "govcloud-operator").await?)?;
    let denied = Api::<k8s_openapi::api::core::v1::Secret>::all(operator.clone())
        .list(&Default::default())
        .await;
    assert!(denied.is_err(), "the operator reads no Secrets");
    // Metering's reads: pods and claims watched cluster-wide, the pods' resource metrics listed;
    // and nothing more of pods than reading.
    Api::<k8s_openapi::api::core::v1::Pod>::all(operator.clone())
        .list(&Default::default())
        .await?;
    Api::<k8s_openapi::api::core::v1::PersistentVolumeClaim>::all(operator.clone())
        .list(&Default::default())
        .await?;
    let metrics = kube::api::ApiResource {
        group: "metrics.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "metrics.k8s.io/v1beta1".into(),
        kind: "PodMetrics".into(),
        plural: "pods".into(),
    };
    Api::<kube::api::DynamicObject>::all_with(operator.clone(), &metrics)
        .list(&Default::default())
        .await?;
    assert!(
        Api::<k8s_openapi::api::core::v1::Pod>::namespaced(operator.clone(), "default")
            .delete("anything", &Default::default())
            .await
            .is_err_and(|e| matches!(e, kube::Error::Api(ref s) if s.code == 403)),
        "the operator deletes no pods"
    );
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let telemetry = Arc::new(govcloud_operator::telemetry::Telemetry::default());
    let task = tokio::spawn(govcloud_operator::controller::run(
        operator,
        govcloud_operator::controller::Settings::default(),
        telemetry.clone(),
        async {
            let _ = stop_rx.await;
        },
    ));
    let tenants = Api::<Tenant>::all(admin.clone());
    tenants
        .create(&PostParams::default(), &example("least-priv")?)
        .await?;
    govcloud_e2e::eventually("the tenant Ready under the operator's own role", || async {
        let t = tenants.get("least-priv").await.map_err(|e| e.to_string())?;
        let s = t.status.unwrap_or_default();
        (s.phase == Some(Phase::Ready)).then_some(()).ok_or(format!(
            "{:?} {:?}",
            s.phase,
            s.conditions.first().map(|c| &c.message)
        ))
    })
    .await?;
    let policies = Api::<NetworkPolicy>::namespaced(admin.clone(), "least-priv-prod")
        .list(&Default::default())
        .await?;
    assert!(
        policies.items.len() >= 4,
        "isolation policies made: {}",
        policies.items.len()
    );

    // The API, as its Deployment runs it: apply and watch Tenants, see Nodes and Namespaces,
    // issue a deployer token, publish an Event, delete a Tenant.
    let api_client = sim.client_with_token(&token_of(&admin, "govcloud-api").await?)?;
    let target = govcloud_api::cluster::KubeconfigTarget {
        server: sim.url(),
        certificate_authority_data: None,
        insecure_skip_tls_verify: false,
    };
    let (cluster, watches) = govcloud_api::cluster::Cluster::new(api_client, target);
    let watching = tokio::spawn(watches);
    assert!(
        cluster
            .wait_for_nodes(std::time::Duration::from_secs(10))
            .await
    );
    assert!(cluster.allocatable().is_some(), "Nodes readable");
    let mut by_api = example("via-api")?;
    by_api.metadata.labels = Some(
        [(
            "govcloud.io/organization".to_string(),
            "nghe-an".to_string(),
        )]
        .into(),
    );
    cluster.apply_tenant(&by_api).await?;
    govcloud_e2e::eventually("the API's watches to see its tenant made", || async {
        let reserved: Vec<String> = Vec::new();
        (cluster
            .tenant_status("via-api")
            .is_some_and(|s| s.phase == Some(Phase::Ready))
            && cluster.namespace_is_own("via-api-prod", "via-api", &reserved))
        .then_some(())
        .ok_or("not yet")
    })
    .await?;
    let (token, _) = cluster
        .service_account_token(
            "via-api-prod",
            "deployer",
            std::time::Duration::from_secs(600),
        )
        .await?;
    assert!(!token.is_empty());
    cluster
        .warn_on_tenant(
            &by_api,
            "SpecReverted",
            "a test of the API's Event permission".into(),
        )
        .await;
    let events = Api::<k8s_openapi::api::events::v1::Event>::all(admin.clone())
        .list(&Default::default())
        .await?;
    assert!(
        events
            .items
            .iter()
            .any(|e| e.reason.as_deref() == Some("SpecReverted"))
    );
    assert!(cluster.delete_tenant("via-api").await.is_ok());
    // Its token reaches no other ServiceAccount's tokens than the deployers'.
    assert!(
        cluster
            .service_account_token(
                "least-priv-prod",
                "default",
                std::time::Duration::from_secs(600)
            )
            .await
            .is_err()
    );

    // Weakened (test only): without NetworkPolicies, the operator cannot isolate a tenant, and
    // says so; the check fails as it must.
    Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(admin.clone())
        .patch(
            "govcloud-operator",
            &PatchParams::default(),
            &Patch::<()>::Json(serde_json::from_value(
                serde_json::json!([{"op": "remove", "path": "/rules/4"}]),
            )?),
        )
        .await?;
    let role = Api::<k8s_openapi::api::rbac::v1::ClusterRole>::all(admin.clone())
        .get("govcloud-operator")
        .await?;
    assert!(
        !role.rules.unwrap_or_default().iter().any(|r| r
            .resources
            .clone()
            .unwrap_or_default()
            .contains(&"networkpolicies".to_string())),
        "the weakened role lost networkpolicies"
    );
    let apply_errors = || {
        let label = govcloud_operator::telemetry::ErrorLabels {
            category: "apply_object",
        };
        telemetry.reconcile_errors.get_or_create(&label).get()
    };
    let before = apply_errors();
    tenants
        .create(&PostParams::default(), &example("weakened")?)
        .await?;
    govcloud_e2e::eventually("the weakened operator to fail applying", || async {
        let failed = apply_errors();
        (failed > before)
            .then_some(())
            .ok_or(format!("{failed} apply errors"))
    })
    .await?;
    // And it says so on the Tenant, in the API server's words.
    govcloud_e2e::eventually("the weakened tenant Degraded with ApplyFailed", || async {
        let t = tenants.get("weakened").await.map_err(|e| e.to_string())?;
        let s = t.status.unwrap_or_default();
        let (reason, message) = s
            .conditions
            .first()
            .map(|c| (c.reason.clone(), c.message.clone()))
            .unwrap_or_default();
        (s.phase == Some(Phase::Degraded)
            && reason == "ApplyFailed"
            && message.starts_with("applying NetworkPolicy")
            && message.contains(
                "is forbidden: User \"system:serviceaccount:govcloud-system:govcloud-operator\"",
            ))
        .then_some(())
        .ok_or(format!("{:?} {reason} {message}", s.phase))
    })
    .await?;
    let namespace = Api::<Namespace>::all(admin)
        .get_opt("weakened-prod")
        .await?;
    assert!(namespace.is_some(), "what it may still do, it did");
    let _ = stop_tx.send(());
    let _ = task.await;
    watching.abort();
    Ok(())
}
