//! Status changes as the scheduler records them, broadcast to `WatchJob` streams.

use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus};

use crate::domain::model::Task;

#[derive(Debug, Clone)]
pub enum Event {
    Job {
        job_id: String,
        time_ms: i64,
        status: JobStatus,
        reason: String,
    },
    Task {
        job_id: String,
        time_ms: i64,
        component: String,
        version: i32,
        /// None: the federated status; Some: one party's own status.
        who: Option<Participant>,
        status: TaskStatus,
        reason: String,
    },
}

impl Event {
    /// The federated status `status` of a task version, as of now.
    pub fn task(task: &Task, status: TaskStatus, reason: impl Into<String>) -> Event {
        Event::Task {
            job_id: task.job_id.clone(),
            time_ms: fedflow_rpc::now_ms(),
            component: task.component.clone(),
            version: task.version,
            who: None,
            status,
            reason: reason.into(),
        }
    }

    pub fn job_id(&self) -> &str {
        match self {
            Event::Job { job_id, .. } | Event::Task { job_id, .. } => job_id,
        }
    }

    /// The job reached an end status: a watch ends here.
    pub fn ends_job(&self) -> bool {
        matches!(self, Event::Job { status, .. } if status.is_end())
    }
}
