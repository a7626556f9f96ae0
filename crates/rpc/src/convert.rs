//! Domain statuses to and from the proto enums. An unspecified or unknown wire value is an
//! error for the caller to turn into `INVALID_ARGUMENT`.

use fedflow_core::{JobStatus, TaskStatus};
use fedflow_proto::common::v1 as pb;

pub fn job_status_to_pb(status: JobStatus) -> pb::JobStatus {
    match status {
        JobStatus::Ready => pb::JobStatus::Ready,
        JobStatus::Waiting => pb::JobStatus::Waiting,
        JobStatus::Running => pb::JobStatus::Running,
        JobStatus::Success => pb::JobStatus::Success,
        JobStatus::Failed => pb::JobStatus::Failed,
        JobStatus::Canceled => pb::JobStatus::Canceled,
        JobStatus::Timeout => pb::JobStatus::Timeout,
    }
}

pub fn job_status_from_pb(value: i32) -> Option<JobStatus> {
    match pb::JobStatus::try_from(value).ok()? {
        pb::JobStatus::Unspecified => None,
        pb::JobStatus::Ready => Some(JobStatus::Ready),
        pb::JobStatus::Waiting => Some(JobStatus::Waiting),
        pb::JobStatus::Running => Some(JobStatus::Running),
        pb::JobStatus::Success => Some(JobStatus::Success),
        pb::JobStatus::Failed => Some(JobStatus::Failed),
        pb::JobStatus::Canceled => Some(JobStatus::Canceled),
        pb::JobStatus::Timeout => Some(JobStatus::Timeout),
    }
}

pub fn task_status_to_pb(status: TaskStatus) -> pb::TaskStatus {
    match status {
        TaskStatus::Waiting => pb::TaskStatus::Waiting,
        TaskStatus::Running => pb::TaskStatus::Running,
        TaskStatus::Success => pb::TaskStatus::Success,
        TaskStatus::Failed => pb::TaskStatus::Failed,
        TaskStatus::Canceled => pb::TaskStatus::Canceled,
        TaskStatus::Timeout => pb::TaskStatus::Timeout,
        TaskStatus::Pass => pb::TaskStatus::Pass,
    }
}

pub fn task_status_from_pb(value: i32) -> Option<TaskStatus> {
    match pb::TaskStatus::try_from(value).ok()? {
        pb::TaskStatus::Unspecified => None,
        pb::TaskStatus::Waiting => Some(TaskStatus::Waiting),
        pb::TaskStatus::Running => Some(TaskStatus::Running),
        pb::TaskStatus::Success => Some(TaskStatus::Success),
        pb::TaskStatus::Failed => Some(TaskStatus::Failed),
        pb::TaskStatus::Canceled => Some(TaskStatus::Canceled),
        pb::TaskStatus::Timeout => Some(TaskStatus::Timeout),
        pb::TaskStatus::Pass => Some(TaskStatus::Pass),
    }
}

/// The lowercase FATE name of a wire job status ("success"), or "unspecified".
pub fn job_status_name(value: i32) -> &'static str {
    job_status_from_pb(value).map_or("unspecified", JobStatus::as_str)
}

/// The lowercase FATE name of a wire task status ("pass"), or "unspecified".
pub fn task_status_name(value: i32) -> &'static str {
    task_status_from_pb(value).map_or("unspecified", TaskStatus::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_through_the_wire() {
        for s in JobStatus::ALL {
            assert_eq!(job_status_from_pb(job_status_to_pb(s) as i32), Some(s));
        }
        for s in TaskStatus::ALL {
            assert_eq!(task_status_from_pb(task_status_to_pb(s) as i32), Some(s));
        }
        assert_eq!(job_status_from_pb(0), None);
        assert_eq!(task_status_from_pb(99), None);
    }
}
