//! The names of every metric, in one place.
//!
//! Code records through these functions with the `metrics` facade; without an
//! installed recorder (tests, `poll`) they cost next to nothing. The daemon
//! installs the Prometheus exporter and serves it on `/metrics`.

pub fn upstream_retry() {
    metrics::counter!("poomgo_upstream_retries_total").increment(1);
}

pub fn upstream_throttled() {
    metrics::counter!("poomgo_upstream_throttled_total").increment(1);
}

pub fn delivery(target: &str, outcome: &'static str) {
    metrics::counter!("poomgo_deliveries_total", "target" => target.to_owned(), "outcome" => outcome).increment(1);
}

pub fn event(kind: crate::event::EventType) {
    metrics::counter!("poomgo_events_total", "kind" => kind.as_str()).increment(1);
}
