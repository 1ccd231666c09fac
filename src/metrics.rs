//! The names of every metric, in one place.
//!
//! Code records through these functions with the `metrics` facade; without an
//! installed recorder (tests, `poll`) they cost next to nothing. The daemon
//! installs the Prometheus recorder ([`install`]) and serves its text on
//! `/metrics`.

use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the process-wide Prometheus recorder and describes every metric;
/// once per process: a second call (a test that runs several daemons in one
/// process) gets the same handle.
pub fn install() -> anyhow::Result<PrometheusHandle> {
    static INSTALLED: std::sync::Mutex<Option<PrometheusHandle>> = std::sync::Mutex::new(None);
    let mut installed = INSTALLED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(handle) = installed.as_ref() {
        return Ok(handle.clone());
    }
    let handle = build()?;
    *installed = Some(handle.clone());
    Ok(handle)
}

fn build() -> anyhow::Result<PrometheusHandle> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("poomgo_poll_duration_seconds".into()),
            &[
                0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
            ],
        )?
        .install_recorder()
        .map_err(|e| anyhow::anyhow!("cannot install the metrics recorder: {e}"))?;
    describe_counter!("poomgo_polls_total", "Polls by outcome (ok, failed).");
    describe_histogram!(
        "poomgo_poll_duration_seconds",
        "Time one poll took: scan, diff and commit."
    );
    describe_counter!(
        "poomgo_poll_pages_total",
        "Pages of the orders API read by polls."
    );
    describe_counter!(
        "poomgo_poll_skipped_total",
        "Cron ticks skipped because the previous poll was still running."
    );
    describe_gauge!("poomgo_invoices_tracked", "Invoice snapshots in the store.");
    describe_gauge!(
        "poomgo_merchant_up",
        "1 while a merchant's polling is healthy (as /healthz judges it), 0 otherwise."
    );
    describe_gauge!(
        "poomgo_merchant_key_rejected",
        "1 while the Poomgo API rejects a merchant's key."
    );
    describe_gauge!(
        "poomgo_poll_consecutive_failures",
        "A merchant's polls that failed since its last successful one."
    );
    describe_counter!(
        "poomgo_rows_unchanged_total",
        "Rows a poll did not parse: the same bytes were read and committed earlier the same Korea-time day."
    );
    describe_counter!("poomgo_events_total", "Change events detected, by kind.");
    describe_counter!(
        "poomgo_skipped_invoices_total",
        "Invoices (or rows) a poll left out because a tracked value was odd, by reason."
    );
    describe_counter!(
        "poomgo_deliveries_total",
        "Delivery outcomes by target: delivered, retried (failed, tried again later), dead (moved to dead letters)."
    );
    describe_gauge!(
        "poomgo_target_failing",
        "1 while a target's last attempt failed or its receiver said it is gone."
    );
    describe_gauge!(
        "poomgo_outbox_depth",
        "Entries waiting in a target's outbox."
    );
    describe_gauge!(
        "poomgo_dead_letters",
        "Entries in a target's dead-letter tree."
    );
    describe_gauge!(
        "poomgo_outbox_oldest_age_seconds",
        "Age of the oldest entry waiting in a target's outbox."
    );
    describe_counter!(
        "poomgo_upstream_retries_total",
        "Retried Poomgo API requests."
    );
    describe_counter!(
        "poomgo_upstream_throttled_total",
        "Poomgo API answers of 429 or with Retry-After."
    );
    Ok(handle)
}

// Every poll and delivery metric carries `merchant` (`default` for a config
// with no `[[merchants]]`).

pub fn upstream_retry(merchant: &str) {
    counter!("poomgo_upstream_retries_total", "merchant" => merchant.to_owned()).increment(1);
}

pub fn upstream_throttled(merchant: &str) {
    counter!("poomgo_upstream_throttled_total", "merchant" => merchant.to_owned()).increment(1);
}

/// `outcome`: delivered, retried or dead (moved to dead letters).
pub fn delivery(merchant: &str, target: &str, outcome: &'static str, n: u64) {
    counter!("poomgo_deliveries_total", "merchant" => merchant.to_owned(), "target" => target.to_owned(), "outcome" => outcome)
        .increment(n);
}

pub fn skipped(merchant: &str, reason: &'static str) {
    counter!("poomgo_skipped_invoices_total", "merchant" => merchant.to_owned(), "reason" => reason).increment(1);
}

pub fn event(merchant: &str, kind: crate::event::EventType) {
    counter!("poomgo_events_total", "merchant" => merchant.to_owned(), "kind" => kind.as_str())
        .increment(1);
}

/// `invoices_tracked` is known after a complete poll; otherwise the gauge keeps its value.
pub fn poll(merchant: &str, ok: bool, took: Duration, pages: u32, invoices_tracked: Option<u64>) {
    let m = merchant.to_owned();
    counter!("poomgo_polls_total", "merchant" => m.clone(), "outcome" => if ok { "ok" } else { "failed" }).increment(1);
    histogram!("poomgo_poll_duration_seconds", "merchant" => m.clone()).record(took.as_secs_f64());
    counter!("poomgo_poll_pages_total", "merchant" => m.clone()).increment(u64::from(pages));
    if let Some(n) = invoices_tracked {
        gauge!("poomgo_invoices_tracked", "merchant" => m).set(n as f64);
    }
}

/// A merchant's polling health, as `/healthz` judges it: `up` 1 or 0, and
/// whether its API key is being rejected.
pub fn merchant_health(merchant: &str, up: bool, key_rejected: bool, failures: u32) {
    let m = merchant.to_owned();
    gauge!("poomgo_merchant_up", "merchant" => m.clone()).set(if up { 1.0 } else { 0.0 });
    gauge!("poomgo_merchant_key_rejected", "merchant" => m.clone()).set(if key_rejected {
        1.0
    } else {
        0.0
    });
    gauge!("poomgo_poll_consecutive_failures", "merchant" => m).set(f64::from(failures));
}

pub fn rows_unchanged(merchant: &str, n: u64) {
    counter!("poomgo_rows_unchanged_total", "merchant" => merchant.to_owned()).increment(n);
}

pub fn poll_skipped(merchant: &str) {
    counter!("poomgo_poll_skipped_total", "merchant" => merchant.to_owned()).increment(1);
}

/// `oldest` is the enqueue time (Unix ms) of the oldest pending entry.
pub fn outbox(
    merchant: &str,
    target: &str,
    depth: u64,
    dead: u64,
    oldest: Option<i64>,
    failing: bool,
) {
    let labels = [
        ("merchant", merchant.to_owned()),
        ("target", target.to_owned()),
    ];
    gauge!("poomgo_outbox_depth", &labels).set(depth as f64);
    gauge!("poomgo_dead_letters", &labels).set(dead as f64);
    let age = oldest.map_or(0.0, |t| {
        ((chrono::Utc::now().timestamp_millis() - t).max(0) as f64) / 1000.0
    });
    gauge!("poomgo_outbox_oldest_age_seconds", &labels).set(age);
    gauge!("poomgo_target_failing", &labels).set(if failing { 1.0 } else { 0.0 });
}
