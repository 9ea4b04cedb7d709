//! `govcloud-operator run` reconciles Tenants; `govcloud-operator crdgen` writes the CRDs.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use govcloud_operator::build::Platform;
use govcloud_operator::controller::Settings;
use govcloud_operator::leader::{self, LeaseSettings};
use govcloud_operator::telemetry::{self, Telemetry};

#[derive(Debug, Parser)]
#[command(name = "govcloud-operator", about = "govcloud's Kubernetes operator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Reconciles Tenants, with the kubeconfig or in-cluster configuration kube-rs finds.
    Run {
        /// Namespace of the platform's ingress controller, allowed into every tenant namespace.
        #[arg(
            long,
            env = "GOVCLOUD_INGRESS_NAMESPACE",
            default_value = "ingress-nginx"
        )]
        ingress_namespace: String,
        /// The ClusterRole tenant owners and deployers are bound to (the operator keeps it).
        #[arg(
            long,
            env = "GOVCLOUD_TENANT_ROLE",
            default_value = "govcloud-tenant-admin"
        )]
        tenant_role: String,
        /// The most PersistentVolumeClaims one tenant namespace may hold.
        #[arg(long, env = "GOVCLOUD_MAX_CLAIMS", default_value_t = 50)]
        max_claims_per_namespace: u32,
        /// This replica's name: its identity in the lease and in the Events it publishes (the pod name in a cluster).
        #[arg(long, env = "POD_NAME")]
        instance: Option<String>,
        /// How many tenants are reconciled at once.
        #[arg(long, env = "GOVCLOUD_OPERATOR_CONCURRENCY", default_value_t = 16)]
        concurrency: u16,
        /// How often (seconds) a settled tenant is reconciled again with nothing having changed:
        /// a safety net, since the watches bring every change at once.
        #[arg(long, env = "GOVCLOUD_OPERATOR_RESYNC_SECONDS", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..))]
        resync_seconds: u64,
        /// Where `/metrics`, `/healthz` and `/readyz` are served.
        #[arg(
            long,
            env = "GOVCLOUD_OPERATOR_METRICS_ADDR",
            default_value = "0.0.0.0:8080"
        )]
        metrics_addr: std::net::SocketAddr,
        /// Namespace of the leader-election Lease (the operator's own namespace in a cluster). It is
        /// reserved for the platform: no tenant may have it.
        #[arg(long, env = "POD_NAMESPACE", default_value = "default")]
        lease_namespace: String,
        /// The platform's own namespaces, which no tenant may ever have (comma-separated), besides
        /// `default`, `kube-*`, the ingress namespace and the lease namespace. The API must be given
        /// the same list.
        #[arg(
            long,
            env = "GOVCLOUD_RESERVED_NAMESPACES",
            value_delimiter = ',',
            default_value = govcloud_operator::build::DEFAULT_PLATFORM_NAMESPACE
        )]
        reserved_namespaces: Vec<String>,
        #[command(flatten)]
        metering: Box<MeteringArgs>,
    },
    /// Writes the CustomResourceDefinitions as YAML, one file each, into DIR (stdout without --out).
    Crdgen {
        /// The directory to write into (the repository's `crds/`).
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

/// Where usage goes. Without `--api-url` and a token, the operator does not meter.
#[derive(Debug, clap::Args)]
struct MeteringArgs {
    /// The govcloud API's base URL, to post usage to (`https://govcloud-api.govcloud-system.svc:8080`).
    #[arg(long = "api-url", env = "GOVCLOUD_API_URL")]
    api_url: Option<String>,
    /// The `metering` principal's API token.
    #[arg(long, env = "GOVCLOUD_METERING_TOKEN", hide_env_values = true)]
    metering_token: Option<String>,
    /// A PEM CA bundle to trust for the API's certificate (besides the system's).
    #[arg(long, env = "GOVCLOUD_API_CA_FILE")]
    api_ca_file: Option<PathBuf>,
    /// Length of a metering window, in seconds; it divides 3600.
    #[arg(long, env = "GOVCLOUD_METERING_WINDOW_SECONDS", default_value_t = 60,
          value_parser = window_seconds)]
    metering_window_seconds: u32,
    /// How long undelivered usage is kept and retried, in seconds (at most the API's
    /// `--metering-grace-seconds`); older windows stay unmetered.
    #[arg(long, env = "GOVCLOUD_METERING_BUFFER_SECONDS", default_value_t = 600)]
    metering_buffer_seconds: u64,
}

fn window_seconds(s: &str) -> Result<u32, String> {
    let w: u32 = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if w >= 10 && govcloud_tenant::usage::valid_window_seconds(w) {
        Ok(w)
    } else {
        Err("must divide 3600 and be at least 10".into())
    }
}

impl MeteringArgs {
    fn settings(self) -> anyhow::Result<Option<govcloud_operator::metering::Settings>> {
        let (Some(url), Some(token)) = (self.api_url, self.metering_token) else {
            tracing::warn!("no --api-url and metering token: usage is not metered");
            return Ok(None);
        };
        let mut client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(60));
        if let Some(path) = &self.api_ca_file {
            let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("reading certificates from {}", path.display()))?
            {
                client = client.add_root_certificate(cert);
            }
        }
        Ok(Some(govcloud_operator::metering::Settings {
            target: govcloud_operator::metering::deliver::Target {
                url,
                token,
                client: client.build().context("building the API client")?,
            },
            window: std::time::Duration::from_secs(u64::from(self.metering_window_seconds)),
            buffer: std::time::Duration::from_secs(self.metering_buffer_seconds),
        }))
    }
}

async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
    tracing::info!("shutting down");
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Run {
            ingress_namespace,
            tenant_role,
            max_claims_per_namespace,
            instance,
            lease_namespace,
            metrics_addr,
            concurrency,
            resync_seconds,
            mut reserved_namespaces,
            metering,
        } => {
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .init();
            let client = kube::Client::try_default()
                .await
                .context("connecting to Kubernetes")?;
            reserved_namespaces.push(lease_namespace.clone());
            reserved_namespaces.retain(|n| !n.trim().is_empty());
            let platform = Platform {
                ingress_namespace,
                tenant_role,
                max_claims_per_namespace,
                reserved_namespaces,
            };
            let identity =
                instance.unwrap_or_else(|| format!("govcloud-operator-{}", std::process::id()));
            tracing::info!(?platform, %identity, "govcloud-operator starting; waiting to lead");
            let lease = LeaseSettings::new(&lease_namespace, &identity);
            let settings = Settings {
                platform,
                instance: Some(identity.clone()),
                concurrency,
                resync: std::time::Duration::from_secs(resync_seconds),
                metering: metering.settings()?,
                ..Settings::default()
            };
            let telemetry = std::sync::Arc::new(Telemetry::default());
            let listener = tokio::net::TcpListener::bind(metrics_addr)
                .await
                .with_context(|| format!("listening on {metrics_addr}"))?;
            tracing::info!(%metrics_addr, "serving /metrics, /healthz, /readyz");
            let router = telemetry::router(telemetry.clone());
            let server = tokio::spawn(async move { axum::serve(listener, router).await });
            // Losing the lease ends the process with an error, so the replica restarts as a follower.
            let outcome =
                leader::run_as_leader(client, settings, lease, telemetry, shutdown_signal()).await;
            server.abort();
            outcome?;
        }
        Command::Crdgen { out } => {
            for (file, yaml) in govcloud_operator::crdgen::crds()? {
                match &out {
                    Some(dir) => {
                        let path = dir.join(file);
                        std::fs::write(
                            &path,
                            format!(
                                "# Generated by `govcloud-operator crdgen`. Do not edit.\n{yaml}"
                            ),
                        )
                        .with_context(|| format!("writing {}", path.display()))?;
                    }
                    None => print!("---\n{yaml}"),
                }
            }
        }
    }
    Ok(())
}
