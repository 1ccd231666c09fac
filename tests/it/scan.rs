//! The API client and scans against the simulator, over loopback HTTP.

use std::{
    collections::{HashMap, HashSet},
    time::Duration,
};

use poomgo_notifier::{
    poomgo::{Invoice, PoomgoError, Query, ScanStats, kst_day},
    sim::{AdvanceOptions, FaultRule},
};

use crate::support::{client, config, simulator};
use poomgo_notifier::config::Config;

/// Runs a scan to the end: every invoice handed out (id → invoice, canceled),
/// failing the test on a duplicate id.
async fn collect(
    client: &poomgo_notifier::poomgo::PoomgoClient,
    query: Query,
) -> Result<(HashMap<String, (Invoice, bool)>, ScanStats), PoomgoError> {
    let mut scan = client.scan(query);
    let mut seen = HashMap::new();
    while let Some(page) = scan.next_page().await {
        for row in page?.content.rows {
            let all = row
                .invoices
                .into_iter()
                .map(|i| (i, false))
                .chain(row.canceled_invoices.into_iter().map(|i| (i, true)));
            for (invoice, canceled) in all {
                let id = invoice.invoice_id.to_string();
                assert!(
                    seen.insert(id.clone(), (invoice, canceled)).is_none(),
                    "invoice {id} handed out twice"
                );
            }
        }
    }
    Ok((seen, scan.stats().clone()))
}

fn truth(sim: &poomgo_notifier::sim::Simulator) -> HashMap<String, (Invoice, bool)> {
    sim.invoices()
        .into_iter()
        .map(|(i, c)| (i.invoice_id.to_string(), (i, c)))
        .collect()
}

#[tokio::test]
async fn a_full_scan_returns_exactly_the_simulators_invoices() {
    let sim = simulator(3000).await;
    let config = config(&sim.base_url(), "");
    let (seen, stats) = collect(&client(&config), Query::default()).await.unwrap();
    let expected = truth(&sim);
    assert!(expected.len() > 3000, "some orders have several invoices");
    assert!(
        expected.values().any(|(_, canceled)| *canceled),
        "some invoices are canceled"
    );
    assert_eq!(seen, expected);
    assert_eq!(stats.pages, 6);
    assert_eq!(stats.total, 3000);
    assert_eq!(stats.rows, 3000);
    assert!(stats.short_pages.is_empty());
    // Page 1 once, then the rest: no page is fetched twice.
    assert_eq!(sim.requests(), 6);
}

#[tokio::test]
async fn the_poll_window_covers_the_generated_days() {
    let sim = simulator(500).await;
    let config = config(&sim.base_url(), "page_size = 100\nconcurrency = 3");
    let window = poomgo_notifier::poomgo::poll_window(chrono::Utc::now(), 14).query();
    let (seen, stats) = collect(&client(&config), window).await.unwrap();
    assert_eq!(seen, truth(&sim));
    assert_eq!(stats.pages, 5);
}

#[tokio::test]
async fn created_at_filters_by_korea_time_day_and_order_code_finds_one_order() {
    let sim = simulator(1000).await;
    let config = config(&sim.base_url(), "");
    let client = client(&config);
    let (day, expected, code, code_invoices) = sim.with_merchant(|m| {
        let day = kst_day(m.orders[500].created_at);
        let expected: HashSet<u64> = m
            .orders
            .iter()
            .filter(|o| kst_day(o.created_at) == day)
            .map(|o| o.id)
            .collect();
        let packed = m
            .orders
            .iter()
            .find(|o| o.invoices.len() > 1)
            .expect("an order with several invoices");
        let ids: HashSet<String> = packed.invoices.iter().map(|i| i.id.to_string()).collect();
        (day, expected, packed.order_code.clone(), ids)
    });
    let query = Query {
        created_at_from: Some(day),
        created_at_to: Some(day),
        ..Query::default()
    };
    let mut scan = client.scan(query);
    let mut ids = HashSet::new();
    while let Some(page) = scan.next_page().await {
        ids.extend(page.unwrap().content.rows.into_iter().filter_map(|r| r.id));
    }
    assert_eq!(ids, expected);
    assert_eq!(scan.stats().total, expected.len() as u64);

    let query = Query {
        order_code: Some(code.clone()),
        ..Query::default()
    };
    let page = client.fetch_page(&query, 1).await.unwrap();
    assert_eq!(page.total, 1);
    assert_eq!(page.rows[0].order_code.as_deref(), Some(code.as_str()));
    let got: HashSet<String> = page.rows[0]
        .invoices
        .iter()
        .map(|i| i.invoice_id.to_string())
        .collect();
    assert_eq!(got, code_invoices);
}

#[tokio::test]
async fn confirm_and_close_filters_select_by_invoice_days() {
    let sim = simulator(1000).await;
    let config = config(&sim.base_url(), "");
    let client = client(&config);
    let (day, confirmed, closed) = sim.with_merchant(|m| {
        let day = m
            .orders
            .iter()
            .flat_map(|o| &o.invoices)
            .find_map(|i| i.close_at)
            .map(kst_day)
            .unwrap();
        let confirmed: HashSet<u64> = m
            .orders
            .iter()
            .filter(|o| {
                o.invoices
                    .iter()
                    .chain(&o.canceled)
                    .any(|i| kst_day(i.confirm_at) == day)
            })
            .map(|o| o.id)
            .collect();
        let closed: HashSet<u64> = m
            .orders
            .iter()
            .filter(|o| {
                o.invoices
                    .iter()
                    .chain(&o.canceled)
                    .any(|i| i.close_at.map(kst_day) == Some(day))
            })
            .map(|o| o.id)
            .collect();
        (day, confirmed, closed)
    });
    for (query, expected) in [
        (
            Query {
                confirm_at_from: Some(day),
                confirm_at_to: Some(day),
                ..Query::default()
            },
            confirmed,
        ),
        (
            Query {
                close_at_from: Some(day),
                close_at_to: Some(day),
                ..Query::default()
            },
            closed,
        ),
    ] {
        assert!(!expected.is_empty());
        let mut scan = client.scan(query);
        let mut ids = HashSet::new();
        while let Some(page) = scan.next_page().await {
            ids.extend(page.unwrap().content.rows.into_iter().filter_map(|r| r.id));
        }
        assert_eq!(ids, expected);
    }
}

#[tokio::test]
async fn the_simulator_speaks_the_documented_protocol() {
    let sim = simulator(2000).await;
    let http = reqwest::Client::new();
    let url = format!("{}/open-api/oms/orders", sim.base_url());
    let post = |body: &'static str, key: Option<&'static str>| {
        let mut r = http
            .post(&url)
            .body(body)
            .header("content-type", "application/json");
        if let Some(k) = key {
            r = r.header("authorization", k);
        }
        r.send()
    };
    assert_eq!(post("{}", None).await.unwrap().status(), 401);
    assert_eq!(
        post("{}", Some("Bearer sim-key")).await.unwrap().status(),
        401
    );
    assert_eq!(
        post(r#"{"pageSize":501}"#, Some("sim-key"))
            .await
            .unwrap()
            .status(),
        400
    );
    // The vendor's curl example sends an empty body: documented defaults, page 1 of 20.
    let v: serde_json::Value = post("", Some("sim-key"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["total"], "2000", "total is a string");
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 20);
    let created: Vec<&str> = rows
        .iter()
        .map(|r| r["createdAt"].as_str().unwrap())
        .collect();
    assert!(created.windows(2).all(|w| w[0] >= w[1]), "newest first");
    assert!(
        rows.iter().any(|r| r["invoices"].is_null()),
        "some orders are not packed yet"
    );
}

#[tokio::test]
async fn a_rejected_key_is_a_configuration_error_and_never_retried() {
    let sim = simulator(10).await;
    let mut config = config(&sim.base_url(), "");
    config.poomgo.api_key = "wrong-key-123".to_owned().into();
    let err = client(&config)
        .fetch_page(&Query::default(), 1)
        .await
        .unwrap_err();
    assert!(err.is_configuration());
    let message = err.to_string();
    assert!(
        message.contains("rejected the key") && message.contains("401"),
        "{message}"
    );
    assert!(!message.contains("wrong-key-123"));
    assert_eq!(sim.requests(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_and_recovered() {
    let sim = simulator(1200).await;
    sim.add_fault(FaultRule::parse("500@2x2").unwrap());
    sim.add_fault(FaultRule::parse("503@3x1").unwrap());
    let config = config(&sim.base_url(), "");
    let (seen, stats) = collect(&client(&config), Query::default()).await.unwrap();
    assert_eq!(seen, truth(&sim));
    assert_eq!(stats.pages, 3);
    assert_eq!(sim.requests(), 3 + 3);
}

#[tokio::test]
async fn too_many_requests_waits_for_retry_after() {
    let sim = simulator(100).await;
    sim.add_fault(FaultRule::parse("429:1@1x1").unwrap());
    let config = config(&sim.base_url(), "retry_max = \"5s\"");
    let page = client(&config)
        .fetch_page(&Query::default(), 1)
        .await
        .unwrap();
    assert_eq!(page.total, 100);
    assert_eq!(sim.requests(), 2);
    // When the simulator got them: the retry came after Retry-After.
    let at = sim.request_times();
    assert!(
        at[1] - at[0] >= Duration::from_millis(950),
        "Retry-After: 1 was honoured: {:?}",
        at[1] - at[0]
    );
}

#[tokio::test]
async fn a_page_that_keeps_failing_gives_up_naming_the_page() {
    let sim = simulator(1200).await;
    sim.add_fault(FaultRule::parse("500@2").unwrap());
    let config = config(&sim.base_url(), "max_attempts = 3");
    let err = collect(&client(&config), Query::default())
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("page 2: gave up after 3 attempts"),
        "{message}"
    );
    assert!(message.contains("HTTP 500"), "{message}");
}

#[tokio::test]
async fn a_slow_page_times_out_and_is_retried() {
    let sim = simulator(600).await;
    sim.add_fault(FaultRule::parse("slow:2s@2x1").unwrap());
    let config = config(&sim.base_url(), "request_timeout = \"300ms\"");
    let before = sim.request_times().len();
    let (seen, _) = collect(&client(&config), Query::default()).await.unwrap();
    assert_eq!(seen, truth(&sim));
    // When the simulator got them: every request came before the slow
    // answer (2 s) would have ended; the slow page was asked again after
    // the time-out, not after the answer.
    let at = &sim.request_times()[before..];
    assert!(at.len() >= 3, "{at:?}");
    let span = *at.last().unwrap() - at[0];
    assert!(
        span < Duration::from_millis(1900),
        "did not wait for the slow answer: {span:?}"
    );

    sim.add_fault(FaultRule::parse("slow:2s@1").unwrap());
    let config = crate::support::config(
        &sim.base_url(),
        "request_timeout = \"100ms\"\nmax_attempts = 2",
    );
    let message = client(&config)
        .fetch_page(&Query::default(), 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("page 1: gave up after 2 attempts") && message.contains("time-out"),
        "{message}"
    );
}

#[tokio::test]
async fn a_200_that_is_not_json_is_retried_and_named_only_when_attempts_run_out() {
    let sim = simulator(1200).await;
    // A proxy's maintenance page, twice: transient, recovered.
    sim.add_fault(FaultRule::parse("notjson@3x2").unwrap());
    let config = config(&sim.base_url(), "");
    let (seen, _) = collect(&client(&config), Query::default()).await.unwrap();
    assert_eq!(seen, truth(&sim));

    sim.add_fault(FaultRule::parse("notjson@3").unwrap());
    let config = crate::support::config(&sim.base_url(), "max_attempts = 3");
    let message = collect(&client(&config), Query::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with(
            "page 3: the answer was not the documented page after 3 attempts: the body is not JSON"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_truncated_body_is_retried_and_recovered() {
    let sim = simulator(1200).await;
    sim.add_fault(FaultRule::parse("truncated@2x1").unwrap());
    let config = config(&sim.base_url(), "");
    let (seen, _) = collect(&client(&config), Query::default()).await.unwrap();
    assert_eq!(seen, truth(&sim));

    sim.add_fault(FaultRule::parse("truncated@1").unwrap());
    let config = crate::support::config(&sim.base_url(), "max_attempts = 2");
    let message = client(&config)
        .fetch_page(&Query::default(), 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(message.contains("cut off"), "{message}");
}

#[tokio::test]
async fn drift_during_a_scan_yields_no_duplicate_and_misses_nothing() {
    let sim = simulator(1000).await;
    let before = truth(&sim);
    let config = config(&sim.base_url(), "page_size = 100\nconcurrency = 1");
    let client = client(&config);
    let mut scan = client.scan(Query::default());
    let mut seen = HashSet::new();
    let mut repeated = 0;
    let mut pages = 0;
    while let Some(page) = scan.next_page().await {
        for row in page.unwrap().content.rows {
            for i in row.invoices.iter().chain(&row.canceled_invoices) {
                if !seen.insert(i.invoice_id.to_string()) {
                    repeated += 1;
                }
            }
        }
        pages += 1;
        if pages <= 3 {
            // 150 new orders push every row one and a half pages down.
            sim.advance(AdvanceOptions {
                steps: 1,
                fraction: 0.5,
                new_orders: 150,
            });
        }
    }
    let stats = scan.stats();
    assert!(
        repeated > 0,
        "the drift really repeated rows (the poll, not the scan, counts them once): {stats:?}"
    );
    assert!(stats.short_pages.is_empty(), "{stats:?}");
    assert_eq!(stats.total, 1450);
    for id in before.keys() {
        assert!(
            seen.contains(id),
            "invoice {id}, present before the scan, was missed"
        );
    }
}

/// The simulator serves several merchants, as the real API serves several
/// accounts: each key reads its own orders, faults and key changes stay with
/// their merchant, and the control endpoints pick one with `?merchant=N`.
#[tokio::test]
async fn the_simulator_serves_each_merchant_its_own_orders_faults_and_key() {
    let sim = poomgo_notifier::sim::Simulator::start(
        crate::support::LOOPBACK,
        poomgo_notifier::sim::SimOptions {
            orders: 60,
            merchants: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(sim.merchants(), 3);
    let keys: Vec<String> = (0..3).map(|i| sim.merchant(i).api_key()).collect();
    assert_eq!(keys, ["sim-key", "sim-key-2", "sim-key-3"]);
    let with_key = |key: &str| {
        let config = Config::parse(
            &format!(
                "[poomgo]\nbase_url = \"{}\"\napi_key = \"{key}\"\nretry_base = \"10ms\"\nmax_attempts = 2\n",
                sim.base_url()
            ),
            "t.toml",
            std::env::temp_dir(),
            &|_| None,
        )
        .unwrap();
        client(&config)
    };
    // Each key reads its own merchant (generated from its own seed).
    let mut seen = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        let (got, _) = collect(&with_key(key), Query::default()).await.unwrap();
        let truth: HashMap<String, (Invoice, bool)> = sim
            .merchant(i)
            .invoices()
            .into_iter()
            .map(|(inv, c)| (inv.invoice_id.to_string(), (inv, c)))
            .collect();
        assert_eq!(got, truth, "merchant {}", i + 1);
        seen.push(got);
    }
    assert_ne!(seen[0], seen[1]);
    // A fault on the second merchant fails only its reads.
    sim.merchant(1).add_fault(FaultRule::parse("500").unwrap());
    assert!(
        collect(&with_key(&keys[1]), Query::default())
            .await
            .is_err()
    );
    assert!(collect(&with_key(&keys[0]), Query::default()).await.is_ok());
    sim.merchant(1).clear_faults();
    // A revoked key revokes that merchant only; through the control API too.
    let control = reqwest::Client::new();
    let r = control
        .post(format!("{}/_sim/key?merchant=3", sim.base_url()))
        .json(&serde_json::json!({ "api_key": "replaced" }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert!(matches!(
        collect(&with_key(&keys[2]), Query::default()).await,
        Err(PoomgoError::KeyRejected { .. })
    ));
    assert!(
        collect(&with_key("replaced"), Query::default())
            .await
            .is_ok()
    );
    assert!(collect(&with_key(&keys[1]), Query::default()).await.is_ok());
    let r = control
        .post(format!("{}/_sim/faults?merchant=9", sim.base_url()))
        .json(&FaultRule::parse("500").unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    // Stats count per merchant.
    let stats: serde_json::Value = control
        .get(format!("{}/_sim/stats", sim.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let merchants = stats["merchants"].as_array().unwrap();
    assert_eq!(merchants.len(), 3);
    for (i, m) in merchants.iter().enumerate() {
        assert_eq!(m["requests"].as_u64(), Some(sim.merchant(i).requests()));
        assert!(sim.merchant(i).requests() > 0);
    }
}
