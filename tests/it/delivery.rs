//! Delivery on a bad day, against loopback receivers with scripted answers:
//! retries at the scheduled times, Retry-After, dead letters that never
//! block the next event, time-outs, a gone target, replay with the same id,
//! per-invoice order, Slack digests under a strict rate limit, and a restart
//! in the middle of a back-off.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::Utc;
use serde_json::Value;

use poomgo_notifier::poll::{App, PollOptions, deliver_all, poll};
use poomgo_notifier::sim::Simulator;

use crate::support::{
    BIN, Recorder, Reply, SECRET, output, pipeline_app, pipeline_toml, poll_command, simulator,
    toggle_printed,
};

fn webhook(rec: &Recorder, extra: &str) -> String {
    format!(
        "[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\nsecret = \"{SECRET}\"\njitter = 0.0\n{extra}\n",
        rec.uri()
    )
}

/// Delivers what is due, again and again, until `done` or `limit`.
async fn deliver_until(app: &App, limit: Duration, done: impl Fn() -> bool) {
    let started = Instant::now();
    loop {
        deliver_all(app).await.unwrap();
        if done() {
            return;
        }
        assert!(started.elapsed() < limit, "not done within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn baseline_then(sim: &Simulator, app: &App, n: usize) -> Vec<u64> {
    poll(app, PollOptions::default(), Utc::now()).await.unwrap();
    let changed = toggle_printed(sim, n);
    let report = poll(app, PollOptions::default(), Utc::now()).await.unwrap();
    assert_eq!(report.events as usize, n);
    changed
}

fn gaps(got: &[crate::support::Got]) -> Vec<Duration> {
    got.windows(2).map(|w| w[1].at - w[0].at).collect()
}

#[tokio::test]
async fn failing_attempts_are_retried_at_the_scheduled_times_then_delivered_once() {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(200)).await;
    rec.script([Reply::status(503), Reply::status(502)]);
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(
        &sim,
        dir.path(),
        &webhook(&rec, "retry_schedule = [\"300ms\", \"600ms\", \"5s\"]"),
    );
    baseline_then(&sim, &app, 1).await;
    deliver_until(&app, Duration::from_secs(10), || rec.accepted().len() == 1).await;
    let got = rec.got();
    assert_eq!(got.len(), 3, "two failures, then the success");
    let ids: HashSet<&str> = got.iter().map(|g| g.id()).collect();
    assert_eq!(ids.len(), 1, "the same webhook-id on every attempt");
    let g = gaps(&got);
    assert!(
        g[0] >= Duration::from_millis(300) && g[0] < Duration::from_millis(1300),
        "{g:?}"
    );
    assert!(
        g[1] >= Duration::from_millis(600) && g[1] < Duration::from_millis(1600),
        "{g:?}"
    );
    let q = app.store.queue("erp").unwrap();
    assert_eq!((q.pending_len(), q.dead_len()), (0, 0));
    deliver_all(&app).await.unwrap();
    assert_eq!(rec.accepted().len(), 1, "delivered once");
}

#[tokio::test]
async fn retry_after_is_honoured_and_never_shortened() {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(200)).await;
    rec.script([Reply::status(429).header("retry-after", "2")]);
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(
        &sim,
        dir.path(),
        &webhook(&rec, "retry_schedule = [\"100ms\", \"5s\"]"),
    );
    baseline_then(&sim, &app, 1).await;
    deliver_until(&app, Duration::from_secs(10), || rec.accepted().len() == 1).await;
    let g = gaps(&rec.got());
    assert!(g[0] >= Duration::from_secs(2), "retried after {g:?}");
}

#[tokio::test]
async fn a_rejected_event_is_a_dead_letter_at_once_and_the_next_one_still_goes_then_replay_keeps_its_id()
 {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(&sim, dir.path(), &webhook(&rec, ""));
    let changed = baseline_then(&sim, &app, 2).await;
    let refused = changed[0].to_string();
    rec.when_body_contains(
        &format!("\"invoiceId\":\"{refused}\""),
        1,
        Reply::status(400).body("{\"error\": \"unknown sku\"}"),
    );
    let report = deliver_all(&app).await.unwrap();
    assert_eq!((report.delivered, report.pending, report.dead), (1, 0, 1));
    assert!(
        report.failures[0]
            .1
            .contains("moved to dead letters: HTTP 400"),
        "{:?}",
        report.failures
    );
    let dead = poomgo_notifier::operate::dead_letters(&app.store, &app.targets, None).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].invoice_id, refused);
    assert_eq!(dead[0].status, Some(400));
    assert_eq!(dead[0].reason, "HTTP 400: {\"error\": \"unknown sku\"}");
    let first_id = rec
        .got()
        .iter()
        .find(|g| g.status == 400)
        .unwrap()
        .id()
        .to_owned();

    // The operator fixes the receiver and replays: the same webhook-id.
    let done =
        poomgo_notifier::operate::replay(&app.store, &app.targets, &[dead[0].event_id.clone()])
            .unwrap();
    assert_eq!(done.entries.len(), 1);
    deliver_all(&app).await.unwrap();
    let accepted = rec.accepted();
    assert_eq!(accepted.len(), 2);
    assert_eq!(accepted[1].id(), first_id);
    assert_eq!(app.store.queue("erp").unwrap().dead_len(), 0);
}

#[tokio::test]
async fn a_receiver_that_hangs_past_the_timeout_is_retried() {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(200)).await;
    rec.script([Reply::status(200).delay(Duration::from_secs(3))]);
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(
        &sim,
        dir.path(),
        &webhook(&rec, "timeout = \"300ms\"\nretry_schedule = [\"100ms\"]"),
    );
    baseline_then(&sim, &app, 1).await;
    deliver_until(&app, Duration::from_secs(10), || rec.got().len() == 2).await;
    let got = rec.got();
    // When the receiver got them: the retry came after the time-out, well
    // before the hung answer (3 s) would have ended.
    assert!(
        got[1].at - got[0].at < Duration::from_millis(2500),
        "did not wait for the hang: {:?}",
        got[1].at - got[0].at
    );
    assert_eq!(got[0].id(), got[1].id());
    assert_eq!(app.store.queue("erp").unwrap().pending_len(), 0);
}

#[tokio::test]
async fn a_gone_receiver_dead_letters_and_marks_the_target_failing() {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(410).body("gone")).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(&sim, dir.path(), &webhook(&rec, ""));
    baseline_then(&sim, &app, 2).await;
    let report = deliver_all(&app).await.unwrap();
    assert_eq!(report.dead, 2);
    let state = app.store.queue("erp").unwrap().state().unwrap();
    assert!(state.gone && state.failing_since.is_some(), "{state:?}");
    assert_eq!(state.reason.as_deref(), Some("HTTP 410 (4-byte answer)"));
}

#[tokio::test]
async fn one_invoice_stays_in_order_while_other_invoices_keep_flowing() {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(
        &sim,
        dir.path(),
        &webhook(&rec, "retry_schedule = [\"400ms\", \"400ms\", \"400ms\"]"),
    );
    // Invoice A changes twice (two events), B once.
    let changed = baseline_then(&sim, &app, 2).await;
    let (a, b) = (changed[0], changed[1]);
    sim.with_merchant(|m| {
        let i = m
            .orders
            .iter_mut()
            .flat_map(|o| o.invoices.iter_mut())
            .find(|i| i.id == a)
            .unwrap();
        i.closed = !i.closed;
    });
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    rec.when_body_contains(&format!("\"invoiceId\":\"{a}\""), 2, Reply::status(503));
    deliver_until(&app, Duration::from_secs(10), || rec.accepted().len() == 3).await;
    let of = |g: &crate::support::Got| {
        g.json()["invoice"]["invoiceId"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let accepted: Vec<(String, String)> = rec
        .accepted()
        .iter()
        .map(|g| {
            (
                of(g),
                g.json()["changes"][0]["field"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        accepted[0].0,
        b.to_string(),
        "B flowed while A was in back-off"
    );
    assert_eq!(
        accepted[1..],
        [
            (a.to_string(), "isPrinted".to_owned()),
            (a.to_string(), "isClosed".to_owned())
        ],
        "A's events in the order they were detected"
    );
    // A's second event was never sent before its first was accepted.
    let got = rec.got();
    let first_ok = got
        .iter()
        .find(|g| of(g) == a.to_string() && g.status == 200)
        .unwrap()
        .at;
    assert!(
        got.iter()
            .filter(|g| g.json()["changes"][0]["field"] == "isClosed")
            .all(|g| g.at >= first_ok)
    );
}

#[tokio::test]
async fn a_burst_of_200_changes_reaches_slack_as_digests_within_block_kit_and_rate_limits() {
    let sim = simulator(500).await;
    let rec = Recorder::start(Reply::status(200).body("ok")).await;
    rec.enforce_gap(Duration::from_secs(1));
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(
        &sim,
        dir.path(),
        &format!(
            "[[targets]]\nname = \"cs-slack\"\nkind = \"slack\"\nurl = \"{}/services/T/B/X\"\n",
            rec.uri()
        ),
    );
    let changed = baseline_then(&sim, &app, 200).await;
    let codes: HashMap<String, String> = sim.with_merchant(|m| {
        m.orders
            .iter()
            .flat_map(|o| {
                o.invoices
                    .iter()
                    .map(move |i| (i.id.to_string(), o.order_code.clone()))
            })
            .collect()
    });
    let expected: HashSet<String> = changed
        .iter()
        .map(|id| codes[&id.to_string()].clone())
        .collect();
    deliver_until(&app, Duration::from_secs(30), || {
        app.store.queue("cs-slack").unwrap().pending_len() == 0
    })
    .await;
    let got = rec.got();
    assert!(
        got.iter().all(|g| g.status == 200),
        "a 429 came back: {:?}",
        got.iter().map(|g| g.status).collect::<Vec<_>>()
    );
    assert!(
        got.len() < 10,
        "{} messages: digests, not one each",
        got.len()
    );
    let mut listed = Vec::new();
    for g in &got {
        let v = g.json();
        let blocks = v["blocks"].as_array().unwrap();
        assert!(blocks.len() <= 50);
        for b in blocks {
            if let Some(t) = b["text"]["text"].as_str() {
                let max = if b["type"] == "header" { 150 } else { 3000 };
                assert!(t.chars().count() <= max, "{t}");
            }
            if b["type"] == "section"
                && let Some(t) = b["text"]["text"].as_str()
                && t.starts_with('`')
            {
                listed.push(t[1..].split('`').next().unwrap().to_owned());
            }
        }
        assert!(v["text"].as_str().unwrap().contains("배송 알림 요약 200건"));
    }
    assert_eq!(
        listed.len(),
        200,
        "every invoice accounted for exactly once"
    );
    let listed: HashSet<String> = listed.into_iter().collect();
    assert_eq!(listed, expected);
    let last = got.last().unwrap().json();
    assert!(last.to_string().contains("요약 끝"));
    assert!(got[0].json().to_string().contains("외 160건"));
}

#[tokio::test]
async fn a_restart_during_back_off_sends_at_the_persisted_time() {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(200)).await;
    rec.script([Reply::status(503)]);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        pipeline_toml(
            &sim,
            dir.path(),
            &webhook(&rec, "retry_schedule = [\"3s\"]"),
        ),
    )
    .unwrap();
    let run = || async {
        let out = output(poll_command(&config)).await;
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
    };
    run().await;
    toggle_printed(&sim, 1);
    let out = run().await;
    assert!(out.contains("HTTP 503"), "{out}");
    assert_eq!(rec.got().len(), 1);
    // A new process at once: the back-off is remembered, nothing is sent.
    let out = run().await;
    assert!(out.contains("1 pending"), "{out}");
    assert_eq!(rec.got().len(), 1, "not sent early after a restart");
    // After the persisted time, the next process sends it.
    crate::support::wait_until_due(&config).await;
    let out = run().await;
    assert!(out.contains("1 delivered, 0 pending"), "{out}");
    let got = rec.got();
    assert_eq!(got.len(), 2);
    assert!(got[1].at - got[0].at >= Duration::from_secs(3));
    assert_eq!(got[0].id(), got[1].id());
}

#[tokio::test]
async fn batches_are_one_signed_array_with_every_event_id() {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(&sim, dir.path(), &webhook(&rec, "batch_max = 10"));
    baseline_then(&sim, &app, 25).await;
    deliver_all(&app).await.unwrap();
    let got = rec.got();
    assert_eq!(got.len(), 3);
    let mut ids = HashSet::new();
    for g in &got {
        let items = g.json();
        let items = items.as_array().unwrap();
        assert!(items.len() <= 10);
        ids.extend(items.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
        assert!(g.id().starts_with("batch-"));
        let key = poomgo_notifier::delivery::targets::webhook::signature::SigningKey::parse(SECRET)
            .unwrap();
        let ts: i64 = g.headers["webhook-timestamp"].parse().unwrap();
        assert_eq!(
            g.headers["webhook-signature"],
            key.sign(g.id(), ts, &g.body)
        );
    }
    assert_eq!(ids.len(), 25);
}

#[tokio::test]
async fn the_cli_lists_shows_replays_and_purges_dead_letters() {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(400).body("bad")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        pipeline_toml(
            &sim,
            dir.path(),
            &webhook(&rec, "include_personal_data = true"),
        ),
    )
    .unwrap();
    let cli = |args: &[&str]| {
        let mut c = std::process::Command::new(BIN);
        c.args(args)
            .arg("--config")
            .arg(&config)
            .env("RUST_LOG", "warn");
        c
    };
    output(poll_command(&config)).await;
    toggle_printed(&sim, 1);
    let out = output(poll_command(&config)).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("target `erp`")
            && stderr.contains("moved to dead letters: HTTP 400 (3-byte answer)"),
        "{stderr}"
    );

    let out = output(cli(&["outbox"])).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "nothing pending\n");
    let out = output(cli(&["dead-letters", "list"])).await;
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(
        list.contains("\terp\t") && list.contains("HTTP 400: bad"),
        "{list}"
    );
    let id = list.split('\t').next().unwrap().to_owned();

    let out = output(cli(&["dead-letters", "show", &id])).await;
    let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(shown["event_id"], id.as_str());
    let name = shown["event"]["receiver"]["name"].as_str().unwrap();
    assert!(name.contains('*'), "personal data is masked: {name}");

    rec.set_default(Reply::status(200));
    let out = output(cli(&["dead-letters", "replay", &id])).await;
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("replayed (ids kept, attempts reset) 1"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = output(poll_command(&config)).await;
    assert!(out.status.success());
    let got = rec.got();
    assert_eq!(
        got.last().unwrap().id(),
        id,
        "delivered with its original id"
    );

    let out = output(cli(&["dead-letters", "replay", "no-such-id"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no dead letter has the event id no-such-id")
    );
    let out = output(cli(&["dead-letters", "purge", "--older-than", "0s"])).await;
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("purged (older than 0s) 0"));
}

#[tokio::test]
async fn new_dead_letters_and_failing_polls_are_alerted_once_an_hour() {
    use poomgo_notifier::delivery::alerts::{PollingHealth, check};
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(400).body("bad")).await;
    let chat = Recorder::start(Reply::status(200).body("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(
        &sim,
        dir.path(),
        &format!(
            "[delivery]\nalerts_to = \"chat\"\n{}[[targets]]\nname = \"chat\"\nkind = \"slack\"\nurl = \"{}/services/T/B/X\"\nevents = [\"invoice.canceled\"]\n",
            webhook(&rec, ""),
            chat.uri()
        ),
    );
    baseline_then(&sim, &app, 3).await;
    deliver_all(&app).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let failing = PollingHealth {
        failing: Some("the Poomgo scan stopped at page 1: HTTP 500".into()),
    };
    let sent = check(
        &app.store,
        &app.sender,
        &app.targets,
        &app.config.delivery,
        &failing,
        now,
    )
    .await
    .unwrap();
    assert_eq!(sent.len(), 2, "{sent:?}");
    assert!(
        sent.iter()
            .any(|t| t.contains("`erp`에 새 실패 보관(dead letter) 3건")),
        "{sent:?}"
    );
    assert!(sent.iter().any(|t| t.contains("HTTP 500")), "{sent:?}");
    // Within the hour: nothing again, even with a new dead letter.
    toggle_printed(&sim, 1);
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    deliver_all(&app).await.unwrap();
    let again = check(
        &app.store,
        &app.sender,
        &app.targets,
        &app.config.delivery,
        &failing,
        now + 60_000,
    )
    .await
    .unwrap();
    assert!(again.is_empty(), "{again:?}");
    // An hour on, the news is the new dead letter only.
    let later = check(
        &app.store,
        &app.sender,
        &app.targets,
        &app.config.delivery,
        &PollingHealth::default(),
        now + 3_700_000,
    )
    .await
    .unwrap();
    assert_eq!(later.len(), 1);
    assert!(
        later[0].contains("새 실패 보관(dead letter) 1건 (모두 4건)"),
        "{later:?}"
    );
    assert_eq!(chat.got().len(), 3);
}

#[tokio::test]
async fn check_send_test_sends_one_marked_message_to_each_target() {
    let rec = Recorder::start(Reply::status(200).body("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[poomgo]\napi_key = \"k\"\nbase_url = \"http://127.0.0.1:9\"\n[[targets]]\nname = \"cs\"\nkind = \"slack\"\nurl = \"{0}/services/T/B/X\"\n{1}",
            rec.uri(),
            webhook(&rec, "")
        ),
    )
    .unwrap();
    let mut c = std::process::Command::new(BIN);
    c.args(["check", "--send-test", "--config"]).arg(&config);
    let out = output(c).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains("ok   target cs: test message delivered"),
        "{stdout}"
    );
    assert!(
        stdout.contains("ok   target erp: test message delivered (webhook.test test-"),
        "{stdout}"
    );
    let got = rec.got();
    assert_eq!(got.len(), 2);
    let slack = got
        .iter()
        .find(|g| g.path == "/services/T/B/X")
        .unwrap()
        .json();
    assert!(
        slack["text"]
            .as_str()
            .unwrap()
            .contains("🧪 poomgo-notifier 테스트 메시지")
    );
    let hook = got.iter().find(|g| g.path == "/erp").unwrap();
    assert_eq!(hook.json()["type"], "webhook.test");
    let key =
        poomgo_notifier::delivery::targets::webhook::signature::SigningKey::parse(SECRET).unwrap();
    let ts: i64 = hook.headers["webhook-timestamp"].parse().unwrap();
    assert_eq!(
        hook.headers["webhook-signature"],
        key.sign(hook.id(), ts, &hook.body)
    );
}

#[tokio::test]
async fn an_exceptions_channel_gets_only_exception_categories_and_jandi_gets_its_format() {
    let sim = simulator(300).await;
    let rec = Recorder::start(Reply::status(200).body("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(
        &sim,
        dir.path(),
        &format!(
            r#"
[[targets]]
name = "cs-exceptions"
kind = "slack"
url = "{0}/services/EXC"
categories = ["exception", "failed_attempt", "returned"]
[[targets]]
name = "cs-jandi"
kind = "jandi"
url = "{0}/jandi"
"#,
            rec.uri()
        ),
    );
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    // Two parcels: one fails a delivery attempt, one is delivered.
    let (failed, delivered) = sim.with_merchant(|m| {
        let mut open = m
            .orders
            .iter_mut()
            .flat_map(|o| o.invoices.iter_mut())
            .filter(|i| i.closed && !i.is_final());
        let a = open.next().unwrap();
        a.cargo = Some(poomgo_notifier::sim::merchant::STATUS_ATTEMPTFAIL);
        let a = a.id;
        let b = open.next().unwrap();
        b.cargo = Some(poomgo_notifier::sim::merchant::STATUS_DELIVERED);
        (a, b.id)
    });
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    deliver_all(&app).await.unwrap();
    let got = rec.got();
    let exceptions: Vec<_> = got.iter().filter(|g| g.path == "/services/EXC").collect();
    assert_eq!(exceptions.len(), 1, "only the failed attempt");
    let text = exceptions[0].json()["text"].as_str().unwrap().to_owned();
    assert!(text.contains("배달 실패"), "{text}");
    let jandi: Vec<_> = got.iter().filter(|g| g.path == "/jandi").collect();
    assert_eq!(jandi.len(), 2);
    for g in &jandi {
        assert_eq!(g.headers["accept"], "application/vnd.tosslab.jandi-v2+json");
        assert_eq!(g.headers["content-type"], "application/json");
        let v = g.json();
        assert!(v["connectColor"].as_str().unwrap().starts_with('#'));
        assert!(v["connectInfo"].as_array().unwrap().len() >= 3);
    }
    let bodies: Vec<String> = jandi
        .iter()
        .map(|g| g.json()["body"].as_str().unwrap().to_owned())
        .collect();
    assert!(bodies.iter().any(|b| b.contains("배송완료")), "{bodies:?}");
    assert!(
        exceptions[0]
            .json()
            .to_string()
            .contains(&format!("-{failed}-1"))
    );
    assert!(
        jandi
            .iter()
            .any(|g| g.json().to_string().contains(&format!("-{delivered}-1")))
    );
}

#[tokio::test]
async fn a_template_that_fails_is_a_dead_letter_and_the_queue_moves_on() {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    // A webhook template that only works for status changes (strict mode:
    // `changes.[0].to` of an assignment is null, `labels.nope` never exists).
    let templates = dir.path().join("templates/webhook");
    std::fs::create_dir_all(&templates).unwrap();
    std::fs::write(
        templates.join("strict.hbs"),
        r#"{"id": "{{id}}"{{#if (eq type "invoice.canceled")}}, "x": "{{labels.nope}}"{{/if}}}"#,
    )
    .unwrap();
    let app = pipeline_app(
        &sim,
        dir.path(),
        &format!(
            "[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\ntemplate = \"webhook/strict\"\n",
            rec.uri()
        ),
    );
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    // One cancellation (its render fails), and other changes after it.
    let canceled = sim.with_merchant(|m| {
        let id = m
            .orders
            .iter()
            .flat_map(|o| &o.invoices)
            .find(|i| !i.closed)
            .unwrap()
            .id;
        assert!(m.cancel(id));
        id
    });
    toggle_printed(&sim, 5);
    poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    let report = deliver_all(&app).await.unwrap();
    let q = app.store.queue("erp").unwrap();
    let dead = q.dead(10).unwrap();
    assert_eq!(dead.len(), 1, "{report:?}");
    assert_eq!(dead[0].1.entry.invoice_id, canceled.to_string());
    assert_eq!(
        dead[0].1.reason.kind,
        poomgo_notifier::delivery::queue::ErrorKind::Render
    );
    assert!(
        dead[0].1.reason.detail.contains("webhook/strict"),
        "{:?}",
        dead[0].1.reason
    );
    assert_eq!(q.pending_len(), 0);
    assert!(rec.accepted().len() >= 5, "the other events went out");
}
