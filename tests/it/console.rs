//! The operator console and its JSON API on the real daemon: search by
//! order code and tracking number, timelines checked against what the
//! receivers got, replay with the original `webhook-id`, and the access
//! rules (token, cookie, CSRF, cross-site, DNS rebinding, non-loopback).

use std::time::Duration;

use serde_json::Value;

use poomgo_notifier::sim::AdvanceOptions;

use crate::daemon::{API_KEY, Daemon, config_with, sim};
use crate::support::{BIN, Recorder, Reply, eventually, output};

pub(crate) const TOKEN: &str = "c0nsole-T0ken-xyz-0123456789abcdef";

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A daemon with two webhook targets: `erp` (answering 400: dead letters)
/// and `wms` (200), behind `token` when given.
pub(crate) async fn console_daemon(
    dir: &std::path::Path,
    token: Option<&str>,
) -> (Daemon, poomgo_notifier::sim::Simulator, Recorder, Recorder) {
    let sim = sim(60).await;
    let erp = Recorder::start(Reply::status(400).body("order unknown to the ERP")).await;
    let wms = Recorder::start(Reply::status(200)).await;
    let token_line = if token.is_some() {
        "token = \"${ADMIN_TOKEN}\""
    } else {
        ""
    };
    let config = config_with(
        &sim,
        dir,
        &format!(
            r#"
[admin]
listen = "127.0.0.1:{port}"
{token_line}
[[targets]]
name = "erp"
kind = "webhook"
url = "{erp}/erp"
[[targets]]
name = "wms"
kind = "webhook"
url = "{wms}/wms"
include_personal_data = true
"#,
            port = free_port(),
            erp = erp.uri(),
            wms = wms.uri(),
        ),
    );
    let mut env = vec![("POOMGO_API_KEY", API_KEY)];
    if let Some(t) = token {
        env.push(("ADMIN_TOKEN", t));
    }
    let daemon = Daemon::start_with(&config, &env).await;
    daemon.wait_healthy("the baseline").await;
    // Two rounds of changes, polled apart, so timelines have several events.
    for round in 1..=2 {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.6,
            new_orders: 0,
        });
        let before = wms.got().len();
        eventually(
            "events at both receivers",
            Duration::from_secs(20),
            || async { !erp.got().is_empty() && wms.got().len() > before },
        )
        .await;
        if round == 1 {
            // The poll that found this round has ended before the next
            // round of changes, so the two are apart in the timelines.
            let seen = last_poll(&daemon).await;
            eventually("the next poll", Duration::from_secs(20), || async {
                last_poll(&daemon).await != seen
            })
            .await;
        }
    }
    (daemon, sim, erp, wms)
}

/// The last successful poll `/healthz` reports.
pub(crate) async fn last_poll(daemon: &Daemon) -> Value {
    let (_, health) = daemon.get("/healthz").await;
    serde_json::from_str::<Value>(&health).unwrap()["last_successful_poll"].clone()
}

/// Whether every pending entry has had its first attempt (the API's outbox,
/// with `token` when the daemon has one).
pub(crate) async fn first_attempts_made(daemon: &Daemon, token: Option<&str>) -> bool {
    let mut request = http().get(format!("{}/api/outbox", daemon.admin));
    if let Some(t) = token {
        request = request.bearer_auth(t);
    }
    let pending: Value = request.send().await.unwrap().json().await.unwrap();
    pending
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["attempts"].as_u64() > Some(0))
}

/// The CSRF token a console page's forms carry.
fn csrf_of(html: &str) -> String {
    html.split("name=\"csrf\" value=\"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap_or_else(|| panic!("no CSRF field in {html}"))
        .to_owned()
}

/// Signs in to the console; returns the `Cookie` header value.
async fn sign_in(daemon: &Daemon) -> String {
    let r = http()
        .post(format!("{}/login", daemon.admin))
        .form(&[("token", TOKEN), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// GET a console page with the session cookie: (status, body).
async fn page(daemon: &Daemon, session: &str, path: &str) -> (u16, String) {
    let r = http()
        .get(format!("{}{path}", daemon.admin))
        .header("Cookie", session)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

/// POST a console form with the session cookie; returns the status.
async fn submit(daemon: &Daemon, session: &str, path: &str, form: &[(&str, &str)]) -> u16 {
    http()
        .post(format!("{}{path}", daemon.admin))
        .header("Cookie", session)
        .form(form)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn api(daemon: &Daemon, path: &str) -> Value {
    let r = http()
        .get(format!("{}{path}", daemon.admin))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200, "{path}");
    r.json().await.unwrap()
}

/// The deliveries of `event_id` in a timeline, by target.
fn delivery<'a>(invoice: &'a Value, event_id: &str, target: &str) -> &'a Value {
    let event = invoice["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_id"] == event_id)
        .unwrap_or_else(|| panic!("{event_id} is not in the timeline: {invoice:#}"));
    event["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["target"] == target)
        .unwrap_or_else(|| panic!("no delivery to {target}: {event:#}"))
}

#[tokio::test]
async fn the_api_answers_what_happened_to_an_order_and_replays_with_the_original_id() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _sim, erp, wms) = console_daemon(dir.path(), Some(TOKEN)).await;
    // Every event's first attempt has landed at both receivers.
    eventually("first attempts", Duration::from_secs(20), || {
        first_attempts_made(&daemon, Some(TOKEN))
    })
    .await;

    // An event the ERP refused (a dead letter now).
    let refused = erp.got()[0].clone();
    let event = refused.json();
    let event_id = refused.id().to_owned();
    let invoice_id = event["invoice"]["invoiceId"].as_str().unwrap().to_owned();
    let order_code = event["order"]["orderCode"].as_str().unwrap().to_owned();

    // Without the token: 401, for reads too.
    let r = http()
        .get(format!("{}/api/search?q={order_code}", daemon.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // By order code.
    let found = api(&daemon, &format!("/api/search?q={order_code}")).await;
    let results = found["results"].as_array().unwrap();
    let hit = results
        .iter()
        .find(|r| r["invoice_id"] == invoice_id.as_str())
        .unwrap_or_else(|| panic!("{invoice_id} not found by {order_code}: {found:#}"));
    assert_eq!(hit["matched"], "order_code");

    // By tracking number, typed with dashes as a customer reads it out.
    if let Some(code) = event["invoice"]["invoiceCode"].as_str() {
        let dashed = format!("{}-{}", &code[..4], &code[4..]);
        let found = api(&daemon, &format!("/api/search?q={dashed}")).await;
        assert!(
            found["results"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["invoice_id"] == invoice_id.as_str() && r["matched"] == "invoice_code"),
            "{found:#}"
        );
    }

    // The timeline against what the receivers got: every event the WMS
    // accepted for this invoice is there, delivered; the ERP's, dead with
    // the status and body it answered.
    let invoice = api(&daemon, &format!("/api/invoices/{invoice_id}")).await;
    let wms_ids: Vec<String> = wms
        .got()
        .iter()
        .filter(|g| g.json()["invoice"]["invoiceId"] == invoice_id.as_str())
        .map(|g| g.id().to_owned())
        .collect();
    assert!(!wms_ids.is_empty());
    let timeline_ids: Vec<&str> = invoice["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(timeline_ids, wms_ids, "the same events, in the same order");
    for id in &wms_ids {
        assert_eq!(delivery(&invoice, id, "wms")["state"], "delivered");
        let erp_side = delivery(&invoice, id, "erp");
        assert_eq!(erp_side["state"], "dead", "{erp_side:#}");
        assert_eq!(erp_side["replayable"], true);
        let attempt = &erp_side["attempts"][0];
        assert_eq!(attempt["status"], 400);
        assert!(
            attempt["detail"]
                .as_str()
                .unwrap()
                .contains("order unknown to the ERP"),
            "{attempt:#}"
        );
    }
    let first = &invoice["events"][0];
    assert!(
        !first["type_label"].as_str().unwrap().is_empty()
            && !first["summary"].as_str().unwrap().is_empty(),
        "Korean wording: {first:#}"
    );
    // The WMS opted in to personal data: the history shows it masked only.
    let history_text = invoice.to_string();
    for g in wms.got() {
        if let Some(mobile) = g.json()["receiver"]["mobile"].as_str() {
            assert!(!history_text.contains(mobile), "a raw phone in the history");
        }
    }

    // Replay: refused cross-site (even with the token) and without the
    // token; with it, the ERP gets the event under its original id.
    let replay = format!("{}/api/dead-letters/{event_id}/replay", daemon.admin);
    let r = http()
        .post(&replay)
        .bearer_auth(TOKEN)
        .header("Origin", "https://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = http()
        .post(&replay)
        .header("Sec-Fetch-Site", "cross-site")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let r = http().post(&replay).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(
        erp.accepted().is_empty(),
        "nothing was replayed by the refused calls"
    );
    erp.set_default(Reply::status(200));
    let r = http()
        .post(&replay)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    eventually("the replay delivered", Duration::from_secs(10), || async {
        erp.accepted().iter().any(|g| g.id() == event_id)
    })
    .await;
    let again = erp
        .accepted()
        .into_iter()
        .find(|g| g.id() == event_id)
        .unwrap();
    assert_eq!(again.body, refused.body, "the same event, byte for byte");
    eventually(
        "the timeline shows the replay",
        Duration::from_secs(5),
        || async {
            let invoice = api(&daemon, &format!("/api/invoices/{invoice_id}")).await;
            let erp_side = delivery(&invoice, &event_id, "erp");
            let outcomes: Vec<&str> = erp_side["attempts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| a["outcome"].as_str().unwrap())
                .collect();
            erp_side["state"] == "delivered" && outcomes == ["dead", "replayed", "delivered"]
        },
    )
    .await;

    // The overview: polls, targets, the upstream.
    let status = api(&daemon, "/api/status").await;
    assert_eq!(status["upstream"]["key_rejected"], false);
    assert!(
        !status["polls"].as_array().unwrap().is_empty(),
        "{status:#}"
    );
    let targets: Vec<&str> = status["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["erp", "wms"]);
    assert!(status["history_events"].as_u64().unwrap() >= wms_ids.len() as u64);

    // Lists can be limited (a long outage can leave many thousands).
    let all = api(&daemon, "/api/dead-letters").await;
    let two = api(&daemon, "/api/dead-letters?limit=2").await;
    assert!(all.as_array().unwrap().len() > 2, "{all}");
    assert_eq!(two.as_array().unwrap()[..], all.as_array().unwrap()[..2]);

    // Monitors need no token.
    assert_eq!(daemon.get("/healthz").await.0, 200);
    assert_eq!(daemon.get("/metrics").await.0, 200);

    let (code, log) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
    assert!(!log.contains(TOKEN), "the token is never logged");
}

#[tokio::test]
async fn the_console_signs_in_with_a_cookie_and_its_forms_need_the_csrf_token() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _sim, erp, _wms) = console_daemon(dir.path(), Some(TOKEN)).await;
    let refused = erp.got()[0].clone();
    let order_code = refused.json()["order"]["orderCode"]
        .as_str()
        .unwrap()
        .to_owned();
    let event_id = refused.id().to_owned();

    // No session: to the sign-in page, coming back afterwards.
    let r = http()
        .get(format!("{}/search?q={order_code}", daemon.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let to = r.headers()["location"].to_str().unwrap().to_owned();
    assert!(
        to.starts_with("/login?next=%2F") || to.starts_with("/login?next=/"),
        "{to}"
    );

    // A wrong token: 401, no cookie.
    let r = http()
        .post(format!("{}/login", daemon.admin))
        .form(&[("token", "nope"), ("next", "/")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("set-cookie").is_none());

    // The right one: an HttpOnly, SameSite=Strict cookie that is not the token.
    let r = http()
        .post(format!("{}/login", daemon.admin))
        .form(&[("token", TOKEN), ("next", "/search")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    assert!(!cookie.contains(TOKEN));
    let session = cookie.split(';').next().unwrap().to_owned();

    let (status, html) = page(&daemon, &session, &format!("/search?q={order_code}")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains(&order_code) && html.contains(&event_id),
        "{html}"
    );
    assert!(!html.contains(TOKEN), "the token is never in a page");
    let (status, overview) = page(&daemon, &session, "/").await;
    assert_eq!(status, 200);
    assert!(overview.contains("erp") && overview.contains("Last polls"));
    let (status, dead) = page(&daemon, &session, "/dead-letters").await;
    assert_eq!(status, 200);
    assert!(dead.contains(&event_id));
    let (status, preview) = page(
        &daemon,
        &session,
        "/preview?target=wms&type=invoice.canceled",
    )
    .await;
    assert_eq!(status, 200);
    assert!(preview.contains("invoice.canceled"));

    // A form without the CSRF token, or from another site, changes nothing.
    let replay = format!("{}/dead-letters/{event_id}/replay", daemon.admin);
    let r = http()
        .post(&replay)
        .header("Cookie", &session)
        .form(&[("back", "/dead-letters")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let csrf = csrf_of(&dead);
    let r = http()
        .post(&replay)
        .header("Cookie", &session)
        .header("Origin", "https://evil.example")
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    // Without the session cookie, even with the CSRF token: to sign-in.
    let r = http()
        .post(&replay)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(erp.accepted().is_empty());

    // With both: replayed, and back to the page saying so.
    erp.set_default(Reply::status(200));
    let r = http()
        .post(&replay)
        .header("Cookie", &session)
        .header("Origin", &daemon.admin)
        .form(&[("csrf", csrf.as_str()), ("back", "/dead-letters")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 303);
    assert!(
        r.headers()["location"]
            .to_str()
            .unwrap()
            .starts_with("/dead-letters?done=replayed"),
    );
    eventually("the replay delivered", Duration::from_secs(10), || async {
        erp.accepted().iter().any(|g| g.id() == event_id)
    })
    .await;
    let (code, _) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn without_a_token_the_console_answers_only_to_loopback_names() {
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _sim, _erp, _wms) = console_daemon(dir.path(), None).await;
    let r = http()
        .get(format!("{}/api/status", daemon.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    // A DNS name pointed at 127.0.0.1 by another site (DNS rebinding).
    for path in ["/api/status", "/"] {
        let r = http()
            .get(format!("{}{path}", daemon.admin))
            .header("Host", "rebind.evil.example")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 403, "{path}");
    }
    // A cross-site POST, even to loopback without a token.
    let r = http()
        .post(format!("{}/api/dead-letters/replay", daemon.admin))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let (code, _) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn listening_off_loopback_without_a_token_is_refused_at_start() {
    let sim = sim(5).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        &sim,
        dir.path(),
        &format!("[admin]\nlisten = \"0.0.0.0:{}\"\n", free_port()),
    );
    let mut run = std::process::Command::new(BIN);
    run.args(["run", "--config"])
        .arg(&config)
        .env("POOMGO_API_KEY", API_KEY);
    let out = output(run).await;
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("admin.listen") && stderr.contains("admin.token"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_history_is_kept_for_history_days_and_pruned_with_the_rest() {
    use poomgo_notifier::poll::{App, PollOptions, poll};
    let sim = crate::support::simulator(40).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let targets = format!(
        "[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\n",
        rec.uri()
    );
    let text = crate::support::pipeline_toml(&sim, dir.path(), &targets)
        .replace("cache_mb = 8", "cache_mb = 8\nhistory_days = 2");
    let config =
        poomgo_notifier::config::Config::parse(&text, "t.toml", dir.path().into(), &|_| None)
            .unwrap();
    let app = App::new(config).unwrap();
    let now = chrono::Utc::now();
    poll(&app, PollOptions::default(), now).await.unwrap();
    assert!(
        app.store.history().is_empty(),
        "a silent baseline has no events"
    );
    sim.advance(AdvanceOptions {
        steps: 1,
        fraction: 0.5,
        new_orders: 0,
    });
    let report = poll(&app, PollOptions::default(), now).await.unwrap();
    assert!(report.events > 0);
    assert_eq!(app.store.history().len() as u64, report.events);
    // A day on: still there. Three days on: gone, with its index.
    poll(
        &app,
        PollOptions::default(),
        now + chrono::Duration::days(1),
    )
    .await
    .unwrap();
    assert_eq!(app.store.history().len() as u64, report.events);
    poll(
        &app,
        PollOptions::default(),
        now + chrono::Duration::days(3),
    )
    .await
    .unwrap();
    assert!(app.store.history().is_empty());
    assert_eq!(
        app.store.recent_polls().unwrap().len(),
        4,
        "every poll is listed for the overview"
    );
}

#[tokio::test]
async fn the_console_forms_retry_replay_all_and_purge_and_preview_shows_block_kit() {
    let sim = sim(60).await;
    let erp = Recorder::start(Reply::status(400)).await;
    let wms = Recorder::start(Reply::status(400)).await;
    let cs = Recorder::start(Reply::status(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        &sim,
        dir.path(),
        &format!(
            r#"
[admin]
listen = "127.0.0.1:{port}"
token = "${{ADMIN_TOKEN}}"
[[targets]]
name = "erp"
kind = "webhook"
url = "{erp}/erp"
[[targets]]
name = "wms"
kind = "webhook"
url = "{wms}/wms"
[[targets]]
name = "cs"
kind = "slack"
url = "{cs}/services/T0/B0/X"
retry_schedule = ["1h"]
"#,
            port = free_port(),
            erp = erp.uri(),
            wms = wms.uri(),
            cs = cs.uri(),
        ),
    );
    let daemon = Daemon::start_with(
        &config,
        &[("POOMGO_API_KEY", API_KEY), ("ADMIN_TOKEN", TOKEN)],
    )
    .await;
    daemon.wait_healthy("the baseline").await;
    sim.advance(AdvanceOptions {
        steps: 1,
        fraction: 0.5,
        new_orders: 0,
    });
    eventually(
        "a first attempt everywhere",
        Duration::from_secs(20),
        || async { !erp.got().is_empty() && !wms.got().is_empty() && !cs.got().is_empty() },
    )
    .await;
    eventually("every first attempt", Duration::from_secs(20), || {
        first_attempts_made(&daemon, Some(TOKEN))
    })
    .await;
    let session = sign_in(&daemon).await;

    // Outbox: the Slack target's entries wait an hour; "retry now" sends them.
    let (status, outbox) = page(&daemon, &session, "/outbox?target=cs").await;
    assert_eq!(status, 200);
    assert!(
        outbox.contains("Retry now") && outbox.contains("HTTP 503"),
        "{outbox}"
    );
    let csrf = csrf_of(&outbox);
    cs.set_default(Reply::status(200));
    let form = [
        ("csrf", csrf.as_str()),
        ("target", "cs"),
        ("back", "/outbox"),
    ];
    assert_eq!(submit(&daemon, &session, "/outbox/retry", &form).await, 303);
    eventually("retried now", Duration::from_secs(10), || async {
        !cs.accepted().is_empty()
    })
    .await;

    // Preview of the Slack target: Block Kit JSON and the readable text.
    let (_, preview) = page(
        &daemon,
        &session,
        "/preview?target=cs&type=invoice.status_changed",
    )
    .await;
    assert!(
        preview.contains("Block Kit JSON") && preview.contains("&quot;blocks&quot;"),
        "{preview}"
    );
    assert!(preview.contains("As a person reads it"), "{preview}");

    // Replay all of one target; purge the other's.
    let dead = |target: &'static str| {
        let admin = daemon.admin.clone();
        async move {
            http()
                .get(format!("{admin}/api/dead-letters?target={target}"))
                .bearer_auth(TOKEN)
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
                .as_array()
                .unwrap()
                .len()
        }
    };
    let erp_dead = dead("erp").await;
    let wms_dead = dead("wms").await;
    assert!(erp_dead > 0 && wms_dead > 0);
    erp.set_default(Reply::status(200));
    let form = [
        ("csrf", csrf.as_str()),
        ("target", "erp"),
        ("back", "/dead-letters"),
    ];
    assert_eq!(
        submit(&daemon, &session, "/dead-letters/replay", &form).await,
        303
    );
    eventually(
        "every ERP dead letter replayed",
        Duration::from_secs(10),
        || async { erp.accepted().len() == erp_dead },
    )
    .await;
    let form = [
        ("csrf", csrf.as_str()),
        ("target", "wms"),
        ("older_than", "0s"),
        ("back", "/dead-letters"),
    ];
    assert_eq!(
        submit(&daemon, &session, "/dead-letters/purge", &form).await,
        303
    );
    assert_eq!((dead("erp").await, dead("wms").await), (0, 0));
    // The purge is in the timeline.
    let purged_invoice = wms.got()[0].json()["invoice"]["invoiceId"]
        .as_str()
        .unwrap()
        .to_owned();
    let invoice = api(&daemon, &format!("/api/invoices/{purged_invoice}")).await;
    assert!(invoice.to_string().contains("\"purged\""), "{invoice:#}");
    assert_eq!(wms.accepted().len(), 0, "a purge sends nothing");

    let (code, _) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
}
