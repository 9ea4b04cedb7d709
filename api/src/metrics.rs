//! Prometheus metrics of the API: requests by route and status, their duration, and the
//! state of the work that the sync loop carries out.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub method: String,
    pub route: String,
    pub status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    pub method: String,
    pub route: String,
}

pub struct Metrics {
    registry: Registry,
    pub requests: Family<RequestLabels, Counter>,
    pub duration: Family<RouteLabels, Histogram>,
    pub tenants_unapplied: Gauge,
    pub sync_failures: Counter,
    /// Tenants the API manages whose spec was changed in the cluster and put back.
    pub tenant_drift: Counter,
    /// Usage samples ingested, by outcome (accepted, duplicate, or the refusal's reason).
    pub usage_samples: Family<OutcomeLabels, Counter>,
    /// Budget alerts raised, by measure and threshold.
    pub budget_alerts: Family<AlertLabels, Counter>,
    /// The current month's alerts: 1 per tenant, measure and threshold reached.
    pub budget_alerts_active: Family<ActiveAlertLabels, Gauge>,
    /// Invoices issued, and billing passes that failed for a tenant.
    pub invoices_issued: Counter,
    pub billing_failures: Counter,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AlertLabels {
    pub measure: String,
    pub threshold: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActiveAlertLabels {
    pub organization: String,
    pub tenant: String,
    pub measure: String,
    pub threshold: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("govcloud_api");
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.001, 2.0, 14))
        });
        let tenants_unapplied = Gauge::default();
        let sync_failures = Counter::default();
        let tenant_drift = Counter::default();
        registry.register("http_requests", "HTTP requests answered", requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "Time to answer HTTP requests",
            duration.clone(),
        );
        registry.register(
            "tenants_unapplied",
            "Tenants whose desired state the cluster does not have yet",
            tenants_unapplied.clone(),
        );
        registry.register(
            "sync_failures",
            "Failed attempts to apply a tenant to the cluster",
            sync_failures.clone(),
        );
        registry.register(
            "tenant_spec_reverted",
            "Changes made in the cluster to Tenants the API manages, put back to the API's spec",
            tenant_drift.clone(),
        );
        let usage_samples = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "usage_samples",
            "Usage samples ingested, by outcome: accepted, duplicate, or why they were refused",
            usage_samples.clone(),
        );
        let budget_alerts = Family::<AlertLabels, Counter>::default();
        registry.register(
            "budget_alerts",
            "Budget alerts raised (each tenant, month, measure and threshold once)",
            budget_alerts.clone(),
        );
        let budget_alerts_active = Family::<ActiveAlertLabels, Gauge>::default();
        registry.register(
            "budget_alert_active",
            "The current month's budget alerts: 1 for each tenant, measure (spend or forecast) and threshold (80 or 100 percent) reached",
            budget_alerts_active.clone(),
        );
        let invoices_issued = Counter::default();
        registry.register(
            "invoices_issued",
            "Invoices issued",
            invoices_issued.clone(),
        );
        let billing_failures = Counter::default();
        registry.register(
            "billing_failures",
            "Tenants' months that could not be rated or issued in a billing pass",
            billing_failures.clone(),
        );
        Self {
            budget_alerts,
            budget_alerts_active,
            invoices_issued,
            billing_failures,
            usage_samples,
            tenant_drift,
            registry,
            requests,
            duration,
            tenants_unapplied,
            sync_failures,
        }
    }
}

impl Metrics {
    /// Counts a batch's samples by outcome.
    pub fn record_ingest(&self, outcome: &govcloud_tenant::usage::BatchOutcome) {
        let count = |what: &str, n: u64| {
            if n > 0 {
                self.usage_samples
                    .get_or_create(&OutcomeLabels {
                        outcome: what.to_string(),
                    })
                    .inc_by(n);
            }
        };
        count("accepted", outcome.accepted);
        count("duplicate", outcome.duplicate);
        for r in &outcome.refusals {
            count(&r.reason, r.count);
        }
    }

    /// Sets the gauge of active alerts to exactly `alerts` (the current month's).
    pub fn set_active_alerts(&self, alerts: impl IntoIterator<Item = ActiveAlertLabels>) {
        self.budget_alerts_active.clear();
        for a in alerts {
            self.budget_alerts_active.get_or_create(&a).set(1);
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            tracing::warn!("metrics could not be encoded");
        }
        out
    }
}

/// Middleware counting and timing every request by its route template (never its raw path,
/// which would give one series per tenant).
pub async fn track(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let response = next.run(req).await;
    metrics
        .duration
        .get_or_create(&RouteLabels {
            method: method.clone(),
            route: route.clone(),
        })
        .observe(started.elapsed().as_secs_f64());
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            route,
            status: response.status().as_u16(),
        })
        .inc();
    response
}
