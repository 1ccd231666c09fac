//! Signed webhooks (Standard Webhooks).
//!
//! - **Encoder**: the body is the event JSON (or a template's JSON) with
//!   `webhook-id` (the event id: the same on every retry), `webhook-timestamp`
//!   (this attempt's time) and, when the target has a secret,
//!   `webhook-signature: v1,<base64 HMAC-SHA256>` over
//!   `"{id}.{timestamp}.{body}"`, one signature per secret, space-separated,
//!   while secrets rotate.
//! - **Batches** (`batch_max` > 1): the body is a JSON array of events, each
//!   with its own `id` to de-duplicate on; the `webhook-id` header is the
//!   batch's (`batch-` and a hash of the ids in it) and the signature covers
//!   the whole array.
//! - **Classification**: the shared HTTP rules (see [`super::classify`]).
//! - **Health check**: a `HEAD` to the URL: any HTTP answer means reachable;
//!   nothing is posted. `check --send-test` posts a `webhook.test` event.

pub mod signature;

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use sha2::{Digest as _, Sha256};

use super::{EncodeError, Target, TargetConfig};
use crate::delivery::Request;
use crate::delivery::queue::OutboxEntry;
use crate::render::Renderer;

pub fn validate(config: &TargetConfig) -> Result<(), (&'static str, String)> {
    if let Some(s) = &config.secret {
        use secrecy::ExposeSecret;
        let mut any = false;
        for secret in s.expose_secret().split_whitespace() {
            signature::SigningKey::parse(secret).map_err(|m| ("secret", m.to_string()))?;
            any = true;
        }
        if !any {
            return Err((
                "secret",
                "is empty: expected `whsec_` followed by base64, or remove the key".into(),
            ));
        }
    }
    if config.digest_over.is_some() {
        return Err((
            "digest_over",
            "is only used by chat targets (webhooks can ask for `batch_max`)".into(),
        ));
    }
    if matches!(config.batch_max, Some(b) if !(1..=100).contains(&b)) {
        return Err(("batch_max", "is out of range: expected 1 to 100".into()));
    }
    Ok(())
}

pub fn encode(
    target: &Target,
    renderer: &Renderer,
    entries: &[&OutboxEntry],
    timestamp: i64,
) -> Result<Request, EncodeError> {
    let body_of = |entry: &OutboxEntry| -> Result<Vec<u8>, EncodeError> {
        match target.template() {
            Some(name) => Ok(renderer
                .render(name, &crate::delivery::read_event(entry)?, target.lang)?
                .into_bytes()),
            None => Ok(entry.event.clone()),
        }
    };
    let (id, body) = match entries {
        [entry] => (entry.event_id.clone(), body_of(entry)?),
        _ => {
            let mut body = b"[".to_vec();
            let mut hash = Sha256::new();
            for (i, entry) in entries.iter().enumerate() {
                if i > 0 {
                    body.push(b',');
                    hash.update(b",");
                }
                body.extend(body_of(entry)?);
                hash.update(entry.event_id.as_bytes());
            }
            body.push(b']');
            let digest = hash.finalize();
            let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
            (format!("batch-{hex}"), body)
        }
    };
    let headers = signed_headers(target, &id, timestamp, &body)?;
    Ok(Request {
        body,
        headers,
        webhook_id: Some(id),
    })
}

fn signed_headers(
    target: &Target,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<HeaderMap, EncodeError> {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let id_value = HeaderValue::from_str(id).map_err(|_| {
        EncodeError::Unreadable(format!(
            "event id {id:?} cannot be sent as a webhook-id header"
        ))
    })?;
    headers.insert("webhook-id", id_value);
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    if !target.signing().is_empty() {
        let signatures: Vec<String> = target
            .signing()
            .iter()
            .map(|k| k.sign(id, timestamp, body))
            .collect();
        headers.insert(
            "webhook-signature",
            HeaderValue::from_str(&signatures.join(" ")).expect("base64 is a valid header value"),
        );
    }
    Ok(headers)
}

pub async fn health_check(target: &Target, http: &reqwest::Client) -> Result<String, String> {
    let response = http
        .head(target.url())
        .timeout(target.timeout)
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", crate::http::describe(e)))?;
    Ok(format!(
        "reachable (HTTP {} to HEAD; nothing was posted)",
        response.status().as_u16()
    ))
}

/// A `webhook.test` event, signed like any other.
pub fn test_request(target: &Target, now: chrono::DateTime<chrono::Utc>) -> Request {
    let id = format!("test-{:08x}", fastrand::u32(..));
    let body = serde_json::to_vec(&serde_json::json!({
        "id": id,
        "type": "webhook.test",
        "detectedAt": now.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "message": "poomgo-notifier check --send-test: this endpoint will receive invoice events",
    }))
    .expect("JSON serializes");
    let headers =
        signed_headers(target, &id, now.timestamp(), &body).expect("a test id is a valid header");
    Request {
        body,
        headers,
        webhook_id: Some(id),
    }
}
