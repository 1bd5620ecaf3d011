//! When and how long to wait before trying a failed call (or batch) again.

use std::time::{Duration, Instant};

use world_core::StoreError;

use crate::error::{DataApiError, Retry};

/// Why one attempt failed: a Data API error the policy may retry, or a
/// final answer.
#[derive(Debug)]
pub(crate) enum Failure {
    /// A failed call.
    Api(DataApiError),
    /// Not retried (key exhaustion, bad stored data, ...).
    Final(StoreError),
}

impl From<DataApiError> for Failure {
    fn from(e: DataApiError) -> Self {
        Failure::Api(e)
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        Failure::Final(e)
    }
}

/// First wait for a transient failure.
const TRANSIENT_BASE: Duration = Duration::from_millis(100);
/// First wait while the database resumes.
const RESUMING_BASE: Duration = Duration::from_millis(250);
/// Longest single wait.
const MAX_WAIT: Duration = Duration::from_secs(5);

/// The retry state of one call or batch.
#[derive(Debug)]
pub(crate) struct Backoff {
    resume_wait: Duration,
    max_attempts: u32,
    attempts: u32,
    resumes: u32,
    resuming_since: Option<Instant>,
    started: Instant,
}

impl Backoff {
    pub(crate) fn new(resume_wait: Duration, max_attempts: u32) -> Self {
        Self {
            resume_wait,
            max_attempts,
            attempts: 1,
            resumes: 0,
            resuming_since: None,
            started: Instant::now(),
        }
    }

    /// How long to wait before the next attempt after `error`, or `None`
    /// to give up.
    ///
    /// - Resuming: exponential waits from 250 ms (at most 5 s) until
    ///   `resume_wait` has passed since the first "resuming" answer; the
    ///   last wait ends at that deadline, so one attempt is made at it.
    /// - Transient: exponential waits from 100 ms (at most 5 s), up to
    ///   `max_attempts` attempts in all (resuming answers not counted).
    ///
    /// Waits are jittered (half fixed, half random) so that servers that
    /// failed together do not retry together.
    pub(crate) fn next(&mut self, error: &DataApiError) -> Option<Duration> {
        match error.retry() {
            Retry::Resuming => {
                let since = *self.resuming_since.get_or_insert_with(Instant::now);
                let remaining = self.resume_wait.checked_sub(since.elapsed())?;
                if remaining.is_zero() {
                    return None;
                }
                let wait = jitter(exponential(RESUMING_BASE, self.resumes));
                self.resumes += 1;
                Some(wait.min(remaining))
            }
            Retry::Transient => {
                if self.attempts >= self.max_attempts {
                    return None;
                }
                let wait = jitter(exponential(TRANSIENT_BASE, self.attempts - 1));
                self.attempts += 1;
                Some(wait)
            }
            Retry::No => None,
        }
    }

    /// What was tried, for the message of the final error.
    pub(crate) fn summary(&self) -> String {
        format!(
            "after {} attempt{} over {:.1?}",
            self.attempts + self.resumes,
            if self.attempts + self.resumes == 1 {
                ""
            } else {
                "s"
            },
            self.started.elapsed()
        )
    }
}

fn exponential(base: Duration, n: u32) -> Duration {
    base.saturating_mul(1u32 << n.min(16)).min(MAX_WAIT)
}

fn jitter(wait: Duration) -> Duration {
    let half = wait / 2;
    let millis = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
    half + Duration::from_millis(rand::random_range(0..=millis))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Op;

    fn resuming() -> DataApiError {
        DataApiError::Resuming {
            op: Op::Execute,
            message: "resuming".into(),
        }
    }

    fn throttled() -> DataApiError {
        DataApiError::Throttled {
            op: Op::Execute,
            code: "ThrottlingException".into(),
            message: "slow down".into(),
        }
    }

    #[test]
    fn transient_failures_get_max_attempts() {
        let mut b = Backoff::new(Duration::from_secs(60), 3);
        let waits: Vec<_> = std::iter::from_fn(|| b.next(&throttled())).collect();
        assert_eq!(waits.len(), 2, "three attempts in all");
        assert!(waits.iter().all(|w| *w <= MAX_WAIT));
        assert!(waits[0] >= TRANSIENT_BASE / 2 && waits[0] <= TRANSIENT_BASE);
        let rejected = DataApiError::Rejected {
            op: Op::Execute,
            code: "BadRequestException".into(),
            message: "no".into(),
        };
        assert_eq!(
            Backoff::new(Duration::from_secs(60), 3).next(&rejected),
            None
        );
    }

    #[test]
    fn resuming_waits_until_the_deadline() {
        let mut b = Backoff::new(Duration::from_millis(300), 1);
        let mut waited = Duration::ZERO;
        while let Some(wait) = b.next(&resuming()) {
            std::thread::sleep(wait);
            waited += wait;
            assert!(waited < Duration::from_secs(2), "gives up");
        }
        assert!(waited >= Duration::from_millis(250), "{waited:?}");
        // Resuming answers do not use up the transient attempts... but the
        // transient budget (1 attempt) is spent at once.
        assert_eq!(b.next(&throttled()), None);
        assert!(b.summary().contains("attempts"));
    }
}
