//! What a job's end asks of its tasks still on the parties: none after a success (every task
//! has ended); otherwise every party stops them, a timed-out job's tasks ending `timeout`, any
//! other end's `canceled`, with the job's reason. The scheduler commits these stops with the end.

use fedflow_core::{JobStatus, TaskStatus};

/// The stop an end calls for on every party.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// The status the stopped tasks end in.
    pub status: TaskStatus,
    pub reason: String,
}

/// The stop the end status `to` calls for; `reason` is the job's, kept in the tasks' reason.
pub fn stop(to: JobStatus, reason: &str) -> Option<Stop> {
    if !to.is_end() || to == JobStatus::Success {
        return None;
    }
    let status = match to {
        JobStatus::Timeout => TaskStatus::Timeout,
        _ => TaskStatus::Canceled,
    };
    let reason = if reason.is_empty() {
        format!("job {to}")
    } else {
        format!("job {to}: {reason}")
    };
    Some(Stop { status, reason })
}

#[cfg(test)]
mod tests {
    use fedflow_core::{JobStatus, TaskStatus};

    use super::*;

    #[test]
    fn only_an_unsuccessful_end_stops_the_tasks() {
        use JobStatus::*;
        let stop_with = |status, reason: &str| {
            Some(Stop {
                status,
                reason: reason.to_owned(),
            })
        };
        #[rustfmt::skip]
        let table: &[(JobStatus, &str, Option<Stop>)] = &[
            (Ready, "", None),
            (Waiting, "", None),
            (Running, "", None),
            (Success, "", None),
            (Failed, "", stop_with(TaskStatus::Canceled, "job failed")),
            (Failed, "task a failed", stop_with(TaskStatus::Canceled, "job failed: task a failed")),
            (Canceled, "by user", stop_with(TaskStatus::Canceled, "job canceled: by user")),
            (Timeout, "", stop_with(TaskStatus::Timeout, "job timeout")),
            (Timeout, "over 60 s", stop_with(TaskStatus::Timeout, "job timeout: over 60 s")),
        ];
        for (to, reason, expected) in table {
            assert_eq!(&stop(*to, reason), expected, "{to} {reason:?}");
        }
    }
}
