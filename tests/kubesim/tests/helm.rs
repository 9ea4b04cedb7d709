//! kubesim as helm 4 sees it: install, list and uninstall of a chart with a ConfigMap and a Deployment.

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, ListParams};
use kubesim::KubeSim;
use support::{ok, run, tool};

const CHART: &[(&str, &str)] = &[
    (
        "Chart.yaml",
        "apiVersion: v2\nname: hello\nversion: 0.1.0\nappVersion: \"1.0\"\n",
    ),
    ("values.yaml", "greeting: xin chao\nreplicas: 2\n"),
    (
        "templates/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-config\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
    ),
    (
        "templates/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\nspec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n          resources:\n            requests: {cpu: 100m, memory: 64Mi}\n            limits: {cpu: 200m, memory: 128Mi}\n",
    ),
];

// Multi-threaded: the helm process blocks this thread while the simulator serves it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helm_installs_lists_and_uninstalls_a_chart() -> Result<(), Box<dyn std::error::Error>> {
    let sim = KubeSim::start().await?;
    let dir = tempfile::tempdir()?;
    let kubeconfig = dir.path().join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)?;
    let chart = dir.path().join("hello");
    for (path, body) in CHART {
        let p = chart.join(path);
        std::fs::create_dir_all(p.parent().ok_or("no parent")?)?;
        std::fs::write(p, body)?;
    }
    let helm = tool("helm");
    let chart_arg = chart.to_string_lossy().into_owned();
    let helm_run = |args: &[&str]| run(&helm, &kubeconfig, dir.path(), args);

    let out = ok(
        helm_run(&[
            "install",
            "demo",
            &chart_arg,
            "--namespace",
            "default",
            "--set",
            "replicas=3",
        ]),
        "helm install",
    );
    assert!(out.contains("STATUS: deployed"), "{out}");

    let client = sim.client()?;
    let cm = Api::<ConfigMap>::namespaced(client.clone(), "default")
        .get("demo-config")
        .await?;
    assert_eq!(
        cm.data.and_then(|d| d.get("greeting").cloned()).as_deref(),
        Some("xin chao")
    );
    let deploy = Api::<Deployment>::namespaced(client.clone(), "default")
        .get("demo-web")
        .await?;
    assert_eq!(deploy.spec.and_then(|s| s.replicas), Some(3));
    let releases = Api::<Secret>::namespaced(client.clone(), "default")
        .list(&ListParams::default().labels("owner=helm,name=demo"))
        .await?;
    assert_eq!(
        releases.items.len(),
        1,
        "helm keeps its release in a Secret"
    );

    let listed: serde_json::Value = serde_json::from_str(&ok(
        helm_run(&["list", "--namespace", "default", "-o", "json"]),
        "helm list",
    ))?;
    assert_eq!(listed[0]["name"], "demo");
    assert_eq!(listed[0]["status"], "deployed");

    ok(
        helm_run(&["uninstall", "demo", "--namespace", "default"]),
        "helm uninstall",
    );
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), "default")
            .get_opt("demo-config")
            .await?
            .is_none()
    );
    assert!(
        Api::<Deployment>::namespaced(client.clone(), "default")
            .get_opt("demo-web")
            .await?
            .is_none()
    );
    let listed: serde_json::Value = serde_json::from_str(&ok(
        helm_run(&["list", "--namespace", "default", "-o", "json"]),
        "helm list",
    ))?;
    assert_eq!(listed, serde_json::json!([]));
    Ok(())
}
