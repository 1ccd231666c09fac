//! Sample events of every change kind, made by the real [`diff`] from a
//! sample order, so `check` and `preview` render exactly what production
//! would. The personal data in them is made up.

use chrono::{DateTime, Utc};

use crate::diff::{DiffContext, Observation, Prior, Snapshot, diff};
use crate::event::{Event, EventType};
use crate::poomgo::{Invoice, InvoiceId, Person, Reported, Row};
use crate::status::StatusTable;

const OUT: &str = "INVOICE_CARGO_STATUS_OUTFORDELIVERY";
const DELIVERED: &str = "INVOICE_CARGO_STATUS_DELIVERYCOMPLETED";

fn row() -> Row {
    let person = Person {
        name: Some("홍길동".into()),
        phone: Some("02-0000-0000".into()),
        mobile: Some("010-0000-0000".into()),
        address: Some("서울특별시 강남구 테헤란로 1, 4층".into()),
        postcode: Some("06236".into()),
    };
    Row {
        id: Some(1001),
        channel_name: Some("스마트스토어".into()),
        order_code: Some("20261201_000123".into()),
        code: Some("2026120100000123".into()),
        subsidiary_code: None,
        release_code: Some("R20261201000123".into()),
        receiver_data: Some(person.clone()),
        customer_data: Some(Person {
            postcode: None,
            ..person
        }),
        deal_name: Some("무선 키보드 \"K10\" <블랙> & 케이블".into()),
        deal_option_name: Some("블랙".into()),
        created_at: Some("2026-12-01T01:02:03.004Z".into()),
        order_at: Some("2026-12-01T00:59:00.000Z".into()),
        invoices: Vec::new(),
        canceled_invoices: Vec::new(),
    }
}

fn invoice(printed: bool, closed: bool, cargo: Option<&str>, code: &str) -> Invoice {
    Invoice {
        invoice_id: InvoiceId("456000".into()),
        invoice_code: Reported::Value(code.into()),
        is_printed: Some(printed),
        is_closed: Some(closed),
        cargo_status_code_key: cargo.map(str::to_owned).into(),
        logistics_partner_name: Some("CJ대한통운".into()),
    }
}

fn snapshot(printed: bool, closed: bool, cargo: Option<&str>) -> Snapshot {
    Snapshot {
        rev: 2,
        invoice_code: Some(Some("380424004285".into())),
        is_printed: Some(printed),
        is_closed: Some(closed),
        cargo_status_code_key: Some(cargo.map(str::to_owned)),
        canceled: false,
        is_final: false,
        last_seen: 0,
        orders: Vec::new(),
        vouched_by: None,
    }
}

/// One sample event of `kind`.
pub fn event(kind: EventType, statuses: &StatusTable, now: DateTime<Utc>) -> Event {
    let code = "380424004285";
    let (previous, seen, canceled) = match kind {
        EventType::Assigned => (None, invoice(false, false, None, code), false),
        EventType::Printed => (
            Some(snapshot(false, false, None)),
            invoice(true, false, None, code),
            false,
        ),
        EventType::Unprinted => (
            Some(snapshot(true, false, None)),
            invoice(false, false, None, code),
            false,
        ),
        EventType::Closed => (
            Some(snapshot(true, false, None)),
            invoice(true, true, None, code),
            false,
        ),
        EventType::Unclosed => (
            Some(snapshot(true, true, None)),
            invoice(true, false, None, code),
            false,
        ),
        EventType::CodeChanged => (
            Some(snapshot(true, true, Some(OUT))),
            invoice(true, true, Some(OUT), "380424009999"),
            false,
        ),
        EventType::StatusChanged => (
            Some(snapshot(true, true, Some(OUT))),
            invoice(true, true, Some(DELIVERED), code),
            false,
        ),
        EventType::Uncanceled => (
            Some(Snapshot {
                canceled: true,
                is_final: true,
                ..snapshot(true, false, None)
            }),
            invoice(true, false, None, code),
            false,
        ),
        EventType::Canceled => (
            Some(snapshot(true, false, None)),
            invoice(true, false, None, code),
            true,
        ),
    };
    let row = row();
    let ctx = DiffContext {
        now,
        statuses,
        baseline: false,
        generation: "g5a3f1e",
        merchant: crate::merchant::DEFAULT,
    };
    diff(
        Prior::from_store(previous.as_ref(), None),
        Observation {
            invoice: &seen,
            rows: &[&row],
            canceled,
            vouching_row: None,
        },
        &ctx,
    )
    .event
    .expect("every sample is a change")
}

/// One sample event of every kind.
pub fn all(statuses: &StatusTable, now: DateTime<Utc>) -> Vec<Event> {
    EventType::ALL
        .into_iter()
        .map(|k| event(k, statuses, now))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn there_is_a_sample_of_every_kind() {
        let events = all(&StatusTable::default(), Utc::now());
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, EventType::ALL);
    }
}
