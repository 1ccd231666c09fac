//! The console end to end in a real headless Chromium, driven over
//! WebDriver (Debian's `chromium` and `chromium-driver`, which `.ci/run`
//! installs): sign in, search an order, replay a dead letter by clicking,
//! and check the receiver got it. A screenshot of the search page goes to
//! `target/console-search.png` (the README's picture).
//!
//! Where Chromium is not installed the test says so and passes, unless
//! `POOMGO_REQUIRE_BROWSER=1` (set by CI), where that is a failure.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::console::{TOKEN, console_daemon, free_port};
use crate::support::{Reply, eventually};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    base: String,
    session: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
}

/// ChromeDriver runs in a process group of its own with the browser it
/// starts, so a failed test leaves no Chromium behind.
impl Drop for Driver {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Driver {
    async fn start() -> Driver {
        let port = free_port();
        use std::os::unix::process::CommandExt;
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        eventually("chromedriver ready", Duration::from_secs(20), || async {
            http.get(format!("{base}/status"))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        })
        .await;
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--window-size=1100,1300",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let r: Value = http
            .post(format!("{base}/session"))
            .json(&caps)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let session = r["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {r}"))
            .to_owned();
        Driver {
            child,
            base,
            session,
            http,
            _profile: profile,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut request = self.http.request(method.clone(), url);
        if method == reqwest::Method::POST {
            request = request.json(&body);
        }
        let r = request.send().await.unwrap();
        let status = r.status();
        let v: Value = r.json().await.unwrap();
        assert!(status.is_success(), "WebDriver {path}: {v}");
        v["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                json!({ "using": "css selector", "value": css }),
            )
            .await;
        v[ELEMENT].as_str().unwrap().to_owned()
    }

    async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.call(
            reqwest::Method::POST,
            &format!("/element/{el}/click"),
            json!({}),
        )
        .await;
    }

    async fn source(&self) -> String {
        self.call(reqwest::Method::GET, "/source", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn url(&self) -> String {
        self.call(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    async fn screenshot(&self, path: &std::path::Path) {
        use base64::Engine;
        let v = self
            .call(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        std::fs::write(path, png).unwrap();
    }
}

#[tokio::test]
async fn in_chromium_an_operator_finds_an_order_and_replays_its_dead_letter_by_clicking() {
    if !std::path::Path::new(CHROMIUM).exists() || !std::path::Path::new(CHROMEDRIVER).exists() {
        let msg = "SKIPPED: Chromium end-to-end test: /usr/bin/chromium and /usr/bin/chromedriver are not installed (apt-get install chromium chromium-driver)";
        assert!(
            std::env::var("POOMGO_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "{msg}, and POOMGO_REQUIRE_BROWSER=1"
        );
        eprintln!("{msg}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (daemon, _sim, erp, _wms) = console_daemon(dir.path(), Some(TOKEN)).await;
    // The invoice with the longest timeline makes the best picture.
    let got = erp.got();
    let invoice_of = |g: &crate::support::Got| g.json()["invoice"]["invoiceId"].to_string();
    let refused = got
        .iter()
        .max_by_key(|g| {
            got.iter()
                .filter(|o| invoice_of(o) == invoice_of(g))
                .count()
        })
        .unwrap()
        .clone();
    let event_id = refused.id().to_owned();
    let order_code = refused.json()["order"]["orderCode"]
        .as_str()
        .unwrap()
        .to_owned();

    let browser = Driver::start().await;
    // Opening the console asks for the token once.
    browser.go(&format!("{}/", daemon.admin)).await;
    assert!(browser.url().await.contains("/login"));
    browser.type_into("#token", TOKEN).await;
    browser.click("button[type=submit]").await;
    eventually("signed in", Duration::from_secs(10), || async {
        browser.source().await.contains("Last polls")
    })
    .await;
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-search.png");
    browser
        .screenshot(&shot.with_file_name("console-overview.png"))
        .await;

    // Search the order from the header's search box.
    browser
        .type_into("header input[name=q]", &format!("{order_code}\u{E007}"))
        .await;
    eventually("the timeline", Duration::from_secs(10), || async {
        let html = browser.source().await;
        html.contains(&event_id) && html.contains("class=\"timeline\"")
    })
    .await;
    let html = browser.source().await;
    assert!(html.contains(&order_code));
    assert!(
        html.contains("badge dead"),
        "the ERP's dead letter is shown"
    );
    let shot = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/console-search.png");
    browser.screenshot(&shot).await;
    assert!(std::fs::metadata(&shot).unwrap().len() > 10_000);
    // And on a phone: the same page at 390 px, nothing wider than the screen.
    browser
        .call(
            reqwest::Method::POST,
            "/window/rect",
            json!({ "width": 390, "height": 844 }),
        )
        .await;
    let overflow = browser
        .call(
            reqwest::Method::POST,
            "/execute/sync",
            json!({ "script": "return document.documentElement.scrollWidth - document.documentElement.clientWidth;", "args": [] }),
        )
        .await;
    assert!(
        overflow.as_i64().unwrap_or(0) <= 0,
        "the page scrolls sideways on a phone by {overflow} px"
    );
    browser
        .screenshot(&shot.with_file_name("console-search-phone.png"))
        .await;

    // Replay it from the dead letters page, by clicking.
    erp.set_default(Reply::status(200));
    browser.go(&format!("{}/dead-letters", daemon.admin)).await;
    browser
        .screenshot(&shot.with_file_name("console-dead-letters.png"))
        .await;
    browser
        .click(&format!("button[aria-label=\"Replay {event_id}\"]"))
        .await;
    eventually(
        "the receiver got the replay",
        Duration::from_secs(10),
        || async { erp.accepted().iter().any(|g| g.id() == event_id) },
    )
    .await;
    assert!(browser.source().await.contains("replayed"));
    let again = erp
        .accepted()
        .into_iter()
        .find(|g| g.id() == event_id)
        .unwrap();
    assert_eq!(again.body, refused.body);

    browser.call(reqwest::Method::DELETE, "", Value::Null).await;
    drop(browser);
    let (code, log) = daemon.terminate(Duration::from_secs(15)).await;
    assert_eq!(code, Some(0));
    assert!(!log.contains(TOKEN));
}
