//! Job and task statuses and the one transition table every service checks before it writes a
//! status (with a compare-and-set). Names and tables follow FATE-Flow 1.x so its users and tools
//! recognise them. A transition to the status a row already has is [`Transition::AlreadyThere`]:
//! callers treat it as a harmless success, never as an error.

use std::fmt;

lowercase_enum! {
    parse_err(UnknownStatus, UnknownStatus::job);
    derive();
    /// Status of a job, on a party or as decided by its scheduler.
    pub enum JobStatus {
        /// Created on a party, not yet confirmed by the scheduler.
        Ready,
        /// Queued until every party grants its resources.
        Waiting,
        Running,
        Success,
        Failed,
        Canceled,
        Timeout,
    }
}

lowercase_enum! {
    parse_err(UnknownStatus, UnknownStatus::task);
    derive();
    /// Status of a task version, on one party or federated across parties.
    pub enum TaskStatus {
        Waiting,
        Running,
        Success,
        Failed,
        Canceled,
        Timeout,
        /// Ran with nothing to do (`need_run: false`); counts as success.
        Pass,
    }
}

/// What applying a status to a row would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// The row moves to the new status.
    Changed,
    /// The row already has it: nothing to write, report success.
    AlreadyThere,
}

/// A transition the table forbids.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal {kind} status transition {from} -> {to}")]
pub struct InvalidTransition {
    pub kind: &'static str,
    pub from: String,
    pub to: String,
}

/// A status name that is not in the set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} status {value:?}")]
pub struct UnknownStatus {
    pub kind: &'static str,
    pub value: String,
}

impl UnknownStatus {
    fn job(value: &str) -> Self {
        Self::new("job", value)
    }

    fn task(value: &str) -> Self {
        Self::new("task", value)
    }

    fn new(kind: &'static str, value: &str) -> Self {
        UnknownStatus {
            kind,
            value: value.to_owned(),
        }
    }
}

impl JobStatus {
    /// An end status: the job does nothing more unless it is rerun.
    pub fn is_end(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failed | JobStatus::Canceled | JobStatus::Timeout
        )
    }

    /// FATE-Flow's job table (reference §3.2). End statuses go back to `waiting` only through
    /// a rerun; `timeout` may still be settled as failed or success.
    pub fn can_move_to(self, to: JobStatus) -> bool {
        use JobStatus::*;
        match self {
            Ready => matches!(to, Waiting | Canceled | Timeout | Failed),
            Waiting => matches!(to, Running | Canceled | Timeout | Failed | Success),
            Running => matches!(to, Canceled | Timeout | Failed | Success),
            Canceled | Failed | Success => matches!(to, Waiting),
            Timeout => matches!(to, Failed | Success | Waiting),
        }
    }

    /// Checks `self -> to` against the table.
    pub fn apply(self, to: JobStatus) -> Result<Transition, InvalidTransition> {
        transition("job", self, to, self.can_move_to(to))
    }
}

impl TaskStatus {
    pub fn is_end(self) -> bool {
        !matches!(self, TaskStatus::Waiting | TaskStatus::Running)
    }

    /// Success or pass: downstream components may start.
    pub fn is_success(self) -> bool {
        matches!(self, TaskStatus::Success | TaskStatus::Pass)
    }

    /// Failed, timeout or canceled.
    pub fn is_interrupt(self) -> bool {
        matches!(
            self,
            TaskStatus::Failed | TaskStatus::Timeout | TaskStatus::Canceled
        )
    }

    /// Severity among interrupt statuses: failed > timeout > canceled (reference §3.1).
    pub fn severity(self) -> u8 {
        match self {
            TaskStatus::Failed => 3,
            TaskStatus::Timeout => 2,
            TaskStatus::Canceled => 1,
            _ => 0,
        }
    }

    /// The task table, for party and federated statuses alike. fedflow departs from FATE-Flow
    /// (reference §3.3) in one place: a waiting task may also end canceled, failed or timeout,
    /// so a stop or a failure before the worker ran is recorded instead of leaving the row
    /// waiting for ever. Terminal statuses are absorbing: a rerun makes a new version.
    pub fn can_move_to(self, to: TaskStatus) -> bool {
        use TaskStatus::*;
        match self {
            Waiting => matches!(to, Running | Success | Pass | Canceled | Failed | Timeout),
            Running => matches!(to, Canceled | Timeout | Failed | Pass | Success),
            Timeout => matches!(to, Failed | Success),
            Canceled | Failed | Pass | Success => false,
        }
    }

    pub fn apply(self, to: TaskStatus) -> Result<Transition, InvalidTransition> {
        transition("task", self, to, self.can_move_to(to))
    }
}

/// `from -> to` for a table that says whether it is `legal`: staying put is always fine.
fn transition<S: PartialEq + fmt::Display>(
    kind: &'static str,
    from: S,
    to: S,
    legal: bool,
) -> Result<Transition, InvalidTransition> {
    if from == to {
        Ok(Transition::AlreadyThere)
    } else if legal {
        Ok(Transition::Changed)
    } else {
        Err(InvalidTransition {
            kind,
            from: from.to_string(),
            to: to.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use strum::IntoEnumIterator;

    use super::*;

    /// Every legal job transition, written out as the table the users know.
    const JOB_LEGAL: &[(JobStatus, JobStatus)] = {
        use JobStatus::*;
        &[
            (Ready, Waiting),
            (Ready, Canceled),
            (Ready, Timeout),
            (Ready, Failed),
            (Waiting, Running),
            (Waiting, Canceled),
            (Waiting, Timeout),
            (Waiting, Failed),
            (Waiting, Success),
            (Running, Canceled),
            (Running, Timeout),
            (Running, Failed),
            (Running, Success),
            (Canceled, Waiting),
            (Timeout, Failed),
            (Timeout, Success),
            (Timeout, Waiting),
            (Failed, Waiting),
            (Success, Waiting),
        ]
    };

    const TASK_LEGAL: &[(TaskStatus, TaskStatus)] = {
        use TaskStatus::*;
        &[
            (Waiting, Running),
            (Waiting, Success),
            (Waiting, Pass),
            (Waiting, Canceled),
            (Waiting, Failed),
            (Waiting, Timeout),
            (Running, Canceled),
            (Running, Timeout),
            (Running, Failed),
            (Running, Pass),
            (Running, Success),
            (Timeout, Failed),
            (Timeout, Success),
        ]
    };

    /// Checks every `from -> to` of `all` against `apply`: staying put is already there, a pair
    /// in `listed` changes the status, any other pair is illegal; and every listed pair is met.
    fn check_table<S: Copy + PartialEq + fmt::Display>(
        all: &[S],
        listed: &[(S, S)],
        apply: fn(S, S) -> Result<Transition, InvalidTransition>,
    ) {
        let mut legal = 0;
        for &from in all {
            for &to in all {
                let got = apply(from, to);
                match (from == to, listed.contains(&(from, to))) {
                    (true, _) => assert_eq!(got, Ok(Transition::AlreadyThere), "{from} -> {to}"),
                    (false, true) => {
                        legal += 1;
                        assert_eq!(got, Ok(Transition::Changed), "{from} -> {to}")
                    }
                    (false, false) => assert!(got.is_err(), "{from} -> {to} must be illegal"),
                }
            }
        }
        assert_eq!(legal, listed.len());
    }

    #[test]
    fn every_job_transition_is_legal_exactly_when_listed() {
        check_table(&JobStatus::ALL, JOB_LEGAL, JobStatus::apply);
    }

    #[test]
    fn every_task_transition_is_legal_exactly_when_listed() {
        check_table(&TaskStatus::ALL, TASK_LEGAL, TaskStatus::apply);
    }

    #[test]
    fn terminal_task_statuses_are_absorbing_under_random_sequences() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for _ in 0..2000 {
            let mut status = TaskStatus::Waiting;
            let mut ended: Option<TaskStatus> = None;
            for _ in 0..20 {
                let next = TaskStatus::ALL[rng.random_range(0..TaskStatus::ALL.len())];
                if let Ok(Transition::Changed) = status.apply(next) {
                    status = next;
                }
                if let Some(end) = ended {
                    // Only timeout may still settle (as failed or success), then nothing moves.
                    assert!(
                        status == end
                            || (end == TaskStatus::Timeout
                                && matches!(status, TaskStatus::Failed | TaskStatus::Success)),
                        "left terminal {end} for {status}"
                    );
                }
                if status.is_end() && ended.is_none_or(|e| e == TaskStatus::Timeout) {
                    ended = Some(status);
                }
            }
        }
    }

    #[test]
    fn status_names_are_fate_s() {
        let jobs: Vec<&str> = JobStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            jobs,
            [
                "ready", "waiting", "running", "success", "failed", "canceled", "timeout"
            ]
        );
        let tasks: Vec<&str> = TaskStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            tasks,
            [
                "waiting", "running", "success", "failed", "canceled", "timeout", "pass"
            ]
        );
        assert!(JobStatus::iter().eq(JobStatus::ALL));
        assert!(TaskStatus::iter().eq(TaskStatus::ALL));
        for status in JobStatus::ALL {
            assert_eq!(status.to_string(), status.as_str());
        }
        for status in TaskStatus::ALL {
            assert_eq!(status.to_string(), status.as_str());
        }
        assert_eq!(
            "Running".parse::<JobStatus>().map_err(|e| e.to_string()),
            Err(r#"unknown job status "Running""#.to_owned())
        );
        assert_eq!(
            "".parse::<TaskStatus>().map_err(|e| e.to_string()),
            Err(r#"unknown task status """#.to_owned())
        );
    }

    #[test]
    fn status_names_round_trip() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>(), Ok(status));
        }
        for status in TaskStatus::ALL {
            assert_eq!(status.as_str().parse::<TaskStatus>(), Ok(status));
        }
        assert!("done".parse::<JobStatus>().is_err());
        assert!("pending".parse::<TaskStatus>().is_err());
    }
}
