//! Fault matrices. Upstream: during a multi-page scan, each fault in turn;
//! no event is invented, committed pages stay committed, the poll says what
//! failed, and the next good poll catches up exactly. Receivers: each bad
//! answer ends in delivered or dead-lettered, nothing is lost, and another
//! target is not held up.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use chrono::Utc;

use poomgo_notifier::poll::{PollOptions, deliver_all, poll};
use poomgo_notifier::sim::{AdvanceOptions, Fault, FaultRule};

use crate::support::{Recorder, Reply, changes, pipeline_app_with, simulator};

fn advance(sim: &poomgo_notifier::sim::Simulator) -> HashSet<String> {
    changes(sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.2,
            new_orders: 0,
        });
    })
}

fn received(rec: &Recorder) -> HashSet<String> {
    rec.accepted()
        .iter()
        .map(|g| crate::support::without_generation(g.id()).to_owned())
        .collect()
}

#[tokio::test]
async fn upstream_faults_invent_nothing_and_the_next_good_poll_catches_up() {
    let rule = |spec: &str| FaultRule::parse(spec).unwrap();
    // (case, faults during the bad poll, what the poll must say, or None when it recovers)
    let cases: Vec<(&str, Vec<FaultRule>, Option<&str>)> = vec![
        (
            "a 500 page",
            vec![rule("500@3")],
            Some("page 3: gave up after"),
        ),
        ("a 429 with Retry-After", vec![rule("429:1@2x1")], None),
        ("a time-out", vec![rule("slow:2s@2x1")], None),
        (
            "a non-JSON body",
            vec![rule("notjson@4")],
            Some("page 4: the answer was not the documented page"),
        ),
        (
            "a truncated body",
            vec![rule("truncated@2")],
            Some("page 2: gave up after"),
        ),
        ("a 401", vec![rule("401@3")], Some("rejected the key")),
        (
            "empty rows under a total",
            vec![rule("empty@2")],
            Some("fewer rows than `total`"),
        ),
        (
            "an odd row",
            vec![FaultRule {
                page: None,
                fault: Fault::Mangle {
                    row: 0,
                    pointer: "/invoices".into(),
                    value: Some(serde_json::json!(7)),
                },
                times: None,
            }],
            None,
        ),
    ];
    for (case, faults, says) in cases {
        let sim = simulator(1000).await;
        let rec = Recorder::start(Reply::status(200)).await;
        let dir = tempfile::tempdir().unwrap();
        let app = pipeline_app_with(
            &sim,
            dir.path(),
            "page_size = 100\nmax_attempts = 2\nrequest_timeout = \"500ms\"",
            &format!(
                "[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\n",
                rec.uri()
            ),
        );
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        let expected = advance(&sim);
        for f in faults {
            sim.add_fault(f);
        }
        let bad = poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        deliver_all(&app).await.unwrap();
        let during = received(&rec);
        assert!(
            during.is_subset(&expected),
            "{case}: an event was invented: {:?}",
            during.difference(&expected)
        );
        match says {
            Some(text) => {
                let failure = bad
                    .failure()
                    .unwrap_or_else(|| panic!("{case}: the poll did not fail"));
                assert!(failure.contains(text), "{case}: {failure}");
                assert!(
                    bad.pages >= 1,
                    "{case}: pages before the fault were committed"
                );
            }
            None => assert!(bad.failure().is_none(), "{case}: {:?}", bad.failure()),
        }
        sim.clear_faults();
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        deliver_all(&app).await.unwrap();
        let after = received(&rec);
        let skipped: HashSet<String> = if case == "an odd row" {
            // The odd row's invoices are skipped until they read well again.
            expected.difference(&after).cloned().collect()
        } else {
            HashSet::new()
        };
        assert_eq!(
            after,
            &expected - &skipped,
            "{case}: the next good poll caught up"
        );
        assert!(
            skipped.len() <= 3,
            "{case}: only the odd row's invoices wait: {skipped:?}"
        );
    }
}

#[tokio::test]
async fn total_changing_and_rows_shifting_mid_scan_invent_nothing() {
    let sim = simulator(1000).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app_with(
        &sim,
        dir.path(),
        "page_size = 100\nconcurrency = 1",
        &format!(
            "[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\n",
            rec.uri()
        ),
    );
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    // New orders arrive while the scan is under way: rows shift down a page
    // and `total` grows.
    sim.add_fault(FaultRule::parse("slow:100ms").unwrap());
    let expected_before = advance(&sim);
    let polling = async {
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap()
    };
    let shifting = async {
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(250)).await;
            sim.advance(AdvanceOptions {
                steps: 1,
                fraction: 0.0,
                new_orders: 150,
            });
        }
    };
    let (report, ()) = tokio::join!(polling, shifting);
    deliver_all(&app).await.unwrap();
    let during = received(&rec);
    assert!(
        report.pages > 10,
        "the scan grew with the total: {}",
        report.pages
    );
    sim.clear_faults();
    // Everything that changed before is announced (some may wait for the
    // next poll if a shift hid them), nothing else is, and no id twice.
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    deliver_all(&app).await.unwrap();
    let all: Vec<String> = rec.accepted().iter().map(|g| g.id().to_owned()).collect();
    let unique: HashSet<&String> = all.iter().collect();
    assert_eq!(unique.len(), all.len(), "no id twice");
    let after = received(&rec);
    assert!(during.is_subset(&after));
    assert!(
        expected_before.is_subset(&after),
        "missed: {:?}",
        expected_before.difference(&after)
    );
    assert!(
        after.iter().all(|id| id.ends_with("-1")),
        "only first revisions: new orders are not packed yet, nothing else changed"
    );
}

/// A receiver that reads the request, then drops the connection without an answer.
async fn resetting_receiver() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut buf = [0u8; 1024];
                let _ = socket.read(&mut buf).await;
                drop(socket);
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn receiver_faults_end_delivered_or_dead_and_never_hold_up_another_target() {
    let cases: Vec<(&str, Reply, bool)> = vec![
        ("500", Reply::status(500), false),
        ("429", Reply::status(429).header("retry-after", "1"), false),
        ("400", Reply::status(400).body("bad"), true),
        ("410", Reply::status(410), true),
        (
            "a hang past the time-out",
            Reply::status(200).delay(Duration::from_secs(3)),
            false,
        ),
        (
            "a slow receiver (5 s a request)",
            Reply::status(200).delay(Duration::from_secs(5)),
            false,
        ),
        ("a connection reset", Reply::status(200), false),
    ];
    for (case, reply, dead_at_once) in cases {
        let sim = simulator(150).await;
        let bad = Recorder::start(reply.clone()).await;
        let good = Recorder::start(Reply::status(200)).await;
        let bad_url = if case == "a connection reset" {
            resetting_receiver().await
        } else {
            bad.uri()
        };
        let slow = case.starts_with("a slow");
        let dir = tempfile::tempdir().unwrap();
        let app = pipeline_app_with(
            &sim,
            dir.path(),
            "",
            &format!(
                r#"
[[targets]]
name = "bad"
kind = "webhook"
url = "{bad_url}/bad"
timeout = "{}"
retry_schedule = ["100ms", "100ms"]
[[targets]]
name = "good"
kind = "webhook"
url = "{}/good"
"#,
                if slow { "10s" } else { "1s" },
                good.uri()
            ),
        );
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        let expected = advance(&sim);
        poll(&app, PollOptions::default(), Utc::now())
            .await
            .unwrap();
        // The good target, alone in its own round, is served in that one
        // round, without a request to the bad one.
        let bad_before = bad.got().len();
        let good_only = poomgo_notifier::delivery::driver::deliver_all(
            &app.store,
            &app.sender,
            &app.targets[1..],
        )
        .await
        .unwrap();
        assert_eq!(good_only.delivered as usize, expected.len(), "{case}");
        assert_eq!(good.accepted().len(), expected.len(), "{case}");
        assert_eq!(bad.got().len(), bad_before, "{case}");
        // The bad one, until nothing is due: every event delivered or dead.
        let limit = Instant::now() + Duration::from_secs(if slow { 60 } else { 20 });
        loop {
            deliver_all(&app).await.unwrap();
            if app.store.queue("bad").unwrap().pending_len() == 0 || Instant::now() > limit {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let q = app.store.queue("bad").unwrap();
        assert_eq!(q.pending_len(), 0, "{case}: still pending");
        // Nothing lost: what is not a dead letter reached the receiver.
        let dead: HashSet<String> = q
            .dead(usize::MAX)
            .unwrap()
            .iter()
            .map(|(_, d)| crate::support::without_generation(&d.entry.event_id).to_owned())
            .collect();
        let got = received(&bad);
        for id in &expected {
            assert!(
                dead.contains(id) || got.contains(id),
                "{case}: {id} was neither delivered nor dead-lettered"
            );
        }
        if dead_at_once {
            assert_eq!(q.dead_len(), expected.len(), "{case}: dead letters at once");
        }
        assert_eq!(
            received(&good),
            expected,
            "{case}: the other target got everything"
        );
    }
}
