//! What the Poomgo client and the delivery targets share about HTTP: the one
//! client builder, `Retry-After`, error descriptions without URLs, and short
//! body snippets with secrets masked.
//!
//! URLs are never part of an error: a Slack or JANDI webhook URL carries its
//! token in the path, so reqwest's errors are stripped with `without_url`.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The process's one HTTP client. `timeout` is the default total time-out of
/// a request; senders with other needs set their own per request.
pub fn client(connect_timeout: Duration, timeout: Duration) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(connect_timeout)
        .timeout(timeout)
        .user_agent(concat!("poomgo-notifier/", env!("CARGO_PKG_VERSION")))
        // A redirect is never followed: a webhook that moved answers 3xx,
        // which is reported, instead of the event going somewhere unasked.
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {}", describe(e)))
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3), as the
/// delay from `now`. A date in the past is no delay; anything unreadable is
/// treated as absent (the caller's schedule still applies).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    Some(
        (at.with_timezone(&Utc) - now)
            .to_std()
            .unwrap_or(Duration::ZERO),
    )
}

/// The `Retry-After` of a response, read at the current time.
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    headers
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| parse_retry_after(v, Utc::now()))
}

/// A reqwest error as one line, without the URL (which for webhook targets
/// may carry a token), with its cause chain.
pub fn describe(error: reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "a time-out"
    } else if error.is_connect() {
        "a connection error"
    } else if error.is_body() || error.is_decode() {
        "a broken body"
    } else {
        "a transport error"
    };
    let error = error.without_url();
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(&error);
    while let Some(s) = source {
        causes.push(s.to_string());
        source = s.source();
    }
    causes.dedup();
    if causes.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {}", causes.join(": "))
    }
}

/// At most `max_chars` characters of a body, on one line, with `secret`
/// masked in case the server echoes it back, and what looks personal
/// redacted ([`crate::mask::redact`]).
pub fn snippet(text: &str, secret: &str, max_chars: usize) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let masked = if secret.len() >= 4 {
        one_line.replace(secret, "<redacted>")
    } else {
        one_line
    };
    let masked = crate::mask::redact(&masked, &[]);
    match masked.char_indices().nth(max_chars) {
        Some((i, _)) => format!("{}…", &masked[..i]),
        None => masked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn retry_after_as_seconds_or_an_http_date() {
        let now = Utc.with_ymd_and_hms(2015, 10, 21, 7, 27, 0).unwrap();
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-5", now), None);
    }

    #[test]
    fn snippets_are_short_one_line_and_masked() {
        assert_eq!(snippet("a\n  b", "", 200), "a b");
        assert_eq!(snippet("key=abcdef", "abcdef", 200), "key=<redacted>");
        assert_eq!(snippet("가나다라", "", 2), "가나…");
    }
}
