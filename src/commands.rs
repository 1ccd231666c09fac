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
    let merchants = sim.merchants();
    if merchants == 1 {
        println!(
            "poomgo simulator: {} orders at {}{}",
            orders,
            sim.base_url(),
            crate::poomgo::ORDERS_PATH
        );
        println!("api key: {}", sim.api_key());
    } else {
        println!(
            "poomgo simulator: {merchants} merchants of {orders} orders each at {}{}",
            sim.base_url(),
            crate::poomgo::ORDERS_PATH
        );
        println!(
            "api keys: {}, {} … {} (merchant N's is the first key with -N)",
            sim.api_key(),
            sim.merchant(1).api_key(),
            sim.merchant(merchants - 1).api_key()
        );
    }
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
pub async fn scan(config_path: &Path, merchant: Option<&str>) -> anyhow::Result<()> {
    let file = Config::load(config_path)?;
    let configs = merchants_of(&file, merchant)?;
    let several = configs.len() > 1;
    for config in &configs {
        let prefix = if several {
            format!("{}: ", config.merchant.name)
        } else {
            String::new()
        };
        scan_one(config, &prefix).await?;
    }
    Ok(())
}

async fn scan_one(config: &Config, prefix: &str) -> anyhow::Result<()> {
    let http = crate::http::client(config.poomgo.connect_timeout, config.poomgo.request_timeout)?;
    let client = PoomgoClient::new(&config.poomgo, http)?;
    let started = Instant::now();
    let mut scan =
        client.scan(poll_window(chrono::Utc::now(), config.poomgo.lookback_days).query());
    let mut invoices = std::collections::HashSet::new();
    let mut skipped = 0;
    while let Some(page) = scan.next_page().await {
        let page = page?;
        skipped += page.content.skipped.len();
        for row in &page.content.rows {
            for i in row.invoices.iter().chain(&row.canceled_invoices) {
                invoices.insert(i.invoice_id.clone());
            }
        }
    }
    let s = scan.stats();
    println!(
        "{prefix}scan: {} pages, {} rows, {} invoices, {} skipped for odd values, {} short pages, total {} in {:.2}s",
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

/// `poomgo-notifier poll`: one poll of each merchant (or of the one
/// `--merchant` names), commit, deliver, exit. With several merchants each
/// summary line starts with its name, and every merchant is polled even
/// when another fails; the exit code is 2 only when the one merchant polled
/// has its key rejected.
pub async fn poll(
    config_path: &Path,
    merchant: Option<&str>,
    options: crate::poll::PollOptions,
) -> anyhow::Result<()> {
    let file = Config::load(config_path)?;
    let file = match merchant {
        Some(name) => file.merchant_named(name)?,
        None => file,
    };
    let apps = crate::poll::App::open_all(file)?;
    let several = apps.len() > 1;
    let mut failures = Vec::new();
    let mut needs_operator = false;
    for app in &apps {
        let name = &app.config.merchant.name;
        let report = crate::poll::poll(app, options, chrono::Utc::now()).await?;
        let delivery = crate::poll::deliver_all(app).await?;
        let prefix = if several {
            format!("{name}: ")
        } else {
            String::new()
        };
        println!("{prefix}{}", summary(&report, &delivery));
        if let Some(e) = report.failure() {
            needs_operator |= report.needs_operator();
            failures.push(format!("{prefix}{e}"));
        }
        if !delivery.failures.is_empty() {
            let each: Vec<String> = delivery
                .failures
                .iter()
                .map(|(t, r)| format!("target `{t}`: {r}"))
                .collect();
            failures.push(format!("{prefix}delivery failed: {}", each.join("; ")));
        }
    }
    match failures.len() {
        0 => Ok(()),
        1 if needs_operator && apps.len() == 1 => Err(NeedsOperator(failures.remove(0)).into()),
        _ => anyhow::bail!(failures.join("; ")),
    }
}

/// The one-line summary of a poll.
pub fn summary(report: &crate::poll::PollReport, delivery: &crate::poll::DeliveryReport) -> String {
    let per_target: Vec<String> = delivery
        .targets
        .iter()
        .filter(|(_, pending, dead)| pending + dead > 0)
        .map(|(name, pending, dead)| format!("{name}: {pending} pending, {dead} dead"))
        .collect();
    format!(
        "poll: {} pages, {} invoices seen, {} events{}, {} skipped, {} delivered, {} pending, {} dead letters{}",
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
        delivery.pending,
        delivery.dead,
        if per_target.is_empty() {
            String::new()
        } else {
            format!(" ({})", per_target.join("; "))
        }
    )
}

/// `poomgo-notifier check`: validate the config, compile every template and
/// render it for every target against a sample event of every change kind
/// (strict mode), and with `online` ask the Poomgo API for one row. Prints a
/// line per check; fails when any did.
pub async fn check(
    config_path: &Path,
    merchant: Option<&str>,
    online: bool,
    send_test: bool,
) -> anyhow::Result<()> {
    let mut failed = 0;
    let mut report = |ok: bool, line: String| {
        println!("{} {line}", if ok { "ok  " } else { "FAIL" });
        if !ok {
            failed += 1;
        }
    };
    let file = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            report(false, format!("config: {e}"));
            anyhow::bail!("the config is not valid");
        }
    };
    let text = std::fs::read_to_string(config_path).unwrap_or_default();
    for key in crate::config::plaintext_secrets(&text) {
        println!(
            "warn `{key}`: a secret is written in the config file itself; put it in an environment variable and write `${{VAR}}` here (the file then holds no secret)"
        );
    }
    let configs = merchants_of(&file, merchant)?;
    if file.merchants.len() > 1 {
        report(
            true,
            format!(
                "config {}: {} merchants ({})",
                config_path.display(),
                file.merchants.len(),
                configs
                    .iter()
                    .map(|c| c.merchant.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    for config in configs {
        if file.merchants.len() > 1 {
            println!("# merchant {}", config.merchant.name);
        }
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
        let http =
            crate::http::client(config.poomgo.connect_timeout, config.poomgo.request_timeout)?;
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
            if name.ends_with("/digest") {
                let digest = crate::delivery::digest::Digest::sample(&samples);
                let context = digest.context_for(renderer, &samples, crate::render::Lang::Ko);
                match renderer.render_value(&name, &context) {
                    Ok(_) => report(
                        true,
                        format!("template {name}: renders a digest of every change kind"),
                    ),
                    Err(e) => report(false, e.to_string()),
                }
                continue;
            }
            let errors: Vec<String> = samples
                .iter()
                .filter_map(|e| {
                    renderer
                        .render(&name, e, crate::render::Lang::Ko)
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
                    let entry = target.entry_for(e, now.timestamp_millis());
                    delivery
                        .sender
                        .request(target, &[&entry], None, now.timestamp())
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
            for target in &delivery.targets {
                match target.health_check(&http).await {
                    Ok(found) => report(
                        true,
                        format!("target {} ({}): {found}", target.name, target.kind),
                    ),
                    Err(why) => report(
                        false,
                        format!("target {} ({}): {why}", target.name, target.kind),
                    ),
                }
            }
        }
        if send_test {
            for target in &delivery.targets {
                let request = target.test_request(now);
                let id = request.webhook_id.clone();
                match delivery.sender.post(target, request, Vec::new).await {
                    crate::delivery::Outcome::Delivered => report(
                        true,
                        format!(
                            "target {}: test message delivered{}",
                            target.name,
                            id.map(|i| format!(" (webhook.test {i})"))
                                .unwrap_or_default()
                        ),
                    ),
                    crate::delivery::Outcome::Retry { error, .. }
                    | crate::delivery::Outcome::Dead { error, .. } => report(
                        false,
                        format!("target {}: test message failed: {error}", target.name),
                    ),
                }
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
    readable: bool,
) -> anyhow::Result<()> {
    let file = Config::load(config_path)?;
    // A merchant's own target is in that merchant's config only.
    let config = file
        .merchants()
        .into_iter()
        .find(|c| c.targets.iter().any(|t| t.name == target))
        .unwrap_or(file);
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
    let entry = target.entry_for(&event, now.timestamp_millis());
    let request = delivery
        .sender
        .request(target, &[&entry], None, now.timestamp())?;
    if readable {
        println!("{}", target.readable(&request.body));
        return Ok(());
    }
    for (name, value) in &request.headers {
        eprintln!("# {name}: {}", value.to_str().unwrap_or("<binary>"));
    }
    println!("{}", String::from_utf8_lossy(&request.body));
    Ok(())
}

/// How `outbox` and `dead-letters` reach the queues: the store itself when
/// no process holds it, else the running daemon's admin API. Either way,
/// every merchant the command names (all of them without `--merchant`).
enum Reach {
    /// Each merchant's keyspace of the store, with its targets.
    Store(Vec<(String, crate::store::Store, Vec<crate::delivery::Target>)>),
    Daemon {
        base: String,
        token: Option<secrecy::SecretString>,
        http: reqwest::Client,
        merchants: Vec<String>,
    },
}

impl Reach {
    fn merchants(&self) -> usize {
        match self {
            Reach::Store(stores) => stores.len(),
            Reach::Daemon { merchants, .. } => merchants.len(),
        }
    }

    fn open(config_path: &Path, merchant: Option<&str>) -> anyhow::Result<Reach> {
        let file = Config::load(config_path)?;
        let configs = merchants_of(&file, merchant)?;
        let http = crate::http::client(
            std::time::Duration::from_secs(3),
            std::time::Duration::from_secs(30),
        )?;
        let mut parts = Vec::new();
        for config in &configs {
            let delivery = crate::poll::Delivery::new(config, http.clone())?;
            parts.push((config.merchant.name.clone(), delivery.targets));
        }
        let names: Vec<Vec<&str>> = parts
            .iter()
            .map(|(_, targets)| targets.iter().map(|t| t.name.as_str()).collect())
            .collect();
        let keyspaces: Vec<(&str, &[&str])> = parts
            .iter()
            .zip(&names)
            .map(|((m, _), n)| (m.as_str(), n.as_slice()))
            .collect();
        let opened = crate::store::Store::open_many(
            &file.store_path(),
            file.store.cache_mb,
            crate::store::DEFAULT_MIN_FREE_MB,
            &keyspaces,
        );
        drop(keyspaces);
        drop(names);
        match opened {
            Ok(stores) => Ok(Reach::Store(
                parts
                    .into_iter()
                    .zip(stores)
                    .map(|((m, targets), store)| (m, store, targets))
                    .collect(),
            )),
            Err(crate::store::StoreError::Open { .. }) if file.admin.listen.is_some() => {
                let mut addr = file.admin.listen.expect("checked");
                if addr.ip().is_unspecified() {
                    addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
                }
                eprintln!(
                    "# the store is in use: going through the running daemon at http://{addr}"
                );
                Ok(Reach::Daemon {
                    base: format!("http://{addr}"),
                    token: file.admin.token.clone(),
                    http,
                    merchants: parts.into_iter().map(|(m, _)| m).collect(),
                })
            }
            Err(e @ crate::store::StoreError::Open { .. }) => Err(anyhow::anyhow!(
                "{e}; if a daemon is running, set `[admin] listen` so these commands can reach it"
            )),
            Err(e) => Err(e.into()),
        }
    }

    /// One admin API call per merchant (`write`: a POST), or the same
    /// operation on each merchant's keyspace: `(merchant, result)` in
    /// config order.
    async fn each<T: serde::de::DeserializeOwned>(
        &self,
        write: bool,
        path: &str,
        local: impl Fn(
            &crate::store::Store,
            &[crate::delivery::Target],
        ) -> Result<T, crate::operate::OpError>,
    ) -> anyhow::Result<Vec<(String, anyhow::Result<T>)>> {
        let mut out = Vec::new();
        match self {
            Reach::Store(stores) => {
                for (merchant, store, targets) in stores {
                    let result = local(store, targets).map_err(anyhow::Error::from);
                    if write {
                        store.flush().await?;
                    }
                    out.push((merchant.clone(), result));
                }
            }
            Reach::Daemon {
                base,
                http,
                token,
                merchants,
            } => {
                let sep = if path.contains('?') { '&' } else { '?' };
                for merchant in merchants {
                    let url = format!("{base}{path}{sep}merchant={merchant}");
                    let request = if write { http.post(url) } else { http.get(url) };
                    out.push((merchant.clone(), api_call(with_token(request, token)).await));
                }
            }
        }
        Ok(out)
    }

    /// Lists from every merchant, one after another; the first error stops.
    async fn list<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        local: impl Fn(
            &crate::store::Store,
            &[crate::delivery::Target],
        ) -> Result<Vec<T>, crate::operate::OpError>,
    ) -> anyhow::Result<Vec<(String, T)>> {
        let mut out = Vec::new();
        for (merchant, result) in self.each(false, path, local).await? {
            out.extend(result?.into_iter().map(|t| (merchant.clone(), t)));
        }
        Ok(out)
    }

    /// The first merchant at which `local` (or the API) succeeds: an event
    /// id belongs to one merchant. The last error when none does.
    async fn find<T: serde::de::DeserializeOwned>(
        &self,
        write: bool,
        path: &str,
        local: impl Fn(
            &crate::store::Store,
            &[crate::delivery::Target],
        ) -> Result<T, crate::operate::OpError>,
    ) -> anyhow::Result<T> {
        let mut last = None;
        for (_, result) in self.each(write, path, local).await? {
            match result {
                Ok(t) => return Ok(t),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no merchant to ask")))
    }
}

/// The merchants a command acts on: the one `--merchant` names, or every
/// merchant of the file.
pub fn merchants_of(file: &Config, merchant: Option<&str>) -> anyhow::Result<Vec<Config>> {
    match merchant {
        Some(name) => Ok(vec![file.merchant_named(name)?]),
        None => Ok(file.merchants()),
    }
}

/// `merchant\t` in front of a line, when there are several merchants.
fn merchant_column(several: bool, merchant: &str) -> String {
    if several {
        format!("{merchant}\t")
    } else {
        String::new()
    }
}

/// The admin token as a Bearer header, when the config has one.
fn with_token(
    request: reqwest::RequestBuilder,
    token: &Option<secrecy::SecretString>,
) -> reqwest::RequestBuilder {
    use secrecy::ExposeSecret;
    match token {
        Some(t) => request.bearer_auth(t.expose_secret()),
        None => request,
    }
}

/// Sends one admin API call and reads its JSON answer, or says why not.
async fn api_call<T: serde::de::DeserializeOwned>(
    request: reqwest::RequestBuilder,
) -> anyhow::Result<T> {
    let response = request.send().await.map_err(|e| {
        anyhow::anyhow!(
            "the daemon's admin API did not answer: {}",
            crate::http::describe(e)
        )
    })?;
    let status = response.status();
    let body = response.bytes().await.unwrap_or_default();
    if !status.is_success() {
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        if status.as_u16() == 401 {
            return Err(NeedsOperator(format!(
                "the daemon refused: {message} (set `admin.token`)"
            ))
            .into());
        }
        anyhow::bail!("the daemon answered HTTP {}: {message}", status.as_u16());
    }
    serde_json::from_slice(&body).context("the daemon's answer is not what this version expects")
}

fn query(target: Option<&str>) -> String {
    target.map(|t| format!("?target={t}")).unwrap_or_default()
}

/// `poomgo-notifier outbox`: pending entries per target, oldest first
/// (each merchant in turn, its name first on each line when there are
/// several).
pub async fn outbox(
    config_path: &Path,
    merchant: Option<&str>,
    target: Option<&str>,
) -> anyhow::Result<()> {
    let reach = Reach::open(config_path, merchant)?;
    let several = reach.merchants() > 1;
    let pending: Vec<(String, crate::operate::PendingView)> = reach
        .list(&format!("/api/outbox{}", query(target)), |s, t| {
            crate::operate::outbox(s, t, target)
        })
        .await?;
    if pending.is_empty() {
        println!("nothing pending");
    }
    for (m, p) in &pending {
        println!(
            "{}{}\t{}\t{}\tinvoice {}\torder {}\tattempts {}\tnext {}\t{}",
            merchant_column(several, m),
            p.target,
            p.event_id,
            p.kind,
            p.invoice_id,
            p.order_code.as_deref().unwrap_or("-"),
            p.attempts,
            p.next_attempt_at,
            p.last_error.as_deref().unwrap_or("")
        );
    }
    Ok(())
}

/// What `dead-letters` was asked to do.
pub enum DeadLettersAction {
    List {
        target: Option<String>,
    },
    Show {
        event_id: String,
    },
    Replay {
        event_ids: Vec<String>,
    },
    ReplayAll {
        target: Option<String>,
    },
    Purge {
        older_than: std::time::Duration,
        target: Option<String>,
    },
}

/// `poomgo-notifier dead-letters …`.
pub async fn dead_letters(
    config_path: &Path,
    merchant: Option<&str>,
    action: DeadLettersAction,
) -> anyhow::Result<()> {
    use crate::operate::{self as op, Done};
    let reach = Reach::open(config_path, merchant)?;
    let several = reach.merchants() > 1;
    let said = |verb: &str, done: &Done| {
        println!("{verb} {} dead letter(s)", done.entries.len());
        for (target, id) in &done.entries {
            println!("  {target}\t{id}");
        }
    };
    match action {
        DeadLettersAction::List { target } => {
            let t = target.as_deref();
            let list: Vec<(String, op::DeadView)> = reach
                .list(&format!("/api/dead-letters{}", query(t)), |s, ts| {
                    op::dead_letters(s, ts, t)
                })
                .await?;
            if list.is_empty() {
                println!("no dead letters");
            }
            for (m, d) in &list {
                println!(
                    "{}{}\t{}\tinvoice {}\torder {}\t{}\tfailed {}\t{}",
                    merchant_column(several, m),
                    d.event_id,
                    d.target,
                    d.invoice_id,
                    d.order_code.as_deref().unwrap_or("-"),
                    d.kind,
                    d.dead_at,
                    d.reason
                );
            }
        }
        DeadLettersAction::Show { event_id } => {
            let detail: op::DeadDetail = reach
                .find(false, &format!("/api/dead-letters/{event_id}"), |s, ts| {
                    op::dead_letter(s, ts, &event_id)
                })
                .await?;
            println!("{}", serde_json::to_string_pretty(&detail)?);
        }
        DeadLettersAction::Replay { event_ids } => {
            let mut done = Done::default();
            for id in &event_ids {
                let one: Done = reach
                    .find(true, &format!("/api/dead-letters/{id}/replay"), |s, ts| {
                        op::replay(s, ts, std::slice::from_ref(id))
                    })
                    .await?;
                done.entries.extend(one.entries);
            }
            said("replayed (ids kept, attempts reset)", &done);
        }
        DeadLettersAction::ReplayAll { target } => {
            let t = target.as_deref();
            let mut done = Done::default();
            for (_, one) in reach
                .each(
                    true,
                    &format!("/api/dead-letters/replay{}", query(t)),
                    |s, ts| op::replay_all(s, ts, t),
                )
                .await?
            {
                done.entries.extend(one?.entries);
            }
            said("replayed (ids kept, attempts reset)", &done);
        }
        DeadLettersAction::Purge { older_than, target } => {
            let t = target.as_deref();
            let human = humantime::format_duration(older_than)
                .to_string()
                .replace(' ', "");
            let path = format!(
                "/api/dead-letters/purge?older_than={human}{}",
                t.map(|t| format!("&target={t}")).unwrap_or_default()
            );
            let mut done = Done::default();
            for (_, one) in reach
                .each(true, &path, |s, ts| op::purge(s, ts, t, older_than))
                .await?
            {
                done.entries.extend(one?.entries);
            }
            said(&format!("purged (older than {human})"), &done);
        }
    }
    Ok(())
}

/// `poomgo-notifier store rebuild`: move a damaged store aside and start a
/// fresh one (a new generation; the next poll is a silent baseline).
pub fn store_rebuild(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    let names: Vec<&str> = config.targets.iter().map(|t| t.name.as_str()).collect();
    let path = config.store_path();
    let aside = crate::store::rebuild(&path, config.store.cache_mb, &names)?;
    println!(
        "moved the store to {} (nothing was deleted)\na fresh store with a new generation is at {}\nthe next poll records a silent baseline, and receivers see no reused ids; deliveries still pending in the old store were not carried over",
        aside.display(),
        path.display()
    );
    Ok(())
}
