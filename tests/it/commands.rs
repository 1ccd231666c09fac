//! `check` and `preview` as an operator runs them.

use std::{path::Path, process::Command};

use crate::support::{BIN, SECRET, output};

const GOOD: &str = r#"
[poomgo]
base_url = "BASE"
api_key = "${CHECK_KEY}"
[[targets]]
name = "cs-slack"
kind = "slack"
url = "http://127.0.0.1:9/services/T/B/X"
[[targets]]
name = "erp"
kind = "webhook"
url = "http://127.0.0.1:9/erp"
secret = "SECRET"
include_personal_data = true
"#;

fn write(dir: &Path, config: &str, templates: &[(&str, &str)]) -> std::path::PathBuf {
    for (name, body) in templates {
        let path = dir.join("templates").join(format!("{name}.hbs"));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, body).unwrap();
    }
    let path = dir.join("config.toml");
    std::fs::write(&path, config.replace("SECRET", SECRET)).unwrap();
    path
}

async fn check(config: &Path, online: bool) -> (Option<i32>, String) {
    let mut c = Command::new(BIN);
    c.arg("check")
        .arg("--config")
        .arg(config)
        .env("CHECK_KEY", "sim-key")
        .env_remove("NOT_SET_ANYWHERE");
    if online {
        c.arg("--online");
    }
    let out = output(c).await;
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn check_passes_a_good_config_and_online_reports_whether_the_key_works() {
    use wiremock::{Mock, MockServer, ResponseTemplate, matchers};
    let sim = crate::support::simulator(40).await;
    // A live Slack webhook answers an empty message `invalid_payload`.
    let receiver = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .and(matchers::path("/services/T/B/X"))
        .respond_with(ResponseTemplate::new(400).set_body_string("invalid_payload"))
        .expect(1)
        .mount(&receiver)
        .await;
    Mock::given(matchers::method("HEAD"))
        .respond_with(ResponseTemplate::new(405))
        .mount(&receiver)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let good = GOOD
        .replace("BASE", &sim.base_url())
        .replace("http://127.0.0.1:9", &receiver.uri());
    let config = write(dir.path(), &good, &[]);
    let (code, out) = check(&config, true).await;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("ok   template slack/default: renders every change kind"),
        "{out}"
    );
    assert!(out.contains("ok   target erp (webhook)"), "{out}");
    assert!(
        out.contains("ok   target cs-slack (slack): live (answers `invalid_payload`"),
        "{out}"
    );
    assert!(
        out.contains("ok   target erp (webhook): reachable (HTTP 405 to HEAD"),
        "{out}"
    );
    assert!(out.contains("the key works (40 orders"), "{out}");
    assert_eq!(sim.requests(), 1, "one call, page 1");
    assert!(
        receiver
            .received_requests()
            .await
            .unwrap()
            .iter()
            .all(|r| r.body.is_empty()),
        "nothing was posted into the channel"
    );

    // A Slack webhook that was removed answers `no_service`.
    let gone = MockServer::start().await;
    Mock::given(matchers::method("POST"))
        .respond_with(ResponseTemplate::new(404).set_body_string("no_service"))
        .mount(&gone)
        .await;
    let config = write(
        dir.path(),
        &GOOD
            .replace("BASE", &sim.base_url())
            .replace(
                "http://127.0.0.1:9/services",
                &format!("{}/services", gone.uri()),
            )
            .replace("http://127.0.0.1:9/erp", &format!("{}/erp", receiver.uri())),
        &[],
    );
    let (code, out) = check(&config, true).await;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("FAIL target cs-slack (slack): the webhook is gone (HTTP 404: no_service)"),
        "{out}"
    );

    let wrong = write(
        dir.path(),
        &GOOD
            .replace("BASE", &sim.base_url())
            .replace("${CHECK_KEY}", "nope-key"),
        &[],
    );
    let (code, out) = check(&wrong, true).await;
    assert_eq!(code, Some(1));
    assert!(
        out.contains("FAIL poomgo") && out.contains("rejected the key"),
        "{out}"
    );
    assert!(!out.contains("nope-key"));
}

#[tokio::test]
async fn check_rejects_each_kind_of_mistake_with_a_clear_message() {
    let base = GOOD.replace("BASE", "http://127.0.0.1:9");
    type Templates = Vec<(&'static str, &'static str)>;
    let cases: Vec<(String, Templates, &str)> = vec![
        (
            base.replace(
                "[[targets]]\nname = \"cs-slack\"",
                "[[targets]]\nnmae = \"x\"\nname = \"cs-slack\"",
            ),
            vec![],
            "`targets[0].nmae`: unknown field",
        ),
        (
            base.replace("${CHECK_KEY}", "${NOT_SET_ANYWHERE}"),
            vec![],
            "`poomgo.api_key`: environment variable NOT_SET_ANYWHERE is not set",
        ),
        (
            format!("{base}\n[schedule]\ncron = \"0 */5 * * *\"\n"),
            vec![],
            "`schedule.cron`: `0 */5 * * *` is not a valid schedule",
        ),
        (
            base.clone(),
            vec![("slack/default", "{\"text\": \"{{#each}}\"}")],
            "template `slack/default`",
        ),
        (
            base.clone(),
            vec![("slack/default", "{\n  \"text\": \"{{order.orderKode}}\"\n}")],
            "template `slack/default`: line 2",
        ),
    ];
    for (config, templates, expected) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), &config, &templates);
        let (code, out) = check(&path, false).await;
        assert_eq!(code, Some(1), "{out}");
        assert!(
            out.contains("FAIL") && out.contains(expected),
            "expected {expected:?} in:\n{out}"
        );
        assert!(!out.contains("panicked"));
    }
}

#[tokio::test]
async fn preview_prints_exactly_the_body_a_target_would_send() {
    let dir = tempfile::tempdir().unwrap();
    let config = write(dir.path(), &GOOD.replace("BASE", "http://127.0.0.1:9"), &[]);
    let run = |args: &[&str]| {
        let mut c = Command::new(BIN);
        c.arg("preview")
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("CHECK_KEY", "k");
        c
    };
    let out = output(run(&[
        "--target",
        "cs-slack",
        "--kind",
        "invoice.status_changed",
    ]))
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let slack: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(slack["text"], "✅ 20261201_000123 배송출발 → 배송완료");

    let out = output(run(&[
        "--target",
        "cs-slack",
        "--kind",
        "invoice.status_changed",
        "--readable",
    ]))
    .await;
    let readable = String::from_utf8_lossy(&out.stdout);
    assert!(
        readable.starts_with("✅ 20261201_000123 배송출발 → 배송완료\n배송 상태: ✅ 배송완료\n"),
        "{readable}"
    );
    assert!(
        readable.contains("CJ대한통운 380424004285 (https://trace.cjlogistics.com/"),
        "{readable}"
    );

    let out = output(run(&["--target", "erp", "--kind", "invoice.canceled"])).await;
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["type"], "invoice.canceled");
    assert_eq!(
        body["receiver"]["name"], "홍길동",
        "erp opted in to personal data"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("# webhook-id: g5a3f1e-456000-3")
            && stderr.contains("# webhook-signature: v1,"),
        "{stderr}"
    );

    // An event file round-trips: the body is that event, byte for byte as JSON.
    let event_file = dir.path().join("event.json");
    std::fs::write(&event_file, &out.stdout).unwrap();
    let again = output(run(&[
        "--target",
        "erp",
        "--event",
        event_file.to_str().unwrap(),
    ]))
    .await;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&again.stdout).unwrap(),
        body
    );

    let out = output(run(&["--target", "nobody"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("no target is named `nobody`: the config has cs-slack, erp")
    );
}

/// `check` on the repository's own `config.toml` and `templates/` (console
/// pages included), run where they are and again from a copy elsewhere, as
/// a user who copies them to customise a message does: only `ok` lines.
#[tokio::test]
async fn check_passes_the_shipped_config_with_its_templates_folder_and_a_copy() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copy = tempfile::tempdir().unwrap();
    std::fs::copy(root.join("config.toml"), copy.path().join("config.toml")).unwrap();
    copy_dir(&root.join("templates"), &copy.path().join("templates"));
    assert!(copy.path().join("templates/console/layout.hbs").exists());
    for config in [root.join("config.toml"), copy.path().join("config.toml")] {
        let mut c = Command::new(BIN);
        c.arg("check")
            .arg("--config")
            .arg(&config)
            .env("POOMGO_API_KEY", "a-key")
            .env(
                "SLACK_WEBHOOK_URL",
                "https://hooks.slack.com/services/T0/B0/x",
            )
            .env("ERP_WEBHOOK_SECRET", SECRET);
        let out = output(c).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {stdout}{}",
            config.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("ok   template slack/default"), "{stdout}");
        for line in stdout.lines() {
            assert!(line.starts_with("ok   "), "{}: {line}", config.display());
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let dest = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &dest);
        } else {
            std::fs::copy(&path, &dest).unwrap();
        }
    }
}

/// Every binary and subcommand answers `--help` with its usage, and does
/// nothing else (the benchmark used to start a full run).
#[tokio::test]
async fn every_binary_and_subcommand_answers_help() {
    let bench = env!("CARGO_BIN_EXE_bench");
    let mut calls: Vec<(&str, Vec<&str>)> = vec![(bench, vec![]), (BIN, vec![])];
    for sub in [
        "run",
        "poll",
        "check",
        "preview",
        "demo",
        "sim",
        "scan",
        "outbox",
        "dead-letters",
        "store",
    ] {
        calls.push((BIN, vec![sub]));
    }
    calls.push((BIN, vec!["dead-letters", "replay"]));
    calls.push((BIN, vec!["store", "rebuild"]));
    for (bin, args) in calls {
        let mut c = Command::new(bin);
        c.args(&args).arg("--help");
        let out = output(c).await;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(0), "{bin} {args:?}: {stdout}");
        assert!(stdout.contains("Usage:"), "{bin} {args:?}: {stdout}");
    }
    let mut c = Command::new(bench);
    c.arg("--orders-typo");
    let out = output(c).await;
    assert_eq!(out.status.code(), Some(2));
}
