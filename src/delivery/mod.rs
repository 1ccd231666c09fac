//! Delivery: turning an outbox entry into an HTTP request for its target,
//! sending it, and draining a target's outbox in order.
//!
//! Each target kind is one file that only shapes the request ([`slack`],
//! [`webhook`]); sending, time-outs and the classification of the answer
//! live once, here:
//!
//! | the receiver answers            | outcome |
//! |---------------------------------|---------|
//! | 2xx                             | delivered: the entry is removed |
//! | 408, 429, 5xx, time-out, connect error | transient: the entry stays, retried later |
//! | any other 4xx                   | rejected: the entry stays (dead letters come with the retry schedule) |
//!
//! An entry is removed only after a 2xx, so a crash between the send and the
//! removal sends it again: at-least-once, with the stable `webhook-id`.
//! Errors name the target and the event, never the URL (Slack's carry a token).

pub mod signature;
pub mod slack;
pub mod webhook;

use std::{sync::Arc, time::Duration};

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use secrecy::{ExposeSecret, SecretString};

use crate::config::{Config, TargetConfig, TargetKind};
use crate::event::{Event, EventType};
use crate::http::{describe, retry_after, snippet};
use crate::render::{RenderError, Renderer};
use crate::shutdown::Shutdown;
use crate::store::{OutboxEntry, Store, StoreError};
use signature::SigningKey;

/// A configured destination, ready to send.
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    url: SecretString,
    signing: Option<SigningKey>,
    /// `None`: the webhook body is the event JSON itself.
    template: Option<String>,
    pub timeout: Duration,
    pub include_personal_data: bool,
    events: Option<Vec<EventType>>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

impl Target {
    pub fn from_config(config: &TargetConfig) -> Result<Target, String> {
        let signing = match &config.secret {
            Some(s) => Some(
                SigningKey::parse(s.expose_secret())
                    .map_err(|e| format!("target `{}`: `secret` {e}", config.name))?,
            ),
            None => None,
        };
        let template = match (config.kind, &config.template) {
            (_, Some(t)) => Some(t.clone()),
            (TargetKind::Slack, None) => Some("slack/default".to_owned()),
            (TargetKind::Webhook, None) => None,
        };
        Ok(Target {
            name: config.name.clone(),
            kind: config.kind,
            url: config.url.clone(),
            signing,
            template,
            timeout: config.timeout,
            include_personal_data: config.include_personal_data,
            events: config.events.clone(),
        })
    }

    pub fn all(config: &Config) -> Result<Vec<Target>, String> {
        config.targets.iter().map(Target::from_config).collect()
    }

    /// Routing: does this target receive an event with these change kinds?
    pub fn wants(&self, event: &Event) -> bool {
        match &self.events {
            None => true,
            Some(wanted) => event.kinds().any(|k| wanted.contains(&k)),
        }
    }

    pub fn template(&self) -> Option<&str> {
        self.template.as_deref()
    }

    /// The outbox entry this target gets for `event`.
    pub fn entry_for(&self, event: &Event, now_unix: i64) -> OutboxEntry {
        let shaped;
        let event = if self.include_personal_data {
            event
        } else {
            shaped = event.clone().without_personal_data();
            &shaped
        };
        OutboxEntry {
            event_id: event.id.clone(),
            kind: event.kind,
            invoice_id: event.invoice.invoice_id.clone(),
            event: serde_json::to_vec(event).expect("an event serializes"),
            enqueued_at: now_unix,
            attempts: 0,
            last_error: None,
        }
    }
}

/// Why one send did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    #[error("{0}")]
    Render(#[from] RenderError),
    #[error("the stored event cannot be read: {0}")]
    BadEntry(String),
    #[error("HTTP {status}{detail}")]
    Rejected { status: u16, detail: String },
    #[error("{reason}")]
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// A request ready to go: body and headers (the URL stays with the target).
pub struct Request {
    pub body: Vec<u8>,
    pub headers: HeaderMap,
}

/// Renders and sends entries; one per process, shared by every target.
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

    /// Exactly what `target` would send for `entry` at `timestamp`.
    pub fn request(
        &self,
        target: &Target,
        entry: &OutboxEntry,
        timestamp: i64,
    ) -> Result<Request, SendError> {
        let body = match target.template() {
            Some(name) => {
                let event: Event = serde_json::from_slice(&entry.event)
                    .map_err(|e| SendError::BadEntry(e.to_string()))?;
                self.renderer.render(name, &event)?.into_bytes()
            }
            None => entry.event.clone(),
        };
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        match target.kind {
            TargetKind::Slack => slack::headers(&mut headers),
            TargetKind::Webhook => webhook::headers(
                &mut headers,
                target.signing.as_ref(),
                entry,
                timestamp,
                &body,
            )
            .map_err(SendError::BadEntry)?,
        }
        Ok(Request { body, headers })
    }

    /// Sends `entry` to `target` once.
    pub async fn send(&self, target: &Target, entry: &OutboxEntry) -> Result<(), SendError> {
        let request = self.request(target, entry, chrono::Utc::now().timestamp())?;
        let response = self
            .http
            .post(target.url.expose_secret())
            .headers(request.headers)
            .body(request.body)
            .timeout(target.timeout)
            .send()
            .await
            .map_err(|e| SendError::Transient {
                reason: describe(e),
                retry_after: None,
            })?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let retry_after = retry_after(response.headers());
        let text = response.text().await.unwrap_or_default();
        let detail = snippet(&text, target.url.expose_secret(), 200);
        let detail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        if crate::retry::is_transient_status(status.as_u16()) {
            return Err(SendError::Transient {
                reason: format!("HTTP {}{detail}", status.as_u16()),
                retry_after,
            });
        }
        Err(SendError::Rejected {
            status: status.as_u16(),
            detail,
        })
    }
}

/// What draining one target's outbox did.
#[derive(Debug, Default)]
pub struct DrainReport {
    pub delivered: u64,
    pub pending: u64,
    /// The failure that stopped the drain, worded for a person.
    pub failure: Option<String>,
    /// What the receiver asked for with `Retry-After`, if it did.
    pub retry_after: Option<Duration>,
}

/// Sends `target`'s outbox oldest first and stops at the first failure, so
/// one invoice's events are never delivered out of order. When `stop` fires
/// no new send starts; the one in flight finishes.
pub async fn drain(
    store: &Store,
    sender: &Sender,
    target: &Target,
    stop: &Shutdown,
) -> Result<DrainReport, StoreError> {
    let outbox = store.outbox(&target.name)?;
    let mut report = DrainReport::default();
    while !stop.is_triggered()
        && let Some((seq, entry)) = outbox.first()?
    {
        match sender.send(target, &entry).await {
            Ok(()) => {
                outbox.remove(seq)?;
                report.delivered += 1;
                crate::metrics::delivery(&target.name, "delivered");
            }
            Err(e) => {
                if let SendError::Transient { retry_after, .. } = &e {
                    report.retry_after = *retry_after;
                }
                let reason = e.to_string();
                tracing::warn!(target = %target.name, event_id = %entry.event_id, attempt = entry.attempts + 1, %reason, "delivery failed");
                crate::metrics::delivery(&target.name, "failed");
                outbox.record_failure(seq, &entry, &reason)?;
                report.failure = Some(format!("event {}: {reason}", entry.event_id));
                break;
            }
        }
    }
    report.pending = record_outbox_metrics(store, &target.name)?;
    Ok(report)
}

/// Sets the outbox gauges of `target`; returns its depth.
pub fn record_outbox_metrics(store: &Store, target: &str) -> Result<u64, StoreError> {
    let outbox = store.outbox(target)?;
    let depth = outbox.len() as u64;
    let oldest = outbox.first()?.map(|(_, e)| e.enqueued_at);
    crate::metrics::outbox(target, depth, store.dead_letter_count(target), oldest);
    Ok(depth)
}
