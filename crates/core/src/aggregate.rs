//! How the scheduler derives one federated status from many (reference §3.5, FATE-Flow's rules,
//! with one deliberate change noted on [`job_status`]). Pure functions over statuses; the
//! scheduler stores what they return with a compare-and-set.

use crate::status::{JobStatus, TaskStatus};

/// The federated status of a task version from every party's own status.
///
/// Pass counts as success; one interrupted party interrupts the task (the most severe of
/// failed > timeout > canceled wins); otherwise any running or any mix of done and not yet
/// started is running. All parties `pass` gives `pass`.
pub fn task_status(parties: &[TaskStatus]) -> TaskStatus {
    if parties.is_empty() {
        return TaskStatus::Success;
    }
    if parties.iter().all(|s| *s == TaskStatus::Pass) {
        return TaskStatus::Pass;
    }
    if let Some(worst) = most_severe(parties) {
        return worst;
    }
    if parties.iter().all(|s| s.is_success()) {
        return TaskStatus::Success;
    }
    if parties.iter().all(|s| *s == TaskStatus::Waiting) {
        return TaskStatus::Waiting;
    }
    TaskStatus::Running
}

/// The status of a started job from the federated statuses of its latest task versions.
///
/// Unlike FATE-Flow, which keeps a job running while any task still runs, an interrupted task
/// ends the job at once (fail fast): the scheduler then stops what still runs everywhere. A
/// requested cancel ends a job that has not fully succeeded as canceled.
pub fn job_status(tasks: &[TaskStatus], cancel_requested: bool) -> JobStatus {
    if let Some(worst) = most_severe(tasks) {
        return match worst {
            TaskStatus::Failed => JobStatus::Failed,
            TaskStatus::Timeout => JobStatus::Timeout,
            _ => JobStatus::Canceled,
        };
    }
    if tasks.iter().all(|s| s.is_success()) {
        return JobStatus::Success;
    }
    if cancel_requested {
        return JobStatus::Canceled;
    }
    JobStatus::Running
}

/// Share of tasks in an end status, 0..=100.
pub fn progress(tasks: &[TaskStatus]) -> i32 {
    if tasks.is_empty() {
        return 100;
    }
    let ended = tasks.iter().filter(|s| s.is_end()).count();
    i32::try_from(ended * 100 / tasks.len()).unwrap_or(100)
}

fn most_severe(statuses: &[TaskStatus]) -> Option<TaskStatus> {
    statuses
        .iter()
        .copied()
        .filter(|s| s.is_interrupt())
        .max_by_key(|s| s.severity())
}

#[cfg(test)]
mod tests {
    use super::*;
    use TaskStatus::*;

    #[test]
    fn federated_task_status_follows_the_fate_rules() {
        let cases: &[(&[TaskStatus], TaskStatus)] = &[
            (&[Waiting, Waiting, Waiting], Waiting),
            (&[Running, Running, Running], Running),
            (&[Success, Success, Success], Success),
            (&[Pass, Pass], Pass),
            (&[Success, Pass, Success], Success),
            (&[Failed, Failed], Failed),
            (&[Running, Failed, Running], Failed),
            (&[Running, Timeout, Canceled], Timeout),
            (&[Canceled, Failed, Timeout], Failed),
            (&[Success, Canceled], Canceled),
            (&[Waiting, Running], Running),
            (&[Waiting, Success], Running),
            (&[Waiting, Pass], Running),
            (&[Running, Success, Pass], Running),
            (&[Waiting, Canceled], Canceled),
            (&[], Success),
        ];
        for (parties, want) in cases {
            assert_eq!(task_status(parties), *want, "parties {parties:?}");
        }
    }

    #[test]
    fn job_status_fails_fast_and_honours_cancel() {
        let cases: &[(&[TaskStatus], bool, JobStatus)] = &[
            (&[Success, Success, Pass], false, JobStatus::Success),
            (&[Success, Running, Waiting], false, JobStatus::Running),
            (&[Success, Waiting], false, JobStatus::Running),
            (&[Waiting, Waiting], false, JobStatus::Running),
            (&[Success, Failed, Waiting], false, JobStatus::Failed),
            (&[Running, Failed], false, JobStatus::Failed),
            (&[Timeout, Canceled], false, JobStatus::Timeout),
            (&[Canceled, Success], false, JobStatus::Canceled),
            (&[Success, Waiting], true, JobStatus::Canceled),
            (&[Running], true, JobStatus::Canceled),
            (&[Success, Success], true, JobStatus::Success),
            (&[Failed, Canceled], true, JobStatus::Failed),
        ];
        for (tasks, cancel, want) in cases {
            assert_eq!(
                job_status(tasks, *cancel),
                *want,
                "tasks {tasks:?} cancel {cancel}"
            );
        }
    }

    #[test]
    fn progress_counts_ended_tasks() {
        assert_eq!(progress(&[Success, Waiting, Running, Failed]), 50);
        assert_eq!(progress(&[Waiting]), 0);
        assert_eq!(progress(&[Pass, Success, Canceled]), 100);
    }
}
