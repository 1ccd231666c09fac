//! A scan walks every page of one query, page by page.
//!
//! Page 1 is fetched alone because only its `total` says how many pages there
//! are; then up to `concurrency` pages are in flight at once and handed out in
//! page order. The caller consumes one [`ScanPage`] at a time, so memory is
//! bounded by `concurrency × page_size` rows plus the set of ids seen, never by
//! the whole result.
//!
//! Rows shift between pages while new orders arrive (the API is newest first),
//! so the same row can be served twice in one scan. Every invoice id is handed
//! out at most once per scan; a repeated row whose invoices were all handed
//! out already is dropped and counted as a duplicate. When a later page
//! reports a larger `total`, the scan grows to cover it.
//!
//! A failed page ends the scan with that error. Pages already handed out stay
//! valid (the diff never infers anything from an invoice it did not see).

use std::{collections::HashSet, future::Future, pin::Pin, sync::Arc};

use futures_util::{StreamExt, stream::FuturesOrdered};

use super::client::{PoomgoClient, PoomgoError};
use super::model::{InvoiceId, OrdersPage, Query, Row};

/// One page of a scan, after de-duplication.
#[derive(Debug)]
pub struct ScanPage {
    pub number: u32,
    pub rows: Vec<Row>,
}

/// What a scan saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Pages fetched and handed out.
    pub pages: u32,
    /// Rows handed out (after de-duplication).
    pub rows: u64,
    /// Distinct invoices handed out (active and canceled).
    pub invoices: u64,
    /// Rows dropped because everything in them was already handed out.
    pub duplicate_rows: u64,
    /// The largest `total` the API reported during the scan.
    pub total: u64,
}

type PageFuture = Pin<Box<dyn Future<Output = (u32, Result<OrdersPage, PoomgoError>)> + Send>>;

pub struct Scan {
    client: PoomgoClient,
    query: Arc<Query>,
    /// The next page to request; 1 until page 1 arrived.
    next_page: u32,
    /// The last page known to exist; 0 until page 1 arrived.
    last_page: u32,
    in_flight: FuturesOrdered<PageFuture>,
    seen_rows: HashSet<u64>,
    seen_invoices: HashSet<SeenKey>,
    stats: ScanStats,
    finished: bool,
}

impl PoomgoClient {
    /// Starts a scan of every page of `query`. Nothing is fetched until the
    /// first [`Scan::next_page`].
    pub fn scan(&self, query: Query) -> Scan {
        Scan {
            client: self.clone(),
            query: Arc::new(query),
            next_page: 1,
            last_page: 0,
            in_flight: FuturesOrdered::new(),
            seen_rows: HashSet::new(),
            seen_invoices: HashSet::new(),
            stats: ScanStats::default(),
            finished: false,
        }
    }
}

impl Scan {
    /// The next page in page order, `None` after the last one or after an error.
    pub async fn next_page(&mut self) -> Option<Result<ScanPage, PoomgoError>> {
        if self.finished {
            return None;
        }
        if self.last_page == 0 {
            let first = self.client.fetch_page(&self.query, 1).await;
            return Some(self.accept(1, first));
        }
        self.refill();
        match self.in_flight.next().await {
            None => {
                self.finished = true;
                None
            }
            Some((number, result)) => {
                let page = self.accept(number, result);
                if !self.finished {
                    self.refill();
                }
                Some(page)
            }
        }
    }

    pub fn stats(&self) -> ScanStats {
        self.stats
    }

    fn refill(&mut self) {
        while self.in_flight.len() < self.client.concurrency() && self.next_page <= self.last_page {
            let (client, query, number) = (self.client.clone(), self.query.clone(), self.next_page);
            self.in_flight.push_back(Box::pin(async move {
                (number, client.fetch_page(&query, number).await)
            }));
            self.next_page += 1;
        }
    }

    fn accept(
        &mut self,
        number: u32,
        result: Result<OrdersPage, PoomgoError>,
    ) -> Result<ScanPage, PoomgoError> {
        let page = match result {
            Ok(page) => page,
            Err(e) => {
                self.finished = true;
                self.in_flight = FuturesOrdered::new();
                return Err(e);
            }
        };
        self.stats.pages += 1;
        self.stats.total = self.stats.total.max(page.total);
        let pages = page
            .total
            .div_ceil(u64::from(self.client.page_size()))
            .max(1);
        self.last_page = self.last_page.max(u32::try_from(pages).unwrap_or(u32::MAX));
        if number == 1 {
            self.next_page = 2;
        }
        let mut rows = page.rows;
        rows.retain_mut(|row| self.first_sight(row));
        self.stats.rows += rows.len() as u64;
        Ok(ScanPage { number, rows })
    }

    /// Drops from `row` every invoice already handed out in this scan; false
    /// when nothing new is left in it. Canceled invoices are taken first, so
    /// an invoice listed both ways counts as canceled.
    fn first_sight(&mut self, row: &mut Row) -> bool {
        let new_row = self.seen_rows.insert(row.id);
        let had_invoices = !row.invoices.is_empty() || !row.canceled_invoices.is_empty();
        let seen = &mut self.seen_invoices;
        row.canceled_invoices
            .retain(|i| seen.insert(SeenKey::of(&i.invoice_id)));
        row.invoices
            .retain(|i| seen.insert(SeenKey::of(&i.invoice_id)));
        let kept = row.invoices.len() + row.canceled_invoices.len();
        self.stats.invoices += kept as u64;
        let keep = kept > 0 || (new_row && !had_invoices);
        if !keep {
            self.stats.duplicate_rows += 1;
        }
        keep
    }
}

/// How a scan remembers an invoice id it handed out. The ids seen so far are
/// decimal numbers, kept as a `u64` (8 bytes instead of a heap string: this
/// set is the one part of a scan that grows with the number of invoices).
/// Anything else, including a number with leading zeros ("007" is not "7"),
/// is kept as text, so two distinct ids never share a key.
#[derive(Debug, PartialEq, Eq, Hash)]
enum SeenKey {
    Number(u64),
    Text(Box<str>),
}

impl SeenKey {
    fn of(id: &InvoiceId) -> SeenKey {
        let s = id.as_str();
        let canonical = !s.is_empty()
            && s.bytes().all(|b| b.is_ascii_digit())
            && (s == "0" || !s.starts_with('0'));
        match s.parse::<u64>() {
            Ok(n) if canonical => SeenKey::Number(n),
            _ => SeenKey::Text(s.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_ids_never_share_a_seen_key() {
        let key = |s: &str| SeenKey::of(&InvoiceId(s.into()));
        assert_eq!(key("456000"), SeenKey::Number(456000));
        assert_ne!(key("007"), key("7"));
        assert_ne!(key("+7"), key("7"));
        assert_eq!(key("INV-1"), SeenKey::Text("INV-1".into()));
        assert_eq!(key("0"), SeenKey::Number(0));
        assert_eq!(
            key("99999999999999999999999"),
            SeenKey::Text("99999999999999999999999".into())
        );
    }
}
