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
        let parent = if path == "." {
            String::new()
        } else {
            format!("{path}.")
        };
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

#[cfg(test)]
mod tests {
    use super::*;

    fn page(body: &str) -> OrdersPage {
        parse_page(body.as_bytes()).unwrap_or_else(|e| panic!("{e}: {body}"))
    }

    fn err(body: &str) -> String {
        parse_page(body.as_bytes()).unwrap_err().to_string()
    }

    #[test]
    fn vendor_example_parses() {
        let p = parse_page(include_bytes!(
            "../../tests/fixtures/orders-response-example.json"
        ))
        .unwrap();
        assert_eq!(p.total, 2);
        assert_eq!(p.rows.len(), 2);
        let row = &p.rows[0];
        assert_eq!(row.id, 1234567);
        assert_eq!(row.order_code.as_deref(), Some("20201208_000001"));
        assert_eq!(row.channel_name.as_deref(), Some("스마트스토어"));
        assert_eq!(row.created_at.as_deref(), Some("2020-12-07T22:51:19.198Z"));
        assert_eq!(
            row.invoices,
            vec![Invoice {
                invoice_id: InvoiceId("456000".into()),
                invoice_code: Some("380424004285".into()),
                is_printed: Some(true),
                is_closed: Some(true),
                cargo_status_code_key: Some("INVOICE_CARGO_STATUS_DELIVERYCOMPLETED".into()),
                logistics_partner_name: Some("CJ대한통운".into()),
            }]
        );
        assert_eq!(
            row.receiver_data.as_ref().unwrap().mobile.as_deref(),
            Some("010-1234-5678")
        );
        let unpacked = &p.rows[1];
        assert!(unpacked.invoices.is_empty() && unpacked.canceled_invoices.is_empty());
        assert_eq!(unpacked.subsidiary_code, None);
        assert_eq!(
            unpacked.deal_name.as_deref(),
            Some("무선 키보드 \"K10\" <블랙>")
        );
        assert_eq!(unpacked.customer_data.as_ref().unwrap().phone, None);
    }

    #[test]
    fn total_as_string_or_number() {
        assert_eq!(page(r#"{"total":"1234","rows":[]}"#).total, 1234);
        assert_eq!(page(r#"{"total":1234,"rows":[]}"#).total, 1234);
        assert_eq!(page(r#"{"total":" 7 ","rows":[]}"#).total, 7);
        assert!(err(r#"{"total":"many","rows":[]}"#).contains("`total`"));
        assert_eq!(err(r#"{"rows":[]}"#), "`total` is missing");
    }

    #[test]
    fn invoice_id_as_string_or_number() {
        let p = page(
            r#"{"total":"1","rows":[{"id":1,"invoices":[{"invoiceId":456000},{"invoiceId":"456001"}],
            "canceledInvoices":[{"invoiceId":" 9 "}]}]}"#,
        );
        let ids: Vec<_> = p.rows[0]
            .invoices
            .iter()
            .map(|i| i.invoice_id.as_str())
            .collect();
        assert_eq!(ids, ["456000", "456001"]);
        assert_eq!(p.rows[0].canceled_invoices[0].invoice_id.as_str(), "9");
        assert!(
            err(r#"{"total":"1","rows":[{"id":1,"invoices":[{"invoiceId":""}]}]}"#)
                .contains("empty")
        );
        assert!(
            err(r#"{"total":"1","rows":[{"id":1,"invoices":[{"invoiceId":-3}]}]}"#)
                .contains("rows[0].invoices[0].invoiceId")
        );
        assert!(
            err(r#"{"total":"1","rows":[{"id":1,"invoices":[{"invoiceCode":"1"}]}]}"#)
                .contains("`rows[0].invoices[0].invoiceId` is missing")
        );
    }

    #[test]
    fn null_or_absent_invoice_lists_are_empty() {
        let p = page(
            r#"{"total":"3","rows":[{"id":1,"invoices":null,"canceledInvoices":null},{"id":2},{"id":3,"invoices":[]}]}"#,
        );
        assert!(
            p.rows
                .iter()
                .all(|r| r.invoices.is_empty() && r.canceled_invoices.is_empty())
        );
    }

    #[test]
    fn null_status_absent_optionals_and_unknown_fields() {
        let p = page(
            r#"{"total":"1","extra":{"x":1},"rows":[{"id":"42","brandNew":[1,2],"channelName":null,
            "invoices":[{"invoiceId":1,"cargoStatusCodeKey":null,"someday":"x"}]}]}"#,
        );
        let row = &p.rows[0];
        assert_eq!(row.id, 42);
        assert_eq!(row.channel_name, None);
        let inv = &row.invoices[0];
        assert_eq!(inv.cargo_status_code_key, None);
        assert_eq!(
            (inv.is_printed, inv.is_closed, inv.invoice_code.as_deref()),
            (None, None, None)
        );
    }

    #[test]
    fn shape_errors_name_the_path() {
        assert_eq!(err(r#"{"total":"0"}"#), "`rows` is missing");
        assert!(err(r#"{"total":"0","rows":null}"#).starts_with("`rows`: invalid type: null"));
        assert!(
            err(
                r#"{"total":"1","rows":[{"id":1,"invoices":[{"invoiceId":1,"isPrinted":"yes"}]}]}"#
            )
            .starts_with("`rows[0].invoices[0].isPrinted`: invalid type")
        );
        assert!(err("<html>502</html>").starts_with("the body is not JSON"));
        assert!(err(r#"{"total":"1","rows":[{"id":1"#).starts_with("the body is not JSON"));
        assert!(err(r#"[1,2]"#).contains("invalid type"));
    }

    #[test]
    fn personal_data_is_redacted_in_debug() {
        let p = parse_page(include_bytes!(
            "../../tests/fixtures/orders-response-example.json"
        ))
        .unwrap();
        let debug = format!("{:?}", p);
        for secret in ["홍길동", "010-1234-5678", "테헤란로", "06236"] {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
        assert!(debug.contains("456000"));
    }

    #[test]
    fn request_body_is_always_an_object_with_set_fields_only() {
        let q = Query {
            created_at_from: NaiveDate::from_ymd_opt(2020, 12, 7),
            created_at_to: NaiveDate::from_ymd_opt(2020, 12, 9),
            ..Query::default()
        };
        let body = serde_json::to_string(&OrdersRequest {
            page: 1,
            page_size: 10,
            query: &q,
        })
        .unwrap();
        assert_eq!(
            body,
            r#"{"page":1,"pageSize":10,"createdAtFrom":"2020-12-07","createdAtTo":"2020-12-09"}"#
        );
        let q = Query {
            order_code: Some("20201208_000001".into()),
            ..Query::default()
        };
        let body = serde_json::to_string(&OrdersRequest {
            page: 2,
            page_size: 500,
            query: &q,
        })
        .unwrap();
        assert_eq!(
            body,
            r#"{"page":2,"pageSize":500,"orderCode":"20201208_000001"}"#
        );
    }
}
