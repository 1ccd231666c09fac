//! Change detection, pure: the stored snapshot of an invoice and what a row
//! says of it now go in; the new snapshot and at most one event come out.
//! No I/O, no clock (the time is passed in), so every rule is a unit test.
//!
//! Rules:
//! - **Only what a row says counts.** A field the row leaves out (`isPrinted`,
//!   `isClosed`, `invoiceCode` absent) keeps its stored value; an invoice
//!   missing from a poll is never passed here at all.
//! - **Every field change is listed**, reverse flips included (`isPrinted`
//!   true → false on a reprint, an invoice leaving `canceledInvoices`).
//! - **First sight** is `invoice.assigned` (with `canceled` too when the
//!   invoice is first seen already canceled), or nothing during the baseline.
//! - **Revisions**: the snapshot's `rev` goes up by one per event, and the
//!   event id is `<invoiceId>-<rev>`. A crash before the commit re-detects
//!   the same change from the same snapshot, so it gets the same id.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Change, Event, EventType, Field, InvoiceInfo, OrderInfo};
use crate::poomgo::{Invoice, Row};
use crate::status::StatusTable;

/// What the store keeps of one invoice between polls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Events emitted for this invoice so far (0 after a silent baseline).
    pub rev: u64,
    pub invoice_code: Option<String>,
    pub is_printed: bool,
    pub is_closed: bool,
    pub cargo_status_code_key: Option<String>,
    pub canceled: bool,
    /// Delivered, returned or canceled: prunable once unseen for `retention_days`.
    pub is_final: bool,
    /// When a poll last saw it (Unix seconds). Refreshed at most daily, see
    /// [`Detection::needs_write`].
    pub last_seen: i64,
}

/// One invoice as a row shows it now.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    pub row: &'a Row,
    pub invoice: &'a Invoice,
    /// Listed in `canceledInvoices` rather than `invoices`.
    pub canceled: bool,
}

/// Everything `diff` needs besides the two states.
#[derive(Debug, Clone, Copy)]
pub struct DiffContext<'a> {
    pub now: DateTime<Utc>,
    pub statuses: &'a StatusTable,
    /// The silent first poll: first sightings are recorded, not announced.
    pub baseline: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub snapshot: Snapshot,
    pub event: Option<Event>,
    /// Whether the snapshot must be written: it is new, it changed, or its
    /// `last_seen` is a day old. (Rewriting every invoice on every poll would
    /// cost a write per invoice per tick for nothing.)
    pub needs_write: bool,
}

/// How stale `last_seen` may get before a poll rewrites it.
pub const LAST_SEEN_REFRESH_SECS: i64 = 86_400;

pub fn diff(
    previous: Option<&Snapshot>,
    seen: Observation<'_>,
    ctx: &DiffContext<'_>,
) -> Detection {
    let inv = seen.invoice;
    let now = ctx.now.timestamp();
    let mut next = Snapshot {
        rev: previous.map_or(0, |p| p.rev),
        invoice_code: inv
            .invoice_code
            .clone()
            .or_else(|| previous.and_then(|p| p.invoice_code.clone())),
        is_printed: inv
            .is_printed
            .or(previous.map(|p| p.is_printed))
            .unwrap_or(false),
        is_closed: inv
            .is_closed
            .or(previous.map(|p| p.is_closed))
            .unwrap_or(false),
        cargo_status_code_key: inv.cargo_status_code_key.clone(),
        canceled: seen.canceled,
        is_final: false,
        last_seen: now,
    };
    next.is_final = next.canceled || ctx.statuses.is_final(next.cargo_status_code_key.as_deref());

    let changes = match previous {
        None if ctx.baseline => Vec::new(),
        None => {
            let mut c = vec![change(
                Field::InvoiceId,
                Value::Null,
                inv.invoice_id.as_str(),
            )];
            if next.canceled {
                c.push(change(Field::Canceled, false, true));
            }
            c
        }
        Some(p) => {
            let mut c = Vec::new();
            if p.cargo_status_code_key != next.cargo_status_code_key {
                c.push(change(
                    Field::CargoStatusCodeKey,
                    p.cargo_status_code_key.clone(),
                    next.cargo_status_code_key.clone(),
                ));
            }
            if p.is_printed != next.is_printed {
                c.push(change(Field::IsPrinted, p.is_printed, next.is_printed));
            }
            if p.is_closed != next.is_closed {
                c.push(change(Field::IsClosed, p.is_closed, next.is_closed));
            }
            if p.invoice_code != next.invoice_code {
                c.push(change(
                    Field::InvoiceCode,
                    p.invoice_code.clone(),
                    next.invoice_code.clone(),
                ));
            }
            if p.canceled != next.canceled {
                c.push(change(Field::Canceled, p.canceled, next.canceled));
            }
            c
        }
    };

    let Some(kind) = changes.iter().map(|c| c.field.kind()).max() else {
        let needs_write = previous.is_none_or(|p| {
            let mut unchanged = next.clone();
            unchanged.last_seen = p.last_seen;
            *p != unchanged || now - p.last_seen >= LAST_SEEN_REFRESH_SECS
        });
        return Detection {
            snapshot: next,
            event: None,
            needs_write,
        };
    };
    next.rev += 1;
    let event = build_event(&next, kind, changes, seen, ctx);
    Detection {
        snapshot: next,
        event: Some(event),
        needs_write: true,
    }
}

fn change(field: Field, from: impl Into<Value>, to: impl Into<Value>) -> Change {
    Change {
        field,
        from: from.into(),
        to: to.into(),
    }
}

fn build_event(
    next: &Snapshot,
    kind: EventType,
    changes: Vec<Change>,
    seen: Observation<'_>,
    ctx: &DiffContext<'_>,
) -> Event {
    let (row, inv) = (seen.row, seen.invoice);
    Event {
        id: format!("{}-{}", inv.invoice_id, next.rev),
        kind,
        detected_at: ctx.now,
        order: OrderInfo {
            id: row.id,
            order_code: row.order_code.clone(),
            code: row.code.clone(),
            channel_name: row.channel_name.clone(),
            release_code: row.release_code.clone(),
            deal_name: row.deal_name.clone(),
            deal_option_name: row.deal_option_name.clone(),
            order_at: row.order_at.clone(),
            created_at: row.created_at.clone(),
        },
        invoice: InvoiceInfo {
            invoice_id: inv.invoice_id.to_string(),
            invoice_code: next.invoice_code.clone(),
            logistics_partner_name: inv.logistics_partner_name.clone(),
            cargo_status_code_key: next.cargo_status_code_key.clone(),
            status: ctx.statuses.lookup(next.cargo_status_code_key.as_deref()),
            is_printed: next.is_printed,
            is_closed: next.is_closed,
            canceled: next.canceled,
        },
        changes,
        receiver: row.receiver_data.clone(),
        customer: row.customer_data.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::poomgo::{InvoiceId, Person};
    use chrono::TimeZone;

    const DELIVERED: &str = "INVOICE_CARGO_STATUS_DELIVERYCOMPLETED";
    const OUT: &str = "INVOICE_CARGO_STATUS_OUTFORDELIVERY";

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 10, 5, 0).unwrap()
    }

    fn row() -> Row {
        Row {
            id: 1001,
            channel_name: Some("쿠팡".into()),
            order_code: Some("20261201_000123".into()),
            code: None,
            subsidiary_code: None,
            release_code: None,
            receiver_data: Some(Person {
                name: Some("홍길동".into()),
                ..Person::default()
            }),
            customer_data: None,
            deal_name: Some("유기농 현미 5kg".into()),
            deal_option_name: None,
            created_at: None,
            order_at: None,
            invoices: Vec::new(),
            canceled_invoices: Vec::new(),
        }
    }

    fn invoice(printed: bool, closed: bool, cargo: Option<&str>) -> Invoice {
        Invoice {
            invoice_id: InvoiceId("456000".into()),
            invoice_code: Some("380424004285".into()),
            is_printed: Some(printed),
            is_closed: Some(closed),
            cargo_status_code_key: cargo.map(str::to_owned),
            logistics_partner_name: Some("CJ대한통운".into()),
        }
    }

    fn snapshot(rev: u64, printed: bool, closed: bool, cargo: Option<&str>) -> Snapshot {
        Snapshot {
            rev,
            invoice_code: Some("380424004285".into()),
            is_printed: printed,
            is_closed: closed,
            cargo_status_code_key: cargo.map(str::to_owned),
            canceled: false,
            is_final: false,
            last_seen: now().timestamp() - 60,
        }
    }

    fn run(
        previous: Option<&Snapshot>,
        inv: &Invoice,
        canceled: bool,
        baseline: bool,
    ) -> Detection {
        let statuses = StatusTable::default();
        let row = row();
        let ctx = DiffContext {
            now: now(),
            statuses: &statuses,
            baseline,
        };
        diff(
            previous,
            Observation {
                row: &row,
                invoice: inv,
                canceled,
            },
            &ctx,
        )
    }

    fn fields(d: &Detection) -> Vec<(Field, Value, Value)> {
        d.event
            .as_ref()
            .unwrap()
            .changes
            .iter()
            .map(|c| (c.field, c.from.clone(), c.to.clone()))
            .collect()
    }

    #[test]
    fn first_sight_is_assigned_with_revision_one() {
        let d = run(None, &invoice(false, false, None), false, false);
        let e = d.event.as_ref().unwrap();
        assert_eq!((e.id.as_str(), e.kind), ("456000-1", EventType::Assigned));
        assert_eq!(
            fields(&d),
            [(Field::InvoiceId, Value::Null, Value::from("456000"))]
        );
        assert_eq!(d.snapshot.rev, 1);
        assert!(d.needs_write);
        assert_eq!(e.order.order_code.as_deref(), Some("20261201_000123"));
        assert_eq!(e.invoice.status.label, crate::status::NO_STATUS_LABEL);
    }

    #[test]
    fn baseline_records_silently() {
        let d = run(None, &invoice(true, true, Some(DELIVERED)), false, true);
        assert_eq!(d.event, None);
        assert!(d.needs_write);
        assert_eq!(d.snapshot.rev, 0);
        assert!(d.snapshot.is_final);
    }

    #[test]
    fn nothing_changed_means_no_event_and_no_write() {
        let prev = snapshot(3, true, false, None);
        let d = run(Some(&prev), &invoice(true, false, None), false, false);
        assert_eq!(d.event, None);
        assert!(
            !d.needs_write,
            "an unchanged invoice seen a minute ago is not rewritten"
        );
        let mut stale = prev.clone();
        stale.last_seen -= LAST_SEEN_REFRESH_SECS;
        let d = run(Some(&stale), &invoice(true, false, None), false, false);
        assert!(
            d.event.is_none() && d.needs_write,
            "a day-old last_seen is refreshed"
        );
        assert_eq!(d.snapshot.rev, 3);
    }

    #[test]
    fn each_field_change_has_its_kind() {
        let prev = snapshot(1, false, false, None);
        let printed = run(Some(&prev), &invoice(true, false, None), false, false);
        assert_eq!(printed.event.as_ref().unwrap().kind, EventType::Printed);
        assert_eq!(
            fields(&printed),
            [(Field::IsPrinted, false.into(), true.into())]
        );
        assert_eq!(printed.event.as_ref().unwrap().id, "456000-2");

        let prev = snapshot(2, true, false, None);
        let closed = run(Some(&prev), &invoice(true, true, None), false, false);
        assert_eq!(closed.event.unwrap().kind, EventType::Closed);

        let prev = snapshot(3, true, true, Some(OUT));
        let delivered = run(
            Some(&prev),
            &invoice(true, true, Some(DELIVERED)),
            false,
            false,
        );
        let e = delivered.event.as_ref().unwrap();
        assert_eq!(e.kind, EventType::StatusChanged);
        assert_eq!(
            fields(&delivered),
            [(Field::CargoStatusCodeKey, OUT.into(), DELIVERED.into())]
        );
        assert_eq!(
            (e.invoice.status.label.as_str(), e.invoice.status.is_final),
            ("배송완료", true)
        );
        assert!(delivered.snapshot.is_final);

        let prev = snapshot(1, true, true, Some(OUT));
        let mut recoded = invoice(true, true, Some(OUT));
        recoded.invoice_code = Some("999".into());
        let d = run(Some(&prev), &recoded, false, false);
        assert_eq!(d.event.as_ref().unwrap().kind, EventType::CodeChanged);
        assert_eq!(
            fields(&d),
            [(Field::InvoiceCode, "380424004285".into(), "999".into())]
        );
    }

    #[test]
    fn several_changes_are_one_event_typed_by_the_most_significant() {
        let prev = snapshot(1, false, false, None);
        let d = run(Some(&prev), &invoice(true, true, Some(OUT)), false, false);
        let e = d.event.as_ref().unwrap();
        assert_eq!(e.kind, EventType::StatusChanged);
        let kinds: Vec<_> = e.kinds().collect();
        assert_eq!(
            kinds,
            [
                EventType::StatusChanged,
                EventType::Printed,
                EventType::Closed
            ]
        );

        let d = run(Some(&prev), &invoice(true, false, None), true, false);
        assert_eq!(d.event.as_ref().unwrap().kind, EventType::Canceled);
        assert_eq!(
            fields(&d),
            [
                (Field::IsPrinted, false.into(), true.into()),
                (Field::Canceled, false.into(), true.into())
            ]
        );
        assert!(d.snapshot.is_final, "a canceled invoice is final");
    }

    #[test]
    fn reverse_flips_are_reported() {
        let prev = snapshot(4, true, false, None);
        let d = run(Some(&prev), &invoice(false, false, None), false, false);
        assert_eq!(fields(&d), [(Field::IsPrinted, true.into(), false.into())]);
        assert_eq!(d.event.unwrap().id, "456000-5");

        let prev = snapshot(2, true, true, Some(OUT));
        let d = run(Some(&prev), &invoice(true, true, None), false, false);
        assert_eq!(
            fields(&d),
            [(Field::CargoStatusCodeKey, OUT.into(), Value::Null)]
        );

        let mut canceled = snapshot(5, false, false, None);
        canceled.canceled = true;
        let d = run(Some(&canceled), &invoice(false, false, None), false, false);
        assert_eq!(fields(&d), [(Field::Canceled, true.into(), false.into())]);
        assert!(!d.snapshot.is_final);
    }

    #[test]
    fn cancellation_of_an_invoice_never_seen_active() {
        let d = run(None, &invoice(false, false, None), true, false);
        let e = d.event.as_ref().unwrap();
        assert_eq!(e.kind, EventType::Canceled);
        assert_eq!(
            fields(&d),
            [
                (Field::InvoiceId, Value::Null, "456000".into()),
                (Field::Canceled, false.into(), true.into())
            ]
        );
        assert!(e.invoice.canceled && d.snapshot.canceled);
        let silent = run(None, &invoice(false, false, None), true, true);
        assert!(silent.event.is_none() && silent.snapshot.canceled);
    }

    #[test]
    fn fields_a_row_leaves_out_keep_their_stored_values() {
        let prev = snapshot(1, true, true, Some(OUT));
        let mut sparse = invoice(true, true, Some(OUT));
        sparse.is_printed = None;
        sparse.is_closed = None;
        sparse.invoice_code = None;
        let d = run(Some(&prev), &sparse, false, false);
        assert_eq!(d.event, None, "absence is not a change");
        assert!(d.snapshot.is_printed && d.snapshot.is_closed);
        assert_eq!(d.snapshot.invoice_code.as_deref(), Some("380424004285"));
    }

    #[test]
    fn the_same_input_gives_the_same_event_id() {
        let prev = snapshot(7, true, true, Some(OUT));
        let a = run(
            Some(&prev),
            &invoice(true, true, Some(DELIVERED)),
            false,
            false,
        );
        let b = run(
            Some(&prev),
            &invoice(true, true, Some(DELIVERED)),
            false,
            false,
        );
        assert_eq!(a.event.unwrap().id, b.event.unwrap().id);
    }

    #[test]
    fn personal_data_rides_along_until_a_target_strips_it() {
        let d = run(None, &invoice(false, false, None), false, false);
        let e = d.event.unwrap();
        assert!(e.receiver.is_some());
        let stripped = e.without_personal_data();
        let json = serde_json::to_string(&stripped).unwrap();
        assert!(
            !json.contains("홍길동") && !json.contains("receiver"),
            "{json}"
        );
    }
}
