//! The scan plan: which windows a poll reads, and how often.
//!
//! The API filters by `createdAt` (order created), `confirmAt` (invoice
//! assigned) and `closeAt` (invoice closed), in whole Korea-time days. A
//! window is a day range on one axis, `[today − days, today − skip_days]`,
//! read every `every` ticks. Re-reading the whole `lookback_days` of orders
//! every tick costs a request per 500 orders per tick, mostly for parcels
//! delivered days ago; the default plan reads what moves often, often, and
//! the rest less often:
//!
//! | window | axis | days | read | why |
//! |---|---|---|---|---|
//! | `assigned-today` | confirmAt | today | every tick | new invoices (back-orders too, whatever the order's age), printing, cancellations |
//! | `closed-recent` | closeAt | yesterday and today | every 2nd tick | shipped, the courier's scans, out for delivery, 배송완료 |
//! | `assigned` | confirmAt | 1–3 days ago | every 12th tick | late printing, cancellations of older invoices |
//! | `closed` | closeAt | 2–7 days ago | every 24th tick | slow parcels, returns |
//! | `created` | createdAt | `lookback_days` (14) | every 48th tick | everything else, and a baseline for all of it |
//!
//! So at the default 5-minute cron a new invoice or a cancellation is at
//! most 5 minutes stale, a parcel's progress 10, late printing an hour, a
//! slow parcel 2 hours, anything else in the window 4 hours. Why these
//! tiers: in the bench's simulated merchant (`bench`, its `window_*` lines)
//! 33% of the changes are first seen by `assigned-today`, 62% by
//! `closed-recent` and 5% by `assigned`; the slower tiers see none there and
//! are the safety net for what the simulator does not do (lost parcels,
//! late returns). Requests an hour against re-reading the whole window every
//! tick (the cost of the same 5-minute staleness for new invoices by full
//! rescans): 47 against 240 at 10,000 orders in 14 days (5.1× fewer), 388
//! against 2,400 at 100,000 (6.2×), 3,820 against 24,000 at 1,000,000 (6.3×);
//! at 1,000 orders 20 against 24.
//!
//! Why one `closeAt` window of two days every other tick, not today every
//! tick and yesterday every third (the default before): every window read
//! costs at least one request, and its last page is rarely full. For a
//! merchant of 10,000 orders the two every-tick windows alone were 33 of
//! the 60 requests an hour, only 4 times fewer than full rescans; for one of
//! 1,000 orders the plan cost more than full rescans (31 against 24). A
//! courier's status reaches Poomgo late anyway, so 10 minutes for a
//! parcel's progress (15 before, for yesterday's parcels) costs the CS team
//! nothing it can act on.
//!
//! The day turns at midnight in Korea: the first read of a window after
//! that reaches back to the newest day of its last read
//! ([`WindowSpec::window_since`]), so `assigned-today` reads yesterday once
//! more and an invoice assigned at 23:58 is seen at 00:00, not an hour
//! later by `assigned`.
//!
//! The semantics of `confirmAt` and `closeAt` are the
//! vendor's wording, not confirmed: the plan is configurable (`[[plan.windows]]`)
//! and the `created` window of `lookback_days` is always in it.
//!
//! Each window keeps its own baseline (see [`crate::poll`]): a window that is
//! added or widened records what it sees for the first time silently.

use chrono::{DateTime, Days, Utc};
use serde::Deserialize;

use super::{Axis, Window, kst_day};

/// One `[[plan.windows]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    /// Unique; keys the window's baseline and schedule in the store.
    pub name: String,
    pub axis: AxisName,
    /// How far back the window reaches, in days (0: today only).
    pub days: u32,
    /// The newest days left out (read by a faster window); 0 by default.
    #[serde(default)]
    pub skip_days: u32,
    /// Read on every this many ticks; 1 by default.
    #[serde(default = "one")]
    pub every: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AxisName {
    Created,
    Confirmed,
    Closed,
}

impl From<AxisName> for Axis {
    fn from(a: AxisName) -> Axis {
        match a {
            AxisName::Created => Axis::Created,
            AxisName::Confirmed => Axis::Confirmed,
            AxisName::Closed => Axis::Closed,
        }
    }
}

/// `[plan]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanConfig {
    /// The windows besides `created`; the default plan (above) when absent.
    #[serde(default)]
    pub windows: Option<Vec<WindowSpec>>,
    /// The `created` window (`lookback_days` of createdAt) is read every this many ticks.
    #[serde(default = "default_created_every")]
    pub created_every: u32,
}

fn default_created_every() -> u32 {
    48
}

impl Default for PlanConfig {
    fn default() -> Self {
        PlanConfig {
            windows: None,
            created_every: default_created_every(),
        }
    }
}

/// The name of the `createdAt` window of `lookback_days`, which every plan
/// has (and which a schema-1 store's baseline covered).
pub const CREATED: &str = "created";

impl PlanConfig {
    /// The windows of the plan: the configured ones, or the default; with
    /// the `created` window of `lookback_days` added when missing.
    pub fn specs(&self, lookback_days: u32) -> Vec<WindowSpec> {
        let spec = |name: &str, axis, days, skip_days, every| WindowSpec {
            name: name.into(),
            axis,
            days,
            skip_days,
            every,
        };
        let mut specs = self.windows.clone().unwrap_or_else(|| {
            vec![
                spec("assigned-today", AxisName::Confirmed, 0, 0, 1),
                spec("closed-recent", AxisName::Closed, 1, 0, 2),
                spec("assigned", AxisName::Confirmed, 3, 1, 12),
                spec("closed", AxisName::Closed, 7, 2, 24),
            ]
        });
        specs.retain(|s| s.name != CREATED);
        specs.push(spec(
            CREATED,
            AxisName::Created,
            lookback_days,
            0,
            self.created_every,
        ));
        specs
    }

    /// Checks the windows; the error is (key within `[plan]`, message).
    pub fn validate(&self, lookback_days: u32) -> Result<(), (String, String)> {
        if let Some(i) = self
            .windows
            .iter()
            .flatten()
            .position(|w| w.name == CREATED)
        {
            return Err((
                format!("windows[{i}].name"),
                "`created` is the createdAt window of `poomgo.lookback_days` (read every `plan.created_every` ticks): give other windows other names".into(),
            ));
        }
        let specs = self.specs(lookback_days);
        let mut names = std::collections::HashSet::new();
        for (i, s) in specs.iter().enumerate() {
            let key = |f: &str| format!("windows[{i}].{f}");
            if s.name.is_empty()
                || !s
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                return Err((
                    key("name"),
                    format!(
                        "`{}` is not a valid name: expected letters, digits, `-` or `_`",
                        s.name
                    ),
                ));
            }
            if !names.insert(&s.name) {
                return Err((key("name"), format!("`{}` is used by two windows", s.name)));
            }
            if s.days > 366 {
                return Err((
                    key("days"),
                    format!("{} is out of range: expected 0 to 366", s.days),
                ));
            }
            if s.skip_days > s.days {
                return Err((
                    key("skip_days"),
                    format!(
                        "{} is more than `days` ({}): the window would be empty",
                        s.skip_days, s.days
                    ),
                ));
            }
            if !(1..=1000).contains(&s.every) {
                return Err((
                    key("every"),
                    format!("{} is out of range: expected 1 to 1000", s.every),
                ));
            }
        }
        Ok(())
    }
}

impl WindowSpec {
    /// The window's days at `now`.
    pub fn window(&self, now: DateTime<Utc>) -> Window {
        let today = kst_day(now);
        let back = |n: u32| today.checked_sub_days(Days::new(n.into())).unwrap_or(today);
        Window {
            name: self.name.clone(),
            axis: self.axis.into(),
            from: back(self.days),
            to: back(self.skip_days),
        }
    }

    /// The window's days at `now`, reaching back to the newest day of its
    /// last complete read (`last_read_ms`) when the day has turned since:
    /// a one-day window read at 23:55 and at 00:00 would otherwise never
    /// read the last five minutes of the day before (an invoice assigned at
    /// 23:58 would wait for a slower window). After a stop of several days
    /// this catches up on them too, at most `max_days_back` days.
    pub fn window_since(
        &self,
        now: DateTime<Utc>,
        last_read_ms: Option<i64>,
        max_days_back: u32,
    ) -> Window {
        let mut window = self.window(now);
        let Some(last) = last_read_ms.and_then(DateTime::from_timestamp_millis) else {
            return window;
        };
        let Some(newest_then) = kst_day(last).checked_sub_days(Days::new(self.skip_days.into()))
        else {
            return window;
        };
        let limit = kst_day(now)
            .checked_sub_days(Days::new(max_days_back.into()))
            .unwrap_or(window.from);
        if newest_then < window.from {
            window.from = newest_then.max(limit).min(window.from);
        }
        window
    }

    /// Whether the window is due at `now`, given when it was last read to
    /// the end and the tick interval. A window of every tick is read on every
    /// poll; half an interval of slack keeps a jittery tick from skipping a
    /// whole round of the others.
    pub fn is_due(
        &self,
        last_read_ms: Option<i64>,
        now: DateTime<Utc>,
        interval: std::time::Duration,
    ) -> bool {
        let Some(last) = last_read_ms else {
            return true;
        };
        if self.every <= 1 {
            return true;
        }
        let period = interval.as_millis() as i64 * i64::from(self.every);
        now.timestamp_millis() - last >= period - interval.as_millis() as i64 / 2
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::time::Duration;

    #[test]
    fn the_default_plan_and_its_days() {
        let specs = PlanConfig::default().specs(14);
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "assigned-today",
                "closed-recent",
                "assigned",
                "closed",
                "created"
            ]
        );
        // 2026-12-01 10:05 UTC is 19:05 on 1 December in Korea.
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 10, 5, 0).unwrap();
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 11, d).unwrap();
        let dec1 = kst_day(now);
        let w = specs[0].window(now);
        assert_eq!((w.from, w.to, w.axis), (dec1, dec1, Axis::Confirmed));
        let w = specs[1].window(now);
        assert_eq!((w.from, w.to, w.axis), (day(30), dec1, Axis::Closed));
        let w = specs[2].window(now);
        assert_eq!((w.from, w.to, w.axis), (day(28), day(30), Axis::Confirmed));
        let w = specs[3].window(now);
        assert_eq!((w.from, w.to), (day(24), day(29)));
        let w = specs[4].window(now);
        assert_eq!(
            (w.from, w.to, w.axis),
            (day(17), kst_day(now), Axis::Created)
        );
        assert!(PlanConfig::default().validate(14).is_ok());
    }

    #[test]
    fn windows_are_due_every_nth_tick() {
        let spec = &PlanConfig::default().specs(14)[2]; // every 12th
        let tick = Duration::from_secs(300);
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 10, 0, 0).unwrap();
        let ms = now.timestamp_millis();
        assert!(spec.is_due(None, now, tick));
        assert!(!spec.is_due(Some(ms - 11 * 300_000), now, tick));
        assert!(
            spec.is_due(Some(ms - 12 * 300_000 + 2_000), now, tick),
            "a late tick still counts"
        );
    }

    #[test]
    fn a_window_read_before_midnight_reaches_back_to_that_day_once() {
        let today = &PlanConfig::default().specs(14)[0]; // assigned-today
        let at = |d: u32, h: u32, m: u32| Utc.with_ymd_and_hms(2026, 12, d, h, m, 0).unwrap();
        let day = |d: u32| chrono::NaiveDate::from_ymd_opt(2026, 12, d).unwrap();
        // 00:00 Korea time on 2 December is 15:00 UTC on 1 December.
        let before_midnight = at(1, 14, 55).timestamp_millis();
        let w = today.window_since(at(1, 15, 0), Some(before_midnight), 14);
        assert_eq!(
            (w.from, w.to),
            (day(1), day(2)),
            "the day before is read once more"
        );
        let w = today.window_since(at(1, 15, 5), Some(at(1, 15, 0).timestamp_millis()), 14);
        assert_eq!((w.from, w.to), (day(2), day(2)), "then today only");
        let w = today.window_since(at(1, 15, 5), None, 14);
        assert_eq!((w.from, w.to), (day(2), day(2)), "never read: its own days");
        // After a stop of three weeks: at most the limit.
        let long_ago = at(1, 15, 0) - chrono::Duration::days(21);
        let w = today.window_since(at(1, 15, 5), Some(long_ago.timestamp_millis()), 14);
        assert_eq!(
            w.from,
            chrono::NaiveDate::from_ymd_opt(2026, 11, 18).unwrap()
        );
        // A window of several days already holds the day before.
        let recent = &PlanConfig::default().specs(14)[1]; // closed-recent
        let w = recent.window_since(at(1, 15, 0), Some(before_midnight), 14);
        assert_eq!((w.from, w.to), (day(1), day(2)));
    }

    #[test]
    fn every_plan_has_the_created_window_of_lookback_days() {
        let mine = |name: &str, skip_days| WindowSpec {
            name: name.into(),
            axis: AxisName::Closed,
            days: 2,
            skip_days,
            every: 1,
        };
        let plan = PlanConfig {
            windows: Some(vec![mine("mine", 0)]),
            created_every: 3,
        };
        let specs = plan.specs(20);
        assert_eq!(specs.len(), 2);
        assert_eq!(
            (specs[1].name.as_str(), specs[1].days, specs[1].every),
            (CREATED, 20, 3)
        );
        let bad = PlanConfig {
            windows: Some(vec![mine("x", 3)]),
            ..PlanConfig::default()
        };
        assert_eq!(bad.validate(14).unwrap_err().0, "windows[0].skip_days");
        let reserved = PlanConfig {
            windows: Some(vec![mine("created", 0)]),
            ..PlanConfig::default()
        };
        assert_eq!(reserved.validate(14).unwrap_err().0, "windows[0].name");
    }
}
