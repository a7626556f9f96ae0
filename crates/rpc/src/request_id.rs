//! The request ids of party calls, in one place. A mutating call's id is derived from what it
//! does, so the same intent sent twice (a retry, a duplicate delivery, a restarted sender)
//! carries the same id and its receiver recognises it; the gateway's replay protection keys on
//! it too. Two services that send the same call (the scheduler and the job-controller both
//! create tasks) must agree byte for byte: change a format only with every receiver's stored
//! ids in mind. Reads and resource calls take a fresh id ([`fresh`]).

use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus};

/// A new, unique id (a UUIDv7): for calls whose repeats need not be recognised.
pub fn fresh() -> String {
    crate::new_request_id()
}

/// `CreateJob` of `who`'s job row.
pub fn create_job(job_id: &str, who: &Participant) -> String {
    format!("{job_id}:create:{}:{}", who.role, who.party_id)
}

/// `StartJob` of `who` in the run that entered the queue at `epoch`.
pub fn start_job(job_id: &str, epoch: i64, who: &Participant) -> String {
    format!("{job_id}:{epoch}:start:{}:{}", who.role, who.party_id)
}

/// `UpdateJobStatus` to `status` for `who`, in the run that entered the queue at `epoch` (a
/// rerun's statuses are not repeats of the first run's).
pub fn job_status(job_id: &str, epoch: i64, who: &Participant, status: JobStatus) -> String {
    format!(
        "{job_id}:{epoch}:status:{}:{}:{status}",
        who.role, who.party_id
    )
}

/// `CreateTasks` of one version for `who` (the job-controller's version 0 and the scheduler's
/// later versions use the same format).
pub fn create_tasks(job_id: &str, who: &Participant, version: i32) -> String {
    format!(
        "{job_id}:create-tasks:{}:{}:{version}",
        who.role, who.party_id
    )
}

/// `StartTask` of one task version on `who`.
pub fn start_task(job_id: &str, component: &str, version: i32, who: &Participant) -> String {
    format!(
        "{job_id}:start-task:{component}:{version}:{}:{}",
        who.role, who.party_id
    )
}

/// `StopTasks` of one task version on `who` (a time-out, a retry).
pub fn stop_task(job_id: &str, component: &str, version: i32, who: &Participant) -> String {
    format!(
        "{job_id}:stop:{component}:{version}:{}:{}",
        who.role, who.party_id
    )
}

/// `StopTasks` of every task of `who`, by the scheduler, in the run that entered the queue at
/// `epoch`.
pub fn stop_run(job_id: &str, epoch: i64, who: &Participant) -> String {
    format!("{job_id}:{epoch}:stop:*:{}:{}", who.role, who.party_id)
}

/// `StopTasks` of every remaining task of `who` when the job's run `epoch` ended, committed by
/// the scheduler with the end (distinct from a user stop of the same run, whose body differs).
pub fn end_stop(job_id: &str, epoch: i64, who: &Participant) -> String {
    format!("{job_id}:{epoch}:end-stop:{}:{}", who.role, who.party_id)
}

/// `UpdateTaskStatus` (the federated status, for display) of one task version to `party`.
pub fn task_status(
    job_id: &str,
    component: &str,
    version: i32,
    party: &str,
    status: TaskStatus,
) -> String {
    format!("{job_id}:task-status:{component}:{version}:{party}:{status}")
}

/// `UpdateTaskStatus` of every ended task version of the job's run `epoch` to `party`, sent
/// once when that run ended.
pub fn task_statuses(job_id: &str, epoch: i64, party: &str) -> String {
    format!("{job_id}:{epoch}:task-statuses:{party}")
}

/// `ReportTaskStatus` of `who`'s status of one task version to the job's scheduler.
pub fn report(
    job_id: &str,
    component: &str,
    version: i32,
    who: &Participant,
    status: TaskStatus,
) -> String {
    format!(
        "{job_id}:report:{component}:{version}:{}:{}:{status}",
        who.role, who.party_id
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host() -> Participant {
        Participant {
            role: "host".into(),
            party_id: "10000".into(),
        }
    }

    /// Each format pinned: receivers have ids of these shapes stored, and the gateways of
    /// other parties' older builds send them.
    #[test]
    fn every_format_is_pinned() {
        let j = "202601011200000000000001";
        let who = host();
        assert_eq!(create_job(j, &who), format!("{j}:create:host:10000"));
        assert_eq!(start_job(j, 17, &who), format!("{j}:17:start:host:10000"));
        assert_eq!(
            job_status(j, 17, &who, JobStatus::Success),
            format!("{j}:17:status:host:10000:success")
        );
        assert_eq!(
            create_tasks(j, &who, 2),
            format!("{j}:create-tasks:host:10000:2")
        );
        assert_eq!(
            start_task(j, "train", 1, &who),
            format!("{j}:start-task:train:1:host:10000")
        );
        assert_eq!(
            stop_task(j, "train", 1, &who),
            format!("{j}:stop:train:1:host:10000")
        );
        assert_eq!(stop_run(j, 17, &who), format!("{j}:17:stop:*:host:10000"));
        assert_eq!(end_stop(j, 17, &who), format!("{j}:17:end-stop:host:10000"));
        assert_eq!(
            task_status(j, "train", 1, "9999", TaskStatus::Failed),
            format!("{j}:task-status:train:1:9999:failed")
        );
        assert_eq!(
            report(j, "train", 1, &who, TaskStatus::Running),
            format!("{j}:report:train:1:host:10000:running")
        );
        assert_ne!(fresh(), fresh());
    }
}
