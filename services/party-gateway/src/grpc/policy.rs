//! What another party may ask of this one: default deny. A call from another party is allowed
//! only if its (service, method) is in the table below (one row per `fedflow_rpc::calls`
//! definition, which also reads the call's job and claims), the envelope's job is the job the
//! call is about, every party id the call claims to speak for is the caller's (else
//! `UNAUTHENTICATED`, as for an envelope claiming another source), and the caller plays the
//! part the method needs in that job: a participant, or the job's scheduler party (the only
//! one that may create, start, stop or sync another party's jobs and tasks).
//! The services check the same again from their own rows.

use bytes::Bytes;
use fedflow_core::access::{Caller, Need};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_rpc::calls::PartyCall;
use tonic::transport::Channel;

use crate::error::Refusal;
use crate::remote::{JobParticipants, Unreachable};

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

/// One method other parties may call: a `fedflow_rpc::calls` definition, with the part the
/// caller must play and how its payload is read.
pub struct Open {
    pub service: &'static str,
    pub method: &'static str,
    pub need: Need,
    pub creates_job: bool,
    /// The call's job and claims, from its encoded request.
    decode: fn(&Bytes) -> Result<Decoded, prost::DecodeError>,
}

struct Decoded {
    job_id: String,
    claims: Vec<(&'static str, String)>,
}

fn decode<C: PartyCall>(payload: &Bytes) -> Result<Decoded, prost::DecodeError> {
    let request = C::decode(payload.clone())?;
    Ok(Decoded {
        job_id: request.job_id().to_owned(),
        claims: request
            .claims()
            .into_iter()
            .map(|(field, party)| (field, party.to_owned()))
            .collect(),
    })
}

/// The row of call `C`, open to callers that play `need` in the job.
const fn open<C: PartyCall>(need: Need) -> Open {
    Open {
        service: C::SERVICE,
        method: C::METHOD,
        need,
        creates_job: false,
        decode: decode::<C>,
    }
}

/// The row of `CreateJob`: the job is not known yet, its claims name its scheduler.
const fn creating<C: PartyCall>() -> Open {
    Open {
        creates_job: true,
        ..open::<C>(Need::Scheduler)
    }
}

/// Every method another party may call, with what it needs. Anything else is refused.
pub const OPEN_METHODS: &[Open] = &[
    creating::<jc::CreateJobRequest>(),
    open::<jc::ApplyResourceRequest>(Need::Scheduler),
    open::<jc::ReturnResourceRequest>(Need::Scheduler),
    open::<jc::StartJobRequest>(Need::Scheduler),
    open::<jc::UpdateJobStatusRequest>(Need::Scheduler),
    open::<jc::GetJobRequest>(Need::Participant),
    open::<tc::CreateTasksRequest>(Need::Scheduler),
    open::<tc::StartTaskRequest>(Need::Scheduler),
    open::<tc::StopTasksRequest>(Need::Scheduler),
    open::<tc::UpdateTaskStatusRequest>(Need::Scheduler),
    open::<tc::ListTasksRequest>(Need::Scheduler),
    open::<tc::GetTaskOutputRequest>(Need::Scheduler),
    open::<sc::ReportTaskStatusRequest>(Need::Participant),
    open::<sc::GetJobRequest>(Need::Participant),
    open::<sc::StopJobRequest>(Need::Participant),
    open::<sc::RerunJobRequest>(Need::Participant),
    open::<sc::ListTasksRequest>(Need::Participant),
    open::<sc::GetTaskOutputRequest>(Need::Participant),
    open::<sc::ProbeRequest>(Need::Participant),
];

/// The job and claims of a call from another party; `PERMISSION_DENIED` for a method that is
/// not open to other parties.
pub fn inspect(service: &str, method: &str, payload: &Bytes) -> Result<Inspected, Refusal> {
    let open = OPEN_METHODS
        .iter()
        .find(|open| open.service == service && open.method == method)
        .ok_or_else(|| {
            Refusal::PermissionDenied(format!("{service}/{method} is not open to other parties"))
        })?;
    let what = format!("{service}/{method}");
    let Decoded { job_id, claims } = (open.decode)(payload)
        .map_err(|e| Refusal::InvalidArgument(format!("undecodable {what} request: {e}")))?;
    fedflow_core::ids::job_id(&job_id)
        .map_err(|e| Refusal::InvalidArgument(format!("{what}: job_id: {e}")))?;
    Ok(Inspected {
        job_id,
        need: open.need,
        claims,
        creates_job: open.creates_job,
    })
}

/// The job-controller's answer per job, kept (a job's parties never change).
pub struct Membership {
    jobs: JobParticipants,
}

impl Membership {
    pub fn new(job_controller: Channel) -> Membership {
        Membership {
            jobs: JobParticipants::new(job_controller),
        }
    }

    /// `PERMISSION_DENIED` unless `caller` plays the part `need`s in the job.
    pub async fn check(&self, caller: &str, job_id: &str, need: Need) -> Result<(), Refusal> {
        let job = self
            .jobs
            .of(job_id)
            .await
            .map_err(|Unreachable(why)| Refusal::Unavailable(why))?;
        Ok(Caller::Party(caller.to_owned()).may(job_id, job.as_deref(), need)?)
    }
}

#[cfg(test)]
mod tests {
    use fedflow_rpc::error::{Code, ServiceError};
    use prost::Message;

    use super::*;

    #[test]
    fn every_party_call_has_a_row_and_every_row_is_a_party_call() {
        for (service, method) in fedflow_rpc::calls::ALL {
            assert!(
                OPEN_METHODS
                    .iter()
                    .any(|open| open.service == *service && open.method == *method),
                "{service}/{method} is a party call without a row"
            );
        }
        assert_eq!(
            OPEN_METHODS.len(),
            fedflow_rpc::calls::ALL.len(),
            "a row that is no party call"
        );
    }

    #[test]
    fn a_method_not_in_the_table_is_denied() {
        let payload = Bytes::from(
            jc::GetJobRequest {
                job_id: "202601011200000000000001".into(),
            }
            .encode_to_vec(),
        );
        for (service, method) in [
            (fedflow_rpc::calls::JOB_CONTROLLER, "GetResources"),
            (fedflow_rpc::calls::SCHEDULER, "SubmitJob"),
            (fedflow_rpc::calls::SCHEDULER, "ListJobs"),
            (fedflow_rpc::calls::SCHEDULER, "WatchJob"),
            ("fedflow.taskcontroller.v1.Worker", "ReportStatus"),
            (fedflow_rpc::calls::TASK_CONTROLLER, "Heartbeat"),
            ("fedflow.gateway.v1.Federation", "Forward"),
        ] {
            let refused = inspect(service, method, &payload).expect_err(method);
            assert_eq!(refused.code(), Code::PermissionDenied, "{service}/{method}");
        }
    }

    #[test]
    fn a_row_reads_the_job_and_the_claims_of_its_call() {
        let job = "202601011200000000000001";
        let create = jc::CreateJobRequest {
            job_id: job.into(),
            scheduler_party_id: "9999".into(),
            ..Default::default()
        };
        let inspected = inspect(
            fedflow_rpc::calls::JOB_CONTROLLER,
            "CreateJob",
            &Bytes::from(create.encode_to_vec()),
        )
        .expect("open");
        assert_eq!(inspected.job_id, job);
        assert_eq!(inspected.need, Need::Scheduler);
        assert!(inspected.creates_job);
        assert_eq!(
            inspected.claims,
            vec![("scheduler_party_id", "9999".to_owned())]
        );
        let report = sc::ReportTaskStatusRequest {
            job_id: job.into(),
            party_id: "10000".into(),
            ..Default::default()
        };
        let inspected = inspect(
            fedflow_rpc::calls::STATUS_REPORT,
            "ReportTaskStatus",
            &Bytes::from(report.encode_to_vec()),
        )
        .expect("open");
        assert_eq!(inspected.need, Need::Participant);
        assert!(!inspected.creates_job);
        assert_eq!(inspected.claims, vec![("party_id", "10000".to_owned())]);
        let probe = sc::ProbeRequest { job_id: job.into() };
        let inspected = inspect(
            fedflow_rpc::calls::SCHEDULER,
            "Probe",
            &Bytes::from(probe.encode_to_vec()),
        )
        .expect("open to participants");
        assert_eq!(inspected.need, Need::Participant);
        assert!(inspected.claims.is_empty());
        let bad = sc::ProbeRequest {
            job_id: "../etc".into(),
        };
        let refused = inspect(
            fedflow_rpc::calls::SCHEDULER,
            "Probe",
            &Bytes::from(bad.encode_to_vec()),
        )
        .expect_err("a bad job id");
        assert_eq!(refused.code(), Code::InvalidArgument);
    }
}
