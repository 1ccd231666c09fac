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
    let http = crate::http::client(config.poomgo.connect_timeout, config.poomgo.request_timeout)?;
    let client = PoomgoClient::new(&config.poomgo, http)?;
    let started = Instant::now();
    let mut scan =
        client.scan(poll_window(chrono::Utc::now(), config.poomgo.lookback_days).query());
    let mut invoices = std::collections::HashSet::new();
    let mut skipped = 0;
    while let Some(page) = scan.next_page().await {
        let page = page?;
        skipped += page.skipped.len();
        for row in &page.rows {
            for i in row.invoices.iter().chain(&row.canceled_invoices) {
                invoices.insert(i.invoice_id.clone());
            }
        }
    }
    let s = scan.stats();
    println!(
        "scan: {} pages, {} rows, {} invoices, {} skipped for odd values, {} short pages, total {} in {:.2}s",
        s.pages,
        s.rows,
        invoices.len(),
        skipped,
        s.short_pages.len(),
        s.total,
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// A failure that retrying cannot fix: the config must change (a rejected
/// API key, say). `main` exits with 2 for these, so a supervisor can stop
/// restarting (systemd: `RestartPreventExitStatus=2`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct NeedsOperator(pub String);

/// The exit code for an error: 2 when the configuration must change, else 1.
pub fn exit_code(error: &anyhow::Error) -> u8 {
    let configuration = error
        .chain()
        .any(|e| e.is::<NeedsOperator>() || e.is::<crate::config::ConfigError>());
    if configuration { 2 } else { 1 }
}

/// `poomgo-notifier poll`: one poll, commit, deliver, exit.
pub async fn poll(config_path: &Path, options: crate::poll::PollOptions) -> anyhow::Result<()> {
    let app = crate::poll::App::load(config_path)?;
    let report = crate::poll::poll(&app, options, chrono::Utc::now()).await?;
    let delivery = crate::poll::deliver_all(&app).await?;
    println!("{}", summary(&report, &delivery));
    if let Some(e) = report.failure() {
        if report.needs_operator() {
            return Err(NeedsOperator(e).into());
        }
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
        "poll: {} pages, {} invoices seen, {} events{}, {} skipped, {} delivered, {} pending",
        report.pages,
        report.invoices_seen,
        report.events,
        if report.baseline {
            " (baseline: recorded silently)"
        } else {
            ""
        },
        report.skipped.len(),
        delivery.delivered,
        delivery.pending
    )
}

/// `poomgo-notifier check`: validate the config, compile every template and
/// render it for every target against a sample event of every change kind
/// (strict mode), and with `online` ask the Poomgo API for one row. Prints a
/// line per check; fails when any did.
pub async fn check(config_path: &Path, online: bool) -> anyhow::Result<()> {
    let mut failed = 0;
    let mut report = |ok: bool, line: String| {
        println!("{} {line}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failed += 1;
        }
    };
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            report(false, format!("config: {e}"));
            anyhow::bail!("the config is not valid");
        }
    };
    report(
        true,
        format!(
            "config {}: {} target(s), schedule `{}` in {}",
            config_path.display(),
            config.targets.len(),
            config.schedule.cron,
            config.schedule.timezone
        ),
    );
    let http = crate::http::client(config.poomgo.connect_timeout, config.poomgo.request_timeout)?;
    let delivery = match crate::poll::Delivery::new(&config, http.clone()) {
        Ok(d) => d,
        Err(e) => {
            report(false, format!("templates: {e:#}"));
            anyhow::bail!("1 check failed");
        }
    };
    let now = chrono::Utc::now();
    let samples = crate::samples::all(&delivery.statuses, now);
    let renderer = delivery.sender.renderer();
    for name in renderer.names() {
        let errors: Vec<String> = samples
            .iter()
            .filter_map(|e| {
                renderer
                    .render(&name, e)
                    .err()
                    .map(|err| format!("{} ({})", err, e.kind))
            })
            .collect();
        match errors.first() {
            None => report(true, format!("template {name}: renders every change kind")),
            Some(first) => report(false, first.clone()),
        }
    }
    for target in &delivery.targets {
        let errors: Vec<String> = samples
            .iter()
            .filter(|e| target.wants(e))
            .filter_map(|e| {
                let entry = target.entry_for(e, now.timestamp());
                delivery
                    .sender
                    .request(target, &entry, now.timestamp())
                    .err()
                    .map(|err| format!("{err} ({})", e.kind))
            })
            .collect();
        match errors.first() {
            None => report(
                true,
                format!(
                    "target {} ({}): a body for every kind it receives",
                    target.name, target.kind
                ),
            ),
            Some(first) => report(false, format!("target {}: {first}", target.name)),
        }
    }
    if online {
        let client = PoomgoClient::new(&config.poomgo, http)?;
        let window = poll_window(now, config.poomgo.lookback_days).query();
        match client.fetch_page_sized(&window, 1, 1).await {
            Ok(page) => report(
                true,
                format!(
                    "poomgo {}: the key works ({} orders in the last {} days)",
                    config.poomgo.base_url, page.total, config.poomgo.lookback_days
                ),
            ),
            Err(e) => report(false, format!("poomgo {}: {e}", config.poomgo.base_url)),
        }
    }
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// `poomgo-notifier preview`: print exactly the body `target` would send for
/// an event (a file, or a sample of `kind`). Headers go to stderr.
pub fn preview(
    config_path: &Path,
    target: &str,
    event_file: Option<&Path>,
    kind: Option<crate::event::EventType>,
) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let http = crate::http::client(config.poomgo.connect_timeout, config.poomgo.request_timeout)?;
    let delivery = crate::poll::Delivery::new(&config, http)?;
    let Some(target) = delivery.targets.iter().find(|t| t.name == target) else {
        let names: Vec<&str> = delivery.targets.iter().map(|t| t.name.as_str()).collect();
        anyhow::bail!(
            "no target is named `{target}`: the config has {}",
            names.join(", ")
        );
    };
    let now = chrono::Utc::now();
    let event = match event_file {
        Some(path) => {
            let text = std::fs::read(path)
                .with_context(|| format!("cannot read the event file {}", path.display()))?;
            serde_json::from_slice(&text).with_context(|| {
                format!(
                    "{} is not an event as documented (id, type, order, invoice, changes)",
                    path.display()
                )
            })?
        }
        None => crate::samples::event(
            kind.unwrap_or(crate::event::EventType::StatusChanged),
            &delivery.statuses,
            now,
        ),
    };
    if !target.wants(&event) {
        eprintln!(
            "# note: target `{}` does not receive {} events; showing the body anyway",
            target.name, event.kind
        );
    }
    let entry = target.entry_for(&event, now.timestamp());
    let request = delivery.sender.request(target, &entry, now.timestamp())?;
    for (name, value) in &request.headers {
        eprintln!("# {name}: {}", value.to_str().unwrap_or("<binary>"));
    }
    println!("{}", String::from_utf8_lossy(&request.body));
    Ok(())
}
