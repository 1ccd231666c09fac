//! poomgo-notifier: tells Slack and signed webhooks when a Poomgo (품고)
//! shipment changes.
//!
//! # The pipeline
//!
//! ```text
//!  cron tick ──► plan ──► scan ──► diff ──► commit ──────────► queue ──► deliver
//!                │        │        │        │                   │         │
//!    windows due this     pages,   pure fn  one sled txn per    per-target per-target worker:
//!    tick (createdAt /    retried, old+new  page: snapshots +   outbox:    encode → send →
//!    confirmAt / closeAt) tolerant → events outbox entries,     due, retry ack / retry at /
//!                         per row           flushed before any  at, dead   dead letter,
//!                                           of them is sent                replay
//! ```
//!
//! # Module map
//!
//! - [`poomgo`]: the orders API — a page parser an odd row cannot stop
//!   (only the envelope fails a page; odd invoices are skipped and listed),
//!   the HTTP client with retry classification, page-by-page
//!   [`poomgo::Scan`]s that re-read short pages, and the scan plan
//!   ([`poomgo::plan`]).
//! - [`sim`]: a loopback simulator of that API (generated merchant, moving
//!   time, combined shipments, fault injection down to one value in one row).
//! - [`merchant`]: the Poomgo accounts one process serves (`[[merchants]]`;
//!   none is the one merchant `default`). [`config::Config::merchants`]
//!   gives each its own config, [`poll::App::open_all`] one app each on one
//!   store (a keyspace each), and the daemon one poller, health and set of
//!   delivery workers each.
//! - [`poll`]: one poll — due windows, each with its own baseline; invoices
//!   grouped across rows; cancellations held until the scan is complete;
//!   commit and flush per page.
//! - [`diff`]: pure change detection (what the store knows + what rows say →
//!   snapshot + at most one event).
//! - [`store`]: sled — per merchant keyspace (the default merchant's trees
//!   keep their original names, another's are under `m/<name>/`):
//!   snapshots, tombstones, outboxes, dead letters, the history, meta (generation, covered ranges, target states, recent
//!   polls); one transaction per page;
//!   private files; no write when the disk is nearly full.
//! - [`event`]: the event model and its JSON; [`status`]: the status and
//!   courier tables; [`samples`]: sample events of every kind, made by `diff`.
//! - [`render`]: handlebars with JSON- and Slack-safe escaping, helpers,
//!   labels in Korean or English; [`mask`]: masking personal data, and
//!   redacting it from what receivers answer.
//! - [`delivery`]: the queue ([`delivery::queue`]), the one driver
//!   ([`delivery::driver`]), pace, digests, self-alerts, and one folder per
//!   target kind ([`delivery::targets`]: Slack, JANDI, webhooks).
//! - [`history`]: every event, the targets it was routed to and each
//!   attempt, kept `history_days` and looked up by order code, tracking
//!   number, invoice id or event id (recorded in the page's transaction).
//! - [`operate`]: what operators do to the queue (list, show, replay, purge,
//!   retry now), and [`inspect`]: what they look at (overview, search,
//!   timelines); both called by the CLI and by [`admin`], the daemon's JSON
//!   API, access rules (token, sessions, `Host`, limits) and its HTTP server,
//!   whose pages are the [`console`].
//! - [`daemon`]: `run` — cron ticks, delivery workers, alerts, shutdown,
//!   `/healthz`, `/metrics`.
//! - [`config`]: `config.toml` with `${VAR}` substitution and validation;
//!   [`schedule`]: cron parsing as the scheduler does it.
//! - [`http`]: what the Poomgo client and the targets share; [`retry`]: the
//!   one retry policy type and the one rule for retryable statuses.
//! - [`metrics`]: every metric name; [`shutdown`]: the stop signal.
//! - [`commands`], [`demo`]: one function per CLI command; `main.rs` only
//!   parses arguments.
//!
//! Secrets and personal data never reach a log line or an error: secrets are
//! [`secrecy::SecretString`]s, personal fields have redacted `Debug`, skips
//! name paths not values, and HTTP errors are described without their URL.

pub mod admin;
pub mod commands;
pub mod config;
pub mod console;
pub mod daemon;
pub mod delivery;
pub mod demo;
pub mod diff;
pub mod event;
pub mod history;
pub mod http;
pub mod inspect;
pub mod mask;
pub mod merchant;
pub mod metrics;
pub mod operate;
pub mod packed;
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
