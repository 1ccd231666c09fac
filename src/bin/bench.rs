//! `cargo run --release --bin bench -- [--events N] [--runs R]`
//!
//! Prints one `name value unit` line per figure, each the median of `runs`.
//! Everything runs on loopback: the receiver has its own runtime thread, so
//! it does not share a scheduler with what is measured.
//!
//! - `delivery_events_per_second`: N pending signed webhook events drained
//!   through the real driver (render, sign, send, durable removal) to a
//!   receiver that answers 200 at once;
//! - `plain_client_events_per_second`: the same bodies posted by a plain
//!   reqwest client with the same concurrency;
//! - `delivery_vs_plain`: the ratio of their times.

use std::time::{Duration, Instant};

use poomgo_notifier::config::Config;
use poomgo_notifier::poll::App;
use poomgo_notifier::store::PageBatch;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fresh folder under the temp dir, removed when dropped.
struct WorkDir(std::path::PathBuf);

impl WorkDir {
    fn new() -> WorkDir {
        let path = std::env::temp_dir().join(format!(
            "poomgo-bench-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&path).unwrap();
        WorkDir(path)
    }
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A receiver that answers every POST with 200, on its own runtime thread.
fn receiver() -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            let app = axum::Router::new().fallback(axum::routing::post(|| async { "" }));
            axum::serve(listener, app).await.unwrap();
        });
    });
    addr
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

fn main() {
    let events = arg("--events", 10_000);
    let runs = arg("--runs", 3);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = receiver();
    let mut ours = Vec::new();
    let mut plain = Vec::new();
    let mut ratios = Vec::new();
    for _ in 0..runs {
        let (a, b) = rt.block_on(delivery(addr, events));
        ratios.push(a / b);
        ours.push(a);
        plain.push(b);
    }
    let spread = |v: &[f64]| {
        let min = v.iter().cloned().fold(f64::MAX, f64::min);
        let max = v.iter().cloned().fold(f64::MIN, f64::max);
        (min, max)
    };
    let (lo, hi) = spread(&ratios);
    println!("delivery_events {events} events");
    println!(
        "delivery_events_per_second {:.0} events/s",
        events as f64 / median(ours)
    );
    println!(
        "plain_client_events_per_second {:.0} events/s",
        events as f64 / median(plain)
    );
    println!("delivery_vs_plain {:.2} x", median(ratios));
    println!("delivery_vs_plain_min {lo:.2} x");
    println!("delivery_vs_plain_max {hi:.2} x");
}

/// Seconds to drain `n` events through the driver, and for a plain client.
async fn delivery(addr: std::net::SocketAddr, n: usize) -> (f64, f64) {
    let dir = WorkDir::new();
    let text = format!(
        r#"
[poomgo]
base_url = "http://127.0.0.1:9"
api_key = "unused"
[store]
path = "{}"
cache_mb = 64
[[targets]]
name = "erp"
kind = "webhook"
url = "http://{addr}/hook"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#,
        dir.path().join("store").display()
    );
    let config = Config::parse(&text, "bench", dir.path().to_owned(), &|_| None).unwrap();
    let app = App::new(config).unwrap();
    let statuses = poomgo_notifier::status::StatusTable::default();
    let samples = poomgo_notifier::samples::all(&statuses, chrono::Utc::now());
    let now = chrono::Utc::now().timestamp_millis();
    let target = &app.targets[0];
    let mut bodies = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut batch = PageBatch::default();
        for &i in chunk {
            let mut e = samples[i % samples.len()].clone();
            e.id = format!("gbench-{i}-1");
            e.invoice.invoice_id = i.to_string();
            let entry = target.entry_for(&e, now);
            bodies.push(entry.event.clone());
            batch.entries.push(("erp".into(), entry));
        }
        app.store.commit_page(&batch).unwrap();
    }
    app.store.flush().await.unwrap();

    // Plain, ours, plain: the plain figure is the mean of the two around ours,
    // so a machine that slows down or speeds up mid-run counts for both.
    let before = plain_client(addr, bodies.clone()).await;
    let started = Instant::now();
    let report = poomgo_notifier::poll::deliver_all(&app).await.unwrap();
    let ours = started.elapsed().as_secs_f64();
    assert_eq!(report.delivered as usize, n, "{report:?}");
    let after = plain_client(addr, bodies).await;
    (ours, (before + after) / 2.0)
}

/// Seconds for a plain reqwest client to post `bodies`, 4 at a time (the
/// webhook target's default concurrency).
async fn plain_client(addr: std::net::SocketAddr, bodies: Vec<Vec<u8>>) -> f64 {
    let http = reqwest::Client::new();
    let url = format!("http://{addr}/hook");
    let started = Instant::now();
    let mut queue = bodies.into_iter();
    let mut tasks = futures_util::stream::FuturesUnordered::new();
    use futures_util::StreamExt;
    loop {
        while tasks.len() < 4 {
            let Some(body) = queue.next() else { break };
            let request = http
                .post(&url)
                .header("content-type", "application/json")
                .body(body)
                .timeout(Duration::from_secs(15));
            tasks.push(async move { request.send().await.unwrap().status() });
        }
        if tasks.next().await.is_none() {
            break;
        }
    }
    started.elapsed().as_secs_f64()
}
