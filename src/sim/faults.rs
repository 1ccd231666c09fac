//! Fault injection: make a page of the simulated API misbehave on purpose.
//!
//! A rule names the page it applies to (or every page), what goes wrong, and
//! how many times (or for ever). Rules are given on the command line as
//! `KIND[:ARG][@PAGE][xTIMES]`, or posted as JSON to `/_sim/faults`:
//!
//! | spec            | effect |
//! |-----------------|--------|
//! | `500@3x2`       | page 3 answers HTTP 500, twice |
//! | `429:2@1`       | page 1 answers 429 with `Retry-After: 2`, for ever |
//! | `slow:1500ms`   | every page waits 1.5 s before answering |
//! | `notjson@4`     | page 4 answers 200 with an HTML body |
//! | `truncated@2x1` | page 2's body is cut off mid-transfer, once |
//! | `empty@1`       | page 1 answers `rows: []` under its real, non-zero `total` |
//! | `401`           | every page rejects the key |
//!
//! Odd values inside rows are posted as JSON only: `{"fault": {"mangle":
//! {"row": 0, "pointer": "/invoices/0/isPrinted", "value": "yes"}}}` sets the
//! value at a JSON pointer inside row 0 of the page; without `value` the key
//! is removed.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultRule {
    /// The page it applies to; every page when absent.
    #[serde(default)]
    pub page: Option<u32>,
    pub fault: Fault,
    /// How many times it fires; for ever when absent.
    #[serde(default)]
    pub times: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer with this HTTP status and a small JSON error body.
    Status { status: u16 },
    /// Answer 429 with `Retry-After` in seconds.
    TooManyRequests { retry_after_secs: u64 },
    /// Wait this long, then answer normally.
    Slow { millis: u64 },
    /// Answer 200 with an HTML page instead of JSON.
    NotJson,
    /// Send half of the body, then break the connection.
    Truncated,
    /// Answer with the real `total` but no rows (an upstream glitch).
    EmptyRows,
    /// Set (or, without `value`, remove) the value at a JSON pointer inside
    /// one row of the page: odd types, missing keys.
    Mangle {
        row: usize,
        pointer: String,
        #[serde(default)]
        value: Option<serde_json::Value>,
    },
}

impl FaultRule {
    /// Parses `KIND[:ARG][@PAGE][xTIMES]`.
    pub fn parse(spec: &str) -> Result<FaultRule, String> {
        let bad = |why: &str| {
            format!(
                "fault `{spec}`: {why}; expected KIND[:ARG][@PAGE][xTIMES], e.g. `500@3x2`, `429:2@1`, `slow:1500ms`, `notjson@4`, `truncated`"
            )
        };
        let (rest, times) = match spec.rsplit_once('x') {
            Some((rest, n)) if !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()) => {
                (rest, Some(n.parse().map_err(|_| bad("bad count"))?))
            }
            _ => (spec, None),
        };
        let (rest, page) = match rest.split_once('@') {
            Some((rest, "*")) => (rest, None),
            Some((rest, p)) => (
                rest,
                Some(
                    p.parse::<u32>()
                        .map_err(|_| bad("the page is not a number"))?,
                ),
            ),
            None => (rest, None),
        };
        let (kind, arg) = match rest.split_once(':') {
            Some((k, a)) => (k, Some(a)),
            None => (rest, None),
        };
        let fault = match (kind, arg) {
            ("slow", Some(d)) => Fault::Slow {
                millis: humantime::parse_duration(d)
                    .or_else(|_| d.parse::<u64>().map(Duration::from_millis))
                    .map_err(|_| bad("slow needs a duration"))?
                    .as_millis() as u64,
            },
            ("slow", None) => Fault::Slow { millis: 1000 },
            ("notjson", None) => Fault::NotJson,
            ("truncated", None) => Fault::Truncated,
            ("empty", None) => Fault::EmptyRows,
            ("429", arg) => Fault::TooManyRequests {
                retry_after_secs: arg
                    .map(str::parse)
                    .transpose()
                    .map_err(|_| bad("Retry-After must be seconds"))?
                    .unwrap_or(1),
            },
            (code, None) => match code.parse::<u16>() {
                Ok(status) if (400..600).contains(&status) => Fault::Status { status },
                _ => return Err(bad("unknown kind")),
            },
            _ => return Err(bad("this kind takes no argument")),
        };
        Ok(FaultRule { page, fault, times })
    }
}

/// The active rules. The first rule that matches a request and has not run
/// out fires (and is used up by one).
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    pub fn add(&mut self, rule: FaultRule) {
        self.rules.push(rule);
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn take(&mut self, page: u32) -> Option<Fault> {
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.page.is_none_or(|p| p == page) && r.times != Some(0))?;
        if let Some(n) = rule.times.as_mut() {
            *n -= 1;
        }
        Some(rule.fault.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_documented_spec() {
        let r = FaultRule::parse("500@3x2").unwrap();
        assert_eq!(
            r,
            FaultRule {
                page: Some(3),
                fault: Fault::Status { status: 500 },
                times: Some(2)
            }
        );
        let r = FaultRule::parse("429:2@1").unwrap();
        assert_eq!(
            r.fault,
            Fault::TooManyRequests {
                retry_after_secs: 2
            }
        );
        assert_eq!(r.page, Some(1));
        assert_eq!(
            FaultRule::parse("slow:1500ms").unwrap().fault,
            Fault::Slow { millis: 1500 }
        );
        assert_eq!(FaultRule::parse("notjson@4").unwrap().fault, Fault::NotJson);
        assert_eq!(FaultRule::parse("truncated@2x1").unwrap().times, Some(1));
        assert!(
            FaultRule::parse("explode")
                .unwrap_err()
                .contains("unknown kind")
        );
        assert!(FaultRule::parse("500@three").is_err());
    }

    #[test]
    fn rules_run_out() {
        let mut f = Faults::default();
        f.add(FaultRule::parse("500@2x1").unwrap());
        assert_eq!(f.take(1), None);
        assert_eq!(f.take(2), Some(Fault::Status { status: 500 }));
        assert_eq!(f.take(2), None);
    }
}
