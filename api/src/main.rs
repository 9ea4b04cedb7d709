//! `govcloud`: the API server (`serve`), its migrations (`migrate`), users and tokens
//! (`principal`), and the all-in-one development environment (`dev`).

use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use govcloud_api::config::{DatabaseArgs, ServeArgs};
use govcloud_api::db::{self, audit, principals};
use govcloud_api::domain::principal::{Role, check_name, scope_mismatch};
use govcloud_api::domain::token;
use govcloud_api::serve::{connect_database, migrate, run_from_args};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "govcloud",
    version,
    about = "govcloud: the control plane of a shared government cloud"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (the database must be migrated, or pass --migrate).
    Serve(Box<ServeArgs>),
    /// Apply the database migrations and exit.
    Migrate(DatabaseArgs),
    /// Register a user or automation account with a role, and print a new API token for it.
    Principal(PrincipalArgs),
    /// Run the API, the operator and a simulated cluster in one process, with demo data.
    #[cfg(feature = "dev")]
    Dev(govcloud_api::dev::DevArgs),
}

#[derive(Args)]
struct PrincipalArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// A unique name; the audit log records it.
    #[arg(long)]
    name: String,
    /// platform-admin, org-admin, tenant-admin, finance or auditor.
    #[arg(long)]
    role: Role,
    /// The organization of an org-admin or finance principal.
    #[arg(long)]
    organization: Option<String>,
    /// The tenant of a tenant-admin principal.
    #[arg(long)]
    tenant: Option<String>,
    /// The OIDC `sub` of the person, so their ID tokens are accepted.
    #[arg(long)]
    oidc_subject: Option<String>,
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("shutting down");
}

async fn principal(args: PrincipalArgs) -> anyhow::Result<()> {
    check_name(&args.name).map_err(|m| anyhow::anyhow!("--name {m}"))?;
    if let Some(why) = scope_mismatch(
        args.role,
        args.organization.is_some(),
        args.tenant.is_some(),
    ) {
        anyhow::bail!(
            "--role {}: {why} (org-admin and finance need --organization, tenant-admin --tenant, platform-admin and auditor neither)",
            args.role
        );
    }
    let db = connect_database(&args.database).await?;
    migrate(&db).await?;
    let organization_id = match &args.organization {
        Some(o) => Some(
            db::organizations::by_name(&db, o)
                .await?
                .with_context(|| format!("no organization {o:?}"))?
                .organization_id,
        ),
        None => None,
    };
    let tenant_id = match &args.tenant {
        Some(t) => Some(
            db::tenants::by_name(&db, t)
                .await?
                .with_context(|| format!("no tenant {t:?}"))?
                .tenant_id,
        ),
        None => None,
    };
    let mut tx = db.begin().await?;
    let id = principals::insert(
        &mut *tx,
        principals::NewPrincipal {
            name: &args.name,
            role: args.role,
            organization_id,
            tenant_id,
            oidc_subject: args.oidc_subject.as_deref(),
            created_by: "system:cli",
        },
    )
    .await
    .with_context(|| {
        format!(
            "registering {} (org-admin and finance need --organization, tenant-admin --tenant; names are unique)",
            args.name
        )
    })?;
    let token = token::generate();
    principals::insert_token(&mut *tx, id, &token::hash(&token), None).await?;
    audit::record(
        &mut *tx,
        audit::Event {
            actor: &audit::Actor::system("cli"),
            action: "principal.create",
            object_kind: "principal",
            object_id: args.name.clone(),
            organization_id,
            tenant_id,
            detail: serde_json::json!({
                "role": args.role, "oidc": args.oidc_subject.is_some(), "apiToken": true,
            }),
        },
    )
    .await?;
    tx.commit().await?;
    eprintln!(
        "registered {} as {}; its API token (shown once):",
        args.name, args.role
    );
    println!("{token}");
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => run_from_args(*args, shutdown_signal()).await?,
        Command::Migrate(args) => {
            let db = connect_database(&args).await?;
            migrate(&db).await?;
            eprintln!("database migrated");
        }
        Command::Principal(args) => principal(args).await?,
        #[cfg(feature = "dev")]
        Command::Dev(args) => govcloud_api::dev::run_dev(args, shutdown_signal()).await?,
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new("info,kube=warn,sqlx=warn")),
        )
        .init();
    match run(Cli::parse()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("govcloud: {e:#}");
            ExitCode::FAILURE
        }
    }
}
