//! What a `cargoStatusCodeKey` and a `logisticsPartnerName` mean to a person:
//! the status table and the courier table.
//!
//! Poomgo confirms one status code (`INVOICE_CARGO_STATUS_DELIVERYCOMPLETED`);
//! the rest follow its pattern and are assumptions, so codes are opaque
//! strings and their labels, category, finality and emoji are data: the
//! defaults in `config.default.toml` (compiled in), extended or overridden by
//! `[[statuses]]` in the config. An unknown code is shown raw with a neutral
//! category and logged once per code, never a crash. `null` is not an
//! absence: right after closing it means the courier has not reported yet
//! ("택배사 연동 대기", the vendor says the status lags the close).
//!
//! Couriers are matched on their name with spaces and case ignored, and by
//! aliases, so `CJ대한통운`, `CJ 대한통운` and `대한통운` are one courier.
//!
//! This is the one place that maps a code to a label and a courier to a link.

use std::{
    collections::{HashMap, HashSet},
    sync::Mutex,
};

use serde::Deserialize;

use crate::event::StatusInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    Pending,
    PickedUp,
    InTransit,
    OutForDelivery,
    Delivered,
    FailedAttempt,
    Exception,
    Returned,
    Canceled,
    /// A code the table does not know (accepted in `[[statuses]]` for
    /// configs written before the categories were refined).
    Unknown,
}

impl Category {
    pub const ALL: [Category; 10] = [
        Category::Pending,
        Category::PickedUp,
        Category::InTransit,
        Category::OutForDelivery,
        Category::Delivered,
        Category::FailedAttempt,
        Category::Exception,
        Category::Returned,
        Category::Canceled,
        Category::Unknown,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Category::Pending => "pending",
            Category::PickedUp => "picked_up",
            Category::InTransit => "in_transit",
            Category::OutForDelivery => "out_for_delivery",
            Category::Delivered => "delivered",
            Category::FailedAttempt => "failed_attempt",
            Category::Exception => "exception",
            Category::Returned => "returned",
            Category::Canceled => "canceled",
            Category::Unknown => "unknown",
        }
    }

    /// A hex color for chat attachments (JANDI's `connectColor`).
    pub fn color(self) -> &'static str {
        match self {
            Category::Delivered => "#2EB67D",
            Category::OutForDelivery | Category::InTransit | Category::PickedUp => "#1D9BD1",
            Category::FailedAttempt | Category::Returned => "#ECB22E",
            Category::Exception => "#E01E5A",
            Category::Pending | Category::Canceled | Category::Unknown => "#8D8D8D",
        }
    }
}

impl std::str::FromStr for Category {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Category::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| {
                let all: Vec<_> = Category::ALL.iter().map(|c| c.as_str()).collect();
                format!(
                    "`{s}` is not a category: expected one of {}",
                    all.join(", ")
                )
            })
    }
}

/// One row of the status table, as written in `[[statuses]]`.
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
    #[serde(default)]
    pub emoji: Option<String>,
    /// Not confirmed by Poomgo: follows the pattern of the confirmed code.
    #[serde(default)]
    pub assumed: bool,
}

/// One courier, as written in `[[couriers]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CourierEntry {
    pub name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    /// The tracking page, with `{invoiceCode}` where the number goes.
    pub tracking_url: String,
}

/// The tables compiled in (`config.default.toml`).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    statuses: Vec<StatusEntry>,
    couriers: Vec<CourierEntry>,
}

fn defaults() -> Defaults {
    toml::from_str(include_str!("../config.default.toml"))
        .expect("config.default.toml is valid (a unit test parses it)")
}

/// Shown for `null` after the invoice was closed: the courier lags.
pub const AWAITING_COURIER: (&str, &str) = ("택배사 연동 대기", "Waiting for the courier");
/// Shown for `null` before closing: nothing is expected from the courier yet.
pub const BEFORE_DISPATCH: (&str, &str) = ("출고 전", "Not dispatched yet");

#[derive(Debug)]
pub struct StatusTable {
    entries: HashMap<String, StatusEntry>,
    /// Normalized name or alias → index into `couriers`.
    courier_names: HashMap<String, usize>,
    couriers: Vec<CourierEntry>,
    warned: Mutex<HashSet<String>>,
}

impl Default for StatusTable {
    fn default() -> Self {
        StatusTable::new(&[], &[])
    }
}

/// Spaces and case ignored.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_lowercase)
        .collect()
}

impl StatusTable {
    /// The defaults, then the config's entries on top (same code or courier
    /// name replaces, new ones add).
    pub fn new(statuses: &[StatusEntry], couriers: &[CourierEntry]) -> StatusTable {
        let d = defaults();
        let mut entries: HashMap<String, StatusEntry> = HashMap::new();
        for e in d.statuses.into_iter().chain(statuses.iter().cloned()) {
            entries.insert(e.code.clone(), e);
        }
        let mut list: Vec<CourierEntry> = Vec::new();
        for c in d.couriers.into_iter().chain(couriers.iter().cloned()) {
            match list
                .iter_mut()
                .find(|l| normalize(&l.name) == normalize(&c.name))
            {
                Some(existing) => *existing = c,
                None => list.push(c),
            }
        }
        let mut courier_names = HashMap::new();
        for (i, c) in list.iter().enumerate() {
            courier_names.insert(normalize(&c.name), i);
            for a in &c.aliases {
                courier_names.insert(normalize(a), i);
            }
        }
        StatusTable {
            entries,
            courier_names,
            couriers: list,
            warned: Mutex::new(HashSet::new()),
        }
    }

    /// What `code` means; `None` is "no status from the courier yet", worded
    /// by whether the invoice is closed.
    pub fn lookup(&self, code: Option<&str>, closed: bool) -> StatusInfo {
        let Some(code) = code else {
            let (ko, en) = if closed {
                AWAITING_COURIER
            } else {
                BEFORE_DISPATCH
            };
            return StatusInfo {
                label: ko.into(),
                label_en: en.into(),
                category: Category::Pending.as_str().into(),
                is_final: false,
                emoji: if closed { "⏳" } else { "📦" }.into(),
            };
        };
        match self.entries.get(code) {
            Some(e) => StatusInfo {
                label: e.label.clone(),
                label_en: e.label_en.clone().unwrap_or_else(|| e.label.clone()),
                category: e.category.as_str().into(),
                is_final: e.is_final,
                emoji: e.emoji.clone().unwrap_or_else(|| "📦".into()),
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
                    label_en: code.to_owned(),
                    category: Category::Unknown.as_str().into(),
                    is_final: false,
                    emoji: "❔".into(),
                }
            }
        }
    }

    pub fn is_final(&self, code: Option<&str>) -> bool {
        code.and_then(|c| self.entries.get(c))
            .is_some_and(|e| e.is_final)
    }

    /// The courier's tracking page for `invoice_code`, when the courier is known.
    pub fn tracking_url(
        &self,
        courier: Option<&str>,
        invoice_code: Option<&str>,
    ) -> Option<String> {
        let entry = &self.couriers[*self.courier_names.get(&normalize(courier?))?];
        let code = invoice_code?.trim();
        if code.is_empty() {
            return None;
        }
        let encoded: String = code
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b == b'-' {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        Some(entry.tracking_url.replace("{invoiceCode}", &encoded))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_defaults_parse_and_only_delivered_is_confirmed() {
        let d = defaults();
        let confirmed: Vec<_> = d.statuses.iter().filter(|s| !s.assumed).collect();
        assert_eq!(confirmed.len(), 1);
        assert_eq!(confirmed[0].code, "INVOICE_CARGO_STATUS_DELIVERYCOMPLETED");
        assert!(
            d.statuses
                .iter()
                .all(|s| s.emoji.is_some() && s.label_en.is_some())
        );
        assert_eq!(d.couriers.len(), 5);
        assert!(
            d.couriers
                .iter()
                .all(|c| c.tracking_url.contains("{invoiceCode}")
                    && c.tracking_url.starts_with("https://"))
        );
    }

    #[test]
    fn defaults_overrides_unknown_codes_and_null() {
        let t = StatusTable::new(
            &[StatusEntry {
                code: "INVOICE_CARGO_STATUS_LOST".into(),
                label: "분실".into(),
                label_en: None,
                category: Category::Exception,
                is_final: true,
                emoji: None,
                assumed: false,
            }],
            &[],
        );
        let delivered = t.lookup(Some("INVOICE_CARGO_STATUS_DELIVERYCOMPLETED"), true);
        assert_eq!(
            (
                delivered.label.as_str(),
                delivered.label_en.as_str(),
                delivered.category.as_str(),
                delivered.is_final,
                delivered.emoji.as_str()
            ),
            ("배송완료", "Delivered", "delivered", true, "✅")
        );
        assert!(t.is_final(Some("INVOICE_CARGO_STATUS_LOST")));
        let unknown = t.lookup(Some("INVOICE_CARGO_STATUS_MARS"), true);
        assert_eq!(
            (unknown.label.as_str(), unknown.category.as_str()),
            ("INVOICE_CARGO_STATUS_MARS", "unknown")
        );
        assert_eq!(t.lookup(None, true).label, "택배사 연동 대기");
        assert_eq!(t.lookup(None, false).label, "출고 전");
        assert!(!t.is_final(None));
    }

    #[test]
    fn couriers_match_by_name_spacing_and_alias() {
        let t = StatusTable::default();
        let cj = "https://trace.cjlogistics.com/next/tracking.html?wblNo=380424004285";
        for name in ["CJ대한통운", "CJ 대한통운", "대한통운", "cj대한통운"] {
            assert_eq!(
                t.tracking_url(Some(name), Some("380424004285")).as_deref(),
                Some(cj),
                "{name}"
            );
        }
        let lotte = t.tracking_url(Some("롯데글로벌로지스"), Some("1")).unwrap();
        assert!(lotte.starts_with("https://www.lotteglogis.com/"));
        assert_eq!(t.tracking_url(Some("경동택배"), Some("1")), None);
        assert_eq!(t.tracking_url(Some("CJ대한통운"), None), None);
        assert!(
            t.tracking_url(Some("로젠"), Some("12 34&x"))
                .unwrap()
                .ends_with("/12%2034%26x"),
            "the number is encoded"
        );
        let own = StatusTable::new(
            &[],
            &[CourierEntry {
                name: "경동택배".into(),
                aliases: vec![],
                tracking_url: "https://example.test/t?n={invoiceCode}".into(),
            }],
        );
        assert_eq!(
            own.tracking_url(Some("경동 택배"), Some("9")).as_deref(),
            Some("https://example.test/t?n=9")
        );
    }
}
