//! Slack incoming webhooks.
//!
//! - **Encoder**: the rendered `slack/…` template (Block Kit JSON with a
//!   plain `text` fallback), or `slack/digest` for several events at once;
//!   either way the result is fitted to Block Kit's limits
//!   ([`fit_block_kit`]), so Slack never rejects a message for its size.
//! - **Classification**: Slack answers `200 ok`, or a 4xx/5xx with a short
//!   reason. `channel_is_archived`, `channel_not_found`, `no_service`,
//!   `invalid_token` and `action_prohibited` mean the webhook itself is gone:
//!   a dead letter, and the target is marked failing. 429 is retried after
//!   its `Retry-After`.
//! - **Health check**: an empty payload is answered `invalid_payload` by a
//!   live webhook and `no_service` (or 404) by a dead one; nothing is posted.
//!
//! Slack has no idempotency key, so a retry after an ambiguous time-out is the
//! one way a duplicate message can appear.

use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::{Outcome, Target, classify as http_classify};
use crate::delivery::Request;

pub const TEMPLATE: &str = "slack/default";
pub const DIGEST_TEMPLATE: &str = "slack/digest";

/// Slack's answers that mean the webhook or channel is gone for good.
const GONE: &[&str] = &[
    "channel_is_archived",
    "channel_not_found",
    "no_service",
    "invalid_token",
    "action_prohibited",
];

pub fn json_request(value: &Value) -> Request {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Request {
        body: serde_json::to_vec(value).expect("JSON serializes"),
        headers,
        webhook_id: None,
    }
}

pub fn classify(status: u16, headers: &HeaderMap, body: &str) -> Outcome {
    match http_classify(status, headers, body) {
        Outcome::Dead { error, gone } => {
            let gone = gone || GONE.iter().any(|g| body.contains(g));
            Outcome::Dead { error, gone }
        }
        other => other,
    }
}

pub async fn health_check(target: &Target, http: &reqwest::Client) -> Result<String, String> {
    let response = http
        .post(target.url())
        .header(CONTENT_TYPE, "application/json")
        .timeout(target.timeout)
        .body("")
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", crate::http::describe(e)))?;
    let status = response.status().as_u16();
    let body = response.text().await.unwrap_or_default();
    let detail = super::body_detail(&body);
    if GONE.iter().any(|g| body.contains(g)) || matches!(status, 404 | 410) {
        return Err(format!(
            "the webhook is gone (HTTP {status}: {detail}): create a new incoming webhook"
        ));
    }
    match status {
        400 if body.contains("invalid_payload") || body.contains("no_text") => Ok(format!(
            "live (answers `{detail}` to an empty message; nothing was posted)"
        )),
        200..=299 => Ok(format!(
            "answers HTTP {status} (it accepted an empty message)"
        )),
        _ => Err(format!("answers HTTP {status}: {detail}")),
    }
}

pub fn test_request(now: chrono::DateTime<chrono::Utc>) -> Request {
    let when = now
        .with_timezone(&crate::poomgo::kst())
        .format("%Y-%m-%d %H:%M");
    text_request(&format!(
        "🧪 poomgo-notifier 테스트 메시지 ({when} KST): 이 채널로 배송 알림이 전달됩니다. (check --send-test)"
    ))
}

/// A plain message: the text, as mrkdwn, with a notification fallback.
pub fn text_request(text: &str) -> Request {
    let escaped = crate::render::mrkdwn_escape(text);
    let mut value = json!({
        "text": escaped,
        "blocks": [{ "type": "section", "text": { "type": "mrkdwn", "text": escaped } }],
    });
    fit_block_kit(&mut value);
    json_request(&value)
}

/// A message as a person reads it in the channel: entities decoded, links as
/// "text (url)", fields as "title: value". For the demo, `preview --readable`
/// and the console.
pub fn readable(message: &Value) -> String {
    let mut lines = Vec::new();
    for block in message["blocks"].as_array().into_iter().flatten() {
        if let Some(t) = block["text"]["text"].as_str() {
            lines.push(plain(t));
        }
        for f in block["fields"].as_array().into_iter().flatten() {
            if let Some(t) = f["text"].as_str() {
                let t = plain(t);
                lines.push(match t.split_once('\n') {
                    Some((title, value)) => format!("{}: {value}", title.trim_matches('*')),
                    None => t,
                });
            }
        }
        for e in block["elements"].as_array().into_iter().flatten() {
            if let Some(t) = e["text"].as_str() {
                lines.push(format!("  {}", plain(t)));
            }
        }
    }
    if lines.is_empty() {
        lines.push(plain(message["text"].as_str().unwrap_or("(no text)")));
    }
    lines.join("\n")
}

/// mrkdwn as text: `<url|text>` → `text (url)`, entities decoded.
fn plain(mrkdwn: &str) -> String {
    let mut out = String::new();
    let mut rest = mrkdwn;
    while let Some(start) = rest.find('<') {
        out.push_str(&rest[..start]);
        let after = &rest[start + 1..];
        match after.find('>') {
            Some(end) => {
                let link = &after[..end];
                match link.split_once('|') {
                    Some((url, text)) => out.push_str(&format!("{text} ({url})")),
                    None => out.push_str(link),
                }
                rest = &after[end + 1..];
            }
            None => {
                out.push('<');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
        .replace('\u{200B}', "")
}

/// Block Kit's limits (<https://api.slack.com/reference/block-kit/blocks>).
pub const MAX_BLOCKS: usize = 50;
pub const MAX_HEADER: usize = 150;
pub const MAX_SECTION_TEXT: usize = 3000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_TEXT: usize = 2000;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// The `text` fallback (Slack truncates at 40,000; notifications want short).
pub const MAX_TEXT: usize = 3000;

/// Cuts whatever exceeds a Block Kit limit, with "…", whatever the data.
pub fn fit_block_kit(message: &mut Value) {
    if let Some(text) = message.get_mut("text") {
        cut(text, MAX_TEXT);
    }
    let Some(blocks) = message.get_mut("blocks").and_then(Value::as_array_mut) else {
        return;
    };
    if blocks.len() > MAX_BLOCKS {
        blocks.truncate(MAX_BLOCKS - 1);
        blocks.push(json!({ "type": "context", "elements": [
            { "type": "mrkdwn", "text": "…" }
        ]}));
    }
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("header") => {
                if let Some(t) = block.pointer_mut("/text/text") {
                    // A header is one line.
                    if let Some(s) = t.as_str()
                        && s.contains('\n')
                    {
                        *t = Value::String(s.replace('\n', " "));
                    }
                    cut(t, MAX_HEADER);
                }
            }
            Some("section") => {
                if let Some(t) = block.pointer_mut("/text/text") {
                    cut(t, MAX_SECTION_TEXT);
                }
                if let Some(fields) = block.get_mut("fields").and_then(Value::as_array_mut) {
                    fields.truncate(MAX_FIELDS);
                    for f in fields {
                        if let Some(t) = f.get_mut("text") {
                            cut(t, MAX_FIELD_TEXT);
                        }
                    }
                }
            }
            Some("context") => {
                if let Some(elements) = block.get_mut("elements").and_then(Value::as_array_mut) {
                    elements.truncate(MAX_CONTEXT_ELEMENTS);
                    for e in elements {
                        if let Some(t) = e.get_mut("text") {
                            cut(t, MAX_FIELD_TEXT);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

/// Shortens a JSON string to `max` characters, ending in "…". An entity
/// (`&lt;`) is never cut in half.
fn cut(value: &mut Value, max: usize) {
    let Some(s) = value.as_str() else { return };
    if s.chars().count() <= max {
        return;
    }
    let mut out: String = s.chars().take(max - 1).collect();
    if let Some(amp) = out.rfind('&')
        && !out[amp..].contains(';')
    {
        out.truncate(amp);
    }
    out.push('…');
    *value = Value::String(out);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_hold_whatever_the_data() {
        let long = "가".repeat(5000);
        let mut m = json!({
            "text": long,
            "blocks": (0..60).map(|i| if i == 0 {
                json!({"type": "header", "text": {"type": "plain_text", "text": long}})
            } else {
                json!({"type": "section", "text": {"type": "mrkdwn", "text": format!("{long}&amp;")},
                       "fields": (0..12).map(|_| json!({"type": "mrkdwn", "text": long})).collect::<Vec<_>>()})
            }).collect::<Vec<_>>()
        });
        fit_block_kit(&mut m);
        let blocks = m["blocks"].as_array().unwrap();
        assert_eq!(blocks.len(), MAX_BLOCKS);
        assert_eq!(
            blocks[0]["text"]["text"].as_str().unwrap().chars().count(),
            MAX_HEADER
        );
        let section = &blocks[1];
        assert!(section["text"]["text"].as_str().unwrap().chars().count() <= MAX_SECTION_TEXT);
        assert_eq!(section["fields"].as_array().unwrap().len(), MAX_FIELDS);
        assert!(m["text"].as_str().unwrap().ends_with('…'));
    }

    #[test]
    fn an_entity_is_never_cut_in_half() {
        let mut v = json!(format!("{}&lt;x", "a".repeat(8)));
        cut(&mut v, 11);
        assert_eq!(v, json!("aaaaaaaa…"));
    }

    #[test]
    fn slack_reasons_that_mean_gone() {
        let h = HeaderMap::new();
        assert!(matches!(
            classify(404, &h, "no_service"),
            Outcome::Dead { gone: true, .. }
        ));
        assert!(matches!(
            classify(403, &h, "action_prohibited"),
            Outcome::Dead { gone: true, .. }
        ));
        assert!(matches!(
            classify(400, &h, "invalid_payload"),
            Outcome::Dead { gone: false, .. }
        ));
        assert_eq!(classify(200, &h, "ok"), Outcome::Delivered);
    }
}
