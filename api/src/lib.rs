//! govcloud's HTTP API: where provincial IT departments onboard agencies and approve capacity
//! requests, agencies get kubeconfigs, and every change lands in an audit log.
//!
//! In layers, each importing only those below it:
//!
//! - [`http`]: routes, extractors, problem documents, pagination, the OpenAPI document;
//! - [`app`]: one function per use case, each in one transaction, and the sync loop;
//! - [`db`] (all SQL, checked at compile time) and [`cluster`] (all Kubernetes calls);
//! - [`domain`]: the rules, as pure code.
//!
//! [`app()`] builds the router from an [`AppState`]; [`serve`] runs it on a socket (HTTPS when
//! a certificate is configured) until shutdown. The `govcloud` binary wires them to its flags.

pub mod app;
pub mod cluster;
pub mod config;
pub mod console;
pub mod db;
#[cfg(feature = "dev")]
pub mod dev;
pub mod domain;
pub mod http;
pub mod metrics;
pub mod serve;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sqlx::PgPool;

use crate::app::oidc::Oidc;
use crate::cluster::Cluster;
use crate::domain::capacity::Overcommit;
use crate::metrics::Metrics;

pub use serve::serve;

/// What the API's behaviour depends on, beyond its connections.
#[derive(Debug, Clone)]
pub struct Settings {
    pub overcommit: Overcommit,
    /// How long an issued kubeconfig's token lives.
    pub kubeconfig_ttl: Duration,
    /// The longest a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// The platform's own namespaces, which no tenant may have (besides `default` and `kube-*`):
    /// the same list the operator is given.
    pub platform_namespaces: Vec<String>,
    /// How long after an hour ends its windows are still taken; then it is rolled up and closed.
    pub metering_grace: Duration,
    pub billing: Billing,
    pub console: Console,
}

/// How people sign in to the web console.
#[derive(Debug, Clone)]
pub struct Console {
    /// `govcloud dev` only: a page that signs in as any seeded person, without a password.
    pub dev_sign_in: bool,
    /// Cookies marked `Secure` (the API is served over HTTPS, here or at its proxy).
    pub secure_cookies: bool,
    /// How long a session lasts after signing in.
    pub session_ttl: Duration,
    /// The OIDC client the console signs people in with (authorization code with PKCE).
    pub oidc_client: Option<crate::app::oidc::Client>,
}

impl Default for Console {
    fn default() -> Self {
        Self {
            dev_sign_in: false,
            secure_cookies: false,
            session_ttl: Duration::from_secs(8 * 3600),
            oidc_client: None,
        }
    }
}

/// When and how months are closed into invoices.
#[derive(Debug, Clone, Copy)]
pub struct Billing {
    /// How long after a month ends its drafts are still recomputed; then they are issued.
    pub grace: Duration,
    /// Whether drafts issue themselves once the grace period ends.
    pub auto_issue: bool,
    /// How often the billing loop runs.
    pub interval: Duration,
}

impl Default for Billing {
    fn default() -> Self {
        Self {
            grace: Duration::from_secs(2 * 86_400),
            auto_issue: true,
            interval: Duration::from_secs(300),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            overcommit: Overcommit::default(),
            kubeconfig_ttl: Duration::from_secs(3600),
            request_timeout: Duration::from_secs(30),
            platform_namespaces: govcloud_tenant::names::default_platform_namespaces(),
            metering_grace: Duration::from_secs(600),
            billing: Billing::default(),
            console: Console::default(),
        }
    }
}

/// Everything a handler needs.
#[derive(Clone)]
pub struct AppState {
    pub db: PgPool,
    pub cluster: Arc<Cluster>,
    pub oidc: Option<Arc<Oidc>>,
    pub settings: Arc<Settings>,
    pub metrics: Arc<Metrics>,
    /// Verified API tokens, remembered briefly ([`app::token_cache`]).
    pub tokens: Arc<app::token_cache::TokenCache>,
    /// Tenants read by name, remembered briefly ([`app::tenant_cache`]).
    pub tenants: Arc<app::tenant_cache::TenantCache>,
}

/// The API's router.
pub fn app(state: AppState) -> Router {
    http::router(state)
}
