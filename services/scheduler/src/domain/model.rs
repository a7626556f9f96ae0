//! The scheduler's domain types: the job, task and party-task rows it keeps, the validated
//! requests its use cases take, and the pure rules of what a job status change also writes.
//!
//! Nothing here does I/O. `store` maps rows into these types and writes what
//! [`JobTransition::effects`] and [`TaskTransition::effects`] decide; `grpc` converts protobuf
//! requests into the request types once, on arrival.

use fedflow_core::ids::{ComponentName, JobId, Participant, PartyId, Role, TaskKey};
use fedflow_core::{JobStatus, TaskStatus};

/// A job this party schedules.
#[derive(Debug, Clone)]
pub struct Job {
    pub job_id: String,
    pub status: JobStatus,
    pub dsl: String,
    pub conf: String,
    pub initiator: Participant,
    pub priority: i32,
    /// Why the job ended as it did.
    pub reason: String,
    /// Why a waiting job has not started.
    pub pending_reason: String,
    /// A stop was asked for: no new task starts, the job ends canceled.
    pub cancel_requested: bool,
    pub progress: i32,
    pub request_id: Option<String>,
    pub create_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    /// When the job last entered the queue (submit or rerun).
    pub queued_ms: i64,
}

/// One component of a job in one version, with its federated status.
#[derive(Debug, Clone)]
pub struct Task {
    pub job_id: String,
    pub component: String,
    pub version: i32,
    pub module: String,
    pub status: TaskStatus,
    pub reason: String,
    /// Automatic retries left after this version.
    pub retries_left: u32,
    /// A retry does not start before this time (its delay), epoch ms; 0 = at once.
    pub not_before_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
}

/// One party's own status of a task version.
#[derive(Debug, Clone)]
pub struct TaskParty {
    pub job_id: String,
    pub component: String,
    pub version: i32,
    pub who: Participant,
    pub status: TaskStatus,
    pub reason: String,
    pub update_ms: i64,
}

/// A job as a client sees it: the row and the parties its runtime conf names (read from the
/// app's cached spec, never parsed per row).
#[derive(Debug, Clone)]
pub struct JobView {
    pub job: Job,
    pub parties: Vec<Participant>,
}

/// A job status change, `from -> to`, as a compare-and-set applies it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobTransition {
    pub from: JobStatus,
    pub to: JobStatus,
}

/// The columns a job status change writes besides the status; `None` keeps the stored value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobUpdate {
    /// A new reason replaces the old one; an empty one keeps it (a stop's reason survives
    /// the cancel that follows it).
    pub reason: Option<String>,
    /// Only a waiting job has a pending reason: any other status clears it.
    pub pending_reason: Option<String>,
    /// Set on entering running.
    pub start_ms: Option<i64>,
    /// Set on an end status, cleared (0) on any other.
    pub end_ms: i64,
    /// A success is 100 % done.
    pub progress: Option<i32>,
    /// Entering waiting (re)starts the queue clock.
    pub queued_ms: Option<i64>,
}

impl JobTransition {
    pub fn new(from: JobStatus, to: JobStatus) -> JobTransition {
        JobTransition { from, to }
    }

    /// What entering `self.to` at `now` (epoch ms) with `reason` writes.
    pub fn effects(&self, reason: &str, now: i64) -> JobUpdate {
        let to = self.to;
        JobUpdate {
            reason: (!reason.is_empty()).then(|| reason.to_owned()),
            pending_reason: (to != JobStatus::Waiting).then(String::new),
            start_ms: (to == JobStatus::Running).then_some(now),
            end_ms: if to.is_end() { now } else { 0 },
            progress: (to == JobStatus::Success).then_some(100),
            queued_ms: (to == JobStatus::Waiting).then_some(now),
        }
    }
}

/// A task version's federated status change, `task.status -> to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskTransition {
    pub from: TaskStatus,
    pub to: TaskStatus,
}

/// The columns a task status change writes besides the status and reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskUpdate {
    /// Set on entering running; otherwise kept.
    pub start_ms: Option<i64>,
    /// Set on an end status, cleared (0) on any other.
    pub end_ms: i64,
}

impl TaskTransition {
    pub fn new(from: TaskStatus, to: TaskStatus) -> TaskTransition {
        TaskTransition { from, to }
    }

    /// What entering `self.to` at `now` (epoch ms) writes.
    pub fn effects(&self, now: i64) -> TaskUpdate {
        TaskUpdate {
            start_ms: (self.to == TaskStatus::Running).then_some(now),
            end_ms: if self.to.is_end() { now } else { 0 },
        }
    }
}

/// `SubmitJob`: a DSL and runtime conf to validate and schedule.
#[derive(Debug, Clone)]
pub struct SubmitJob {
    pub dsl: String,
    pub conf: String,
    /// Empty: none given (a repeat submits again).
    pub request_id: String,
}

/// `GetJob`.
#[derive(Debug, Clone)]
pub struct GetJob {
    pub job_id: JobId,
    pub include_conf: bool,
}

/// `ListJobs`: the newest `limit` jobs (0: the default).
#[derive(Debug, Clone, Copy)]
pub struct ListJobs {
    pub limit: u32,
}

/// `StopJob`.
#[derive(Debug, Clone)]
pub struct StopJob {
    pub job_id: JobId,
}

/// `RerunJob`: the named component (or every failed one, or with `force` every one) and
/// everything downstream of it.
#[derive(Debug, Clone)]
pub struct RerunJob {
    pub job_id: JobId,
    /// None: every failed component (every one with `force`).
    pub component: Option<ComponentName>,
    pub force: bool,
    pub request_id: String,
}

/// `ListTasks`.
#[derive(Debug, Clone)]
pub struct ListTasks {
    pub job_id: JobId,
    pub all_versions: bool,
}

/// `GetTaskOutput`: one component's output on one participant.
#[derive(Debug, Clone)]
pub struct GetTaskOutput {
    pub job_id: JobId,
    pub component: ComponentName,
    pub role: Role,
    pub party_id: PartyId,
}

/// `WatchJob`: one job's events, or (`None`) every job's.
#[derive(Debug, Clone)]
pub struct WatchJob {
    pub job_id: Option<JobId>,
}

/// `ReportTaskStatus`: a party's own status of one task version.
#[derive(Debug, Clone)]
pub struct ReportTaskStatus {
    pub key: TaskKey,
    pub status: TaskStatus,
    pub reason: String,
}

/// The participant `party_id` in `role`, as the app's methods take it.
pub fn participant(role: Role, party_id: &PartyId) -> Participant {
    Participant {
        role: role.as_str().to_owned(),
        party_id: party_id.as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests;
