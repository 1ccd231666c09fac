//! Private by default, and a store that cannot open: https unless loopback,
//! a store only its owner can read, secrets in plain text flagged by `check`,
//! signatures during secret rotation, a damaged store explained and rebuilt,
//! and a full disk that loses nothing committed.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use poomgo_notifier::config::Config;
use poomgo_notifier::sim::AdvanceOptions;
use serde_json::Value;

use crate::support::{
    BIN, Recorder, Reply, SECRET, changes, output, output_ok, pipeline_toml, poll_command,
    simulator,
};

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, "test.toml", std::env::temp_dir(), &|_| None).map_err(|e| e.to_string())
}

#[test]
fn plain_http_to_another_host_is_refused_naming_the_key() {
    let base = "[poomgo]\napi_key = \"k\"\n";
    let e = parse(&format!(
        "{base}[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"http://erp.example.com/h?token=SECRET123\"\n"
    ))
    .unwrap_err();
    assert!(
        e.contains("`targets[0].url`") && e.contains("https") && !e.contains("SECRET123"),
        "{e}"
    );
    assert!(
        parse(&format!(
            "{base}[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"http://erp.example.com/h\"\nallow_insecure = true\n"
        ))
        .is_ok()
    );
    for loopback in [
        "http://127.0.0.1:9/h",
        "http://localhost/h",
        "http://[::1]:8080/h",
    ] {
        assert!(
            parse(&format!(
                "{base}[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{loopback}\"\n"
            ))
            .is_ok(),
            "{loopback}"
        );
    }
    let e = parse("[poomgo]\napi_key = \"k\"\nbase_url = \"http://api.poomgo.com\"\n").unwrap_err();
    assert!(
        e.contains("`poomgo.base_url`") && e.contains("https"),
        "{e}"
    );
}

#[tokio::test]
async fn the_store_is_private_and_a_loose_one_is_tightened_with_a_warning() {
    let sim = simulator(50).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, pipeline_toml(&sim, dir.path(), "")).unwrap();
    output_ok(poll_command(&config)).await;
    let store = dir.path().join("store");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&store), 0o700);
    for entry in std::fs::read_dir(&store).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            assert_eq!(mode(&p), 0o600, "{}", p.display());
        }
    }
    std::fs::set_permissions(&store, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = output_ok(poll_command(&config)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("the store could be read by other users") && stderr.contains("755"),
        "{stderr}"
    );
    assert_eq!(mode(&store), 0o700);
}

#[tokio::test]
async fn check_flags_secrets_written_in_the_config_by_key_never_by_value() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[poomgo]
api_key = "pk-LITERAL-9931"
[admin]
token = "${{ADMIN_TOKEN}}"
[[targets]]
name = "cs"
kind = "slack"
url = "https://hooks.slack.com/services/T1/B2/TOKENLITERAL"
[[targets]]
name = "erp"
kind = "webhook"
url = "https://erp.example.com/h"
secret = "{SECRET}"
"#
        ),
    )
    .unwrap();
    let mut c = Command::new(BIN);
    c.args(["check", "--config"])
        .arg(&config)
        .env("ADMIN_TOKEN", "t-0123456789abcdef0123456789abcdef");
    let out = output(c).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    for key in ["poomgo.api_key", "targets[0].url", "targets[1].secret"] {
        assert!(stdout.contains(&format!("warn `{key}`")), "{key}: {stdout}");
    }
    assert!(!stdout.contains("warn `admin.token`"), "{stdout}");
    for value in [
        "pk-LITERAL-9931",
        "TOKENLITERAL",
        SECRET.trim_start_matches("whsec_"),
    ] {
        assert!(!stdout.contains(value), "a value was quoted: {stdout}");
    }
    assert!(out.status.success(), "warnings do not fail check: {stdout}");
}

#[tokio::test]
async fn during_rotation_both_secrets_sign_and_each_verifies() {
    let sim = simulator(60).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let old = SECRET;
    let new = "whsec_c2Vjb25kLXNlY3JldC1mb3Itcm90YXRpb24tMTIzNDU2Nzg=";
    let dir = tempfile::tempdir().unwrap();
    let app = crate::support::pipeline_app(
        &sim,
        dir.path(),
        &format!(
            "[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\nsecret = \"{old} {new}\"\n",
            rec.uri()
        ),
    );
    poomgo_notifier::poll::poll(&app, Default::default(), chrono::Utc::now())
        .await
        .unwrap();
    sim.advance(AdvanceOptions {
        steps: 1,
        fraction: 0.3,
        new_orders: 0,
    });
    poomgo_notifier::poll::poll(&app, Default::default(), chrono::Utc::now())
        .await
        .unwrap();
    poomgo_notifier::poll::deliver_all(&app).await.unwrap();
    let got = rec.got();
    assert!(!got.is_empty());
    use poomgo_notifier::delivery::targets::webhook::signature::SigningKey;
    for g in &got {
        let sigs: Vec<&str> = g.headers["webhook-signature"].split(' ').collect();
        assert_eq!(sigs.len(), 2);
        let ts: i64 = g.headers["webhook-timestamp"].parse().unwrap();
        for secret in [old, new] {
            let expected = SigningKey::parse(secret).unwrap().sign(g.id(), ts, &g.body);
            assert!(
                sigs.contains(&expected.as_str()),
                "{secret} does not verify"
            );
        }
    }
}

#[tokio::test]
async fn a_damaged_store_is_explained_and_rebuilt_without_reusing_ids() {
    let sim = simulator(100).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        pipeline_toml(
            &sim,
            dir.path(),
            &format!(
                "[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\n",
                rec.uri()
            ),
        ),
    )
    .unwrap();
    output_ok(poll_command(&config)).await;
    changes(&sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.3,
            new_orders: 0,
        });
    });
    output_ok(poll_command(&config)).await;
    let before: Vec<String> = rec.got().iter().map(|g| g.id().to_owned()).collect();
    assert!(!before.is_empty());

    // Garble the store: every byte of its files after the first page.
    let store = dir.path().join("store");
    for entry in std::fs::read_dir(&store).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let mut bytes = std::fs::read(&p).unwrap();
            for b in bytes.iter_mut().skip(16) {
                *b = b.wrapping_mul(31).wrapping_add(7);
            }
            std::fs::write(&p, bytes).unwrap();
        }
    }
    let out = output(poll_command(&config)).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&store.display().to_string())
            && stderr.contains("poomgo-notifier store rebuild"),
        "says where and what to do: {stderr}"
    );

    let mut rebuild = Command::new(BIN);
    rebuild.args(["store", "rebuild", "--config"]).arg(&config);
    let out = output_ok(rebuild).await;
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("nothing was deleted"), "{said}");
    let aside: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("store.damaged-"))
        .collect();
    assert_eq!(aside.len(), 1, "the damaged store is kept aside");

    // A silent baseline, then new changes with ids never seen before.
    let out = output_ok(poll_command(&config)).await;
    assert!(String::from_utf8_lossy(&out.stdout).contains("(baseline: recorded silently)"));
    assert_eq!(rec.got().len(), before.len(), "the rebuild floods no one");
    changes(&sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.3,
            new_orders: 0,
        });
    });
    output_ok(poll_command(&config)).await;
    let after: Vec<String> = rec.got()[before.len()..]
        .iter()
        .map(|g| g.id().to_owned())
        .collect();
    assert!(!after.is_empty());
    assert!(after.iter().all(|id| !before.contains(id)), "no reused id");
}

/// A full disk during a commit: nothing committed is lost, and once there
/// is room again the next poll catches up. Needs root to mount a small
/// tmpfs; says so and passes vacuously elsewhere.
#[tokio::test]
async fn a_full_disk_loses_nothing_committed() {
    let sim = simulator(400).await;
    let rec = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let mount = dir.path().join("small");
    std::fs::create_dir_all(&mount).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=24m", "tmpfs"])
        .arg(&mount)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "skipped: cannot mount a tmpfs here (needs root); the full-disk case is not exercised"
        );
        return;
    }
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mount.clone());
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        pipeline_toml(
            &sim,
            &mount,
            &format!(
                "[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\n",
                rec.uri()
            ),
        )
        .replace("cache_mb = 8", "cache_mb = 8\nmin_free_mb = 4"),
    )
    .unwrap();
    output_ok(poll_command(&config)).await;
    let first = changes(&sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.2,
            new_orders: 0,
        });
    });
    output_ok(poll_command(&config)).await;
    // Fill the disk, then change more and poll: it must fail, not lie.
    let filler = mount.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", "count=64"])
        .arg(format!("of={}", filler.display()))
        .output();
    let second = changes(&sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.3,
            new_orders: 0,
        });
    });
    let out = output(poll_command(&config)).await;
    let full = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{full}");
    assert!(
        full.contains("is nearly full") && full.contains("nothing was written"),
        "{full}"
    );
    std::fs::remove_file(&filler).unwrap();
    // Room again: the next poll catches up with everything.
    let out = output(poll_command(&config)).await;
    let again = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{again}");
    let got: std::collections::HashSet<String> = rec
        .got()
        .iter()
        .map(|g| crate::support::without_generation(g.id()).to_owned())
        .collect();
    for id in first.iter().chain(&second) {
        let invoice = id.split('-').next().unwrap();
        assert!(
            got.iter().any(|g| g.starts_with(&format!("{invoice}-"))),
            "invoice {invoice}'s change was lost (full disk said: {full}; then: {again})"
        );
    }
}

#[tokio::test]
async fn no_secret_or_personal_value_reaches_logs_metrics_or_health() {
    const KEY: &str = "pk-DISTINCT-KEY-4471";
    const TOKEN: &str = "adm-DISTINCT-TOKEN-8830-0123456789abc";
    const SLACK: &str = "/services/T9SECRETTEAM/B9SECRETBOT/XOXSECRETTOKEN77";
    let sim = poomgo_notifier::sim::Simulator::start(
        crate::support::LOOPBACK,
        poomgo_notifier::sim::SimOptions {
            orders: 200,
            api_key: KEY.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Distinctive personal values on every order.
    let personal = [
        "황보비밀",
        "010-7777-4321",
        "비밀특별시 숨김구 가짜로 77",
        "02-5555-8765",
    ];
    sim.with_merchant(|m| {
        for o in &mut m.orders {
            for p in [&mut o.receiver, &mut o.customer] {
                p.name = Some(personal[0].into());
                p.mobile = Some(personal[1].into());
                p.address = Some(personal[2].into());
                p.phone = Some(personal[3].into());
            }
        }
    });
    let erp = Recorder::start(Reply::status(200)).await;
    erp.fail_ratio(0.5);
    let chat = Recorder::start(Reply::status(200).body("ok")).await;
    // Receivers that echo the body they got (personal data included), as
    // frameworks do in validation errors: one that fails (500, retried),
    // one that rejects (400, dead letters, alerted on `cs`).
    let echo = Recorder::start(Reply::echo(500, "invalid payload near: ")).await;
    let reject = Recorder::start(Reply::echo(400, "validation failed: ")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[poomgo]
base_url = "{}"
api_key = "${{KEY}}"
retry_base = "10ms"
retry_max = "100ms"
{}
[schedule]
cron = "* * * * * *"
[admin]
listen = "127.0.0.1:0"
token = "${{TOKEN}}"
[store]
path = "{}"
cache_mb = 8
[delivery]
alerts_to = "cs"
alert_after = "1s"
[[targets]]
name = "erp"
kind = "webhook"
url = "{}/erp"
secret = "${{SECRET}}"
include_personal_data = true
retry_schedule = ["100ms", "200ms"]
[[targets]]
name = "cs"
kind = "slack"
url = "{}{SLACK}"
include_personal_data = true
[[targets]]
name = "echo"
kind = "webhook"
url = "{}/echo"
include_personal_data = true
retry_schedule = ["100ms", "200ms"]
[[targets]]
name = "reject"
kind = "webhook"
url = "{}/reject"
include_personal_data = true
"#,
            sim.base_url(),
            crate::support::LEGACY_PLAN,
            dir.path().join("store").display(),
            erp.uri(),
            chat.uri(),
            echo.uri(),
            reject.uri(),
        ),
    )
    .unwrap();
    let daemon = crate::daemon::Daemon::start_with(
        &config,
        &[("KEY", KEY), ("TOKEN", TOKEN), ("SECRET", SECRET)],
    )
    .await;
    daemon.wait_healthy("the baseline").await;
    sim.advance(AdvanceOptions {
        steps: 2,
        fraction: 0.4,
        new_orders: 5,
    });
    crate::support::eventually(
        "deliveries, failures and dead letters",
        std::time::Duration::from_secs(20),
        || async {
            erp.got().iter().filter(|g| g.status == 503).count() > 5
                && !chat.got().is_empty()
                && echo.got().len() > 5
                && !reject.got().is_empty()
        },
    )
    .await;
    // The receivers did echo personal values back: those of every event
    // they got are looked for below, beside the distinctive ones.
    let mut sent: Vec<String> = Vec::new();
    for g in echo.got().iter().chain(reject.got().iter()) {
        let event = g.json();
        for event in event.as_array().cloned().unwrap_or_else(|| vec![event]) {
            for who in ["receiver", "customer"] {
                for key in ["name", "mobile", "address"] {
                    if let Some(v) = event[who][key].as_str() {
                        sent.push(v.to_owned());
                    }
                }
            }
        }
    }
    assert!(sent.iter().any(|v| v == personal[0]), "{sent:?}");
    // The alert about the new dead letters has reached `cs`.
    crate::support::eventually(
        "the dead-letter alert",
        std::time::Duration::from_secs(20),
        || async {
            chat.got()
                .iter()
                .any(|g| String::from_utf8_lossy(&g.body).contains("`reject`"))
        },
    )
    .await;
    // An operator who signed in sees the receiver's answer, redacted.
    let dead_letters = reqwest::Client::new()
        .get(format!("{}/api/dead-letters", daemon.admin))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dead: Value = serde_json::from_str(&dead_letters).unwrap();
    let reason = dead
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["target"] == "reject")
        .and_then(|d| d["reason"].as_str())
        .unwrap_or_else(|| panic!("{dead}"));
    assert!(
        reason.starts_with("HTTP 400: validation failed: \"receiver\":{")
            && reason.contains("\"name\":\"<personal>\""),
        "{reason}"
    );
    // A revoked key too: its error goes to logs and health.
    sim.set_api_key("another-key-entirely");
    crate::support::eventually(
        "the revoked key in /healthz",
        std::time::Duration::from_secs(20),
        || async { daemon.get("/healthz").await.1.contains("API key rejected") },
    )
    .await;
    let (_, metrics) = daemon.get("/metrics").await;
    let (_, health) = daemon.get("/healthz").await;
    assert!(
        health.contains("HTTP 500 (") && health.contains("-byte answer)"),
        "the echoing receiver's failure is in /healthz, classified: {health}"
    );
    let alerts: String = chat
        .got()
        .iter()
        .map(|g| String::from_utf8_lossy(&g.body).into_owned())
        .collect();
    let (_, logs) = daemon.terminate(std::time::Duration::from_secs(15)).await;
    assert!(
        logs.contains("delivery failed"),
        "the run did fail deliveries: {logs}"
    );
    assert!(health.contains("API key rejected"), "{health}");
    // Chat targets got the recipient, masked; the raw values went only to erp.

    for (what, text) in [
        ("logs", &logs),
        ("metrics", &metrics),
        ("healthz", &health),
        ("alerts", &alerts),
        ("dead letters", &dead_letters),
    ] {
        for needle in [
            KEY,
            TOKEN,
            "XOXSECRETTOKEN77",
            "T9SECRETTEAM",
            SECRET.trim_start_matches("whsec_"),
        ]
        .iter()
        .chain(personal.iter())
        .chain(sent.iter().map(String::as_str).collect::<Vec<_>>().iter())
        {
            assert!(!text.contains(needle), "{needle} reached the {what}");
        }
    }
    for g in chat.got() {
        let body = String::from_utf8_lossy(&g.body);
        for needle in personal {
            assert!(!body.contains(needle), "{needle} reached the chat unmasked");
        }
    }
}
