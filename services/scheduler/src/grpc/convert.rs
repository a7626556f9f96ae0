//! The conversions at the gRPC edge: each request into its validated request type
//! (`TryFrom`, once, on arrival; the error names the bad field), each domain value into its
//! protobuf message, and the app's errors into `Status` so handlers can use `?`.

use fedflow_core::ids::{self, FieldError, InvalidId, Participant, TaskKey};
use fedflow_proto::common::v1 as common;
use fedflow_proto::scheduler::v1 as pb;
use fedflow_rpc::convert::{
    job_status_from_pb, job_status_to_pb, task_status_from_pb, task_status_to_pb,
};
use fedflow_rpc::error::to_status;
use tonic::Status;

use crate::app::{self, TaskView};
use crate::domain::model::{
    Cursor, GetJob, GetTaskOutput, JobFilter, JobView, ListJobs, ListTasks, ReportTaskStatus,
    RerunJob, StopJob, SubmitJob, WatchJob,
};
use crate::events::Event;

impl From<app::Error> for Status {
    fn from(e: app::Error) -> Status {
        let mut status = to_status(&e);
        if let app::Error::QueueFull { retry_after_ms, .. } = e {
            status
                .metadata_mut()
                .insert(RETRY_AFTER_HEADER, retry_after_ms.into());
        }
        status
    }
}

/// The metadata of a `RESOURCE_EXHAUSTED` refusal saying after how many ms to try again.
pub const RETRY_AFTER_HEADER: &str = "retry-after-ms";

/// A request field that did not convert, as the app reports a bad argument.
fn invalid(e: FieldError) -> app::Error {
    app::Error::InvalidArgument(e.to_string())
}

/// One request field, converted; the error names it.
fn field<T, V>(name: &'static str, value: V) -> Result<T, app::Error>
where
    T: TryFrom<V, Error = InvalidId>,
{
    ids::field(name, value).map_err(invalid)
}

impl TryFrom<pb::SubmitJobRequest> for SubmitJob {
    type Error = app::Error;

    fn try_from(r: pb::SubmitJobRequest) -> Result<Self, app::Error> {
        ids::request_id(&r.request_id).map_err(|e| invalid(FieldError::new("request_id", e)))?;
        Ok(SubmitJob {
            dsl: r.dsl,
            conf: r.runtime_conf,
            request_id: r.request_id,
        })
    }
}

impl TryFrom<pb::GetJobRequest> for GetJob {
    type Error = app::Error;

    fn try_from(r: pb::GetJobRequest) -> Result<Self, app::Error> {
        Ok(GetJob {
            job_id: field("job_id", r.job_id)?,
            include_conf: r.include_conf,
        })
    }
}

impl TryFrom<pb::ListJobsRequest> for ListJobs {
    type Error = app::Error;

    fn try_from(r: pb::ListJobsRequest) -> Result<Self, app::Error> {
        let statuses = r
            .status
            .iter()
            .enumerate()
            .map(|(i, &value)| {
                job_status_from_pb(value).ok_or_else(|| {
                    app::Error::InvalidArgument(format!("status[{i}]: {value} is not a job status"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let role = (!r.role.is_empty())
            .then(|| field("role", r.role))
            .transpose()?;
        let party_id = (!r.party_id.is_empty())
            .then(|| field("party_id", r.party_id))
            .transpose()?;
        if !r.text.is_empty() {
            ids::job_id(&r.text).map_err(|e| invalid(FieldError::new("text", e)))?;
        }
        let after = (!r.page_token.is_empty())
            .then(|| {
                Cursor::from_token(&r.page_token)
                    .map_err(|why| app::Error::InvalidArgument(format!("page_token: {why}")))
            })
            .transpose()?;
        Ok(ListJobs {
            limit: r.limit,
            filter: JobFilter {
                statuses,
                role,
                party_id,
                submitted_after_ms: r.submitted_after_ms,
                submitted_before_ms: r.submitted_before_ms,
                text: r.text,
            },
            after,
        })
    }
}

impl TryFrom<pb::StopJobRequest> for StopJob {
    type Error = app::Error;

    fn try_from(r: pb::StopJobRequest) -> Result<Self, app::Error> {
        Ok(StopJob {
            job_id: field("job_id", r.job_id)?,
        })
    }
}

impl TryFrom<pb::RerunJobRequest> for RerunJob {
    type Error = app::Error;

    /// An empty component reruns every failed one.
    fn try_from(r: pb::RerunJobRequest) -> Result<Self, app::Error> {
        Ok(RerunJob {
            job_id: field("job_id", r.job_id)?,
            component: if r.component.is_empty() {
                None
            } else {
                Some(field("component", r.component)?)
            },
            force: r.force,
            request_id: r.request_id,
        })
    }
}

impl TryFrom<pb::ListTasksRequest> for ListTasks {
    type Error = app::Error;

    fn try_from(r: pb::ListTasksRequest) -> Result<Self, app::Error> {
        Ok(ListTasks {
            job_id: field("job_id", r.job_id)?,
            all_versions: r.all_versions,
        })
    }
}

impl TryFrom<pb::GetTaskOutputRequest> for GetTaskOutput {
    type Error = app::Error;

    fn try_from(r: pb::GetTaskOutputRequest) -> Result<Self, app::Error> {
        Ok(GetTaskOutput {
            job_id: field("job_id", r.job_id)?,
            component: field("component", r.component)?,
            role: field("role", r.role)?,
            party_id: field("party_id", r.party_id)?,
        })
    }
}

impl TryFrom<pb::WatchJobRequest> for WatchJob {
    type Error = app::Error;

    /// An empty job id watches every job.
    fn try_from(r: pb::WatchJobRequest) -> Result<Self, app::Error> {
        Ok(WatchJob {
            job_id: if r.job_id.is_empty() {
                None
            } else {
                Some(field("job_id", r.job_id)?)
            },
        })
    }
}

impl TryFrom<pb::ReportTaskStatusRequest> for ReportTaskStatus {
    type Error = app::Error;

    fn try_from(r: pb::ReportTaskStatusRequest) -> Result<Self, app::Error> {
        let status = task_status_from_pb(r.status)
            .ok_or_else(|| app::Error::InvalidArgument("status: unspecified or unknown".into()))?;
        Ok(ReportTaskStatus {
            key: TaskKey::from_fields(r.job_id, r.component, r.version, r.role, r.party_id)
                .map_err(invalid)?,
            status,
            reason: r.reason,
        })
    }
}

fn party_ref(who: &Participant) -> common::PartyRef {
    common::PartyRef {
        role: who.role.clone(),
        party_id: who.party_id.clone(),
    }
}

/// A job as the client API shows it; its DSL and conf only when asked for.
pub fn job_to_pb(view: JobView, include_conf: bool) -> pb::Job {
    let JobView { job, parties } = view;
    let elapsed = if job.start_ms > 0 && job.end_ms > 0 {
        job.end_ms - job.start_ms
    } else {
        0
    };
    pb::Job {
        job_id: job.job_id,
        status: job_status_to_pb(job.status) as i32,
        initiator: Some(party_ref(&job.initiator)),
        parties: parties.iter().map(party_ref).collect(),
        priority: job.priority,
        reason: job.reason,
        pending_reason: job.pending_reason,
        create_time_ms: job.create_ms,
        start_time_ms: job.start_ms,
        end_time_ms: job.end_ms,
        elapsed_ms: elapsed,
        progress: job.progress,
        cancel_requested: job.cancel_requested,
        dsl: if include_conf { job.dsl } else { String::new() },
        runtime_conf: if include_conf {
            job.conf
        } else {
            String::new()
        },
    }
}

pub fn task_to_pb(view: TaskView) -> pb::Task {
    pb::Task {
        job_id: view.task.job_id,
        component: view.task.component,
        module: view.task.module,
        version: view.task.version,
        status: task_status_to_pb(view.task.status) as i32,
        reason: view.task.reason,
        parties: view
            .parties
            .into_iter()
            .map(|p| pb::TaskParty {
                role: p.who.role,
                party_id: p.who.party_id,
                status: task_status_to_pb(p.status) as i32,
                reason: p.reason,
                update_time_ms: p.update_ms,
            })
            .collect(),
        start_time_ms: view.task.start_ms,
        end_time_ms: view.task.end_ms,
    }
}

pub fn event_to_pb(event: Event) -> pb::JobEvent {
    match event {
        Event::Job {
            job_id,
            time_ms,
            status,
            reason,
        } => pb::JobEvent {
            job_id,
            time_ms,
            event: Some(pb::job_event::Event::Job(pb::JobStatusChanged {
                status: job_status_to_pb(status) as i32,
                reason,
            })),
        },
        Event::Task {
            job_id,
            time_ms,
            component,
            version,
            who,
            status,
            reason,
        } => {
            let (role, party_id) = who.map(|w| (w.role, w.party_id)).unwrap_or_default();
            pb::JobEvent {
                job_id,
                time_ms,
                event: Some(pb::job_event::Event::Task(pb::TaskStatusChanged {
                    component,
                    version,
                    role,
                    party_id,
                    status: task_status_to_pb(status) as i32,
                    reason,
                })),
            }
        }
    }
}
