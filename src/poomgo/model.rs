//! The wire models of `POST /open-api/oms/orders`, request and response.
//!
//! The upstream is loosely specified (see `shared/poomgo-oms-orders-api.md`), so
//! parsing is tolerant wherever the vendor's documentation and its examples
//! disagree or are silent:
//!
//! - `total` is documented as a string; a JSON number is accepted too.
//! - `invoiceId` is documented as a string but seen as a number; both become an
//!   [`InvoiceId`] holding the decimal string.
//! - `invoices` / `canceledInvoices` that are `null` or absent mean "none".
//! - every descriptive string may be `null` or absent; unknown fields are ignored.
//! - `isPrinted`, `isClosed` and `invoiceCode` stay `Option`: a row that does not
//!   say a thing is not taken to say "false" (never infer from absence).
//!
//! Fields this product never reads (`items`, `originalData`, the prices) are not
//! modelled at all, so a page costs only what the diff needs.
//!
//! Personal data (`receiverData`, `customerData`) is parsed, because webhook
//! targets may opt in to it, but its `Debug` output is redacted so it cannot
//! reach a log line by accident.

use std::fmt;

use chrono::NaiveDate;
use serde::{Deserialize, Deserializer, Serialize, de};

/// The most rows the API serves on one page (documented).
pub const MAX_PAGE_SIZE: u32 = 500;

/// The filters of one query. Every bound is a whole day in Korea time,
/// inclusive (an assumption the vendor does not spell out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Query {
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created_at_from: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub created_at_to: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confirm_at_from: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub confirm_at_to: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub close_at_from: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub close_at_to: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub order_code: Option<String>,
}

/// The JSON object sent for one page. It is always an object with `page` and
/// `pageSize`, never the empty body of the vendor's curl example.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OrdersRequest<'a> {
    pub page: u32,
    pub page_size: u32,
    #[serde(flatten)]
    pub query: &'a Query,
}

/// One page of the response: `{"total": "1234", "rows": [...]}`.
#[derive(Debug, Clone, Deserialize)]
pub struct OrdersPage {
    #[serde(deserialize_with = "total")]
    pub total: u64,
    pub rows: Vec<Row>,
}

/// One order-ledger entry (one order of a sales channel) with its invoices.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    #[serde(deserialize_with = "ledger_id")]
    pub id: u64,
    #[serde(default)]
    pub channel_name: Option<String>,
    #[serde(default)]
    pub order_code: Option<String>,
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub subsidiary_code: Option<String>,
    #[serde(default)]
    pub release_code: Option<String>,
    #[serde(default)]
    pub receiver_data: Option<Person>,
    #[serde(default)]
    pub customer_data: Option<Person>,
    #[serde(default)]
    pub deal_name: Option<String>,
    #[serde(default)]
    pub deal_option_name: Option<String>,
    #[serde(default)]
    pub created_at: Option<String>,
    #[serde(default)]
    pub order_at: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub invoices: Vec<Invoice>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub canceled_invoices: Vec<Invoice>,
}

/// A recipient or buyer. Personal data: `Debug` shows nothing of it.
#[derive(Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Person {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub phone: Option<String>,
    #[serde(default)]
    pub mobile: Option<String>,
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Person { <redacted> }")
    }
}

/// One shipment of an order: a courier invoice (송장).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    pub invoice_id: InvoiceId,
    #[serde(default)]
    pub invoice_code: Option<String>,
    #[serde(default)]
    pub is_printed: Option<bool>,
    #[serde(default)]
    pub is_closed: Option<bool>,
    /// `null` (or absent) until the courier reports a status.
    #[serde(default)]
    pub cargo_status_code_key: Option<String>,
    #[serde(default)]
    pub logistics_partner_name: Option<String>,
}

/// The stable key of an invoice, always held as its decimal string whether the
/// API sent a string or a number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InvoiceId(pub String);

impl InvoiceId {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for InvoiceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for InvoiceId {
    fn from(s: &str) -> Self {
        InvoiceId(s.to_owned())
    }
}

impl<'de> Deserialize<'de> for InvoiceId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let id = d.deserialize_any(DecimalString("an invoice id (a string or an integer)"))?;
        if id.is_empty() {
            return Err(de::Error::custom("invoiceId is an empty string"));
        }
        Ok(InvoiceId(id))
    }
}

/// Accepts a string or a non-negative integer and yields it as a string.
struct DecimalString(&'static str);

impl de::Visitor<'_> for DecimalString {
    type Value = String;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<String, E> {
        Ok(v.trim().to_owned())
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<String, E> {
        Ok(v.to_string())
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<String, E> {
        if v < 0 {
            return Err(E::invalid_value(de::Unexpected::Signed(v), &self));
        }
        Ok(v.to_string())
    }
}

/// `total`: a string holding a number (documented) or a number (tolerated).
fn total<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    count(d, "`total` as a number or a string of digits")
}

fn ledger_id<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    count(d, "a ledger id (an integer)")
}

fn count<'de, D: Deserializer<'de>>(d: D, what: &'static str) -> Result<u64, D::Error> {
    let s = d.deserialize_any(DecimalString(what))?;
    s.parse::<u64>()
        .map_err(|_| de::Error::invalid_value(de::Unexpected::Str(&s), &what))
}

fn null_as_empty<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
}

/// Why a page body could not be read as the documented shape.
#[derive(Debug, thiserror::Error)]
pub enum ShapeError {
    #[error("the body is not JSON ({0})")]
    NotJson(String),
    #[error("{0}")]
    Invalid(String),
}

/// Parses a page body, naming the JSON path of the first thing that is wrong
/// (e.g. "`rows` is missing" or "`rows[3].invoices[0].isPrinted`: invalid type: ...").
pub fn parse_page(body: &[u8]) -> Result<OrdersPage, ShapeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let page: OrdersPage = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            return ShapeError::NotJson(inner.to_string());
        }
        let reason = strip_position(&inner.to_string());
        let parent = if path == "." { String::new() } else { format!("{path}.") };
        ShapeError::Invalid(match missing_field(&reason) {
            Some(field) => format!("`{parent}{field}` is missing"),
            None if path == "." => reason,
            None => format!("`{path}`: {reason}"),
        })
    })?;
    de.end().map_err(|e| ShapeError::NotJson(e.to_string()))?;
    Ok(page)
}

/// serde's "missing field `rows`" → `rows`.
fn missing_field(reason: &str) -> Option<&str> {
    reason.strip_prefix("missing field `")?.strip_suffix('`')
}

/// serde_json appends " at line L column C"; the JSON path already says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}
