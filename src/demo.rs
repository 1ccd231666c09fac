//! `poomgo-notifier demo`: the whole product on one machine in one command.
//!
//! It starts the simulator with time moving, a local receiver that plays a
//! Slack channel and an ERP webhook endpoint, and polls every few seconds
//! into a temporary store through the real pipeline (scan → diff → commit →
//! deliver). Each Slack message is printed as the text a person would read;
//! each webhook event with its id and whether its signature verified.
//!
//! The operator console is served on loopback too (its URL is on the first
//! lines), and a second webhook, `wms`, rejects about one event in ten, so
//! the console has dead letters to show and replay.

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
        .route("/wms", post(wms))
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
[[targets]]
name = "wms"
kind = "webhook"
url = "http://{receiver_addr}/wms"
"#,
        sim = sim.base_url(),
        key = sim.api_key(),
        store = dir.join("store").display(),
    );
    let app = Arc::new(App::new(Config::parse(
        &text,
        "(demo)",
        dir.clone(),
        &|_| None,
    )?)?);
    let stop_console = crate::shutdown::Shutdown::new();
    let last_poll = Arc::new(std::sync::Mutex::new(None::<String>));
    let seen = last_poll.clone();
    let upstream = Arc::new(move |_: &str| crate::inspect::Upstream {
        last_successful_poll: seen.lock().map(|t| t.clone()).unwrap_or_default(),
        ..Default::default()
    });
    let console = console(&app, upstream, stop_console.clone()).await?;
    println!("poomgo-notifier demo");
    println!("  console    http://{console}/ (search an order code, replay a dead letter)");
    println!(
        "  simulator  {} ({} orders, time moves every {})",
        sim.base_url(),
        options.orders,
        humantime::format_duration(options.tick)
    );
    println!(
        "  receiver   http://{receiver_addr} (/slack, /webhook, and /wms, which rejects some events)"
    );
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
                if report.failure().is_none()
                    && let Ok(mut last) = last_poll.lock()
                {
                    *last = Some(chrono::Utc::now().to_rfc3339());
                }
                if let Some(e) = report.failure() {
                    println!("  ! {e}");
                }
            }
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
        }
    }
    stop_console.trigger();
    drop(app);
    let _ = std::fs::remove_dir_all(&dir);
    sim.stop().await;
    Ok(())
}

/// Serves the operator console on loopback (port 9464 when free, as the
/// README's examples use, else any), without a token: loopback only.
async fn console(
    app: &Arc<App>,
    upstream: Arc<dyn Fn(&str) -> crate::inspect::Upstream + Send + Sync>,
    shutdown: crate::shutdown::Shutdown,
) -> anyhow::Result<SocketAddr> {
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:9464").await {
        Ok(l) => l,
        Err(_) => tokio::net::TcpListener::bind("127.0.0.1:0").await?,
    };
    let addr = listener.local_addr()?;
    let router = crate::admin::router(
        crate::admin::Admin::new(vec![app.clone()], upstream),
        Router::new(),
    );
    let limits = crate::admin::ServeLimits {
        header_timeout: app.config.admin.header_timeout,
        max_connections: app.config.admin.max_connections,
    };
    tokio::spawn(crate::admin::serve(listener, router, limits, shutdown));
    Ok(addr)
}

/// A WMS that rejects about one event in ten (those of invoices whose id
/// ends in 7): the console's dead letters.
async fn wms(body: Bytes) -> (axum::http::StatusCode, &'static str) {
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if v["invoice"]["invoiceId"]
        .as_str()
        .is_some_and(|id| id.ends_with('7'))
    {
        (axum::http::StatusCode::BAD_REQUEST, "unknown SKU")
    } else {
        (axum::http::StatusCode::OK, "")
    }
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
