//! The messages people read: snapshot tests (insta) of the rendered Slack and
//! JANDI bodies for every change kind, an unknown status code, `null`, a
//! digest, and hostile data; every Slack body is checked against Block
//! Kit's limits, and no mention can ping anyone.

use chrono::{TimeZone, Utc};
use serde_json::Value;

use poomgo_notifier::config::Config;
use poomgo_notifier::delivery::digest::Digest;
use poomgo_notifier::event::{Event, EventType};
use poomgo_notifier::poll::Delivery;
use poomgo_notifier::samples;

const CONFIG: &str = r#"
[poomgo]
api_key = "k"
[[targets]]
name = "cs-slack"
kind = "slack"
url = "https://hooks.slack.com/services/T/B/X"
include_personal_data = true
[[targets]]
name = "cs-jandi"
kind = "jandi"
url = "https://wh.jandi.com/connect-api/webhook/1/abc"
include_personal_data = true
[[targets]]
name = "cs-en"
kind = "slack"
url = "https://hooks.slack.com/services/T/B/Y"
language = "en"
"#;

fn delivery() -> Delivery {
    let config = Config::parse(CONFIG, "test.toml", std::env::temp_dir(), &|_| None).unwrap();
    Delivery::new(&config, reqwest::Client::new()).unwrap()
}

fn now() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 10, 5, 0).unwrap()
}

/// The body `target` sends for `events` (a digest when more than one).
fn body(d: &Delivery, target: &str, events: &[Event]) -> Value {
    let target = d.targets.iter().find(|t| t.name == target).unwrap();
    let entries: Vec<_> = events
        .iter()
        .map(|e| target.entry_for(e, now().timestamp_millis()))
        .collect();
    let refs: Vec<_> = entries.iter().collect();
    let digest = (events.len() > 1).then(|| Digest::sample(events));
    let request = d
        .sender
        .request(target, &refs, digest.as_ref(), now().timestamp())
        .unwrap();
    if target.kind == poomgo_notifier::delivery::TargetKind::Jandi {
        assert_eq!(
            request.headers["accept"],
            "application/vnd.tosslab.jandi-v2+json"
        );
    }
    serde_json::from_slice(&request.body).unwrap()
}

/// Block Kit's limits, whatever the data.
fn assert_fits_block_kit(v: &Value) {
    let blocks = v["blocks"].as_array().unwrap();
    assert!(blocks.len() <= 50, "{} blocks", blocks.len());
    let chars = |t: &Value| t.as_str().unwrap().chars().count();
    for b in blocks {
        match b["type"].as_str().unwrap() {
            "header" => assert!(chars(&b["text"]["text"]) <= 150),
            "section" => {
                if !b["text"].is_null() {
                    assert!(chars(&b["text"]["text"]) <= 3000);
                }
                if let Some(fields) = b["fields"].as_array() {
                    assert!(fields.len() <= 10);
                    for f in fields {
                        assert!(chars(&f["text"]) <= 2000);
                    }
                }
            }
            _ => {}
        }
    }
    let text = v.to_string();
    for ping in ["<!channel>", "<!here>", "<!everyone>", "@here", "@channel"] {
        assert!(!text.contains(ping), "{ping} would ping: {text}");
    }
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap()
}

#[test]
fn every_change_kind_in_slack_and_jandi() {
    let d = delivery();
    for kind in EventType::ALL {
        let event = samples::event(kind, &d.statuses, now());
        let slack = body(&d, "cs-slack", std::slice::from_ref(&event));
        assert_fits_block_kit(&slack);
        let name = kind.as_str().trim_start_matches("invoice.");
        insta::assert_snapshot!(format!("slack_{name}"), pretty(&slack));
        let jandi = body(&d, "cs-jandi", std::slice::from_ref(&event));
        insta::assert_snapshot!(format!("jandi_{name}"), pretty(&jandi));
    }
}

#[test]
fn english_targets_read_english() {
    let d = delivery();
    let event = samples::event(EventType::StatusChanged, &d.statuses, now());
    let v = body(&d, "cs-en", &[event]);
    assert_fits_block_kit(&v);
    insta::assert_snapshot!("slack_en_status_changed", pretty(&v));
}

/// A status change to `code` (an unknown code, or `null` after closing).
fn status_change_to(d: &Delivery, code: Option<&str>) -> Event {
    let mut e = samples::event(EventType::StatusChanged, &d.statuses, now());
    e.changes[0].to = code.into();
    e.invoice.cargo_status_code_key = code.map(str::to_owned);
    e.invoice.status = d.statuses.lookup(code, true);
    e
}

#[test]
fn an_unknown_status_code_and_null() {
    let d = delivery();
    let unknown = status_change_to(&d, Some("INVOICE_CARGO_STATUS_CUSTOMSHOLD"));
    let v = body(&d, "cs-slack", std::slice::from_ref(&unknown));
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .contains("INVOICE_CARGO_STATUS_CUSTOMSHOLD")
    );
    insta::assert_snapshot!("slack_unknown_status", pretty(&v));
    insta::assert_snapshot!(
        "jandi_unknown_status",
        pretty(&body(&d, "cs-jandi", &[unknown]))
    );

    let null = status_change_to(&d, None);
    let v = body(&d, "cs-slack", std::slice::from_ref(&null));
    assert!(
        v["text"]
            .as_str()
            .unwrap()
            .ends_with("배송출발 → 택배사 연동 대기")
    );
    insta::assert_snapshot!("slack_null_status", pretty(&v));
    insta::assert_snapshot!("jandi_null_status", pretty(&body(&d, "cs-jandi", &[null])));
}

#[test]
fn hostile_data_never_breaks_a_message_or_pings_anyone() {
    let d = delivery();
    let nasty =
        "\"quoted\" back\\slash <b>&amp; 🚚 line\nbreak <!channel> @here <!here|here> @channel";
    let mut e = samples::event(EventType::StatusChanged, &d.statuses, now());
    e.order.deal_name = Some(format!("{}{nasty}", "가".repeat(5000)));
    e.order.deal_option_name = Some(nasty.into());
    e.order.channel_name = Some(nasty.into());
    e.order.order_code = Some(format!("20261201_000123 {nasty}"));
    e.invoice.logistics_partner_name = Some(nasty.into());
    e.invoice.invoice_code = Some(nasty.into());
    if let Some(r) = e.receiver.as_mut() {
        r.name = Some(nasty.into());
        r.mobile = Some(nasty.into());
    }
    let slack = body(&d, "cs-slack", std::slice::from_ref(&e));
    assert_fits_block_kit(&slack);
    insta::assert_snapshot!("slack_hostile", pretty(&slack));
    let jandi = body(&d, "cs-jandi", std::slice::from_ref(&e));
    assert!(jandi.to_string().len() < 20_000);
    insta::assert_snapshot!("jandi_hostile", pretty(&jandi));
    // A burst of hostile events is a digest that still fits.
    let burst: Vec<Event> = (0..45).map(|_| e.clone()).collect();
    assert_fits_block_kit(&body(&d, "cs-slack", &burst));
}

#[test]
fn a_digest_in_slack_and_jandi() {
    let d = delivery();
    let events = samples::all(&d.statuses, now());
    let slack = body(&d, "cs-slack", &events);
    assert_fits_block_kit(&slack);
    insta::assert_snapshot!("slack_digest", pretty(&slack));
    insta::assert_snapshot!("jandi_digest", pretty(&body(&d, "cs-jandi", &events)));
}
