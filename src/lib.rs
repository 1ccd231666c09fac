//! poomgo-notifier: tells Slack and signed webhooks when a Poomgo (품고)
//! shipment changes.
//!
//! # The pipeline
//!
//! ```text
//!  cron tick ──► poll ──► diff ──► commit ──► deliver
//!                │        │        │          │
//!    Poomgo API pages   pure fn   one sled    per-target outbox:
//!    (paged, retried)   old+new   transaction render (handlebars) →
//!                       → events  = snapshot  send → ack / retry
//!                                 + outbox
//! ```
//!
//! # Module map
//!
//! - [`poomgo`]: the orders API — wire models with tolerant parsing, the
//!   HTTP client with retry classification, page-by-page [`poomgo::Scan`]s.
//! - [`sim`]: a loopback simulator of that API (generated merchant, moving
//!   time, fault injection), for development, demos, tests and benchmarks.
//! - [`diff`]: pure change detection (snapshot + row → snapshot + event).
//! - [`store`]: sled — snapshots, per-target outboxes, dead letters, meta;
//!   one transaction per page.
//! - [`event`]: the event model and its JSON; [`status`]: the cargo status
//!   table; [`samples`]: sample events of every kind, made by `diff`.
//! - [`render`]: handlebars with JSON- and Slack-safe escaping, strict mode.
//! - [`delivery`]: shaping a request per target kind ([`delivery::slack`],
//!   [`delivery::webhook`], [`delivery::signature`]), sending, draining an
//!   outbox in order.
//! - [`poll`]: one poll end to end (scan → diff → commit), then delivery.
//! - [`daemon`]: `run` — cron ticks, delivery workers, shutdown, admin HTTP.
//! - [`config`]: `config.toml` with `${VAR}` substitution and validation;
//!   [`schedule`]: cron parsing as the scheduler does it.
//! - [`retry`]: the one retry policy type (a schedule of waits, as data) and
//!   the one rule for which HTTP statuses are worth retrying.
//! - [`metrics`]: every metric name; [`shutdown`]: the stop signal.
//! - [`commands`], [`demo`]: one function per CLI command; `main.rs` only
//!   parses arguments.
//!
//! Secrets and personal data never reach a log line or an error: secrets are
//! [`secrecy::SecretString`]s, personal fields have redacted `Debug`, and
//! HTTP errors are described without their URL.

pub mod admin;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod delivery;
pub mod demo;
pub mod diff;
pub mod event;
pub mod http;
pub mod mask;
pub mod metrics;
pub mod operate;
pub mod poll;
pub mod poomgo;
pub mod render;
pub mod retry;
pub mod samples;
pub mod schedule;
pub mod shutdown;
pub mod sim;
pub mod status;
pub mod store;
