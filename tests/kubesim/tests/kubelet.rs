//! The simulated scheduler and kubelet, and the resource metrics API, as kubectl 1.35 sees them.

mod support;

use std::path::Path;

use serde_json::Value;
use support::{ok, run, stderr, stdout, tool};

fn kubectl(dir: &Path, args: &[&str]) -> std::process::Output {
    run(&tool("kubectl"), &dir.join("kubeconfig"), dir, args)
}

fn pod_file(dir: &Path, name: &str, cpu: &str) -> String {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: a\n  labels: {{app: {name}}}\nspec:\n  containers:\n  - name: app\n    image: nginx\n    resources:\n      requests: {{cpu: {cpu}, memory: 64Mi}}\n"
        ),
    )
    .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    path.display().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn pods_run_report_usage_and_go_away_as_in_a_cluster() {
    let sim = kubesim::KubeSim::start()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path().to_path_buf();
    sim.write_kubeconfig(&d.join("kubeconfig"))
        .unwrap_or_else(|e| panic!("{e}"));
    let k = |args: Vec<String>| {
        let d = d.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                kubectl(&d, &args)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();

    ok(k(s(&["create", "namespace", "a"])).await, "kubectl");
    let web = pod_file(&d, "web", "500m");
    ok(k(s(&["apply", "-f", &web])).await, "kubectl");
    // kubectl waits on a watch until the kubelet has the pod running
    ok(
        k(s(&[
            "wait",
            "-n",
            "a",
            "--for=jsonpath={.status.phase}=Running",
            "pod/web",
            "--timeout=20s",
        ]))
        .await,
        "kubectl",
    );
    let pod: Value = serde_json::from_str(&stdout(
        &k(s(&["get", "-n", "a", "pod", "web", "-o", "json"])).await,
    ))
    .unwrap_or_default();
    assert!(
        pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| n.starts_with("kubesim-node-")),
        "{pod}"
    );
    assert!(pod["status"]["startTime"].is_string(), "{pod}");
    // requests without limits
    assert_eq!(pod["status"]["qosClass"], "Burstable", "{pod}");
    assert!(
        pod["status"]["containerStatuses"][0]["state"]["running"]["startedAt"].is_string(),
        "{pod}"
    );

    // The resource metrics API: what the test sets, through discovery, get --raw and top.
    sim.set_pod_usage("a", "web", "250m", "100Mi");
    let line = ok(
        k(s(&["top", "pod", "-n", "a", "--no-headers"])).await,
        "top pod",
    );
    assert!(
        line.contains("web") && line.contains("250m") && line.contains("100Mi"),
        "{line}"
    );
    let raw: Value = serde_json::from_str(&stdout(
        &k(s(&[
            "get",
            "--raw",
            "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods/web",
        ]))
        .await,
    ))
    .unwrap_or_default();
    assert_eq!(raw["kind"], "PodMetrics");
    assert_eq!(raw["containers"][0]["usage"]["cpu"], "250m");
    let nodes = ok(k(s(&["top", "node", "--no-headers"])).await, "top node");
    assert!(nodes.contains("250m"), "{nodes}");
    let write = k(s(&[
        "delete",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods/web",
    ]))
    .await;
    assert!(!write.status.success(), "metrics are read-only");

    // A pod that fits no node waits, and says why.
    let huge = pod_file(&d, "huge", "64");
    ok(k(s(&["apply", "-f", &huge])).await, "kubectl");
    ok(
        k(s(&[
            "wait",
            "-n",
            "a",
            "--for=jsonpath={.status.conditions[0].reason}=Unschedulable",
            "pod/huge",
            "--timeout=20s",
        ]))
        .await,
        "kubectl",
    );
    let reason = k(s(&[
        "get",
        "-n",
        "a",
        "pod",
        "huge",
        "-o",
        "jsonpath={.status.phase} {.status.conditions[0].reason}",
    ]))
    .await;
    assert_eq!(stdout(&reason), "Pending Unschedulable");
    let top = stdout(&k(s(&["top", "pod", "-n", "a", "--no-headers"])).await);
    assert!(!top.contains("huge"), "a pending pod has no metrics: {top}");

    // Deletion: kubectl waits until the kubelet has removed the pod.
    ok(
        k(s(&["delete", "-n", "a", "pod", "web", "--timeout=20s"])).await,
        "kubectl",
    );
    let gone = k(s(&["get", "-n", "a", "pod", "web"])).await;
    assert!(stderr(&gone).contains("NotFound"), "{}", stderr(&gone));
    let raw = k(s(&[
        "get",
        "--raw",
        "/apis/metrics.k8s.io/v1beta1/namespaces/a/pods/web",
    ]))
    .await;
    assert!(!raw.status.success(), "a deleted pod has no metrics");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_without_metrics_server_serves_no_metrics_api() {
    let config = kubesim::Config {
        metrics_api: false,
        ..kubesim::Config::default()
    };
    let sim = kubesim::KubeSim::start_with(
        config,
        "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path().to_path_buf();
    sim.write_kubeconfig(&d.join("kubeconfig"))
        .unwrap_or_else(|e| panic!("{e}"));
    let out = tokio::task::spawn_blocking(move || kubectl(&d, &["top", "pod", "-A"]))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("Metrics API not available"),
        "{}",
        stderr(&out)
    );
}
