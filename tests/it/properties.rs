//! Property tests: `diff` over random histories of one invoice; the whole
//! read path (parse → group → diff) over random pages with omitted keys,
//! wrong types, repeated rows and reordered pages; and the page parser over
//! random input (it may refuse the envelope, it must never panic).

use std::collections::{HashMap, HashSet};

use chrono::{TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{Value, json};

use poomgo_notifier::diff::{DiffContext, Observation, Prior, Snapshot, diff};
use poomgo_notifier::event::{EventType, Field};
use poomgo_notifier::poll::group_page;
use poomgo_notifier::poomgo::{Invoice, InvoiceId, Reported, Row, parse_page};
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
    /// None: the key is absent; Some(None): null.
    cargo: Option<Option<&'static str>>,
    code: Option<&'static str>,
    canceled: bool,
}

fn seen() -> impl Strategy<Value = Seen> {
    (
        proptest::option::of(any::<bool>()),
        proptest::option::of(any::<bool>()),
        proptest::option::of(0..CODES.len()),
        proptest::option::of(prop_oneof![Just("380424004285"), Just("380424009999")]),
        prop::bool::weighted(0.1),
    )
        .prop_map(|(printed, closed, cargo, code, canceled)| Seen {
            printed,
            closed,
            cargo: cargo.map(|c| CODES[c]),
            code,
            canceled,
        })
}

fn row() -> Row {
    Row {
        id: Some(1),
        order_code: Some("20261201_000001".into()),
        ..Row::default()
    }
}

/// The state a snapshot should hold after `seen`, computed independently:
/// a reported value replaces the stored one, an absent key keeps it.
/// (`None` is "never reported".)
#[allow(clippy::type_complexity)]
fn expected(
    previous: Option<&Snapshot>,
    s: &Seen,
) -> (
    Option<Option<String>>,
    Option<bool>,
    Option<bool>,
    Option<Option<String>>,
    bool,
) {
    (
        s.code
            .map(|c| Some(c.to_owned()))
            .or_else(|| previous.and_then(|p| p.invoice_code.clone())),
        s.printed.or(previous.and_then(|p| p.is_printed)),
        s.closed.or(previous.and_then(|p| p.is_closed)),
        match s.cargo {
            Some(c) => Some(c.map(str::to_owned)),
            None => previous.and_then(|p| p.cargo_status_code_key.clone()),
        },
        s.canceled,
    )
}

/// A known value replaced by another.
fn differs<T: PartialEq>(old: &Option<T>, new: &Option<T>) -> bool {
    matches!((old, new), (Some(o), Some(n)) if o != n)
}

fn ctx<'a>(statuses: &'a StatusTable, step: usize, baseline: bool) -> DiffContext<'a> {
    DiffContext {
        now: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
            + chrono::Duration::minutes(step as i64 * 5),
        statuses,
        baseline,
        generation: "g1",
        merchant: "default",
    }
}

/// The tracked truth of one invoice in the model of the upstream.
#[derive(Debug, Clone, PartialEq)]
struct Truth {
    printed: bool,
    closed: bool,
    cargo: usize,
    code: usize,
    canceled: bool,
}

/// How one listing presents one tracked key.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Shown {
    Value,
    Omitted,
    WrongType,
}

fn shown() -> impl Strategy<Value = Shown> {
    prop_oneof![
        6 => Just(Shown::Value),
        2 => Just(Shown::Omitted),
        1 => Just(Shown::WrongType),
    ]
}

/// One poll as the upstream shows it: per invoice, how each key is shown,
/// whether its row is repeated, and how the rows are split and ordered.
#[derive(Debug, Clone)]
struct Presentation {
    keys: Vec<[Shown; 4]>,
    repeat: Vec<bool>,
    order: Vec<usize>,
    page_size: usize,
    reverse_pages: bool,
}

const INVOICES: usize = 4;
const CODE_VALUES: [&str; 2] = ["380424004285", "380424009999"];

fn presentation() -> impl Strategy<Value = Presentation> {
    (
        prop::collection::vec(prop::array::uniform4(shown()), INVOICES),
        prop::collection::vec(prop::bool::weighted(0.3), INVOICES),
        Just((0..INVOICES * 2).collect::<Vec<_>>()).prop_shuffle(),
        1..4usize,
        any::<bool>(),
    )
        .prop_map(
            |(keys, repeat, order, page_size, reverse_pages)| Presentation {
                keys,
                repeat,
                order,
                page_size,
                reverse_pages,
            },
        )
}

fn truth() -> impl Strategy<Value = Truth> {
    (
        any::<bool>(),
        any::<bool>(),
        0..CODES.len(),
        0..2usize,
        prop::bool::weighted(0.15),
    )
        .prop_map(|(printed, closed, cargo, code, canceled)| Truth {
            printed,
            closed,
            cargo,
            code,
            canceled,
        })
}

/// The JSON pages of one poll.
fn pages(truths: &[Truth], p: &Presentation) -> Vec<Vec<u8>> {
    let mut rows = Vec::new();
    for (i, t) in truths.iter().enumerate() {
        let mut inv = serde_json::Map::new();
        inv.insert("invoiceId".into(), json!(1000 + i));
        let values = [
            ("isPrinted", json!(t.printed), json!("yes")),
            ("isClosed", json!(t.closed), json!(1)),
            ("cargoStatusCodeKey", json!(CODES[t.cargo]), json!(["x"])),
            ("invoiceCode", json!(CODE_VALUES[t.code]), json!({"a": 1})),
        ];
        for ((key, value, wrong), how) in values.into_iter().zip(p.keys[i]) {
            match how {
                Shown::Value => {
                    inv.insert(key.into(), value);
                }
                Shown::Omitted => {}
                Shown::WrongType => {
                    inv.insert(key.into(), wrong);
                }
            }
        }
        let list = if t.canceled {
            "canceledInvoices"
        } else {
            "invoices"
        };
        let row = json!({ "id": i, "orderCode": format!("o{i}"), list: [Value::Object(inv)],
                          "receiverData": { "mobile": 1012345678 } });
        rows.push((i * 2, row.clone()));
        if p.repeat[i] {
            rows.push((i * 2 + 1, row));
        }
    }
    rows.sort_by_key(|(slot, _)| p.order.iter().position(|o| o == slot));
    let rows: Vec<Value> = rows.into_iter().map(|(_, r)| r).collect();
    let mut chunks: Vec<Vec<u8>> = rows
        .chunks(p.page_size)
        .map(|c| {
            json!({ "total": rows.len().to_string(), "rows": c })
                .to_string()
                .into_bytes()
        })
        .collect();
    if p.reverse_pages {
        chunks.reverse();
    }
    chunks
}

/// One poll through the real read path: parse, group, diff. Returns the
/// events, keyed by invoice id; an invoice is diffed once per poll.
fn read(
    store: &mut HashMap<String, Snapshot>,
    pages: &[Vec<u8>],
    statuses: &StatusTable,
    step: usize,
    baseline: bool,
) -> Vec<(String, poomgo_notifier::event::Event)> {
    let ctx = ctx(statuses, step, baseline);
    let mut seen = HashSet::new();
    let mut skipped = HashSet::new();
    let mut events = Vec::new();
    let parsed: Vec<_> = pages.iter().map(|b| parse_page(b).unwrap()).collect();
    for page in &parsed {
        skipped.extend(page.skipped.iter().filter_map(|s| s.invoice_id.clone()));
    }
    for page in &parsed {
        for group in group_page(&page.rows) {
            let id = group.invoice.invoice_id.to_string();
            if skipped.contains(&id) || !seen.insert(id.clone()) {
                continue;
            }
            let d = diff(
                Prior::from_store(store.get(&id), None),
                Observation {
                    invoice: &group.invoice,
                    rows: &group.rows,
                    canceled: group.all_canceled,
                    vouching_row: None,
                },
                &ctx,
            );
            if let Some(e) = d.event {
                events.push((id.clone(), e));
            }
            store.insert(id, d.snapshot);
        }
    }
    events
}

fn truth_value(t: &Truth, field: Field) -> Value {
    match field {
        Field::IsPrinted => json!(t.printed),
        Field::IsClosed => json!(t.closed),
        Field::CargoStatusCodeKey => json!(CODES[t.cargo]),
        Field::InvoiceCode => json!(CODE_VALUES[t.code]),
        Field::Canceled => json!(t.canceled),
        Field::InvoiceId => Value::Null,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn diff_reports_exactly_the_changes_with_increasing_revisions(history in prop::collection::vec(seen(), 1..25), baseline in any::<bool>()) {
        let statuses = StatusTable::default();
        let row = row();
        let mut previous: Option<Snapshot> = None;
        let mut ids = HashSet::new();
        for (step, s) in history.iter().enumerate() {
            let invoice = Invoice {
                invoice_id: InvoiceId("77".into()),
                invoice_code: s.code.map_or(Reported::Absent, |c| Reported::Value(c.to_owned())),
                is_printed: s.printed,
                is_closed: s.closed,
                cargo_status_code_key: match s.cargo {
                    None => Reported::Absent,
                    Some(c) => c.map(str::to_owned).into(),
                },
                logistics_partner_name: None,
            };
            let ctx = ctx(&statuses, step, baseline && step == 0);
            let d = diff(Prior::from_store(previous.as_ref(), None), Observation { invoice: &invoice, rows: &[&row], canceled: s.canceled, vouching_row: None }, &ctx);
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
                    if differs(&p.cargo_status_code_key, &cargo) { fields.push(Field::CargoStatusCodeKey); }
                    if differs(&p.is_printed, &printed) { fields.push(Field::IsPrinted); }
                    if differs(&p.is_closed, &closed) { fields.push(Field::IsClosed); }
                    if differs(&p.invoice_code, &code) { fields.push(Field::InvoiceCode); }
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
                    prop_assert_eq!(&e.id, &format!("g1-77-{}", d.snapshot.rev));
                    prop_assert!(ids.insert(e.id.clone()), "event id {} reused", e.id);
                    let top: EventType = e.kinds().max().unwrap();
                    prop_assert_eq!(e.kind, top);
                    // A reversal is never typed as the thing it undoes.
                    for c in &e.changes {
                        if c.field == Field::Canceled && c.to == Value::Bool(false) {
                            prop_assert_ne!(e.kind, EventType::Canceled);
                        }
                    }
                    prop_assert!(d.needs_write);
                }
            }
            previous = Some(d.snapshot);
        }
    }

    /// The property: whatever the pages look like (keys left out,
    /// wrong types, repeated rows, pages in any order), no invoice whose
    /// tracked fields did not change gets an event, every reported change
    /// is to the upstream's true value, and reading the same pages again
    /// produces nothing.
    #[test]
    fn odd_pages_never_invent_a_change(
        start in prop::collection::vec(truth(), INVOICES),
        steps in prop::collection::vec(
            (prop::collection::vec(proptest::option::of(truth()), INVOICES), presentation()),
            1..8,
        ),
        first in presentation(),
    ) {
        let statuses = StatusTable::default();
        let mut store = HashMap::new();
        let mut truths = start;
        read(&mut store, &pages(&truths, &first), &statuses, 0, true);
        // What the store should hold: the truth as last reported, per invoice.
        let mut changed_since: Vec<bool> = vec![false; INVOICES];
        for (step, (moves, presentation)) in steps.iter().enumerate() {
            for (i, m) in moves.iter().enumerate() {
                if let Some(t) = m && *t != truths[i] {
                    truths[i] = t.clone();
                    changed_since[i] = true;
                }
            }
            let pages = pages(&truths, presentation);
            let events = read(&mut store, &pages, &statuses, step + 1, false);
            let mut with_event = HashSet::new();
            for (id, e) in &events {
                let i: usize = id.parse::<usize>().unwrap() - 1000;
                prop_assert!(with_event.insert(i), "two events for one invoice in one poll");
                if !store_was_new(e) {
                    prop_assert!(changed_since[i], "invoice {} unchanged upstream, yet {:?}", id, e.changes);
                }
                for c in &e.changes {
                    prop_assert_ne!(&c.from, &c.to);
                    if c.field != Field::InvoiceId {
                        prop_assert_eq!(&c.to, &truth_value(&truths[i], c.field), "{:?}", c);
                    }
                }
            }
            // An invoice whose every key was shown and readable is now in sync.
            for (dirty, keys) in changed_since.iter_mut().zip(&presentation.keys) {
                if keys.iter().all(|k| matches!(k, Shown::Value)) {
                    *dirty = false;
                }
            }
            let again = read(&mut store, &pages, &statuses, step + 1, false);
            prop_assert!(again.is_empty(), "the same rows read twice: {:?}", again);
        }
    }

    /// A snapshot read back as a listing that reports every field is no change.
    #[test]
    fn a_snapshot_against_itself_yields_nothing(t in truth(), rev in 0u64..50) {
        let statuses = StatusTable::default();
        let snapshot = Snapshot {
            rev,
            invoice_code: Some(Some(CODE_VALUES[t.code].into())),
            is_printed: Some(t.printed),
            is_closed: Some(t.closed),
            cargo_status_code_key: Some(CODES[t.cargo].map(str::to_owned)),
            canceled: t.canceled,
            is_final: false,
            last_seen: 0,
            orders: Vec::new(),
            vouched_by: None,
        };
        let invoice = Invoice {
            invoice_id: InvoiceId("1".into()),
            invoice_code: Reported::Value(CODE_VALUES[t.code].into()),
            is_printed: Some(t.printed),
            is_closed: Some(t.closed),
            cargo_status_code_key: CODES[t.cargo].map(str::to_owned).into(),
            logistics_partner_name: None,
        };
        let row = row();
        let d = diff(Prior::Known(&snapshot), Observation { invoice: &invoice, rows: &[&row], canceled: t.canceled, vouching_row: None }, &ctx(&statuses, 1, false));
        prop_assert!(d.event.is_none(), "{:?}", d.event);
        prop_assert_eq!(d.snapshot.rev, rev);
    }

    /// Applying an event's changes to the old snapshot gives the new one.
    #[test]
    fn an_events_changes_turn_the_old_snapshot_into_the_new(old in truth(), s in seen()) {
        let statuses = StatusTable::default();
        let previous = Snapshot {
            rev: 3,
            invoice_code: Some(Some(CODE_VALUES[old.code].into())),
            is_printed: Some(old.printed),
            is_closed: Some(old.closed),
            cargo_status_code_key: Some(CODES[old.cargo].map(str::to_owned)),
            canceled: old.canceled,
            is_final: false,
            last_seen: 0,
            orders: Vec::new(),
            vouched_by: None,
        };
        let invoice = Invoice {
            invoice_id: InvoiceId("1".into()),
            invoice_code: s.code.map_or(Reported::Absent, |c| Reported::Value(c.to_owned())),
            is_printed: s.printed,
            is_closed: s.closed,
            cargo_status_code_key: match s.cargo { None => Reported::Absent, Some(c) => c.map(str::to_owned).into() },
            logistics_partner_name: None,
        };
        let row = row();
        let d = diff(Prior::Known(&previous), Observation { invoice: &invoice, rows: &[&row], canceled: s.canceled, vouching_row: None }, &ctx(&statuses, 1, false));
        let mut applied = previous.clone();
        for c in d.event.iter().flat_map(|e| &e.changes) {
            match c.field {
                Field::IsPrinted => applied.is_printed = c.to.as_bool(),
                Field::IsClosed => applied.is_closed = c.to.as_bool(),
                Field::CargoStatusCodeKey => applied.cargo_status_code_key = Some(c.to.as_str().map(str::to_owned)),
                Field::InvoiceCode => applied.invoice_code = Some(c.to.as_str().map(str::to_owned)),
                Field::Canceled => applied.canceled = c.to.as_bool().unwrap(),
                Field::InvoiceId => {}
            }
        }
        prop_assert_eq!(
            (&applied.invoice_code, applied.is_printed, applied.is_closed, &applied.cargo_status_code_key, applied.canceled),
            (&d.snapshot.invoice_code, d.snapshot.is_printed, d.snapshot.is_closed, &d.snapshot.cargo_status_code_key, d.snapshot.canceled)
        );
    }

    /// The order in which pages arrive does not change the events.
    #[test]
    fn the_order_of_pages_does_not_change_the_events(
        start in prop::collection::vec(truth(), INVOICES),
        next in prop::collection::vec(truth(), INVOICES),
        p in presentation(),
    ) {
        let statuses = StatusTable::default();
        let all = Presentation { keys: vec![[Shown::Value; 4]; INVOICES], ..p.clone() };
        let mut a = HashMap::new();
        read(&mut a, &pages(&start, &all), &statuses, 0, true);
        let mut b = a.clone();
        let forward = pages(&next, &Presentation { reverse_pages: false, ..p.clone() });
        let mut backward = forward.clone();
        backward.reverse();
        let key = |events: Vec<(String, poomgo_notifier::event::Event)>| {
            let mut v: Vec<(String, String)> = events
                .into_iter()
                .map(|(id, e)| (id, serde_json::to_string(&e.changes).unwrap()))
                .collect();
            v.sort();
            v
        };
        prop_assert_eq!(key(read(&mut a, &forward, &statuses, 1, false)), key(read(&mut b, &backward, &statuses, 1, false)));
    }

    #[test]
    fn the_parser_never_panics_on_bytes(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        let _ = parse_page(&bytes);
    }

    #[test]
    fn the_parser_never_fails_a_page_for_anything_inside_its_rows(rows in prop::collection::vec(json(), 0..5), total in json()) {
        let body = serde_json::json!({ "total": total, "rows": rows });
        let _ = parse_page(body.to_string().as_bytes());
        let wrapped = serde_json::json!({ "total": "1", "rows": [{ "id": 1, "invoices": rows.clone() }] });
        prop_assert!(parse_page(wrapped.to_string().as_bytes()).is_ok());
        let as_rows = serde_json::json!({ "total": "9", "rows": rows });
        prop_assert!(parse_page(as_rows.to_string().as_bytes()).is_ok());
    }
}

/// A first sighting (after the baseline, only an invoice the baseline never
/// saw, e.g. skipped then): not a change of tracked fields.
fn store_was_new(e: &poomgo_notifier::event::Event) -> bool {
    e.changes.iter().any(|c| c.field == Field::InvoiceId)
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
                    Just("canceledInvoices".to_owned()),
                    Just("cargoStatusCodeKey".to_owned()),
                    Just("receiverData".to_owned()),
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
