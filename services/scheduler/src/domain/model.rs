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

/// `ListJobs`: one page of the jobs that match every filter, newest first.
#[derive(Debug, Clone, Default)]
pub struct ListJobs {
    /// Jobs per page (0: the default).
    pub limit: u32,
    pub filter: JobFilter,
    /// Continue after this job; None: the first page.
    pub after: Option<Cursor>,
}

/// What a listed job must match; each empty or zero field matches every job.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobFilter {
    /// Any of these statuses.
    pub statuses: Vec<JobStatus>,
    /// A participant in this role.
    pub role: Option<Role>,
    /// This party as a participant (in `role`, when given).
    pub party_id: Option<PartyId>,
    /// `create_ms >= submitted_after_ms`.
    pub submitted_after_ms: i64,
    /// `create_ms < submitted_before_ms`.
    pub submitted_before_ms: i64,
    /// A case-insensitive substring of the job id, `[A-Za-z0-9_-]*`.
    pub text: String,
}

/// A position in the job list's order (create time, then job id, both descending): the last
/// job of a page. Encoded into an opaque page token (hex of `create_ms:job_id`) so clients do
/// not build their own; a job submitted later sorts before every cursor, so it never shifts
/// the pages after one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub create_ms: i64,
    pub job_id: JobId,
}

impl Cursor {
    pub fn of(job: &Job) -> Option<Cursor> {
        Some(Cursor {
            create_ms: job.create_ms,
            job_id: JobId::try_from(job.job_id.clone()).ok()?,
        })
    }

    pub fn to_token(&self) -> String {
        format!("{}:{}", self.create_ms, self.job_id.as_str())
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The cursor of a token [`Cursor::to_token`] made; the error says what is wrong with it.
    pub fn from_token(token: &str) -> Result<Cursor, &'static str> {
        let bytes = token.as_bytes();
        if !bytes.len().is_multiple_of(2) || bytes.len() > 128 {
            return Err("not a page token this scheduler made");
        }
        let text = bytes
            .chunks(2)
            .map(|pair| {
                std::str::from_utf8(pair)
                    .ok()
                    .and_then(|hex| u8::from_str_radix(hex, 16).ok())
                    .map(char::from)
            })
            .collect::<Option<String>>()
            .ok_or("not a page token this scheduler made")?;
        let (ms, job_id) = text
            .split_once(':')
            .ok_or("not a page token this scheduler made")?;
        let create_ms = ms
            .parse::<i64>()
            .map_err(|_| "not a page token this scheduler made")?;
        let job_id = JobId::try_from(job_id.to_owned())
            .map_err(|_| "not a page token this scheduler made")?;
        Ok(Cursor { create_ms, job_id })
    }
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
