//! Delivery: getting committed outbox entries to their targets, once each,
//! in order per invoice, at a pace each target can take, without ever
//! blocking on an entry that cannot succeed.
//!
//! - [`queue`]: an entry's life as data (due, retry at, dead letter, replay).
//! - [`generations`]: where pending entries live, so that a delivered one
//!   costs a bit in a mark instead of a removal.
//! - [`driver`]: the one driver that drains a target's queue: picks what is
//!   due (per-invoice order), composes requests (single events, digests for
//!   chat targets, batches for webhooks), sends them with the target's
//!   concurrency and pace, and applies the answer. `poll`, the daemon's
//!   workers, the CLI and the admin API all go through it and [`queue`].
//! - [`targets`]: one folder per kind (config, encoder, classification,
//!   health check).
//! - [`pace`]: a token bucket per target; [`digest`]: summary messages;
//!   [`alerts`]: telling a chat target when delivery or polling is failing.
//!
//! An entry is let go of (marked, see [`generations`]) only after a 2xx, so a
//! crash between the send and the mark sends it again: at-least-once, with the stable `webhook-id`.
//! Errors name the target and the event, never the URL (Slack's carry a token).

pub mod alerts;
pub mod digest;
pub mod driver;
pub mod generations;
pub mod pace;
pub mod queue;
pub mod targets;

use std::{sync::Arc, time::Duration};

use reqwest::header::HeaderMap;
use serde::Deserialize;

use crate::event::Event;
use crate::render::Renderer;
use queue::{DeliveryError, ErrorKind, OutboxEntry};
pub use targets::{EncodeError, Outcome, Target, TargetConfig, TargetKind};

/// `[delivery]`: the retry policy every target starts from, and self-alerts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    /// The waits after the first attempt; when they run out, a dead letter.
    #[serde(
        default = "default_retry_schedule",
        deserialize_with = "crate::config::durations"
    )]
    pub retry_schedule: Vec<Duration>,
    /// Per-send time-out.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration"
    )]
    pub timeout: Duration,
    /// Each wait is drawn within ±jitter of its step.
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// A chat target told when delivery or polling is failing.
    #[serde(default)]
    pub alerts_to: Option<String>,
    /// How long a target must have been failing before an alert.
    #[serde(
        default = "default_alert_after",
        deserialize_with = "crate::config::duration"
    )]
    pub alert_after: Duration,
}

impl Default for DeliveryConfig {
    fn default() -> Self {
        DeliveryConfig {
            retry_schedule: default_retry_schedule(),
            timeout: default_timeout(),
            jitter: default_jitter(),
            alerts_to: None,
            alert_after: default_alert_after(),
        }
    }
}

/// Svix's and Standard Webhooks' schedule: about a day and a half in all.
fn default_retry_schedule() -> Vec<Duration> {
    [5, 300, 1800, 7200, 18_000, 36_000, 36_000]
        .map(Duration::from_secs)
        .to_vec()
}
fn default_timeout() -> Duration {
    Duration::from_secs(15)
}
fn default_jitter() -> f64 {
    0.2
}
fn default_alert_after() -> Duration {
    Duration::from_secs(15 * 60)
}

impl DeliveryConfig {
    /// Checks ranges; the error names the key within `[delivery]`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        targets::check_schedule(&self.retry_schedule).map_err(|m| ("retry_schedule", m))?;
        if self.timeout < Duration::from_millis(10) || self.timeout > Duration::from_secs(3600) {
            return Err(("timeout", "is out of range: expected 10ms to 1h".into()));
        }
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err((
                "jitter",
                format!("{} is out of range: expected 0 to 1", self.jitter),
            ));
        }
        Ok(())
    }
}

/// A request ready to go: body and headers (the URL stays with the target).
pub struct Request {
    pub body: Vec<u8>,
    pub headers: HeaderMap,
    /// The `webhook-id` it carries, for webhooks.
    pub webhook_id: Option<String>,
}

/// The event an entry holds.
pub fn read_event(entry: &OutboxEntry) -> Result<Event, EncodeError> {
    serde_json::from_slice(&entry.event).map_err(|e| EncodeError::Unreadable(e.to_string()))
}

/// Shapes and sends requests; one per process, shared by every target.
pub struct Sender {
    http: reqwest::Client,
    renderer: Arc<Renderer>,
}

impl Sender {
    pub fn new(http: reqwest::Client, renderer: Arc<Renderer>) -> Sender {
        Sender { http, renderer }
    }

    pub fn renderer(&self) -> &Renderer {
        &self.renderer
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Exactly what `target` would send for `entries` at `timestamp`.
    pub fn request(
        &self,
        target: &Target,
        entries: &[&OutboxEntry],
        digest: Option<&digest::Digest>,
        timestamp: i64,
    ) -> Result<Request, EncodeError> {
        target.encode(&self.renderer, entries, digest, timestamp)
    }

    /// Sends a request to `target` once and classifies the answer. A
    /// receiver may echo what it was sent: `personal` (the personal values
    /// the request carried; asked for only when the answer is not a success)
    /// are redacted from its answer before anything keeps it, and so is
    /// whatever looks like a phone, an e-mail or an RRN.
    pub async fn post(
        &self,
        target: &Target,
        request: Request,
        personal: impl FnOnce() -> Vec<String>,
    ) -> Outcome {
        let sent = self
            .http
            .post(target.endpoint().clone())
            .headers(request.headers)
            .body(request.body)
            .timeout(target.timeout)
            .send()
            .await;
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                return Outcome::Retry {
                    error: DeliveryError {
                        at: chrono::Utc::now().timestamp_millis(),
                        kind: ErrorKind::Transport,
                        status: None,
                        detail: crate::http::describe(e),
                    },
                    retry_after: None,
                };
            }
        };
        let status = response.status().as_u16();
        if response.status().is_success() && target.kind.success_is_status() {
            // Read to the end so the connection is reused; a body cut off
            // after a 2xx is still a 2xx.
            let _ = response.bytes().await;
            return Outcome::Delivered;
        }
        let headers = response.headers().clone();
        let body = response.text().await.unwrap_or_default();
        let body = crate::mask::redact(&body, &personal());
        let masked = crate::http::snippet(&body, target.url(), usize::MAX);
        target.classify(status, &headers, &masked)
    }
}
