//! Heartbeat verdicts: a running attempt's worker is alive while its process is (same pid and
//! start time) and it heartbeats; a gone process fails the task as `worker lost`, a silence
//! longer than the timeout fails it as `worker unresponsive` and kills the worker. The last
//! beats are kept in memory only ([`Heartbeats`]): a restarted task-controller gives every
//! worker a fresh grace period. The caller passes the time in; nothing here reads a clock.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use fedflow_core::TaskStatus;

use super::attempt::Move;
use super::{Task, TaskKey};

/// The monitor's verdict on one running row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Alive,
    /// The recorded worker process is gone: the attempt fails (nothing left to kill).
    Lost(Move),
    /// Silent too long: the attempt fails and its worker is killed.
    Unresponsive(Move),
}

/// `alive`: the recorded worker process still exists (meaningless while none is recorded,
/// `pid == 0`); `silent`: how long since its last heartbeat.
pub fn verdict(task: &Task, alive: bool, silent: Duration, timeout: Duration) -> Verdict {
    if task.pid != 0 && !alive {
        Verdict::Lost(Move {
            from: TaskStatus::Running,
            to: TaskStatus::Failed,
            reason: format!("worker lost: process {} is gone", task.pid),
            output: None,
            kill: false,
        })
    } else if silent > timeout {
        Verdict::Unresponsive(Move {
            from: TaskStatus::Running,
            to: TaskStatus::Failed,
            reason: format!(
                "worker unresponsive: no heartbeat for {} ms",
                silent.as_millis()
            ),
            output: None,
            kill: true,
        })
    } else {
        Verdict::Alive
    }
}

/// The last heartbeat of each running attempt.
#[derive(Debug, Default)]
pub struct Heartbeats {
    last: HashMap<TaskKey, Instant>,
}

impl Heartbeats {
    pub fn touch(&mut self, key: &TaskKey, now: Instant) {
        self.last.insert(key.clone(), now);
    }

    /// The attempt ended: its beats no longer matter.
    pub fn forget(&mut self, key: &TaskKey) {
        self.last.remove(key);
    }

    /// How long `key` has been silent; an attempt never seen before starts its grace period
    /// now.
    pub fn silent(&mut self, key: &TaskKey, now: Instant) -> Duration {
        let last = *self.last.entry(key.clone()).or_insert(now);
        now.saturating_duration_since(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(pid: u32) -> Task {
        let mut task = crate::domain::host_task("j1", "train", "9999");
        task.party_status = TaskStatus::Running;
        task.pid = pid;
        task
    }

    fn failed(reason: &str, kill: bool) -> Move {
        Move {
            from: TaskStatus::Running,
            to: TaskStatus::Failed,
            reason: reason.into(),
            output: None,
            kill,
        }
    }

    #[test]
    fn a_worker_is_judged_by_its_process_first_then_its_silence() {
        let timeout = Duration::from_millis(1000);
        let quiet = Duration::from_millis(1500);
        let fresh = Duration::from_millis(10);
        let lost = Verdict::Lost(failed("worker lost: process 42 is gone", false));
        let unresponsive = Verdict::Unresponsive(failed(
            "worker unresponsive: no heartbeat for 1500 ms",
            true,
        ));
        // (pid, process alive, silent for, verdict)
        let cases = [
            (42, true, fresh, Verdict::Alive),
            (42, true, timeout, Verdict::Alive),
            (42, true, quiet, unresponsive.clone()),
            (42, false, fresh, lost.clone()),
            (42, false, quiet, lost),
            // No worker recorded yet (a launch in flight, or the benchmark engine): only the
            // silence counts.
            (0, false, fresh, Verdict::Alive),
            (0, false, quiet, unresponsive),
        ];
        for (pid, alive, silent, expected) in cases {
            assert_eq!(
                verdict(&running(pid), alive, silent, timeout),
                expected,
                "pid {pid} alive {alive} silent {silent:?}"
            );
        }
    }

    #[test]
    fn silence_counts_from_the_last_beat_or_from_first_sight() {
        let key = running(1).key;
        let t0 = Instant::now();
        let mut beats = Heartbeats::default();
        assert_eq!(beats.silent(&key, t0), Duration::ZERO, "first sight");
        assert_eq!(
            beats.silent(&key, t0 + Duration::from_secs(3)),
            Duration::from_secs(3)
        );
        beats.touch(&key, t0 + Duration::from_secs(4));
        assert_eq!(
            beats.silent(&key, t0 + Duration::from_secs(5)),
            Duration::from_secs(1)
        );
        beats.forget(&key);
        assert_eq!(
            beats.silent(&key, t0 + Duration::from_secs(9)),
            Duration::ZERO
        );
    }
}
