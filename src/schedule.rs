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
