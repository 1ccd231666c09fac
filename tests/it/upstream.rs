//! Reading the upstream faithfully on a bad day: odd values in rows, empty
//! pages under a total, a lost or restored store, un-cancel, combined
//! shipments, a wider window, `Retry-After` dates. One test per case, over
//! loopback against the simulator (and the real binary where the exit code
//! and the log are what a user sees).

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::{Value, json};
use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

use poomgo_notifier::poll::{PollOptions, deliver_all, poll};
use poomgo_notifier::poomgo::{Query, kst_day};
use poomgo_notifier::sim::{AdvanceOptions, Fault, FaultRule, Simulator};

use crate::support::{
    SECRET, changes, ids, output, output_ok, pipeline_app, pipeline_app_with, pipeline_toml,
    poll_command, raw_ids, received, receiver, simulator, without_generation,
};

fn targets(server: &MockServer) -> String {
    format!(
        r#"
[[targets]]
name = "erp"
kind = "webhook"
url = "{0}/erp"
secret = "{SECRET}"
include_personal_data = true
[[targets]]
name = "cs-slack"
kind = "slack"
url = "{0}/slack"
"#,
        server.uri()
    )
}

fn mangle(row: usize, pointer: &str, value: Option<Value>) -> FaultRule {
    FaultRule {
        page: Some(1),
        fault: Fault::Mangle {
            row,
            pointer: pointer.into(),
            value,
        },
        times: None,
    }
}

/// The position (newest first, so the row index on page 1) of the newest
/// order with an active invoice, and that invoice's id.
fn newest_with_invoice(sim: &Simulator) -> (usize, u64) {
    sim.with_merchant(|m| {
        let (row, order) = m
            .orders
            .iter()
            .rev()
            .enumerate()
            .find(|(_, o)| !o.invoices.is_empty() && o.canceled.is_empty())
            .expect("an order with an invoice");
        (row, order.invoices[0].id)
    })
}

fn bodies(requests: &[wiremock::Request]) -> Vec<Value> {
    requests
        .iter()
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

fn advance(sim: &Simulator, fraction: f64) -> HashSet<String> {
    changes(sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction,
            new_orders: 0,
        });
    })
}

#[tokio::test]
async fn an_odd_untracked_value_costs_nothing() {
    let sim = simulator(300).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(&sim, dir.path(), &targets(&server));
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    // The independent fake's case: a phone number sent as a JSON number.
    let (row, _) = newest_with_invoice(&sim);
    sim.add_fault(mangle(row, "/receiverData/mobile", Some(json!(1012345678))));
    sim.add_fault(mangle(0, "/dealName", Some(json!({"ko": ["키보드"]}))));
    let expected = advance(&sim, 0.3);
    let report = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert!(report.is_complete(), "{:?}", report.failure());
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    deliver_all(&app).await.unwrap();
    let got: HashSet<String> = ids(&received(&server, "/erp").await).into_iter().collect();
    assert_eq!(got, expected, "every change of every page is announced");
}

#[tokio::test]
async fn a_wrong_typed_tracked_value_skips_that_invoice_only_and_the_poll_succeeds() {
    let sim = simulator(300).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, pipeline_toml(&sim, dir.path(), &targets(&server))).unwrap();
    output_ok(poll_command(&config)).await;

    let (row, odd) = newest_with_invoice(&sim);
    sim.add_fault(mangle(
        row,
        "/invoices/0/isPrinted",
        Some(json!("YES-7791")),
    ));
    // The odd invoice really changed too: it must still get no event.
    let mut expected = advance(&sim, 0.3);
    sim.with_merchant(|m| {
        let i = m
            .orders
            .iter_mut()
            .flat_map(|o| o.invoices.iter_mut())
            .find(|i| i.id == odd)
            .unwrap();
        i.closed = !i.closed;
    });
    expected.retain(|id| !id.starts_with(&format!("{odd}-")));

    let out = output(poll_command(&config)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}{stderr}");
    assert!(stdout.contains(", 1 skipped,"), "{stdout}");
    let line = stderr
        .lines()
        .find(|l| l.contains("skipped an invoice with an odd value"))
        .unwrap_or_else(|| panic!("no skip line: {stderr}"));
    assert!(
        line.contains(&format!("rows[{row}].invoices[0].isPrinted"))
            && line.contains(&odd.to_string())
            && line.contains("expected a boolean, found a string"),
        "{line}"
    );
    assert!(
        !stderr.contains("YES-7791"),
        "the value never reaches the log"
    );
    assert_eq!(
        stderr.matches("skipped an invoice").count(),
        1,
        "logged once per poll"
    );
    let got: HashSet<String> = ids(&received(&server, "/erp").await).into_iter().collect();
    assert_eq!(got, expected);

    // The vendor fixes the row: the change that was held back is announced.
    sim.clear_faults();
    output_ok(poll_command(&config)).await;
    let later: Vec<String> = ids(&received(&server, "/erp").await);
    assert!(
        later.iter().any(|id| id.starts_with(&format!("{odd}-"))),
        "the skipped invoice's change arrives once it is readable"
    );
}

#[tokio::test]
async fn empty_pages_under_a_total_never_complete_a_baseline() {
    let sim = simulator(1200).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, pipeline_toml(&sim, dir.path(), &targets(&server))).unwrap();
    // The glitch: every page answers `rows: []` under the real total.
    sim.add_fault(FaultRule::parse("empty").unwrap());
    let out = output(poll_command(&config)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("`created` page 1") && stderr.contains("fewer rows than `total`"),
        "{stderr}"
    );
    sim.clear_faults();

    // The next good poll is still the baseline: silent.
    advance(&sim, 0.2);
    let out = output_ok(poll_command(&config)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(" 0 events (baseline: recorded silently)"),
        "{stdout}"
    );
    assert!(server.received_requests().await.unwrap().is_empty());

    // Then exactly the real changes, not a flood of "assigned".
    let expected = advance(&sim, 0.05);
    output_ok(poll_command(&config)).await;
    let got: HashSet<String> = ids(&received(&server, "/erp").await).into_iter().collect();
    assert_eq!(got, expected);
}

#[tokio::test]
async fn a_page_that_comes_back_short_once_is_read_again() {
    let sim = simulator(1200).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(&sim, dir.path(), &targets(&server));
    sim.add_fault(FaultRule::parse("empty@2x1").unwrap());
    let report = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert!(report.is_complete(), "{:?}", report.failure());
    assert_eq!(report.invoices_seen as usize, sim.invoices().len());
}

#[tokio::test]
async fn ids_never_repeat_after_the_store_is_lost_or_restored_from_a_backup() {
    let sim = simulator(400).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let backup = dir.path().join("backup");
    let mut all = Vec::new();
    {
        let app = pipeline_app(&sim, dir.path(), &targets(&server));
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        app.store.flush().await.unwrap();
        copy_dir(&store, &backup);
        advance(&sim, 0.2);
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        deliver_all(&app).await.unwrap();
    }
    let first = raw_ids(&received(&server, "/erp").await);
    assert!(first.len() > 5);
    all.extend(first.iter().cloned());

    // Restored from the old backup: the same revisions come round again.
    std::fs::remove_dir_all(&store).unwrap();
    copy_dir(&backup, &store);
    {
        let app = pipeline_app(&sim, dir.path(), &targets(&server));
        advance(&sim, 0.2);
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        deliver_all(&app).await.unwrap();
    }
    // Lost altogether: a new baseline, then changes.
    std::fs::remove_dir_all(&store).unwrap();
    {
        let app = pipeline_app(&sim, dir.path(), &targets(&server));
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        advance(&sim, 0.2);
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        deliver_all(&app).await.unwrap();
    }
    let every = raw_ids(&received(&server, "/erp").await);
    let revisions: HashSet<&str> = every.iter().map(|id| without_generation(id)).collect();
    assert!(
        revisions.len() < every.len(),
        "the restore really replayed revisions ({} ids, {} revisions)",
        every.len(),
        revisions.len()
    );
    let unique: HashSet<&String> = every.iter().collect();
    assert_eq!(unique.len(), every.len(), "an id was reused: {every:?}");
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

#[tokio::test]
async fn undoing_a_cancellation_is_announced_as_such() {
    let sim = simulator(400).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(&sim, dir.path(), &targets(&server));
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    let id = sim.with_merchant(|m| {
        let id = m
            .orders
            .iter()
            .find_map(|o| o.canceled.first())
            .expect("a canceled invoice")
            .id;
        assert!(m.uncancel(id));
        id
    });
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    deliver_all(&app).await.unwrap();
    let erp = bodies(&received(&server, "/erp").await);
    assert_eq!(erp.len(), 1);
    assert_eq!(erp[0]["type"], "invoice.uncanceled");
    assert_eq!(erp[0]["invoice"]["invoiceId"], id.to_string());
    assert_eq!(erp[0]["invoice"]["canceled"], false);
    assert_eq!(
        erp[0]["changes"],
        json!([{ "field": "canceled", "from": true, "to": false }])
    );
    let slack = bodies(&received(&server, "/slack").await);
    let text = slack[0]["text"].as_str().unwrap();
    assert!(
        text.contains("취소 철회") && !text.contains("[송장 취소]"),
        "{text}"
    );
}

/// Two orders list one invoice; `page_size` decides whether they share a page.
async fn combined_shipment(page_size: u32) {
    let sim = simulator(300).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    // The owner is an old order, the other lister the newest: with small
    // pages they are far apart.
    let (invoice, owner_code, other_code) = sim.with_merchant(|m| {
        let owner = m
            .orders
            .iter()
            .position(|o| {
                o.invoices.len() == 1
                    && o.canceled.is_empty()
                    && !o.invoices[0].closed
                    && o.invoices[0].printed
            })
            .expect("a printed, open invoice");
        let other = m.orders.len() - 1;
        let id = m.orders[owner].invoices[0].id;
        m.link(other, id);
        (
            id,
            m.orders[owner].order_code.clone(),
            m.orders[other].order_code.clone(),
        )
    });
    let app = pipeline_app_with(
        &sim,
        dir.path(),
        &format!("page_size = {page_size}"),
        &targets(&server),
    );
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();

    let close = |m: &mut poomgo_notifier::sim::Merchant| {
        let i = m
            .orders
            .iter_mut()
            .flat_map(|o| o.invoices.iter_mut())
            .find(|i| i.id == invoice)
            .unwrap();
        i.closed = true;
    };
    sim.with_merchant(close);
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    deliver_all(&app).await.unwrap();
    let erp = bodies(&received(&server, "/erp").await);
    assert_eq!(erp.len(), 1, "one event for the invoice: {erp:?}");
    assert_eq!(erp[0]["type"], "invoice.closed");
    let codes: HashSet<&str> = erp[0]["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["orderCode"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        HashSet::from([owner_code.as_str(), other_code.as_str()])
    );

    // Canceled by the owner only: the other order still lists it as active.
    sim.with_merchant(|m| assert!(m.cancel(invoice)));
    let report = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert_eq!(
        report.events, 0,
        "not canceled while one row lists it active"
    );
    // Canceled in every row: now it is.
    sim.with_merchant(|m| {
        for o in &mut m.orders {
            for l in &mut o.linked {
                l.canceled = true;
            }
        }
    });
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    deliver_all(&app).await.unwrap();
    let erp = bodies(&received(&server, "/erp").await);
    assert_eq!(erp.len(), 2);
    assert_eq!(erp[1]["type"], "invoice.canceled");
    assert_eq!(erp[1]["orders"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn a_combined_shipment_on_one_page_is_one_event_naming_every_order() {
    combined_shipment(500).await;
}

#[tokio::test]
async fn a_combined_shipment_across_pages_is_one_event_naming_every_order() {
    combined_shipment(20).await;
}

/// A baseline holds every canceled invoice until its scan ends, keeping of
/// the rows only what names their orders: the snapshot of a combined
/// shipment canceled in every row still knows both orders.
#[tokio::test]
async fn a_baseline_remembers_every_order_of_a_combined_shipment_canceled_in_every_row() {
    let sim = simulator(300).await;
    let dir = tempfile::tempdir().unwrap();
    let (invoice, codes) = sim.with_merchant(|m| {
        let owner = m
            .orders
            .iter()
            .position(|o| o.invoices.len() == 1 && o.canceled.is_empty())
            .expect("an order with one invoice");
        let other = m.orders.len() - 1;
        let id = m.orders[owner].invoices[0].id;
        m.link(other, id);
        assert!(m.cancel(id));
        m.orders[other].linked.last_mut().unwrap().canceled = true;
        (
            id,
            HashSet::from([
                m.orders[owner].order_code.clone(),
                m.orders[other].order_code.clone(),
            ]),
        )
    });
    // Small pages: the two rows are far apart, so the first is held for long.
    let app = pipeline_app_with(&sim, dir.path(), "page_size = 20", "");
    let report = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert!(report.baseline && report.events == 0, "{report:?}");
    let snapshot = app
        .store
        .snapshot(&poomgo_notifier::poomgo::InvoiceId(invoice.to_string()))
        .unwrap()
        .expect("recorded by the baseline");
    assert!(snapshot.canceled);
    let known: HashSet<String> = snapshot
        .orders
        .iter()
        .map(|o| o.order_code.clone().unwrap())
        .collect();
    assert_eq!(known, codes);
}

#[tokio::test]
async fn a_wider_window_records_older_invoices_silently() {
    let sim = simulator(600).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    {
        let app = pipeline_app_with(&sim, dir.path(), "lookback_days = 3", &targets(&server));
        let r = poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        assert!(r.baseline && r.is_complete());
    }
    // Changes everywhere, then the window is widened to ten days.
    let recent_from = kst_day(Utc::now()) - chrono::Days::new(3);
    let mut changed = advance(&sim, 0.3);
    // Old orders are mostly delivered by now; change a few of them by hand.
    sim.with_merchant(|m| {
        for i in m
            .orders
            .iter_mut()
            .filter(|o| kst_day(o.created_at) < recent_from)
            .flat_map(|o| o.invoices.iter_mut())
            .take(5)
        {
            i.printed = !i.printed;
            changed.insert(format!("{}-1", i.id));
        }
    });
    // Invoices of orders in the covered days, including ones just assigned.
    let recent: HashSet<String> = sim.with_merchant(|m| {
        m.orders
            .iter()
            .filter(|o| kst_day(o.created_at) >= recent_from)
            .flat_map(|o| o.invoices.iter().chain(&o.canceled))
            .map(|i| format!("{}-1", i.id))
            .collect()
    });
    let app = pipeline_app_with(&sim, dir.path(), "lookback_days = 10", &targets(&server));
    let report = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert!(report.baseline && report.is_complete());
    deliver_all(&app).await.unwrap();
    let got: HashSet<String> = ids(&received(&server, "/erp").await).into_iter().collect();
    let expected: HashSet<String> = changed.intersection(&recent).cloned().collect();
    assert!(
        !expected.is_empty() && expected.len() < changed.len(),
        "{} {} {}",
        expected.len(),
        changed.len(),
        recent.len()
    );
    assert_eq!(
        got, expected,
        "changes inside the covered days are announced, older invoices recorded silently"
    );
    // From now on the whole ten days are covered.
    let before = got.len();
    let next = advance(&sim, 0.1);
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    deliver_all(&app).await.unwrap();
    assert_eq!(received(&server, "/erp").await.len(), before + next.len());
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured_past_retry_max() {
    /// Answers `answer`, noting when each request arrived.
    struct Timed {
        at: std::sync::Arc<std::sync::Mutex<Vec<Instant>>>,
        answer: ResponseTemplate,
    }
    impl wiremock::Respond for Timed {
        fn respond(&self, _: &wiremock::Request) -> ResponseTemplate {
            self.at.lock().unwrap().push(Instant::now());
            self.answer.clone()
        }
    }
    let arrived = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let server = MockServer::start().await;
    let at = Utc::now() + chrono::Duration::seconds(3);
    Mock::given(method("POST"))
        .respond_with(Timed {
            at: arrived.clone(),
            answer: ResponseTemplate::new(429)
                .insert_header("Retry-After", at.to_rfc2822().as_str()),
        })
        .up_to_n_times(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .respond_with(Timed {
            at: arrived.clone(),
            answer: ResponseTemplate::new(200).set_body_string(r#"{"total":"0","rows":[]}"#),
        })
        .mount(&server)
        .await;
    let config = crate::support::config(&server.uri(), "retry_max = \"100ms\"");
    let page = crate::support::client(&config)
        .fetch_page(&Query::default(), 1)
        .await
        .unwrap();
    assert_eq!(page.total, 0);
    // When the server got them: the retry waited for the date (2-3 s, as
    // the date is to the second), not for retry_max.
    let arrived = arrived.lock().unwrap().clone();
    assert_eq!(arrived.len(), 2);
    assert!(
        arrived[1] - arrived[0] >= Duration::from_millis(1500),
        "waited for the date, not retry_max: {:?}",
        arrived[1] - arrived[0]
    );
}
