//! The simulated merchant: generated orders whose invoices move through the
//! Poomgo life cycle as simulated time advances.
//!
//! Everything random comes from one seeded generator, so the same `--orders`
//! and `--seed` give the same merchant (dates are relative to the start).
//!
//! The life cycle of one invoice, one stage per [`Merchant::advance`] step
//! (each invoice moves with probability `fraction` per step):
//!
//! ```text
//! (order not packed: invoices null) → assigned → printed → closed
//!   → cargo null (the courier lags) → PICKEDUP → INTRANSIT → ARRIVED
//!   → OUTFORDELIVERY → DELIVERYCOMPLETED (final)
//! ```
//! with side exits: a few invoices are canceled before closing (they move to
//! `canceledInvoices`), a few out-for-delivery parcels fail an attempt
//! (`ATTEMPTFAIL`, then out for delivery again) and a few are returned
//! (`RETURNED`, final). Each step also brings new orders, so the newest-first
//! pages drift while a scan is under way.

use chrono::{DateTime, Duration as ChronoDuration, NaiveDate, Utc};
use serde::Serialize;

use crate::poomgo::{Invoice, InvoiceId, Person, Query, Reported, kst_day};

pub const STATUS_PICKEDUP: &str = "INVOICE_CARGO_STATUS_PICKEDUP";
pub const STATUS_INTRANSIT: &str = "INVOICE_CARGO_STATUS_INTRANSIT";
pub const STATUS_ARRIVED: &str = "INVOICE_CARGO_STATUS_ARRIVED";
pub const STATUS_OUTFORDELIVERY: &str = "INVOICE_CARGO_STATUS_OUTFORDELIVERY";
pub const STATUS_DELIVERED: &str = "INVOICE_CARGO_STATUS_DELIVERYCOMPLETED";
pub const STATUS_ATTEMPTFAIL: &str = "INVOICE_CARGO_STATUS_ATTEMPTFAIL";
pub const STATUS_RETURNED: &str = "INVOICE_CARGO_STATUS_RETURNED";

const CHANNELS: &[&str] = &[
    "스마트스토어",
    "쿠팡",
    "11번가",
    "G마켓",
    "옥션",
    "카카오톡스토어",
    "자사몰",
];
const COURIERS: &[&str] = &[
    "CJ대한통운",
    "한진택배",
    "롯데택배",
    "우체국택배",
    "로젠택배",
];
const SURNAMES: &[&str] = &[
    "김", "이", "박", "최", "정", "강", "조", "윤", "장", "임", "한", "오", "서", "신", "권",
];
const GIVEN: &[&str] = &[
    "민준", "서연", "도윤", "지우", "하준", "서윤", "예준", "하은", "지호", "수아", "현우", "지민",
    "은서", "건우", "유진",
];
const CITIES: &[(&str, &[&str])] = &[
    (
        "서울특별시",
        &["강남구", "마포구", "송파구", "성동구", "관악구"],
    ),
    ("부산광역시", &["해운대구", "수영구", "부산진구"]),
    (
        "경기도",
        &["성남시 분당구", "수원시 영통구", "고양시 일산동구"],
    ),
    ("대구광역시", &["수성구", "달서구"]),
    ("인천광역시", &["연수구", "남동구"]),
];
const ROADS: &[&str] = &[
    "테헤란로",
    "월드컵북로",
    "올림픽로",
    "센텀중앙로",
    "판교역로",
    "중앙대로",
    "경수대로",
];
const DEALS: &[(&str, &[&str])] = &[
    ("유기농 현미 5kg", &["5kg / 1개", "5kg / 2개"]),
    ("무선 키보드 \"K10\" <블랙>", &["블랙", "화이트"]),
    ("제주 감귤 3kg", &["로얄과", "중과"]),
    ("국산 참기름 350ml", &["1병", "2병 세트"]),
    ("아이폰 케이스 & 필름", &["투명", "스모키"]),
    ("캠핑 의자 (접이식)", &["카키", "베이지"]),
    ("비건 프로틴 바 12개입", &["초코", "피넛"]),
];

/// One invoice as the simulator holds it.
#[derive(Debug, Clone)]
pub struct SimInvoice {
    pub id: u64,
    pub code: String,
    pub partner: &'static str,
    pub printed: bool,
    pub closed: bool,
    pub cargo: Option<&'static str>,
    /// True once the cargo lag after closing is over (the next step sets PICKEDUP).
    pub lag_over: bool,
    pub confirm_at: DateTime<Utc>,
    pub close_at: Option<DateTime<Utc>>,
}

impl SimInvoice {
    pub fn is_final(&self) -> bool {
        matches!(self.cargo, Some(STATUS_DELIVERED | STATUS_RETURNED))
    }

    pub fn to_invoice(&self) -> Invoice {
        Invoice {
            invoice_id: InvoiceId(self.id.to_string()),
            invoice_code: Reported::Value(self.code.clone()),
            is_printed: Some(self.printed),
            is_closed: Some(self.closed),
            cargo_status_code_key: self.cargo.map(str::to_owned).into(),
            logistics_partner_name: Some(self.partner.to_owned()),
        }
    }
}

/// One order-ledger entry.
#[derive(Debug, Clone)]
pub struct SimOrder {
    pub id: u64,
    pub channel: &'static str,
    pub order_code: String,
    pub code: String,
    pub release_code: String,
    pub receiver: Person,
    pub customer: Person,
    pub deal: &'static str,
    pub option: &'static str,
    pub price: u32,
    pub created_at: DateTime<Utc>,
    pub order_at: DateTime<Utc>,
    /// `invoices` is `null` until packing assigns the first invoice.
    pub packed: bool,
    pub invoices: Vec<SimInvoice>,
    pub canceled: Vec<SimInvoice>,
    /// Invoices another order holds that this order lists too (a combined
    /// shipment, 합배송), each with whether this order lists it as canceled.
    pub linked: Vec<Link>,
}

/// One order's listing of an invoice that another order holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub invoice_id: u64,
    pub canceled: bool,
}

/// How one [`Merchant::advance`] step behaves.
#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AdvanceOptions {
    /// Steps to take.
    pub steps: u32,
    /// Probability that a given open invoice (or unpacked order) moves one stage per step.
    pub fraction: f64,
    /// New orders per step.
    pub new_orders: u32,
}

impl Default for AdvanceOptions {
    fn default() -> Self {
        AdvanceOptions {
            steps: 1,
            fraction: 0.25,
            new_orders: 3,
        }
    }
}

/// What an advance did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AdvanceReport {
    /// Invoices whose observable state changed (including ones newly assigned).
    pub changed: u64,
    pub new_orders: u64,
}

pub struct Merchant {
    pub orders: Vec<SimOrder>,
    rng: fastrand::Rng,
    next_order_id: u64,
    next_invoice_id: u64,
    serial: u64,
}

impl Merchant {
    /// `count` orders created over the `days` days before `now`, each as far
    /// along its life cycle as its age suggests.
    pub fn generate(count: usize, seed: u64, days: u32, now: DateTime<Utc>) -> Merchant {
        let mut m = Merchant {
            orders: Vec::with_capacity(count),
            rng: fastrand::Rng::with_seed(seed),
            next_order_id: 1_000_001,
            next_invoice_id: 456_001,
            serial: 0,
        };
        let span_secs = i64::from(days.max(1)) * 86_400;
        let mut offsets: Vec<i64> = (0..count).map(|_| m.rng.i64(60..span_secs)).collect();
        offsets.sort_unstable_by(|a, b| b.cmp(a)); // oldest first: `orders` stays in creation order
        for age in offsets {
            let created = now - ChronoDuration::seconds(age);
            let mut order = m.new_order(created);
            // About one stage per six hours of age, give or take: the newest
            // orders are not packed yet, the oldest are delivered.
            let stages = (age / (6 * 3600)) as u32 + m.rng.u32(0..2);
            for stage in 0..stages {
                // Each stage happens about six hours after the one before
                // (never in the future), so assign and close dates spread like
                // a real merchant's, a day or so after the order.
                let at = (i64::from(stage) + 1) * 6 * 3600 + m.rng.i64(0..3600);
                m.step_order(
                    &mut order,
                    created + ChronoDuration::seconds(at.min(age)),
                    1.0,
                );
            }
            m.orders.push(order);
        }
        m
    }

    /// Advances simulated time by `opts.steps` steps at `now`.
    pub fn advance(&mut self, opts: AdvanceOptions, now: DateTime<Utc>) -> AdvanceReport {
        let mut report = AdvanceReport::default();
        for _ in 0..opts.steps {
            let mut orders = std::mem::take(&mut self.orders);
            for order in orders.iter_mut() {
                report.changed += self.step_order(order, now, opts.fraction);
            }
            self.orders = orders;
            for _ in 0..opts.new_orders {
                let order = self.new_order(now);
                self.orders.push(order);
                report.new_orders += 1;
            }
        }
        report
    }

    /// Moves an order's invoices one stage each with probability `p`; returns
    /// how many invoices changed.
    fn step_order(&mut self, order: &mut SimOrder, now: DateTime<Utc>, p: f64) -> u64 {
        if !order.packed {
            if self.rng.f64() < p {
                order.packed = true;
                let n = match self.rng.u32(0..100) {
                    0..=84 => 1,
                    85..=96 => 2,
                    _ => 3,
                };
                for _ in 0..n {
                    let invoice = self.new_invoice(now);
                    order.invoices.push(invoice);
                }
                return n;
            }
            return 0;
        }
        let mut changed = 0;
        let mut i = 0;
        while i < order.invoices.len() {
            if order.invoices[i].is_final() || self.rng.f64() >= p {
                i += 1;
                continue;
            }
            changed += 1;
            let roll = self.rng.u32(0..100);
            let inv = &mut order.invoices[i];
            if !inv.closed && roll < 2 {
                let canceled = order.invoices.remove(i);
                order.canceled.push(canceled);
                continue;
            }
            match (inv.printed, inv.closed, inv.cargo) {
                (false, _, _) => inv.printed = true,
                (true, false, _) => {
                    inv.closed = true;
                    inv.close_at = Some(now);
                }
                (true, true, None) if !inv.lag_over => {
                    // The courier's status lags after closing: this step only ends the lag.
                    inv.lag_over = true;
                    changed -= 1;
                }
                (true, true, None) => inv.cargo = Some(STATUS_PICKEDUP),
                (true, true, Some(STATUS_PICKEDUP)) => inv.cargo = Some(STATUS_INTRANSIT),
                (true, true, Some(STATUS_INTRANSIT)) => inv.cargo = Some(STATUS_ARRIVED),
                (true, true, Some(STATUS_ARRIVED)) => inv.cargo = Some(STATUS_OUTFORDELIVERY),
                (true, true, Some(STATUS_OUTFORDELIVERY)) => {
                    inv.cargo = Some(match roll {
                        0..=3 => STATUS_ATTEMPTFAIL,
                        4 => STATUS_RETURNED,
                        _ => STATUS_DELIVERED,
                    })
                }
                (true, true, Some(STATUS_ATTEMPTFAIL)) => inv.cargo = Some(STATUS_OUTFORDELIVERY),
                (true, true, Some(_)) => changed -= 1,
            }
            i += 1;
        }
        changed
    }

    fn new_order(&mut self, created: DateTime<Utc>) -> SimOrder {
        let id = self.next_order_id;
        self.next_order_id += 1;
        self.serial += 1;
        let day = kst_day(created).format("%Y%m%d");
        let (deal, options) = DEALS[self.rng.usize(..DEALS.len())];
        let receiver = self.person(true);
        let customer = if self.rng.u32(0..100) < 70 {
            Person {
                postcode: None,
                ..receiver.clone()
            }
        } else {
            self.person(false)
        };
        SimOrder {
            id,
            channel: CHANNELS[self.rng.usize(..CHANNELS.len())],
            order_code: format!("{day}_{:06}", self.serial),
            code: format!("{day}{:08}", self.rng.u32(0..100_000_000)),
            release_code: format!("R{day}{:06}", self.serial),
            receiver,
            customer,
            deal,
            option: options[self.rng.usize(..options.len())],
            price: self.rng.u32(50..800) * 100,
            created_at: created,
            order_at: created - ChronoDuration::seconds(self.rng.i64(30..3600)),
            packed: false,
            invoices: Vec::new(),
            canceled: Vec::new(),
            linked: Vec::new(),
        }
    }

    fn new_invoice(&mut self, now: DateTime<Utc>) -> SimInvoice {
        let id = self.next_invoice_id;
        self.next_invoice_id += 1;
        SimInvoice {
            id,
            code: format!(
                "{:012}",
                380_000_000_000u64 + self.rng.u64(0..9_999_999_999)
            ),
            partner: COURIERS[self.rng.usize(..COURIERS.len())],
            printed: false,
            closed: false,
            cargo: None,
            lag_over: false,
            confirm_at: now,
            close_at: None,
        }
    }

    fn person(&mut self, with_postcode: bool) -> Person {
        let name = format!(
            "{}{}",
            SURNAMES[self.rng.usize(..SURNAMES.len())],
            GIVEN[self.rng.usize(..GIVEN.len())]
        );
        let (city, districts) = CITIES[self.rng.usize(..CITIES.len())];
        let address = format!(
            "{city} {} {} {}, {}층",
            districts[self.rng.usize(..districts.len())],
            ROADS[self.rng.usize(..ROADS.len())],
            self.rng.u32(1..400),
            self.rng.u32(1..20)
        );
        let mobile = format!(
            "010-{:04}-{:04}",
            self.rng.u32(0..10_000),
            self.rng.u32(0..10_000)
        );
        Person {
            name: Some(name),
            phone: if self.rng.bool() {
                Some(format!(
                    "02-{:04}-{:04}",
                    self.rng.u32(0..10_000),
                    self.rng.u32(0..10_000)
                ))
            } else {
                None
            },
            mobile: Some(mobile),
            address: Some(address),
            postcode: with_postcode.then(|| format!("{:05}", self.rng.u32(1000..63_000))),
        }
    }

    /// The invoice with this id, active or canceled, wherever it is held.
    pub fn invoice(&self, id: u64) -> Option<&SimInvoice> {
        self.orders
            .iter()
            .flat_map(|o| o.invoices.iter().chain(&o.canceled))
            .find(|i| i.id == id)
    }

    /// Makes the order at `order` list invoice `id` too (a combined shipment).
    pub fn link(&mut self, order: usize, id: u64) {
        self.orders[order].linked.push(Link {
            invoice_id: id,
            canceled: false,
        });
    }

    /// Moves invoice `id` from its order's `canceledInvoices` back to
    /// `invoices` (a cancellation withdrawn). False when it was not canceled.
    pub fn uncancel(&mut self, id: u64) -> bool {
        for o in &mut self.orders {
            if let Some(i) = o.canceled.iter().position(|c| c.id == id) {
                let invoice = o.canceled.remove(i);
                o.invoices.push(invoice);
                return true;
            }
        }
        false
    }

    /// Moves invoice `id` to its order's `canceledInvoices`. False when it was not active.
    pub fn cancel(&mut self, id: u64) -> bool {
        for o in &mut self.orders {
            if let Some(i) = o.invoices.iter().position(|c| c.id == id) {
                let invoice = o.invoices.remove(i);
                o.canceled.push(invoice);
                return true;
            }
        }
        false
    }

    /// The orders matching `query`, newest first.
    pub fn matching<'a>(&'a self, query: &'a Query) -> impl Iterator<Item = &'a SimOrder> + 'a {
        self.orders.iter().rev().filter(move |o| matches(o, query))
    }

    /// Every invoice the merchant has, with whether it is canceled: the truth
    /// a full scan must reproduce.
    pub fn all_invoices(&self) -> Vec<(Invoice, bool)> {
        let mut out = Vec::new();
        for o in &self.orders {
            out.extend(o.invoices.iter().map(|i| (i.to_invoice(), false)));
            out.extend(o.canceled.iter().map(|i| (i.to_invoice(), true)));
        }
        out
    }
}

fn in_days(at: DateTime<Utc>, from: Option<NaiveDate>, to: Option<NaiveDate>) -> bool {
    let day = kst_day(at);
    from.is_none_or(|f| day >= f) && to.is_none_or(|t| day <= t)
}

fn any_in_days(
    order: &SimOrder,
    at: impl Fn(&SimInvoice) -> Option<DateTime<Utc>>,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
) -> bool {
    if from.is_none() && to.is_none() {
        return true;
    }
    order
        .invoices
        .iter()
        .chain(&order.canceled)
        .filter_map(at)
        .any(|t| in_days(t, from, to))
}

fn matches(o: &SimOrder, q: &Query) -> bool {
    if let Some(code) = &q.order_code
        && &o.order_code != code
    {
        return false;
    }
    (q.created_at_from.is_none() && q.created_at_to.is_none()
        || in_days(o.created_at, q.created_at_from, q.created_at_to))
        && any_in_days(
            o,
            |i| Some(i.confirm_at),
            q.confirm_at_from,
            q.confirm_at_to,
        )
        && any_in_days(o, |i| i.close_at, q.close_at_from, q.close_at_to)
}
