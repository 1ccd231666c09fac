//! The poll schedule: a seconds-first cron expression evaluated in a time zone.
//!
//! tokio-cron-scheduler parses with croner (seconds required, day-of-month and
//! day-of-week both honoured); [`validate`] runs the same parser with the same
//! settings so `check` and config loading reject exactly what the scheduler
//! would, with croner's reason instead of the scheduler's bare "parse error".

use croner::parser::{CronParser, Seconds};

use crate::config::ScheduleConfig;

/// Parses `cron` the way the scheduler will.
pub fn parse_cron(cron: &str) -> Result<croner::Cron, String> {
    CronParser::builder()
        .seconds(Seconds::Required)
        .dom_and_dow(true)
        .build()
        .parse(cron)
        .map_err(|e| {
            format!("`{cron}` is not a valid schedule ({e}): expected six fields, seconds first, e.g. \"0 */5 * * * *\" for every five minutes")
        })
}

/// Checks the `[schedule]` table; the error names the key within it.
pub fn validate(schedule: &ScheduleConfig) -> Result<(), (String, String)> {
    parse_cron(&schedule.cron).map_err(|m| ("cron".to_owned(), m))?;
    schedule.timezone.parse::<chrono_tz::Tz>().map_err(|_| {
        (
            "timezone".to_owned(),
            format!(
                "`{}` is not an IANA time zone: expected e.g. \"Asia/Seoul\"",
                schedule.timezone
            ),
        )
    })?;
    Ok(())
}

/// The longest gap between two of the next few runs of `cron` in `tz`: what
/// "an interval" means for health (an irregular schedule counts its longest).
pub fn longest_interval(
    cron: &croner::Cron,
    tz: chrono_tz::Tz,
    from: chrono::DateTime<chrono::Utc>,
) -> std::time::Duration {
    let mut at = from.with_timezone(&tz);
    let mut longest = chrono::Duration::zero();
    let mut previous = None;
    for _ in 0..8 {
        let Ok(next) = cron.find_next_occurrence(&at, false) else {
            break;
        };
        if let Some(p) = previous {
            longest = longest.max(next - p);
        }
        previous = Some(next);
        at = next;
    }
    longest
        .to_std()
        .unwrap_or(std::time::Duration::from_secs(300))
        .max(std::time::Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn six_fields_seconds_first() {
        assert!(parse_cron("0 */5 * * * *").is_ok());
        let e = parse_cron("*/5 * * * *").unwrap_err();
        assert!(e.contains("seconds first"), "{e}");
        assert!(parse_cron("0 61 * * * *").is_err());
    }

    #[test]
    fn intervals_follow_the_schedule() {
        let tz: chrono_tz::Tz = "Asia/Seoul".parse().unwrap();
        let from = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 30).unwrap();
        let every_five_minutes = parse_cron("0 */5 * * * *").unwrap();
        assert_eq!(
            longest_interval(&every_five_minutes, tz, from).as_secs(),
            300
        );
        let every_second = parse_cron("* * * * * *").unwrap();
        assert_eq!(longest_interval(&every_second, tz, from).as_secs(), 1);
    }
}
