//! Target kinds. Each kind is a folder with the same parts, like vector's
//! sinks:
//!
//! - its **config** rules (`validate`: which keys apply, what they must hold;
//!   the chat kinds share theirs);
//! - its **encoder** (entries → request body and headers);
//! - its **response classification** (what a receiver's answer means);
//! - a **health check** (`check --online` probes the target without posting
//!   into a channel where the service allows it).
//!
//! What every kind shares lives here once: the `[[targets]]` table, routing,
//! the outbox entry a target gets for an event, and the HTTP classification
//! (2xx delivered; 408/429/5xx and transport errors retried; 3xx and other
//! 4xx dead letters, with the status and the first 512 bytes of the body;
//! 410 also marks the target as gone). Adding a kind is one new folder and
//! one arm in [`TargetKind`]'s dispatch below.

pub mod jandi;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use reqwest::header::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use super::queue::{DeliveryError, ErrorKind, OutboxEntry};
use super::{DeliveryConfig, Request};
use crate::event::{Event, EventType};
use crate::render::Renderer;
use crate::retry::RetryPolicy;
use webhook::signature::SigningKey;

/// One `[[targets]]` table. Keys that only some kinds use are checked by
/// that kind's `validate`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    pub name: String,
    /// A top-level target with several merchants: whose events it receives
    /// (every merchant's when absent). Not allowed in `[[merchants.targets]]`.
    #[serde(default)]
    pub merchants: Option<Vec<String>>,
    pub kind: TargetKind,
    #[serde(deserialize_with = "crate::config::secret")]
    pub url: SecretString,
    /// Which change kinds this target receives; all when absent.
    #[serde(default)]
    pub events: Option<Vec<EventType>>,
    /// Which status categories (of the invoice's status now) it receives; all when absent.
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    /// Recipient and buyer in the body: raw for webhooks, masked for chat targets.
    #[serde(default)]
    pub include_personal_data: bool,
    /// `ko` (default) or `en`: labels and headers of messages.
    #[serde(default)]
    pub language: Option<crate::render::Lang>,
    /// `whsec_…` signing secret(s), space-separated during rotation (webhook only).
    #[serde(default, deserialize_with = "crate::config::optional_secret")]
    pub secret: Option<SecretString>,
    /// Template name under `templates_dir`, e.g. `slack/default`.
    #[serde(default)]
    pub template: Option<String>,
    /// Per-send time-out; `[delivery] timeout` when absent.
    #[serde(default, deserialize_with = "crate::config::optional_duration")]
    pub timeout: Option<Duration>,
    /// The waits after the first attempt; `[delivery] retry_schedule` when absent.
    #[serde(default, deserialize_with = "crate::config::optional_durations")]
    pub retry_schedule: Option<Vec<Duration>>,
    #[serde(default)]
    pub jitter: Option<f64>,
    /// Requests per second; 1 for chat targets, unlimited for webhooks.
    #[serde(default)]
    pub rate_per_second: Option<f64>,
    /// Requests allowed at once above the rate; 1 when absent.
    #[serde(default)]
    pub burst: Option<u32>,
    /// Requests in flight at once (different invoices); 4 for webhooks, 1 for chat.
    #[serde(default)]
    pub concurrency: Option<usize>,
    /// Chat targets: more than this many events due at once are sent as digests.
    #[serde(default)]
    pub digest_over: Option<usize>,
    /// Webhook targets: up to this many events per request, as a JSON array.
    #[serde(default)]
    pub batch_max: Option<usize>,
    /// Allow a plain `http://` URL to a host other than this machine.
    #[serde(default)]
    pub allow_insecure: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetKind {
    Slack,
    Jandi,
    Webhook,
}

impl std::fmt::Display for TargetKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TargetKind::Slack => "slack",
            TargetKind::Jandi => "jandi",
            TargetKind::Webhook => "webhook",
        })
    }
}

impl TargetKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::Slack => "slack",
            TargetKind::Jandi => "jandi",
            TargetKind::Webhook => "webhook",
        }
    }

    /// A chat target reads as a message to people: paced, digested, masked.
    pub fn is_chat(self) -> bool {
        match self {
            TargetKind::Slack | TargetKind::Jandi => true,
            TargetKind::Webhook => false,
        }
    }

    /// Whether a 2xx alone means delivered (no need to read the body).
    pub fn success_is_status(self) -> bool {
        match self {
            TargetKind::Slack | TargetKind::Jandi | TargetKind::Webhook => true,
        }
    }

    fn default_template(self) -> Option<&'static str> {
        match self {
            TargetKind::Slack => Some(slack::TEMPLATE),
            TargetKind::Jandi => Some(jandi::TEMPLATE),
            TargetKind::Webhook => None,
        }
    }

    /// Checks the keys only this kind uses; the error names the key.
    pub fn validate(self, config: &TargetConfig) -> Result<(), (&'static str, String)> {
        match self {
            TargetKind::Slack | TargetKind::Jandi => validate_chat(config),
            TargetKind::Webhook => webhook::validate(config),
        }
    }
}

/// Checks one `[[targets]]` table; the error is (key within it, message).
pub fn validate(config: &TargetConfig) -> Result<(), (&'static str, String)> {
    let name_ok = !config.name.is_empty()
        && config
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name_ok {
        return Err((
            "name",
            format!(
                "`{}` is not a valid name: expected letters, digits, `-` or `_`",
                config.name
            ),
        ));
    }
    // The URL may carry a token (Slack's do): say what is wrong, never quote it.
    match reqwest::Url::parse(config.url.expose_secret()) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Ok(_) => return Err(("url", "the URL is not an http(s) URL".into())),
        Err(e) => return Err(("url", format!("the URL is not a valid URL ({e})"))),
    }
    crate::config::check_transport(config.url.expose_secret(), config.allow_insecure)
        .map_err(|m| ("url", format!("the URL {m}")))?;
    if let Some(t) = config.timeout
        && (t < Duration::from_millis(10) || t > Duration::from_secs(3600))
    {
        return Err(("timeout", "is out of range: expected 10ms to 1h".into()));
    }
    if let Some(categories) = &config.categories {
        if categories.is_empty() {
            return Err((
                "categories",
                "is empty, so the target would receive nothing: remove the key to receive every category".into(),
            ));
        }
        for c in categories {
            c.parse::<crate::status::Category>()
                .map_err(|m| ("categories", m))?;
        }
    }
    if matches!(&config.events, Some(e) if e.is_empty()) {
        return Err((
            "events",
            "is empty, so the target would receive nothing: remove the key to receive every kind"
                .into(),
        ));
    }
    if let Some(s) = &config.retry_schedule {
        check_schedule(s).map_err(|m| ("retry_schedule", m))?;
    }
    if let Some(j) = config.jitter
        && !(0.0..=1.0).contains(&j)
    {
        return Err(("jitter", format!("{j} is out of range: expected 0 to 1")));
    }
    if let Some(r) = config.rate_per_second
        && !(r > 0.0 && r <= 10_000.0)
    {
        return Err((
            "rate_per_second",
            format!("{r} is out of range: expected more than 0, at most 10000"),
        ));
    }
    if matches!(config.burst, Some(b) if !(1..=1000).contains(&b)) {
        return Err(("burst", "is out of range: expected 1 to 1000".into()));
    }
    if matches!(config.concurrency, Some(c) if !(1..=64).contains(&c)) {
        return Err(("concurrency", "is out of range: expected 1 to 64".into()));
    }
    config.kind.validate(config)
}

/// The keys chat targets (Slack, JANDI) refuse or bound.
fn validate_chat(config: &TargetConfig) -> Result<(), (&'static str, String)> {
    if config.secret.is_some() {
        return Err((
            "secret",
            "is only used by `kind = \"webhook\"` targets".into(),
        ));
    }
    if config.batch_max.is_some() {
        return Err((
            "batch_max",
            "is only used by `kind = \"webhook\"` targets (chat targets send digests: see `digest_over`)"
                .into(),
        ));
    }
    if matches!(config.digest_over, Some(0)) {
        return Err(("digest_over", "expected at least 1".into()));
    }
    Ok(())
}

/// A chat message as JSON: the target's template for one event, or the
/// kind's digest template for a burst. The kind then fits it to its limits.
fn render_chat(
    target: &Target,
    renderer: &Renderer,
    entries: &[&OutboxEntry],
    digest: Option<&super::digest::Digest>,
    digest_template: &str,
) -> Result<serde_json::Value, EncodeError> {
    let body = match (entries, digest) {
        ([entry], None) => {
            let event = super::read_event(entry)?;
            let name = target.template().ok_or_else(|| {
                EncodeError::Unreadable("a chat target without a template".into())
            })?;
            renderer.render(name, &event, target.lang)?
        }
        (_, Some(digest)) => renderer.render_value(
            digest_template,
            &digest.context(renderer, entries, target.lang)?,
        )?,
        _ => {
            return Err(EncodeError::Unreadable(
                "several events without a digest".into(),
            ));
        }
    };
    serde_json::from_str(&body).map_err(|e| EncodeError::Unreadable(e.to_string()))
}

/// A retry schedule: at most 20 steps, each 1ms to 24h.
pub fn check_schedule(steps: &[Duration]) -> Result<(), String> {
    if steps.len() > 20 {
        return Err(format!(
            "has {} steps: expected at most 20 (the last one is the longest wait)",
            steps.len()
        ));
    }
    if let Some(bad) = steps
        .iter()
        .find(|d| **d < Duration::from_millis(1) || **d > Duration::from_secs(86_400))
    {
        return Err(format!(
            "has a step of {}: expected 1ms to 24h",
            humantime::format_duration(*bad)
        ));
    }
    Ok(())
}

/// A configured destination, ready to send.
pub struct Target {
    pub name: String,
    pub kind: TargetKind,
    url: SecretString,
    /// `url`, parsed once (parsing it per request was a measurable share
    /// of a delivery's CPU). Holds the secret too: never printed.
    endpoint: reqwest::Url,
    /// Every secret signs (rotation); empty: unsigned.
    signing: Vec<SigningKey>,
    /// `None`: the webhook body is the event JSON itself.
    template: Option<String>,
    pub timeout: Duration,
    pub include_personal_data: bool,
    events: Option<Vec<EventType>>,
    categories: Option<Vec<String>>,
    pub lang: crate::render::Lang,
    pub retry: RetryPolicy,
    /// Requests per second; `None` is unlimited.
    pub rate_per_second: Option<f64>,
    pub burst: u32,
    pub concurrency: usize,
    /// Chat targets only.
    pub digest_over: Option<usize>,
    pub batch_max: usize,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// Default pace of chat targets: Slack's documented 1 message per second.
const CHAT_RATE: f64 = 1.0;
const DEFAULT_DIGEST_OVER: usize = 20;

impl Target {
    pub fn from_config(config: &TargetConfig, delivery: &DeliveryConfig) -> Result<Target, String> {
        let signing = match &config.secret {
            Some(s) => s
                .expose_secret()
                .split_whitespace()
                .map(SigningKey::parse)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("target `{}`: `secret` {e}", config.name))?,
            None => Vec::new(),
        };
        let chat = config.kind.is_chat();
        let endpoint = reqwest::Url::parse(config.url.expose_secret())
            .map_err(|e| format!("target `{}`: `url` is not a URL ({e})", config.name))?;
        Ok(Target {
            name: config.name.clone(),
            kind: config.kind,
            url: config.url.clone(),
            endpoint,
            signing,
            template: config
                .template
                .clone()
                .or_else(|| config.kind.default_template().map(str::to_owned)),
            timeout: config.timeout.unwrap_or(delivery.timeout),
            include_personal_data: config.include_personal_data,
            events: config.events.clone(),
            categories: config.categories.clone(),
            lang: config.language.unwrap_or_default(),
            retry: RetryPolicy::schedule(
                config
                    .retry_schedule
                    .clone()
                    .unwrap_or_else(|| delivery.retry_schedule.clone()),
                config.jitter.unwrap_or(delivery.jitter),
            ),
            rate_per_second: config
                .rate_per_second
                .or(if chat { Some(CHAT_RATE) } else { None }),
            burst: config.burst.unwrap_or(1),
            concurrency: config.concurrency.unwrap_or(if chat { 1 } else { 4 }),
            digest_over: chat.then(|| config.digest_over.unwrap_or(DEFAULT_DIGEST_OVER)),
            batch_max: config.batch_max.unwrap_or(1),
        })
    }

    /// Routing: does this target receive this event? Any of its change
    /// kinds must be selected (`events`), and the invoice's status category
    /// now must be too (`categories`); an absent key selects everything.
    pub fn wants(&self, event: &Event) -> bool {
        let kind = match &self.events {
            None => true,
            Some(wanted) => event.kinds().any(|k| wanted.contains(&k)),
        };
        let category = match &self.categories {
            None => true,
            Some(wanted) => wanted.contains(&event.invoice.status.category),
        };
        kind && category
    }

    pub fn template(&self) -> Option<&str> {
        self.template.as_deref()
    }

    pub(crate) fn url(&self) -> &str {
        self.url.expose_secret()
    }

    pub(crate) fn endpoint(&self) -> &reqwest::Url {
        &self.endpoint
    }

    /// The outbox entry this target gets for `event`, due at `now_ms`:
    /// without personal data unless the target opted in, and masked even
    /// then for chat targets (so the store holds no raw phone number for a
    /// channel).
    pub fn entry_for(&self, event: &Event, now_ms: i64) -> OutboxEntry {
        let shaped;
        let event = if !self.include_personal_data {
            shaped = event.clone().without_personal_data();
            &shaped
        } else if self.kind.is_chat() {
            shaped = event.clone().with_personal_data_masked();
            &shaped
        } else {
            event
        };
        OutboxEntry {
            event_id: event.id.clone(),
            kind: event.kind,
            invoice_id: event.invoice.invoice_id.clone(),
            order_code: event.order.order_code.clone(),
            event: serde_json::to_vec(event).expect("an event serializes"),
            enqueued_at: now_ms,
            attempts: 0,
            next_attempt_at: now_ms,
            last_error: None,
        }
    }

    /// The request for `entries`: one entry, or several as a digest (chat)
    /// or a batch (webhooks). `timestamp` is this attempt's Unix seconds.
    pub fn encode(
        &self,
        renderer: &Renderer,
        entries: &[&OutboxEntry],
        digest: Option<&super::digest::Digest>,
        timestamp: i64,
    ) -> Result<Request, EncodeError> {
        match self.kind {
            TargetKind::Slack => {
                let mut message =
                    render_chat(self, renderer, entries, digest, slack::DIGEST_TEMPLATE)?;
                slack::fit_block_kit(&mut message);
                Ok(slack::json_request(&message))
            }
            TargetKind::Jandi => {
                let mut message =
                    render_chat(self, renderer, entries, digest, jandi::DIGEST_TEMPLATE)?;
                jandi::fit(&mut message);
                Ok(jandi::json_request(&message))
            }
            TargetKind::Webhook => webhook::encode(self, renderer, entries, timestamp),
        }
    }

    /// What the receiver's answer means for this kind.
    pub fn classify(&self, status: u16, headers: &HeaderMap, body: &str) -> Outcome {
        match self.kind {
            TargetKind::Slack => slack::classify(status, headers, body),
            TargetKind::Jandi | TargetKind::Webhook => classify(status, headers, body),
        }
    }

    /// Probes the target without posting into a channel where the service
    /// allows it. `Ok` says what was found.
    pub async fn health_check(&self, http: &reqwest::Client) -> Result<String, String> {
        match self.kind {
            TargetKind::Slack => slack::health_check(self, http).await,
            TargetKind::Jandi => jandi::health_check(self, http).await,
            TargetKind::Webhook => webhook::health_check(self, http).await,
        }
    }

    /// The request of a clearly marked test message (`check --send-test`).
    pub fn test_request(&self, now: chrono::DateTime<chrono::Utc>) -> Request {
        match self.kind {
            TargetKind::Slack => slack::test_request(now),
            TargetKind::Jandi => jandi::test_request(now),
            TargetKind::Webhook => webhook::test_request(self, now),
        }
    }

    /// A body this target sends, as a person reads it (chat targets), or
    /// pretty JSON (webhooks).
    pub fn readable(&self, body: &[u8]) -> String {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return String::from_utf8_lossy(body).into_owned();
        };
        match self.kind {
            TargetKind::Slack => slack::readable(&value),
            TargetKind::Jandi => jandi::readable(&value),
            TargetKind::Webhook => serde_json::to_string_pretty(&value).unwrap_or_default(),
        }
    }

    /// A plain message for a person (the self-alerts), for chat targets.
    pub fn text_request(&self, text: &str) -> Option<Request> {
        match self.kind {
            TargetKind::Slack => Some(slack::text_request(text)),
            TargetKind::Jandi => Some(jandi::text_request(text)),
            TargetKind::Webhook => None,
        }
    }

    pub(crate) fn signing(&self) -> &[SigningKey] {
        &self.signing
    }
}

/// Why entries could not be shaped into a request.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("{0}")]
    Render(#[from] crate::render::RenderError),
    #[error("the stored event cannot be read: {0}")]
    Unreadable(String),
}

impl EncodeError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            EncodeError::Render(_) => ErrorKind::Render,
            EncodeError::Unreadable(_) => ErrorKind::Unreadable,
        }
    }
}

/// What one attempt's answer means.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Delivered,
    /// Worth trying again later, not earlier than `retry_after`.
    Retry {
        error: DeliveryError,
        retry_after: Option<Duration>,
    },
    /// Will never succeed as it is: a dead letter. `gone`: the receiver
    /// says the target itself is gone (410, an archived channel).
    Dead {
        error: DeliveryError,
        gone: bool,
    },
}

/// The first 512 bytes of a body, on one line (cut at a character boundary),
/// with what looks personal redacted ([`crate::mask::redact`]).
pub fn body_detail(body: &str) -> String {
    let one_line: String = body.split_whitespace().collect::<Vec<_>>().join(" ");
    let one_line = crate::mask::redact(&one_line, &[]);
    if one_line.len() <= 512 {
        return one_line;
    }
    let mut end = 512;
    while !one_line.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &one_line[..end])
}

/// The classification every HTTP target shares.
pub fn classify(status: u16, headers: &HeaderMap, body: &str) -> Outcome {
    let now = chrono::Utc::now().timestamp_millis();
    let error = DeliveryError {
        at: now,
        kind: ErrorKind::Http,
        status: Some(status),
        detail: body_detail(body),
    };
    match status {
        200..=299 => Outcome::Delivered,
        s if crate::retry::is_transient_status(s) => Outcome::Retry {
            error,
            retry_after: crate::http::retry_after(headers),
        },
        410 => Outcome::Dead { error, gone: true },
        _ => Outcome::Dead { error, gone: false },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_the_status() {
        let h = HeaderMap::new();
        assert_eq!(classify(204, &h, ""), Outcome::Delivered);
        assert!(matches!(classify(503, &h, ""), Outcome::Retry { .. }));
        assert!(matches!(classify(408, &h, ""), Outcome::Retry { .. }));
        assert!(matches!(
            classify(410, &h, ""),
            Outcome::Dead { gone: true, .. }
        ));
        let Outcome::Dead { error, gone } = classify(301, &h, "moved") else {
            panic!()
        };
        assert!(!gone);
        assert_eq!(error.full(), "HTTP 301: moved");
        assert_eq!(error.to_string(), "HTTP 301 (5-byte answer)");
        let mut h = HeaderMap::new();
        h.insert("retry-after", "2".parse().unwrap());
        let Outcome::Retry { retry_after, .. } = classify(429, &h, "") else {
            panic!()
        };
        assert_eq!(retry_after, Some(Duration::from_secs(2)));
    }

    #[test]
    fn bodies_are_kept_to_512_bytes() {
        let long = "가".repeat(400);
        let d = body_detail(&long);
        assert!(d.len() <= 512 + '…'.len_utf8(), "{}", d.len());
        assert!(d.ends_with('…'));
    }
}
