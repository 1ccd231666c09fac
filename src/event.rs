//! The event model: what a target is told about one invoice's change set.
//!
//! The JSON shape is the public webhook contract (see `shared/DESIGN.md`):
//! `id`, `type`, `merchant`, `detectedAt`, `order`, `orders`, `invoice`, `changes`, and —
//! only for targets that opt in — `receiver` and `customer`.
//!
//! `type` is the most significant change in the set; the variants of
//! [`EventType`] are declared from least to most significant so that `Ord`
//! is that ranking and `type` is simply the maximum. A reversal (un-print,
//! un-close, un-cancel) has a type of its own, so `type` never claims the
//! opposite of what happened.
//!
//! **The id** is opaque to receivers: `<generation>-<invoiceId>-<revision>`,
//! where the generation is random and renewed whenever a process opens the
//! store, so neither a wiped store nor one restored from a backup can reuse
//! an id. It is fixed when the event is committed and the same on every
//! retry; receivers de-duplicate on it (it is the `webhook-id`).

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
    /// The label went back to unprinted (a reprint is pending).
    #[serde(rename = "invoice.unprinted")]
    Unprinted,
    #[serde(rename = "invoice.closed")]
    Closed,
    /// A closed invoice was reopened.
    #[serde(rename = "invoice.unclosed")]
    Unclosed,
    #[serde(rename = "invoice.code_changed")]
    CodeChanged,
    #[serde(rename = "invoice.status_changed")]
    StatusChanged,
    /// A cancellation was withdrawn: the shipment is live again.
    #[serde(rename = "invoice.uncanceled")]
    Uncanceled,
    #[serde(rename = "invoice.canceled")]
    Canceled,
}

impl EventType {
    pub const ALL: [EventType; 9] = [
        EventType::Assigned,
        EventType::Printed,
        EventType::Unprinted,
        EventType::Closed,
        EventType::Unclosed,
        EventType::CodeChanged,
        EventType::StatusChanged,
        EventType::Uncanceled,
        EventType::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Assigned => "invoice.assigned",
            EventType::Printed => "invoice.printed",
            EventType::Unprinted => "invoice.unprinted",
            EventType::Closed => "invoice.closed",
            EventType::Unclosed => "invoice.unclosed",
            EventType::CodeChanged => "invoice.code_changed",
            EventType::StatusChanged => "invoice.status_changed",
            EventType::Uncanceled => "invoice.uncanceled",
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

/// One field's change, as JSON values (`null`, a bool or a string).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    pub field: Field,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

impl Change {
    /// The change kind this change is (and routes as). A flag that went
    /// back to false is its reversal.
    pub fn kind(&self) -> EventType {
        let set = self.to == serde_json::Value::Bool(true);
        match self.field {
            Field::InvoiceId => EventType::Assigned,
            Field::CargoStatusCodeKey => EventType::StatusChanged,
            Field::IsPrinted if set => EventType::Printed,
            Field::IsPrinted => EventType::Unprinted,
            Field::IsClosed if set => EventType::Closed,
            Field::IsClosed => EventType::Unclosed,
            Field::InvoiceCode => EventType::CodeChanged,
            Field::Canceled if set => EventType::Canceled,
            Field::Canceled => EventType::Uncanceled,
        }
    }
}

/// What `status` says about a cargo status code (see [`crate::status`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusInfo {
    /// Korean, as a CS team reads it.
    pub label: String,
    #[serde(default)]
    pub label_en: String,
    pub category: String,
    #[serde(rename = "final")]
    pub is_final: bool,
    #[serde(default)]
    pub emoji: String,
}

/// One order the invoice belongs to. Only `id` and `orderCode` are known
/// for an order of a combined shipment that was not on the page at hand.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderInfo {
    /// The ledger id; null only when the upstream row had none readable.
    pub id: Option<u64>,
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
    /// The courier's tracking page, when the courier is known.
    #[serde(default)]
    pub tracking_url: Option<String>,
    pub cargo_status_code_key: Option<String>,
    pub status: StatusInfo,
    /// Null only while the upstream has never reported it.
    pub is_printed: Option<bool>,
    pub is_closed: Option<bool>,
    pub canceled: bool,
}

/// One event: one invoice's change set, detected at one poll.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Opaque and unique for the life of the deployment; the same on every
    /// retry. Receivers de-duplicate on it.
    pub id: String,
    #[serde(rename = "type")]
    pub kind: EventType,
    /// The merchant's name (`default` for a config with no
    /// `[[merchants]]`, and for entries queued before there were merchants).
    #[serde(default = "default_merchant")]
    pub merchant: String,
    #[serde(with = "rfc3339_seconds")]
    pub detected_at: DateTime<Utc>,
    /// The first order that lists the invoice.
    pub order: OrderInfo,
    /// Every order the invoice belongs to (more than one for a combined
    /// shipment, 합배송), `order` first.
    #[serde(default)]
    pub orders: Vec<OrderInfo>,
    pub invoice: InvoiceInfo,
    pub changes: Vec<Change>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub receiver: Option<Person>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub customer: Option<Person>,
}

fn default_merchant() -> String {
    crate::merchant::DEFAULT.to_owned()
}

impl Event {
    /// Every change kind in the set (routing matches on any of them).
    pub fn kinds(&self) -> impl Iterator<Item = EventType> + '_ {
        self.changes.iter().map(Change::kind)
    }

    /// The same event without personal data, for targets that did not opt in.
    pub fn without_personal_data(mut self) -> Event {
        self.receiver = None;
        self.customer = None;
        self
    }

    /// The same event with names, phones and addresses masked (chat targets).
    pub fn with_personal_data_masked(mut self) -> Event {
        for person in [&mut self.receiver, &mut self.customer]
            .into_iter()
            .flatten()
        {
            person.name = person.name.as_deref().map(crate::mask::name);
            person.phone = person.phone.as_deref().map(crate::mask::phone);
            person.mobile = person.mobile.as_deref().map(crate::mask::phone);
            person.address = person.address.as_deref().map(crate::mask::address);
            person.postcode = None;
        }
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
