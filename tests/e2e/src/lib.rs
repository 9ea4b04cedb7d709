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
        let client = self.sim.client()?;
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(govcloud_operator::controller::run(
            client,
            Settings::default(),
            Arc::new(Telemetry::default()),
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
