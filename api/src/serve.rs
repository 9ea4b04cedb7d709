//! Running the API: connecting to its database and cluster, serving HTTP or HTTPS, and
//! stopping gracefully.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use futures::FutureExt;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use tokio::net::TcpListener;

use crate::app::oidc::Oidc;
use crate::cluster::{Cluster, KubeconfigTarget};
use crate::config::{DatabaseArgs, ServeArgs};
use crate::metrics::Metrics;
use crate::{AppState, Settings, app, db};

/// How long open requests get to finish after shutdown is asked for.
pub const DRAIN: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("connecting to the database: {0}")]
    ConnectDatabase(#[source] sqlx::Error),
    #[error("migrating the database: {0}")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error(
        "the database schema is behind this govcloud ({0} migrations pending): run `govcloud migrate` (the Helm chart's migration Job does), or serve with --migrate"
    )]
    SchemaBehind(usize),
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("connecting to Kubernetes: {0}")]
    ConnectCluster(String),
    #[error("reading {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("loading the TLS certificate {cert} and key {key}: {source}")]
    LoadTls {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// A certificate and key for HTTPS.
#[derive(Debug, Clone)]
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub async fn connect_database(args: &DatabaseArgs) -> Result<PgPool, ServeError> {
    PgPoolOptions::new()
        .max_connections(args.db_max_connections)
        .acquire_timeout(Duration::from_secs(10))
        // No ping before each query (a round trip each): a connection that died fails its
        // query, which answers 503/500 once, and the pool closes it. Idle ones are closed
        // after 10 minutes and every one after 30 (sqlx's defaults) either way.
        .test_before_acquire(false)
        .connect(&args.database_url)
        .await
        .map_err(ServeError::ConnectDatabase)
}

pub async fn migrate(db: &PgPool) -> Result<(), ServeError> {
    db::MIGRATOR.run(db).await.map_err(ServeError::Migrate)
}

/// Refuses to serve from a database whose schema is behind this build (migrations are applied
/// by `govcloud migrate`, the Helm chart's hook Job, or `serve --migrate`).
pub async fn ensure_migrated(db: &PgPool) -> Result<(), ServeError> {
    use sqlx::migrate::Migrate;
    let mut conn = db.acquire().await.map_err(ServeError::ConnectDatabase)?;
    conn.ensure_migrations_table()
        .await
        .map_err(ServeError::Migrate)?;
    let applied: std::collections::HashSet<i64> = conn
        .list_applied_migrations()
        .await
        .map_err(ServeError::Migrate)?
        .into_iter()
        .map(|m| m.version)
        .collect();
    let pending = db::MIGRATOR
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .count();
    if pending > 0 {
        return Err(ServeError::SchemaBehind(pending));
    }
    Ok(())
}

/// The state of a running API and the future that keeps its cluster watches running.
pub fn state(
    db: PgPool,
    client: kube::Client,
    target: KubeconfigTarget,
    oidc: Option<Oidc>,
    settings: Settings,
) -> (AppState, impl Future<Output = ()> + Send + 'static) {
    let (cluster, watches) = Cluster::new(client, target);
    let tokens = Arc::new(crate::app::token_cache::TokenCache::default());
    let tenants = Arc::new(crate::app::tenant_cache::TenantCache::default());
    let follow = crate::app::announced::follow(tokens.clone(), tenants.clone(), db.clone());
    (
        AppState {
            db,
            cluster: Arc::new(cluster),
            oidc: oidc.map(Arc::new),
            settings: Arc::new(settings),
            metrics: Arc::new(Metrics::default()),
            tokens,
            tenants,
        },
        // The cluster's watches and the announcements run as long as the API does.
        async move {
            tokio::join!(watches, follow);
        },
    )
}

/// Binds the API's socket.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.to_string(),
            source,
        })
}

/// Serves the router on `listener` until `shutdown`, then lets open requests finish.
pub async fn serve(
    router: Router,
    listener: TcpListener,
    tls: Option<Tls>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    match tls {
        None => {
            tracing::info!(%addr, "serving HTTP");
            axum::serve(listener, router)
                .with_graceful_shutdown(shutdown)
                .await
                .map_err(|source| ServeError::Listen { addr, source })
        }
        Some(Tls { cert, key }) => {
            // Only the ring provider is built in; installing it twice is harmless.
            let _ = rustls::crypto::ring::default_provider().install_default();
            let config = axum_server::tls_rustls::RustlsConfig::from_pem_file(&cert, &key)
                .await
                .map_err(|source| ServeError::LoadTls {
                    cert: cert.clone(),
                    key: key.clone(),
                    source,
                })?;
            let std_listener = listener.into_std().map_err(|source| ServeError::Listen {
                addr: addr.clone(),
                source,
            })?;
            let handle = axum_server::Handle::new();
            let stopper = handle.clone();
            tokio::spawn(shutdown.map(move |()| stopper.graceful_shutdown(Some(DRAIN))));
            tracing::info!(%addr, "serving HTTPS");
            axum_server::from_tcp_rustls(std_listener, config)
                .handle(handle)
                .serve(router.into_make_service())
                .await
                .map_err(|source| ServeError::Listen { addr, source })
        }
    }
}

/// Runs an API: its sync loop, its cluster watches, the usage roll-up, the billing loop and
/// its server, until
/// `shutdown`.
pub async fn run(
    state: AppState,
    watches: impl Future<Output = ()> + Send + 'static,
    listener: TcpListener,
    tls: Option<Tls>,
    sync_interval: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let watch_task = tokio::spawn(watches);
    let mut sync_stop = stop_rx.clone();
    let sync_task = tokio::spawn(crate::app::sync::run(
        state.clone(),
        sync_interval,
        async move {
            let _ = sync_stop.wait_for(|s| *s).await;
        },
    ));
    let rollup_task = tokio::spawn(crate::app::metering::roll_up_loop(
        state.clone(),
        chrono::Duration::from_std(state.settings.metering_grace)
            .unwrap_or(chrono::Duration::minutes(10)),
    ));
    let billing = state.settings.billing;
    let billing_task = tokio::spawn(crate::app::billing::run(
        state.clone(),
        crate::app::billing::Close {
            grace: chrono::Duration::from_std(billing.grace).unwrap_or(chrono::Duration::days(2)),
            auto_issue: billing.auto_issue,
        },
        billing.interval,
    ));
    let sweep_task = tokio::spawn({
        let state = state.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(3600));
            loop {
                tick.tick().await;
                match crate::app::sessions::sweep(&state).await {
                    Ok(n) if n > 0 => {
                        tracing::debug!(forgotten = n, "expired console sessions forgotten")
                    }
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "expired console sessions could not be forgotten")
                    }
                }
            }
        }
    });
    let served = serve(app(state), listener, tls, async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    })
    .await;
    let _ = sync_task.await;
    // A roll-up is one transaction: stopping between two loses nothing.
    rollup_task.abort();
    // Each invoice is written in its own transaction: stopping between two loses nothing.
    billing_task.abort();
    sweep_task.abort();
    watch_task.abort();
    served
}

/// `govcloud serve`: connects, checks (or with `--migrate` applies) the migrations, and runs
/// until `shutdown`.
pub async fn run_from_args(
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    // A bad configuration stops the API before it touches anything.
    let oidc = args.oidc()?;
    let db = connect_database(&args.database).await?;
    if args.migrate {
        migrate(&db).await?;
    } else {
        ensure_migrated(&db).await?;
    }
    let config = kube::Config::infer()
        .await
        .map_err(|e| ServeError::ConnectCluster(e.to_string()))?;
    let mut target = KubeconfigTarget::from_config(&config);
    if let Some(server) = &args.kubeconfig_server {
        target.server = server.clone();
    }
    if let Some(path) = &args.kubeconfig_ca_file {
        let pem = std::fs::read(path).map_err(|source| ServeError::ReadFile {
            path: path.clone(),
            source,
        })?;
        use base64::Engine;
        target.certificate_authority_data =
            Some(base64::engine::general_purpose::STANDARD.encode(pem));
    }
    let client =
        kube::Client::try_from(config).map_err(|e| ServeError::ConnectCluster(e.to_string()))?;
    let (state, watches) = state(db, client, target, oidc.map(Oidc::new), args.settings());
    let listener = bind(args.listen).await?;
    let tls = args
        .tls_cert
        .clone()
        .zip(args.tls_key.clone())
        .map(|(cert, key)| Tls { cert, key });
    run(
        state,
        watches,
        listener,
        tls,
        Duration::from_secs(args.sync_interval_seconds),
        shutdown,
    )
    .await
}
