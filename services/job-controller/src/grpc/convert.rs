//! Proto ⇄ domain for the job-controller. Requests are converted once, on arrival, into the
//! app's commands; each conversion checks every id and names the field it refuses
//! (`INVALID_ARGUMENT`). Answers convert from the domain's types with `From`.

use fedflow_core::dsl::TaskPlan;
use fedflow_core::ids::{self, ComponentName, JobId};
use fedflow_proto::jobcontroller::v1 as pb;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_rpc::convert::{job_status_from_pb, job_status_to_pb};

use crate::app::{CreateJob, Error, JobRef, UpdateJobStatus};
use crate::domain::{Allocation, Applied, Grant, JobView, PartyJob, ResourceView, StatusSet};

/// The three fields that name a row, checked in this order.
fn job_ref(job_id: String, role: String, party_id: String) -> Result<JobRef, Error> {
    Ok(JobRef {
        job_id: ids::field("job_id", job_id)?,
        role: ids::field("role", role)?,
        party_id: ids::field("party_id", party_id)?,
    })
}

impl TryFrom<pb::CreateJobRequest> for CreateJob {
    type Error = Error;

    fn try_from(r: pb::CreateJobRequest) -> Result<Self, Error> {
        Ok(CreateJob {
            job: job_ref(r.job_id, r.role, r.party_id)?,
            scheduler_party_id: ids::field("scheduler_party_id", r.scheduler_party_id)?,
            dsl: r.dsl,
            conf: r.runtime_conf,
            tasks: r
                .tasks
                .into_iter()
                .enumerate()
                .map(|(i, task)| task_plan(i, task))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// One planned task of a `CreateJob`; the error names the task's field.
fn task_plan(i: usize, task: tc::TaskSpec) -> Result<TaskPlan, Error> {
    let params = match serde_json::from_str(&task.parameters_json) {
        Ok(serde_json::Value::Object(params)) => params,
        Ok(_) => {
            return Err(Error::InvalidArgument(format!(
                "tasks[{i}].parameters_json: not a JSON object"
            )));
        }
        Err(e) => {
            return Err(Error::InvalidArgument(format!(
                "tasks[{i}].parameters_json: {e}"
            )));
        }
    };
    Ok(TaskPlan {
        component: ids::field::<ComponentName, _>(format!("tasks[{i}].component"), task.component)?
            .into_inner(),
        module: task.module,
        params,
        need_run: task.need_run,
        upstream: task.upstream,
    })
}

/// The requests that name nothing but the job row (job, role, party).
macro_rules! job_ref_from {
    ($($request:ty),+) => {$(
        impl TryFrom<$request> for JobRef {
            type Error = Error;

            fn try_from(r: $request) -> Result<Self, Error> {
                job_ref(r.job_id, r.role, r.party_id)
            }
        }
    )+};
}

job_ref_from!(
    pb::ApplyResourceRequest,
    pb::ReturnResourceRequest,
    pb::StartJobRequest
);

impl TryFrom<pb::UpdateJobStatusRequest> for UpdateJobStatus {
    type Error = Error;

    fn try_from(r: pb::UpdateJobStatusRequest) -> Result<Self, Error> {
        let status = job_status_from_pb(r.status)
            .ok_or_else(|| Error::InvalidArgument("status: unspecified or unknown".into()))?;
        Ok(UpdateJobStatus {
            job: job_ref(r.job_id, r.role, r.party_id)?,
            status,
            reason: r.reason,
        })
    }
}

/// The job id a `GetJob` asks about.
pub fn get_job(r: pb::GetJobRequest) -> Result<JobId, Error> {
    Ok(ids::field("job_id", r.job_id)?)
}

impl From<PartyJob> for pb::PartyJob {
    fn from(job: PartyJob) -> Self {
        pb::PartyJob {
            job_id: job.job_id,
            role: job.role,
            party_id: job.party_id,
            status: job_status_to_pb(job.status) as i32,
            reason: job.reason,
            scheduler_party_id: job.scheduler_party_id,
            cores: job.cores,
            memory_mb: job.memory_mb,
            create_time_ms: job.create_ms,
            start_time_ms: job.start_ms,
            end_time_ms: job.end_ms,
        }
    }
}

impl From<JobView> for pb::GetJobResponse {
    fn from(view: JobView) -> Self {
        pb::GetJobResponse {
            jobs: view.jobs.into_iter().map(Into::into).collect(),
            participants: view.participants,
        }
    }
}

impl From<Applied> for pb::ApplyResourceResponse {
    fn from(applied: Applied) -> Self {
        let (granted, reason) = match applied.grant {
            Grant::Granted => (true, String::new()),
            Grant::Refused(refusal) => (false, refusal.to_string()),
        };
        pb::ApplyResourceResponse {
            granted,
            cores: applied.ask.cores,
            memory_mb: applied.ask.memory_mb,
            reason,
        }
    }
}

impl From<StatusSet> for pb::UpdateJobStatusResponse {
    fn from(set: StatusSet) -> Self {
        pb::UpdateJobStatusResponse {
            applied: set.applied,
            status: job_status_to_pb(set.status) as i32,
        }
    }
}

/// The components a `CreateJob` answers with, and whether each runs here.
pub fn create_job_response(components: Vec<(String, bool)>) -> pb::CreateJobResponse {
    pb::CreateJobResponse {
        components: components
            .into_iter()
            .map(|(component, need_run)| pb::ComponentPlan {
                component,
                need_run,
            })
            .collect(),
    }
}

impl From<Allocation> for pb::Allocation {
    fn from(a: Allocation) -> Self {
        pb::Allocation {
            job_id: a.job_id,
            role: a.role,
            cores: a.cores,
            memory_mb: a.memory_mb,
            create_time_ms: a.create_ms,
        }
    }
}

impl From<ResourceView> for pb::GetResourcesResponse {
    fn from(view: ResourceView) -> Self {
        pb::GetResourcesResponse {
            total_cores: view.capacity.cores,
            total_memory_mb: view.capacity.memory_mb,
            free_cores: view.free.cores,
            free_memory_mb: view.free.memory_mb,
            allocations: view.allocations.into_iter().map(Into::into).collect(),
        }
    }
}
