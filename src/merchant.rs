//! Merchants: the Poomgo accounts one process serves.
//!
//! A config with no `[[merchants]]` (the shape every installation had before
//! there could be several) is one merchant called [`DEFAULT`], on the store's
//! original keyspace, so it keeps its snapshots, its outbox and its event ids
//! with no re-baseline. With `[[merchants]]`, each entry has a `name`, its own
//! `[merchants.poomgo]` (the keys of `[poomgo]`), an optional
//! `[merchants.plan]` (the keys of `[plan]`; the top-level `[plan]` when
//! absent) and its own `[[merchants.targets]]`; a top-level `[[targets]]`
//! entry is shared by every merchant, or by those it lists in `merchants`.
//! A merchant named `default` is the original keyspace too, so moving a
//! config under `[[merchants]]` changes nothing.
//!
//! [`crate::config::Config::merchants`] turns the file into one [`Config`]
//! per merchant, in which `poomgo`, `plan` and `targets` are that merchant's:
//! everything downstream (the poll, the plan, the delivery workers) runs per
//! merchant from its own config and never looks at another's.
//!
//! [`Config`]: crate::config::Config

use serde::Deserialize;

use crate::config::{PoomgoConfig, TargetConfig};

/// The merchant of a config with no `[[merchants]]`.
pub const DEFAULT: &str = "default";

/// The longest merchant name (it is part of store tree names and labels).
pub const MAX_NAME: usize = 40;

/// One `[[merchants]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MerchantConfig {
    /// Lower-case letters, digits, `-` and `_`; unique. Used in event JSON
    /// (`merchant`), metrics labels, the store and `--merchant`.
    pub name: String,
    /// What chat messages and the console call it; `name` when absent.
    #[serde(default)]
    pub display_name: Option<String>,
    pub poomgo: PoomgoConfig,
    #[serde(default)]
    pub plan: Option<crate::poomgo::plan::PlanConfig>,
    #[serde(default)]
    pub targets: Vec<TargetConfig>,
}

/// Which merchant a [`crate::config::Config`] is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Merchant {
    pub name: String,
    pub display_name: String,
    /// How many merchants the process serves (chat messages name the
    /// merchant only when there is more than one).
    pub of: usize,
}

impl Default for Merchant {
    fn default() -> Self {
        Merchant {
            name: DEFAULT.into(),
            display_name: DEFAULT.into(),
            of: 1,
        }
    }
}

impl Merchant {
    /// The process serves more than this merchant.
    pub fn several(&self) -> bool {
        self.of > 1
    }

    /// Its data lives in the store's original keyspace.
    pub fn is_default(&self) -> bool {
        self.name == DEFAULT
    }
}

/// Checks a merchant name; the message says what is expected.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
        && name.as_bytes()[0].is_ascii_alphanumeric();
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` is not a valid merchant name: expected 1 to {MAX_NAME} lower-case letters, digits, `-` or `_`, starting with a letter or digit"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lower_case_words() {
        for good in ["default", "brand-a", "b2", "3pl_client"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Brand", "a/b", "-a", "a b", &"x".repeat(41), "브랜드"] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("merchant name"), "{e}");
        }
    }
}
