//! The real binary across a process boundary: exit codes, messages, and a
//! poll killed with SIGKILL mid-scan that loses and duplicates nothing.

use std::{
    collections::HashSet,
    process::Stdio,
    time::{Duration, Instant},
};

use wiremock::{Mock, MockServer, ResponseTemplate, matchers::method};

use poomgo_notifier::sim::{AdvanceOptions, FaultRule};

use crate::support::{
    changes, ids, output, output_ok, pipeline_toml, poll_command, received, receiver, simulator,
};

fn webhook_target(server: &MockServer) -> String {
    format!(
        "[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\n",
        server.uri()
    )
}

#[tokio::test]
async fn a_failed_delivery_exits_non_zero_naming_the_target_and_a_later_run_retries() {
    let sim = simulator(100).await;
    let server = MockServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        pipeline_toml(&sim, dir.path(), &webhook_target(&server)),
    )
    .unwrap();

    let out = output_ok(poll_command(&config)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.starts_with("poll: 1 pages,") && stdout.contains("(baseline: recorded silently)"),
        "{stdout}"
    );

    sim.advance(AdvanceOptions {
        steps: 1,
        fraction: 0.3,
        new_orders: 0,
    });
    let refusing = Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .mount_as_scoped(&server)
        .await;
    let out = output(poll_command(&config)).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let last = stderr.lines().last().unwrap();
    assert!(
        last.starts_with("error: delivery failed: target `erp`: event ")
            && last.contains("HTTP 503 (4-byte answer)"),
        "{stderr}"
    );
    assert!(!stderr.contains(&server.uri()));
    drop(refusing);

    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    // The first retry is due after the schedule's first step (5 s here).
    let config_text = std::fs::read_to_string(&config).unwrap();
    assert!(!config_text.contains("retry_schedule"));
    crate::support::wait_until_due(&config).await;
    let out = output_ok(poll_command(&config)).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(" 0 events,") && stdout.ends_with("0 pending, 0 dead letters\n"),
        "{stdout}"
    );
}

#[tokio::test]
async fn bad_config_and_rejected_keys_exit_2_with_a_clear_reason() {
    let sim = simulator(10).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let cases = [
        (
            pipeline_toml(&sim, dir.path(), "")
                .replace("cache_mb = 8", "cache_mb = 8\ncolour = \"blue\""),
            "`store.colour`",
        ),
        (
            pipeline_toml(&sim, dir.path(), "")
                .replace("\"sim-key\"", "\"${UNSET_FOR_THIS_TEST}\""),
            "UNSET_FOR_THIS_TEST is not set",
        ),
        (
            pipeline_toml(&sim, dir.path(), "").replace("\"sim-key\"", "\"wrong-key\""),
            "rejected the key (HTTP 401)",
        ),
    ];
    for (text, expected) in cases {
        std::fs::write(&config, text).unwrap();
        let mut command = poll_command(&config);
        command.env_remove("UNSET_FOR_THIS_TEST");
        let out = output(command).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "2: the configuration must change"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(expected),
            "expected {expected:?} in {stderr}"
        );
        assert!(
            !stderr.contains("wrong-key"),
            "the key is never printed: {stderr}"
        );
        assert!(!stderr.contains("panicked"));
    }
}

#[tokio::test]
async fn a_poll_killed_mid_scan_then_rerun_delivers_every_change_exactly_once() {
    let sim = simulator(20_000).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let toml = pipeline_toml(&sim, dir.path(), &webhook_target(&server)).replace(
        "retry_max = \"100ms\"",
        "retry_max = \"100ms\"\npage_size = 100",
    );
    std::fs::write(&config, toml).unwrap();

    output_ok(poll_command(&config)).await;
    // Every invoice that is new or differs gets exactly one event, revision 1.
    let expected = changes(&sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.2,
            new_orders: 50,
        });
    });
    assert!(
        expected.len() > 500,
        "a large change set: {}",
        expected.len()
    );

    // Slow pages so the scan is under way when the kill lands.
    sim.add_fault(FaultRule::parse("slow:15ms").unwrap());
    let requests_before = sim.requests();
    let mut child = poll_command(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while sim.requests() < requests_before + 80 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the poll never got going"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the poll ended before it was killed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed");
    assert!(
        received(&server, "/erp").await.is_empty(),
        "delivery comes after the scan"
    );
    sim.clear_faults();

    output_ok(poll_command(&config)).await;
    let ids = ids(&received(&server, "/erp").await);
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "no event id delivered twice");
    let missing: Vec<_> = expected.difference(&unique).take(5).collect();
    let extra: Vec<_> = unique.difference(&expected).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "missing {missing:?}, unexpected {extra:?}"
    );
}

#[tokio::test]
async fn json_logs_name_target_event_attempt_and_reason_of_a_failed_delivery() {
    let sim = simulator(60).await;
    let server = receiver(503).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        pipeline_toml(&sim, dir.path(), &webhook_target(&server)),
    )
    .unwrap();
    let mut first = poll_command(&config);
    first
        .arg("--notify-existing")
        .arg("--log-format")
        .arg("json");
    let out = output(first).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failure = stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap_or_else(|e| panic!("{e}: {l}"))
        })
        .find(|v| v["fields"]["message"] == "delivery failed; retrying later")
        .unwrap_or_else(|| panic!("no delivery failure logged: {stderr}"));
    assert_eq!(failure["level"], "WARN");
    assert_eq!(failure["fields"]["target"], "erp");
    assert!(
        failure["fields"]["event_id"]
            .as_str()
            .unwrap()
            .ends_with("-1")
    );
    assert_eq!(failure["fields"]["attempt"], 1);
    assert_eq!(failure["fields"]["reason"], "HTTP 503 (2-byte answer)");
}

#[tokio::test]
async fn the_demo_shows_slack_messages_and_verified_webhooks_then_stops_on_sigterm() {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(crate::support::BIN)
        .args([
            "demo", "--orders", "300", "--tick", "300ms", "--every", "1s",
        ])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let pid = child.id().to_string();
    // Read every line to the end (a closed pipe would break the demo's output).
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let _ = tx.send(line.unwrap());
        }
    });
    let mut lines = Vec::new();
    let (mut slack, mut webhook) = (false, false);
    let started = Instant::now();
    while !(slack && webhook) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no alerts within 30 s: {lines:?}"
        );
        if let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(1), rx.recv()).await {
            slack |= line.starts_with("[slack #cs]");
            webhook |= line.starts_with("[webhook erp]");
            lines.push(line);
        }
    }
    // The console is served on loopback, its URL on the first lines, with
    // dead letters from the WMS that rejects some events.
    let console = lines
        .iter()
        .take(3)
        .find_map(|l| l.trim().strip_prefix("console"))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no console URL on the first lines: {lines:?}"))
        .to_owned();
    crate::support::eventually(
        "a dead letter in the demo's console",
        Duration::from_secs(30),
        || async {
            let dead: serde_json::Value =
                reqwest::get(format!("{console}api/dead-letters?target=wms"))
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
            dead.as_array().is_some_and(|d| !d.is_empty())
        },
    )
    .await;
    let page = reqwest::get(format!("{console}dead-letters?target=wms"))
        .await
        .unwrap();
    assert_eq!(page.status().as_u16(), 200);
    assert!(page.headers().contains_key("content-security-policy"));
    let html = page.text().await.unwrap();
    assert!(
        html.contains("HTTP 400: unknown SKU") && html.contains("Replay"),
        "{html}"
    );
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    reader.join().unwrap();
    let text = lines.join("\n");
    assert!(text.contains("(baseline: recorded silently)"), "{text}");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("[slack #cs] ") && l.contains(" → ")),
        "{text}"
    );
    let hooks: Vec<&String> = lines
        .iter()
        .filter(|l| l.starts_with("[webhook erp]"))
        .collect();
    assert!(
        !hooks.is_empty() && hooks.iter().all(|l| l.ends_with("(signature verified)")),
        "{text}"
    );
    assert!(status.success(), "demo exits 0 on SIGTERM");
}
