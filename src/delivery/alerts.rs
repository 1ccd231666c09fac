//! Alerts about itself: a notifier that silently stops is worse than none.
//!
//! With `[delivery] alerts_to = "<chat target>"`, that target is told, at
//! most once an hour per condition (the time is kept in the store, so a
//! restart does not repeat an alert):
//!
//! - another target has been failing for `alert_after` (or its receiver
//!   said it is gone);
//! - new dead letters appeared on a target;
//! - polling has failed for three intervals (a rejected key included).
//!
//! Alerts are sent directly, not queued: an alert that cannot be sent is
//! logged and tried again at the next check.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{DeliveryConfig, Outcome, Sender, Target};
use crate::store::{Store, StoreError};

/// At most one alert per condition per this long.
pub const ALERT_EVERY: Duration = Duration::from_secs(3600);

/// What the caller knows about polling.
#[derive(Debug, Clone, Default)]
pub struct PollingHealth {
    /// Polls have failed for three intervals or more; why.
    pub failing: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct AlertState {
    /// Unix ms of the last alert sent for the condition.
    last_sent: Option<i64>,
    /// Dead letters already reported (for the "new dead letters" condition).
    dead_seen: u64,
}

/// Checks every condition and sends what is due. Returns the alerts sent.
pub async fn check(
    store: &Store,
    sender: &Sender,
    targets: &[Target],
    config: &DeliveryConfig,
    polling: &PollingHealth,
    now_ms: i64,
) -> Result<Vec<String>, StoreError> {
    let Some(to) = config.alerts_to.as_deref() else {
        return Ok(Vec::new());
    };
    let Some(alert_target) = targets.iter().find(|t| t.name == to) else {
        return Ok(Vec::new());
    };
    let mut due: Vec<(String, String, Option<u64>)> = Vec::new();
    let fmt_time = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| {
                t.with_timezone(&crate::poomgo::kst())
                    .format("%m-%d %H:%M KST")
                    .to_string()
            })
            .unwrap_or_default()
    };
    for t in targets.iter().filter(|t| t.name != to) {
        let queue = store.queue(&t.name)?;
        let state = queue.state()?;
        let (pending, dead) = (queue.pending_len(), queue.dead_len() as u64);
        if let Some(since) = state.failing_since
            && (state.gone || now_ms - since >= config.alert_after.as_millis() as i64)
        {
            due.push((
                format!("failing/{}", t.name),
                format!(
                    "⚠️ poomgo-notifier: `{}` 전송이 {}부터 실패 중입니다 (target failing): {}. 대기 {pending}건, 실패 보관(dead letter) {dead}건.",
                    t.name,
                    fmt_time(since),
                    state.reason.as_deref().unwrap_or("-"),
                ),
                None,
            ));
        }
        let key = format!("dead/{}", t.name);
        let seen = alert_state(store, &key)?.dead_seen;
        if dead > seen {
            let latest = queue
                .dead(usize::MAX)?
                .into_iter()
                .max_by_key(|(_, d)| d.dead_at)
                .map(|(_, d)| d.reason.to_string())
                .unwrap_or_default();
            due.push((
                key,
                format!(
                    "⚠️ poomgo-notifier: `{}`에 새 실패 보관(dead letter) {}건 (모두 {dead}건): {latest}. `poomgo-notifier dead-letters list --target {}`로 확인하고 replay 하세요.",
                    t.name,
                    dead - seen,
                    t.name
                ),
                Some(dead),
            ));
        } else if dead < seen {
            // Replayed or purged: only what is new from here on is news.
            put_state(
                store,
                &key,
                &AlertState {
                    dead_seen: dead,
                    ..alert_state(store, &key)?
                },
            )?;
        }
    }
    if let Some(reason) = &polling.failing {
        due.push((
            "polls".into(),
            format!(
                "⚠️ poomgo-notifier: Poomgo 주문 조회가 세 번의 주기 넘게 실패 중입니다 (polling failing): {reason}"
            ),
            None,
        ));
    }
    let mut sent = Vec::new();
    for (key, text, dead_seen) in due {
        let mut state = alert_state(store, &key)?;
        if state
            .last_sent
            .is_some_and(|at| now_ms - at < ALERT_EVERY.as_millis() as i64)
        {
            continue;
        }
        let Some(request) = alert_target.text_request(&text) else {
            continue;
        };
        match sender.post(alert_target, request, Vec::new).await {
            Outcome::Delivered => {
                tracing::info!(alert = %key, to = %to, "alert sent");
                state.last_sent = Some(now_ms);
                if let Some(d) = dead_seen {
                    state.dead_seen = d;
                }
                put_state(store, &key, &state)?;
                sent.push(text);
            }
            Outcome::Retry { error, .. } | Outcome::Dead { error, .. } => {
                tracing::error!(alert = %key, to = %to, reason = %error, "an alert could not be sent; it is tried again at the next check");
            }
        }
    }
    Ok(sent)
}

fn alert_state(store: &Store, key: &str) -> Result<AlertState, StoreError> {
    Ok(store.meta_get(&format!("alert/{key}"))?.unwrap_or_default())
}

fn put_state(store: &Store, key: &str, state: &AlertState) -> Result<(), StoreError> {
    store.meta_put(&format!("alert/{key}"), state)
}
