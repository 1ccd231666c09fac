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
