//! Property tests: `diff` over random histories of one invoice, and the
//! page parser over random input (it may refuse, it must never panic).

use std::collections::HashSet;

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::Value;

use poomgo_notifier::diff::{DiffContext, Observation, Snapshot, diff};
use poomgo_notifier::event::{EventType, Field};
use poomgo_notifier::poomgo::{Invoice, InvoiceId, Row, parse_page};
use poomgo_notifier::status::StatusTable;

const CODES: [Option<&str>; 4] = [
    None,
    Some("INVOICE_CARGO_STATUS_PICKEDUP"),
    Some("INVOICE_CARGO_STATUS_OUTFORDELIVERY"),
    Some("INVOICE_CARGO_STATUS_DELIVERYCOMPLETED"),
];

/// What one poll's row says: a field may be left out (None).
#[derive(Debug, Clone)]
struct Seen {
    printed: Option<bool>,
    closed: Option<bool>,
    cargo: Option<&'static str>,
    code: Option<&'static str>,
    canceled: bool,
}

fn seen() -> impl Strategy<Value = Seen> {
    (
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        0..CODES.len(),
        proptest::option::of(prop_oneof![Just("380424004285"), Just("380424009999")]),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(printed, closed, cargo, code, canceled)| Seen {
            printed,
            closed,
            cargo: CODES[cargo],
            code,
            canceled,
        })
}

fn row() -> Row {
    serde_json::from_value(serde_json::json!({ "id": 1, "orderCode": "20261201_000001" })).unwrap()
}

/// The state a snapshot should hold after `seen`, computed independently.
fn expected(
    previous: Option<&Snapshot>,
    s: &Seen,
) -> (Option<String>, bool, bool, Option<String>, bool) {
    (
        s.code
            .map(str::to_owned)
            .or_else(|| previous.and_then(|p| p.invoice_code.clone())),
        s.printed
            .or(previous.map(|p| p.is_printed))
            .unwrap_or(false),
        s.closed.or(previous.map(|p| p.is_closed)).unwrap_or(false),
        s.cargo.map(str::to_owned),
        s.canceled,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn diff_reports_exactly_the_changes_with_increasing_revisions(history in prop::collection::vec(seen(), 1..25), baseline in any::<bool>()) {
        let statuses = StatusTable::default();
        let row = row();
        let mut previous: Option<Snapshot> = None;
        let mut ids = HashSet::new();
        for (step, s) in history.iter().enumerate() {
            let invoice = Invoice {
                invoice_id: InvoiceId("77".into()),
                invoice_code: s.code.map(str::to_owned),
                is_printed: s.printed,
                is_closed: s.closed,
                cargo_status_code_key: s.cargo.map(str::to_owned),
                logistics_partner_name: None,
            };
            let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap() + chrono::Duration::minutes(step as i64 * 5);
            let ctx = DiffContext { now, statuses: &statuses, baseline: baseline && step == 0 };
            let d = diff(previous.as_ref(), Observation { row: &row, invoice: &invoice, canceled: s.canceled }, &ctx);
            let (code, printed, closed, cargo, canceled) = expected(previous.as_ref(), s);
            prop_assert_eq!(&d.snapshot.invoice_code, &code);
            prop_assert_eq!((d.snapshot.is_printed, d.snapshot.is_closed, d.snapshot.canceled), (printed, closed, canceled));
            prop_assert_eq!(&d.snapshot.cargo_status_code_key, &cargo);

            let mut fields = Vec::new();
            match &previous {
                None if !ctx.baseline => {
                    fields.push(Field::InvoiceId);
                    if canceled { fields.push(Field::Canceled); }
                }
                None => {}
                Some(p) => {
                    if p.cargo_status_code_key != cargo { fields.push(Field::CargoStatusCodeKey); }
                    if p.is_printed != printed { fields.push(Field::IsPrinted); }
                    if p.is_closed != closed { fields.push(Field::IsClosed); }
                    if p.invoice_code != code { fields.push(Field::InvoiceCode); }
                    if p.canceled != canceled { fields.push(Field::Canceled); }
                }
            }
            let rev_before = previous.as_ref().map_or(0, |p| p.rev);
            match &d.event {
                None => {
                    prop_assert!(fields.is_empty(), "a change went unreported: {:?}", fields);
                    prop_assert_eq!(d.snapshot.rev, rev_before);
                }
                Some(e) => {
                    let got: Vec<Field> = e.changes.iter().map(|c| c.field).collect();
                    prop_assert_eq!(&got, &fields);
                    prop_assert_eq!(d.snapshot.rev, rev_before + 1);
                    prop_assert_eq!(&e.id, &format!("77-{}", d.snapshot.rev));
                    prop_assert!(ids.insert(e.id.clone()), "event id {} reused", e.id);
                    let top: EventType = e.kinds().max().unwrap();
                    prop_assert_eq!(e.kind, top);
                    prop_assert!(d.needs_write);
                }
            }
            previous = Some(d.snapshot);
        }
    }

    #[test]
    fn the_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_page(&bytes);
    }

    #[test]
    fn the_parser_never_panics_on_json_of_any_shape(rows in prop::collection::vec(json(), 0..5), total in json()) {
        let body = serde_json::json!({ "total": total, "rows": rows });
        let _ = parse_page(body.to_string().as_bytes());
        let wrapped = serde_json::json!({ "total": "1", "rows": [{ "id": 1, "invoices": rows }] });
        let _ = parse_page(wrapped.to_string().as_bytes());
    }
}

fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "[a-zA-Z0-9 가-힣\"\\\\]{0,8}".prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("invoiceId".to_owned()),
                    Just("isPrinted".to_owned()),
                    Just("invoices".to_owned()),
                    Just("id".to_owned()),
                    "[a-z]{1,6}".prop_map(String::from)
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}
