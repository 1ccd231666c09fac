//! Change detection, pure: what the store knows of an invoice and what the
//! rows of a page say of it now go in; the new snapshot and at most one event
//! come out. No I/O, no clock (the time is passed in), so every rule is a
//! unit test.
//!
//! Rules:
//! - **Only what a row says counts.** A tracked key the listing leaves out
//!   keeps its stored value; only an explicit `null` means null. A key never
//!   reported is stored as unknown, and learning its value later is not a
//!   change (the label was not "printed just now" because the key appeared).
//!   An invoice missing from a poll is never passed here at all.
//! - **Every field change is listed**, reversals included (a reprint makes
//!   `isPrinted` false again; an invoice leaves `canceledInvoices`), and a
//!   reversal is typed as one (`invoice.unprinted`, `invoice.uncanceled`, …).
//! - **First sight** is `invoice.assigned` (with `canceled` too when the
//!   invoice is first seen already canceled), or nothing during a baseline.
//!   An invoice whose snapshot was pruned ([`Prior::Forgotten`]) is recorded
//!   silently and continues its revisions: it is not new.
//! - **Combined shipments** (합배송): one invoice listed by several rows is one
//!   observation; the event's `order` is the first row and `orders` all of
//!   them, with the orders remembered from earlier polls.
//! - **Revisions**: the snapshot's `rev` goes up by one per event, and the
//!   event id is `<generation>-<invoiceId>-<rev>`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::event::{Change, Event, EventType, Field, InvoiceInfo, OrderInfo};
use crate::poomgo::{Invoice, Reported, Row};
use crate::status::StatusTable;

/// What the store keeps of one invoice between polls.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Events emitted for this invoice so far (0 after a silent baseline).
    pub rev: u64,
    /// `None`: never reported; `Some(None)`: reported as null.
    pub invoice_code: Option<Option<String>>,
    /// `None`: never reported.
    pub is_printed: Option<bool>,
    pub is_closed: Option<bool>,
    /// `None`: never reported; `Some(None)`: null (no courier status yet).
    pub cargo_status_code_key: Option<Option<String>>,
    pub canceled: bool,
    /// Delivered, returned or canceled.
    pub is_final: bool,
    /// When a poll last saw it (Unix seconds). Refreshed at most daily, see
    /// [`Detection::needs_write`].
    pub last_seen: i64,
    /// The orders of a combined shipment; empty when only one order lists it.
    pub orders: Vec<OrderRef>,
    /// The order id of the one row this state was last read from, when the
    /// poll may vouch for that row (see "Known rows" in [`crate::store`]):
    /// when the invoice is next read through another row, or not through
    /// that row alone, that row's record is forgotten.
    pub vouched_by: Option<u64>,
}

impl Snapshot {
    /// The courier status as last reported (unknown counts as none).
    pub fn cargo(&self) -> Option<String> {
        self.cargo_status_code_key.clone().flatten()
    }
}

/// Enough of an order to name it in a later event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRef {
    pub id: Option<u64>,
    pub order_code: Option<String>,
}

impl OrderRef {
    pub fn of(row: &Row) -> OrderRef {
        OrderRef {
            id: row.id,
            order_code: row.order_code.clone(),
        }
    }

    /// A row that says nothing but which order it is.
    pub fn to_row(&self) -> Row {
        Row {
            id: self.id,
            order_code: self.order_code.clone(),
            ..Row::default()
        }
    }
}

/// What the store knows of an invoice before this observation.
#[derive(Debug, Clone, Copy)]
pub enum Prior<'a> {
    /// Never seen.
    New,
    /// Seen once, then pruned; only its last revision is left (a tombstone).
    Forgotten {
        rev: u64,
    },
    Known(&'a Snapshot),
}

impl<'a> Prior<'a> {
    pub fn from_store(snapshot: Option<&'a Snapshot>, tombstone: Option<u64>) -> Prior<'a> {
        match (snapshot, tombstone) {
            (Some(s), _) => Prior::Known(s),
            (None, Some(rev)) => Prior::Forgotten { rev },
            (None, None) => Prior::New,
        }
    }

    fn snapshot(self) -> Option<&'a Snapshot> {
        match self {
            Prior::Known(s) => Some(s),
            _ => None,
        }
    }
}

/// One invoice as the rows of a page show it now.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// The invoice as its listings say it (merged: the first report of each
    /// field wins).
    pub invoice: &'a Invoice,
    /// Every row of the page that lists it, in page order; never empty.
    pub rows: &'a [&'a Row],
    /// Every listing is in `canceledInvoices`.
    pub canceled: bool,
    /// The order id of the one row it was read from, when the poll may
    /// vouch for that row; `None` otherwise (see [`Snapshot::vouched_by`]).
    pub vouching_row: Option<u64>,
}

/// Everything `diff` needs besides the two states.
#[derive(Debug, Clone, Copy)]
pub struct DiffContext<'a> {
    pub now: DateTime<Utc>,
    pub statuses: &'a StatusTable,
    /// First sightings are recorded, not announced (a window's baseline).
    pub baseline: bool,
    /// The store's generation, the first part of every event id.
    pub generation: &'a str,
    /// Whose invoices these are (the event's `merchant`).
    pub merchant: &'a str,
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

pub fn diff(prior: Prior<'_>, seen: Observation<'_>, ctx: &DiffContext<'_>) -> Detection {
    let inv = seen.invoice;
    let previous = prior.snapshot();
    let now = ctx.now.timestamp();
    let kept = |r: &Reported<String>, old: Option<&Option<Option<String>>>| match r.as_reported() {
        Some(v) => Some(v.cloned()),
        None => old.cloned().flatten(),
    };
    let mut next = Snapshot {
        rev: match prior {
            Prior::New => 0,
            Prior::Forgotten { rev } => rev,
            Prior::Known(p) => p.rev,
        },
        invoice_code: kept(&inv.invoice_code, previous.map(|p| &p.invoice_code)),
        is_printed: inv.is_printed.or(previous.and_then(|p| p.is_printed)),
        is_closed: inv.is_closed.or(previous.and_then(|p| p.is_closed)),
        cargo_status_code_key: kept(
            &inv.cargo_status_code_key,
            previous.map(|p| &p.cargo_status_code_key),
        ),
        canceled: seen.canceled,
        is_final: false,
        last_seen: now,
        orders: membership(previous, seen.rows),
        vouched_by: seen.vouching_row,
    };
    next.is_final = next.canceled || ctx.statuses.is_final(next.cargo().as_deref());

    let changes = match prior {
        Prior::New if !ctx.baseline => {
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
        Prior::New | Prior::Forgotten { .. } => Vec::new(),
        Prior::Known(p) => {
            // A change is a known value replaced by another; a value learnt
            // for the first time is not.
            fn differs<T: PartialEq + Clone>(old: &Option<T>, new: &Option<T>) -> Option<(T, T)> {
                match (old, new) {
                    (Some(o), Some(n)) if o != n => Some((o.clone(), n.clone())),
                    _ => None,
                }
            }
            let mut c = Vec::new();
            if let Some((from, to)) = differs(&p.cargo_status_code_key, &next.cargo_status_code_key)
            {
                c.push(change(Field::CargoStatusCodeKey, from, to));
            }
            if let Some((from, to)) = differs(&p.is_printed, &next.is_printed) {
                c.push(change(Field::IsPrinted, from, to));
            }
            if let Some((from, to)) = differs(&p.is_closed, &next.is_closed) {
                c.push(change(Field::IsClosed, from, to));
            }
            if let Some((from, to)) = differs(&p.invoice_code, &next.invoice_code) {
                c.push(change(Field::InvoiceCode, from, to));
            }
            if p.canceled != next.canceled {
                c.push(change(Field::Canceled, p.canceled, next.canceled));
            }
            c
        }
    };

    let Some(kind) = changes.iter().map(Change::kind).max() else {
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

/// The orders an invoice is known to belong to: those remembered plus those
/// listing it now; kept only when there is more than one.
fn membership(previous: Option<&Snapshot>, rows: &[&Row]) -> Vec<OrderRef> {
    let mut orders: Vec<OrderRef> = previous.map(|p| p.orders.clone()).unwrap_or_default();
    for row in rows {
        let r = OrderRef::of(row);
        if !orders.contains(&r) {
            orders.push(r);
        }
    }
    if orders.len() > 1 { orders } else { Vec::new() }
}

fn change(field: Field, from: impl Into<Value>, to: impl Into<Value>) -> Change {
    Change {
        field,
        from: from.into(),
        to: to.into(),
    }
}

fn order_info(row: &Row) -> OrderInfo {
    OrderInfo {
        id: row.id,
        order_code: row.order_code.clone(),
        code: row.code.clone(),
        channel_name: row.channel_name.clone(),
        release_code: row.release_code.clone(),
        deal_name: row.deal_name.clone(),
        deal_option_name: row.deal_option_name.clone(),
        order_at: row.order_at.clone(),
        created_at: row.created_at.clone(),
    }
}

fn build_event(
    next: &Snapshot,
    kind: EventType,
    changes: Vec<Change>,
    seen: Observation<'_>,
    ctx: &DiffContext<'_>,
) -> Event {
    let row = seen.rows[0];
    let inv = seen.invoice;
    let mut orders: Vec<OrderInfo> = seen.rows.iter().map(|r| order_info(r)).collect();
    for known in &next.orders {
        if !seen.rows.iter().any(|r| OrderRef::of(r) == *known) {
            orders.push(OrderInfo {
                id: known.id,
                order_code: known.order_code.clone(),
                ..OrderInfo::default()
            });
        }
    }
    Event {
        id: format!("{}-{}-{}", ctx.generation, inv.invoice_id, next.rev),
        kind,
        merchant: ctx.merchant.to_owned(),
        detected_at: ctx.now,
        order: orders[0].clone(),
        orders,
        invoice: InvoiceInfo {
            invoice_id: inv.invoice_id.to_string(),
            invoice_code: next.invoice_code.clone().flatten(),
            logistics_partner_name: inv.logistics_partner_name.clone(),
            tracking_url: ctx.statuses.tracking_url(
                inv.logistics_partner_name.as_deref(),
                next.invoice_code.clone().flatten().as_deref(),
            ),
            cargo_status_code_key: next.cargo(),
            status: ctx
                .statuses
                .lookup(next.cargo().as_deref(), next.is_closed == Some(true)),
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
            id: Some(1001),
            channel_name: Some("쿠팡".into()),
            order_code: Some("20261201_000123".into()),
            receiver_data: Some(Person {
                name: Some("홍길동".into()),
                ..Person::default()
            }),
            deal_name: Some("유기농 현미 5kg".into()),
            ..Row::default()
        }
    }

    fn invoice(printed: bool, closed: bool, cargo: Option<&str>) -> Invoice {
        Invoice {
            invoice_id: InvoiceId("456000".into()),
            invoice_code: Reported::Value("380424004285".into()),
            is_printed: Some(printed),
            is_closed: Some(closed),
            cargo_status_code_key: cargo.map(str::to_owned).into(),
            logistics_partner_name: Some("CJ대한통운".into()),
        }
    }

    fn snapshot(rev: u64, printed: bool, closed: bool, cargo: Option<&str>) -> Snapshot {
        Snapshot {
            rev,
            invoice_code: Some(Some("380424004285".into())),
            is_printed: Some(printed),
            is_closed: Some(closed),
            cargo_status_code_key: Some(cargo.map(str::to_owned)),
            canceled: false,
            is_final: false,
            last_seen: now().timestamp() - 60,
            orders: Vec::new(),
            vouched_by: None,
        }
    }

    fn run_prior(prior: Prior<'_>, inv: &Invoice, canceled: bool, baseline: bool) -> Detection {
        let statuses = StatusTable::default();
        let row = row();
        let ctx = DiffContext {
            now: now(),
            statuses: &statuses,
            baseline,
            generation: "g0",
            merchant: "default",
        };
        diff(
            prior,
            Observation {
                invoice: inv,
                rows: &[&row],
                canceled,
                vouching_row: None,
            },
            &ctx,
        )
    }

    fn run(
        previous: Option<&Snapshot>,
        inv: &Invoice,
        canceled: bool,
        baseline: bool,
    ) -> Detection {
        run_prior(Prior::from_store(previous, None), inv, canceled, baseline)
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
        assert_eq!(
            (e.id.as_str(), e.kind),
            ("g0-456000-1", EventType::Assigned)
        );
        assert_eq!(
            fields(&d),
            [(Field::InvoiceId, Value::Null, Value::from("456000"))]
        );
        assert_eq!(d.snapshot.rev, 1);
        assert!(d.needs_write);
        assert_eq!(e.order.order_code.as_deref(), Some("20261201_000123"));
        assert_eq!(e.orders, vec![e.order.clone()]);
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
    fn a_forgotten_invoice_is_recorded_silently_and_continues_its_revisions() {
        let d = run_prior(
            Prior::Forgotten { rev: 7 },
            &invoice(true, true, None),
            false,
            false,
        );
        assert_eq!(d.event, None, "a pruned invoice that reappears is not new");
        assert_eq!(d.snapshot.rev, 7);
        let later = run(
            Some(&d.snapshot),
            &invoice(true, true, Some(OUT)),
            false,
            false,
        );
        assert_eq!(later.event.unwrap().id, "g0-456000-8");
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
        assert_eq!(printed.event.as_ref().unwrap().id, "g0-456000-2");

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
        recoded.invoice_code = Reported::Value("999".into());
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
    fn reversals_have_types_of_their_own() {
        let prev = snapshot(4, true, false, None);
        let d = run(Some(&prev), &invoice(false, false, None), false, false);
        assert_eq!(fields(&d), [(Field::IsPrinted, true.into(), false.into())]);
        let e = d.event.unwrap();
        assert_eq!(
            (e.id.as_str(), e.kind),
            ("g0-456000-5", EventType::Unprinted)
        );

        let prev = snapshot(2, true, true, None);
        let d = run(Some(&prev), &invoice(true, false, None), false, false);
        assert_eq!(d.event.unwrap().kind, EventType::Unclosed);

        let prev = snapshot(2, true, true, Some(OUT));
        let d = run(Some(&prev), &invoice(true, true, None), false, false);
        assert_eq!(
            fields(&d),
            [(Field::CargoStatusCodeKey, OUT.into(), Value::Null)]
        );

        let mut canceled = snapshot(5, false, false, None);
        canceled.canceled = true;
        canceled.is_final = true;
        let d = run(Some(&canceled), &invoice(false, false, None), false, false);
        assert_eq!(fields(&d), [(Field::Canceled, true.into(), false.into())]);
        let e = d.event.as_ref().unwrap();
        assert_eq!(e.kind, EventType::Uncanceled, "never typed as canceled");
        assert!(!e.invoice.canceled && !d.snapshot.is_final);
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
    fn keys_a_listing_leaves_out_keep_their_stored_values_and_null_is_null() {
        let prev = snapshot(1, true, true, Some(OUT));
        let sparse = Invoice::bare("456000");
        let d = run(Some(&prev), &sparse, false, false);
        assert_eq!(d.event, None, "absence is not a change");
        assert_eq!(d.snapshot.cargo().as_deref(), Some(OUT));
        assert_eq!(
            (d.snapshot.is_printed, d.snapshot.is_closed),
            (Some(true), Some(true))
        );
        assert_eq!(
            d.snapshot,
            Snapshot {
                last_seen: d.snapshot.last_seen,
                ..prev.clone()
            }
        );

        // Never reported, then reported: learnt, not changed.
        let first = run(None, &Invoice::bare("456000"), false, true);
        assert_eq!(first.snapshot.is_printed, None);
        let learnt = run(
            Some(&first.snapshot),
            &invoice(true, true, Some(OUT)),
            false,
            false,
        );
        assert_eq!(
            learnt.event, None,
            "a key seen for the first time is not a change"
        );
        assert_eq!(learnt.snapshot.cargo().as_deref(), Some(OUT));

        let mut nulls = Invoice::bare("456000");
        nulls.cargo_status_code_key = Reported::Null;
        let d = run(Some(&prev), &nulls, false, false);
        assert_eq!(
            fields(&d),
            [(Field::CargoStatusCodeKey, OUT.into(), Value::Null)]
        );
    }

    #[test]
    fn a_combined_shipment_names_every_order_and_remembers_them() {
        let statuses = StatusTable::default();
        let a = row();
        let b = Row {
            id: Some(1002),
            order_code: Some("20261201_000124".into()),
            ..row()
        };
        let ctx = DiffContext {
            now: now(),
            statuses: &statuses,
            baseline: false,
            generation: "g0",
            merchant: "default",
        };
        let inv = invoice(true, false, None);
        let prev = snapshot(1, false, false, None);
        let d = diff(
            Prior::Known(&prev),
            Observation {
                invoice: &inv,
                rows: &[&a, &b],
                canceled: false,
                vouching_row: None,
            },
            &ctx,
        );
        let e = d.event.as_ref().unwrap();
        let codes: Vec<_> = e.orders.iter().map(|o| o.order_code.as_deref()).collect();
        assert_eq!(codes, [Some("20261201_000123"), Some("20261201_000124")]);
        assert_eq!(e.order, e.orders[0]);
        assert_eq!(d.snapshot.orders.len(), 2);
        // A later change seen through one row still names both orders.
        let closed = invoice(true, true, None);
        let d2 = diff(
            Prior::Known(&d.snapshot),
            Observation {
                invoice: &closed,
                rows: &[&a],
                canceled: false,
                vouching_row: None,
            },
            &ctx,
        );
        let e2 = d2.event.unwrap();
        assert_eq!(e2.orders.len(), 2);
        assert_eq!(e2.orders[1].id, Some(1002));
        assert_eq!(e2.orders[1].deal_name, None, "only what is remembered");
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
