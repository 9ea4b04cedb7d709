//! Helpers for govcloud's end-to-end tests: a simulated cluster with the CRDs installed and the
//! operator running against it through a real `kube::Client`.

use std::sync::Arc;
use std::time::Duration;

use govcloud_operator::controller::Settings;
use govcloud_operator::leader::{LeaseSettings, run_as_leader};
use govcloud_operator::telemetry::Telemetry;
use govcloud_tenant::crd::Tenant;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, PostParams};
use kube::{Client, CustomResourceExt};
use kubesim::KubeSim;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub type TestResult<T = ()> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// A simulated cluster with the Tenant CRD, and (once started) an operator.
pub struct Cluster {
    pub sim: KubeSim,
    pub client: Client,
    operators: Vec<(oneshot::Sender<()>, JoinHandle<()>)>,
}

impl Cluster {
    pub async fn new() -> TestResult<Self> {
        let sim = KubeSim::start().await?;
        let client = sim.client()?;
        Api::<CustomResourceDefinition>::all(client.clone())
            .create(&PostParams::default(), &Tenant::crd())
            .await?;
        Ok(Self {
            sim,
            client,
            operators: Vec::new(),
        })
    }

    /// Starts the operator, as its binary would, with its own client.
    pub fn start_operator(&mut self) -> TestResult {
        self.start_operator_with(Arc::new(Telemetry::default()))
    }

    /// Starts the operator with the telemetry given (to read its counters).
    pub fn start_operator_with(&mut self, telemetry: Arc<Telemetry>) -> TestResult {
        let client = self.sim.client()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(govcloud_operator::controller::run(
            client,
            Settings::default(),
            telemetry,
            async {
                let _ = rx.await;
            },
        ));
        self.operators.push((tx, task));
        Ok(())
    }

    /// Starts a leader-elected operator replica named `identity`, with short lease timings.
    pub fn start_replica(&mut self, identity: &str) -> TestResult {
        let client = self.sim.client()?;
        let (tx, rx) = oneshot::channel::<()>();
        let settings = LeaseSettings {
            lease_duration: Duration::from_secs(3),
            renew_interval: Duration::from_millis(500),
            retry_interval: Duration::from_millis(200),
            ..LeaseSettings::new("default", identity)
        };
        let task = tokio::spawn(async move {
            let stop = async {
                let _ = rx.await;
            };
            if let Err(e) = run_as_leader(
                client,
                Settings::default(),
                settings,
                Arc::new(Telemetry::default()),
                stop,
            )
            .await
            {
                panic!("replica failed: {e}");
            }
        });
        self.operators.push((tx, task));
        Ok(())
    }

    /// Stops the replica started `index`-th (graceful: a leader releases its lease).
    pub async fn stop_replica(&mut self, index: usize) {
        let (tx, task) = self.operators.remove(index);
        let _ = tx.send(());
        let _ = task.await;
    }

    pub async fn stop_operators(&mut self) {
        for (tx, task) in self.operators.drain(..) {
            let _ = tx.send(());
            let _ = task.await;
        }
    }

    pub fn tenants(&self) -> Api<Tenant> {
        Api::all(self.client.clone())
    }
}

pub use govcloud_testing::eventually;

/// A Tenant from YAML.
pub fn tenant(yaml: &str) -> TestResult<Tenant> {
    Ok(serde_yaml::from_str(yaml)?)
}

/// kubectl (`$KUBECTL`, else the one on PATH) against a simulated cluster, with its own HOME.
pub struct Kubectl {
    dir: tempfile::TempDir,
}

impl Kubectl {
    pub fn new(sim: &KubeSim) -> TestResult<Self> {
        let dir = tempfile::tempdir()?;
        sim.write_kubeconfig(&dir.path().join("kubeconfig"))?;
        Ok(Self { dir })
    }

    /// kubectl with exactly this kubeconfig (an agency's, as the API issued it).
    pub fn with_kubeconfig(kubeconfig: &str) -> TestResult<Self> {
        let dir = tempfile::tempdir()?;
        std::fs::write(dir.path().join("kubeconfig"), kubeconfig)?;
        Ok(Self { dir })
    }

    /// The kubeconfig file it uses.
    pub fn kubeconfig_path(&self) -> std::path::PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// Runs kubectl with `args`, feeding `stdin`; answers (succeeded, stdout, stderr).
    pub async fn run(
        &self,
        args: &[&str],
        stdin: Option<&str>,
    ) -> TestResult<(bool, String, String)> {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let bin = std::env::var_os("KUBECTL").unwrap_or_else(|| "kubectl".into());
        let home = self.dir.path().to_path_buf();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let stdin = stdin.map(str::to_string);
        let out = tokio::task::spawn_blocking(move || -> std::io::Result<std::process::Output> {
            let mut child = Command::new(bin)
                .args(&args)
                .env("KUBECONFIG", home.join("kubeconfig"))
                .env("HOME", &home)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()?;
            if let Some(mut pipe) = child.stdin.take() {
                pipe.write_all(stdin.unwrap_or_default().as_bytes())?;
            }
            child.wait_with_output()
        })
        .await??;
        Ok((
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ))
    }

    /// Runs kubectl and fails the test unless it succeeds; answers its stdout.
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> TestResult<String> {
        let (ok, out, err) = self.run(args, stdin).await?;
        if !ok {
            return Err(format!("kubectl {}: {err}{out}", args.join(" ")).into());
        }
        Ok(out)
    }
}

/// The Helm chart as a cluster gets it: rendered by the real helm, applied by server-side apply.
pub mod chart {
    use std::process::Command;

    use kube::api::Api;

    use crate::TestResult;

    pub const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../charts/govcloud");

    /// `helm template` of the chart in `govcloud-system`, CRDs included.
    pub fn helm_template(extra: &[&str]) -> TestResult<String> {
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

    /// Applies every object of a multi-document YAML with server-side apply (as helm 4 does).
    pub async fn apply_all(client: &kube::Client, yaml: &str) -> TestResult {
        use k8s_openapi::serde::Deserialize;
        use kube::api::{DynamicObject, Patch, PatchParams};
        use kube::core::GroupVersionKind;
        for doc in serde_yaml::Deserializer::from_str(yaml) {
            let value = serde_json::Value::deserialize(doc)?;
            if value.is_null() {
                continue;
            }
            let obj: DynamicObject = serde_json::from_value(value)?;
            let types = obj
                .types
                .clone()
                .ok_or("an object without apiVersion and kind")?;
            let (group, version) = match types.api_version.split_once('/') {
                Some((g, v)) => (g.to_string(), v.to_string()),
                None => (String::new(), types.api_version.clone()),
            };
            let gvk = GroupVersionKind::gvk(&group, &version, &types.kind);
            let (ar, caps) = kube::discovery::pinned_kind(client, &gvk).await?;
            let api: Api<DynamicObject> = match &caps.scope {
                kube::discovery::Scope::Namespaced => Api::namespaced_with(
                    client.clone(),
                    obj.metadata
                        .namespace
                        .as_deref()
                        .unwrap_or("govcloud-system"),
                    &ar,
                ),
                kube::discovery::Scope::Cluster => Api::all_with(client.clone(), &ar),
            };
            let name = obj
                .metadata
                .name
                .clone()
                .ok_or("an object without a name")?;
            api.patch(
                &name,
                &PatchParams::apply("helm").force(),
                &Patch::Apply(&obj),
            )
            .await?;
        }
        Ok(())
    }

    /// A token for one of the chart's ServiceAccounts, from TokenRequest (as the pod would get).
    pub async fn token_of(admin: &kube::Client, account: &str) -> TestResult<String> {
        use k8s_openapi::api::authentication::v1::TokenRequest;
        use k8s_openapi::api::core::v1::ServiceAccount;
        let answer = Api::<ServiceAccount>::namespaced(admin.clone(), "govcloud-system")
            .create_token_request(account, &Default::default(), &TokenRequest::default())
            .await?;
        Ok(answer.status.map(|s| s.token).unwrap_or_default())
    }
}
