//! The Poomgo OMS orders API: wire models, the HTTP client, page-by-page scans
//! and the query window a poll asks for.

mod client;
mod model;
mod scan;

pub use client::{ORDERS_PATH, PoomgoClient, PoomgoError, describe, parse_retry_after, snippet};
pub use model::{
    Invoice, InvoiceId, MAX_PAGE_SIZE, OrdersPage, OrdersRequest, Person, Query, Row, ShapeError,
    parse_page,
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

/// The window a poll asks for: orders created from `lookback_days` days ago
/// to today, both Korea-time days, inclusive.
pub fn poll_window(now: DateTime<Utc>, lookback_days: u32) -> Query {
    let today = kst_day(now);
    Query {
        created_at_from: Some(
            today
                .checked_sub_days(Days::new(lookback_days.into()))
                .unwrap_or(today),
        ),
        created_at_to: Some(today),
        ..Query::default()
    }
}
