//! A token bucket per target: at most `rate_per_second` requests a second,
//! with `burst` allowed at once. Slack documents 1 message per second per
//! webhook; a receiver that enforces exactly that must never see a 429 from
//! us, so waits are rounded up by 50 ms (scheduling jitter on a busy machine
//! is larger than a few).

use std::time::Duration;

use tokio::{sync::Mutex, time::Instant};

use super::Target;

pub struct Pace {
    /// `None`: unlimited.
    per_second: Option<f64>,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

/// Added to every wait so that two requests are never closer than the rate.
const MARGIN: Duration = Duration::from_millis(50);

impl Pace {
    pub fn new(per_second: Option<f64>, burst: u32) -> Pace {
        let burst = f64::from(burst.max(1));
        Pace {
            per_second,
            burst,
            state: Mutex::new((burst, Instant::now())),
        }
    }

    pub fn for_target(target: &Target) -> Pace {
        Pace::new(target.rate_per_second, target.burst)
    }

    /// Waits until a request may go. Callers are served in turn.
    pub async fn acquire(&self) {
        let Some(rate) = self.per_second else { return };
        let mut state = self.state.lock().await;
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(self.burst);
        *last = now;
        if *tokens < 1.0 {
            let wait = Duration::from_secs_f64((1.0 - *tokens) / rate) + MARGIN;
            tokio::time::sleep(wait).await;
            *tokens = 1.0;
            *last = Instant::now();
        }
        *tokens -= 1.0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn requests_are_spaced_by_the_rate_after_the_burst() {
        let pace = Pace::new(Some(2.0), 2);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..5 {
            pace.acquire().await;
            at.push(start.elapsed());
        }
        assert!(at[1] < Duration::from_millis(10), "the burst goes at once");
        for pair in at[1..].windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_millis(500), "{at:?}");
        }
        let unlimited = Pace::new(None, 1);
        let t = Instant::now();
        for _ in 0..100 {
            unlimited.acquire().await;
        }
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
