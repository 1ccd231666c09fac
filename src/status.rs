//! The cargo status table: what a `cargoStatusCodeKey` means to a person.
//!
//! The upstream confirms one code (`INVOICE_CARGO_STATUS_DELIVERYCOMPLETED`);
//! the rest follow the `INVOICE_CARGO_STATUS_<NAME>` pattern and are
//! assumptions, so codes are opaque strings and their labels, category and
//! finality are data: the defaults below, extended or overridden by
//! `[[statuses]]` in the config. An unknown code is shown raw with category
//! `unknown` and logged once per process, never a crash.
//!
//! This is the one place that maps a code to a label.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use serde::Deserialize;

use crate::event::StatusInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Pending,
    InTransit,
    OutForDelivery,
    Delivered,
    Exception,
    Returned,
    Unknown,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pending => "pending",
            Category::InTransit => "in_transit",
            Category::OutForDelivery => "out_for_delivery",
            Category::Delivered => "delivered",
            Category::Exception => "exception",
            Category::Returned => "returned",
            Category::Unknown => "unknown",
        }
    }
}

/// One row of the table, as written in `[[statuses]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusEntry {
    pub code: String,
    /// The Korean label shown to the CS team, e.g. "배송완료".
    pub label: String,
    #[serde(default)]
    pub label_en: Option<String>,
    pub category: Category,
    /// A final status ends the invoice's life (its snapshot may be pruned).
    #[serde(default, rename = "final")]
    pub is_final: bool,
}

/// Shipped defaults. Codes other than DELIVERYCOMPLETED are assumed.
const DEFAULTS: &[(&str, &str, &str, Category, bool)] = &[
    (
        "INVOICE_CARGO_STATUS_READY",
        "배송준비중",
        "Preparing",
        Category::Pending,
        false,
    ),
    (
        "INVOICE_CARGO_STATUS_PICKEDUP",
        "집화완료",
        "Picked up",
        Category::InTransit,
        false,
    ),
    (
        "INVOICE_CARGO_STATUS_INTRANSIT",
        "배송중",
        "In transit",
        Category::InTransit,
        false,
    ),
    (
        "INVOICE_CARGO_STATUS_ARRIVED",
        "지점 도착",
        "At local branch",
        Category::InTransit,
        false,
    ),
    (
        "INVOICE_CARGO_STATUS_OUTFORDELIVERY",
        "배송출발",
        "Out for delivery",
        Category::OutForDelivery,
        false,
    ),
    (
        "INVOICE_CARGO_STATUS_DELIVERYCOMPLETED",
        "배송완료",
        "Delivered",
        Category::Delivered,
        true,
    ),
    (
        "INVOICE_CARGO_STATUS_ATTEMPTFAIL",
        "배달 실패",
        "Delivery attempt failed",
        Category::Exception,
        false,
    ),
    (
        "INVOICE_CARGO_STATUS_EXCEPTION",
        "배송 이상",
        "Exception",
        Category::Exception,
        false,
    ),
    (
        "INVOICE_CARGO_STATUS_RETURNED",
        "반송",
        "Returned to sender",
        Category::Returned,
        true,
    ),
];

/// The label shown while the courier has not reported anything yet.
pub const NO_STATUS_LABEL: &str = "배송 상태 없음";

#[derive(Debug)]
pub struct StatusTable {
    entries: HashMap<String, StatusEntry>,
    warned: Mutex<HashSet<String>>,
}

impl Default for StatusTable {
    fn default() -> Self {
        StatusTable::new(&[])
    }
}

impl StatusTable {
    /// The defaults, then `overrides` on top (same code replaces, new code adds).
    pub fn new(overrides: &[StatusEntry]) -> StatusTable {
        let mut entries: HashMap<String, StatusEntry> = DEFAULTS
            .iter()
            .map(|&(code, label, en, category, is_final)| {
                let entry = StatusEntry {
                    code: code.into(),
                    label: label.into(),
                    label_en: Some(en.into()),
                    category,
                    is_final,
                };
                (code.to_owned(), entry)
            })
            .collect();
        for e in overrides {
            entries.insert(e.code.clone(), e.clone());
        }
        StatusTable {
            entries,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// What `code` means; `None` is "no status from the courier yet".
    pub fn lookup(&self, code: Option<&str>) -> StatusInfo {
        let Some(code) = code else {
            return StatusInfo {
                label: NO_STATUS_LABEL.into(),
                category: Category::Pending.as_str().into(),
                is_final: false,
            };
        };
        match self.entries.get(code) {
            Some(e) => StatusInfo {
                label: e.label.clone(),
                category: e.category.as_str().into(),
                is_final: e.is_final,
            },
            None => {
                if self
                    .warned
                    .lock()
                    .map(|mut w| w.insert(code.to_owned()))
                    .unwrap_or(false)
                {
                    tracing::warn!(
                        code,
                        "unknown cargo status code: shown as is; add it to [[statuses]] in the config to label it"
                    );
                }
                StatusInfo {
                    label: code.to_owned(),
                    category: Category::Unknown.as_str().into(),
                    is_final: false,
                }
            }
        }
    }

    pub fn is_final(&self, code: Option<&str>) -> bool {
        code.and_then(|c| self.entries.get(c))
            .is_some_and(|e| e.is_final)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_overrides_and_unknown_codes() {
        let t = StatusTable::new(&[StatusEntry {
            code: "INVOICE_CARGO_STATUS_LOST".into(),
            label: "분실".into(),
            label_en: None,
            category: Category::Exception,
            is_final: true,
        }]);
        let delivered = t.lookup(Some("INVOICE_CARGO_STATUS_DELIVERYCOMPLETED"));
        assert_eq!(
            (
                delivered.label.as_str(),
                delivered.category.as_str(),
                delivered.is_final
            ),
            ("배송완료", "delivered", true)
        );
        assert!(t.is_final(Some("INVOICE_CARGO_STATUS_LOST")));
        let unknown = t.lookup(Some("INVOICE_CARGO_STATUS_MARS"));
        assert_eq!(
            (unknown.label.as_str(), unknown.category.as_str()),
            ("INVOICE_CARGO_STATUS_MARS", "unknown")
        );
        assert_eq!(t.lookup(None).label, NO_STATUS_LABEL);
        assert!(!t.is_final(None));
    }
}
