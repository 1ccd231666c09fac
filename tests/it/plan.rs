//! The scan plan against the simulator: windows on createdAt, confirmAt and
//! closeAt, each with its own baseline and schedule.

use std::collections::HashSet;

use chrono::{Duration, Utc};
use serde_json::Value;

use poomgo_notifier::config::Config;
use poomgo_notifier::poll::{App, PollOptions, deliver_all, poll};
use poomgo_notifier::sim::Simulator;

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

fn events(rec: &Recorder) -> Vec<Value> {
    rec.got().iter().map(|g| g.json()).collect()
}

#[tokio::test]
async fn a_back_ordered_invoice_on_an_old_order_is_announced_and_followed() {
    let sim = simulator(300).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    // An order placed 20 days ago, past `lookback_days` (14), not packed.
    let order = sim.with_merchant(|m| {
        let mut old = m.orders[0].clone();
        old.id = 9_000_001;
        old.order_code = "20261111_BACKORDER".into();
        old.created_at = Utc::now() - Duration::days(20);
        old.packed = false;
        old.invoices.clear();
        old.canceled.clear();
        m.orders.insert(0, old);
        0
    });
    let app = app(&sim, dir.path(), "", &rec);
    let r = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert!(r.baseline && r.is_complete(), "{:?}", r.failure());
    assert_eq!(r.windows.len(), 6, "every window is read the first time");

    // Packed today: the invoice is assigned now.
    let invoice = sim.with_merchant(|m| {
        let mut inv = m.orders[1].invoices.first().cloned().unwrap_or_else(|| {
            m.orders
                .iter()
                .find_map(|o| o.invoices.first().cloned())
                .unwrap()
        });
        inv.id = 990_001;
        inv.printed = false;
        inv.closed = false;
        inv.cargo = None;
        inv.confirm_at = Utc::now();
        inv.close_at = None;
        m.orders[order].packed = true;
        m.orders[order].invoices.push(inv);
        990_001u64
    });
    let r = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert_eq!(r.windows, ["assigned-today", "closed-today"]);
    deliver_all(&app).await.unwrap();
    let got = events(&rec);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["type"], "invoice.assigned");
    assert_eq!(got[0]["order"]["orderCode"], "20261111_BACKORDER");

    // Its life goes on: printed and closed (seen through confirmAt), then the
    // courier's statuses (through closeAt).
    let step = |f: &dyn Fn(&mut poomgo_notifier::sim::merchant::SimInvoice)| {
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
        i.close_at = Some(Utc::now());
    });
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    step(&|i| i.cargo = Some(poomgo_notifier::sim::merchant::STATUS_PICKEDUP));
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    step(&|i| i.cargo = Some(poomgo_notifier::sim::merchant::STATUS_DELIVERED));
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
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
    sim.with_merchant(|m| {
        let mut old = m
            .orders
            .iter()
            .find(|o| o.invoices.len() == 1 && o.canceled.is_empty())
            .unwrap()
            .clone();
        old.id = 9_000_002;
        old.order_code = "20261101_OLD".into();
        old.created_at = Utc::now() - Duration::days(30);
        old.invoices[0].id = 990_002;
        old.invoices[0].confirm_at = Utc::now() - Duration::days(2);
        m.orders.insert(0, old);
    });
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
    let tick = ["assigned-today", "closed-today"];
    let expect = |minutes, extra: &[&str]| {
        let set: HashSet<String> = tick.iter().chain(extra).map(|s| s.to_string()).collect();
        (minutes, set)
    };
    let schedule = [
        expect(5, &[]),
        expect(15, &["closed-yesterday"]),
        expect(20, &[]),
        expect(30, &["closed-yesterday", "assigned"]),
        expect(60, &["closed-yesterday", "assigned"]),
        expect(120, &["closed-yesterday", "assigned", "closed"]),
        expect(125, &[]),
        expect(240, &["closed-yesterday", "assigned", "closed", "created"]),
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
    assert_eq!(full.windows.len(), 6, "--full reads every window");
}
