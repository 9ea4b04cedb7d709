//! Shared by the API's tests: the API on a `#[sqlx::test]` database, wired to a fresh
//! Kubernetes API simulator (with the Tenant CRD) through a real `kube::Client`, seeded with
//! the demo data of `govcloud dev`, and a helper to call it with a role's token.
#![allow(dead_code)]

use std::collections::BTreeMap;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use govcloud_api::cluster::KubeconfigTarget;
use govcloud_api::{AppState, Settings, app};
use govcloud_tenant::crd::Tenant;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;
use kube::api::{Api, PostParams};
use kubesim::KubeSim;
use serde_json::Value;
use sqlx::PgPool;
use tower::ServiceExt;

pub struct TestApi {
    pub state: AppState,
    pub sim: KubeSim,
    pub tokens: BTreeMap<String, String>,
    _dir: tempfile::TempDir,
}

pub async fn install_crd(client: &kube::Client) {
    Api::<CustomResourceDefinition>::all(client.clone())
        .create(&PostParams::default(), &Tenant::crd())
        .await
        .unwrap_or_else(|e| panic!("installing the CRD: {e}"));
}

pub async fn state_for(db: PgPool, sim: &KubeSim, settings: Settings) -> AppState {
    state_with_oidc(db, sim, settings, None).await
}

pub async fn state_with_oidc(
    db: PgPool,
    sim: &KubeSim,
    settings: Settings,
    oidc: Option<govcloud_api::app::oidc::Oidc>,
) -> AppState {
    let client = sim.client().unwrap_or_else(|e| panic!("{e}"));
    let target = KubeconfigTarget {
        server: sim.url(),
        certificate_authority_data: None,
        insecure_skip_tls_verify: false,
    };
    let (state, watches) = govcloud_api::serve::state(db, client, target, oidc, settings);
    tokio::spawn(watches);
    state
}

impl TestApi {
    pub async fn new(db: PgPool) -> Self {
        Self::with_settings(db, Settings::default()).await
    }

    pub async fn with_settings(db: PgPool, settings: Settings) -> Self {
        Self::with_oidc(db, settings, None).await
    }

    pub async fn with_oidc(
        db: PgPool,
        settings: Settings,
        oidc: Option<govcloud_api::app::oidc::Oidc>,
    ) -> Self {
        let sim = KubeSim::start().await.unwrap_or_else(|e| panic!("{e}"));
        install_crd(&sim.client().unwrap_or_else(|e| panic!("{e}"))).await;
        let state = state_with_oidc(db, &sim, settings, oidc).await;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let tokens = govcloud_api::dev::seed::seed(&state, &dir.path().join("tokens.json"))
            .await
            .unwrap_or_else(|e| panic!("seeding: {e}"));
        Self {
            state,
            sim,
            tokens,
            _dir: dir,
        }
    }

    pub fn token(&self, role: &str) -> &str {
        self.tokens
            .get(role)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("no token for {role}"))
    }

    pub fn router(&self) -> Router {
        app(self.state.clone())
    }

    /// Calls the API as `role` (`None`: no credentials); answers the status and the JSON body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        role: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let token = role.map(|r| self.token(r).to_string());
        call_with(self.router(), method, path, token.as_deref(), body).await
    }

    pub async fn get(&self, path: &str, role: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(role), None).await
    }

    pub async fn post(&self, path: &str, role: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(role), Some(body)).await
    }

    pub fn kube(&self) -> kube::Client {
        self.sim.client().unwrap_or_else(|e| panic!("{e}"))
    }
}

pub async fn call_with(
    router: Router,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut builder = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        builder = builder.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let request = match body {
        Some(b) => builder
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(b.to_string())),
        None => builder.body(Body::empty()),
    }
    .unwrap_or_else(|e| panic!("{e}"));
    let (status, content_type, bytes) = send(router, request).await;
    if !status.is_success() {
        assert_eq!(
            content_type,
            "application/problem+json",
            "{status} {}",
            String::from_utf8_lossy(&bytes)
        );
    }
    let json = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    (status, json)
}

/// Sends a request; answers the status, the content type and the body.
async fn send(router: Router, request: Request<Body>) -> (StatusCode, String, Vec<u8>) {
    let response = router
        .oneshot(request)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let status = response.status();
    let content_type = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let bytes = axum::body::to_bytes(response.into_body(), 64 << 20)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (status, content_type, bytes.to_vec())
}

/// A new capacity request by the platform admin; answers its id.
pub async fn new_request(api: &TestApi, tenant: &str, cpu: &str) -> String {
    let (status, body) = api
        .post(
            "/v1/capacity-requests",
            "platform-admin",
            serde_json::json!({"tenant": tenant, "namespace": "prod", "quota": {"cpu": cpu}, "reason": "test"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {body}"))
        .to_string()
}

/// Starts the operator against the test's cluster; it stops with the runtime.
pub async fn start_operator(api: &TestApi) {
    tokio::spawn(govcloud_operator::controller::run(
        api.kube(),
        govcloud_operator::controller::Settings::default(),
        std::sync::Arc::new(govcloud_operator::telemetry::Telemetry::default()),
        std::future::pending(),
    ));
}

/// A child process (a `govcloud` server), killed if the test ends before stopping it.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The URL of a `#[sqlx::test]` database, for a `govcloud` process to connect to.
pub fn database_url(opts: &sqlx::postgres::PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        opts.get_username(),
        opts.get_host(),
        opts.get_port(),
        opts.get_database().unwrap_or("postgres")
    )
}

/// Calls the API as `role` and answers the status, the content type and the raw body (for
/// exports that are not JSON).
pub async fn get_raw(api: &TestApi, path: &str, role: &str) -> (StatusCode, String, Vec<u8>) {
    let request = Request::builder()
        .method(Method::GET)
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {}", api.token(role)))
        .body(Body::empty())
        .unwrap_or_else(|e| panic!("{e}"));
    send(api.router(), request).await
}

/// Last month's usage of the demo agencies and their invoices for it, issued, with this
/// month's drafts and the demo budget (what `govcloud dev` seeds).
pub async fn seed_billing(api: &TestApi) {
    govcloud_api::dev::seed::seed_usage(&api.state, api.token("metering"))
        .await
        .unwrap_or_else(|e| panic!("seeding usage: {e}"));
    govcloud_api::dev::seed::seed_billing(&api.state, api.token("platform-admin"))
        .await
        .unwrap_or_else(|e| panic!("seeding invoices: {e}"));
}

/// The month before this one (YYYY-MM, Asia/Ho_Chi_Minh).
pub fn last_month() -> String {
    govcloud_api::domain::period::month_before(chrono::Utc::now())
}

/// The id of `tenant`'s invoice for `month`, as `role` lists it.
pub async fn invoice_of(api: &TestApi, tenant: &str, month: &str, role: &str) -> String {
    let (status, body) = api
        .get(
            &format!("/v1/invoices?tenant={tenant}&month={month}&kind=invoice"),
            role,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["items"][0]["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no invoice of {tenant} for {month}: {body}"))
        .to_string()
}
