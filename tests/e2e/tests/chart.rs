//! The Helm chart, rendered by the real `helm` (`$HELM`) and applied with kubectl to kubesim:
//! every object it makes is accepted by an API server, and the layout is the HA one (two
//! operator replicas, PDBs, the guards, least-privilege roles). kubesim does not evaluate RBAC
//! or CEL, so what this shows is that the objects are well-formed and complete, not that the
//! roles suffice at run time (see the note on the chart's issue).

use std::process::Command;

use govcloud_e2e::{Kubectl, TestResult};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::rbac::v1::ClusterRole;
use kube::api::Api;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/govcloud");

fn helm_template(extra: &[&str]) -> TestResult<String> {
    let helm = std::env::var_os("HELM").unwrap_or_else(|| "helm".into());
    let out = Command::new(helm)
        .args([
            "template",
            "govcloud",
            CHART,
            "-n",
            "govcloud-system",
            "--include-crds",
        ])
        .args(extra)
        .output()?;
    if !out.status.success() {
        return Err(format!("helm template: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

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
