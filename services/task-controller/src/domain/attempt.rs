//! One attempt's lifecycle on this party: a start claims a waiting row (`waiting -> running`
//! with a fresh token) or passes it, the engine launches the worker, and the attempt ends by
//! the worker's report, its exit without one, a stop, or a failure to launch. Each function
//! takes the row as read and returns what to write ([`Move`], applied with a compare-and-set on
//! `from`) and which effects follow; the caller performs them. Terminal statuses absorb.

use fedflow_core::{TaskStatus, Transition};

use super::{Task, TaskKey};

/// A move of a row's party status: written with a compare-and-set on `from`, in the same
/// transaction as the report of `to` to the job's scheduler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Move {
    pub from: TaskStatus,
    pub to: TaskStatus,
    pub reason: String,
    /// The data output to record; `None` keeps the row's.
    pub output: Option<String>,
    /// Once the move is written, the attempt's worker must be stopped (its process group
    /// killed and confirmed gone).
    pub kill: bool,
}

impl Move {
    fn new(from: TaskStatus, to: TaskStatus, reason: impl Into<String>) -> Move {
        Move {
            from,
            to,
            reason: reason.into(),
            output: None,
            kill: false,
        }
    }

    /// The row's times written with the move: see [`stamps`].
    pub fn stamps(&self, now: i64) -> Stamps {
        stamps(self.to, now)
    }
}

/// The times a status write sets: `start_ms` when the row starts running (`None` keeps the
/// stored one), `end_ms` when it ends (0 otherwise).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamps {
    pub start_ms: Option<i64>,
    pub end_ms: i64,
}

/// See [`Stamps`].
pub fn stamps(to: TaskStatus, now: i64) -> Stamps {
    Stamps {
        start_ms: (to == TaskStatus::Running).then_some(now),
        end_ms: if to.is_end() { now } else { 0 },
    }
}

/// The claim of a new attempt: `waiting -> running`, its token stored in the same
/// compare-and-set, so of two concurrent starts exactly one wins.
pub const CLAIM: (TaskStatus, TaskStatus) = (TaskStatus::Waiting, TaskStatus::Running);

/// The audit cause of a claim.
pub const CLAIM_REASON: &str = "attempt claimed";

/// What a `StartTask` does to a row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The row is past waiting: nothing happens, the start answers its party status.
    Answer(TaskStatus),
    /// `need_run: false`: the row passes without a worker.
    Pass(Move),
    /// Claim a new attempt ([`CLAIM`]), then launch its worker.
    Claim,
}

pub fn start(task: &Task) -> Start {
    if task.party_status != TaskStatus::Waiting {
        Start::Answer(task.party_status)
    } else if !task.need_run {
        Start::Pass(Move::new(
            TaskStatus::Waiting,
            TaskStatus::Pass,
            "need_run is false",
        ))
    } else {
        Start::Claim
    }
}

/// A claimed attempt whose worker could not be launched fails.
pub fn not_launched(error: &str) -> Move {
    Move::new(
        TaskStatus::Running,
        TaskStatus::Failed,
        format!("could not start worker: {error}"),
    )
}

/// A claimed attempt whose inputs could not be resolved: failed, with no worker started.
pub fn inputs_unresolved(why: &str) -> Move {
    Move::new(
        TaskStatus::Running,
        TaskStatus::Failed,
        format!("inputs: {why}"),
    )
}

/// A claimed attempt after its worker was launched: `recorded` says whether the worker was
/// stored as the attempt's (false: the attempt moved on while the worker started, reported
/// by a fast worker or stopped, and the new process must not run on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Launched {
    /// Watch the worker until it exits.
    Watch,
    /// Stop the worker just started; the attempt's outcome is already recorded.
    Stop,
}

pub fn launched(recorded: bool) -> Launched {
    if recorded {
        Launched::Watch
    } else {
        Launched::Stop
    }
}

/// Whether `token` is the row's current attempt's (an empty one never is).
pub fn holds_token(task: &Task, token: &str) -> bool {
    !token.is_empty() && !task.token.is_empty() && task.token == token
}

/// What a worker's report of `to` does to its (authenticated) attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    /// `running`: a sign of life, nothing to write.
    Beat,
    /// The row already has `to`: nothing to write, a harmless repeat.
    Unchanged,
    /// The attempt ends.
    End(Move),
    /// A worker cannot make this move; the message says why.
    Refuse(String),
}

pub fn report(task: &Task, to: TaskStatus, reason: &str, output: &str) -> Report {
    if to == TaskStatus::Running {
        return Report::Beat;
    }
    match task.party_status.apply(to) {
        Ok(Transition::AlreadyThere) => Report::Unchanged,
        Ok(Transition::Changed) if task.party_status == TaskStatus::Running => {
            let mut end = Move::new(TaskStatus::Running, to, reason);
            end.output = (!output.is_empty()).then(|| output.to_owned());
            Report::End(end)
        }
        _ => Report::Refuse(format!(
            "task {} is {}, a worker cannot move it to {to}",
            task.key, task.party_status
        )),
    }
}

/// A worker's heartbeat: whether it should run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Beat {
    /// Its attempt is current and running: record the beat.
    Alive,
    /// Its attempt is stale or ended: the worker should exit.
    Stop,
}

/// `authentic`: the beat carries the row's current token.
pub fn beat(task: Option<&Task>, authentic: bool) -> Beat {
    match task {
        Some(task) if authentic && task.party_status == TaskStatus::Running => Beat::Alive,
        _ => Beat::Stop,
    }
}

/// How a worker process ended, as the reaper saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal(i32),
    /// Neither a code nor a signal.
    Unknown,
    /// Waiting for the process failed.
    Error(String),
}

/// A worker of attempt `token` exited: if that attempt still runs, it failed without a word
/// (a worker that reported first already moved it on).
pub fn exited(task: &Task, token: &str, exit: &Exit) -> Option<Move> {
    if task.party_status != TaskStatus::Running || task.token != token {
        return None;
    }
    let reason = match exit {
        Exit::Code(code) => {
            format!("worker lost: exited with code {code} without reporting a result")
        }
        Exit::Signal(signal) => format!("worker lost: killed by signal {signal}"),
        Exit::Unknown => "worker lost".to_owned(),
        Exit::Error(e) => format!("worker lost: {e}"),
    };
    Some(Move::new(TaskStatus::Running, TaskStatus::Failed, reason))
}

/// Which rows of a job a `StopTasks` is about: one role's, one component's or all, one
/// version's or all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Which {
    pub role: String,
    pub component: Option<String>,
    pub version: Option<i32>,
}

impl Which {
    pub fn covers(&self, key: &TaskKey) -> bool {
        key.role == self.role
            && self.component.as_ref().is_none_or(|c| *c == key.component)
            && self.version.is_none_or(|v| v == key.version)
    }
}

/// A stop may end rows only as canceled, failed or timeout.
pub fn check_stop_status(to: TaskStatus) -> Result<(), String> {
    if to.is_interrupt() {
        Ok(())
    } else {
        Err(format!(
            "stop status must be canceled, failed or timeout, not {to}"
        ))
    }
}

/// What a stop does to one row: a waiting or running row it covers ends as `to`; a running
/// one's worker is then killed. Ended rows and rows it does not cover are left alone.
pub fn stop(task: &Task, which: &Which, to: TaskStatus, reason: &str) -> Option<Move> {
    if !which.covers(&task.key) || task.party_status.is_end() {
        return None;
    }
    let mut end = Move::new(task.party_status, to, reason);
    end.kill = task.party_status == TaskStatus::Running;
    Some(end)
}

/// A claimed attempt found running without a recorded worker (its task-controller stopped
/// between the claim and the record): adopt the worker found for it, or start the one
/// worker the attempt never got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery<W> {
    /// The row has its worker: nothing to recover.
    Recorded,
    Adopt(W),
    Relaunch,
}

pub fn recover<W>(task: &Task, found: impl FnOnce() -> Option<W>) -> Recovery<W> {
    if task.party_status != TaskStatus::Running || task.pid != 0 {
        return Recovery::Recorded;
    }
    match found() {
        Some(worker) => Recovery::Adopt(worker),
        None => Recovery::Relaunch,
    }
}

#[cfg(test)]
mod tests;
