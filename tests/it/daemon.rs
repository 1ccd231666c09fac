//! `run`, the daemon, as a real process: schedule, delivery workers,
//! shutdown on SIGTERM, /healthz and /metrics, and what its logs never say.

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::Duration,
};

use wiremock::MockServer;

use poomgo_notifier::sim::{AdvanceOptions, FaultRule, SimOptions, Simulator};

use crate::support::{
    BIN, LOOPBACK, SECRET, changes, eventually, ids, output, output_ok, poll_command, received,
    receiver, receiver_after,
};

pub(crate) const API_KEY: &str = "sk-poomgo-7Hq2Zr9LmW";
const SLACK_PATH: &str = "/services/T0SECRET/B0SECRET/XOXTOKEN123";

/// The real daemon as a child process (other test modules use it too).
pub(crate) struct Daemon {
    child: Child,
    pub(crate) admin: String,
    log: PathBuf,
}

impl Daemon {
    /// Starts `run` with this module's API key.
    async fn start(config: &Path) -> Daemon {
        Daemon::start_with(config, &[("POOMGO_API_KEY", API_KEY)]).await
    }

    /// Starts `run` with `env` and debug logs, and reads the admin address
    /// it prints. Its log goes to `run.log` beside the config.
    pub(crate) async fn start_with(config: &Path, env: &[(&str, &str)]) -> Daemon {
        let log = config.with_file_name("run.log");
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied())
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).unwrap();
            line
        })
        .await
        .unwrap();
        let admin = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no admin address in {line:?}"))
            .to_owned();
        Daemon { child, admin, log }
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let r = reqwest::get(format!("{}{path}", self.admin)).await.unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    async fn health(&self) -> u16 {
        self.get("/healthz").await.0
    }

    pub(crate) async fn wait_healthy(&self, what: &str) {
        eventually(what, Duration::from_secs(15), || async {
            self.health().await == 200
        })
        .await;
    }

    /// Waits for the process to exit by itself.
    async fn exited(mut self, limit: Duration) -> (Option<i32>, String) {
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), std::fs::read_to_string(&self.log).unwrap());
            }
            assert!(
                started.elapsed() < limit,
                "the daemon did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends SIGTERM and waits for the exit code.
    pub(crate) async fn terminate(mut self, limit: Duration) -> (Option<i32>, String) {
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let started = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status.code(), std::fs::read_to_string(&self.log).unwrap());
            }
            assert!(
                started.elapsed() < limit,
                "the daemon did not stop within {limit:?} of SIGTERM"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn config(sim: &Simulator, server: &MockServer, dir: &Path, extra_poomgo: &str) -> PathBuf {
    let text = format!(
        r#"
shutdown_grace = "10s"
[poomgo]
base_url = "{sim}"
api_key = "${{POOMGO_API_KEY}}"
retry_base = "10ms"
retry_max = "100ms"
{extra_poomgo}
[schedule]
cron = "* * * * * *"
[plan]
windows = []
created_every = 1
[admin]
listen = "127.0.0.1:0"
[store]
path = "{store}"
cache_mb = 8
[[targets]]
name = "erp"
kind = "webhook"
url = "{uri}/erp"
secret = "{SECRET}"
include_personal_data = true
[[targets]]
name = "cs-slack"
kind = "slack"
url = "{uri}{SLACK_PATH}"
events = ["invoice.status_changed", "invoice.canceled"]
"#,
        sim = sim.base_url(),
        store = dir.join("store").display(),
        uri = server.uri()
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub(crate) async fn sim(orders: usize) -> Simulator {
    Simulator::start(
        LOOPBACK,
        SimOptions {
            orders,
            api_key: API_KEY.into(),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap()
}

/// `name{labels} value` from Prometheus text, parsed by a Prometheus parser.
fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("/metrics is Prometheus text");
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum()
}

#[tokio::test]
async fn the_daemon_delivers_changes_as_time_moves_and_its_metrics_match_the_receivers() {
    let sim = sim(400).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(&sim, &server, dir.path(), "")).await;
    daemon.wait_healthy("the baseline poll").await;
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "the baseline is silent"
    );

    let expected = changes(&sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.3,
            new_orders: 0,
        });
    });
    assert!(expected.len() > 10);
    eventually(
        "every change at the webhook receiver",
        Duration::from_secs(20),
        || async { received(&server, "/erp").await.len() >= expected.len() },
    )
    .await;
    let erp = ids(&received(&server, "/erp").await);
    assert_eq!(erp.iter().cloned().collect::<HashSet<_>>(), expected);
    assert_eq!(erp.len(), expected.len(), "no duplicates");

    // Once the last poll's gauges are set, metrics match what the receivers saw.
    eventually(
        "the gauges after the last poll",
        Duration::from_secs(20),
        || async {
            let (_, text) = daemon.get("/metrics").await;
            metric(&text, "poomgo_outbox_depth", &[("target", "erp")]) == 0.0
                && metric(&text, "poomgo_outbox_depth", &[("target", "cs-slack")]) == 0.0
                && metric(&text, "poomgo_invoices_tracked", &[]) == sim.invoices().len() as f64
        },
    )
    .await;
    let (status, text) = daemon.get("/metrics").await;
    assert_eq!(status, 200);
    let slack = received(&server, SLACK_PATH).await.len() as f64;
    assert!(slack > 0.0);
    assert_eq!(
        metric(
            &text,
            "poomgo_deliveries_total",
            &[("target", "erp"), ("outcome", "delivered")]
        ),
        erp.len() as f64
    );
    assert_eq!(
        metric(
            &text,
            "poomgo_deliveries_total",
            &[("target", "cs-slack"), ("outcome", "delivered")]
        ),
        slack
    );
    assert_eq!(
        metric(&text, "poomgo_events_total", &[]),
        expected.len() as f64
    );
    assert!(metric(&text, "poomgo_polls_total", &[("outcome", "ok")]) >= 2.0);
    assert_eq!(
        metric(&text, "poomgo_outbox_depth", &[("target", "erp")]),
        0.0
    );
    assert_eq!(
        metric(&text, "poomgo_invoices_tracked", &[]),
        sim.invoices().len() as f64
    );

    let (code, log) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("poll finished"),
        "the logs were captured: {log}"
    );
    for secret in [
        API_KEY,
        "XOXTOKEN123",
        "T0SECRET",
        SECRET.trim_start_matches("whsec_"),
    ] {
        assert!(!log.contains(secret), "a secret reached the logs: {secret}");
    }
    for personal in sim.with_merchant(|m| {
        m.orders
            .iter()
            .take(50)
            .filter_map(|o| o.receiver.mobile.clone())
            .collect::<Vec<_>>()
    }) {
        assert!(!log.contains(&personal), "a phone number reached the logs");
    }
}

#[tokio::test]
async fn healthz_turns_503_while_the_upstream_fails_and_200_when_it_recovers() {
    let sim = sim(50).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(&sim, &server, dir.path(), "max_attempts = 1")).await;
    daemon.wait_healthy("healthy").await;
    sim.add_fault(FaultRule::parse("500").unwrap());
    eventually("unhealthy", Duration::from_secs(15), || async {
        daemon.health().await == 503
    })
    .await;
    let (_, body) = daemon.get("/healthz").await;
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert!(
        v["reason"].as_str().unwrap().contains("three intervals"),
        "{body}"
    );
    // How many ticks failed by now depends on timing; that polls failed in a row does not.
    assert!(
        v["consecutive_failed_polls"].as_u64().unwrap() >= 2,
        "{body}"
    );
    assert!(
        v["last_error"].as_str().unwrap().contains("HTTP 500"),
        "{body}"
    );
    sim.clear_faults();
    daemon.wait_healthy("healthy again").await;
    let (code, log) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
    assert_eq!(
        log.matches("polls are failing").count(),
        1,
        "failure is logged once per state change: {log}"
    );
    assert_eq!(log.matches("polls recovered").count(), 1);
}

#[tokio::test]
async fn a_slow_poll_never_overlaps_the_next_and_sigterm_mid_poll_exits_cleanly() {
    let sim = sim(100).await;
    sim.add_fault(FaultRule::parse("slow:1500ms").unwrap());
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(
        &sim,
        &server,
        dir.path(),
        "concurrency = 1\nrequest_timeout = \"10s\"",
    ))
    .await;
    eventually("a few slow polls", Duration::from_secs(20), || async {
        sim.requests() >= 3
    })
    .await;
    let (_, text) = daemon.get("/metrics").await;
    assert!(
        metric(&text, "poomgo_poll_skipped_total", &[]) >= 1.0,
        "ticks were skipped: {text}"
    );
    assert_eq!(sim.max_in_flight(), 1, "never two polls at once");
    eventually("a poll in progress", Duration::from_secs(5), || async {
        sim.requests() >= 4
    })
    .await;
    let (code, log) = daemon.terminate(Duration::from_secs(12)).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("cron tick skipped"));
}

#[tokio::test]
async fn sigterm_during_a_poll_loses_nothing() {
    let sim = sim(3000).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, &server, dir.path(), "page_size = 100");
    let mut baseline = poll_command(&config);
    baseline.env("POOMGO_API_KEY", API_KEY);
    assert!(output(baseline).await.status.success());
    let expected = changes(&sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.3,
            new_orders: 0,
        });
    });
    sim.add_fault(FaultRule::parse("slow:150ms").unwrap());
    let before = sim.requests();
    let daemon = Daemon::start(&config).await;
    eventually("the poll under way", Duration::from_secs(15), || async {
        sim.requests() >= before + 6
    })
    .await;
    let (code, log) = daemon.terminate(Duration::from_secs(12)).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("the poll was interrupted by shutdown; the "),
        "SIGTERM landed mid-poll: {log}"
    );
    sim.clear_faults();

    // The store reopens and a later run delivers everything, once.
    let mut later = poll_command(&config);
    later.env("POOMGO_API_KEY", API_KEY);
    output_ok(later).await;
    let erp = ids(&received(&server, "/erp").await);
    assert_eq!(erp.len(), expected.len(), "no duplicates, none missing");
    assert_eq!(erp.into_iter().collect::<HashSet<_>>(), expected);
}

#[tokio::test]
async fn sigterm_during_a_send_lets_it_finish_and_loses_nothing() {
    let sim = sim(300).await;
    let slow = receiver_after(200, Duration::from_millis(1500)).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = config(&sim, &slow, dir.path(), "");
    let daemon = Daemon::start(&config_path).await;
    daemon.wait_healthy("the baseline poll").await;
    let expected = changes(&sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.3,
            new_orders: 0,
        });
    });
    eventually("a send in flight", Duration::from_secs(15), || async {
        !received(&slow, "/erp").await.is_empty()
    })
    .await;
    let (code, log) = daemon.terminate(Duration::from_secs(12)).await;
    assert_eq!(code, Some(0), "{log}");
    let first = ids(&received(&slow, "/erp").await);
    assert!(
        !first.is_empty() && first.len() < expected.len(),
        "stopped mid-outbox: {} of {}",
        first.len(),
        expected.len()
    );

    // A later run against a fast receiver delivers the rest; nothing twice.
    let fast = receiver(200).await;
    let text = std::fs::read_to_string(&config_path)
        .unwrap()
        .replace(&slow.uri(), &fast.uri());
    std::fs::write(&config_path, text).unwrap();
    let mut later = poll_command(&config_path);
    later.env("POOMGO_API_KEY", API_KEY);
    output_ok(later).await;
    let rest = ids(&received(&fast, "/erp").await);
    let all: Vec<String> = first.iter().chain(&rest).cloned().collect();
    let unique: HashSet<String> = all.iter().cloned().collect();
    assert_eq!(
        unique.len(),
        all.len(),
        "the send in flight at SIGTERM finished and was not sent again"
    );
    assert_eq!(unique, expected);
}

#[tokio::test]
async fn sigterm_abandons_a_hung_page_without_waiting_for_it() {
    let sim = sim(50).await;
    sim.add_fault(FaultRule::parse("slow:60s").unwrap());
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(
        &sim,
        &server,
        dir.path(),
        "request_timeout = \"120s\"",
    ))
    .await;
    eventually(
        "a page request hanging",
        Duration::from_secs(10),
        || async { sim.requests() >= 1 },
    )
    .await;
    // The grace period is 10 s; a daemon that waited for the page would take 60.
    let (code, log) = daemon.terminate(Duration::from_secs(5)).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("interrupted by shutdown"), "{log}");
}

#[tokio::test]
async fn a_second_process_on_the_same_store_is_refused_with_a_clear_message() {
    let sim = sim(20).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config(&sim, &server, dir.path(), "");
    let daemon = Daemon::start(&config).await;
    let mut second = poll_command(&config);
    second.env("POOMGO_API_KEY", API_KEY);
    let out = output(second).await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cannot open the store at")
            && stderr.contains("is another poomgo-notifier using it?"),
        "{stderr}"
    );
    let (code, _) = daemon.terminate(Duration::from_secs(10)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_key_rejected_on_the_first_poll_exits_2() {
    let sim = sim(20).await;
    sim.set_api_key("a-different-key");
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(&sim, &server, dir.path(), "")).await;
    let (code, log) = daemon.exited(Duration::from_secs(15)).await;
    assert_eq!(code, Some(2), "{log}");
    assert!(log.contains("rejected the key"), "{log}");
    assert!(!log.contains(API_KEY));
}

#[tokio::test]
async fn a_key_revoked_mid_run_keeps_delivering_backs_off_and_recovers() {
    let sim = sim(300).await;
    let server = MockServer::start().await;
    let failing = wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(503))
        .mount_as_scoped(&server)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(&sim, &server, dir.path(), "")).await;
    daemon.wait_healthy("the baseline poll").await;
    let expected = changes(&sim, || {
        sim.advance(AdvanceOptions {
            steps: 1,
            fraction: 0.3,
            new_orders: 0,
        });
    });
    eventually("a refused delivery", Duration::from_secs(15), || async {
        !received(&server, "/erp").await.is_empty()
    })
    .await;

    // The key is revoked while entries wait in the outbox.
    let revoked_at = std::time::Instant::now();
    sim.set_api_key("revoked-and-replaced");
    eventually("503: API key rejected", Duration::from_secs(15), || async {
        let (status, body) = daemon.get("/healthz").await;
        status == 503 && body.contains("API key rejected")
    })
    .await;
    drop(failing);
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(200))
        .mount(&server)
        .await;
    eventually(
        "every change delivered while the key is rejected",
        Duration::from_secs(40),
        || async {
            let got: HashSet<String> = ids(&received(&server, "/erp").await).into_iter().collect();
            expected.is_subset(&got)
        },
    )
    .await;
    assert_eq!(daemon.health().await, 503, "still rejected");

    // Backing off: the gaps between rejected polls grow (1 s, 2 s, 4 s on a
    // 1 s schedule), read from when the simulator got them.
    let rejected = || {
        sim.request_times()
            .into_iter()
            .filter(|t| *t > revoked_at)
            .collect::<Vec<_>>()
    };
    eventually("four rejected polls", Duration::from_secs(30), || async {
        rejected().len() >= 4
    })
    .await;
    let gaps: Vec<Duration> = rejected().windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[1] >= Duration::from_millis(1800) && gaps[2] >= Duration::from_millis(3600),
        "each wait doubles: {gaps:?}"
    );

    sim.set_api_key(API_KEY);
    eventually(
        "healthy again by itself",
        Duration::from_secs(45),
        || async { daemon.health().await == 200 },
    )
    .await;
    let (code, log) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0), "{log}");
    assert!(
        log.contains("polling backs off until the key works again"),
        "{log}"
    );
}

#[tokio::test]
async fn a_skipped_invoice_leaves_the_daemon_healthy_and_is_counted() {
    let sim = sim(100).await;
    sim.add_fault(FaultRule {
        page: None,
        fault: poomgo_notifier::sim::Fault::Mangle {
            row: 0,
            pointer: "/invoices".into(),
            value: Some(serde_json::json!("not a list")),
        },
        times: None,
    });
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&config(&sim, &server, dir.path(), "")).await;
    daemon.wait_healthy("healthy despite the odd row").await;
    eventually("the skip counted", Duration::from_secs(10), || async {
        let (_, text) = daemon.get("/metrics").await;
        metric(
            &text,
            "poomgo_skipped_invoices_total",
            &[("reason", "unreadable_row")],
        ) >= 1.0
    })
    .await;
    let (code, _) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
}

pub(crate) fn config_with(sim: &Simulator, dir: &Path, body: &str) -> PathBuf {
    let text = format!(
        r#"
shutdown_grace = "5s"
[poomgo]
base_url = "{sim}"
api_key = "${{POOMGO_API_KEY}}"
retry_base = "10ms"
retry_max = "100ms"
[schedule]
cron = "* * * * * *"
[plan]
windows = []
created_every = 1
[store]
path = "{store}"
cache_mb = 8
{body}
"#,
        sim = sim.base_url(),
        store = dir.join("store").display(),
    );
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_failing_target_raises_one_alert_on_the_chat_target_and_not_a_second_within_the_hour() {
    use crate::support::{Recorder, Reply};
    let sim = sim(100).await;
    let erp = Recorder::start(Reply::status(503)).await;
    let chat = Recorder::start(Reply::status(200).body("ok")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = config_with(
        &sim,
        dir.path(),
        &format!(
            r#"
[admin]
listen = "127.0.0.1:0"
[delivery]
alerts_to = "cs-slack"
alert_after = "1s"
[[targets]]
name = "erp"
kind = "webhook"
url = "{}/erp"
retry_schedule = ["200ms", "10m"]
[[targets]]
name = "cs-slack"
kind = "slack"
url = "{}/services/T/B/X"
events = ["invoice.canceled"]
"#,
            erp.uri(),
            chat.uri()
        ),
    );
    let daemon = Daemon::start(&config).await;
    daemon.wait_healthy("the baseline").await;
    sim.advance(AdvanceOptions {
        steps: 1,
        fraction: 0.3,
        new_orders: 0,
    });
    let alerts = || {
        chat.got()
            .into_iter()
            .filter(|g| g.json()["text"].as_str().unwrap_or("").contains("⚠️"))
            .collect::<Vec<_>>()
    };
    eventually("an alert about erp", Duration::from_secs(20), || async {
        !alerts().is_empty()
    })
    .await;
    assert_eq!(alerts()[0].path, "/services/T/B/X");
    let text = alerts()[0].json()["text"].as_str().unwrap().to_owned();
    assert!(
        text.contains("`erp`") && text.contains("HTTP 503"),
        "{text}"
    );
    // healthz names the failing target, and the gauge says so.
    let (_, body) = daemon.get("/healthz").await;
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["targets"]["erp"]["failing"], true, "{body}");
    let (_, metrics) = daemon.get("/metrics").await;
    assert_eq!(
        metric(&metrics, "poomgo_target_failing", &[("target", "erp")]),
        1.0
    );
    // Still failing through four more alert checks: no second alert within
    // the hour. (The checks run once a second; the log says each ran.)
    let checks = || {
        std::fs::read_to_string(&daemon.log)
            .unwrap()
            .matches("alert check done")
            .count()
    };
    let before = checks();
    eventually(
        "four more alert checks",
        Duration::from_secs(20),
        || async { checks() >= before + 4 },
    )
    .await;
    assert_eq!(alerts().len(), 1, "one alert per condition per hour");
    let (code, _) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn operator_commands_go_through_the_running_daemon_and_state_changes_need_the_token() {
    use crate::support::{Recorder, Reply};
    let sim = sim(100).await;
    let erp = Recorder::start(Reply::status(400).body("bad")).await;
    let dir = tempfile::tempdir().unwrap();
    // A free port for the admin listener the CLI will look for.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
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
url = "{}/erp"
"#,
            erp.uri()
        ),
    );
    let daemon = Daemon::start_with(
        &config,
        &[
            ("POOMGO_API_KEY", API_KEY),
            ("ADMIN_TOKEN", "t0ken-4-admin-0123456789abcdefghij"),
        ],
    )
    .await;
    assert_eq!(daemon.admin, format!("http://127.0.0.1:{port}"));
    daemon.wait_healthy("the baseline").await;
    sim.advance(AdvanceOptions {
        steps: 1,
        fraction: 0.3,
        new_orders: 0,
    });
    eventually("dead letters", Duration::from_secs(15), || async {
        erp.got().len() >= 2
    })
    .await;
    let cli = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.args(args)
            .arg("--config")
            .arg(&config)
            .env("ADMIN_TOKEN", "t0ken-4-admin-0123456789abcdefghij")
            .env("POOMGO_API_KEY", API_KEY)
            .env("RUST_LOG", "warn");
        c
    };
    let out = output(cli(&["dead-letters", "list"])).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("going through the running daemon"),
        "{stderr}"
    );
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        list.lines().count() >= 2 && list.contains("HTTP 400: bad"),
        "{list}"
    );

    // Without the token, a state change is refused (and the CLI exits 2).
    let http = reqwest::Client::new();
    let refused = http
        .post(format!("{}/api/dead-letters/replay", daemon.admin))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 401);
    let mut no_token = cli(&["dead-letters", "replay", "--all"]);
    no_token.env("ADMIN_TOKEN", "wrong");
    assert_eq!(output(no_token).await.status.code(), Some(2));

    // With it, the replay reaches the daemon, whose worker delivers at once.
    erp.set_default(Reply::status(200));
    let before = erp.got().len();
    let out = output(cli(&["dead-letters", "replay", "--all"])).await;
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        said.starts_with("replayed (ids kept, attempts reset)"),
        "{said}"
    );
    let replayed = list.lines().count();
    eventually(
        "the replayed events delivered",
        Duration::from_secs(10),
        || async { erp.accepted().len() >= replayed },
    )
    .await;
    let first_ids: HashSet<String> = erp.got()[..before]
        .iter()
        .map(|g| g.id().to_owned())
        .collect();
    for g in erp.accepted() {
        assert!(first_ids.contains(g.id()), "replayed with the original id");
    }
    let (code, log) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
    assert!(!log.contains("t0ken-4-admin-0123456789abcdefghij"));
}

/// The daemon built from a value, in this process: config parsed with its
/// variables given (no process environment), a listener bound to port 0, a
/// shutdown handle the test triggers.
async fn in_process(
    sim: &Simulator,
    dir: &Path,
    body: &str,
) -> (
    std::net::SocketAddr,
    poomgo_notifier::shutdown::Shutdown,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    use poomgo_notifier::daemon::{Daemon, run};
    let path = config_with(sim, dir, body);
    let text = std::fs::read_to_string(path).unwrap();
    let config = poomgo_notifier::config::Config::parse(&text, "t.toml", dir.into(), &|n| {
        (n == "POOMGO_API_KEY").then(|| API_KEY.to_owned())
    })
    .unwrap();
    let apps = poomgo_notifier::poll::App::open_all(config).unwrap();
    let listener = Daemon::bind(&apps[0].config).await.unwrap().unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = poomgo_notifier::shutdown::Shutdown::new();
    let task = tokio::spawn(run(Daemon {
        apps,
        listener: Some(listener),
        shutdown: shutdown.clone(),
        metrics: poomgo_notifier::metrics::install().unwrap(),
    }));
    (addr, shutdown, task)
}

#[tokio::test]
async fn in_process_the_daemon_polls_delivers_and_stops_when_its_shutdown_is_triggered() {
    use crate::support::{Recorder, Reply, toggle_printed};
    let sim = sim(40).await;
    let erp = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let (addr, shutdown, task) = in_process(
        &sim,
        dir.path(),
        &format!(
            "[admin]\nlisten = \"127.0.0.1:0\"\n[[targets]]\nname = \"erp\"\nkind = \"webhook\"\nurl = \"{}/erp\"\n",
            erp.uri()
        ),
    )
    .await;
    let healthz = || async move {
        reqwest::get(format!("http://{addr}/healthz"))
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    };
    eventually("the baseline", Duration::from_secs(15), || async {
        healthz().await == 200
    })
    .await;
    let changed = toggle_printed(&sim, 3);
    eventually(
        "three events at the ERP",
        Duration::from_secs(15),
        || async { erp.accepted().len() >= changed.len() },
    )
    .await;
    shutdown.trigger();
    let stopped = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("stops within the grace period")
        .unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
    assert!(healthz().await == 0, "the listener is closed");
}

#[tokio::test]
async fn in_process_a_key_rejected_on_the_first_poll_ends_run_with_needs_operator() {
    let sim = sim(10).await;
    sim.set_api_key("another-key");
    let dir = tempfile::tempdir().unwrap();
    let (_, _shutdown, task) =
        in_process(&sim, dir.path(), "[admin]\nlisten = \"127.0.0.1:0\"\n").await;
    let ended = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("run ends by itself")
        .unwrap();
    let error = ended.unwrap_err();
    assert_eq!(poomgo_notifier::commands::exit_code(&error), 2, "{error:#}");
}
