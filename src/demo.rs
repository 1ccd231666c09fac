//! `poomgo-notifier demo`: the whole product on one machine in one command.
//!
//! It starts the simulator with time moving, a local receiver that plays a
//! Slack channel and an ERP webhook endpoint, and polls every few seconds
//! into a temporary store through the real pipeline (scan → diff → commit →
//! deliver). Each Slack message is printed as the text a person would read;
//! each webhook event with its id and whether its signature verified.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, body::Bytes, extract::State, http::HeaderMap, routing::post};
use serde_json::Value;

use crate::config::Config;
use crate::delivery::targets::webhook::signature::SigningKey;
use crate::poll::{App, PollOptions, deliver_all, poll};
use crate::sim::{AdvanceOptions, SimOptions, Simulator};

const DEMO_SECRET: &str = "whsec_ZGVtby1zaWduaW5nLXNlY3JldC1ub3QtZm9yLXByb2R1Y3Rpb24=";

pub struct DemoOptions {
    pub orders: usize,
    pub tick: Duration,
    pub every: Duration,
}

pub async fn run(options: DemoOptions) -> anyhow::Result<()> {
    let loopback: SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
    let sim = Simulator::start(
        loopback,
        SimOptions {
            orders: options.orders,
            tick: Some(options.tick),
            advance: AdvanceOptions {
                steps: 1,
                fraction: 0.03,
                new_orders: 1,
            },
            ..SimOptions::default()
        },
    )
    .await?;
    let key = Arc::new(SigningKey::parse(DEMO_SECRET).expect("the demo secret is valid"));
    let receiver = Router::new()
        .route("/slack", post(slack))
        .route("/webhook", post(webhook))
        .with_state(key);
    let listener = tokio::net::TcpListener::bind(loopback).await?;
    let receiver_addr = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, receiver).await });

    let dir = tempfile_dir()?;
    let text = format!(
        r#"
[poomgo]
base_url = "{sim}"
api_key = "{key}"
[plan]
# The demo polls every few seconds, not on the cron: one window, read every time.
windows = []
created_every = 1
[store]
path = "{store}"
cache_mb = 16
[[targets]]
name = "cs-slack"
kind = "slack"
url = "http://{receiver_addr}/slack"
events = ["invoice.status_changed", "invoice.canceled", "invoice.closed"]
[[targets]]
name = "erp"
kind = "webhook"
url = "http://{receiver_addr}/webhook"
secret = "{DEMO_SECRET}"
"#,
        sim = sim.base_url(),
        key = sim.api_key(),
        store = dir.join("store").display(),
    );
    let app = App::new(Config::parse(&text, "(demo)", dir.clone(), &|_| None)?)?;
    println!("poomgo-notifier demo");
    println!(
        "  simulator  {} ({} orders, time moves every {})",
        sim.base_url(),
        options.orders,
        humantime::format_duration(options.tick)
    );
    println!("  receiver   http://{receiver_addr} (/slack and /webhook)");
    println!("  store      {}", dir.display());
    println!(
        "The first poll records the baseline silently; changes follow as time moves. Ctrl-C stops.\n"
    );
    // Listen once, before the loop: a signal that arrives while a poll runs
    // is kept for the next `recv` (a listener made per iteration would miss it).
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interval = tokio::time::interval(options.every);
    loop {
        tokio::select! {
            _ = interval.tick() => {
                let report = poll(&app, PollOptions::default(), chrono::Utc::now()).await?;
                let delivery = deliver_all(&app).await?;
                println!("· {}", crate::commands::summary(&report, &delivery));
                if let Some(e) = report.failure() {
                    println!("  ! {e}");
                }
            }
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    sim.stop().await;
    Ok(())
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("poomgo-notifier-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Prints a Slack message as a person would read it in the channel.
async fn slack(body: Bytes) -> &'static str {
    match serde_json::from_slice::<Value>(&body) {
        Ok(v) => {
            let text = crate::delivery::targets::slack::readable(&v);
            println!("[slack #cs] {}", text.replace('\n', "\n            "));
        }
        Err(e) => println!("[slack #cs] (not JSON: {e})"),
    }
    "ok"
}

/// Prints a webhook event and checks its Standard Webhooks signature.
async fn webhook(
    State(key): State<Arc<SigningKey>>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    let (id, ts, sig) = (
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
    );
    let verified = ts
        .parse::<i64>()
        .map(|t| key.sign(&id, t, &body) == sig)
        .unwrap_or(false);
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    println!(
        "[webhook erp] {} {} order {} invoice {} → {} (signature {})",
        v["type"].as_str().unwrap_or("?"),
        id,
        v["order"]["orderCode"].as_str().unwrap_or("?"),
        v["invoice"]["invoiceId"].as_str().unwrap_or("?"),
        v["invoice"]["status"]["label"].as_str().unwrap_or("?"),
        if verified { "verified" } else { "INVALID" }
    );
    ""
}
