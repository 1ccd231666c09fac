//! The event model: what a target is told about one invoice's change set.
//!
//! The JSON shape is the public webhook contract (see `shared/DESIGN.md`):
//! `id`, `type`, `detectedAt`, `order`, `invoice`, `changes`, and — only for
//! targets that opt in — `receiver` and `customer`.
//!
//! `type` is the most significant change in the set; the variants of
//! [`EventType`] are declared from least to most significant so that `Ord`
//! is that ranking and `type` is simply the maximum.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::poomgo::Person;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "invoice.assigned")]
    Assigned,
    #[serde(rename = "invoice.printed")]
    Printed,
    #[serde(rename = "invoice.closed")]
    Closed,
    #[serde(rename = "invoice.code_changed")]
    CodeChanged,
    #[serde(rename = "invoice.status_changed")]
    StatusChanged,
    #[serde(rename = "invoice.canceled")]
    Canceled,
}

impl EventType {
    pub const ALL: [EventType; 6] = [
        EventType::Assigned,
        EventType::Printed,
        EventType::Closed,
        EventType::CodeChanged,
        EventType::StatusChanged,
        EventType::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Assigned => "invoice.assigned",
            EventType::Printed => "invoice.printed",
            EventType::Closed => "invoice.closed",
            EventType::CodeChanged => "invoice.code_changed",
            EventType::StatusChanged => "invoice.status_changed",
            EventType::Canceled => "invoice.canceled",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for EventType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        EventType::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = EventType::ALL.iter().map(|k| k.as_str()).collect();
                format!(
                    "`{s}` is not an event type: expected one of {}",
                    all.join(", ")
                )
            })
    }
}

/// A tracked field of an invoice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Field {
    /// The invoice appeared (`from` is null).
    InvoiceId,
    CargoStatusCodeKey,
    IsPrinted,
    IsClosed,
    InvoiceCode,
    Canceled,
}

impl Field {
    /// The change kind a change of this field is (and routes as).
    pub fn kind(self) -> EventType {
        match self {
            Field::InvoiceId => EventType::Assigned,
            Field::CargoStatusCodeKey => EventType::StatusChanged,
            Field::IsPrinted => EventType::Printed,
            Field::IsClosed => EventType::Closed,
            Field::InvoiceCode => EventType::CodeChanged,
            Field::Canceled => EventType::Canceled,
        }
    }
}

/// One field's change, as JSON values (`null`, a bool or a string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub field: Field,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

/// What `status` says about a cargo status code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusInfo {
    pub label: String,
    pub category: String,
    #[serde(rename = "final")]
    pub is_final: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderInfo {
    pub id: u64,
    pub order_code: Option<String>,
    pub code: Option<String>,
    pub channel_name: Option<String>,
    pub release_code: Option<String>,
    pub deal_name: Option<String>,
    pub deal_option_name: Option<String>,
    pub order_at: Option<String>,
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceInfo {
    pub invoice_id: String,
    pub invoice_code: Option<String>,
    pub logistics_partner_name: Option<String>,
    pub cargo_status_code_key: Option<String>,
    pub status: StatusInfo,
    pub is_printed: bool,
    pub is_closed: bool,
    pub canceled: bool,
}

/// One event: one invoice's change set, detected at one poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// `<invoiceId>-<revision>`: the same on every retry; receivers de-duplicate on it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    #[serde(with = "rfc3339_seconds")]
    pub detected_at: DateTime<Utc>,
    pub order: OrderInfo,
    pub invoice: InvoiceInfo,
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<Person>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Person>,
}

impl Event {
    /// Every change kind in the set (routing matches on any of them).
    pub fn kinds(&self) -> impl Iterator<Item = EventType> + '_ {
        self.changes.iter().map(|c| c.field.kind())
    }

    /// The same event without personal data, for targets that did not opt in.
    pub fn without_personal_data(mut self) -> Event {
        self.receiver = None;
        self.customer = None;
        self
    }
}

mod rfc3339_seconds {
    use super::*;
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&at.to_rfc3339_opts(SecondsFormat::Secs, true))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
        let s = String::deserialize(d)?;
        DateTime::parse_from_rfc3339(&s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(serde::de::Error::custom)
    }
}
