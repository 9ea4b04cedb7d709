//! Delivery of usage batches to the API: a bounded buffer, drained in order with retries.
//!
//! A batch the API answers 2xx is done (accepted or duplicate: re-sending is harmless). A batch
//! it refuses with 4xx will not get better and is dropped (its windows stay unmetered). Network
//! errors and 5xx are retried with backoff. A batch older than the buffer's span is dropped
//! too: the API closes hours after its grace period, and the windows are reported as
//! unmetered there, never back-filled.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use govcloud_tenant::usage::{Batch, BatchOutcome};
use tokio::sync::Notify;

use crate::telemetry::{OutcomeLabels, Telemetry};

/// Where batches go and who sends them.
#[derive(Clone)]
pub struct Target {
    /// `https://govcloud-api.govcloud-system.svc:8080`: the API's base URL.
    pub url: String,
    /// The `metering` principal's API token.
    pub token: String,
    pub client: reqwest::Client,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token.
        f.debug_struct("Target")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

/// Batches waiting, oldest first, with the start of their window.
#[derive(Default)]
pub struct Buffer {
    queue: Mutex<VecDeque<(DateTime<Utc>, Batch)>>,
    ready: Notify,
}

fn lock(b: &Buffer) -> std::sync::MutexGuard<'_, VecDeque<(DateTime<Utc>, Batch)>> {
    b.queue
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Buffer {
    /// Queues a window's batches, dropping the oldest beyond `max_batches`.
    pub fn push(
        &self,
        window: DateTime<Utc>,
        batches: Vec<Batch>,
        max_batches: usize,
        telemetry: &Telemetry,
    ) {
        let mut q = lock(self);
        for b in batches {
            q.push_back((window, b));
        }
        while q.len() > max_batches.max(1) {
            q.pop_front();
            telemetry
                .metering_batches_dropped
                .get_or_create(&OutcomeLabels {
                    outcome: "buffer-full",
                })
                .inc();
        }
        telemetry
            .metering_buffered
            .set(i64::try_from(q.len()).unwrap_or(i64::MAX));
        drop(q);
        self.ready.notify_one();
    }

    pub fn len(&self) -> usize {
        lock(self).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

enum Sent {
    Done(BatchOutcome),
    Refused(String),
    Retry(String),
}

async fn send(target: &Target, batch: &Batch) -> Sent {
    let url = format!("{}/v1/usage/batches", target.url.trim_end_matches('/'));
    let answer = target
        .client
        .post(&url)
        .bearer_auth(&target.token)
        .json(batch)
        .send()
        .await;
    match answer {
        Err(e) => Sent::Retry(e.to_string()),
        Ok(r) if r.status().is_success() => match r.json::<BatchOutcome>().await {
            Ok(o) => Sent::Done(o),
            Err(e) => Sent::Retry(format!("unreadable answer: {e}")),
        },
        Ok(r) if r.status().is_client_error() && r.status().as_u16() != 429 => {
            let status = r.status();
            let body = r.text().await.unwrap_or_default();
            Sent::Refused(format!(
                "{status}: {}",
                body.chars().take(500).collect::<String>()
            ))
        }
        Ok(r) => Sent::Retry(format!("HTTP {}", r.status())),
    }
}

/// Drains the buffer until the process ends.
pub async fn run(
    buffer: Arc<Buffer>,
    target: Target,
    max_age: Duration,
    telemetry: Arc<Telemetry>,
) {
    let mut backoff = Duration::from_millis(500);
    loop {
        let front = lock(&buffer).front().cloned();
        let Some((window, batch)) = front else {
            buffer.ready.notified().await;
            continue;
        };
        let age = (Utc::now() - window).to_std().unwrap_or_default();
        if age > max_age {
            tracing::warn!(%window, "usage batch too old to deliver; its windows stay unmetered");
            drop_front(&buffer, &telemetry, "too-old");
            continue;
        }
        match send(&target, &batch).await {
            Sent::Done(o) => {
                telemetry
                    .metering_samples_delivered
                    .inc_by(o.accepted + o.duplicate);
                if o.refused > 0 {
                    tracing::warn!(%window, refused = o.refused, refusals = ?o.refusals, "the API refused usage samples");
                }
                pop(&buffer, &telemetry);
                backoff = Duration::from_millis(500);
            }
            Sent::Refused(why) => {
                tracing::error!(%window, %why, "the API refused a usage batch; dropping it");
                drop_front(&buffer, &telemetry, "refused");
            }
            Sent::Retry(why) => {
                tracing::warn!(%window, %why, retry_in = ?backoff, "cannot deliver usage; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

fn pop(buffer: &Buffer, telemetry: &Telemetry) {
    let mut q = lock(buffer);
    q.pop_front();
    telemetry
        .metering_buffered
        .set(i64::try_from(q.len()).unwrap_or(i64::MAX));
}

fn drop_front(buffer: &Buffer, telemetry: &Telemetry, outcome: &'static str) {
    pop(buffer, telemetry);
    telemetry
        .metering_batches_dropped
        .get_or_create(&OutcomeLabels { outcome })
        .inc();
}
