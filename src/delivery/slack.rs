//! Slack incoming webhooks: the body is the rendered `slack/…` template
//! (Block Kit JSON with a plain `text` fallback). Slack answers `200 ok`, or
//! a 4xx with a short reason (`invalid_payload`, `no_service`,
//! `channel_is_archived`) that is passed on; it has no idempotency key, so a
//! retry after an ambiguous time-out is the one way a duplicate can appear.

use reqwest::header::HeaderMap;

pub fn headers(_headers: &mut HeaderMap) {}
