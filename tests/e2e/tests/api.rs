//! The whole flow through real parts: the API on a socket (PostgreSQL, `#[sqlx::test]`), the
//! operator, the simulated cluster, and the real helm binary with the kubeconfig the API issues.
//!
//! An agency asks for more CPU, its province's IT department approves, the namespace's
//! ResourceQuota changes, the timeline and the audit log show it; then the agency installs a
//! chart into its namespace with the issued kubeconfig.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use govcloud_api::cluster::KubeconfigTarget;
use govcloud_e2e::{Cluster, TestResult, eventually};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::ResourceQuota;
use kube::api::Api;
use serde_json::{Value, json};
use sqlx::PgPool;

fn helm() -> PathBuf {
    std::env::var_os("HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("helm"))
}

struct Http {
    base: String,
    http: reqwest::Client,
    tokens: std::collections::BTreeMap<String, String>,
}

impl Http {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        role: &str,
        body: Option<Value>,
    ) -> TestResult<(u16, Value)> {
        let mut req = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.tokens.get(role).ok_or("no token")?);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }
}

fn chart() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/examples/hello-chart")
}

fn hard_cpu(q: &ResourceQuota) -> Option<String> {
    q.spec
        .as_ref()?
        .hard
        .as_ref()?
        .get("requests.cpu")
        .map(|v| v.0.clone())
}

#[sqlx::test(migrator = "govcloud_api::db::MIGRATOR")]
async fn an_agency_gets_more_cpu_and_deploys_with_helm(db: PgPool) -> TestResult {
    let mut cluster = Cluster::new().await?;
    cluster.start_operator()?;
    let target = KubeconfigTarget {
        server: cluster.sim.url(),
        certificate_authority_data: None,
        insecure_skip_tls_verify: false,
    };
    let (state, watches) = govcloud_api::serve::state(
        db,
        cluster.sim.client()?,
        target,
        None,
        govcloud_api::Settings::default(),
    );
    let dir = tempfile::tempdir()?;
    let tokens = govcloud_api::dev::seed::seed(&state, &dir.path().join("tokens.json")).await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(govcloud_api::serve::run(
        state,
        watches,
        listener,
        None,
        Duration::from_millis(500),
        async {
            let _ = stopped.await;
        },
    ));
    let api = Http {
        base,
        http: reqwest::Client::new(),
        tokens,
    };
    let quotas = Api::<ResourceQuota>::namespaced(cluster.client.clone(), "demo-stttt-prod");
    let q = eventually("the operator has made the quota", || async {
        quotas.get_opt("govcloud-quota").await.ok().flatten()
    })
    .await?;
    assert_eq!(hard_cpu(&q).as_deref(), Some("4"));

    // The agency asks; the province approves.
    let (status, req) = api
        .call(reqwest::Method::POST, "/v1/capacity-requests", "tenant-admin",
              Some(json!({"tenant": "demo-stttt", "namespace": "prod", "quota": {"cpu": "6"}, "reason": "the land registry moves in"})))
        .await?;
    assert_eq!(status, 201, "{req}");
    let id = req["id"].as_str().ok_or("no id")?.to_string();
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/capacity-requests/{id}/approve"),
            "tenant-admin",
            None,
        )
        .await?;
    assert_eq!(
        status, 403,
        "an agency cannot approve its own request: {body}"
    );
    let (status, body) = api
        .call(
            reqwest::Method::POST,
            &format!("/v1/capacity-requests/{id}/approve"),
            "org-admin",
            None,
        )
        .await?;
    assert_eq!(
        (status, body["state"].as_str()),
        (200, Some("approved")),
        "{body}"
    );

    let q = eventually("the namespace's quota follows", || async {
        quotas
            .get_opt("govcloud-quota")
            .await
            .ok()
            .flatten()
            .filter(|q| hard_cpu(q).as_deref() == Some("6"))
    })
    .await?;
    assert_eq!(
        q.spec
            .and_then(|s| s.hard)
            .and_then(|h| h.get("limits.cpu").cloned())
            .map(|v| v.0)
            .as_deref(),
        Some("6")
    );

    let (_, timeline) = api
        .call(
            reqwest::Method::GET,
            "/v1/tenants/demo-stttt/quota-changes",
            "finance",
            None,
        )
        .await?;
    let change = timeline["items"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["capacityRequest"] == id.as_str()))
        .ok_or("no timeline entry")?;
    assert_eq!(
        (change["from"]["cpu"].as_str(), change["to"]["cpu"].as_str()),
        (Some("4"), Some("6"))
    );
    assert_eq!(change["changedBy"], "demo-province-it");
    let (_, audit) = api
        .call(
            reqwest::Method::GET,
            "/v1/audit-events?tenant=demo-stttt&limit=3",
            "auditor",
            None,
        )
        .await?;
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert_eq!(
        actions,
        [
            "capacity_request.applied",
            "capacity_request.approve",
            "capacity_request.create"
        ]
    );
    let (_, tenant) = api
        .call(
            reqwest::Method::GET,
            "/v1/tenants/demo-stttt",
            "tenant-admin",
            None,
        )
        .await?;
    assert_eq!(
        tenant["status"]["phase"], "Ready",
        "the operator's status is shown: {tenant}"
    );

    // The agency deploys with the kubeconfig the API issues.
    let (status, issued) = api
        .call(
            reqwest::Method::POST,
            "/v1/tenants/demo-stttt/kubeconfig",
            "tenant-admin",
            Some(json!({"namespace": "prod"})),
        )
        .await?;
    assert_eq!(status, 200, "{issued}");
    let kubeconfig = dir.path().join("agency.kubeconfig");
    std::fs::write(
        &kubeconfig,
        issued["kubeconfig"].as_str().ok_or("no kubeconfig")?,
    )?;
    let parsed: Value = serde_yaml::from_str(issued["kubeconfig"].as_str().unwrap_or_default())?;
    assert_eq!(
        parsed["clusters"][0]["cluster"]["server"],
        cluster.sim.url().as_str()
    );
    assert_eq!(
        parsed["contexts"][0]["context"]["namespace"],
        "demo-stttt-prod"
    );
    assert!(
        parsed["users"][0]["user"]["token"]
            .as_str()
            .is_some_and(|t| t.split('.').count() == 3)
    );

    let chart = chart();
    let kc = kubeconfig.clone();
    let home = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(helm())
            .args(["install", "hello"])
            .arg(&chart)
            .args(["--wait=false"])
            .env("KUBECONFIG", &kc)
            .env("HOME", &home)
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_DATA_HOME", home.join("data"))
            .output()
    })
    .await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helm install: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("NAMESPACE: demo-stttt-prod") && stdout.contains("STATUS: deployed"),
        "{stdout}"
    );
    let deployment = Api::<Deployment>::namespaced(cluster.client.clone(), "demo-stttt-prod")
        .get("hello-web")
        .await?;
    assert_eq!(deployment.spec.and_then(|s| s.replicas), Some(1));

    let _ = stop.send(());
    server.await??;
    cluster.stop_operators().await;
    Ok(())
}
