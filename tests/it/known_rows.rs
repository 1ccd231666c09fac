//! Known rows (see "Known rows" in `src/store.rs`): a row read today whose
//! bytes have not changed is not parsed again, and no change is lost to it.

use chrono::{Duration, Utc};
use serde_json::Value;

use poomgo_notifier::poll::{App, PollOptions, deliver_all, poll};
use poomgo_notifier::poomgo::InvoiceId;
use poomgo_notifier::sim::Simulator;

use crate::support::{Recorder, Reply, pipeline_app, simulator, toggle_printed};

/// A simulated merchant with `orders` orders and an app reading one
/// `created` window every poll, every event to a recorder.
struct Fixture {
    app: App,
    sim: Simulator,
    rec: Recorder,
    _dir: tempfile::TempDir,
}

async fn fixture(orders: usize) -> Fixture {
    let sim = simulator(orders).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let target = format!(
        "[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\n",
        rec.uri()
    );
    let app = pipeline_app(&sim, dir.path(), &target);
    Fixture {
        app,
        sim,
        rec,
        _dir: dir,
    }
}

fn types(rec: &Recorder) -> Vec<(String, String)> {
    rec.got()
        .iter()
        .map(|g| g.json())
        .map(|e: Value| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["invoice"]["invoiceId"].to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn rows_read_today_are_skipped_and_a_flip_and_flip_back_is_still_seen() {
    let fx = fixture(300).await;
    let (app, sim, rec) = (&fx.app, &fx.sim, &fx.rec);
    let now = Utc::now();
    let base = poll(app, PollOptions::default(), now).await.unwrap();
    assert!(base.baseline && base.is_complete());
    assert_eq!(base.rows_unchanged, 0, "a new store knows no row");

    // Nothing changed: most rows are known, and every invoice still counts.
    // (The first idle poll vouches for a few more rows: those whose
    // cancellations the baseline held until its scan ended.)
    poll(app, PollOptions::default(), now).await.unwrap();
    let idle = poll(app, PollOptions::default(), now).await.unwrap();
    assert_eq!(idle.events, 0);
    assert_eq!(idle.invoices_seen, base.invoices_seen);
    let rows = sim.with_merchant(|m| m.orders.len()) as u64;
    assert!(
        idle.rows_unchanged * 10 >= rows * 9,
        "{} of {rows} rows known",
        idle.rows_unchanged
    );

    // Three invoices printed: read, announced; their rows are known again after.
    let changed = toggle_printed(sim, 3);
    let r = poll(app, PollOptions::default(), now).await.unwrap();
    assert_eq!(r.events, 3);
    assert!(r.rows_unchanged < idle.rows_unchanged);
    assert_eq!(r.invoices_seen, base.invoices_seen);
    // And un-printed again: the rows' bytes are the ones known this morning,
    // which must not hide the change back.
    toggle_printed(sim, 3);
    let r = poll(app, PollOptions::default(), now).await.unwrap();
    assert_eq!(r.events, 3, "the flip back is announced");
    deliver_all(app).await.unwrap();
    let got = types(rec);
    assert_eq!(got.len(), 6, "{got:?}");
    for id in &changed {
        let of: Vec<&str> = got
            .iter()
            .filter(|(_, i)| i == &id.to_string() || i == &format!("\"{id}\""))
            .map(|(t, _)| t.as_str())
            .collect();
        assert_eq!(of.len(), 2, "{id}: {got:?}");
        assert_ne!(of[0], of[1], "printed, then unprinted (or the reverse)");
    }

    // The next Korea-time day, every row is read again (and nothing is announced).
    let tomorrow = now + Duration::days(1);
    let r = poll(app, PollOptions::default(), tomorrow).await.unwrap();
    assert_eq!((r.rows_unchanged, r.events), (0, 0));
    let r = poll(app, PollOptions::default(), tomorrow).await.unwrap();
    assert!(r.rows_unchanged * 10 >= rows * 9);
}

#[tokio::test]
async fn a_known_row_is_read_again_when_another_row_of_its_page_lists_its_invoice() {
    let fx = fixture(120).await;
    let (app, sim) = (&fx.app, &fx.sim);
    let now = Utc::now();
    poll(app, PollOptions::default(), now).await.unwrap();
    poll(app, PollOptions::default(), now).await.unwrap();
    let idle = poll(app, PollOptions::default(), now).await.unwrap();
    assert!(idle.rows_unchanged > 0);

    // Another order starts listing an invoice of a known row: a combined
    // shipment. Both rows are read, so the invoice names both orders.
    let (invoice, other) = sim.with_merchant(|m| {
        let (owner, id) = m
            .orders
            .iter()
            .enumerate()
            .find_map(|(i, o)| o.invoices.first().map(|inv| (i, inv.id)))
            .unwrap();
        let other = (owner + 1) % m.orders.len();
        m.link(other, id);
        (id, m.orders[other].order_code.clone())
    });
    let r = poll(app, PollOptions::default(), now).await.unwrap();
    assert!(r.is_complete());
    assert!(
        r.rows_unchanged + 2 <= idle.rows_unchanged,
        "{} known now, {} before",
        r.rows_unchanged,
        idle.rows_unchanged
    );
    let snapshot = app
        .store
        .snapshot(&InvoiceId(invoice.to_string()))
        .unwrap()
        .unwrap();
    let codes: Vec<_> = snapshot
        .orders
        .iter()
        .filter_map(|o| o.order_code.clone())
        .collect();
    assert_eq!(codes.len(), 2, "{codes:?}");
    assert!(codes.contains(&other), "{codes:?}");
    assert_eq!(
        snapshot.vouched_by, None,
        "two rows list it: no row vouches"
    );
}

#[tokio::test]
async fn a_cancellation_and_its_withdrawal_are_both_seen_on_a_known_row() {
    // A cancellation is held until the scan ends, so the row is not vouched
    // for with it; what was known of the row before must be forgotten (the
    // row came with other bytes, and its invoice was read other than through
    // it alone: either is enough), or the withdrawal, the row's old bytes
    // again, would pass unread. Without both, this test fails.
    let fx = fixture(150).await;
    let (app, sim, rec) = (&fx.app, &fx.sim, &fx.rec);
    let now = Utc::now();
    for _ in 0..3 {
        poll(app, PollOptions::default(), now).await.unwrap();
    }
    let id = sim.with_merchant(|m| {
        let id = m
            .orders
            .iter()
            .find(|o| o.invoices.len() == 1 && o.canceled.is_empty() && o.linked.is_empty())
            .map(|o| o.invoices[0].id)
            .unwrap();
        assert!(m.cancel(id));
        id
    });
    let r = poll(app, PollOptions::default(), now).await.unwrap();
    assert_eq!(r.events, 1);
    sim.with_merchant(|m| assert!(m.uncancel(id)));
    let r = poll(app, PollOptions::default(), now).await.unwrap();
    assert_eq!(r.events, 1, "the withdrawal is read, not skipped as known");
    deliver_all(app).await.unwrap();
    let got: Vec<String> = types(rec).into_iter().map(|(t, _)| t).collect();
    assert_eq!(got, ["invoice.canceled", "invoice.uncanceled"]);
}
