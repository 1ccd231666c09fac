//! The HTTP client of the orders endpoint: one page per call, retried.
//!
//! Failures are classified once, here, into what the caller can act on:
//!
//! | upstream says                         | [`PoomgoError`]   | retried? |
//! |---------------------------------------|-------------------|----------|
//! | 401 / 403                             | `KeyRejected`     | never: it is a configuration error |
//! | 408, 429, 5xx, connect error, time-out, body cut off | `GaveUp` once the retry policy is spent | yes, with back-off and jitter, at least `Retry-After` (up to an hour) |
//! | 200 whose body is not JSON or not the documented envelope (a proxy's HTML maintenance page) | `Malformed` once the retry policy is spent | yes, like a 5xx |
//! | any other 4xx                         | `Refused`         | never: the same request fails the same way |
//!
//! Odd rows inside a good envelope are not failures at all: the parser
//! leaves them out and lists them (see [`super::model`]).
//!
//! The API key travels in a header marked sensitive and is never formatted:
//! not in an error, a log line or `Debug`. reqwest's own errors carry the URL,
//! so they are described through [`crate::http::describe`].

use std::{fmt, sync::Arc, time::Duration};

use reqwest::{StatusCode, Url, header};
use secrecy::{ExposeSecret, SecretString};

use super::model::{KnownRows, OrdersPage, OrdersRequest, Query, ShapeError, parse_page_with};
use crate::config::PoomgoConfig;
use crate::http::{describe, retry_after, snippet};
use crate::retry::RetryPolicy;

/// The longest `Retry-After` the client waits out in one go.
pub const RETRY_AFTER_CAP: Duration = Duration::from_secs(3600);

/// The path of the orders endpoint under `base_url`.
pub const ORDERS_PATH: &str = "/open-api/oms/orders";

/// Why a page could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum PoomgoError {
    #[error("page {page}: the Poomgo API rejected the key (HTTP {status}); check `poomgo.api_key`")]
    KeyRejected { page: u32, status: u16 },
    #[error("page {page}: the Poomgo API refused the request (HTTP {status}){detail}")]
    Refused {
        page: u32,
        status: u16,
        detail: String,
    },
    #[error("page {page}: gave up after {attempts} attempts; the last one failed with {last}")]
    GaveUp {
        page: u32,
        attempts: u32,
        last: String,
    },
    #[error(
        "page {page}: the answer was not the documented page after {attempts} attempts: {reason}"
    )]
    Malformed {
        page: u32,
        attempts: u32,
        reason: ShapeError,
    },
}

impl PoomgoError {
    /// True when retrying later cannot help until someone changes the config.
    pub fn is_configuration(&self) -> bool {
        matches!(self, PoomgoError::KeyRejected { .. })
    }
}

/// A cheap-to-clone handle on the orders endpoint.
#[derive(Clone)]
pub struct PoomgoClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Url,
    api_key: SecretString,
    retry: RetryPolicy,
    page_size: u32,
    concurrency: usize,
    /// Whose key this is (the `merchant` label of the upstream metrics).
    merchant: String,
    /// The process-wide cap on requests in flight to the API, shared by
    /// every merchant's client.
    upstream: Option<Arc<tokio::sync::Semaphore>>,
}

impl fmt::Debug for PoomgoClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoomgoClient")
            .field("endpoint", &self.inner.endpoint.as_str())
            .field("api_key", &"<redacted>")
            .field("page_size", &self.inner.page_size)
            .finish()
    }
}

/// The outcome of one attempt that did not return a page.
enum Failure {
    Fatal(PoomgoError),
    Transient {
        reason: String,
        retry_after: Option<Duration>,
        /// Set when a 200 carried a body that is not the documented page.
        shape: Option<ShapeError>,
        /// The HTTP status, when there was one.
        status: Option<u16>,
    },
}

impl PoomgoClient {
    /// `http` is the process's one client (see [`crate::http::client`]).
    pub fn new(config: &PoomgoConfig, http: reqwest::Client) -> anyhow::Result<Self> {
        let base = Url::parse(&config.base_url)
            .map_err(|e| anyhow::anyhow!("`poomgo.base_url` is not a URL: {e}"))?;
        let endpoint = base
            .join(ORDERS_PATH)
            .map_err(|e| anyhow::anyhow!("`poomgo.base_url` cannot take the orders path: {e}"))?;
        Ok(PoomgoClient {
            inner: Arc::new(Inner {
                http,
                endpoint,
                api_key: config.api_key.clone(),
                retry: RetryPolicy::exponential(
                    config.max_attempts,
                    config.retry_base,
                    config.retry_max,
                    RETRY_AFTER_CAP,
                ),
                page_size: config.page_size.clamp(1, super::MAX_PAGE_SIZE),
                concurrency: config.concurrency.max(1),
                merchant: crate::merchant::DEFAULT.to_owned(),
                upstream: None,
            }),
        })
    }

    /// The same client for `merchant`, its requests counted against
    /// `upstream`, the process-wide cap (call before cloning it).
    pub fn for_merchant(mut self, merchant: &str, upstream: Arc<tokio::sync::Semaphore>) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.merchant = merchant.to_owned();
            inner.upstream = Some(upstream);
        }
        self
    }

    pub fn page_size(&self) -> u32 {
        self.inner.page_size
    }

    pub fn concurrency(&self) -> usize {
        self.inner.concurrency
    }

    /// Fetches page `page` (1-based) of `query`, retrying transient failures.
    pub async fn fetch_page(&self, query: &Query, page: u32) -> Result<OrdersPage, PoomgoError> {
        self.fetch_page_sized(query, page, self.inner.page_size)
            .await
    }

    /// As [`fetch_page`](Self::fetch_page) with an explicit page size (`check --online` asks for 1).
    pub async fn fetch_page_sized(
        &self,
        query: &Query,
        page: u32,
        page_size: u32,
    ) -> Result<OrdersPage, PoomgoError> {
        self.fetch(query, page, page_size, None).await
    }

    /// Fetches a page, leaving the rows `known` recognises unparsed.
    pub async fn fetch_page_known(
        &self,
        query: &Query,
        page: u32,
        known: Option<&dyn KnownRows>,
    ) -> Result<OrdersPage, PoomgoError> {
        self.fetch(query, page, self.inner.page_size, known).await
    }

    async fn fetch(
        &self,
        query: &Query,
        page: u32,
        page_size: u32,
        known: Option<&dyn KnownRows>,
    ) -> Result<OrdersPage, PoomgoError> {
        let request = OrdersRequest {
            page,
            page_size: page_size.clamp(1, super::MAX_PAGE_SIZE),
            query,
        };
        let body = serde_json::to_vec(&request).expect("a request always serializes");
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(page, &body, known).await {
                Ok(p) => return Ok(p),
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Transient {
                    reason,
                    retry_after,
                    shape,
                    status,
                }) => {
                    if retry_after.is_some() || status == Some(429) {
                        crate::metrics::upstream_throttled(&self.inner.merchant);
                    }
                    match self.inner.retry.wait_after(attempt, retry_after) {
                        Some(wait) => {
                            crate::metrics::upstream_retry(&self.inner.merchant);
                            tracing::warn!(page, attempt, wait_ms = wait.as_millis() as u64, %reason, "Poomgo page failed; retrying");
                            tokio::time::sleep(wait).await;
                        }
                        None => {
                            return Err(match shape {
                                Some(reason) => PoomgoError::Malformed {
                                    page,
                                    attempts: attempt,
                                    reason,
                                },
                                None => PoomgoError::GaveUp {
                                    page,
                                    attempts: attempt,
                                    last: reason,
                                },
                            });
                        }
                    }
                }
            }
        }
    }

    async fn attempt(
        &self,
        page: u32,
        body: &[u8],
        known: Option<&dyn KnownRows>,
    ) -> Result<OrdersPage, Failure> {
        let mut key =
            header::HeaderValue::from_str(self.inner.api_key.expose_secret()).map_err(|_| {
                Failure::Fatal(PoomgoError::Refused {
                    page,
                    status: 0,
                    detail: ": `poomgo.api_key` holds characters an HTTP header cannot carry"
                        .into(),
                })
            })?;
        key.set_sensitive(true);
        // Held to the end of the attempt; the semaphore is never closed.
        let _permit = match &self.inner.upstream {
            Some(cap) => cap.acquire().await.ok(),
            None => None,
        };
        let response = self
            .inner
            .http
            .post(self.inner.endpoint.clone())
            .header(header::AUTHORIZATION, key)
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| Failure::Transient {
                reason: describe(e),
                retry_after: None,
                shape: None,
                status: None,
            })?;
        let status = response.status();
        if status.is_success() {
            let bytes = response.bytes().await.map_err(|e| Failure::Transient {
                reason: format!("the body was cut off ({})", describe(e)),
                retry_after: None,
                shape: None,
                status: Some(200),
            })?;
            let mut parsed =
                parse_page_with(&bytes, known).map_err(|shape| Failure::Transient {
                    reason: format!("HTTP 200 but {shape}"),
                    retry_after: None,
                    shape: Some(shape),
                    status: Some(200),
                })?;
            if !parsed.known.is_empty() {
                parsed.body = Some(bytes);
            }
            return Ok(parsed);
        }
        if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
            return Err(Failure::Fatal(PoomgoError::KeyRejected {
                page,
                status: status.as_u16(),
            }));
        }
        let retry_after = retry_after(response.headers());
        if crate::retry::is_transient_status(status.as_u16()) {
            let reason = match retry_after {
                Some(d) => format!("HTTP {} (Retry-After {}s)", status.as_u16(), d.as_secs()),
                None => format!("HTTP {}", status.as_u16()),
            };
            return Err(Failure::Transient {
                reason,
                retry_after,
                shape: None,
                status: Some(status.as_u16()),
            });
        }
        let text = response.text().await.unwrap_or_default();
        let detail = snippet(&text, self.inner.api_key.expose_secret(), 200);
        Err(Failure::Fatal(PoomgoError::Refused {
            page,
            status: status.as_u16(),
            detail: if detail.is_empty() {
                String::new()
            } else {
                format!(": {detail}")
            },
        }))
    }
}
