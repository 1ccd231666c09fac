//! The one retry policy type of the crate: a schedule of waits, as data.
//!
//! The Poomgo client uses an exponential schedule (`base`, `2·base`, `4·base`,
//! … capped at `max`); delivery will use a fixed, Svix-like schedule. Both are
//! the same value: a list of waits and a jitter fraction. Keeping the schedule
//! as data means a test can use milliseconds where production uses minutes,
//! and an operator can read exactly what will happen from the config.

use std::time::Duration;

/// Whether an HTTP answer is worth trying again later: 408, 429 and 5xx.
/// Both the Poomgo client and delivery classify with this one rule.
pub fn is_transient_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..600).contains(&status)
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// The wait before retry `i + 1`. Its length is the number of retries, so
    /// the number of attempts is `waits.len() + 1`.
    waits: Vec<Duration>,
    /// Each wait is drawn uniformly from `wait·(1 − jitter) ..= wait·(1 + jitter)`,
    /// so that many clients that failed together do not retry together.
    jitter: f64,
    /// No wait of the schedule exceeds this.
    max_wait: Duration,
    /// What a server asks for with `Retry-After` is honoured up to this.
    retry_after_cap: Duration,
}

impl RetryPolicy {
    /// `attempts` attempts in all; waits double from `base` up to `max`.
    /// A `Retry-After` is honoured as given up to `retry_after_cap`.
    pub fn exponential(
        attempts: u32,
        base: Duration,
        max: Duration,
        retry_after_cap: Duration,
    ) -> Self {
        let waits = (0..attempts.saturating_sub(1))
            .map(|i| base.saturating_mul(1u32 << i.min(20)).min(max))
            .collect();
        RetryPolicy {
            waits,
            jitter: 0.2,
            max_wait: max,
            retry_after_cap,
        }
    }

    /// A fixed schedule of waits (e.g. 5s, 5m, 30m, 2h, …). A `Retry-After`
    /// never shortens a step and is capped at the schedule's longest step.
    pub fn schedule(waits: Vec<Duration>, jitter: f64) -> Self {
        let max_wait = waits.iter().copied().max().unwrap_or_default();
        RetryPolicy {
            waits,
            jitter: jitter.clamp(0.0, 1.0),
            max_wait,
            retry_after_cap: max_wait,
        }
    }

    /// How many attempts in all (the first one and every retry).
    pub fn attempts(&self) -> u32 {
        self.waits.len() as u32 + 1
    }

    /// The wait after failed attempt number `attempt` (1-based), or `None` when
    /// the schedule is used up. `retry_after` is what the server asked for; the
    /// wait is never shorter than that (up to `retry_after_cap`), nor than the
    /// schedule's step.
    pub fn wait_after(&self, attempt: u32, retry_after: Option<Duration>) -> Option<Duration> {
        let base = *self.waits.get(attempt.checked_sub(1)? as usize)?;
        let jittered = if self.jitter > 0.0 {
            base.mul_f64(1.0 - self.jitter + 2.0 * self.jitter * fastrand::f64())
        } else {
            base
        };
        let asked = retry_after.map_or(Duration::ZERO, |a| a.min(self.retry_after_cap));
        Some(jittered.min(self.max_wait.max(base)).max(asked))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_doubles_and_caps() {
        let p = RetryPolicy::exponential(
            5,
            Duration::from_millis(100),
            Duration::from_millis(300),
            Duration::from_secs(3600),
        );
        assert_eq!(p.attempts(), 5);
        assert_eq!(
            p.waits,
            [100, 200, 300, 300].map(Duration::from_millis).to_vec()
        );
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let p = RetryPolicy::exponential(
            3,
            Duration::from_secs(10),
            Duration::from_secs(60),
            Duration::from_secs(60),
        );
        for _ in 0..1000 {
            let w = p.wait_after(1, None).unwrap();
            assert!(
                w >= Duration::from_secs(8) && w <= Duration::from_secs(12),
                "{w:?}"
            );
        }
    }

    #[test]
    fn retry_after_lengthens_up_to_its_own_cap() {
        let p = RetryPolicy::schedule(vec![Duration::from_secs(1), Duration::from_secs(4)], 0.0);
        assert_eq!(
            p.wait_after(1, Some(Duration::from_millis(10))),
            Some(Duration::from_secs(1)),
            "never shortens the schedule"
        );
        assert_eq!(
            p.wait_after(1, Some(Duration::from_secs(60))),
            Some(Duration::from_secs(4)),
            "a schedule caps it at its longest step"
        );
        let hour = Duration::from_secs(3600);
        let p =
            RetryPolicy::exponential(3, Duration::from_millis(10), Duration::from_secs(5), hour);
        let w = p.wait_after(1, Some(Duration::from_secs(30))).unwrap();
        assert_eq!(w, Duration::from_secs(30), "honoured past retry_max");
        let w = p.wait_after(1, Some(Duration::from_secs(86_400))).unwrap();
        assert_eq!(w, hour);
    }

    #[test]
    fn schedule_runs_out() {
        let p = RetryPolicy::schedule(vec![Duration::from_secs(1)], 0.0);
        assert!(p.wait_after(1, None).is_some());
        assert_eq!(p.wait_after(2, None), None);
        assert_eq!(p.wait_after(0, None), None);
        assert_eq!(RetryPolicy::schedule(Vec::new(), 0.0).attempts(), 1);
    }
}
