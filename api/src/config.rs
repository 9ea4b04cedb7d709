//! The API's configuration: one clap struct, every field also read from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use rust_decimal::Decimal;

use crate::Settings;
use crate::app::oidc::OidcSettings;
use crate::domain::capacity::Overcommit;
use crate::domain::principal::{GroupRole, check_group_roles};

#[derive(Debug, Clone, Args)]
pub struct DatabaseArgs {
    /// PostgreSQL connection URL.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Most connections the pool opens.
    #[arg(long, env = "GOVCLOUD_DB_MAX_CONNECTIONS", default_value_t = 20)]
    pub db_max_connections: u32,
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Where to listen.
    #[arg(long, env = "GOVCLOUD_LISTEN", default_value = "0.0.0.0:8080")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub database: DatabaseArgs,
    /// Apply the database migrations before serving. Without it, serve refuses a database whose
    /// schema is behind (production runs `govcloud migrate` once, as the Helm chart's Job does).
    #[arg(long, env = "GOVCLOUD_MIGRATE")]
    pub migrate: bool,
    /// PEM certificate chain; with --tls-key the API speaks HTTPS only.
    #[arg(long, env = "GOVCLOUD_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of the certificate.
    #[arg(long, env = "GOVCLOUD_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The OIDC issuer whose ID tokens are accepted (`iss`).
    #[arg(long, env = "GOVCLOUD_OIDC_ISSUER", requires = "oidc_audience")]
    pub oidc_issuer: Option<String>,
    /// The audience the tokens must carry (`aud`): the API's client id.
    #[arg(long, env = "GOVCLOUD_OIDC_AUDIENCE", requires = "oidc_issuer")]
    pub oidc_audience: Option<String>,
    /// The issuer's JWKS address, when it is not found by OIDC discovery.
    #[arg(long, env = "GOVCLOUD_OIDC_JWKS_URL")]
    pub oidc_jwks_url: Option<String>,
    /// The ID token claim that lists a person's groups.
    #[arg(long, env = "GOVCLOUD_OIDC_GROUPS_CLAIM", default_value = "groups")]
    pub oidc_groups_claim: String,
    /// A YAML file of rules giving groups' members a role (`- {group, role, organization?,
    /// tenant?}`); the first rule naming one of a person's groups applies, and a registered
    /// principal always wins.
    #[arg(long, env = "GOVCLOUD_OIDC_GROUP_ROLES_FILE")]
    pub oidc_group_roles: Option<PathBuf>,
    /// Where people reach the API and its console, e.g. `https://cloud.nghean.gov.vn`. With an
    /// OIDC issuer, the console signs people in at `<public URL>/sign-in/callback` (register it
    /// at the issuer for the client id --oidc-audience). An `https://` address makes the
    /// console's cookies `Secure`, as serving TLS here does.
    #[arg(long, env = "GOVCLOUD_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The console's OIDC client secret, for a confidential client (PKCE is always used).
    #[arg(
        long,
        env = "GOVCLOUD_CONSOLE_OIDC_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub console_oidc_client_secret: Option<String>,
    /// How long a console session lasts after signing in, in hours.
    #[arg(long, env = "GOVCLOUD_CONSOLE_SESSION_HOURS", default_value_t = 8,
          value_parser = clap::value_parser!(u64).range(1..=168))]
    pub console_session_hours: u64,
    /// How far the sum of all cpu quotas may exceed the nodes' allocatable cpu (1.0 = not at all).
    #[arg(long, env = "GOVCLOUD_CPU_OVERCOMMIT", default_value = "1.0", value_parser = positive_ratio)]
    pub cpu_overcommit: Decimal,
    /// The same for memory.
    #[arg(long, env = "GOVCLOUD_MEMORY_OVERCOMMIT", default_value = "1.0", value_parser = positive_ratio)]
    pub memory_overcommit: Decimal,
    /// The API server address written into issued kubeconfigs (default: the one the API uses).
    #[arg(long, env = "GOVCLOUD_KUBECONFIG_SERVER")]
    pub kubeconfig_server: Option<String>,
    /// The CA bundle (PEM) written into issued kubeconfigs (default: the one the API trusts).
    #[arg(long, env = "GOVCLOUD_KUBECONFIG_CA_FILE")]
    pub kubeconfig_ca_file: Option<PathBuf>,
    /// How long an issued kubeconfig's token lives, in seconds (Kubernetes' minimum is 600).
    #[arg(long, env = "GOVCLOUD_KUBECONFIG_TTL_SECONDS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(600..=86400))]
    pub kubeconfig_ttl_seconds: u64,
    /// How often the sync loop writes due quota changes and applies tenants, in seconds.
    #[arg(long, env = "GOVCLOUD_SYNC_INTERVAL_SECONDS", default_value_t = 10)]
    pub sync_interval_seconds: u64,
    /// How long after an hour ends the operator's windows of it are still taken, in seconds;
    /// then the hour is rolled up and closed. The operator must deliver within it (its
    /// `--metering-buffer-seconds` should not exceed it).
    #[arg(long, env = "GOVCLOUD_METERING_GRACE_SECONDS", default_value_t = 600,
          value_parser = clap::value_parser!(u64).range(60..=86400))]
    pub metering_grace_seconds: u64,
    /// How long after a month ends its draft invoices are still recomputed (for late samples),
    /// in hours; then they are issued (with --auto-issue-invoices) and the month is closed.
    #[arg(long, env = "GOVCLOUD_BILLING_GRACE_HOURS", default_value_t = 48,
          value_parser = clap::value_parser!(u64).range(1..=744))]
    pub billing_grace_hours: u64,
    /// Whether drafts issue themselves when their month's grace period ends (otherwise a
    /// platform admin issues each).
    #[arg(long, env = "GOVCLOUD_AUTO_ISSUE_INVOICES", default_value_t = true,
          action = clap::ArgAction::Set)]
    pub auto_issue_invoices: bool,
    /// How often the billing loop recomputes drafts and checks budgets, in seconds.
    #[arg(long, env = "GOVCLOUD_BILLING_INTERVAL_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(5..=86400))]
    pub billing_interval_seconds: u64,
    /// The longest a request may take, in seconds.
    #[arg(long, env = "GOVCLOUD_REQUEST_TIMEOUT_SECONDS", default_value_t = 30)]
    pub request_timeout_seconds: u64,
    /// The platform's own namespaces, which no tenant may have (comma-separated), besides
    /// `default` and `kube-*`: the same list as the operator's.
    #[arg(
        long,
        env = "GOVCLOUD_RESERVED_NAMESPACES",
        value_delimiter = ',',
        default_value = govcloud_tenant::names::DEFAULT_PLATFORM_NAMESPACE
    )]
    pub reserved_namespaces: Vec<String>,
    /// The ingress controller's namespace (the operator's `--ingress-namespace`): reserved too.
    #[arg(
        long,
        env = "GOVCLOUD_INGRESS_NAMESPACE",
        default_value = govcloud_tenant::names::DEFAULT_INGRESS_NAMESPACE
    )]
    pub ingress_namespace: String,
}

fn positive_ratio(s: &str) -> Result<Decimal, String> {
    let d: Decimal = s
        .parse()
        .map_err(|e| format!("{s:?} is not a decimal: {e}"))?;
    if d <= Decimal::ZERO {
        return Err("must be more than 0".into());
    }
    Ok(d)
}

impl ServeArgs {
    pub fn settings(&self) -> Settings {
        Settings {
            overcommit: Overcommit {
                cpu: self.cpu_overcommit,
                memory: self.memory_overcommit,
            },
            kubeconfig_ttl: Duration::from_secs(self.kubeconfig_ttl_seconds),
            request_timeout: Duration::from_secs(self.request_timeout_seconds),
            metering_grace: Duration::from_secs(self.metering_grace_seconds),
            billing: crate::Billing {
                grace: Duration::from_secs(self.billing_grace_hours * 3600),
                auto_issue: self.auto_issue_invoices,
                interval: Duration::from_secs(self.billing_interval_seconds),
            },
            console: crate::Console {
                dev_sign_in: false,
                secure_cookies: self.tls_cert.is_some()
                    || self
                        .public_url
                        .as_deref()
                        .is_some_and(|u| u.starts_with("https://")),
                session_ttl: Duration::from_secs(self.console_session_hours * 3600),
                oidc_client: match (&self.oidc_audience, &self.public_url) {
                    (Some(client_id), Some(url)) => Some(crate::app::oidc::Client {
                        client_id: client_id.clone(),
                        client_secret: self.console_oidc_client_secret.clone(),
                        redirect_uri: format!("{}/sign-in/callback", url.trim_end_matches('/')),
                    }),
                    _ => None,
                },
            },
            platform_namespaces: self
                .reserved_namespaces
                .iter()
                .chain([&self.ingress_namespace])
                .filter(|n| !n.trim().is_empty())
                .cloned()
                .collect(),
        }
    }

    /// The OIDC settings, with the group rules read and checked; `None` without an issuer.
    pub fn oidc(&self) -> Result<Option<OidcSettings>, ConfigError> {
        let (Some(issuer), Some(audience)) = (&self.oidc_issuer, &self.oidc_audience) else {
            return Ok(None);
        };
        let group_roles = match &self.oidc_group_roles {
            None => Vec::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                let rules: Vec<GroupRole> =
                    serde_yaml::from_str(&text).map_err(|e| ConfigError::GroupRoles {
                        path: path.clone(),
                        why: e.to_string(),
                    })?;
                check_group_roles(&rules).map_err(|why| ConfigError::GroupRoles {
                    path: path.clone(),
                    why,
                })?;
                rules
            }
        };
        Ok(Some(OidcSettings {
            jwks_url: self.oidc_jwks_url.clone(),
            groups_claim: self.oidc_groups_claim.clone(),
            group_roles,
            ..OidcSettings::new(issuer, audience)
        }))
    }
}

/// A configuration the API cannot start with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the OIDC group rules in {path}: {why}")]
    GroupRoles { path: PathBuf, why: String },
}
