//! One function per command of the binary. `main.rs` parses arguments and
//! calls these; they print what a person reads and return errors for `main`
//! to print with their whole cause chain.

use std::{net::SocketAddr, path::Path, time::Instant};

use anyhow::Context;

use crate::config::Config;
use crate::poomgo::{PoomgoClient, poll_window};
use crate::sim::{SimOptions, Simulator};

/// `poomgo-notifier sim`: serve the simulator until Ctrl-C.
pub async fn sim(listen: SocketAddr, options: SimOptions) -> anyhow::Result<()> {
    let (orders, tick) = (options.orders, options.tick);
    let sim = Simulator::start(listen, options)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    println!(
        "poomgo simulator: {} orders at {}{}",
        orders,
        sim.base_url(),
        crate::poomgo::ORDERS_PATH
    );
    println!("api key: {}", sim.api_key());
    match tick {
        Some(t) => println!(
            "time moves one step every {}",
            humantime::format_duration(t)
        ),
        None => println!(
            "time is frozen: POST {}/_sim/advance to move it",
            sim.base_url()
        ),
    }
    tokio::signal::ctrl_c()
        .await
        .context("cannot wait for Ctrl-C")?;
    sim.stop().await;
    Ok(())
}

/// `poomgo-notifier scan`: walk the poll window once and print what the API
/// returned (no store, no delivery): for trying a key, and for benchmarks.
pub async fn scan(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let http = crate::http_client(config.poomgo.connect_timeout, config.poomgo.request_timeout)?;
    let client = PoomgoClient::new(&config.poomgo, http)?;
    let started = Instant::now();
    let mut scan = client.scan(poll_window(chrono::Utc::now(), config.poomgo.lookback_days));
    while let Some(page) = scan.next_page().await {
        page?;
    }
    let s = scan.stats();
    println!(
        "scan: {} pages, {} rows, {} invoices, {} duplicate rows dropped, total {} in {:.2}s",
        s.pages,
        s.rows,
        s.invoices,
        s.duplicate_rows,
        s.total,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// `poomgo-notifier poll`: one poll, commit, deliver, exit.
pub async fn poll(config_path: &Path, options: crate::poll::PollOptions) -> anyhow::Result<()> {
    let app = crate::poll::App::load(config_path)?;
    let report = crate::poll::poll(&app, options, chrono::Utc::now()).await?;
    let delivery = crate::poll::deliver_all(&app).await?;
    println!("{}", summary(&report, &delivery));
    if let Some(e) = report.scan_error {
        anyhow::bail!(e);
    }
    if !delivery.failures.is_empty() {
        let each: Vec<String> = delivery
            .failures
            .iter()
            .map(|(t, r)| format!("target `{t}`: {r}"))
            .collect();
        anyhow::bail!("delivery failed: {}", each.join("; "));
    }
    Ok(())
}

/// The one-line summary of a poll.
pub fn summary(report: &crate::poll::PollReport, delivery: &crate::poll::DeliveryReport) -> String {
    format!(
        "poll: {} pages, {} invoices seen, {} events{}, {} delivered, {} pending",
        report.pages,
        report.invoices_seen,
        report.events,
        if report.baseline {
            " (baseline: recorded silently)"
        } else {
            ""
        },
        delivery.delivered,
        delivery.pending
    )
}
