//! The wire models of `POST /open-api/oms/orders`, request and response, and
//! a page parser that an odd row cannot stop.
//!
//! The upstream is loosely specified (see `shared/poomgo-oms-orders-api.md`),
//! so the parser is written by hand, field by field, around one rule: **only
//! the envelope can fail a page.** A body that is not JSON, or has no `total`
//! and `rows` array, is the page's problem ([`ShapeError`]). Everything inside
//! a row is the row's, or one invoice's, problem:
//!
//! - Fields the notifier does not track (names, personal data, amounts,
//!   `items`, `originalData`, anything unknown) never fail anything. A number
//!   where a string is documented becomes that string; what cannot be read is
//!   dropped (`None`).
//! - A *tracked* field of the wrong type (`isPrinted: "yes"`), or an invoice
//!   without a usable `invoiceId`, drops **that invoice** from the page and
//!   records a [`Skip`] naming the JSON path, never the value. The diff never
//!   sees it, so its snapshot stays as it was and no event is made.
//! - A row that is not an object, or whose `invoices` / `canceledInvoices` is
//!   not a list, loses all its invoices for this page (one list unread could
//!   hide an active listing of an invoice the other calls canceled).
//! - **Absent is not null.** [`Reported`] keeps "the key was missing" apart
//!   from "the key said null": a missing key keeps the stored value.
//!   `isPrinted`/`isClosed` cannot be null in a snapshot, so `null` there counts
//!   as "not reported" too.
//!
//! serde's derive cannot do this: with serde_json's streaming deserializer an
//! `Err` from any nested field aborts the whole document. So every visitor
//! here consumes whatever value it is given and reports the oddity as data.
//!
//! Personal data (`receiverData`, `customerData`) is parsed, because targets
//! may opt in to it, but its `Debug` output is redacted so it cannot reach a
//! log line by accident.

use std::{borrow::Cow, fmt};

use chrono::NaiveDate;
use serde::{
    Deserialize, Deserializer, Serialize,
    de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor},
};

/// The most rows the API serves on one page (documented).
pub const MAX_PAGE_SIZE: u32 = 500;

/// The filters of one query. Every bound is a whole day in Korea time,
/// inclusive (an assumption the vendor does not spell out).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, Default)]
pub struct OrdersPage {
    pub total: u64,
    /// The readable rows, in page order.
    pub rows: Vec<Row>,
    /// Every element of `rows`, readable or not: what is compared with
    /// `total` to tell a complete page from a short one.
    pub raw_rows: usize,
    /// Invoices (or rows) left out of `rows` because something tracked was odd.
    pub skipped: Vec<Skip>,
    /// With [`parse_page_with`]: each readable row's digest, parallel to
    /// `rows`; `None` for a row with a part skipped (never to be vouched for).
    pub digests: Vec<Option<RowDigest>>,
    /// With [`parse_page_with`]: rows the caller recognised by digest, left unparsed.
    pub known: Vec<KnownRow>,
    /// With [`parse_page_with`]: the order ids of rows the caller knew with
    /// other bytes (changed since): what it knew of them is out of date.
    pub stale: Vec<u64>,
    /// The body, kept when `known` is not empty, so a known row can still be
    /// parsed ([`parse_known_row`]).
    pub body: Option<bytes::Bytes>,
}

/// A row's fingerprint: a 64-bit hash (xxh3) of its exact bytes. It is only
/// ever compared with the same row's (same order id) digest of before, so a
/// change goes unnoticed only if it keeps all 64 bits: about one change in
/// 1.8 × 10¹⁹. Never trusted across a change of how rows are read:
/// [`DIGEST_FORMAT`] seeds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RowDigest(pub u64);

/// Bump when a change to this parser could read the same bytes differently,
/// so that rows vouched for by an older build are read again.
pub const DIGEST_FORMAT: u64 = 1;

impl RowDigest {
    pub fn of(raw: &[u8]) -> RowDigest {
        RowDigest(xxhash_rust::xxh3::xxh3_64_with_seed(raw, DIGEST_FORMAT))
    }
}

/// What a caller knows about rows it has read before (the poll: rows whose
/// every invoice was diffed and committed today), by the row's order id.
pub trait KnownRows: Send + Sync {
    fn known(&self, order_id: u64, digest: &RowDigest) -> Known;

    /// [`KnownRows::known`] of each row of a page, in order. A store can
    /// answer a page at once faster than row by row.
    fn known_many(&self, rows: &[(u64, RowDigest)]) -> Vec<Known> {
        rows.iter().map(|(id, d)| self.known(*id, d)).collect()
    }
}

/// What a caller knows about one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// These very bytes: the invoice ids the row lists.
    Unchanged(Vec<String>),
    /// The row, with other bytes.
    Changed,
    Unknown,
}

/// A row recognised by its digest and not parsed.
#[derive(Debug, Clone)]
pub struct KnownRow {
    pub order_id: u64,
    pub digest: RowDigest,
    pub invoice_ids: Vec<String>,
    /// Its place in `rows` (for the paths of skips if it is parsed after all).
    pub index: usize,
    /// Its bytes within [`OrdersPage::body`].
    pub at: std::ops::Range<usize>,
}

/// What a row said about one tracked value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Reported<T> {
    /// The key was not there: the row says nothing about it.
    #[default]
    Absent,
    /// The key said `null`.
    Null,
    Value(T),
}

impl<T> Reported<T> {
    /// `None` when absent; `Some(None)` for null.
    pub fn as_reported(&self) -> Option<Option<&T>> {
        match self {
            Reported::Absent => None,
            Reported::Null => Some(None),
            Reported::Value(v) => Some(Some(v)),
        }
    }
}

impl<T> From<Option<T>> for Reported<T> {
    /// `Some` is a value, `None` is an explicit null.
    fn from(v: Option<T>) -> Self {
        v.map_or(Reported::Null, Reported::Value)
    }
}

/// One order-ledger entry (one order of a sales channel) with its invoices.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    /// The ledger id; `None` when the row had none that could be read.
    pub id: Option<u64>,
    pub channel_name: Option<String>,
    pub order_code: Option<String>,
    pub code: Option<String>,
    pub subsidiary_code: Option<String>,
    pub release_code: Option<String>,
    pub receiver_data: Option<Person>,
    pub customer_data: Option<Person>,
    pub deal_name: Option<String>,
    pub deal_option_name: Option<String>,
    pub created_at: Option<String>,
    pub order_at: Option<String>,
    pub invoices: Vec<Invoice>,
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

/// One shipment of an order: a courier invoice (송장), as one listing says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invoice {
    pub invoice_id: InvoiceId,
    /// The courier's tracking number; an empty string counts as null.
    pub invoice_code: Reported<String>,
    /// `None`: not reported (absent or null).
    pub is_printed: Option<bool>,
    pub is_closed: Option<bool>,
    /// `null` until the courier reports a status; an empty string counts as null.
    pub cargo_status_code_key: Reported<String>,
    pub logistics_partner_name: Option<String>,
}

impl Invoice {
    /// An invoice that says nothing but its id.
    pub fn bare(id: &str) -> Invoice {
        Invoice {
            invoice_id: InvoiceId(id.to_owned()),
            invoice_code: Reported::Absent,
            is_printed: None,
            is_closed: None,
            cargo_status_code_key: Reported::Absent,
            logistics_partner_name: None,
        }
    }
}

/// The stable key of an invoice, always held as its decimal string whether the
/// API sent a string or a number.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
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

/// An invoice or a row the parser left out, and why. It names where, never
/// what: the value may be personal data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip {
    /// The ledger id of the row, when it had one.
    pub order_id: Option<u64>,
    /// The invoice, when its id could be read.
    pub invoice_id: Option<String>,
    /// The JSON path within the page, e.g. `rows[3].invoices[0].isPrinted`.
    pub path: String,
    pub reason: SkipReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SkipReason {
    /// A tracked field held a value of another type.
    WrongType {
        expected: &'static str,
        found: &'static str,
    },
    /// An invoice without a usable `invoiceId`.
    NoInvoiceId { found: &'static str },
    /// A row that is not an object, or an invoice list that is not a list.
    UnreadableRow { found: &'static str },
    /// An element of an invoice list that is not an object.
    UnreadableInvoice { found: &'static str },
}

impl SkipReason {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            SkipReason::WrongType { .. } => "wrong_type",
            SkipReason::NoInvoiceId { .. } => "no_invoice_id",
            SkipReason::UnreadableRow { .. } => "unreadable_row",
            SkipReason::UnreadableInvoice { .. } => "unreadable_invoice",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::WrongType { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            SkipReason::NoInvoiceId { found } => {
                write!(f, "no usable invoiceId (found {found})")
            }
            SkipReason::UnreadableRow { found } => {
                write!(f, "expected an object with invoice lists, found {found}")
            }
            SkipReason::UnreadableInvoice { found } => {
                write!(f, "expected an invoice object, found {found}")
            }
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.path, self.reason)
    }
}

/// Why a page body could not be read as the documented envelope.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ShapeError {
    #[error("the body is not JSON ({0})")]
    NotJson(String),
    #[error("{0}")]
    Invalid(String),
}

/// Parses a page body. Only a body that is not JSON, or not the documented
/// envelope (`total` and a `rows` array), is an error; odd rows and invoices
/// are left out and listed in [`OrdersPage::skipped`].
pub fn parse_page(body: &[u8]) -> Result<OrdersPage, ShapeError> {
    parse_page_with(body, None)
}

/// As [`parse_page`], but each row is first hashed: a row `known` recognises
/// is listed in [`OrdersPage::known`] and not parsed; the others are parsed
/// and their digests kept. (Without `known`, one pass and no digests.)
pub fn parse_page_with(
    body: &[u8],
    known: Option<&dyn KnownRows>,
) -> Result<OrdersPage, ShapeError> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let visitor = EnvelopeVisitor {
        known,
        base: body.as_ptr() as usize,
    };
    let envelope = de.deserialize_any(visitor).map_err(|e| {
        if e.is_syntax() || e.is_eof() || e.is_io() {
            ShapeError::NotJson(strip_position(&e.to_string()))
        } else {
            ShapeError::Invalid(strip_position(&e.to_string()))
        }
    })?;
    de.end()
        .map_err(|e| ShapeError::NotJson(strip_position(&e.to_string())))?;
    envelope
}

/// Parses a row of [`OrdersPage::known`] after all (the poll needs it when
/// another row of the page lists one of its invoices), from the page's
/// [`OrdersPage::body`]. Skips are appended to `skipped`.
pub fn parse_known_row(body: &[u8], row: &KnownRow, skipped: &mut Vec<Skip>) -> Option<Row> {
    let raw = body.get(row.at.clone())?;
    let mut de = serde_json::Deserializer::from_slice(raw);
    RowSeed {
        index: row.index,
        skipped,
    }
    .deserialize(&mut de)
    .ok()
    .flatten()
}

/// The `id` of a row's object (its order-ledger id), read without the rest:
/// the visitor stops at the key (the vendor sends it first), by ending the
/// parse with an error once it holds the id. `None` when the row is no
/// object or has no whole-number `id`.
fn row_id(text: &str) -> Option<u64> {
    struct IdOnly<'a>(&'a std::cell::Cell<Option<u64>>);
    impl<'de> Visitor<'de> for IdOnly<'_> {
        type Value = ();
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a row object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<Key>()? {
                if &*key.0 == "id" {
                    self.0.set(map.next_value::<Scalar>()?.whole());
                    return Err(de::Error::custom("stop: the id is read"));
                }
                map.next_value::<IgnoredAny>()?;
            }
            Ok(())
        }
    }
    let id = std::cell::Cell::new(None);
    let mut de = serde_json::Deserializer::from_str(text);
    let _ = de.deserialize_map(IdOnly(&id));
    id.get()
}

/// serde_json appends " at line L column C"; the path already says where.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

// ---------------------------------------------------------------------------
// Visitors. Each one consumes whatever value it is handed; oddities come back
// as data, never as a deserializer error (which would abort the page).

/// Implements every non-object `visit_*` by consuming the value and calling
/// `self.other(found)`, where `found` says what kind of value it was.
macro_rules! visit_non_objects {
    () => {
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(self.other("null"))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(self.other("null"))
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(self.other("a boolean"))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(self.other("a number"))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(self.other("a number"))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(self.other("a number"))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(self.other("a string"))
        }
    };
}

/// A map key, borrowed from the body when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, kept when it is a leaf and consumed when it is compound.
enum Scalar<'de> {
    Null,
    Bool(bool),
    U64(u64),
    I64(i64),
    F64(f64),
    Str(Cow<'de, str>),
    Array,
    Object,
}

impl Scalar<'_> {
    fn found(&self) -> &'static str {
        match self {
            Scalar::Null => "null",
            Scalar::Bool(_) => "a boolean",
            Scalar::U64(_) | Scalar::I64(_) | Scalar::F64(_) => "a number",
            Scalar::Str(s) if s.trim().is_empty() => "an empty string",
            Scalar::Str(_) => "a string",
            Scalar::Array => "an array",
            Scalar::Object => "an object",
        }
    }

    /// A non-negative whole number, however it was written.
    fn whole(&self) -> Option<u64> {
        match self {
            Scalar::U64(n) => Some(*n),
            Scalar::I64(n) => u64::try_from(*n).ok(),
            // Integral floats below 2^53 are exact.
            Scalar::F64(x) if x.is_finite() && *x >= 0.0 && *x < 9e15 && x.fract() == 0.0 => {
                Some(*x as u64)
            }
            Scalar::Str(s) => {
                let t = s.trim();
                if t.is_empty() || !t.bytes().all(|b| b.is_ascii_digit()) {
                    return None;
                }
                t.parse().ok()
            }
            _ => None,
        }
    }

    /// An untracked text field: a string, or a number written as one.
    /// Anything else is dropped.
    fn lenient_string(self) -> Option<String> {
        match self {
            Scalar::Str(s) => Some(s.into_owned()),
            Scalar::U64(n) => Some(n.to_string()),
            Scalar::I64(n) => Some(n.to_string()),
            Scalar::F64(x) if x.is_finite() => Some(x.to_string()),
            _ => None,
        }
    }
}

impl<'de> Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Scalar<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Scalar<'de>, D::Error> {
                Scalar::deserialize(d)
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Bool(v))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::U64(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::I64(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Scalar<'de>, E> {
                Ok(Scalar::F64(v))
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Scalar<'de>, E> {
                Ok(Scalar::Str(Cow::Owned(v)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Scalar<'de>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Scalar::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Scalar<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Scalar::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// `{"total": ..., "rows": [...]}`; anything else is a [`ShapeError`] value.
struct EnvelopeVisitor<'k> {
    known: Option<&'k dyn KnownRows>,
    /// Where the body starts, to turn a row's slice into a range.
    base: usize,
}

impl<'de> Visitor<'de> for EnvelopeVisitor<'_> {
    type Value = Result<OrdersPage, ShapeError>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object with `total` and `rows`")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut total = None;
        let mut rows = None;
        while let Some(key) = map.next_key::<Key>()? {
            match &*key.0 {
                "total" => {
                    let v: Scalar = map.next_value()?;
                    total = Some(v.whole().ok_or(v.found()));
                }
                "rows" => {
                    rows = Some(map.next_value_seed(RowsSeed {
                        known: self.known,
                        base: self.base,
                    })?)
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let invalid = |m: String| Ok(Err(ShapeError::Invalid(m)));
        let total = match total {
            None => return invalid("`total` is missing".into()),
            Some(Err(found)) => {
                return invalid(format!(
                    "`total`: expected a number or a string of digits, found {found}"
                ));
            }
            Some(Ok(t)) => t,
        };
        match rows {
            None => invalid("`rows` is missing".into()),
            Some(Err(found)) => invalid(format!("`rows`: expected an array, found {found}")),
            Some(Ok(mut page)) => {
                page.total = total;
                Ok(Ok(page))
            }
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.other("an array"))
    }

    visit_non_objects!();
}

impl EnvelopeVisitor<'_> {
    fn other(self, found: &'static str) -> Result<OrdersPage, ShapeError> {
        Err(ShapeError::Invalid(format!(
            "expected a JSON object with `total` and `rows`, found {found}"
        )))
    }
}

/// The `rows` array: every element is counted, readable ones kept.
struct RowsSeed<'k> {
    known: Option<&'k dyn KnownRows>,
    base: usize,
}

impl<'de> DeserializeSeed<'de> for RowsSeed<'_> {
    type Value = Result<OrdersPage, &'static str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowsSeed<'_> {
    type Value = Result<OrdersPage, &'static str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of rows")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let mut page = OrdersPage::default();
        if let Some(known) = self.known {
            // Each row's exact bytes first (borrowed, nothing copied), then
            // what `known` says of the page's rows, all at once, then a parse
            // of the rows it does not know unchanged.
            let mut raws = Vec::new();
            while let Some(raw) = seq.next_element::<&'de serde_json::value::RawValue>()? {
                let text = raw.get();
                raws.push((text, row_id(text), RowDigest::of(text.as_bytes())));
            }
            page.raw_rows = raws.len();
            let asked: Vec<(u64, RowDigest)> = raws
                .iter()
                .filter_map(|&(_, id, digest)| Some((id?, digest)))
                .collect();
            let mut answers = known.known_many(&asked).into_iter();
            for (index, (text, order_id, digest)) in raws.into_iter().enumerate() {
                let answer = match order_id {
                    Some(_) => answers.next().unwrap_or(Known::Unknown),
                    None => Known::Unknown,
                };
                match (order_id, answer) {
                    (Some(order_id), Known::Unchanged(invoice_ids)) => {
                        let start = (text.as_ptr() as usize).saturating_sub(self.base);
                        page.known.push(KnownRow {
                            order_id,
                            digest,
                            invoice_ids,
                            index,
                            at: start..start + text.len(),
                        });
                        continue;
                    }
                    (Some(order_id), Known::Changed) => page.stale.push(order_id),
                    _ => {}
                }
                let before = page.skipped.len();
                let mut de = serde_json::Deserializer::from_str(text);
                let row = RowSeed {
                    index,
                    skipped: &mut page.skipped,
                }
                .deserialize(&mut de)
                .map_err(de::Error::custom)?;
                if let Some(row) = row {
                    // Only a row read whole, with an id, can be vouched for.
                    let clean = page.skipped.len() == before && order_id.is_some();
                    page.rows.push(row);
                    page.digests.push(clean.then_some(digest));
                }
            }
            return Ok(Ok(page));
        }
        while let Some(row) = seq.next_element_seed(RowSeed {
            index: page.raw_rows,
            skipped: &mut page.skipped,
        })? {
            page.raw_rows += 1;
            if let Some(row) = row {
                page.rows.push(row);
            }
        }
        Ok(Ok(page))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.other("an object"))
    }

    visit_non_objects!();
}

impl RowsSeed<'_> {
    fn other(self, found: &'static str) -> Result<OrdersPage, &'static str> {
        Err(found)
    }
}

/// One element of `rows`.
struct RowSeed<'a> {
    index: usize,
    skipped: &'a mut Vec<Skip>,
}

impl<'de> DeserializeSeed<'de> for RowSeed<'_> {
    type Value = Option<Row>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for RowSeed<'_> {
    type Value = Option<Row>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a row object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Row>, A::Error> {
        let mut row = Row::default();
        let mut invoices = Listing::Absent;
        let mut canceled = Listing::Absent;
        while let Some(key) = map.next_key::<Key>()? {
            let text = |map: &mut A| map.next_value::<Scalar>().map(Scalar::lenient_string);
            match &*key.0 {
                "id" => row.id = map.next_value::<Scalar>()?.whole(),
                "channelName" => row.channel_name = text(&mut map)?,
                "orderCode" => row.order_code = text(&mut map)?,
                "code" => row.code = text(&mut map)?,
                "subsidiaryCode" => row.subsidiary_code = text(&mut map)?,
                "releaseCode" => row.release_code = text(&mut map)?,
                "dealName" => row.deal_name = text(&mut map)?,
                "dealOptionName" => row.deal_option_name = text(&mut map)?,
                "createdAt" => row.created_at = text(&mut map)?,
                "orderAt" => row.order_at = text(&mut map)?,
                "receiverData" => row.receiver_data = map.next_value::<MaybePerson>()?.0,
                "customerData" => row.customer_data = map.next_value::<MaybePerson>()?.0,
                "invoices" => invoices = map.next_value_seed(ListSeed)?,
                "canceledInvoices" => canceled = map.next_value_seed(ListSeed)?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let prefix = format!("rows[{}]", self.index);
        for (name, listing) in [("invoices", &invoices), ("canceledInvoices", &canceled)] {
            if let Listing::Unreadable(found) = listing {
                self.skipped.push(Skip {
                    order_id: row.id,
                    invoice_id: None,
                    path: format!("{prefix}.{name}"),
                    reason: SkipReason::UnreadableRow { found },
                });
                return Ok(Some(row));
            }
        }
        let mut odd_ids = Vec::new();
        let mut take = |name: &str, listing: Listing, out: &mut Vec<Invoice>| {
            let Listing::List(elements) = listing else {
                return;
            };
            for (i, element) in elements.into_iter().enumerate() {
                match element {
                    Ok(inv) => {
                        // One listing per id and list (a repeat says the same again).
                        if !out.iter().any(|o| o.invoice_id == inv.invoice_id) {
                            out.push(inv);
                        }
                    }
                    Err(odd) => {
                        let field = if odd.field.is_empty() {
                            String::new()
                        } else {
                            format!(".{}", odd.field)
                        };
                        odd_ids.extend(odd.invoice_id.clone());
                        self.skipped.push(Skip {
                            order_id: row.id,
                            invoice_id: odd.invoice_id,
                            path: format!("{prefix}.{name}[{i}]{field}"),
                            reason: odd.reason,
                        });
                    }
                }
            }
        };
        take("invoices", invoices, &mut row.invoices);
        take("canceledInvoices", canceled, &mut row.canceled_invoices);
        // An invoice with an odd listing is skipped whole, whatever its other
        // listings say; one listed both ways in a row counts as active.
        row.invoices.retain(|i| !odd_ids.contains(&i.invoice_id.0));
        let active: Vec<InvoiceId> = row.invoices.iter().map(|i| i.invoice_id.clone()).collect();
        row.canceled_invoices
            .retain(|i| !odd_ids.contains(&i.invoice_id.0) && !active.contains(&i.invoice_id));
        Ok(Some(row))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Option<Row>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.other("an array"))
    }

    visit_non_objects!();
}

impl RowSeed<'_> {
    fn other(self, found: &'static str) -> Option<Row> {
        self.skipped.push(Skip {
            order_id: None,
            invoice_id: None,
            path: format!("rows[{}]", self.index),
            reason: SkipReason::UnreadableRow { found },
        });
        None
    }
}

/// `receiverData` / `customerData`: an object of lenient strings, or nothing.
struct MaybePerson(Option<Person>);

impl<'de> Deserialize<'de> for MaybePerson {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = MaybePerson;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a person object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MaybePerson, A::Error> {
                let mut p = Person::default();
                while let Some(key) = map.next_key::<Key>()? {
                    let slot = match &*key.0 {
                        "name" => &mut p.name,
                        "phone" => &mut p.phone,
                        "mobile" => &mut p.mobile,
                        "address" => &mut p.address,
                        "postcode" => &mut p.postcode,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                            continue;
                        }
                    };
                    *slot = map.next_value::<Scalar>()?.lenient_string();
                }
                Ok(MaybePerson(Some(p)))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MaybePerson, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(self.other(""))
            }
            visit_non_objects!();
        }
        impl V {
            fn other(self, _found: &'static str) -> MaybePerson {
                MaybePerson(None)
            }
        }
        d.deserialize_any(V)
    }
}

/// What one of a row's invoice lists held.
enum Listing {
    Absent,
    List(Vec<Result<Invoice, OddInvoice>>),
    Unreadable(&'static str),
}

/// An invoice element left out: which field was odd ("" for the element).
struct OddInvoice {
    invoice_id: Option<String>,
    field: &'static str,
    reason: SkipReason,
}

struct ListSeed;

impl<'de> DeserializeSeed<'de> for ListSeed {
    type Value = Listing;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Listing, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListSeed {
    type Value = Listing;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a list of invoices or null")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Listing, A::Error> {
        let mut out = Vec::new();
        while let Some(element) = seq.next_element::<InvoiceElement>()? {
            out.push(element.0);
        }
        Ok(Listing::List(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Listing, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(self.other("an object"))
    }

    visit_non_objects!();
}

impl ListSeed {
    /// `null` means "none" (documented: `null` until packing assigns one).
    fn other(self, found: &'static str) -> Listing {
        if found == "null" {
            Listing::Absent
        } else {
            Listing::Unreadable(found)
        }
    }
}

/// One element of an invoice list.
struct InvoiceElement(Result<Invoice, OddInvoice>);

impl<'de> Deserialize<'de> for InvoiceElement {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(InvoiceVisitor)
    }
}

struct InvoiceVisitor;

impl<'de> Visitor<'de> for InvoiceVisitor {
    type Value = InvoiceElement;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an invoice object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<InvoiceElement, A::Error> {
        let mut id: Result<String, &'static str> = Err("nothing");
        let mut inv = Invoice::bare("");
        let mut odd: Option<(&'static str, SkipReason)> = None;
        let mut wrong = |field: &'static str, expected: &'static str, found: &'static str| {
            odd.get_or_insert((field, SkipReason::WrongType { expected, found }));
        };
        while let Some(key) = map.next_key::<Key>()? {
            match &*key.0 {
                "invoiceId" => {
                    let v: Scalar = map.next_value()?;
                    id = match &v {
                        Scalar::Str(s) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
                        _ => v.whole().map(|n| n.to_string()).ok_or(v.found()),
                    };
                }
                "invoiceCode" => {
                    let v: Scalar = map.next_value()?;
                    inv.invoice_code = match v {
                        Scalar::Null => Reported::Null,
                        Scalar::Str(s) if s.trim().is_empty() => Reported::Null,
                        Scalar::Str(s) => Reported::Value(s.trim().to_owned()),
                        other => match other.whole() {
                            Some(n) => Reported::Value(n.to_string()),
                            None => {
                                wrong("invoiceCode", "a string", other.found());
                                Reported::Absent
                            }
                        },
                    };
                }
                "isPrinted" | "isClosed" => {
                    let field = if &*key.0 == "isPrinted" {
                        "isPrinted"
                    } else {
                        "isClosed"
                    };
                    let value = match map.next_value::<Scalar>()? {
                        Scalar::Bool(b) => Some(b),
                        Scalar::Null => None,
                        other => {
                            wrong(field, "a boolean", other.found());
                            None
                        }
                    };
                    if field == "isPrinted" {
                        inv.is_printed = value;
                    } else {
                        inv.is_closed = value;
                    }
                }
                "cargoStatusCodeKey" => {
                    inv.cargo_status_code_key = match map.next_value::<Scalar>()? {
                        Scalar::Null => Reported::Null,
                        Scalar::Str(s) if s.trim().is_empty() => Reported::Null,
                        Scalar::Str(s) => Reported::Value(s.trim().to_owned()),
                        other => {
                            wrong("cargoStatusCodeKey", "a string or null", other.found());
                            Reported::Absent
                        }
                    };
                }
                "logisticsPartnerName" => {
                    inv.logistics_partner_name = map.next_value::<Scalar>()?.lenient_string();
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let id = match id {
            Ok(id) => id,
            Err(found) => {
                return Ok(InvoiceElement(Err(OddInvoice {
                    invoice_id: None,
                    field: "invoiceId",
                    reason: SkipReason::NoInvoiceId { found },
                })));
            }
        };
        if let Some((field, reason)) = odd {
            return Ok(InvoiceElement(Err(OddInvoice {
                invoice_id: Some(id),
                field,
                reason,
            })));
        }
        inv.invoice_id = InvoiceId(id);
        Ok(InvoiceElement(Ok(inv)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<InvoiceElement, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(self.other("an array"))
    }

    visit_non_objects!();
}

impl InvoiceVisitor {
    fn other(self, found: &'static str) -> InvoiceElement {
        InvoiceElement(Err(OddInvoice {
            invoice_id: None,
            field: "",
            reason: SkipReason::UnreadableInvoice { found },
        }))
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

    fn one_invoice(invoice: &str) -> OrdersPage {
        page(&format!(
            r#"{{"total":"1","rows":[{{"id":7,"invoices":[{invoice}]}}]}}"#
        ))
    }

    #[test]
    fn vendor_example_parses() {
        let p = parse_page(include_bytes!(
            "../../tests/fixtures/orders-response-example.json"
        ))
        .unwrap();
        assert_eq!((p.total, p.raw_rows, p.rows.len()), (2, 2, 2));
        assert!(p.skipped.is_empty());
        let row = &p.rows[0];
        assert_eq!(row.id, Some(1234567));
        assert_eq!(row.order_code.as_deref(), Some("20201208_000001"));
        assert_eq!(row.channel_name.as_deref(), Some("스마트스토어"));
        assert_eq!(row.created_at.as_deref(), Some("2020-12-07T22:51:19.198Z"));
        assert_eq!(
            row.invoices,
            vec![Invoice {
                invoice_id: InvoiceId("456000".into()),
                invoice_code: Reported::Value("380424004285".into()),
                is_printed: Some(true),
                is_closed: Some(true),
                cargo_status_code_key: Reported::Value(
                    "INVOICE_CARGO_STATUS_DELIVERYCOMPLETED".into()
                ),
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

    /// Knows the (order id, digest) pairs it was given, with made-up invoice ids.
    struct Knows(Vec<(u64, RowDigest)>);

    impl KnownRows for Knows {
        fn known(&self, order_id: u64, digest: &RowDigest) -> Known {
            match self.0.iter().find(|(id, _)| *id == order_id) {
                Some((_, d)) if d == digest => Known::Unchanged(vec!["known".to_owned()]),
                Some(_) => Known::Changed,
                None => Known::Unknown,
            }
        }
    }

    #[test]
    fn known_rows_are_left_unparsed_and_can_still_be_parsed() {
        let rows = [
            r#"{"id":1,"invoices":[{"invoiceId":11,"isPrinted":true}]}"#,
            r#"{"id":2,"invoices":[{"invoiceId":21,"isPrinted":"yes"},{"invoiceId":22}]}"#,
            r#"{"id":3,"invoices":[{"invoiceId":31,"isClosed":false}]}"#,
        ];
        let body = format!(r#"{{"total":"3","rows":[{}]}}"#, rows.join(" , "));
        // Without a filter: one pass, no digests, the same rows.
        let plain = parse_page(body.as_bytes()).unwrap();
        assert!(plain.digests.is_empty() && plain.known.is_empty());

        let none = parse_page_with(body.as_bytes(), Some(&Knows(vec![]))).unwrap();
        assert_eq!(none.rows, plain.rows);
        assert_eq!(none.skipped, plain.skipped);
        let digests: Vec<_> = rows.iter().map(|r| RowDigest::of(r.as_bytes())).collect();
        assert_eq!(
            none.digests,
            vec![Some(digests[0]), None, Some(digests[2])],
            "the digest of each row's exact bytes; none for a row with a skipped invoice"
        );

        let known = Knows(vec![(3, digests[2]), (1, digests[1])]);
        let p = parse_page_with(body.as_bytes(), Some(&known)).unwrap();
        assert_eq!((p.total, p.raw_rows, p.rows.len()), (3, 3, 2));
        assert_eq!(p.stale, vec![1], "row 1 was known with other bytes");
        assert_eq!(p.known.len(), 1);
        let k = &p.known[0];
        assert_eq!(
            (k.order_id, k.index, k.invoice_ids.clone()),
            (3, 2, vec!["known".to_owned()])
        );
        assert_eq!(&body.as_bytes()[k.at.clone()], rows[2].as_bytes());
        let mut skipped = Vec::new();
        let row = parse_known_row(body.as_bytes(), k, &mut skipped).unwrap();
        assert_eq!(row, plain.rows[2]);
        assert!(skipped.is_empty());
        // A digest is of the bytes, not of the meaning.
        assert_ne!(
            RowDigest::of(br#"{"id":3,"invoices":[{"invoiceId":31,"isClosed":true}]}"#),
            digests[2]
        );
        assert_eq!(row_id(r#"{"x":{"id":9},"id":"12"}"#), Some(12));
        assert_eq!(row_id(r#"{"invoices":[]}"#), None);
        assert_eq!(row_id("[1]"), None);
    }

    #[test]
    fn total_as_string_or_number() {
        assert_eq!(page(r#"{"total":"1234","rows":[]}"#).total, 1234);
        assert_eq!(page(r#"{"total":1234,"rows":[]}"#).total, 1234);
        assert_eq!(page(r#"{"total":" 7 ","rows":[]}"#).total, 7);
        assert_eq!(
            err(r#"{"total":"many","rows":[]}"#),
            "`total`: expected a number or a string of digits, found a string"
        );
        assert_eq!(err(r#"{"rows":[]}"#), "`total` is missing");
    }

    #[test]
    fn only_the_envelope_fails_a_page() {
        assert_eq!(err(r#"{"total":"0"}"#), "`rows` is missing");
        assert_eq!(
            err(r#"{"total":"0","rows":null}"#),
            "`rows`: expected an array, found null"
        );
        assert!(err("<html>502</html>").starts_with("the body is not JSON"));
        assert!(err(r#"{"total":"1","rows":[{"id":1"#).starts_with("the body is not JSON"));
        assert!(
            err(r#"[1,2]"#).contains("found an array"),
            "{}",
            err("[1,2]")
        );
        assert!(err(r#""hello""#).contains("found a string"));
    }

    #[test]
    fn untracked_fields_of_any_type_never_fail_a_row() {
        let p = page(
            r#"{"total":"1","extra":{"x":1},"rows":[{"id":"42","brandNew":[1,2],"channelName":null,
            "orderCode": 20261201000123, "dealName": {"ko":"키보드"}, "items": "not a list",
            "originalData": [1, {"a": null}], "price": 1500,
            "receiverData": {"name": "홍길동", "mobile": 1012345678, "address": ["x"]},
            "customerData": "redacted",
            "invoices":[{"invoiceId":1,"cargoStatusCodeKey":null,"someday":"x","logisticsPartnerName":7}]}]}"#,
        );
        assert!(p.skipped.is_empty(), "{:?}", p.skipped);
        let row = &p.rows[0];
        assert_eq!(row.id, Some(42));
        assert_eq!(row.channel_name, None);
        assert_eq!(row.order_code.as_deref(), Some("20261201000123"));
        assert_eq!(row.deal_name, None);
        let receiver = row.receiver_data.as_ref().unwrap();
        assert_eq!(receiver.mobile.as_deref(), Some("1012345678"));
        assert_eq!(receiver.address, None);
        assert_eq!(row.customer_data, None);
        let inv = &row.invoices[0];
        assert_eq!(inv.cargo_status_code_key, Reported::Null);
        assert_eq!(inv.logistics_partner_name.as_deref(), Some("7"));
        assert_eq!(
            (inv.is_printed, inv.is_closed, &inv.invoice_code),
            (None, None, &Reported::Absent)
        );
    }

    #[test]
    fn a_tracked_field_of_the_wrong_type_skips_that_invoice_only() {
        let p = page(
            r#"{"total":"2","rows":[
              {"id":1,"invoices":[{"invoiceId":10,"isPrinted":"yes"},{"invoiceId":11,"isPrinted":true}],
               "canceledInvoices":[{"invoiceId":10}]},
              {"id":2,"invoices":[{"invoiceId":12,"cargoStatusCodeKey":5}]}]}"#,
        );
        assert_eq!(p.rows.len(), 2);
        let ids: Vec<_> = p.rows[0]
            .invoices
            .iter()
            .map(|i| i.invoice_id.as_str())
            .collect();
        assert_eq!(ids, ["11"]);
        assert!(
            p.rows[0].canceled_invoices.is_empty(),
            "an odd invoice is skipped in every listing"
        );
        assert!(p.rows[1].invoices.is_empty());
        assert_eq!(
            p.skipped,
            vec![
                Skip {
                    order_id: Some(1),
                    invoice_id: Some("10".into()),
                    path: "rows[0].invoices[0].isPrinted".into(),
                    reason: SkipReason::WrongType {
                        expected: "a boolean",
                        found: "a string"
                    },
                },
                Skip {
                    order_id: Some(2),
                    invoice_id: Some("12".into()),
                    path: "rows[1].invoices[0].cargoStatusCodeKey".into(),
                    reason: SkipReason::WrongType {
                        expected: "a string or null",
                        found: "a number"
                    },
                },
            ]
        );
        assert_eq!(
            p.skipped[0].to_string(),
            "`rows[0].invoices[0].isPrinted`: expected a boolean, found a string"
        );
    }

    #[test]
    fn invoice_ids_as_string_or_number_and_unusable_ones_skipped() {
        let p = page(
            r#"{"total":"1","rows":[{"id":1,"invoices":[{"invoiceId":456000},{"invoiceId":"456001"},
            {"invoiceId":""},{"invoiceId":-3},{"invoiceCode":"1"},{"invoiceId":7.0},{"invoiceId":true},"x"],
            "canceledInvoices":[{"invoiceId":" 9 "}]}]}"#,
        );
        let ids: Vec<_> = p.rows[0]
            .invoices
            .iter()
            .map(|i| i.invoice_id.as_str())
            .collect();
        assert_eq!(ids, ["456000", "456001", "7"]);
        assert_eq!(p.rows[0].canceled_invoices[0].invoice_id.as_str(), "9");
        let reasons: Vec<String> = p.skipped.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            reasons,
            [
                "`rows[0].invoices[2].invoiceId`: no usable invoiceId (found an empty string)",
                "`rows[0].invoices[3].invoiceId`: no usable invoiceId (found a number)",
                "`rows[0].invoices[4].invoiceId`: no usable invoiceId (found nothing)",
                "`rows[0].invoices[6].invoiceId`: no usable invoiceId (found a boolean)",
                "`rows[0].invoices[7]`: expected an invoice object, found a string",
            ]
        );
    }

    #[test]
    fn unreadable_rows_and_lists_cost_that_row() {
        let p = page(
            r#"{"total":"4","rows":[1, null, {"id":3,"invoices":"soon","canceledInvoices":[{"invoiceId":5}]},
            {"id":4,"invoices":[{"invoiceId":6}]}]}"#,
        );
        assert_eq!((p.raw_rows, p.rows.len()), (4, 2));
        assert!(p.rows[0].invoices.is_empty() && p.rows[0].canceled_invoices.is_empty());
        assert_eq!(p.rows[1].invoices[0].invoice_id.as_str(), "6");
        let paths: Vec<_> = p.skipped.iter().map(|s| s.path.as_str()).collect();
        assert_eq!(paths, ["rows[0]", "rows[1]", "rows[2].invoices"]);
        assert_eq!(p.skipped[2].order_id, Some(3));
    }

    #[test]
    fn absent_is_not_null() {
        let p = one_invoice(
            r#"{"invoiceId":1,"invoiceCode":null,"cargoStatusCodeKey":"","isPrinted":null}"#,
        );
        let inv = &p.rows[0].invoices[0];
        assert_eq!(inv.invoice_code, Reported::Null);
        assert_eq!(inv.cargo_status_code_key, Reported::Null);
        assert_eq!(inv.is_printed, None);
        let p = one_invoice(r#"{"invoiceId":1}"#);
        let inv = &p.rows[0].invoices[0];
        assert_eq!(inv, &Invoice::bare("1"));
        let p = one_invoice(r#"{"invoiceId":1,"invoiceCode":380424004285}"#);
        assert_eq!(
            p.rows[0].invoices[0].invoice_code,
            Reported::Value("380424004285".into())
        );
    }

    #[test]
    fn null_or_absent_invoice_lists_are_empty_and_both_ways_counts_as_active() {
        let p = page(
            r#"{"total":"4","rows":[{"id":1,"invoices":null,"canceledInvoices":null},{"id":2},{"id":3,"invoices":[]},
            {"id":4,"invoices":[{"invoiceId":8},{"invoiceId":8}],"canceledInvoices":[{"invoiceId":8},{"invoiceId":9}]}]}"#,
        );
        assert!(
            p.rows[..3]
                .iter()
                .all(|r| r.invoices.is_empty() && r.canceled_invoices.is_empty())
        );
        assert_eq!(p.rows[3].invoices.len(), 1);
        let canceled: Vec<_> = p.rows[3]
            .canceled_invoices
            .iter()
            .map(|i| i.invoice_id.as_str())
            .collect();
        assert_eq!(canceled, ["9"]);
        assert!(p.skipped.is_empty());
    }

    #[test]
    fn duplicate_keys_take_the_last_value() {
        let p = one_invoice(r#"{"invoiceId":1,"isPrinted":false,"isPrinted":true}"#);
        assert_eq!(p.rows[0].invoices[0].is_printed, Some(true));
    }

    #[test]
    fn personal_data_is_redacted_in_debug_and_skips_never_carry_values() {
        let p = parse_page(include_bytes!(
            "../../tests/fixtures/orders-response-example.json"
        ))
        .unwrap();
        let debug = format!("{:?}", p);
        for secret in ["홍길동", "010-1234-5678", "테헤란로", "06236"] {
            assert!(!debug.contains(secret), "{secret} leaked into Debug");
        }
        assert!(debug.contains("456000"));
        let p = one_invoice(r#"{"invoiceId":1,"isClosed":"010-9876-5432"}"#);
        let shown = format!("{:?} {}", p.skipped, p.skipped[0]);
        assert!(!shown.contains("9876"), "{shown}");
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
