//! The Poomgo OMS orders API: wire models, the HTTP client, page-by-page scans
//! and the query window a poll asks for.

mod client;
mod model;
pub mod plan;
mod scan;

pub use client::{ORDERS_PATH, PoomgoClient, PoomgoError, RETRY_AFTER_CAP};
pub use model::{
    DIGEST_FORMAT, Invoice, InvoiceId, Known, KnownRow, KnownRows, MAX_PAGE_SIZE, OrdersPage,
    OrdersRequest, Person, Query, Reported, Row, RowDigest, ShapeError, Skip, SkipReason,
    parse_known_row, parse_page, parse_page_with,
};
pub use scan::{Scan, ScanPage, ScanStats};

use chrono::{DateTime, Days, FixedOffset, NaiveDate, Utc};

/// Korea Standard Time. Asia/Seoul has kept UTC+9 without daylight saving
/// since 1988, so a fixed offset is exact for every date this product sees.
pub fn kst() -> FixedOffset {
    FixedOffset::east_opt(9 * 3600).expect("UTC+9 is a valid offset")
}

/// The calendar day in Korea at `now`.
pub fn kst_day(now: DateTime<Utc>) -> NaiveDate {
    now.with_timezone(&kst()).date_naive()
}

/// Which date a window filters on. The API filters by whole days of each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Axis {
    /// `createdAt`: the order-ledger entry was created.
    Created,
    /// `confirmAt`: an invoice was assigned (an assumption of the vendor's wording).
    Confirmed,
    /// `closeAt`: an invoice was closed (likewise assumed).
    Closed,
}

/// One window of a poll: a day range on one axis, with a name that keys its
/// baseline (covered range) in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    pub name: String,
    pub axis: Axis,
    pub from: NaiveDate,
    pub to: NaiveDate,
}

impl Window {
    /// The query for the days `from..=to` of this window's axis.
    pub fn query_days(&self, from: NaiveDate, to: NaiveDate) -> Query {
        let (f, t) = (Some(from), Some(to));
        match self.axis {
            Axis::Created => Query {
                created_at_from: f,
                created_at_to: t,
                ..Query::default()
            },
            Axis::Confirmed => Query {
                confirm_at_from: f,
                confirm_at_to: t,
                ..Query::default()
            },
            Axis::Closed => Query {
                close_at_from: f,
                close_at_to: t,
                ..Query::default()
            },
        }
    }

    pub fn query(&self) -> Query {
        self.query_days(self.from, self.to)
    }
}

/// The `created` window: orders created from `lookback_days` days ago to
/// today, both Korea-time days, inclusive (every plan has it).
pub fn poll_window(now: DateTime<Utc>, lookback_days: u32) -> Window {
    let today = kst_day(now);
    Window {
        name: plan::CREATED.into(),
        axis: Axis::Created,
        from: today
            .checked_sub_days(Days::new(lookback_days.into()))
            .unwrap_or(today),
        to: today,
    }
}
