//! What another party may ask of this one: default deny. A call from another party is allowed
//! only if its (service, method) is in the table below, the envelope's job is the job the
//! call is about, every party id the call claims to speak for is the caller's (else
//! `UNAUTHENTICATED`, as for an envelope claiming another source), and the caller plays the
//! part the method needs in that job: a participant, or the job's scheduler party (the only
//! one that may create, start, stop or sync another party's jobs and tasks).
//! The services check the same again from their own rows.

use std::sync::Arc;

use bytes::Bytes;
use fedflow_core::access::{Caller, JobParties, KnownJobs, Need};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_rpc::error::to_status;
use fedflow_rpc::party::services;
use prost::Message;
use tonic::Status;
use tonic::transport::Channel;

/// What a call from another party is about.
#[derive(Debug)]
pub struct Inspected {
    pub job_id: String,
    pub need: Need,
    /// Party ids the call claims to act for or as: each must be the caller.
    pub claims: Vec<(&'static str, String)>,
    /// Creating a job: the job is not known here yet; the claims establish the scheduler.
    pub creates_job: bool,
}

/// Every method another party may call, with what it needs. Anything else is refused.
pub const OPEN_METHODS: &[(&str, &str, Need)] = &[
    (services::JOB_CONTROLLER, "CreateJob", Need::Scheduler),
    (services::JOB_CONTROLLER, "ApplyResource", Need::Scheduler),
    (services::JOB_CONTROLLER, "ReturnResource", Need::Scheduler),
    (services::JOB_CONTROLLER, "StartJob", Need::Scheduler),
    (services::JOB_CONTROLLER, "UpdateJobStatus", Need::Scheduler),
    (services::JOB_CONTROLLER, "GetJob", Need::Participant),
    (services::TASK_CONTROLLER, "CreateTasks", Need::Scheduler),
    (services::TASK_CONTROLLER, "StartTask", Need::Scheduler),
    (services::TASK_CONTROLLER, "StopTasks", Need::Scheduler),
    (
        services::TASK_CONTROLLER,
        "UpdateTaskStatus",
        Need::Scheduler,
    ),
    (services::TASK_CONTROLLER, "ListTasks", Need::Scheduler),
    (services::TASK_CONTROLLER, "GetTaskOutput", Need::Scheduler),
    (
        services::STATUS_REPORT,
        "ReportTaskStatus",
        Need::Participant,
    ),
    (services::SCHEDULER, "GetJob", Need::Participant),
    (services::SCHEDULER, "StopJob", Need::Participant),
    (services::SCHEDULER, "RerunJob", Need::Participant),
    (services::SCHEDULER, "ListTasks", Need::Participant),
    (services::SCHEDULER, "GetTaskOutput", Need::Participant),
];

fn decode<M: Message + Default>(payload: &Bytes, what: &str) -> Result<M, Status> {
    M::decode(payload.clone())
        .map_err(|e| Status::invalid_argument(format!("undecodable {what} request: {e}")))
}

/// The job and claims of a call from another party; `PERMISSION_DENIED` for a method that is
/// not open to other parties.
pub fn inspect(service: &str, method: &str, payload: &Bytes) -> Result<Inspected, Status> {
    let need = OPEN_METHODS
        .iter()
        .find(|(s, m, _)| *s == service && *m == method)
        .map(|(_, _, need)| *need)
        .ok_or_else(|| {
            Status::permission_denied(format!("{service}/{method} is not open to other parties"))
        })?;
    let what = format!("{service}/{method}");
    let mut claims = Vec::new();
    let mut creates_job = false;
    let job_id = match (service, method) {
        (services::JOB_CONTROLLER, "CreateJob") => {
            let r: jc::CreateJobRequest = decode(payload, &what)?;
            claims.push(("scheduler_party_id", r.scheduler_party_id));
            creates_job = true;
            r.job_id
        }
        (services::JOB_CONTROLLER, "ApplyResource") => {
            decode::<jc::ApplyResourceRequest>(payload, &what)?.job_id
        }
        (services::JOB_CONTROLLER, "ReturnResource") => {
            decode::<jc::ReturnResourceRequest>(payload, &what)?.job_id
        }
        (services::JOB_CONTROLLER, "StartJob") => {
            decode::<jc::StartJobRequest>(payload, &what)?.job_id
        }
        (services::JOB_CONTROLLER, "UpdateJobStatus") => {
            decode::<jc::UpdateJobStatusRequest>(payload, &what)?.job_id
        }
        (services::JOB_CONTROLLER, "GetJob") => decode::<jc::GetJobRequest>(payload, &what)?.job_id,
        (services::TASK_CONTROLLER, "CreateTasks") => {
            let r: tc::CreateTasksRequest = decode(payload, &what)?;
            claims.push(("scheduler_party_id", r.scheduler_party_id));
            r.job_id
        }
        (services::TASK_CONTROLLER, "StartTask") => {
            decode::<tc::StartTaskRequest>(payload, &what)?.job_id
        }
        (services::TASK_CONTROLLER, "StopTasks") => {
            decode::<tc::StopTasksRequest>(payload, &what)?.job_id
        }
        (services::TASK_CONTROLLER, "UpdateTaskStatus") => {
            decode::<tc::UpdateTaskStatusRequest>(payload, &what)?.job_id
        }
        (services::TASK_CONTROLLER, "ListTasks") => {
            decode::<tc::ListTasksRequest>(payload, &what)?.job_id
        }
        (services::TASK_CONTROLLER, "GetTaskOutput") => {
            decode::<tc::GetTaskOutputRequest>(payload, &what)?.job_id
        }
        (services::STATUS_REPORT, "ReportTaskStatus") => {
            let r: sc::ReportTaskStatusRequest = decode(payload, &what)?;
            claims.push(("party_id", r.party_id));
            r.job_id
        }
        (services::SCHEDULER, "GetJob") => decode::<sc::GetJobRequest>(payload, &what)?.job_id,
        (services::SCHEDULER, "StopJob") => decode::<sc::StopJobRequest>(payload, &what)?.job_id,
        (services::SCHEDULER, "RerunJob") => decode::<sc::RerunJobRequest>(payload, &what)?.job_id,
        (services::SCHEDULER, "ListTasks") => {
            decode::<sc::ListTasksRequest>(payload, &what)?.job_id
        }
        (services::SCHEDULER, "GetTaskOutput") => {
            decode::<sc::GetTaskOutputRequest>(payload, &what)?.job_id
        }
        _ => {
            return Err(Status::permission_denied(format!(
                "{what} is not open to other parties"
            )));
        }
    };
    fedflow_core::ids::job_id(&job_id)
        .map_err(|e| Status::invalid_argument(format!("{what}: job_id: {e}")))?;
    Ok(Inspected {
        job_id,
        need,
        claims,
        creates_job,
    })
}

/// The job-controller's answer per job, kept (a job's parties never change).
pub struct Membership {
    client: jc::job_controller_client::JobControllerClient<Channel>,
    known: KnownJobs,
}

impl Membership {
    pub fn new(job_controller: Channel) -> Membership {
        Membership {
            client: jc::job_controller_client::JobControllerClient::new(job_controller),
            known: KnownJobs::default(),
        }
    }

    /// `PERMISSION_DENIED` unless `caller` plays the part `need`s in the job.
    pub async fn check(&self, caller: &str, job_id: &str, need: Need) -> Result<(), Status> {
        let job = self.parties(job_id).await?;
        Caller::Party(caller.to_owned())
            .may(job_id, job.as_deref(), need)
            .map_err(|e| to_status(&e))
    }

    /// The job's parties from this party's job-controller; `None` for a job it does not know.
    async fn parties(&self, job_id: &str) -> Result<Option<Arc<JobParties>>, Status> {
        if let Some(known) = self.known.get(job_id) {
            return Ok(Some(known));
        }
        let answer = self
            .client
            .clone()
            .get_job(jc::GetJobRequest {
                job_id: job_id.to_owned(),
            })
            .await;
        let reply = match answer {
            Ok(reply) => reply.into_inner(),
            Err(status) if status.code() == tonic::Code::NotFound => return Ok(None),
            Err(status) => {
                return Err(Status::unavailable(format!(
                    "cannot check job {job_id}'s participants: {}",
                    status.message()
                )));
            }
        };
        let Some(scheduler) = reply.jobs.first().map(|job| job.scheduler_party_id.clone()) else {
            return Ok(None);
        };
        Ok(Some(self.known.insert(
            job_id,
            JobParties {
                scheduler,
                participants: Some(reply.participants.into_iter().collect()),
            },
        )))
    }
}
