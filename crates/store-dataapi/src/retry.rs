//! When and how long to wait before trying a failed call (or batch) again.

use std::time::{Duration, Instant};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
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

/// Jittered exponential waits from `base` up to [`MAX_WAIT`]: each is
/// between half and all of the un-jittered wait (backon's jitter adds up to
/// 100 % to a wait of half the size), so that servers that failed together
/// do not retry together.
fn waits(base: Duration) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_jitter()
        .with_min_delay(base / 2)
        .with_max_delay(MAX_WAIT / 2)
}

/// The retry state of one call or batch. Time is passed in (`now`), so
/// that the policy is tested without waiting.
#[derive(Debug)]
pub(crate) struct Backoff {
    resume_wait: Duration,
    transient: ExponentialBackoff,
    resuming: ExponentialBackoff,
    attempts: u32,
    resuming_since: Option<Instant>,
    started: Instant,
}

impl Backoff {
    /// The state before the first attempt, made at `now`.
    pub(crate) fn new(resume_wait: Duration, max_attempts: u32, now: Instant) -> Self {
        let retries = usize::try_from(max_attempts.saturating_sub(1)).unwrap_or(usize::MAX);
        Self {
            resume_wait,
            transient: waits(TRANSIENT_BASE).with_max_times(retries).build(),
            resuming: waits(RESUMING_BASE).without_max_times().build(),
            attempts: 1,
            resuming_since: None,
            started: now,
        }
    }

    /// How long to wait before the next attempt after `error`, seen at
    /// `now`, or `None` to give up.
    ///
    /// - Resuming: exponential waits from 250 ms (at most 5 s) until
    ///   `resume_wait` has passed since the first "resuming" answer; the
    ///   last wait ends at that deadline, so one attempt is made at it.
    /// - Transient: exponential waits from 100 ms (at most 5 s), up to
    ///   `max_attempts` attempts in all (resuming answers not counted).
    pub(crate) fn next(&mut self, error: &DataApiError, now: Instant) -> Option<Duration> {
        let wait = match error.retry() {
            Retry::Resuming => {
                let since = *self.resuming_since.get_or_insert(now);
                let remaining = self
                    .resume_wait
                    .checked_sub(now.saturating_duration_since(since))
                    .filter(|r| !r.is_zero())?;
                self.resuming.next()?.min(remaining)
            }
            Retry::Transient => self.transient.next()?,
            Retry::No => return None,
        };
        self.attempts += 1;
        Some(wait)
    }

    /// What was tried by `now`, for the message of the final error.
    pub(crate) fn summary(&self, now: Instant) -> String {
        format!(
            "after {} attempt{} over {:.1?}",
            self.attempts,
            if self.attempts == 1 { "" } else { "s" },
            now.saturating_duration_since(self.started)
        )
    }
}

#[cfg(test)]
mod tests {
    use aws_common::AwsError;

    use super::*;
    use crate::error::Op;

    fn resuming() -> DataApiError {
        DataApiError::Resuming {
            op: Op::Execute,
            message: "resuming".into(),
        }
    }

    fn throttled() -> DataApiError {
        AwsError::Throttled {
            op: "ExecuteStatement",
            code: "ThrottlingException".into(),
            message: "slow down".into(),
            source: None,
        }
        .into()
    }

    #[test]
    fn transient_failures_get_max_attempts() {
        let now = Instant::now();
        let mut b = Backoff::new(Duration::from_secs(60), 3, now);
        let waits: Vec<_> = std::iter::from_fn(|| b.next(&throttled(), now)).collect();
        assert_eq!(waits.len(), 2, "three attempts in all");
        assert!(waits.iter().all(|w| *w <= MAX_WAIT));
        assert!(waits[0] >= TRANSIENT_BASE / 2 && waits[0] <= TRANSIENT_BASE);
        assert!(b.summary(now).starts_with("after 3 attempts"));
        let rejected: DataApiError = AwsError::Rejected {
            op: "ExecuteStatement",
            code: "BadRequestException".into(),
            message: "no".into(),
        }
        .into();
        assert_eq!(
            Backoff::new(Duration::from_secs(60), 3, now).next(&rejected, now),
            None
        );
    }

    #[test]
    fn resuming_waits_until_the_deadline() {
        let resume_wait = Duration::from_secs(30);
        let mut now = Instant::now();
        let mut b = Backoff::new(resume_wait, 1, now);
        let mut waits = Vec::new();
        while let Some(wait) = b.next(&resuming(), now) {
            assert!(wait <= MAX_WAIT);
            waits.push(wait);
            now += wait;
            assert!(waits.len() < 100, "gives up");
        }
        // Growing waits, the last one cut to end at the deadline.
        assert!(waits[0] >= RESUMING_BASE / 2 && waits[0] <= RESUMING_BASE);
        assert_eq!(waits.iter().sum::<Duration>(), resume_wait);
        // Resuming answers do not use up the transient attempts... but the
        // transient budget (1 attempt) is spent at once.
        assert_eq!(b.next(&throttled(), now), None);
        assert!(b.summary(now).contains("attempts over 30.0s"));
    }
}
