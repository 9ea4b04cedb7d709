//! `kubesim --listen ADDR --kubeconfig FILE`: runs the simulator until Ctrl-C or SIGTERM and
//! writes a kubeconfig that kubectl, helm and kube-rs use as it is.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "kubesim",
    about = "A Kubernetes API simulator on loopback, for tests"
)]
struct Args {
    /// Address to listen on (use port 0 for a free port).
    #[arg(long, env = "KUBESIM_LISTEN", default_value = "127.0.0.1:6443")]
    listen: SocketAddr,
    /// Where to write the kubeconfig for this simulator.
    #[arg(long, env = "KUBESIM_KUBECONFIG")]
    kubeconfig: PathBuf,
    /// How many nodes the cluster reports.
    #[arg(long, default_value_t = 3)]
    nodes: u32,
    /// Allocatable CPU of each node.
    #[arg(long, default_value = "16")]
    node_cpu: String,
    /// Allocatable memory of each node.
    #[arg(long, default_value = "64Gi")]
    node_memory: String,
    /// How many events watches can replay before a resourceVersion is too old (410 Gone).
    #[arg(long, default_value_t = 100_000)]
    history: usize,
    /// Seconds between watch bookmarks.
    #[arg(long, default_value_t = 5)]
    bookmark_seconds: u64,
    /// Authenticate and authorize every request with RBAC (the kubeconfig's token is the
    /// administrator's; ServiceAccount tokens from TokenRequest get what their bindings allow).
    #[arg(long)]
    authorization: bool,
    /// Do not serve the resource metrics API (a cluster without metrics-server).
    #[arg(long)]
    no_metrics_api: bool,
    /// Do not run the simulated scheduler and kubelet: pods stay as written.
    #[arg(long)]
    no_kubelet: bool,
    /// Enforce Pod Security Admission at each namespace's `pod-security.kubernetes.io/enforce`
    /// level.
    #[arg(long)]
    pod_security: bool,
    /// Serve HTTPS with this certificate (PEM); kubectl sends tokens only over TLS.
    #[arg(long, requires_all = ["tls_key", "tls_ca"])]
    tls_cert: Option<PathBuf>,
    /// The certificate's key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// The CA that signed the certificate (PEM), written into the kubeconfig.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let config = kubesim::Config {
        nodes: (1..=args.nodes)
            .map(|i| kubesim::Node {
                name: format!("kubesim-node-{i}"),
                cpu: args.node_cpu.clone(),
                memory: args.node_memory.clone(),
                pods: 110,
            })
            .collect(),
        history_limit: args.history,
        bookmark_interval: Duration::from_secs(args.bookmark_seconds.max(1)),
        authorization: args.authorization,
        metrics_api: !args.no_metrics_api,
        kubelet: !args.no_kubelet,
        pod_security: args.pod_security,
        restore: None,
        tls: match (&args.tls_cert, &args.tls_key, &args.tls_ca) {
            (Some(cert), Some(key), Some(ca)) => Some(kubesim::Tls {
                cert_pem: std::fs::read(cert)?,
                key_pem: std::fs::read(key)?,
                ca_pem: std::fs::read(ca)?,
            }),
            _ => None,
        },
    };
    let sim = kubesim::KubeSim::start_with(config, args.listen).await?;
    sim.write_kubeconfig(&args.kubeconfig)?;
    println!(
        "kubesim serving {} (kubeconfig: {})",
        sim.url(),
        args.kubeconfig.display()
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    sim.shutdown().await;
    Ok(())
}
