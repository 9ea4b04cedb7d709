//! What the operator tells the outside: Prometheus metrics at `/metrics`, liveness at
//! `/healthz`, readiness at `/readyz` (the Kubernetes API answered recently).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use kube::runtime::reflector::Store;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use govcloud_tenant::crd::{Phase, Tenant};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub category: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PhaseLabels {
    pub phase: &'static str,
}

/// The operator's metrics and health, shared by the controller, the lease loop and the HTTP server.
pub struct Telemetry {
    registry: Registry,
    pub reconciles: Counter,
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub reconcile_duration: Histogram,
    pub tenants: Family<PhaseLabels, Gauge>,
    pub leader: Gauge,
    /// Metering windows closed, by outcome: observed, or unobserved (not reported: unmetered).
    pub metering_windows: Family<OutcomeLabels, Counter>,
    /// Samples the API took (accepted or duplicate) and batches it refused or that were dropped.
    pub metering_samples_delivered: Counter,
    pub metering_batches_dropped: Family<OutcomeLabels, Counter>,
    /// Batches waiting to be delivered.
    pub metering_buffered: Gauge,
    api_reachable: AtomicBool,
    tenant_store: std::sync::Mutex<Option<Store<Tenant>>>,
}

impl Default for Telemetry {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("govcloud_operator");
        let reconciles = Counter::default();
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        let reconcile_duration = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let tenants = Family::<PhaseLabels, Gauge>::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Tenant reconciliations run",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_errors",
            "Failed reconciliations, by error category",
            reconcile_errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "How long a reconciliation took",
            reconcile_duration.clone(),
        );
        registry.register("tenants", "Tenants by phase", tenants.clone());
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        let metering_windows = Family::<OutcomeLabels, Counter>::default();
        let metering_samples_delivered = Counter::default();
        let metering_batches_dropped = Family::<OutcomeLabels, Counter>::default();
        let metering_buffered = Gauge::default();
        registry.register(
            "metering_windows",
            "Metering windows closed: observed (reported) or unobserved (left unmetered)",
            metering_windows.clone(),
        );
        registry.register(
            "metering_samples_delivered",
            "Usage samples the API took",
            metering_samples_delivered.clone(),
        );
        registry.register(
            "metering_batches_dropped",
            "Usage batches never delivered: refused by the API, or too old to be taken (their windows are unmetered)",
            metering_batches_dropped.clone(),
        );
        registry.register(
            "metering_buffered_batches",
            "Usage batches waiting to be delivered",
            metering_buffered.clone(),
        );
        Self {
            metering_windows,
            metering_samples_delivered,
            metering_batches_dropped,
            metering_buffered,
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            tenants,
            leader,
            api_reachable: AtomicBool::new(false),
            tenant_store: std::sync::Mutex::new(None),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

/// Records a reconciliation's duration when dropped.
pub struct ReconcileTimer<'a> {
    telemetry: &'a Telemetry,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.telemetry
            .reconcile_duration
            .observe(self.start.elapsed().as_secs_f64());
    }
}

impl Telemetry {
    pub fn reconcile_started(&self) -> ReconcileTimer<'_> {
        self.reconciles.inc();
        ReconcileTimer {
            telemetry: self,
            start: Instant::now(),
        }
    }

    pub fn reconcile_failed(&self, category: &'static str) {
        self.reconcile_errors
            .get_or_create(&ErrorLabels { category })
            .inc();
    }

    pub fn set_api_reachable(&self, ok: bool) {
        self.api_reachable.store(ok, Ordering::Relaxed);
    }

    pub fn watch_tenants(&self, store: Store<Tenant>) {
        if let Ok(mut s) = self.tenant_store.lock() {
            *s = Some(store);
        }
    }

    /// The Prometheus text exposition, with the tenants-by-phase gauge counted now.
    pub fn render(&self) -> String {
        if let Ok(store) = self.tenant_store.lock()
            && let Some(store) = store.as_ref()
        {
            let mut counts = [0i64; 6];
            for t in store.state() {
                let i = match t.status.as_ref().and_then(|s| s.phase) {
                    Some(Phase::Provisioning) => 0,
                    Some(Phase::Ready) => 1,
                    Some(Phase::Degraded) => 2,
                    Some(Phase::Suspended) => 3,
                    Some(Phase::Terminating) => 4,
                    None => 5,
                };
                counts[i] += 1;
            }
            for (i, phase) in [
                "Provisioning",
                "Ready",
                "Degraded",
                "Suspended",
                "Terminating",
                "Unknown",
            ]
            .into_iter()
            .enumerate()
            {
                self.tenants
                    .get_or_create(&PhaseLabels { phase })
                    .set(counts[i]);
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

async fn metrics(State(t): State<Arc<Telemetry>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        t.render(),
    )
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(t): State<Arc<Telemetry>>) -> (StatusCode, &'static str) {
    if t.api_reachable.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the Kubernetes API has not answered yet",
        )
    }
}

pub fn router(t: Arc<Telemetry>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_count_reconciles_errors_by_category_and_leadership() {
        let t = Telemetry::default();
        drop(t.reconcile_started());
        drop(t.reconcile_started());
        t.reconcile_failed("apply_object");
        t.leader.set(1);
        let text = t.render();
        assert!(
            text.contains("govcloud_operator_reconciles_total 2"),
            "{text}"
        );
        assert!(
            text.contains("govcloud_operator_reconcile_errors_total{category=\"apply_object\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("govcloud_operator_reconcile_duration_seconds_count 2"),
            "{text}"
        );
        assert!(text.contains("govcloud_operator_leader 1"), "{text}");
    }
}
