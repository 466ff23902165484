//! The one retry policy every registry call goes through: 429 (honouring `Retry-After`), 5xx,
//! connection resets and timeouts; exponential backoff with jitter; bounded attempts and time.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::{Error, Result};
use crate::progress::{Event, Reporter};

#[derive(Clone, Debug)]
pub struct RetryPolicy {
    pub base: Duration,
    pub max_delay: Duration,
    pub max_elapsed: Duration,
    pub max_attempts: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_millis(500),
            max_delay: Duration::from_secs(20),
            max_elapsed: Duration::from_secs(180),
            max_attempts: 6,
        }
    }
}

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok()?.trim().parse().ok()
}

impl RetryPolicy {
    /// Defaults, shortened or lengthened by `HOIST_RETRY_BASE_MS`, `HOIST_RETRY_MAX_ELAPSED_MS`
    /// and `HOIST_RETRY_ATTEMPTS`.
    pub fn from_env() -> Self {
        let mut policy = RetryPolicy::default();
        if let Some(ms) = env_u64("HOIST_RETRY_BASE_MS") {
            policy.base = Duration::from_millis(ms);
            policy.max_delay = policy
                .max_delay
                .min(Duration::from_millis(ms.saturating_mul(40)));
        }
        if let Some(ms) = env_u64("HOIST_RETRY_MAX_ELAPSED_MS") {
            policy.max_elapsed = Duration::from_millis(ms);
        }
        if let Some(n) = env_u64("HOIST_RETRY_ATTEMPTS") {
            policy.max_attempts = n.clamp(1, 100) as u32;
        }
        policy
    }

    /// Backoff before attempt `attempt + 1`: base·2^(attempt-1), capped, with "equal jitter"
    /// (half fixed, half random) so parallel transfers do not retry in lockstep.
    pub fn delay(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16))
            .min(self.max_delay);
        let half = exp / 2;
        half + rand::rng().random_range(Duration::ZERO..=half)
    }

    /// Runs `op` until it succeeds, fails for good, or the attempts or time run out.
    pub async fn run<T, F, Fut>(&self, what: &str, reporter: &Arc<dyn Reporter>, op: F) -> Result<T>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, Attempt>>,
    {
        let start = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match op().await {
                Ok(value) => return Ok(value),
                Err(Attempt::Fail(e)) => return Err(e),
                Err(Attempt::Retry { error, after }) => {
                    self.back_off(what, reporter, start, attempt, error, after)
                        .await?
                }
            }
        }
    }

    /// After failed attempt number `attempt` of work begun at `start`: waits the backoff (or
    /// the server's `after`), saying so, or gives up when the attempts or the time are spent.
    pub async fn back_off(
        &self,
        what: &str,
        reporter: &Arc<dyn Reporter>,
        start: Instant,
        attempt: u32,
        error: Error,
        after: Option<Duration>,
    ) -> Result<()> {
        let delay = after.unwrap_or_else(|| self.delay(attempt));
        if attempt >= self.max_attempts || start.elapsed() + delay > self.max_elapsed {
            return Err(Error::RetriesExhausted {
                url: what.to_string(),
                attempts: attempt,
                last: error.to_string(),
            });
        }
        reporter.report(Event::Retrying {
            what: what.to_string(),
            attempt,
            delay,
            reason: error.to_string(),
        });
        tracing::debug!(what, attempt, ?delay, %error, "retrying");
        tokio::time::sleep(delay).await;
        Ok(())
    }
}

/// How one attempt ended, when it did not succeed.
#[derive(Debug)]
pub enum Attempt {
    /// Transient: try again, after `after` if the server said so.
    Retry {
        error: Error,
        after: Option<Duration>,
    },
    /// Permanent: stop.
    Fail(Error),
}

impl From<Error> for Attempt {
    fn from(error: Error) -> Self {
        if error.is_transient() {
            Attempt::Retry { error, after: None }
        } else {
            Attempt::Fail(error)
        }
    }
}

impl Error {
    /// Whether trying the same thing again may work: connection failures, 429 and 5xx answers.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Network { .. } => true,
            Error::Registry { status, .. } => *status == 429 || *status >= 500,
            _ => false,
        }
    }
}

/// `Retry-After` as seconds or an HTTP date, capped so a hostile server cannot park us forever
/// (the policy's total time still bounds it).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs.min(3600)));
    }
    let when = parse_http_date(value)?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(Duration::from_secs(3600)),
    )
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form servers send today.
pub fn parse_http_date(s: &str) -> Option<std::time::SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').filter_map(|p| p.parse().ok()).collect();
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    let secs = crate::time::days_from_civil(year, month, day) * 86400 + h * 3600 + m * 60 + sec;
    u64::try_from(secs)
        .ok()
        .map(|s| std::time::UNIX_EPOCH + Duration::from_secs(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(std::time::UNIX_EPOCH + Duration::from_secs(784111777))
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            base: Duration::from_millis(100),
            max_delay: Duration::from_millis(1000),
            max_elapsed: Duration::from_secs(10),
            max_attempts: 10,
        };
        for attempt in 1..10 {
            let d = p.delay(attempt);
            let exp = (100u64 << (attempt - 1)).min(1000);
            assert!(d >= Duration::from_millis(exp / 2) && d <= Duration::from_millis(exp));
        }
    }

    #[tokio::test]
    async fn stops_after_max_attempts_and_counts_them() {
        let p = RetryPolicy {
            base: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            max_elapsed: Duration::from_secs(10),
            max_attempts: 4,
        };
        let calls = std::sync::atomic::AtomicU32::new(0);
        let reporter: Arc<dyn Reporter> = Arc::new(crate::progress::Silent);
        let result: Result<()> = p
            .run("x", &reporter, || {
                calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                async {
                    Err(Attempt::from(Error::Network {
                        url: "u".into(),
                        detail: "reset".into(),
                    }))
                }
            })
            .await;
        assert!(matches!(
            result,
            Err(Error::RetriesExhausted { attempts: 4, .. })
        ));
        assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 4);
    }
}
