//! The whole pipeline: simulator → poll (diff, sled commit) → delivery to
//! wiremock receivers, asserting bodies, headers and signatures.

use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use wiremock::MockServer;

use poomgo_notifier::poll::{PollOptions, deliver_all, poll};
use poomgo_notifier::sim::merchant::{STATUS_DELIVERED, STATUS_OUTFORDELIVERY};

use crate::support::{
    SECRET, pipeline_app, received, receiver, simulator, verify_signature, without_generation,
};

fn targets(server: &MockServer) -> String {
    format!(
        r#"
[[targets]]
name = "erp"
kind = "webhook"
url = "{0}/erp"
secret = "{SECRET}"
include_personal_data = true
[[targets]]
name = "wms"
kind = "webhook"
url = "{0}/wms"
events = ["invoice.printed"]
[[targets]]
name = "cs-slack"
kind = "slack"
url = "{0}/slack"
events = ["invoice.status_changed", "invoice.canceled"]
"#,
        server.uri()
    )
}

#[tokio::test]
async fn baseline_is_silent_then_each_change_reaches_the_targets_that_want_it() {
    let sim = simulator(300).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(&sim, dir.path(), &targets(&server));

    let report = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert!(report.baseline);
    assert_eq!(report.events, 0);
    assert_eq!(report.invoices_seen as usize, sim.invoices().len());
    assert_eq!(deliver_all(&app).await.unwrap().delivered, 0);
    assert!(
        server.received_requests().await.unwrap().is_empty(),
        "the baseline sends nothing"
    );

    // Two changes: one parcel delivered (its product name has quotes and
    // angle brackets), one label printed.
    let (delivered, printed) = sim.with_merchant(|m| {
        let o = m
            .orders
            .iter_mut()
            .find(|o| {
                o.invoices
                    .iter()
                    .any(|i| i.cargo == Some(STATUS_OUTFORDELIVERY))
            })
            .unwrap();
        o.deal = "무선 키보드 \"K10\" <블랙> & 케이블\\";
        let i = o
            .invoices
            .iter()
            .position(|i| i.cargo == Some(STATUS_OUTFORDELIVERY))
            .unwrap();
        o.invoices[i].cargo = Some(STATUS_DELIVERED);
        let delivered = (o.clone(), o.invoices[i].clone());
        let o = m
            .orders
            .iter_mut()
            .find(|o| o.invoices.iter().any(|i| !i.printed))
            .unwrap();
        let i = o.invoices.iter_mut().find(|i| !i.printed).unwrap();
        i.printed = true;
        (delivered, i.id)
    });
    let now = Utc::now();
    let report = poll(&app, PollOptions::default(), now).await.unwrap();
    assert!(!report.baseline);
    assert_eq!(report.events, 2);
    let d = deliver_all(&app).await.unwrap();
    assert_eq!(
        (d.delivered, d.pending, d.failures.len()),
        (2 + 1 + 1, 0, 0)
    );

    // erp: both events, signed, with personal data.
    let erp = received(&server, "/erp").await;
    assert_eq!(erp.len(), 2);
    let (order, invoice) = delivered;
    let body: Value = serde_json::from_slice(
        &erp.iter()
            .find(|r| {
                serde_json::from_slice::<Value>(&r.body).unwrap()["invoice"]["invoiceId"].as_str()
                    == Some(invoice.id.to_string().as_str())
            })
            .unwrap()
            .body,
    )
    .unwrap();
    let order_json = json!({
        "id": order.id, "orderCode": order.order_code, "code": order.code,
        "channelName": order.channel, "releaseCode": order.release_code,
        "dealName": "무선 키보드 \"K10\" <블랙> & 케이블\\", "dealOptionName": order.option,
        "orderAt": order.order_at.to_rfc3339_opts(SecondsFormat::Millis, true),
        "createdAt": order.created_at.to_rfc3339_opts(SecondsFormat::Millis, true),
    });
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(without_generation(&id), format!("{}-1", invoice.id));
    let expected = json!({
        "id": id,
        "type": "invoice.status_changed",
        "merchant": "default",
        "detectedAt": now.to_rfc3339_opts(SecondsFormat::Secs, true),
        "order": order_json,
        "orders": [order_json],
        "invoice": {
            "invoiceId": invoice.id.to_string(), "invoiceCode": invoice.code,
            "logisticsPartnerName": invoice.partner, "cargoStatusCodeKey": STATUS_DELIVERED,
            "trackingUrl": poomgo_notifier::status::StatusTable::default()
                .tracking_url(Some(invoice.partner), Some(&invoice.code)),
            "status": { "label": "배송완료", "labelEn": "Delivered", "category": "delivered", "final": true, "emoji": "✅" },
            "isPrinted": true, "isClosed": true, "canceled": false,
        },
        "changes": [{ "field": "cargoStatusCodeKey", "from": STATUS_OUTFORDELIVERY, "to": STATUS_DELIVERED }],
        "receiver": serde_json::to_value(&order.receiver).unwrap(),
        "customer": serde_json::to_value(&order.customer).unwrap(),
    });
    assert_eq!(body, expected);
    for r in &erp {
        let id = r.headers.get("webhook-id").unwrap().to_str().unwrap();
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["id"], id, "webhook-id is the event id");
        assert!(
            verify_signature(SECRET, &r.headers, &r.body),
            "signature verifies"
        );
        let ts: i64 = r
            .headers
            .get("webhook-timestamp")
            .unwrap()
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((Utc::now().timestamp() - ts).abs() < 60);
    }

    // wms: only the printed event, no personal data, unsigned.
    let wms = received(&server, "/wms").await;
    assert_eq!(wms.len(), 1);
    let body: Value = serde_json::from_slice(&wms[0].body).unwrap();
    assert_eq!(
        (
            body["type"].as_str(),
            without_generation(body["id"].as_str().unwrap())
        ),
        (Some("invoice.printed"), format!("{printed}-1").as_str())
    );
    assert_eq!(
        body["changes"],
        json!([{ "field": "isPrinted", "from": false, "to": true }])
    );
    assert!(body.get("receiver").is_none() && body.get("customer").is_none());
    assert!(wms[0].headers.get("webhook-signature").is_none());

    // Slack: only the status change, valid JSON despite the product name,
    // mrkdwn-escaped, and nothing personal.
    let slack = received(&server, "/slack").await;
    assert_eq!(slack.len(), 1);
    let text = std::str::from_utf8(&slack[0].body).unwrap();
    let body: Value = serde_json::from_str(text).unwrap();
    let code = order.order_code.clone();
    assert_eq!(body["text"], format!("✅ {code} 배송출발 → 배송완료"));
    assert_eq!(body["blocks"][0]["text"]["text"], body["text"]);
    let fields: Vec<&str> = body["blocks"][1]["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["text"].as_str().unwrap())
        .collect();
    assert_eq!(fields[0], "*배송 상태*\n✅ 배송완료");
    assert_eq!(fields[1], format!("*판매처*\n{}", order.channel));
    assert_eq!(
        fields[2],
        "*상품*\n무선 키보드 \"K10\" &lt;블랙&gt; &amp; 케이블\\"
    );
    assert!(
        fields[4].starts_with(&format!("*택배사 · 송장번호*\n{} ", invoice.partner))
            && fields[4].contains(&invoice.code),
        "{}",
        fields[4]
    );
    assert_eq!(
        body["blocks"][2]["elements"][0]["text"],
        format!("배송 상태 변경 · `{id}`")
    );
    for personal in [
        order.receiver.name.as_deref().unwrap(),
        order.receiver.mobile.as_deref().unwrap(),
    ] {
        assert!(!text.contains(personal), "Slack got personal data");
    }

    // Nothing changed: nothing more is sent.
    let before = server.received_requests().await.unwrap().len();
    let report = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert_eq!(report.events, 0);
    assert_eq!(deliver_all(&app).await.unwrap().delivered, 0);
    assert_eq!(server.received_requests().await.unwrap().len(), before);
}

#[tokio::test]
async fn notify_existing_announces_every_invoice_of_the_first_poll() {
    let sim = simulator(150).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(&sim, dir.path(), &targets(&server));
    let report = poll(
        &app,
        PollOptions {
            notify_existing: true,
            ..PollOptions::default()
        },
        Utc::now(),
    )
    .await
    .unwrap();
    let truth = sim.invoices();
    assert_eq!(report.events as usize, truth.len());
    deliver_all(&app).await.unwrap();
    let erp = received(&server, "/erp").await;
    assert_eq!(erp.len(), truth.len());
    let canceled = truth.iter().filter(|(_, c)| *c).count();
    assert!(canceled > 0);
    let types: Vec<String> = erp
        .iter()
        .map(|r| {
            serde_json::from_slice::<Value>(&r.body).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        types.iter().filter(|t| *t == "invoice.assigned").count(),
        truth.len() - canceled
    );
    assert_eq!(
        types.iter().filter(|t| *t == "invoice.canceled").count(),
        canceled
    );
    // Slack wants status changes and cancellations: only the canceled ones.
    assert_eq!(received(&server, "/slack").await.len(), canceled);
    // The baseline is done: the next poll announces nothing.
    let report = poll(&app, PollOptions::default(), Utc::now())
        .await
        .unwrap();
    assert_eq!((report.events, report.baseline), (0, false));
}

#[tokio::test]
async fn invoices_unseen_for_retention_days_are_pruned_and_come_back_silently() {
    let sim = simulator(400).await;
    let server = receiver(200).await;
    let dir = tempfile::tempdir().unwrap();
    let app = pipeline_app(&sim, dir.path(), &targets(&server));
    let now = Utc::now();
    poll(&app, PollOptions::default(), now).await.unwrap();
    let truth = sim.invoices();
    assert_eq!(app.store.snapshot_count(), truth.len());

    // 29 days on, no window covers these orders: nothing is seen, nothing is
    // pruned yet, and nothing is announced (never infer from absence).
    let later = poll(
        &app,
        PollOptions::default(),
        now + chrono::Duration::days(29),
    )
    .await
    .unwrap();
    assert_eq!((later.invoices_seen, later.events, later.pruned), (0, 0, 0));
    // Past `retention_days` (30): every snapshot goes, final or not, and
    // leaves a tombstone with its last revision.
    let report = poll(
        &app,
        PollOptions::default(),
        now + chrono::Duration::days(31),
    )
    .await
    .unwrap();
    assert_eq!(report.pruned as usize, truth.len());
    assert_eq!(app.store.snapshot_count(), 0);
    let (some, _) = &truth[0];
    assert_eq!(app.store.tombstone(&some.invoice_id).unwrap(), Some(0));

    // If they show up again, they are not news: recorded silently.
    let back = poll(&app, PollOptions::default(), now).await.unwrap();
    assert_eq!((back.invoices_seen as usize, back.events), (truth.len(), 0));
    assert_eq!(app.store.snapshot_count(), truth.len());
    assert!(server.received_requests().await.unwrap().is_empty());
}
