//! Signed webhooks (Standard Webhooks): the body is the event JSON (or a
//! template's JSON), with `webhook-id` (the stable event id, the same on
//! every retry), `webhook-timestamp` (this attempt's time) and, when the
//! target has a secret, `webhook-signature: v1,<base64 HMAC-SHA256>` over
//! `"{id}.{timestamp}.{body}"`.

use reqwest::header::{HeaderMap, HeaderValue};

use super::signature::SigningKey;
use crate::store::OutboxEntry;

/// Fails only when the event id (which comes from the upstream invoice id)
/// cannot be an HTTP header value.
pub fn headers(
    headers: &mut HeaderMap,
    key: Option<&SigningKey>,
    entry: &OutboxEntry,
    timestamp: i64,
    body: &[u8],
) -> Result<(), String> {
    let id = HeaderValue::from_str(&entry.event_id).map_err(|_| {
        format!(
            "event id {:?} cannot be sent as a webhook-id header",
            entry.event_id
        )
    })?;
    headers.insert("webhook-id", id);
    headers.insert("webhook-timestamp", HeaderValue::from(timestamp));
    if let Some(key) = key {
        let signature = key.sign(&entry.event_id, timestamp, body);
        headers.insert(
            "webhook-signature",
            HeaderValue::from_str(&signature).expect("base64 is a valid header value"),
        );
    }
    Ok(())
}
