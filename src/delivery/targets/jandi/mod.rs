//! JANDI incoming webhooks (잔디), which many Korean teams use instead of Slack.
//!
//! - **Encoder**: the rendered `jandi/…` template: `body` (markdown links
//!   `[text](url)`), `connectColor` (a hex color by status category) and
//!   `connectInfo` items (`title`, `description`); `jandi/digest` for a
//!   burst. Sent with `Accept: application/vnd.tosslab.jandi-v2+json`. The
//!   result is cut to [`MAX_BODY`] / [`MAX_INFO`] / [`MAX_DESCRIPTION`]
//!   whatever the data.
//! - **Classification**: the shared HTTP rules (JANDI answers 200 when it
//!   took the message).
//! - **Health check**: JANDI has no way to probe a webhook without posting,
//!   so `check --online` only says whether the URL answers (`HEAD`).
//!
//! Routing, masking, digests, pace and retries are the same as Slack's: they
//! live in the shared target code and the driver.

use reqwest::header::{ACCEPT, CONTENT_TYPE, HeaderMap, HeaderValue};
use serde_json::{Value, json};

use super::Target;
use crate::delivery::Request;

pub const TEMPLATE: &str = "jandi/default";
pub const DIGEST_TEMPLATE: &str = "jandi/digest";

/// Limits kept defensively (JANDI does not document its own).
pub const MAX_BODY: usize = 3000;
pub const MAX_INFO: usize = 45;
pub const MAX_DESCRIPTION: usize = 1000;

pub fn json_request(value: &Value) -> Request {
    let mut headers = HeaderMap::new();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(
        ACCEPT,
        HeaderValue::from_static("application/vnd.tosslab.jandi-v2+json"),
    );
    Request {
        body: serde_json::to_vec(value).expect("JSON serializes"),
        headers,
        webhook_id: None,
    }
}

/// Cuts what exceeds the limits, with "…".
pub fn fit(message: &mut Value) {
    let cut = |v: &mut Value, max: usize| {
        if let Some(s) = v.as_str()
            && s.chars().count() > max
        {
            *v = Value::String(crate::render::truncate(s, max));
        }
    };
    if let Some(body) = message.get_mut("body") {
        cut(body, MAX_BODY);
    }
    if let Some(info) = message.get_mut("connectInfo").and_then(Value::as_array_mut) {
        info.truncate(MAX_INFO);
        for item in info {
            if let Some(t) = item.get_mut("title") {
                cut(t, MAX_DESCRIPTION);
            }
            if let Some(d) = item.get_mut("description") {
                cut(d, MAX_DESCRIPTION);
            }
        }
    }
}

/// A message as a person reads it in the topic.
pub fn readable(message: &Value) -> String {
    let mut lines = vec![message["body"].as_str().unwrap_or("").to_owned()];
    for item in message["connectInfo"].as_array().into_iter().flatten() {
        lines.push(format!(
            "  {}: {}",
            item["title"].as_str().unwrap_or(""),
            item["description"].as_str().unwrap_or("")
        ));
    }
    lines.join("\n")
}

pub async fn health_check(target: &Target, http: &reqwest::Client) -> Result<String, String> {
    let response = http
        .head(target.url())
        .timeout(target.timeout)
        .send()
        .await
        .map_err(|e| format!("unreachable: {}", crate::http::describe(e)))?;
    Ok(format!(
        "reachable (HTTP {} to HEAD; JANDI cannot be probed without posting: use --send-test)",
        response.status().as_u16()
    ))
}

pub fn test_request(now: chrono::DateTime<chrono::Utc>) -> Request {
    let when = now
        .with_timezone(&crate::poomgo::kst())
        .format("%Y-%m-%d %H:%M");
    text_request(&format!(
        "🧪 poomgo-notifier 테스트 메시지 ({when} KST): 이 토픽으로 배송 알림이 전달됩니다. (check --send-test)"
    ))
}

pub fn text_request(text: &str) -> Request {
    let mut value = json!({ "body": text, "connectColor": "#8D8D8D" });
    fit(&mut value);
    json_request(&value)
}
