//! The one retry policy of fedflow's calls, on `backon`: exponential backoff with ±50 % jitter,
//! bounded. [`crate::party::PartyClient::send`] applies [`backoff`] to every party call (the
//! gateway forwards once, callers do not loop); senders that keep their own count of failed
//! attempts (the outbox, which persists it) take the delay of their next try from
//! [`outbox`]'s schedule with [`Backoff::nth`].
//!
//! Only failures that may pass are retried ([`Retry`]): a refusal (`INVALID_ARGUMENT`,
//! `FAILED_PRECONDITION`, `PERMISSION_DENIED`, …) is an answer and is never sent again.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder, Retryable};
use rand::Rng;

use crate::error::RemoteError;

/// Which failures of a call are worth another try.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// The peer was not reached or did not answer in time (`UNAVAILABLE`, `DEADLINE_EXCEEDED`,
    /// `UNKNOWN`, `CANCELLED`): [`RemoteError::is_transient`].
    Transient,
    /// Only a call that did not reach the peer (`UNAVAILABLE`, `UNKNOWN`). A call that timed
    /// out may still be running there, and is left to the caller's repair (a task start).
    Unreached,
    /// Never (a probe: one try is the answer).
    Never,
}

impl Retry {
    /// Whether `error` is worth another try under this rule.
    pub fn allows(self, error: &RemoteError) -> bool {
        match self {
            Retry::Transient => error.is_transient(),
            Retry::Unreached => {
                matches!(error.code, tonic::Code::Unavailable | tonic::Code::Unknown)
            }
            Retry::Never => false,
        }
    }
}

/// An exponential schedule (`first`, doubling, at most `max` per step) whose every delay is
/// jittered by a random factor in [0.5, 1.5), so peers that failed together do not retry
/// together. As a [`BackoffBuilder`] it yields at most `retries` delays (unbounded: `None`).
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    retries: Option<usize>,
}

impl Backoff {
    pub const fn new(first: Duration, max: Duration, retries: Option<usize>) -> Backoff {
        Backoff {
            first,
            max,
            retries,
        }
    }

    /// How many delays the schedule yields: a call is tried once more than this.
    pub fn retries(&self) -> Option<usize> {
        self.retries
    }

    fn exponential(&self) -> ExponentialBuilder {
        let builder = ExponentialBuilder::new()
            .with_min_delay(self.first)
            .with_max_delay(self.max)
            .with_factor(2.0);
        match self.retries {
            Some(n) => builder.with_max_times(n),
            None => builder.without_max_times(),
        }
    }

    /// The `n`th delay of the schedule (0: `first`), jittered, whatever `retries` says: for a
    /// sender that counts its failed attempts itself.
    pub fn nth(&self, n: u32) -> Duration {
        // The steps stop growing at `max` long before 64 doublings.
        let step = self
            .exponential()
            .without_max_times()
            .build()
            .nth(usize::try_from(n.min(64)).unwrap_or(64))
            .unwrap_or(self.max);
        jitter(step)
    }
}

fn jitter(step: Duration) -> Duration {
    step.mul_f64(rand::rng().random_range(0.5..1.5))
}

/// The delays of one [`Backoff`], jittered.
#[derive(Debug)]
pub struct Delays(ExponentialBackoff);

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        self.0.next().map(jitter)
    }
}

impl BackoffBuilder for Backoff {
    type Backoff = Delays;

    fn build(self) -> Delays {
        Delays(self.exponential().build())
    }
}

/// The policy of a live call: five tries, 50 ms doubling (to at most 1 s) between them, about
/// 0.75 s in all; what the scheduler's callers used to do around each call.
pub fn backoff() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_secs(1), Some(4))
}

/// A worker's status report: 60 tries, 50 ms doubling (to at most 2 s) between them, about
/// 1.9 minutes in all, long enough for its task-controller to restart.
pub fn worker_report() -> Backoff {
    Backoff::new(Duration::from_millis(50), Duration::from_secs(2), Some(59))
}

/// The outbox's schedule: after `n` failed deliveries the next comes after
/// `outbox().nth(n)`, 200 ms doubling per failure to at most 30 s, ±50 %; never given up.
pub fn outbox() -> Backoff {
    Backoff::new(Duration::from_millis(200), Duration::from_secs(30), None)
}

/// Runs `attempt` until it succeeds, fails in a way `rule` does not retry, or `policy` is
/// spent; the last result is returned. `what` names the call in the debug log of retries.
pub async fn run<T, F, Fut>(
    policy: Backoff,
    rule: Retry,
    what: &str,
    attempt: F,
) -> Result<T, RemoteError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, RemoteError>>,
{
    run_if(policy, |e: &RemoteError| rule.allows(e), what, attempt).await
}

/// [`run`] for an attempt whose errors `retryable` judges (an outbox delivery, whose `Err` is
/// always a party that could not be reached).
pub async fn run_if<T, E, W, F, Fut>(
    policy: Backoff,
    retryable: W,
    what: &str,
    attempt: F,
) -> Result<T, E>
where
    E: std::fmt::Display,
    W: FnMut(&E) -> bool,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    attempt
        .retry(policy)
        .when(retryable)
        .notify(|e: &E, pause: Duration| {
            tracing::debug!(call = %what, error = %e, pause_ms = pause.as_millis() as u64, "call failed; retrying");
        })
        .await
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn error(code: tonic::Code) -> RemoteError {
        RemoteError {
            code,
            message: "test".into(),
        }
    }

    async fn tries(
        rule: Retry,
        fail: tonic::Code,
        failures: u32,
    ) -> (u32, Result<(), RemoteError>) {
        let count = AtomicU32::new(0);
        let result = run(backoff(), rule, "test", || async {
            if count.fetch_add(1, Ordering::SeqCst) < failures {
                Err(error(fail))
            } else {
                Ok(())
            }
        })
        .await;
        (count.load(Ordering::SeqCst), result)
    }

    #[tokio::test]
    async fn unavailable_is_retried_until_it_answers() {
        let (n, result) = tries(Retry::Transient, tonic::Code::Unavailable, 3).await;
        assert_eq!(n, 4, "three failures, then the answer");
        assert!(result.is_ok());
    }

    #[tokio::test]
    async fn a_refusal_is_never_retried() {
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::FailedPrecondition,
            tonic::Code::PermissionDenied,
            tonic::Code::Unauthenticated,
            tonic::Code::NotFound,
            tonic::Code::AlreadyExists,
        ] {
            for rule in [Retry::Transient, Retry::Unreached] {
                let (n, result) = tries(rule, code, 10).await;
                assert_eq!(n, 1, "{code:?} under {rule:?} is tried once");
                assert_eq!(result.expect_err("refused").code, code);
            }
        }
    }

    #[tokio::test]
    async fn retries_are_bounded_to_five_tries_in_about_a_second() {
        let started = std::time::Instant::now();
        let (n, result) = tries(Retry::Transient, tonic::Code::Unavailable, u32::MAX).await;
        assert_eq!(n, 5, "five tries in all");
        assert_eq!(
            result.expect_err("never reached").code,
            tonic::Code::Unavailable
        );
        let took = started.elapsed();
        // 50 + 100 + 200 + 400 ms, each ±50 %.
        assert!(
            took >= Duration::from_millis(375) && took < Duration::from_millis(1_500),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn a_timeout_is_retried_only_where_the_call_says_so() {
        let (n, _) = tries(Retry::Transient, tonic::Code::DeadlineExceeded, 1).await;
        assert_eq!(n, 2);
        let (n, _) = tries(Retry::Unreached, tonic::Code::DeadlineExceeded, 1).await;
        assert_eq!(n, 1, "a start that timed out is left to the repair pass");
        let (n, _) = tries(Retry::Unreached, tonic::Code::Unavailable, 1).await;
        assert_eq!(n, 2);
        let (n, _) = tries(Retry::Never, tonic::Code::Unavailable, 1).await;
        assert_eq!(n, 1, "a probe is one try");
    }

    #[test]
    fn the_outbox_schedule_doubles_from_200_ms_to_30_s_with_jitter() {
        let schedule = outbox();
        assert_eq!(schedule.retries(), None, "the outbox never gives up");
        for _ in 0..200 {
            let within = |n: u32, base_ms: u64| {
                let d = schedule.nth(n);
                let (lo, hi) = (
                    Duration::from_millis(base_ms / 2),
                    Duration::from_millis(base_ms * 3 / 2),
                );
                // The steps are computed in f32 seconds: allow a microsecond either way.
                let slack = Duration::from_micros(1);
                assert!(d + slack >= lo && d <= hi + slack, "nth({n}) = {d:?}");
            };
            within(0, 200);
            within(1, 400);
            within(3, 1_600);
            within(7, 25_600);
            within(8, 30_000);
            within(1_000, 30_000);
            within(u32::MAX, 30_000);
        }
    }

    #[test]
    fn a_worker_report_waits_up_to_2_s_between_its_60_tries() {
        let delays: Vec<_> = worker_report().build().collect();
        assert_eq!(delays.len(), 59);
        for (n, d) in delays.iter().enumerate() {
            let base = (50u64 << n.min(6)).min(2_000);
            assert!(
                *d >= Duration::from_micros(base * 500 - 1)
                    && *d <= Duration::from_micros(base * 1_500 + 1),
                "delay {n}: {d:?} for {base} ms"
            );
        }
    }

    #[test]
    fn a_live_call_yields_four_jittered_delays() {
        let delays: Vec<_> = backoff().build().collect();
        assert_eq!(delays.len(), 4);
        for (d, base) in delays.iter().zip([50u64, 100, 200, 400]) {
            assert!(
                *d >= Duration::from_micros(base * 500 - 1)
                    && *d <= Duration::from_micros(base * 1_500 + 1),
                "{d:?} for {base} ms"
            );
        }
    }
}
