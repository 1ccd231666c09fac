//! A scan walks every page of one query, page by page.
//!
//! Page 1 is fetched alone because only its `total` says how many pages there
//! are; then up to `concurrency` pages are in flight at once and handed out in
//! page order. Each fetch runs as its own task, so pages keep arriving while
//! the caller diffs and commits the one before. Memory is bounded by
//! `concurrency × page_size` rows, never by the whole result.
//!
//! **Complete means complete.** A page must hold as many rows as its own
//! `total` says it should (`min(pageSize, total − rows before it)`). A page
//! that comes back short (an upstream glitch that answers `rows: []` under a
//! non-zero `total`) is read once more; if the second answer still falls short
//! of what *its* `total` promises, the page is handed out as it is and counted
//! as short, and the scan is incomplete. Orders that disappear mid-scan lower
//! `total`, so a later page with fewer rows that its `total` explains is not
//! short.
//!
//! Rows shift between pages while new orders arrive (the API is newest first),
//! so the same row can be served twice in one scan. The scan hands out what
//! it read; telling a repeat from a combined shipment (one invoice listed by
//! several orders) is the poll's job, across every window of the poll. When a
//! later page reports a larger `total`, the scan grows to cover it.
//!
//! A failed page ends the scan with that error. Pages already handed out stay
//! valid (the diff never infers anything from an invoice it did not see).

use std::{collections::VecDeque, sync::Arc};

use tokio::task::JoinHandle;

use super::client::{PoomgoClient, PoomgoError};
use super::model::{KnownRows, OrdersPage, Query};

/// One page of a scan.
#[derive(Debug)]
pub struct ScanPage {
    pub number: u32,
    /// The page held fewer rows than its `total` promised, twice.
    pub short: bool,
    /// What it held, as read: its rows, skips, and what the scan's
    /// [`KnownRows`] recognised (see [`Scan::with_known`]).
    pub content: OrdersPage,
}

/// What a scan saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanStats {
    /// Pages fetched and handed out.
    pub pages: u32,
    /// Rows received (every element of `rows`, readable or not).
    pub rows: u64,
    /// The largest `total` the API reported during the scan.
    pub total: u64,
    /// Pages that fell short of their `total` even when read again.
    pub short_pages: Vec<u32>,
}

type PageTask = JoinHandle<Result<(OrdersPage, bool), PoomgoError>>;

pub struct Scan {
    client: PoomgoClient,
    query: Arc<Query>,
    /// The next page to request; 1 until page 1 arrived.
    next_page: u32,
    /// The last page known to exist; 0 until page 1 arrived.
    last_page: u32,
    in_flight: VecDeque<(u32, PageTask)>,
    stats: ScanStats,
    finished: bool,
    known: Option<Arc<dyn KnownRows>>,
}

impl Drop for Scan {
    fn drop(&mut self) {
        // A scan given up (shutdown, a failed page) stops its fetches.
        for (_, task) in &self.in_flight {
            task.abort();
        }
    }
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
            in_flight: VecDeque::new(),
            stats: ScanStats::default(),
            finished: false,
            known: None,
        }
    }

    /// Fetches page `number` and, when it holds fewer rows than its own
    /// `total` promises, once more. The flag says it was still short.
    async fn fetch_whole_page(
        &self,
        query: &Query,
        number: u32,
        known: Option<&dyn KnownRows>,
    ) -> Result<(OrdersPage, bool), PoomgoError> {
        let page = self.fetch_page_known(query, number, known).await?;
        if !self.is_short(&page, number) {
            return Ok((page, false));
        }
        tracing::warn!(
            page = number,
            rows = page.raw_rows,
            total = page.total,
            "a Poomgo page held fewer rows than its total promised; reading it again"
        );
        let again = self.fetch_page_known(query, number, known).await?;
        let short = self.is_short(&again, number);
        Ok((again, short))
    }

    fn is_short(&self, page: &OrdersPage, number: u32) -> bool {
        let size = u64::from(self.page_size());
        let before = u64::from(number.saturating_sub(1)) * size;
        let expected = page.total.saturating_sub(before).min(size);
        (page.raw_rows as u64) < expected
    }
}

impl Scan {
    /// Rows `known` recognises (by digest) are handed out unparsed, in
    /// [`ScanPage::known`]; the others come with their digests.
    pub fn with_known(mut self, known: Arc<dyn KnownRows>) -> Scan {
        self.known = Some(known);
        self
    }

    /// The next page in page order, `None` after the last one or after an error.
    pub async fn next_page(&mut self) -> Option<Result<ScanPage, PoomgoError>> {
        if self.finished {
            return None;
        }
        if self.last_page == 0 {
            let first = self
                .client
                .fetch_whole_page(&self.query, 1, self.known.as_deref())
                .await;
            return Some(self.accept(1, first));
        }
        self.refill();
        let Some((number, task)) = self.in_flight.pop_front() else {
            self.finished = true;
            return None;
        };
        let result = match task.await {
            Ok(r) => r,
            Err(e) => {
                // A fetch task only ends without a result when it panicked.
                self.finished = true;
                return Some(Err(PoomgoError::GaveUp {
                    page: number,
                    attempts: 0,
                    last: format!("the page's fetch task failed: {e}"),
                }));
            }
        };
        let page = self.accept(number, result);
        if !self.finished {
            self.refill();
        }
        Some(page)
    }

    pub fn stats(&self) -> &ScanStats {
        &self.stats
    }

    fn refill(&mut self) {
        while self.in_flight.len() < self.client.concurrency() && self.next_page <= self.last_page {
            let (client, query, number) = (self.client.clone(), self.query.clone(), self.next_page);
            let known = self.known.clone();
            let task = tokio::spawn(async move {
                client
                    .fetch_whole_page(&query, number, known.as_deref())
                    .await
            });
            self.in_flight.push_back((number, task));
            self.next_page += 1;
        }
    }

    fn accept(
        &mut self,
        number: u32,
        result: Result<(OrdersPage, bool), PoomgoError>,
    ) -> Result<ScanPage, PoomgoError> {
        let (page, short) = match result {
            Ok(page) => page,
            Err(e) => {
                self.finished = true;
                for (_, task) in self.in_flight.drain(..) {
                    task.abort();
                }
                return Err(e);
            }
        };
        self.stats.pages += 1;
        self.stats.rows += page.raw_rows as u64;
        self.stats.total = self.stats.total.max(page.total);
        if short {
            self.stats.short_pages.push(number);
        }
        let pages = page
            .total
            .div_ceil(u64::from(self.client.page_size()))
            .max(1);
        self.last_page = self.last_page.max(u32::try_from(pages).unwrap_or(u32::MAX));
        if number == 1 {
            self.next_page = 2;
        }
        Ok(ScanPage {
            number,
            short,
            content: page,
        })
    }
}
