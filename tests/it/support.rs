//! Shared test fixtures: a simulator on port 0 and configs that point at it.

use std::{
    collections::{HashMap, HashSet},
    net::SocketAddr,
};

use poomgo_notifier::{
    config::Config,
    poomgo::PoomgoClient,
    sim::{SimOptions, Simulator},
};

pub const LOOPBACK: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 0);

pub async fn simulator(orders: usize) -> Simulator {
    Simulator::start(
        LOOPBACK,
        SimOptions {
            orders,
            ..SimOptions::default()
        },
    )
    .await
    .expect("simulator starts")
}

/// A config for `base_url`, with fast retries so fault tests stay quick;
/// `extra` is appended to the `[poomgo]` table (or adds tables after it).
pub fn config(base_url: &str, extra: &str) -> Config {
    let mut poomgo = format!("[poomgo]\nbase_url = \"{base_url}\"\napi_key = \"${{TEST_KEY}}\"\n");
    for (key, fast) in [("retry_base", "\"10ms\""), ("retry_max", "\"100ms\"")] {
        if !extra.contains(key) {
            poomgo.push_str(&format!("{key} = {fast}\n"));
        }
    }
    let text = format!("{poomgo}{extra}\n");
    Config::parse(&text, "test.toml", std::env::temp_dir(), &|name| {
        (name == "TEST_KEY").then(|| "sim-key".to_owned())
    })
    .unwrap_or_else(|e| panic!("test config: {e}"))
}

pub fn client(config: &Config) -> PoomgoClient {
    let http =
        poomgo_notifier::http::client(config.poomgo.connect_timeout, config.poomgo.request_timeout)
            .unwrap();
    PoomgoClient::new(&config.poomgo, http).unwrap()
}

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// A full config for the pipeline: the simulator, a store in `dir`, and
/// `targets` (TOML `[[targets]]` tables) appended.
/// One window, the whole `lookback_days`, read on every poll: tests that
/// change any invoice and poll again expect to see it (the tiered plan has
/// tests of its own).
pub const LEGACY_PLAN: &str = "[plan]\nwindows = []\ncreated_every = 1\n";

pub fn pipeline_toml(sim: &Simulator, dir: &std::path::Path, targets: &str) -> String {
    pipeline_toml_with(sim, dir, "", targets)
}

/// As [`pipeline_toml`], with `poomgo` lines added to the `[poomgo]` table.
pub fn pipeline_toml_with(
    sim: &Simulator,
    dir: &std::path::Path,
    poomgo: &str,
    targets: &str,
) -> String {
    format!(
        r#"
[poomgo]
base_url = "{}"
api_key = "sim-key"
retry_base = "10ms"
retry_max = "100ms"
{poomgo}
{LEGACY_PLAN}
[store]
path = "{}"
cache_mb = 8
{targets}
"#,
        sim.base_url(),
        dir.join("store").display()
    )
}

pub fn pipeline_app(
    sim: &Simulator,
    dir: &std::path::Path,
    targets: &str,
) -> poomgo_notifier::poll::App {
    pipeline_app_with(sim, dir, "", targets)
}

/// As [`pipeline_app`], with `poomgo` lines added to the `[poomgo]` table.
pub fn pipeline_app_with(
    sim: &Simulator,
    dir: &std::path::Path,
    poomgo: &str,
    targets: &str,
) -> poomgo_notifier::poll::App {
    let config = Config::parse(
        &pipeline_toml_with(sim, dir, poomgo, targets),
        "test.toml",
        dir.to_owned(),
        &|_| None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    poomgo_notifier::poll::App::new(config).unwrap_or_else(|e| panic!("{e:#}"))
}

/// Verifies a Standard Webhooks signature from first principles (not with
/// the crate's signer): HMAC-SHA256 over "id.timestamp.body".
pub fn verify_signature(secret: &str, headers: &wiremock::http::HeaderMap, body: &[u8]) -> bool {
    use base64::Engine;
    use hmac::Mac;
    let header = |n: &str| headers.get(n).unwrap().to_str().unwrap().to_owned();
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.", header("webhook-id"), header("webhook-timestamp")).as_bytes());
    mac.update(body);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    header("webhook-signature")
        .split(' ')
        .any(|s| s == expected)
}

/// Requests wiremock received on `path`.
pub async fn received(server: &wiremock::MockServer, path: &str) -> Vec<wiremock::Request> {
    server
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.url.path() == path)
        .collect()
}

pub const BIN: &str = env!("CARGO_BIN_EXE_poomgo-notifier");

pub fn poll_command(config: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(BIN);
    c.args(["poll", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdin(std::process::Stdio::null());
    c
}

/// Waits until every entry pending in the store of `config` is due: reads
/// their next attempt times with `outbox` (to the second) and waits for the
/// clock to pass the latest, plus the second they were rounded down by.
pub async fn wait_until_due(config: &std::path::Path) {
    let mut c = std::process::Command::new(BIN);
    c.args(["outbox", "--config"]).arg(config);
    let out = output_ok(c).await;
    let listing = String::from_utf8_lossy(&out.stdout).into_owned();
    let due = listing
        .lines()
        .filter_map(|l| l.split('\t').find_map(|f| f.strip_prefix("next ")))
        .map(|t| chrono::DateTime::parse_from_rfc3339(t).unwrap_or_else(|e| panic!("{t}: {e}")))
        .max()
        .unwrap_or_else(|| panic!("nothing pending: {listing}"))
        + chrono::Duration::seconds(1);
    eventually(
        "the pending entries to be due",
        std::time::Duration::from_secs(60),
        || async { chrono::Utc::now() >= due },
    )
    .await;
}

/// Runs a command to its end off the async runtime, which must keep serving
/// the in-process simulator meanwhile.
pub async fn output(mut command: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || command.output().unwrap())
        .await
        .unwrap()
}

/// Runs a command to its end and fails the test, showing its stderr, unless it succeeded.
pub async fn output_ok(command: std::process::Command) -> std::process::Output {
    let out = output(command).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Waits until `check` holds, polling every 50 ms; fails the test after `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The ids of the events that must follow `change`: one per invoice that is
/// new or differs afterwards, each its first revision after the baseline.
pub fn changes(sim: &Simulator, change: impl FnOnce()) -> HashSet<String> {
    let state = |sim: &Simulator| -> HashMap<String, _> {
        sim.invoices()
            .into_iter()
            .map(|(i, c)| (i.invoice_id.to_string(), (i, c)))
            .collect()
    };
    let before = state(sim);
    change();
    let after = state(sim);
    after
        .iter()
        .filter(|(id, now)| before.get(*id) != Some(now))
        .map(|(id, _)| format!("{id}-1"))
        .collect()
}

/// The `webhook-id`s received, without their generation: `<invoiceId>-<rev>`.
pub fn ids(requests: &[wiremock::Request]) -> Vec<String> {
    raw_ids(requests)
        .iter()
        .map(|id| without_generation(id).to_owned())
        .collect()
}

/// The `webhook-id`s received, exactly.
pub fn raw_ids(requests: &[wiremock::Request]) -> Vec<String> {
    requests
        .iter()
        .map(|r| {
            r.headers
                .get("webhook-id")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// `g1a2b3c4d-456000-3` → `456000-3`.
pub fn without_generation(id: &str) -> &str {
    let (generation, rest) = id.split_once('-').expect("an id with a generation");
    assert!(generation.starts_with('g'), "{id}");
    rest
}

/// A wiremock receiver that answers every POST with `status` after `delay`.
pub async fn receiver_after(status: u16, delay: std::time::Duration) -> wiremock::MockServer {
    let server = wiremock::MockServer::start().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(
            wiremock::ResponseTemplate::new(status)
                .set_body_string("ok")
                .set_delay(delay),
        )
        .mount(&server)
        .await;
    server
}

/// A wiremock receiver that answers every POST with `status` at once.
pub async fn receiver(status: u16) -> wiremock::MockServer {
    receiver_after(status, std::time::Duration::ZERO).await
}

/// A loopback receiver with scripted replies that records when each request
/// came: for timing, ordering and rate-limit tests.
pub struct Recorder {
    pub addr: SocketAddr,
    state: std::sync::Arc<std::sync::Mutex<RecorderState>>,
}

#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub headers: Vec<(String, String)>,
    pub delay: std::time::Duration,
    /// Answer with the request's body from `"receiver"` on after `body`, as
    /// frameworks do in validation errors.
    pub echo: bool,
}

impl Reply {
    pub fn status(status: u16) -> Reply {
        Reply {
            status,
            body: String::new(),
            headers: Vec::new(),
            delay: std::time::Duration::ZERO,
            echo: false,
        }
    }
    /// `status`, echoing the request's body after `prefix`.
    pub fn echo(status: u16, prefix: &str) -> Reply {
        Reply {
            echo: true,
            ..Reply::status(status).body(prefix)
        }
    }
    pub fn body(mut self, body: &str) -> Reply {
        self.body = body.into();
        self
    }
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
    pub fn delay(mut self, delay: std::time::Duration) -> Reply {
        self.delay = delay;
        self
    }
}

#[derive(Clone, Debug)]
pub struct Got {
    pub at: std::time::Instant,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    /// What the recorder answered.
    pub status: u16,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
    pub fn id(&self) -> &str {
        &self.headers["webhook-id"]
    }
}

struct RecorderState {
    /// Replies used in turn, then `default`.
    script: std::collections::VecDeque<Reply>,
    default: Reply,
    /// (substring of the body, replies left): requests whose body contains
    /// it get `rule_reply` while replies are left.
    rule: Option<(String, usize, Reply)>,
    /// Answer 429 to a request closer than this to the last accepted one.
    min_gap: Option<std::time::Duration>,
    /// Answer 503 to this share of requests, at random.
    fail_ratio: f64,
    /// Requests being answered now.
    in_flight: usize,
    last_accepted: Option<std::time::Instant>,
    got: Vec<Got>,
}

impl Recorder {
    pub async fn start(default: Reply) -> Recorder {
        use axum::{body::Bytes, extract::State, http::HeaderMap, response::IntoResponse};
        let state = std::sync::Arc::new(std::sync::Mutex::new(RecorderState {
            script: Default::default(),
            default,
            rule: None,
            min_gap: None,
            fail_ratio: 0.0,
            in_flight: 0,
            last_accepted: None,
            got: Vec::new(),
        }));
        type Shared = std::sync::Arc<std::sync::Mutex<RecorderState>>;
        async fn handle(
            State(state): State<Shared>,
            uri: axum::http::Uri,
            headers: HeaderMap,
            body: Bytes,
        ) -> axum::response::Response {
            let now = std::time::Instant::now();
            let reply = {
                let mut s = state.lock().unwrap();
                let text = String::from_utf8_lossy(&body).into_owned();
                let mut reply = match &mut s.rule {
                    Some((needle, left, r)) if *left > 0 && text.contains(needle.as_str()) => {
                        *left -= 1;
                        r.clone()
                    }
                    _ => s.script.pop_front().unwrap_or_else(|| s.default.clone()),
                };
                if s.fail_ratio > 0.0 && fastrand::f64() < s.fail_ratio {
                    reply = Reply::status(503).delay(reply.delay);
                }
                s.in_flight += 1;
                if let Some(gap) = s.min_gap {
                    if s.last_accepted.is_some_and(|last| now - last < gap) {
                        reply = Reply::status(429).body("rate_limited");
                    } else if (200..300).contains(&reply.status) {
                        s.last_accepted = Some(now);
                    }
                }
                if reply.echo {
                    // From the recipient on, as in "invalid payload near: …".
                    let near = text.find("\"receiver\"").map_or(&text[..], |i| &text[i..]);
                    reply.body.push_str(near);
                }
                s.got.push(Got {
                    at: now,
                    path: uri.path().to_owned(),
                    headers: headers
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
                        .collect(),
                    body: body.to_vec(),
                    status: reply.status,
                });
                reply
            };
            tokio::time::sleep(reply.delay).await;
            state.lock().unwrap().in_flight -= 1;
            let mut response = (
                axum::http::StatusCode::from_u16(reply.status).unwrap(),
                reply.body,
            )
                .into_response();
            for (k, v) in reply.headers {
                response.headers_mut().insert(
                    axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                    v.parse().unwrap(),
                );
            }
            response
        }
        let app = axum::Router::new()
            .fallback(axum::routing::any(handle))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind(LOOPBACK).await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Recorder { addr, state }
    }

    pub fn uri(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// These replies first, in turn.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.lock().unwrap().script.extend(replies);
    }

    pub fn set_default(&self, reply: Reply) {
        self.state.lock().unwrap().default = reply;
    }

    /// `times` requests whose body contains `needle` get `reply`.
    pub fn when_body_contains(&self, needle: &str, times: usize, reply: Reply) {
        self.state.lock().unwrap().rule = Some((needle.into(), times, reply));
    }

    /// Fail this share of requests with 503, at random.
    pub fn fail_ratio(&self, ratio: f64) {
        self.state.lock().unwrap().fail_ratio = ratio;
    }

    /// Requests being answered right now.
    pub fn in_flight(&self) -> usize {
        self.state.lock().unwrap().in_flight
    }

    /// Enforce at most one accepted request per `gap` (429 otherwise).
    pub fn enforce_gap(&self, gap: std::time::Duration) {
        self.state.lock().unwrap().min_gap = Some(gap);
    }

    pub fn got(&self) -> Vec<Got> {
        self.state.lock().unwrap().got.clone()
    }

    /// Requests answered 2xx.
    pub fn accepted(&self) -> Vec<Got> {
        self.got()
            .into_iter()
            .filter(|g| (200..300).contains(&g.status))
            .collect()
    }
}

/// Flips `isPrinted` of the first `n` invoices of the simulated merchant;
/// returns their ids.
pub fn toggle_printed(sim: &Simulator, n: usize) -> Vec<u64> {
    toggle_printed_at(sim, 0, n)
}

/// As [`toggle_printed`], at merchant `index` (0-based) of the simulator.
pub fn toggle_printed_at(sim: &Simulator, index: usize, n: usize) -> Vec<u64> {
    sim.merchant(index).with_merchant(|m| {
        m.orders
            .iter_mut()
            .flat_map(|o| o.invoices.iter_mut())
            .take(n)
            .map(|i| {
                i.printed = !i.printed;
                i.id
            })
            .collect()
    })
}
