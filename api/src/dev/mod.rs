//! `govcloud dev`: the API, the operator and the Kubernetes API simulator in one process, on a
//! private PostgreSQL, seeded with a demo province so the whole flow can be tried at once.
//!
//! Only built with the `dev` feature (on by default); production images build without it, so
//! the simulator never reaches them.

pub mod postgres;
pub mod seed;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use govcloud_tenant::crd::Tenant;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
use kubesim::KubeSim;

use crate::Settings;
use crate::cluster::KubeconfigTarget;
use crate::config::DatabaseArgs;
use crate::domain::principal::Role;
use crate::serve::{ServeError, bind, connect_database, migrate, run, state};
use postgres::{PostgresError, PrivatePostgres};

#[derive(Debug, Clone, Args)]
pub struct DevArgs {
    /// Where the API listens.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Where the database, the kubeconfig and the tokens are kept between runs.
    #[arg(long, default_value = ".govcloud-dev")]
    pub state_dir: PathBuf,
    /// Use this PostgreSQL instead of starting a private one.
    #[arg(long, env = "GOVCLOUD_DEV_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Where the simulated Kubernetes API listens (a free port when absent).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub kube_listen: SocketAddr,
    /// How often the sync loop runs, in seconds.
    #[arg(long, default_value_t = 2)]
    pub sync_interval_seconds: u64,
    /// The operator's metering window, in seconds (short, so usage shows at once).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(10..=3600))]
    pub metering_window_seconds: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum DevError {
    #[error("creating the state directory {path}: {source}")]
    StateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error("starting the Kubernetes API simulator: {0}")]
    Simulator(String),
    #[error("seeding the demo data: {0}")]
    Seed(String),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A database URL fit to print: its password, if any, replaced by `***`.
pub fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => url.to_string(),
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// Runs everything until `shutdown`, then stops it all, PostgreSQL last.
pub async fn run_dev(
    args: DevArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DevError> {
    let dir = absolute(&args.state_dir);
    std::fs::create_dir_all(&dir).map_err(|source| DevError::StateDir {
        path: dir.clone(),
        source,
    })?;
    let private = match &args.database_url {
        Some(_) => None,
        None => Some(PrivatePostgres::start(&dir.join("postgres"))?),
    };
    let result = run_with_database(&args, &dir, private.as_ref(), shutdown).await;
    if let Some(pg) = &private {
        pg.stop();
    }
    result
}

async fn run_with_database(
    args: &DevArgs,
    dir: &Path,
    private: Option<&PrivatePostgres>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DevError> {
    let url = match (private, &args.database_url) {
        (Some(pg), _) => pg.url.clone(),
        (None, Some(url)) => url.clone(),
        (None, None) => return Err(DevError::Seed("no database".into())),
    };
    let db = connect_database(&DatabaseArgs {
        database_url: url.clone(),
        db_max_connections: 10,
    })
    .await?;
    migrate(&db).await?;

    // The simulated cluster survives a restart: its objects (agencies' namespaces, their Helm
    // releases, the tokens of kubeconfigs already issued) and its address are kept in the state
    // directory.
    let snapshot_path = dir.join("cluster.json");
    let address_path = dir.join("cluster-address");
    let restore = match std::fs::read(&snapshot_path) {
        Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
            DevError::Simulator(format!("reading {}: {e}", snapshot_path.display()))
        })?),
        Err(_) => None,
    };
    let kept = (args.kube_listen.port() == 0)
        .then(|| std::fs::read_to_string(&address_path).ok())
        .flatten()
        .and_then(|a| a.trim().parse::<SocketAddr>().ok());
    let config = || kubesim::Config {
        restore: restore.clone(),
        ..kubesim::Config::default()
    };
    let sim = match kept {
        Some(addr) => match KubeSim::start_with(config(), addr).await {
            Ok(sim) => sim,
            Err(e) => {
                tracing::warn!(%addr, error = %e, "the simulated cluster's last address is taken; using another");
                KubeSim::start_with(config(), args.kube_listen)
                    .await
                    .map_err(|e| DevError::Simulator(e.to_string()))?
            }
        },
        None => KubeSim::start_with(config(), args.kube_listen)
            .await
            .map_err(|e| DevError::Simulator(e.to_string()))?,
    };
    std::fs::write(&address_path, sim.addr().to_string()).map_err(|source| DevError::Write {
        path: address_path.clone(),
        source,
    })?;
    let client = sim
        .client()
        .map_err(|e| DevError::Simulator(e.to_string()))?;
    match Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &Tenant::crd())
        .await
    {
        Ok(_) => {}
        // restored from the state directory
        Err(kube::Error::Api(e)) if e.code == 409 => {}
        Err(e) => {
            return Err(DevError::Simulator(format!(
                "installing the Tenant CRD: {e}"
            )));
        }
    }
    let kubeconfig = dir.join("kubeconfig");
    sim.write_kubeconfig(&kubeconfig)
        .map_err(|source| DevError::Write {
            path: kubeconfig.clone(),
            source,
        })?;

    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let target = KubeconfigTarget {
        server: sim.url(),
        certificate_authority_data: None,
        insecure_skip_tls_verify: false,
    };
    // Drafts follow the demo's usage closely.
    let settings = Settings {
        billing: crate::Billing {
            interval: Duration::from_secs(30),
            ..crate::Billing::default()
        },
        // Anyone at this machine may sign in to the console as a seeded person.
        console: crate::Console {
            dev_sign_in: true,
            ..crate::Console::default()
        },
        ..Settings::default()
    };
    let (state, watches) = state(db, client, target, None, settings);
    let tokens_path = dir.join("tokens.json");
    let tokens = seed::seed(&state, &tokens_path)
        .await
        .map_err(DevError::Seed)?;
    let listener = bind(args.listen).await?;
    let api = listener
        .local_addr()
        .map_or_else(|_| args.listen.to_string(), |a| a.to_string());
    let metering_token = tokens
        .get(Role::Metering.as_str())
        .cloned()
        .ok_or_else(|| DevError::Seed("no metering token".into()))?;
    let seeded = seed::seed_usage(&state, &metering_token)
        .await
        .map_err(DevError::Seed)?;
    if seeded > 0 {
        println!("seeded last month's usage of the demo agencies ({seeded} samples)");
    }
    let admin_token = tokens
        .get(Role::PlatformAdmin.as_str())
        .cloned()
        .ok_or_else(|| DevError::Seed("no platform admin token".into()))?;
    let invoiced = seed::seed_billing(&state, &admin_token)
        .await
        .map_err(DevError::Seed)?;
    if invoiced > 0 {
        println!(
            "issued last month's invoices of the demo agencies ({invoiced}), with this month's drafts"
        );
    }
    let metering = govcloud_operator::metering::Settings {
        target: govcloud_operator::metering::deliver::Target {
            url: format!("http://{api}"),
            token: metering_token,
            client: reqwest::Client::new(),
        },
        window: Duration::from_secs(args.metering_window_seconds),
        buffer: state.settings.metering_grace,
    };
    let operator = tokio::spawn(govcloud_operator::controller::run(
        sim.client()
            .map_err(|e| DevError::Simulator(e.to_string()))?,
        govcloud_operator::controller::Settings {
            metering: Some(metering),
            ..govcloud_operator::controller::Settings::default()
        },
        Arc::new(govcloud_operator::telemetry::Telemetry::default()),
        stopped(),
    ));
    demo_pods(&sim).await;
    // Saved every few seconds too, so a crash loses little.
    let saving = {
        let sim_snapshot = sim.snapshot_handle();
        let path = snapshot_path.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            loop {
                tick.tick().await;
                if let Err(e) = write_atomically(&path, &sim_snapshot()) {
                    tracing::warn!(error = %e, "the simulated cluster could not be saved");
                }
            }
        })
    };
    println!(
        "govcloud dev is running (Ctrl-C stops everything)\n\
         \n  console      http://{api}/   (sign in as any seeded person)\
         \n  API          http://{api}   (OpenAPI document: http://{api}/openapi.json)\
         \n  kubeconfig   {kc}   (kubectl and helm against the simulated cluster at {sim})\
         \n  tokens       {tk}   (one API token per role: {roles})\
         \n  database     {db}   (psql \"{db_url}\")\
         \n  state        {dir}\
         \n\n  try:  curl -H \"Authorization: Bearer $(python3 -c 'import json;print(json.load(open(\"{tk}\"))[\"org-admin\"])')\" http://{api}/v1/tenants\n",
        kc = kubeconfig.display(),
        sim = sim.url(),
        tk = tokens_path.display(),
        roles = tokens.keys().cloned().collect::<Vec<_>>().join(", "),
        db = if private.is_some() {
            "private PostgreSQL in the state directory"
        } else {
            "the one given by --database-url"
        },
        db_url = redact_password(&url),
        dir = dir.display(),
    );
    let served = run(
        state,
        watches,
        listener,
        None,
        Duration::from_secs(args.sync_interval_seconds),
        async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        },
    )
    .await;
    let _ = operator.await;
    saving.abort();
    if let Err(e) = save_snapshot(&sim, &snapshot_path) {
        tracing::warn!(error = %e, "the simulated cluster could not be saved");
    }
    sim.shutdown().await;
    println!("govcloud dev stopped");
    served.map_err(DevError::from)
}

/// Writes a file whole or not at all (a temporary file, then a rename).
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn save_snapshot(sim: &KubeSim, path: &Path) -> std::io::Result<()> {
    write_atomically(
        path,
        &serde_json::to_vec(&sim.snapshot()).unwrap_or_default(),
    )
}

/// Demo pods in the demo agencies' namespaces, with some use, so usage shows real numbers.
/// The namespaces come from the operator: this waits for them a while, then gives up quietly.
async fn demo_pods(sim: &KubeSim) {
    use k8s_openapi::api::core::v1::{Namespace, Pod};
    let Ok(client) = sim.client() else { return };
    let pods = [
        (
            seed::AGENCY,
            "prod",
            "portal",
            "500m",
            "1Gi",
            "180m",
            "600Mi",
        ),
        (
            seed::AGENCY,
            "prod",
            "worker",
            "250m",
            "512Mi",
            "40m",
            "200Mi",
        ),
        (
            seed::OTHER_AGENCY,
            "prod",
            "ledger",
            "250m",
            "512Mi",
            "120m",
            "300Mi",
        ),
    ];
    for (tenant, short, name, cpu, memory, used_cpu, used_memory) in pods {
        let ns = govcloud_tenant::names::namespace_name(tenant, short);
        let namespaces: Api<Namespace> = Api::all(client.clone());
        let ready = tokio::time::timeout(Duration::from_secs(30), async {
            while !matches!(namespaces.get_opt(&ns).await, Ok(Some(_))) {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
        if ready.is_err() {
            tracing::warn!(namespace = %ns, "no demo pods: the namespace did not appear");
            continue;
        }
        let pod: Result<Pod, _> = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"app": name}},
            "spec": {"containers": [{"name": "app", "image": "registry.example.gov.vn/demo/app:1.0",
                "imagePullPolicy": "Always",
                "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true,
                    "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}},
                "resources": {"requests": {"cpu": cpu, "memory": memory},
                              "limits": {"cpu": cpu, "memory": memory}}}]}
        }));
        let Ok(pod) = pod else { continue };
        match Api::<Pod>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &pod)
            .await
        {
            Ok(_) => sim.set_pod_usage(&ns, name, used_cpu, used_memory),
            Err(kube::Error::Api(e)) if e.code == 409 => {
                sim.set_pod_usage(&ns, name, used_cpu, used_memory);
            }
            Err(e) => tracing::warn!(namespace = %ns, pod = name, error = %e, "no demo pod"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_database_urls_carry_no_password() {
        assert_eq!(
            redact_password("postgres://govcloud:s3cret@db:5432/govcloud"),
            "postgres://govcloud:***@db:5432/govcloud"
        );
        assert_eq!(
            redact_password("postgres://postgres@127.0.0.1:5432/postgres"),
            "postgres://postgres@127.0.0.1:5432/postgres"
        );
    }
}
