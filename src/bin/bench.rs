//! `cargo run --release --bin bench -- [--orders N] [--runs R] [--latency-ms L] [--events E] [--skip-poll] [--skip-plan] [--skip-store] [--skip-delivery]` (`--help` lists them)
//!
//! Prints one `name value unit` line per figure, each the median of `runs`.
//! Everything runs on loopback. The simulator runs as its own process (the
//! release `poomgo-notifier sim`, `--latency-ms` per page, 50 by default);
//! each poll is the release `poomgo-notifier poll` as its own process, timed
//! by `/usr/bin/time` (wall, peak RSS, user + sys CPU). Webhooks go to a
//! receiver on its own runtime thread.
//!
//! Poll figures (one `created` window of `lookback_days`, read every poll,
//! so that every poll reads the same pages as the raw fetch):
//! - `raw_fetch`: the wall time of downloading exactly those pages with the
//!   same client settings and concurrency, bodies discarded: the floor;
//! - `parse_floor_cpu`: CPU time to parse the same bodies into rows, nothing else;
//!   `download_cpu`: the CPU the raw fetch itself costs (HTTP, bodies), which
//!   every poll pays on top of parsing;
//! - `baseline_poll`, `change_poll` (about 1% of invoices changed, every
//!   event signed and delivered), `idle_poll`: wall, RSS, CPU, and their
//!   ratio to the raw fetch; `*_nolatency_cpu` with the latency off, against
//!   the parse floor; `idle_poll_warm_nolatency_cpu`: the same in a process
//!   that has polled before (the daemon's case: sled's cache warm);
//! - `sled_bytes_per_invoice` after a baseline and 10 change polls;
//! - `requests_per_hour_default_plan` and `requests_per_hour_full_rescan`
//!   (every tick, the staleness the default plan gives recent changes), at a
//!   5-minute cron; `requests_per_hour_every_tick_windows`: what the default
//!   plan's every-tick windows alone cost, so no plan with their staleness
//!   can do better than `full_rescan_vs_every_tick_windows`.
//!
//! Store figures: `store_baseline_commit_rate` (and `_cpu_rate`): N new
//! snapshots committed through `Store::commit_page` in pages of 500, as a
//! baseline poll writes them, without fetching or parsing;
//! `sled_alone_insert_rss_mib`: the peak memory of sled by itself inserting
//! N snapshot-sized values one by one (its own process, the default cache),
//! the floor under a baseline poll's memory.
//!
//! Delivery figures: `delivery_events_per_second` (N pending signed webhook
//! events drained through the real driver: render, sign, send, durable
//! mark), `plain_client_events_per_second` (the same bodies posted by a
//! plain reqwest client with the same concurrency) and their ratio;
//! `delivery_cpu_per_event` and `plain_client_cpu_per_event`: this process's
//! CPU per event during each (the receiver's included, the same for both);
//! at least five runs, whatever `--runs` says (each takes a second or two).
//! `queue_due_per_entry` and `queue_delivered_per_entry`: what the queue
//! alone pays per entry to pick what is due and to let a delivered entry go
//! (no HTTP), and `queue_written_per_entry`, the bytes that writes.
//! Then what sled by itself pays to remove an entry: `sled_alone_remove_*`
//! (values the size of an outbox entry removed one by one in key order, wall
//! µs and bytes written per entry; the same for 100-byte values) and
//! `sled_alone_drop_tree_per_entry` (the same entries dropped with their
//! tree).

use std::time::{Duration, Instant};

use poomgo_notifier::config::Config;
use poomgo_notifier::config::DEFAULT_CACHE_MB;
use poomgo_notifier::poll::App;
use poomgo_notifier::store::PageBatch;

/// The benchmark's options (`bench --help`); the figures are in the module docs.
#[derive(clap::Parser)]
#[command(
    name = "bench",
    about = "Measures poomgo-notifier on loopback and prints one `name value unit` line per figure (each the median of --runs)",
    after_help = "Needs the release build beside it (cargo build --release): the simulator and each poll run as their own processes, timed with /usr/bin/time."
)]
struct Args {
    /// Orders the simulated merchant has.
    #[arg(long, default_value_t = 100_000)]
    orders: usize,
    /// Runs per figure (the median is printed; delivery takes at least five).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Simulated latency per page, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: usize,
    /// Pending events drained by the delivery figures.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// Skip the poll figures.
    #[arg(long)]
    skip_poll: bool,
    /// Skip the scan plan's request figures.
    #[arg(long)]
    skip_plan: bool,
    /// Skip the store figures.
    #[arg(long)]
    skip_store: bool,
    /// Skip the delivery figures.
    #[arg(long)]
    skip_delivery: bool,
    /// Internal: sled by itself inserting --orders values (run as its own
    /// process by the store figures, to measure its memory).
    #[arg(long, hide = true)]
    sled_alone: bool,
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
    let args = <Args as clap::Parser>::parse();
    if args.sled_alone {
        sled_alone(args.orders);
        return;
    }
    let events = args.events;
    let runs = args.runs;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let addr = receiver();
    if !args.skip_poll {
        rt.block_on(poll_figures(addr, args.orders, runs, args.latency_ms));
    }
    if !args.skip_plan {
        plan_figures(args.orders, 14);
    }
    if !args.skip_store {
        let n = args.orders;
        let mut walls = Vec::new();
        let mut cpus = Vec::new();
        for _ in 0..runs {
            let (wall, cpu) = store_commit(n);
            walls.push(wall);
            cpus.push(cpu);
        }
        println!(
            "store_baseline_commit_rate {:.0} invoices/s",
            n as f64 / median(walls)
        );
        println!(
            "store_baseline_commit_cpu_rate {:.0} invoices/s",
            n as f64 / median(cpus)
        );
        let rss: Vec<f64> = (0..runs).map(|_| sled_alone_rss(n)).collect();
        println!("sled_alone_insert_rss_mib {:.1} MiB", median(rss));
    }
    if args.skip_delivery {
        return;
    }
    let mut ours = Vec::new();
    let mut plain = Vec::new();
    let mut ratios = Vec::new();
    let mut ours_cpu = Vec::new();
    let mut plain_cpu = Vec::new();
    let mut body_bytes = 0.0;
    // At least five runs: the cheapest figure and the noisiest.
    for _ in 0..runs.max(5) {
        let drain = rt.block_on(delivery(addr, events));
        body_bytes = drain.body_bytes;
        ratios.push(drain.ours / drain.plain);
        ours.push(drain.ours);
        plain.push(drain.plain);
        ours_cpu.push(drain.ours_cpu);
        plain_cpu.push(drain.plain_cpu);
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
    println!(
        "delivery_cpu_per_event {:.1} us",
        median(ours_cpu) * 1e6 / events as f64
    );
    println!(
        "plain_client_cpu_per_event {:.1} us",
        median(plain_cpu) * 1e6 / events as f64
    );
    println!("delivery_vs_plain {:.2} x", median(ratios));
    println!("delivery_vs_plain_min {lo:.2} x");
    println!("delivery_vs_plain_max {hi:.2} x");

    // What the durable removal of a delivered entry costs sled by itself.
    let entry_bytes = body_bytes as usize + 60;
    let mut remove = Vec::new();
    let mut written = Vec::new();
    let mut small = Vec::new();
    let mut dropped = Vec::new();
    for _ in 0..runs.max(5) {
        let (us, bytes) = sled_alone_removal(events, entry_bytes, Removal::OneByOne);
        remove.push(us);
        written.push(bytes);
        small.push(sled_alone_removal(events, 100, Removal::OneByOne).0);
        dropped.push(sled_alone_removal(events, entry_bytes, Removal::DropTree).0);
    }
    // What the queue itself (our code on sled) pays per delivered entry.
    let mut picked = Vec::new();
    let mut let_go = Vec::new();
    let mut queue_written = Vec::new();
    for _ in 0..runs.max(5) {
        let (due_us, done_us, bytes) = queue_drain(&rt, events);
        picked.push(due_us);
        let_go.push(done_us);
        queue_written.push(bytes);
    }
    println!("queue_due_per_entry {:.1} us", median(picked));
    println!("queue_delivered_per_entry {:.1} us", median(let_go));
    println!("queue_written_per_entry {:.0} bytes", median(queue_written));
    println!("sled_alone_entry_bytes {entry_bytes} bytes");
    println!("sled_alone_remove_per_entry {:.1} us", median(remove));
    println!(
        "sled_alone_remove_written_per_entry {:.0} bytes",
        median(written)
    );
    println!("sled_alone_remove_100_byte_entry {:.1} us", median(small));
    println!("sled_alone_drop_tree_per_entry {:.1} us", median(dropped));
}

enum Removal {
    OneByOne,
    DropTree,
}

/// The queue alone, as the driver uses it, no HTTP: `n` sample events
/// committed as one target's entries (pages of 500), flushed, then taken
/// in rounds of 256 (`Queue::due`) and let go of 16 at a time
/// (`Queue::delivered_all`). Returns (µs per entry in `due`, µs per entry
/// in `delivered_all`, bytes this process wrote to disk per entry, flush
/// included).
fn queue_drain(rt: &tokio::runtime::Runtime, n: usize) -> (f64, f64, f64) {
    use std::collections::HashSet;
    let dir = WorkDir::new();
    let store =
        poomgo_notifier::store::Store::open(&dir.path().join("store"), DEFAULT_CACHE_MB, &["erp"])
            .unwrap();
    let statuses = poomgo_notifier::status::StatusTable::default();
    let samples = poomgo_notifier::samples::all(&statuses, chrono::Utc::now());
    for chunk in (0..n).collect::<Vec<_>>().chunks(500) {
        let mut batch = PageBatch::default();
        for &i in chunk {
            let e = &samples[i % samples.len()];
            batch.entries.push((
                "erp".into(),
                poomgo_notifier::delivery::queue::OutboxEntry {
                    event_id: format!("gbench-{i}-1"),
                    kind: e.kind,
                    invoice_id: i.to_string(),
                    order_code: None,
                    event: serde_json::to_vec(e).unwrap(),
                    enqueued_at: 0,
                    attempts: 0,
                    next_attempt_at: 0,
                    last_error: None,
                },
            ));
        }
        store.commit_page(&batch).unwrap();
    }
    rt.block_on(store.flush()).unwrap();
    let queue = store.queue("erp").unwrap();
    let written0 = written_bytes();
    let (mut due_s, mut done_s) = (0.0, 0.0);
    loop {
        let started = Instant::now();
        let due = queue.due(i64::MAX / 2, 256, &HashSet::new()).unwrap();
        due_s += started.elapsed().as_secs_f64();
        if due.entries.is_empty() {
            break;
        }
        let seqs: Vec<u64> = due.entries.iter().map(|(seq, _)| *seq).collect();
        let started = Instant::now();
        for batch in seqs.chunks(16) {
            queue.delivered_all(batch).unwrap();
        }
        done_s += started.elapsed().as_secs_f64();
    }
    assert_eq!(queue.pending_len(), 0);
    rt.block_on(store.flush()).unwrap();
    let per = |s: f64| s * 1e6 / n as f64;
    (
        per(due_s),
        per(done_s),
        (written_bytes() - written0) as f64 / n as f64,
    )
}

/// sled by itself, none of the notifier's code: `n` values of `len` bytes
/// under big-endian sequence keys (as an outbox holds them), flushed, then
/// all removed in key order (as the driver removes delivered entries) or
/// dropped with their tree. Returns (wall µs per entry, bytes this process
/// wrote to disk per entry, flush included).
fn sled_alone_removal(n: usize, len: usize, how: Removal) -> (f64, f64) {
    let dir = WorkDir::new();
    let db = sled_alone_db(&dir);
    let tree = db.open_tree("outbox/erp").unwrap();
    let value = vec![7u8; len];
    for seq in 1..=n as u64 {
        tree.insert(seq.to_be_bytes(), &value[..]).unwrap();
    }
    db.flush().unwrap();
    let written0 = written_bytes();
    let started = Instant::now();
    match how {
        Removal::OneByOne => {
            for seq in 1..=n as u64 {
                tree.remove(seq.to_be_bytes()).unwrap();
            }
        }
        Removal::DropTree => {
            drop(tree);
            db.drop_tree("outbox/erp").unwrap();
        }
    }
    let us = started.elapsed().as_secs_f64() * 1e6 / n as f64;
    db.flush().unwrap();
    (us, (written_bytes() - written0) as f64 / n as f64)
}

/// A fresh sled in `dir` with the notifier's default cache, nothing else.
fn sled_alone_db(dir: &WorkDir) -> sled::Db {
    sled::Config::new()
        .path(dir.path().join("sled"))
        .cache_capacity(DEFAULT_CACHE_MB * 1024 * 1024)
        .open()
        .unwrap()
}

/// Bytes this process has caused to be written to disk (`/proc/self/io`).
fn written_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/io")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Draining `n` events through the driver, and the same bodies through a
/// plain client: wall seconds and this process's CPU seconds (the receiver's
/// included, the same for both).
struct Drain {
    /// The mean size of an event body as the outbox keeps it.
    body_bytes: f64,
    ours: f64,
    plain: f64,
    ours_cpu: f64,
    plain_cpu: f64,
}

async fn delivery(addr: std::net::SocketAddr, n: usize) -> Drain {
    let dir = WorkDir::new();
    let text = format!(
        r#"
[poomgo]
base_url = "http://127.0.0.1:9"
api_key = "unused"
[store]
path = "{}"
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
    // As the outbox keeps them (packed).
    let body_bytes = bodies
        .iter()
        .map(|b| poomgo_notifier::packed::pack(b).len())
        .sum::<usize>() as f64
        / n as f64;

    // Plain, ours, plain: the plain figure is the mean of the two around ours,
    // so a machine that slows down or speeds up mid-run counts for both.
    let cpu0 = process_cpu();
    let before = plain_client(addr, bodies.clone()).await;
    let cpu1 = process_cpu();
    let started = Instant::now();
    let report = poomgo_notifier::poll::deliver_all(&app).await.unwrap();
    let ours = started.elapsed().as_secs_f64();
    let cpu2 = process_cpu();
    assert_eq!(report.delivered as usize, n, "{report:?}");
    let after = plain_client(addr, bodies).await;
    let cpu3 = process_cpu();
    Drain {
        body_bytes,
        ours,
        plain: (before + after) / 2.0,
        ours_cpu: cpu2 - cpu1,
        plain_cpu: ((cpu1 - cpu0) + (cpu3 - cpu2)) / 2.0,
    }
}

/// A baseline's writes alone: `n` new snapshots (no events) committed
/// through `Store::commit_page` in pages of 500, as a baseline poll commits
/// them. Returns
/// (wall seconds, CPU seconds of this process).
fn store_commit(n: usize) -> (f64, f64) {
    use poomgo_notifier::diff::Snapshot;
    use poomgo_notifier::poomgo::InvoiceId;
    let dir = WorkDir::new();
    let store =
        poomgo_notifier::store::Store::open(&dir.path().join("store"), DEFAULT_CACHE_MB, &["erp"])
            .unwrap();
    let pages: Vec<PageBatch> = (0..n)
        .collect::<Vec<_>>()
        .chunks(500)
        .map(|chunk| PageBatch {
            quiet: chunk
                .iter()
                .map(|&i| {
                    (
                        InvoiceId((456_000 + i).to_string()),
                        Snapshot {
                            rev: 0,
                            invoice_code: Some(Some(format!("38{:010}", i))),
                            is_printed: Some(true),
                            is_closed: Some(true),
                            cargo_status_code_key: Some(Some(
                                "INVOICE_CARGO_STATUS_DELIVERYCOMPLETED".into(),
                            )),
                            canceled: false,
                            is_final: true,
                            last_seen: 1_764_000_000,
                            orders: Vec::new(),
                            vouched_by: None,
                        },
                    )
                })
                .collect(),
            ..Default::default()
        })
        .collect();
    let cpu0 = process_cpu();
    let started = Instant::now();
    for page in &pages {
        store.commit_page(page).unwrap();
    }
    (started.elapsed().as_secs_f64(), process_cpu() - cpu0)
}

/// sled by itself, none of the notifier's code: `n` keys like invoice ids,
/// values the size of a snapshot, inserted one by one (as a baseline writes
/// its snapshots) into a fresh store with the default cache. Run as its own
/// process (`--sled-alone`) so that its peak RSS is sled's.
fn sled_alone(n: usize) {
    let dir = WorkDir::new();
    let db = sled_alone_db(&dir);
    let tree = db.open_tree("snapshots").unwrap();
    let value = [7u8; 80];
    for i in 0..n {
        tree.insert((456_000 + i).to_string().as_bytes(), &value[..])
            .unwrap();
    }
    db.flush().unwrap();
}

/// Peak RSS (MiB) of [`sled_alone`] as a child process.
fn sled_alone_rss(n: usize) -> f64 {
    let exe = std::env::current_exe().unwrap();
    time_of(&exe, &["--sled-alone", "--orders", &n.to_string()]).1
}

/// User + system CPU seconds of this process so far.
fn process_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
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

/// The release binary next to this one.
fn notifier() -> std::path::PathBuf {
    let me = std::env::current_exe().unwrap();
    me.with_file_name("poomgo-notifier")
}

/// A simulator child process; killed when dropped.
struct Sim {
    child: std::process::Child,
    base: String,
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_sim(orders: usize, latency_ms: usize) -> Sim {
    use std::io::{BufRead, BufReader};
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cmd = std::process::Command::new(notifier());
    cmd.args([
        "sim",
        "--listen",
        &format!("127.0.0.1:{port}"),
        "--orders",
        &orders.to_string(),
    ]);
    if latency_ms > 0 {
        cmd.args(["--fault", &format!("slow:{latency_ms}ms")]);
    }
    let mut child = cmd
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("build the release binary first: cargo build --release");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("api key") {
        line.clear();
        if out.read_line(&mut line).unwrap() == 0 {
            panic!("the simulator did not start");
        }
    }
    // Keep reading: a closed pipe would kill the simulator on its next line.
    std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
    Sim {
        child,
        base: format!("http://127.0.0.1:{port}"),
    }
}

/// (wall s, peak RSS MiB, user+sys CPU s) of one `poomgo-notifier` run.
fn timed(args: &[&str]) -> (f64, f64, f64, String) {
    time_of(&notifier(), args)
}

/// (wall s, peak RSS MiB, user+sys CPU s, stdout) of `program` under `/usr/bin/time`.
fn time_of(program: &std::path::Path, args: &[&str]) -> (f64, f64, f64, String) {
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "TIME %e %M %U %S"])
        .arg(program)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("/usr/bin/time is needed for the poll and memory figures");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let line = stderr
        .lines()
        .find(|l| l.starts_with("TIME "))
        .unwrap_or_else(|| panic!("{stderr}"));
    let v: Vec<f64> = line[5..].split(' ').map(|x| x.parse().unwrap()).collect();
    (
        v[0],
        v[1] / 1024.0,
        v[2] + v[3],
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

async fn sim_post(http: &reqwest::Client, url: String, body: &str) -> String {
    http.post(url)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// The created window's query, as a poll asks for it.
fn created_query(lookback: u32) -> poomgo_notifier::poomgo::Query {
    poomgo_notifier::poomgo::poll_window(chrono::Utc::now(), lookback).query()
}

/// (wall s of downloading every page, CPU s of parsing them).
async fn raw_fetch(base: &str, lookback: u32) -> (f64, f64, f64) {
    let http =
        poomgo_notifier::http::client(Duration::from_secs(5), Duration::from_secs(30)).unwrap();
    let url = format!("{base}{}", poomgo_notifier::poomgo::ORDERS_PATH);
    let query = created_query(lookback);
    let page = |n: u32| {
        let body = serde_json::to_vec(&poomgo_notifier::poomgo::OrdersRequest {
            page: n,
            page_size: 500,
            query: &query,
        })
        .unwrap();
        http.post(&url)
            .header("authorization", "sim-key")
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    let started = Instant::now();
    let cpu = process_cpu();
    let first = page(1).await.unwrap().bytes().await.unwrap();
    let mut parse = Duration::ZERO;
    let t = Instant::now();
    let total = poomgo_notifier::poomgo::parse_page(&first).unwrap().total;
    parse += t.elapsed();
    let pages = total.div_ceil(500) as u32;
    // Page 1 alone, then 2 in flight: the poll's concurrency.
    let mut next = 2;
    let mut tasks = futures_util::stream::FuturesOrdered::new();
    use futures_util::StreamExt;
    loop {
        while tasks.len() < 2 && next <= pages {
            let f = page(next);
            tasks.push_back(async move { f.await.unwrap().bytes().await.unwrap() });
            next += 1;
        }
        let Some(body) = tasks.next().await else {
            break;
        };
        let t = Instant::now();
        let parsed = poomgo_notifier::poomgo::parse_page(&body).unwrap();
        parse += t.elapsed();
        drop(parsed);
    }
    let download_cpu = process_cpu() - cpu - parse.as_secs_f64();
    (
        started.elapsed().as_secs_f64(),
        parse.as_secs_f64(),
        download_cpu.max(0.0),
    )
}

fn dir_size(path: &std::path::Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(path).into_iter().flatten().flatten() {
        let m = e.metadata().unwrap();
        n += if m.is_dir() {
            dir_size(&e.path())
        } else {
            m.len()
        };
    }
    n
}

async fn poll_figures(
    receiver: std::net::SocketAddr,
    orders: usize,
    runs: usize,
    latency_ms: usize,
) {
    let lookback = 14;
    let http = reqwest::Client::new();
    println!("orders {orders} orders");
    println!("latency_per_page {latency_ms} ms");
    let mut rows: std::collections::BTreeMap<&str, Vec<f64>> = Default::default();
    let mut push = |k: &'static str, v: f64| rows.entry(k).or_default().push(v);
    let mut bytes_per_invoice = None;
    for run in 0..runs {
        let sim = start_sim(orders, latency_ms);
        let work = WorkDir::new();
        let config = work.path().join("config.toml");
        std::fs::write(
            &config,
            format!(
                r#"
[poomgo]
base_url = "{}"
api_key = "sim-key"
lookback_days = {lookback}
[plan]
windows = []
created_every = 1
[store]
path = "{}"
[[targets]]
name = "erp"
kind = "webhook"
url = "http://{receiver}/hook"
secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
"#,
                sim.base,
                work.path().join("store").display()
            ),
        )
        .unwrap();
        let cfg = config.to_str().unwrap();
        let (raw, parse, download) = raw_fetch(&sim.base, lookback).await;
        push("raw_fetch_s", raw);
        push("parse_floor_cpu_s", parse);
        push("download_cpu_s", download);
        let (w, m, c, _) = timed(&["poll", "--config", cfg]);
        push("baseline_poll_s", w);
        push("baseline_poll_rss_mib", m);
        push("baseline_poll_cpu_s", c);
        let advance = format!("{}/_sim/advance", sim.base);
        let changed = sim_post(
            &http,
            advance.clone(),
            r#"{"steps":1,"fraction":0.05,"new_orders":0}"#,
        )
        .await;
        let (w, m, c, out) = timed(&["poll", "--config", cfg]);
        if run == 0 {
            println!("change_poll_advance {changed}");
            println!("change_poll_summary {}", out.trim());
        }
        push("change_poll_s", w);
        push("change_poll_rss_mib", m);
        push("change_poll_cpu_s", c);
        let (w, m, c, _) = timed(&["poll", "--config", cfg]);
        push("idle_poll_s", w);
        push("idle_poll_rss_mib", m);
        push("idle_poll_cpu_s", c);
        // CPU with the latency off, against the parse floor.
        if latency_ms > 0 {
            http.delete(format!("{}/_sim/faults", sim.base))
                .send()
                .await
                .unwrap();
        }
        let (_, _, c, _) = timed(&["poll", "--config", cfg]);
        push("idle_poll_nolatency_cpu_s", c);
        sim_post(
            &http,
            advance.clone(),
            r#"{"steps":1,"fraction":0.05,"new_orders":0}"#,
        )
        .await;
        let (_, _, c, _) = timed(&["poll", "--config", cfg]);
        push("change_poll_nolatency_cpu_s", c);
        if run == 0 {
            // Ten change polls in all, then the store's size per invoice.
            for _ in 0..8 {
                sim_post(
                    &http,
                    advance.clone(),
                    r#"{"steps":1,"fraction":0.05,"new_orders":0}"#,
                )
                .await;
                timed(&["poll", "--config", cfg]);
            }
            let stats: serde_json::Value = serde_json::from_str(
                &http
                    .get(format!("{}/_sim/stats", sim.base))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap(),
            )
            .unwrap();
            let invoices = stats["invoices"].as_f64().unwrap();
            bytes_per_invoice = Some(dir_size(&work.path().join("store")) as f64 / invoices);
        }
        // The daemon's case: an idle poll in a process that has polled
        // before (its store cache warm), measured in this process.
        let app = App::load(&config).unwrap();
        let options = poomgo_notifier::poll::PollOptions::default();
        poomgo_notifier::poll::poll(&app, options, chrono::Utc::now())
            .await
            .unwrap();
        let before = process_cpu();
        poomgo_notifier::poll::poll(&app, options, chrono::Utc::now())
            .await
            .unwrap();
        push("idle_poll_warm_nolatency_cpu_s", process_cpu() - before);
        drop(app);
    }
    let m = |k: &str| median(rows[k].clone());
    for (k, v) in &rows {
        println!(
            "{k} {:.3} {}",
            median(v.clone()),
            if k.ends_with("_mib") { "MiB" } else { "s" }
        );
    }
    let raw = m("raw_fetch_s");
    println!("change_poll_vs_raw_fetch {:.2} x", m("change_poll_s") / raw);
    println!("idle_poll_vs_raw_fetch {:.2} x", m("idle_poll_s") / raw);
    println!(
        "baseline_poll_invoices_per_cpu_second {:.0} invoices/s",
        orders as f64 * 1.16 / m("baseline_poll_cpu_s")
    );
    println!(
        "idle_poll_cpu_vs_parse_floor {:.2} x",
        m("idle_poll_nolatency_cpu_s") / m("parse_floor_cpu_s")
    );
    println!(
        "change_poll_cpu_vs_parse_floor {:.2} x",
        m("change_poll_nolatency_cpu_s") / m("parse_floor_cpu_s")
    );
    println!(
        "idle_poll_warm_cpu_vs_parse_floor {:.2} x",
        m("idle_poll_warm_nolatency_cpu_s") / m("parse_floor_cpu_s")
    );
    println!(
        "idle_poll_cpu_vs_download_and_parse {:.2} x",
        m("idle_poll_nolatency_cpu_s") / (m("parse_floor_cpu_s") + m("download_cpu_s"))
    );
    if let Some(b) = bytes_per_invoice {
        println!("sled_bytes_per_invoice {b:.0} bytes");
    }
}

/// Requests an hour at a 5-minute cron, averaged over a Korea-time day, for
/// a merchant with `orders` orders created over the `lookback` days of the
/// window (the simulator's merchant, generated at eight times of day so the
/// "today" windows are seen small and full): the default plan against
/// re-reading the whole window every tick, which is what a full rescan needs
/// to give today's changes the default plan's one-tick staleness.
///
/// Also which window catches each change of one simulated step (every
/// open invoice moves with the same probability, whatever its age): the
/// share of changes the every-tick windows see, and the staleness of the rest.
fn plan_figures(orders: usize, lookback: u32) {
    use poomgo_notifier::poomgo::plan::PlanConfig;
    use poomgo_notifier::sim::merchant::{AdvanceOptions, Merchant};
    let specs = PlanConfig::default().specs(lookback);
    let ticks_per_hour = 12.0;
    let pages = |m: &Merchant, q: &poomgo_notifier::poomgo::Query| {
        (m.matching(q).count() as f64 / 500.0).ceil()
    };
    // Noon KST on a fixed day, then every three hours.
    let noon = chrono::DateTime::parse_from_rfc3339("2026-12-01T12:00:00+09:00")
        .unwrap()
        .with_timezone(&chrono::Utc);
    let times: Vec<_> = (0..8)
        .map(|i| noon + chrono::Duration::hours(3 * i - 11) + chrono::Duration::minutes(30))
        .collect();
    let mut window_pages = vec![0.0; specs.len()];
    let mut full = 0.0;
    let mut caught = vec![0u64; specs.len()];
    let mut changes = 0u64;
    for (i, &now) in times.iter().enumerate() {
        let mut m = Merchant::generate(orders, 2026 + i as u64, lookback, now);
        for (w, spec) in specs.iter().enumerate() {
            window_pages[w] += pages(&m, &spec.window(now).query()) / times.len() as f64;
        }
        let created = specs
            .iter()
            .find(|s| s.name == poomgo_notifier::poomgo::plan::CREATED);
        full += pages(&m, &created.unwrap().window(now).query()) / times.len() as f64;
        // One step of change; which windows (by their queries) list each changed invoice.
        let state = |m: &Merchant| {
            m.orders
                .iter()
                .flat_map(|o| {
                    o.invoices
                        .iter()
                        .map(|i| (i.id, (i.printed, i.closed, i.cargo, i.code.clone())))
                })
                .collect::<std::collections::HashMap<_, _>>()
        };
        let before = state(&m);
        m.advance(
            AdvanceOptions {
                steps: 1,
                fraction: 0.25,
                new_orders: 0,
            },
            now,
        );
        let after = state(&m);
        let changed: std::collections::HashSet<u64> = after
            .iter()
            .filter(|(id, s)| before.get(id) != Some(s))
            .map(|(id, _)| *id)
            .collect();
        changes += changed.len() as u64;
        let mut seen = std::collections::HashSet::new();
        // Fastest windows first: a change counts for the first window that lists it.
        let mut order: Vec<usize> = (0..specs.len()).collect();
        order.sort_by_key(|&w| specs[w].every);
        for w in order {
            for o in m.matching(&specs[w].window(now).query()) {
                for inv in &o.invoices {
                    if changed.contains(&inv.id) && seen.insert(inv.id) {
                        caught[w] += 1;
                    }
                }
            }
        }
    }
    let mut plan = 0.0;
    let mut every_tick = 0.0;
    for (w, spec) in specs.iter().enumerate() {
        let per_hour = window_pages[w] * ticks_per_hour / f64::from(spec.every);
        plan += per_hour;
        if spec.every == 1 {
            every_tick += per_hour;
        }
        println!(
            "window_{} {:.1} pages every {} ticks ({} min stale at most): {per_hour:.0} requests/h, first to see {:.1}% of changes",
            spec.name,
            window_pages[w],
            spec.every,
            spec.every * 5,
            100.0 * caught[w] as f64 / changes.max(1) as f64,
        );
    }
    let full = full * ticks_per_hour;
    println!("requests_per_hour_default_plan {plan:.0} requests/h");
    println!("requests_per_hour_full_rescan {full:.0} requests/h");
    println!("requests_per_hour_every_tick_windows {every_tick:.0} requests/h");
    println!("full_rescan_vs_default_plan {:.2} x", full / plan);
}
