//! The scan plan against the simulator: windows on createdAt, confirmAt and
//! closeAt, each with its own baseline and schedule.

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use poomgo_notifier::config::Config;
use poomgo_notifier::poll::{App, PollOptions, deliver_all, poll};
use poomgo_notifier::sim::Simulator;
use poomgo_notifier::sim::merchant::SimInvoice;

use crate::support::{Recorder, Reply, simulator};

/// An app on the default plan (or `plan`), every event to a recorder.
fn app(sim: &Simulator, dir: &std::path::Path, plan: &str, rec: &Recorder) -> App {
    let text = format!(
        r#"
[poomgo]
base_url = "{}"
api_key = "sim-key"
retry_base = "10ms"
retry_max = "100ms"
{plan}
[store]
path = "{}"
cache_mb = 8
[[targets]]
name = "erp"
kind = "webhook"
url = "{}/erp"
"#,
        sim.base_url(),
        dir.join("store").display(),
        rec.uri()
    );
    App::new(Config::parse(&text, "test.toml", dir.to_owned(), &|_| None).unwrap()).unwrap()
}

/// The last noon in Korea at least an hour ago: a tick clock from there
/// crosses no day boundary within the test, and nothing it enqueues is
/// due later than now (deliveries run on the real clock).
fn noon_in_korea() -> DateTime<Utc> {
    let before = Utc::now() - Duration::hours(1);
    let day = poomgo_notifier::poomgo::kst_day(before);
    let noon = day.and_hms_opt(3, 0, 0).unwrap().and_utc(); // 12:00 KST is 03:00 UTC
    if noon > before {
        noon - Duration::days(1)
    } else {
        noon
    }
}

fn events(rec: &Recorder) -> Vec<Value> {
    rec.got().iter().map(|g| g.json()).collect()
}

/// Sets up an invoice for a test.
type Shape<'a> = dyn Fn(&mut SimInvoice) + 'a;

/// Puts an order `code` created at `created_at` first in the merchant:
/// not packed (`invoice: None`), or with one invoice of id `invoice` that
/// `shape` sets up. Returns its index (0).
fn insert_old_order(
    sim: &Simulator,
    id: u64,
    code: &str,
    created_at: DateTime<Utc>,
    invoice: Option<(u64, &Shape<'_>)>,
) -> usize {
    sim.with_merchant(|m| {
        let mut old = m
            .orders
            .iter()
            .find(|o| o.invoices.len() == 1 && o.canceled.is_empty())
            .unwrap()
            .clone();
        old.id = id;
        old.order_code = code.into();
        old.created_at = created_at;
        match invoice {
            Some((invoice_id, shape)) => {
                old.invoices[0].id = invoice_id;
                shape(&mut old.invoices[0]);
            }
            None => {
                old.packed = false;
                old.invoices.clear();
            }
        }
        m.orders.insert(0, old);
        0
    })
}

/// Packs `order` with a new invoice `id`, assigned at `at`.
fn pack(sim: &Simulator, order: usize, id: u64, at: DateTime<Utc>) {
    sim.with_merchant(|m| {
        let mut inv = m
            .orders
            .iter()
            .find_map(|o| o.invoices.first().cloned())
            .unwrap();
        inv.id = id;
        inv.printed = false;
        inv.closed = false;
        inv.cargo = None;
        inv.confirm_at = at;
        inv.close_at = None;
        m.orders[order].packed = true;
        m.orders[order].invoices.push(inv);
    });
}

#[tokio::test]
async fn a_back_ordered_invoice_on_an_old_order_is_announced_and_followed() {
    let sim = simulator(300).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    // An order placed 20 days ago, past `lookback_days` (14), not packed.
    let order = insert_old_order(
        &sim,
        9_000_001,
        "20261111_BACKORDER",
        Utc::now() - Duration::days(20),
        None,
    );
    // A tick every 5 minutes from noon (Korea time) today, so that no
    // window's days change under the test.
    let tick = |n: i64| noon_in_korea() + Duration::minutes(5 * n);
    let app = app(&sim, dir.path(), "", &rec);
    let r = poll(&app, PollOptions::default(), tick(0)).await.unwrap();
    assert!(r.baseline && r.is_complete(), "{:?}", r.failure());
    assert_eq!(r.windows.len(), 5, "every window is read the first time");

    // Packed at the next tick: the invoice is assigned now.
    let invoice = 990_001;
    pack(&sim, order, invoice, tick(1));
    let r = poll(&app, PollOptions::default(), tick(1)).await.unwrap();
    assert_eq!(r.windows, ["assigned-today"]);
    deliver_all(&app).await.unwrap();
    let got = events(&rec);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "invoice.assigned");
    assert_eq!(got[0]["order"]["orderCode"], "20261111_BACKORDER");

    // Its life goes on: printed and closed, then the courier's statuses,
    // each seen at the next tick.
    let step = |f: &Shape<'_>| {
        sim.with_merchant(|m| {
            f(m.orders[order]
                .invoices
                .iter_mut()
                .find(|i| i.id == invoice)
                .unwrap())
        })
    };
    step(&|i| {
        i.printed = true;
        i.closed = true;
        i.close_at = Some(tick(2));
    });
    let r = poll(&app, PollOptions::default(), tick(2)).await.unwrap();
    assert_eq!(r.events, 1);
    step(&|i| i.cargo = Some(poomgo_notifier::sim::merchant::STATUS_PICKEDUP));
    let r = poll(&app, PollOptions::default(), tick(3)).await.unwrap();
    assert_eq!(r.events, 1);
    step(&|i| i.cargo = Some(poomgo_notifier::sim::merchant::STATUS_DELIVERED));
    let r = poll(&app, PollOptions::default(), tick(4)).await.unwrap();
    assert_eq!(r.events, 1);
    deliver_all(&app).await.unwrap();
    let types: Vec<String> = events(&rec)
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        [
            "invoice.assigned",
            "invoice.closed",
            "invoice.status_changed",
            "invoice.status_changed"
        ]
    );
    assert_eq!(events(&rec)[3]["invoice"]["status"]["label"], "배송완료");
}

#[tokio::test]
async fn adding_windows_to_an_existing_store_announces_nothing_old() {
    let sim = simulator(300).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    // An order older than the created window whose invoice was assigned
    // two days ago: only the new confirmAt windows can see it.
    insert_old_order(
        &sim,
        9_000_002,
        "20261101_OLD",
        Utc::now() - Duration::days(30),
        Some((990_002, &|inv| {
            inv.confirm_at = Utc::now() - Duration::days(2)
        })),
    );
    {
        let app = app(&sim, dir.path(), crate::support::LEGACY_PLAN, &rec);
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        assert!(
            app.store
                .snapshot(&poomgo_notifier::poomgo::InvoiceId("990002".into()))
                .unwrap()
                .is_none()
        );
    }
    // The upgrade to the tiered plan: four new windows, no coverage yet.
    let app = app(&sim, dir.path(), "", &rec);
    let r = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert!(r.baseline && r.is_complete());
    assert_eq!(r.events, 0, "nothing old is announced");
    assert!(
        app.store
            .snapshot(&poomgo_notifier::poomgo::InvoiceId("990002".into()))
            .unwrap()
            .is_some(),
        "recorded silently"
    );
    deliver_all(&app).await.unwrap();
    assert!(rec.got().is_empty());
}

#[tokio::test]
async fn each_tier_is_read_when_due_and_overlaps_count_once() {
    let sim = simulator(600).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = app(&sim, dir.path(), "", &rec);
    let t0 = Utc::now();
    let r = poll(&app, PollOptions::default(), t0).await.unwrap();
    // Windows overlap (a parcel closed yesterday was assigned and created in
    // others): every invoice counts once.
    assert_eq!(r.invoices_seen as usize, sim.invoices().len());
    let at = |minutes: i64| t0 + Duration::minutes(minutes) + Duration::seconds(1);
    let read =
        |r: &poomgo_notifier::poll::PollReport| r.windows.iter().cloned().collect::<HashSet<_>>();
    let tick = ["assigned-today"];
    let expect = |minutes, extra: &[&str]| {
        let set: HashSet<String> = tick.iter().chain(extra).map(|s| s.to_string()).collect();
        (minutes, set)
    };
    let schedule = [
        expect(5, &[]),
        expect(15, &["closed-recent"]),
        expect(20, &[]),
        expect(30, &["closed-recent"]),
        expect(60, &["closed-recent", "assigned"]),
        expect(120, &["closed-recent", "assigned", "closed"]),
        expect(125, &[]),
        expect(240, &["closed-recent", "assigned", "closed", "created"]),
    ];
    for (minutes, windows) in schedule {
        let r = poll(&app, PollOptions::default(), at(minutes))
            .await
            .unwrap();
        assert_eq!(read(&r), windows, "at +{minutes} min");
    }
    let full = poll(
        &app,
        PollOptions {
            full: true,
            ..PollOptions::default()
        },
        at(241),
    )
    .await
    .unwrap();
    assert_eq!(full.windows.len(), 5, "--full reads every window");
}

/// The default plan before `closed-recent`: closures in two windows.
const PREVIOUS_DEFAULT_PLAN: &str = r#"[plan]
windows = [
  { name = "assigned-today", axis = "confirmed", days = 0, every = 1 },
  { name = "closed-today", axis = "closed", days = 0, every = 1 },
  { name = "closed-yesterday", axis = "closed", days = 1, skip_days = 1, every = 3 },
  { name = "assigned", axis = "confirmed", days = 3, skip_days = 1, every = 6 },
  { name = "closed", axis = "closed", days = 7, skip_days = 2, every = 24 },
]
"#;

#[tokio::test]
async fn a_store_polled_with_the_previous_default_plan_moves_to_the_new_one_and_misses_nothing() {
    let sim = simulator(300).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let tick = |n: i64| noon_in_korea() + Duration::minutes(5 * n);
    // A parcel on an old order, assigned five days ago and closed
    // yesterday: only the closeAt windows list it.
    insert_old_order(
        &sim,
        9_000_003,
        "20261101_PARCEL",
        tick(0) - Duration::days(30),
        Some((990_003, &|inv| {
            inv.printed = true;
            inv.closed = true;
            inv.confirm_at = tick(0) - Duration::days(5);
            inv.close_at = Some(tick(0) - Duration::days(1));
            inv.cargo = Some(poomgo_notifier::sim::merchant::STATUS_INTRANSIT);
        })),
    );
    {
        let app = app(&sim, dir.path(), PREVIOUS_DEFAULT_PLAN, &rec);
        poll(&app, PollOptions::default(), tick(0)).await.unwrap();
        assert!(
            app.store
                .covered_from("closed-yesterday")
                .unwrap()
                .is_some()
        );
        assert!(
            app.store
                .snapshot(&poomgo_notifier::poomgo::InvoiceId("990003".into()))
                .unwrap()
                .is_some()
        );
    }
    // Out for delivery, and the notifier is upgraded (no `[plan]` of its own).
    sim.with_merchant(|m| {
        m.orders[0].invoices[0].cargo = Some(poomgo_notifier::sim::merchant::STATUS_OUTFORDELIVERY)
    });
    let app = app(&sim, dir.path(), "", &rec);
    let r = poll(&app, PollOptions::default(), tick(1)).await.unwrap();
    assert!(
        r.windows.contains(&"closed-recent".to_string()),
        "{:?}",
        r.windows
    );
    assert!(r.baseline, "closed-recent starts its baseline");
    assert_eq!(
        r.events, 1,
        "a known parcel's change is announced all the same"
    );
    deliver_all(&app).await.unwrap();
    let got = events(&rec);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["invoice"]["invoiceId"], "990003");
    for gone in ["closed-today", "closed-yesterday"] {
        assert_eq!(app.store.covered_from(gone).unwrap(), None, "{gone}");
        assert_eq!(app.store.window_read_at(gone).unwrap(), None, "{gone}");
    }
    assert!(app.store.covered_from("closed-recent").unwrap().is_some());
    assert!(
        app.store.covered_from("assigned").unwrap().is_some(),
        "kept"
    );
}

/// The last midnight in Korea at least an hour ago.
fn midnight_in_korea() -> DateTime<Utc> {
    let day = poomgo_notifier::poomgo::kst_day(Utc::now() - Duration::hours(1));
    day.and_hms_opt(0, 0, 0).unwrap().and_utc() - Duration::hours(9)
}

#[tokio::test]
async fn an_invoice_assigned_just_before_midnight_is_announced_at_the_first_tick_after() {
    let sim = simulator(300).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let midnight = midnight_in_korea();
    let order = insert_old_order(
        &sim,
        9_000_004,
        "20261101_LATE",
        midnight - Duration::days(20),
        None,
    );
    let app = app(&sim, dir.path(), "", &rec);
    for minutes in [10, 5] {
        poll(
            &app,
            PollOptions::default(),
            midnight - Duration::minutes(minutes),
        )
        .await
        .unwrap();
    }
    // Assigned at 23:58, after the 23:55 tick read today's assignments.
    pack(&sim, order, 990_004, midnight - Duration::minutes(2));
    let r = poll(&app, PollOptions::default(), midnight).await.unwrap();
    assert!(
        !r.windows.contains(&"assigned".to_string()),
        "the hourly window is not due: {:?}",
        r.windows
    );
    // (The simulator's merchant also has invoices assigned after midnight,
    // up to the real clock: they are announced too.)
    deliver_all(&app).await.unwrap();
    let ours: Vec<Value> = events(&rec)
        .into_iter()
        .filter(|e| e["invoice"]["invoiceId"] == "990004")
        .collect();
    assert_eq!(ours.len(), 1, "seen at 00:00, not an hour later: {ours:?}");
    assert_eq!(ours[0]["type"], "invoice.assigned");
}
