//! The crash loop: the real daemon, SIGKILLed at random moments again and
//! again against a simulator whose time keeps moving and a receiver that
//! fails a fifth of its requests. At the end, with time stopped and the
//! outbox drained: every change reached the receiver, the last event of
//! every invoice shows its final state, every id received twice is a send
//! whose acknowledgement a kill cut off, the store opened after every kill,
//! and nothing is stuck.
//!
//! A third of the kills are aimed at a page request in flight (mid-scan), a
//! third at a send in flight (mid-send); the rest land at random (often in
//! a back-off: a fifth of the sends fail). `CRASH_LOOP_KILLS` sets the number
//! of kills (30 by default; CI runs that).

use std::collections::{HashMap, HashSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use poomgo_notifier::poomgo::Reported;
use poomgo_notifier::sim::{AdvanceOptions, FaultRule, SimOptions, Simulator};

use crate::support::{BIN, LEGACY_PLAN, LOOPBACK, Recorder, Reply, output, poll_command};

/// An invoice's tracked state as events and the simulator state it.
#[derive(Debug, Clone, PartialEq)]
struct State {
    printed: Option<bool>,
    closed: Option<bool>,
    cargo: Option<String>,
    code: Option<String>,
    canceled: bool,
}

fn truth(sim: &Simulator) -> HashMap<String, State> {
    sim.invoices()
        .into_iter()
        .map(|(i, canceled)| {
            let cargo = match i.cargo_status_code_key {
                Reported::Value(v) => Some(v),
                _ => None,
            };
            let code = match i.invoice_code {
                Reported::Value(v) => Some(v),
                _ => None,
            };
            (
                i.invoice_id.to_string(),
                State {
                    printed: i.is_printed,
                    closed: i.is_closed,
                    cargo,
                    code,
                    canceled,
                },
            )
        })
        .collect()
}

#[tokio::test]
async fn thirty_kills_lose_nothing_and_invent_nothing() {
    let kills: usize = std::env::var("CRASH_LOOP_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let sim = Simulator::start(
        LOOPBACK,
        SimOptions {
            orders: 1500,
            tick: Some(Duration::from_millis(300)),
            advance: AdvanceOptions {
                steps: 1,
                fraction: 0.05,
                new_orders: 2,
            },
            faults: vec![FaultRule::parse("slow:15ms").unwrap()],
            ..SimOptions::default()
        },
    )
    .await
    .unwrap();
    sim.pause_time(true);
    let rec = Recorder::start(Reply::status(200).delay(Duration::from_millis(15))).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[poomgo]
base_url = "{}"
api_key = "sim-key"
page_size = 100
retry_base = "10ms"
retry_max = "100ms"
{LEGACY_PLAN}
[schedule]
cron = "* * * * * *"
[store]
path = "{}"
cache_mb = 8
[[targets]]
name = "erp"
kind = "webhook"
url = "{}/erp"
retry_schedule = ["200ms", "300ms", "400ms", "500ms", "600ms", "800ms", "1s", "1s", "1s", "1s", "1s", "1s"]
"#,
            sim.base_url(),
            dir.path().join("store").display(),
            rec.uri()
        ),
    )
    .unwrap();
    // The baseline, with time stopped: what every later change is measured from.
    let out = output(poll_command(&config)).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = truth(&sim);

    rec.fail_ratio(0.2);
    sim.pause_time(false);
    let mut kill_times = Vec::new();
    let (mut mid_scan, mut mid_send) = (0, 0);
    for k in 0..kills {
        let log = dir.path().join(format!("run-{k}.log"));
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        // A third of the kills wait for a page request in flight, a third
        // for a send in flight, the rest land at random.
        tokio::time::sleep(Duration::from_millis(fastrand::u64(200..1200))).await;
        let aimed = Instant::now() + Duration::from_secs(3);
        while Instant::now() < aimed {
            let landed = match k % 3 {
                0 => sim.in_flight() > 0,
                1 => rec.in_flight() > 0,
                _ => true,
            };
            if landed {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!(
                "run {k} exited by itself ({status}): {}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        mid_scan += usize::from(sim.in_flight() > 0);
        mid_send += usize::from(rec.in_flight() > 0);
        child.kill().unwrap();
        kill_times.push(Instant::now());
        child.wait().unwrap();
    }

    // Time stops; the receiver heals; runs until nothing is pending.
    sim.pause_time(true);
    rec.fail_ratio(0.0);
    let mut drained = false;
    for _ in 0..30 {
        let out = output(poll_command(&config)).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if out.status.success() && stdout.contains(" 0 pending, 0 dead letters") {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(drained, "the outbox never drained");
    let end = truth(&sim);

    // What the receiver acknowledged, per invoice, by revision.
    let accepted = rec.accepted();
    let mut last: HashMap<String, (u64, serde_json::Value)> = HashMap::new();
    let mut seen_ids: HashMap<String, Instant> = HashMap::new();
    let mut duplicates = 0;
    for g in &accepted {
        let id = g.id().to_owned();
        if let Some(first) = seen_ids.get(&id) {
            duplicates += 1;
            // Received twice: a kill fell between the first send and the
            // second, so the process never recorded (or never saw) the 2xx.
            // A request written just before a kill can reach the receiver
            // just after it, hence the send's lead time.
            let sent = *first - Duration::from_millis(500);
            assert!(
                kill_times.iter().any(|k| *k >= sent && *k <= g.at),
                "id {id} was sent again though no kill cut off its acknowledgement"
            );
        } else {
            seen_ids.insert(id.clone(), g.at);
        }
        let v = g.json();
        let invoice = v["invoice"]["invoiceId"].as_str().unwrap().to_owned();
        let rev: u64 = id.rsplit('-').next().unwrap().parse().unwrap();
        if last.get(&invoice).is_none_or(|(r, _)| rev >= *r) {
            last.insert(invoice, (rev, v));
        }
    }
    let mut expected = 0;
    let mut lost = Vec::new();
    for (id, state) in &end {
        if start.get(id) == Some(state) {
            continue; // unchanged (or changed and back): nothing is owed
        }
        expected += 1;
        let Some((_, event)) = last.get(id) else {
            lost.push(id.clone());
            continue;
        };
        let inv = &event["invoice"];
        let shown = State {
            printed: inv["isPrinted"].as_bool(),
            closed: inv["isClosed"].as_bool(),
            cargo: inv["cargoStatusCodeKey"].as_str().map(str::to_owned),
            code: inv["invoiceCode"].as_str().map(str::to_owned),
            canceled: inv["canceled"].as_bool().unwrap(),
        };
        assert_eq!(
            &shown, state,
            "invoice {id}: the last event is not its final state"
        );
    }
    let received: HashSet<&String> = seen_ids.keys().collect();
    eprintln!(
        "crash loop: {kills} kills ({mid_scan} mid-scan, {mid_send} mid-send), {expected} invoices changed, {} events received, {duplicates} duplicates (each after a kill), {} lost",
        received.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "changes lost: {lost:?}");
    assert!(
        expected > 50,
        "time really moved: {expected} invoices changed"
    );
    assert!(
        mid_scan > 0 && mid_send > 0,
        "kills landed mid-scan ({mid_scan}) and mid-send ({mid_send})"
    );
}
