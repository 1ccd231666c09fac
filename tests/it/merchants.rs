//! Several merchants in one process: isolation (a revoked key, a failing
//! upstream, a healthy merchant side by side in one daemon), a target shared
//! by every merchant, and moving an existing installation under
//! `[[merchants]]` or adding a merchant to it.

use std::{collections::HashSet, path::Path, time::Duration};

use poomgo_notifier::{
    config::Config,
    daemon::{Daemon, run},
    poll::{App, PollOptions},
    sim::{FaultRule, SimOptions, Simulator},
};
use serde_json::Value;

use crate::support::{LOOPBACK, Recorder, Reply, eventually};

const KEY: &str = "merchant-key";

async fn sim(merchants: usize, orders: usize) -> Simulator {
    Simulator::start(
        LOOPBACK,
        SimOptions {
            orders,
            merchants,
            api_key: KEY.into(),
            ..SimOptions::default()
        },
    )
    .await
    .unwrap()
}

/// Flips `isPrinted` on `n` invoices of merchant `index` (0-based).
fn toggle(sim: &Simulator, index: usize, n: usize) -> Vec<u64> {
    crate::support::toggle_printed_at(sim, index, n)
}

/// A config for `names`, merchant `i` with the simulator's key `i`, each
/// with its own webhook target `<name>-wms` at `own`, and one shared `erp`.
fn config_text(sim: &Simulator, dir: &Path, names: &[&str], own: &str, erp: &str) -> String {
    let mut text = format!(
        r#"
shutdown_grace = "5s"
[schedule]
cron = "* * * * * *"
[plan]
windows = []
created_every = 1
[store]
path = "{store}"
cache_mb = 8
[admin]
listen = "127.0.0.1:0"

[[targets]]
name = "erp"
kind = "webhook"
url = "{erp}/erp"
"#,
        store = dir.join("store").display(),
    );
    for (i, name) in names.iter().enumerate() {
        text += &format!(
            r#"
[[merchants]]
name = "{name}"
display_name = "Brand {upper}"
[merchants.poomgo]
base_url = "{base}"
api_key = "{key}"
retry_base = "10ms"
retry_max = "50ms"
max_attempts = 2
[[merchants.targets]]
name = "{name}-wms"
kind = "webhook"
url = "{own}/{name}"
"#,
            upper = name.to_uppercase(),
            base = sim.base_url(),
            key = poomgo_notifier::sim::merchant_key(KEY, i),
        );
    }
    text
}

fn parse(text: &str, dir: &Path) -> Config {
    Config::parse(text, "merchants.toml", dir.into(), &|_| None).unwrap_or_else(|e| panic!("{e}"))
}

async fn get_json(url: String) -> (u16, Value) {
    match reqwest::get(url).await {
        Ok(r) => {
            let status = r.status().as_u16();
            (status, r.json().await.unwrap_or(Value::Null))
        }
        Err(_) => (0, Value::Null),
    }
}

/// The value of `name{merchant="m"}` in a Prometheus text page.
fn gauge(metrics: &str, name: &str, merchant: &str) -> Option<f64> {
    let scrape = prometheus_parse::Scrape::parse(metrics.lines().map(|l| Ok(l.to_owned()))).ok()?;
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && s.labels.get("merchant") == Some(merchant))
        .and_then(|s| match s.value {
            prometheus_parse::Value::Gauge(v) => Some(v),
            _ => None,
        })
}

/// The merchants of every event the recorder accepted, by event id.
fn merchants_by_id(rec: &Recorder) -> Vec<(String, String, String)> {
    rec.accepted()
        .iter()
        .map(|g| {
            let body = g.json();
            (
                g.id().to_owned(),
                body["merchant"].as_str().unwrap_or("").to_owned(),
                body["invoice"]["invoiceId"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn one_revoked_key_and_one_failing_upstream_do_not_stop_the_healthy_merchant() {
    let sim = sim(3, 20).await;
    let erp = Recorder::start(Reply::status(200)).await;
    let wms = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let names = ["brand-a", "brand-b", "brand-c"];
    let text = config_text(&sim, dir.path(), &names, &wms.uri(), &erp.uri());
    // brand-a's key was revoked; brand-b's upstream answers 500.
    sim.merchant(0).set_api_key("rotated-elsewhere");
    sim.merchant(1).add_fault(FaultRule::parse("500").unwrap());

    let apps = App::open_all(parse(&text, dir.path())).unwrap();
    assert_eq!(apps.len(), 3);
    let listener = Daemon::bind(&apps[0].config).await.unwrap().unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = poomgo_notifier::shutdown::Shutdown::new();
    let task = tokio::spawn(run(Daemon {
        apps,
        listener: Some(listener),
        shutdown: shutdown.clone(),
        metrics: poomgo_notifier::metrics::install().unwrap(),
    }));

    // The healthy merchant's baseline makes the process healthy, degraded.
    eventually("brand-c healthy", Duration::from_secs(20), || async {
        let (code, body) = get_json(format!("http://{addr}/healthz")).await;
        code == 200 && body["merchants"]["brand-c"]["status"] == "ok"
    })
    .await;
    eventually(
        "both broken merchants counted",
        Duration::from_secs(20),
        || async {
            let (_, body) = get_json(format!("http://{addr}/healthz")).await;
            body["merchants"]["brand-a"]["key_rejected"] == true
                && body["merchants"]["brand-b"]["consecutive_failed_polls"].as_u64() >= Some(1)
        },
    )
    .await;
    let (code, health) = get_json(format!("http://{addr}/healthz")).await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(
        health["unhealthy_merchants"],
        serde_json::json!(["brand-a", "brand-b"]),
        "{health}"
    );
    assert!(
        health["merchants"]["brand-b"]["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("500")),
        "{health}"
    );
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(gauge(&metrics, "poomgo_merchant_up", "brand-a"), Some(0.0));
    assert_eq!(
        gauge(&metrics, "poomgo_merchant_key_rejected", "brand-a"),
        Some(1.0)
    );
    assert_eq!(gauge(&metrics, "poomgo_merchant_up", "brand-b"), Some(0.0));
    assert_eq!(gauge(&metrics, "poomgo_merchant_up", "brand-c"), Some(1.0));
    assert!(
        metrics.contains("merchant=\"brand-b\""),
        "poll metrics are labelled"
    );

    // The healthy merchant's changes arrive, at its own target and the ERP.
    let c_changed = toggle(&sim, 2, 3);
    eventually("brand-c's events", Duration::from_secs(20), || async {
        wms.accepted()
            .iter()
            .filter(|g| g.path == "/brand-c")
            .count()
            >= c_changed.len()
            && erp.accepted().len() >= c_changed.len()
    })
    .await;
    assert!(
        merchants_by_id(&erp).iter().all(|(_, m, _)| m == "brand-c"),
        "only brand-c has polled: {:?}",
        merchants_by_id(&erp)
    );
    assert!(
        !task.is_finished(),
        "a rejected key never stops the process"
    );

    // Both recover by themselves; their first good poll is a silent
    // baseline, then their changes arrive, each once.
    sim.merchant(0)
        .set_api_key(&poomgo_notifier::sim::merchant_key(KEY, 0));
    sim.merchant(1).clear_faults();
    eventually(
        "every merchant healthy",
        Duration::from_secs(40),
        || async {
            let (code, body) = get_json(format!("http://{addr}/healthz")).await;
            code == 200 && body["status"] == "ok"
        },
    )
    .await;
    let a_changed = toggle(&sim, 0, 2);
    let b_changed = toggle(&sim, 1, 2);
    let want = c_changed.len() + a_changed.len() + b_changed.len();
    eventually(
        "every merchant's events at the ERP",
        Duration::from_secs(20),
        || async { erp.accepted().len() >= want },
    )
    .await;
    // A moment for duplicates to show up, if there were any: wait for two
    // more polls of every merchant.
    let polls = sim.requests();
    eventually("more polls", Duration::from_secs(10), || async {
        sim.requests() >= polls + 6
    })
    .await;
    let got = merchants_by_id(&erp);
    assert_eq!(got.len(), want, "each change once: {got:?}");
    let ids: HashSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.len(), got.len(), "ids unique across merchants");
    for (merchant, changed) in [
        ("brand-a", &a_changed),
        ("brand-b", &b_changed),
        ("brand-c", &c_changed),
    ] {
        let mut theirs: Vec<String> = got
            .iter()
            .filter(|(_, m, _)| m == merchant)
            .map(|(_, _, invoice)| invoice.clone())
            .collect();
        theirs.sort();
        let mut expected: Vec<String> = changed.iter().map(u64::to_string).collect();
        expected.sort();
        assert_eq!(theirs, expected, "{merchant}'s events");
    }
    // Merchants' own targets receive only their own events.
    for g in wms.accepted() {
        let merchant = g.json()["merchant"].as_str().unwrap().to_owned();
        assert_eq!(g.path, format!("/{merchant}"));
    }
    // Upstream ids overlap across merchants on purpose: the same invoice id
    // at two merchants is two invoices.
    assert_eq!(
        a_changed, b_changed,
        "the simulator reuses ids across merchants"
    );

    shutdown.trigger();
    let stopped = tokio::time::timeout(Duration::from_secs(15), task)
        .await
        .expect("stops")
        .unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
}

#[tokio::test]
async fn the_search_finds_an_order_at_every_merchant_and_says_whose() {
    let sim = sim(2, 10).await;
    let erp = Recorder::start(Reply::status(200)).await;
    let wms = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(
        &sim,
        dir.path(),
        &["north", "south"],
        &wms.uri(),
        &erp.uri(),
    );
    let apps = App::open_all(parse(&text, dir.path())).unwrap();
    let now = chrono::Utc::now();
    let stop = poomgo_notifier::shutdown::Shutdown::new();
    for app in &apps {
        poomgo_notifier::poll::poll_until(app, PollOptions::default(), now, &stop)
            .await
            .unwrap();
    }
    let changed = [toggle(&sim, 0, 1), toggle(&sim, 1, 1)];
    assert_eq!(changed[0], changed[1], "the same invoice id at both");
    for app in &apps {
        poomgo_notifier::poll::poll_until(app, PollOptions::default(), now, &stop)
            .await
            .unwrap();
    }
    let upstream = std::sync::Arc::new(|_: &str| poomgo_notifier::inspect::Upstream::default());
    let admin = poomgo_notifier::admin::Admin::new(
        apps.into_iter().map(std::sync::Arc::new).collect(),
        upstream,
    );
    let id = changed[0][0].to_string();
    let found = poomgo_notifier::admin::search_merchants(&admin, None, &id).unwrap();
    let whose: Vec<&str> = found.iter().map(|f| f.merchant.as_str()).collect();
    assert_eq!(whose, ["north", "south"]);
    let only = poomgo_notifier::admin::search_merchants(&admin, Some("south"), &id).unwrap();
    assert_eq!(only.len(), 1);
    assert_eq!(only[0].merchant, "south");
}

/// Polls `app` once and delivers what it queued.
async fn poll_once(app: &App) -> poomgo_notifier::poll::PollReport {
    let stop = poomgo_notifier::shutdown::Shutdown::new();
    let report =
        poomgo_notifier::poll::poll_until(app, PollOptions::default(), chrono::Utc::now(), &stop)
            .await
            .unwrap();
    poomgo_notifier::poll::deliver_all(app).await.unwrap();
    report
}

#[tokio::test]
async fn an_installation_moves_under_merchants_and_gains_one_without_a_re_baseline() {
    let sim = sim(2, 15).await;
    let erp = Recorder::start(Reply::status(200)).await;
    // Today's shape: no [[merchants]]; the ERP is down while one change is
    // queued.
    let down = Recorder::start(Reply::status(503)).await;
    let dir = tempfile::tempdir().unwrap();
    let legacy = |url: &str| {
        format!(
            r#"
[poomgo]
base_url = "{base}"
api_key = "{KEY}"
[plan]
windows = []
created_every = 1
[store]
path = "{store}"
cache_mb = 8
[delivery]
retry_schedule = ["1s"]
[[targets]]
name = "erp"
kind = "webhook"
url = "{url}/erp"
"#,
            base = sim.base_url(),
            store = dir.path().join("store").display(),
        )
    };
    {
        let app = App::new(parse(&legacy(&down.uri()), dir.path())).unwrap();
        let baseline = poll_once(&app).await;
        assert!(baseline.baseline);
        toggle(&sim, 0, 2);
        let report = poll_once(&app).await;
        assert_eq!(report.events, 2);
        app.store.flush().await.unwrap();
    }
    assert_eq!(erp.accepted().len(), 0);

    // The same account moved under [[merchants]] as `default`, plus a new
    // merchant. The default merchant delivers what was pending and
    // announces nothing old; the new one starts with a silent baseline.
    let moved = format!(
        r#"
[plan]
windows = []
created_every = 1
[store]
path = "{store}"
cache_mb = 8
[[targets]]
name = "erp"
kind = "webhook"
url = "{erp}/erp"
[[merchants]]
name = "default"
[merchants.poomgo]
base_url = "{base}"
api_key = "{KEY}"
[[merchants]]
name = "new-brand"
[merchants.poomgo]
base_url = "{base}"
api_key = "{key2}"
"#,
        store = dir.path().join("store").display(),
        erp = erp.uri(),
        base = sim.base_url(),
        key2 = poomgo_notifier::sim::merchant_key(KEY, 1),
    );
    let apps = App::open_all(parse(&moved, dir.path())).unwrap();
    let default = poll_once(&apps[0]).await;
    assert!(
        !default.baseline,
        "no re-baseline for the existing merchant"
    );
    assert_eq!(default.events, 0, "nothing old announced again");
    let new = poll_once(&apps[1]).await;
    assert!(new.baseline, "the new merchant starts silently");
    assert_eq!(new.events, 0);
    // The pending entries were due a second after their failed attempt.
    eventually(
        "the pending entries delivered",
        Duration::from_secs(10),
        || async {
            poomgo_notifier::poll::deliver_all(&apps[0]).await.unwrap();
            erp.accepted().len() >= 2
        },
    )
    .await;
    let got = merchants_by_id(&erp);
    assert_eq!(got.len(), 2, "the pending entries delivered: {got:?}");
    assert!(got.iter().all(|(_, m, _)| m == "default"), "{got:?}");
    // Then both announce their changes.
    toggle(&sim, 0, 1);
    toggle(&sim, 1, 1);
    assert_eq!(poll_once(&apps[0]).await.events, 1);
    assert_eq!(poll_once(&apps[1]).await.events, 1);
    let got = merchants_by_id(&erp);
    assert_eq!(got.len(), 4, "{got:?}");
    assert_eq!(got[3].1, "new-brand");
    let ids: HashSet<&str> = got.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 4);
}

#[test]
fn merchant_configs_are_checked_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = r#"
[[merchants]]
name = "a"
[merchants.poomgo]
api_key = "k"
"#;
    let err = |text: &str| {
        Config::parse(text, "m.toml", dir.path().into(), &|_| None)
            .unwrap_err()
            .to_string()
    };
    let e = err(&format!("[poomgo]\napi_key = \"k\"\n{base}"));
    assert!(e.contains("poomgo") && e.contains("[[merchants]]"), "{e}");
    let e = err(&format!("{base}{base}"));
    assert!(
        e.contains("merchants[1].name") && e.contains("unique"),
        "{e}"
    );
    let e = err(&base.replace("name = \"a\"", "name = \"Brand A\""));
    assert!(e.contains("merchants[0].name"), "{e}");
    let e = err(&format!(
        "{base}[[targets]]\nname = \"t\"\nkind = \"webhook\"\nurl = \"https://x.example/\"\nmerchants = [\"b\"]\n"
    ));
    assert!(
        e.contains("targets[0].merchants") && e.contains("`b`"),
        "{e}"
    );
    let e = err(&base.replace("api_key = \"k\"", "api_key = \"k\"\npage_size = 0"));
    assert!(e.contains("merchants[0].poomgo.page_size"), "{e}");
    let e = err("[store]\ncache_mb = 8\n");
    assert!(e.contains("poomgo") && e.contains("required"), "{e}");

    // A shared target goes to the merchants it lists, or to all.
    let ok = Config::parse(
        &format!(
            "{base}[[merchants]]\nname = \"b\"\n[merchants.poomgo]\napi_key = \"k2\"\n\
             [[targets]]\nname = \"all\"\nkind = \"webhook\"\nurl = \"https://x.example/\"\n\
             [[targets]]\nname = \"only-b\"\nkind = \"webhook\"\nurl = \"https://x.example/\"\nmerchants = [\"b\"]\n"
        ),
        "m.toml",
        dir.path().into(),
        &|_| None,
    )
    .unwrap();
    let split = ok.merchants();
    let targets =
        |i: usize| -> Vec<String> { split[i].targets.iter().map(|t| t.name.clone()).collect() };
    assert_eq!(targets(0), ["all"]);
    assert_eq!(targets(1), ["all", "only-b"]);
    assert_eq!(split[1].merchant.name, "b");
    assert!(split[1].merchant.several());
}

/// Runs the real binary with `args` and returns (exit code, stdout, stderr).
async fn notifier(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    // The simulator runs on this runtime: wait for the process off it.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(crate::support::BIN)
            .args(&args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn the_commands_act_on_every_merchant_or_the_one_named() {
    let sim = sim(2, 10).await;
    let erp = Recorder::start(Reply::status(500)).await;
    let wms = Recorder::start(Reply::status(200)).await;
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(&sim, dir.path(), &["east", "west"], &wms.uri(), &erp.uri())
        .replace("[admin]\nlisten = \"127.0.0.1:0\"\n", "");
    let path = dir.path().join("config.toml");
    std::fs::write(&path, text).unwrap();
    let config = path.to_str().unwrap();

    let (code, out, err) = notifier(&["poll", "--config", config]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("east: ") && out.contains("west: "), "{out}");

    // Only west changes and is polled: the ERP fails, so its entry waits.
    toggle(&sim, 0, 1);
    toggle(&sim, 1, 1);
    let (code, out, err) = notifier(&["poll", "--config", config, "--merchant", "west"]).await;
    assert_eq!(code, 1, "the ERP answered 500: {out}{err}");
    assert!(!out.contains("east"), "{out}");
    assert!(err.contains("delivery failed: target `erp`"), "{err}");

    let (code, out, err) = notifier(&["outbox", "--config", config]).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("west\terp\t"), "{out}");
    let (_, out, _) = notifier(&["outbox", "--config", config, "--merchant", "east"]).await;
    assert_eq!(out.trim(), "nothing pending");

    let (code, _, err) = notifier(&["outbox", "--config", config, "--merchant", "north"]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("no merchant is called `north`") && err.contains("east, west"),
        "{err}"
    );

    let (code, out, err) = notifier(&["check", "--config", config, "--merchant", "east"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("2 merchants (east)") && out.contains("# merchant east"),
        "{out}"
    );
    assert!(!out.contains("# merchant west"), "{out}");
}
