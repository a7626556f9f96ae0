//! What happens next to a running job: [`plan`] reads the job, its spec, the latest version of
//! each task with every party's own status, the job's limits and the time, and returns the
//! decisions of one round, in the order they are to be applied. The drive loop applies them
//! (each status write a compare-and-set) and plans again while a round changed something
//! ([`unsettled`]). Federated statuses follow `fedflow_core::aggregate` (fail fast, `pass`
//! counts as success); a component that is not run (`need_run: false`) is started like any
//! other and its party answers `pass`.

use std::collections::BTreeMap;

use fedflow_core::dsl::JobSpec;
use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus, Transition, aggregate};

use super::{Job, Task, TaskParty};
use crate::config::Scheduling;

/// Time limits (ms), retry policy and parallelism of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobLimits {
    /// Counted from the job's start.
    pub job_timeout_ms: i64,
    /// Counted from each task version's start.
    pub task_timeout_ms: i64,
    /// Counted from entering the queue.
    pub queue_timeout_ms: i64,
    /// Automatic retries of a failed or timed-out task (new versions).
    pub auto_retries: u32,
    /// A retry starts no sooner than this after the failure.
    pub retry_delay_ms: i64,
    /// How many tasks of the job may run at once (`task_parallelism`).
    pub parallelism: usize,
}

impl JobLimits {
    /// The initiator's job parameters, else the scheduler's defaults. (Not `From`: it reads
    /// two things.)
    pub fn from_spec(spec: &JobSpec, defaults: &Scheduling) -> Self {
        let params = spec.job_params(&spec.initiator).ok();
        let ms = |secs: Option<u64>, default: u64| {
            i64::try_from(secs.unwrap_or(default).saturating_mul(1000)).unwrap_or(i64::MAX)
        };
        JobLimits {
            job_timeout_ms: ms(
                params.as_ref().and_then(|p| p.timeout_secs),
                defaults.default_job_timeout_s,
            ),
            task_timeout_ms: ms(
                params.as_ref().and_then(|p| p.task_timeout_secs),
                defaults.default_task_timeout_s,
            ),
            queue_timeout_ms: ms(
                params.as_ref().and_then(|p| p.queue_timeout_secs),
                defaults.default_queue_timeout_s,
            ),
            auto_retries: params.as_ref().map_or(0, |p| p.auto_retries),
            retry_delay_ms: params
                .as_ref()
                .map_or(1000, |p| (p.auto_retry_delay_secs * 1000.0) as i64),
            parallelism: params.as_ref().map_or(1, |p| p.task_parallelism) as usize,
        }
    }
}

/// One task version of the job.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct TaskRef {
    pub component: String,
    pub version: i32,
}

impl TaskRef {
    pub fn of(task: &Task) -> Self {
        TaskRef {
            component: task.component.clone(),
            version: task.version,
        }
    }
}

/// One step of a round, applied in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// The version's federated status moves `from -> to`, derived from its party rows. An end
    /// status is announced to every party.
    SetTask {
        task: TaskRef,
        from: TaskStatus,
        to: TaskStatus,
        reason: String,
    },
    /// One party's row of the version moves `from -> to` (a task timeout decided here).
    SetParty {
        task: TaskRef,
        who: Participant,
        from: TaskStatus,
        to: TaskStatus,
        reason: String,
    },
    /// Stop the version's workers on every participant; each sets its rows to `status`.
    StopTask {
        task: TaskRef,
        status: TaskStatus,
        reason: String,
    },
    /// A new version of a failed (or timed-out) task, on every party.
    Retry(Attempt),
    /// The job's progress (percent of tasks ended) went up.
    RaiseProgress(i32),
    /// Move the version to running and start it on every participant.
    Start(TaskRef),
    /// The job ends; the reason is empty when the stored one stays.
    EndJob { status: JobStatus, reason: String },
    /// Plan again at this time (a retry delay or a time limit falls due).
    WakeAt(i64),
}

/// The next attempt at a failed (or timed-out) task version: a new version, not started
/// before `not_before_ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    pub failed: TaskRef,
    /// The failed version's status and reason.
    pub status: TaskStatus,
    pub reason: String,
    pub version: i32,
    pub retries_left: u32,
    pub not_before_ms: i64,
}

/// Whether the round changed something the next round must see: plan again at once.
pub fn unsettled(decisions: &[Decision]) -> bool {
    decisions.iter().any(|d| {
        matches!(
            d,
            Decision::SetParty { .. }
                | Decision::StopTask { .. }
                | Decision::Retry(_)
                | Decision::Start(_)
        )
    })
}

/// The latest version of each component.
pub fn latest(tasks: Vec<Task>) -> BTreeMap<String, Task> {
    let mut by_component: BTreeMap<String, Task> = BTreeMap::new();
    for task in tasks {
        match by_component.get(&task.component) {
            Some(existing) if existing.version >= task.version => {}
            _ => {
                by_component.insert(task.component.clone(), task);
            }
        }
    }
    by_component
}

/// The federated status a task version should move to, from its party rows, with the reason
/// (the first interrupted party's, for an interrupt). None when it stays.
pub fn federated_status(task: &Task, parties: &[TaskParty]) -> Option<(TaskStatus, String)> {
    let rows: Vec<&TaskParty> = parties
        .iter()
        .filter(|p| p.component == task.component && p.version == task.version)
        .collect();
    let statuses: Vec<TaskStatus> = rows.iter().map(|p| p.status).collect();
    let federated = aggregate::task_status(&statuses);
    if federated == task.status || !matches!(task.status.apply(federated), Ok(Transition::Changed))
    {
        return None;
    }
    let reason = if federated.is_interrupt() {
        rows.iter()
            .filter(|p| p.status == federated)
            .map(|p| {
                format!(
                    "component {} {} on {} {}: {}",
                    task.component, federated, p.who.role, p.who.party_id, p.reason
                )
            })
            .next()
            .unwrap_or_default()
    } else {
        String::new()
    };
    Some((federated, reason))
}

/// The decisions of one round for the job, in order: federated task statuses; then, for a
/// running job, the job timeout, task timeouts, retries, progress, the job's end, and the
/// tasks to start (within the parallelism, after their retry delay).
pub fn plan(
    job: &Job,
    spec: &JobSpec,
    latest: &BTreeMap<String, Task>,
    parties: &[TaskParty],
    limits: &JobLimits,
    now: i64,
) -> Vec<Decision> {
    let mut decisions = Vec::new();
    let mut latest = latest.clone();
    for task in latest.values_mut() {
        if let Some((to, reason)) = federated_status(task, parties) {
            decisions.push(Decision::SetTask {
                task: TaskRef::of(task),
                from: task.status,
                to,
                reason: reason.clone(),
            });
            task.status = to;
            task.reason = reason;
        }
    }
    if job.status != JobStatus::Running {
        return decisions;
    }
    if job.start_ms > 0 && now >= job.start_ms.saturating_add(limits.job_timeout_ms) {
        decisions.push(Decision::EndJob {
            status: JobStatus::Timeout,
            reason: format!(
                "job timeout: still running after {}s (timeout, counted from the job's start)",
                limits.job_timeout_ms / 1000
            ),
        });
        return decisions;
    }
    let timed_out = time_outs(&latest, parties, limits, now);
    if !timed_out.is_empty() {
        decisions.extend(timed_out);
        return decisions;
    }
    if !job.cancel_requested {
        let retries = retries(&latest, limits, now);
        if !retries.is_empty() {
            decisions.extend(retries);
            return decisions;
        }
    }
    let statuses: Vec<TaskStatus> = latest.values().map(|t| t.status).collect();
    let progress = aggregate::progress(&statuses);
    if progress > job.progress {
        decisions.push(Decision::RaiseProgress(progress));
    }
    let job_status = aggregate::job_status(&statuses, job.cancel_requested);
    if job_status.is_end() {
        let reason = match job_status {
            JobStatus::Success => String::new(),
            JobStatus::Canceled if job.cancel_requested => String::new(),
            _ => latest
                .values()
                .filter(|t| t.status.is_interrupt())
                .max_by_key(|t| t.status.severity())
                .map(|t| {
                    if t.version > 0 {
                        format!("{} (attempt {})", t.reason, t.version + 1)
                    } else {
                        t.reason.clone()
                    }
                })
                .unwrap_or_default(),
        };
        decisions.push(Decision::EndJob {
            status: job_status,
            reason,
        });
        return decisions;
    }
    if job.cancel_requested {
        return decisions;
    }
    decisions.extend(starts(spec, &latest, limits, now));
    decisions
}

/// Every running task past its `task_timeout`: stopped everywhere, each party's row that has
/// not ended set to timeout.
fn time_outs(
    latest: &BTreeMap<String, Task>,
    parties: &[TaskParty],
    limits: &JobLimits,
    now: i64,
) -> Vec<Decision> {
    let mut decisions = Vec::new();
    for task in latest.values().filter(|t| {
        t.status == TaskStatus::Running
            && t.start_ms > 0
            && now >= t.start_ms.saturating_add(limits.task_timeout_ms)
    }) {
        let reason = format!(
            "task timeout: component {} still running after {}s (task_timeout)",
            task.component,
            limits.task_timeout_ms / 1000
        );
        decisions.push(Decision::StopTask {
            task: TaskRef::of(task),
            status: TaskStatus::Timeout,
            reason: reason.clone(),
        });
        for row in parties.iter().filter(|p| {
            p.component == task.component && p.version == task.version && !p.status.is_end()
        }) {
            decisions.push(Decision::SetParty {
                task: TaskRef::of(task),
                who: row.who.clone(),
                from: row.status,
                to: TaskStatus::Timeout,
                reason: reason.clone(),
            });
        }
    }
    decisions
}

/// Every failed or timed-out task with retries left: what still runs of it elsewhere is
/// stopped, and a new version waits out the retry delay. The failed version keeps its reason.
fn retries(latest: &BTreeMap<String, Task>, limits: &JobLimits, now: i64) -> Vec<Decision> {
    let mut decisions = Vec::new();
    for task in latest.values().filter(|t| {
        matches!(t.status, TaskStatus::Failed | TaskStatus::Timeout) && t.retries_left > 0
    }) {
        let not_before_ms = now.saturating_add(limits.retry_delay_ms);
        decisions.push(Decision::StopTask {
            task: TaskRef::of(task),
            status: TaskStatus::Canceled,
            reason: format!("another party's copy ended {}; retrying", task.status),
        });
        decisions.push(Decision::Retry(Attempt {
            failed: TaskRef::of(task),
            status: task.status,
            reason: task.reason.clone(),
            version: task.version + 1,
            retries_left: task.retries_left - 1,
            not_before_ms,
        }));
        decisions.push(Decision::WakeAt(not_before_ms));
    }
    decisions
}

/// The waiting tasks whose upstream components all succeeded, in the spec's order, within the
/// parallelism and past their retry delay; a wake-up for the earliest delay still running,
/// and one at the task timeout of what starts.
fn starts(
    spec: &JobSpec,
    latest: &BTreeMap<String, Task>,
    limits: &JobLimits,
    now: i64,
) -> Vec<Decision> {
    let mut decisions = Vec::new();
    let running = latest
        .values()
        .filter(|t| t.status == TaskStatus::Running)
        .count();
    let upstream_done: Vec<&Task> = spec
        .components
        .iter()
        .filter_map(|c| latest.get(&c.name))
        .filter(|t| t.status == TaskStatus::Waiting)
        .filter(|t| {
            spec.component(&t.component).is_some_and(|c| {
                c.upstream
                    .iter()
                    .all(|u| latest.get(u).is_some_and(|up| up.status.is_success()))
            })
        })
        .collect();
    if let Some(due) = upstream_done
        .iter()
        .filter(|t| t.not_before_ms > now)
        .map(|t| t.not_before_ms)
        .min()
    {
        decisions.push(Decision::WakeAt(due));
    }
    let ready: Vec<Decision> = upstream_done
        .into_iter()
        .filter(|t| t.not_before_ms <= now)
        .take(limits.parallelism.saturating_sub(running))
        .map(|t| Decision::Start(TaskRef::of(t)))
        .collect();
    if !ready.is_empty() {
        decisions.extend(ready);
        decisions.push(Decision::WakeAt(now.saturating_add(limits.task_timeout_ms)));
    }
    decisions
}
