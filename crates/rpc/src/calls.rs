//! Every call that crosses parties, defined once. [`PartyCall`] is implemented for each such
//! request type: the service (tonic's `NamedService::NAME` of the generated server), the
//! method, the reply type, the job it is about, the party ids it claims to speak for, and
//! which failures are retried. A [`Call`] is one such request on its way: its destination and
//! request id beside it, made by the constructors in [`requests`] (ids from
//! [`crate::request_id`]). The same value is sent live ([`crate::party::PartyClient::send`])
//! or committed to an outbox ([`Call::command`]); the gateway's table of open methods is built
//! from the same definitions ([`ALL`]).

pub mod requests;

use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as tc;
use prost::Message;
use tonic::server::NamedService;

use crate::retry::Retry;

pub use requests::*;

/// A request that one party's service sends to another party's (through the gateways).
pub trait PartyCall: Message + Default + Send + Sync + 'static {
    type Reply: Message + Default + Send + 'static;
    /// The full gRPC service name, as envelopes carry it.
    const SERVICE: &'static str;
    const METHOD: &'static str;
    /// Which failures [`crate::party::PartyClient::send`] tries again: by default only a call
    /// that did not reach the party; mutations whose request id makes a repeat harmless also
    /// after a time-out.
    const RETRY: Retry = Retry::Unreached;

    /// The job the call is about (the envelope says the same; the gateway checks it).
    fn job_id(&self) -> &str;

    /// The party ids the call claims to act for or as, by field: the receiving gateway
    /// refuses the call unless each is the authenticated caller.
    fn claims(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }
}

/// One call on its way: a request for party `dest` (or, for a direct call, a local service
/// name), with the request id its envelope carries.
#[derive(Debug, Clone, PartialEq)]
pub struct Call<C> {
    pub dest: String,
    pub request_id: String,
    pub request: C,
}

impl<C: PartyCall> Call<C> {
    /// The same call as an outbox command (committed with the change that calls for it).
    pub fn command(&self) -> Command {
        Command {
            dest: self.dest.clone(),
            service: C::SERVICE.to_owned(),
            method: C::METHOD.to_owned(),
            job_id: self.request.job_id().to_owned(),
            request_id: self.request_id.clone(),
            payload: self.request.encode_to_vec(),
        }
    }
}

impl<C: PartyCall> From<&Call<C>> for Command {
    fn from(call: &Call<C>) -> Command {
        call.command()
    }
}

/// One command, as an outbox stores it: a unary call of `service`/`method` at `dest` (a
/// party id, or a local service name), with an encoded request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub dest: String,
    pub service: String,
    pub method: String,
    pub job_id: String,
    pub request_id: String,
    pub payload: Vec<u8>,
}

/// The service name of a generated server.
const fn name<S: NamedService>() -> &'static str {
    S::NAME
}

pub const SCHEDULER: &str = name::<sc::scheduler_server::SchedulerServer<()>>();
pub const STATUS_REPORT: &str = name::<sc::status_report_server::StatusReportServer<()>>();
pub const JOB_CONTROLLER: &str = name::<jc::job_controller_server::JobControllerServer<()>>();
pub const TASK_CONTROLLER: &str = name::<tc::task_controller_server::TaskControllerServer<()>>();
/// A party's data and artifacts registry (on its task-controller): reached by the party's own
/// services only, never opened to other parties (not in [`ALL`]).
pub const TASK_CONTROLLER_DATA: &str = name::<tc::data_server::DataServer<()>>();

/// Implements [`PartyCall`] for a request type: `request => reply, SERVICE, "Method"`, then
/// optionally `claims [field, ..]` and `retry Rule`.
macro_rules! party_call {
    ($req:ty => $reply:ty, $service:expr, $method:literal
     $(, claims [$($claim:ident),*])? $(, retry $retry:ident)?) => {
        impl PartyCall for $req {
            type Reply = $reply;
            const SERVICE: &'static str = $service;
            const METHOD: &'static str = $method;
            $(const RETRY: Retry = Retry::$retry;)?

            fn job_id(&self) -> &str {
                &self.job_id
            }

            $(fn claims(&self) -> Vec<(&'static str, &str)> {
                vec![$((stringify!($claim), self.$claim.as_str())),*]
            })?
        }
    };
}

party_call!(jc::CreateJobRequest => jc::CreateJobResponse, JOB_CONTROLLER, "CreateJob",
    claims [scheduler_party_id], retry Transient);
party_call!(jc::ApplyResourceRequest => jc::ApplyResourceResponse, JOB_CONTROLLER, "ApplyResource");
party_call!(jc::ReturnResourceRequest => jc::ReturnResourceResponse, JOB_CONTROLLER, "ReturnResource",
    retry Transient);
party_call!(jc::StartJobRequest => jc::StartJobResponse, JOB_CONTROLLER, "StartJob",
    retry Transient);
party_call!(jc::UpdateJobStatusRequest => jc::UpdateJobStatusResponse, JOB_CONTROLLER, "UpdateJobStatus",
    retry Transient);
party_call!(jc::GetJobRequest => jc::GetJobResponse, JOB_CONTROLLER, "GetJob");
party_call!(tc::CreateTasksRequest => tc::CreateTasksResponse, TASK_CONTROLLER, "CreateTasks",
    claims [scheduler_party_id], retry Transient);
// A start that timed out may be running there: the repair pass sends it again.
party_call!(tc::StartTaskRequest => tc::StartTaskResponse, TASK_CONTROLLER, "StartTask");
party_call!(tc::StopTasksRequest => tc::StopTasksResponse, TASK_CONTROLLER, "StopTasks",
    retry Transient);
party_call!(tc::UpdateTaskStatusRequest => tc::UpdateTaskStatusResponse, TASK_CONTROLLER, "UpdateTaskStatus");
party_call!(tc::ListTasksRequest => tc::ListTasksResponse, TASK_CONTROLLER, "ListTasks");
party_call!(tc::GetTaskOutputRequest => tc::GetTaskOutputResponse, TASK_CONTROLLER, "GetTaskOutput");
party_call!(sc::ReportTaskStatusRequest => sc::ReportTaskStatusResponse, STATUS_REPORT, "ReportTaskStatus",
    claims [party_id]);
// The client API calls a scheduler passes on to the job's scheduler.
party_call!(sc::GetJobRequest => sc::GetJobResponse, SCHEDULER, "GetJob");
party_call!(sc::StopJobRequest => sc::StopJobResponse, SCHEDULER, "StopJob");
party_call!(sc::RerunJobRequest => sc::RerunJobResponse, SCHEDULER, "RerunJob");
party_call!(sc::ListTasksRequest => sc::ListTasksResponse, SCHEDULER, "ListTasks");
party_call!(sc::GetTaskOutputRequest => sc::GetTaskOutputResponse, SCHEDULER, "GetTaskOutput");
// One try is the answer: whether the scheduler can be reached now.
party_call!(sc::ProbeRequest => sc::ProbeResponse, SCHEDULER, "Probe", retry Never);

/// (service, method) of every [`PartyCall`]: what the gateway may open to other parties.
pub const ALL: &[(&str, &str)] = &[
    of::<jc::CreateJobRequest>(),
    of::<jc::ApplyResourceRequest>(),
    of::<jc::ReturnResourceRequest>(),
    of::<jc::StartJobRequest>(),
    of::<jc::UpdateJobStatusRequest>(),
    of::<jc::GetJobRequest>(),
    of::<tc::CreateTasksRequest>(),
    of::<tc::StartTaskRequest>(),
    of::<tc::StopTasksRequest>(),
    of::<tc::UpdateTaskStatusRequest>(),
    of::<tc::ListTasksRequest>(),
    of::<tc::GetTaskOutputRequest>(),
    of::<sc::ReportTaskStatusRequest>(),
    of::<sc::GetJobRequest>(),
    of::<sc::StopJobRequest>(),
    of::<sc::RerunJobRequest>(),
    of::<sc::ListTasksRequest>(),
    of::<sc::GetTaskOutputRequest>(),
    of::<sc::ProbeRequest>(),
];

const fn of<C: PartyCall>() -> (&'static str, &'static str) {
    (C::SERVICE, C::METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_are_the_generated_servers() {
        assert_eq!(SCHEDULER, "fedflow.scheduler.v1.Scheduler");
        assert_eq!(STATUS_REPORT, "fedflow.scheduler.v1.StatusReport");
        assert_eq!(JOB_CONTROLLER, "fedflow.jobcontroller.v1.JobController");
        assert_eq!(TASK_CONTROLLER, "fedflow.taskcontroller.v1.TaskController");
        assert_eq!(TASK_CONTROLLER_DATA, "fedflow.taskcontroller.v1.Data");
        assert!(
            ALL.iter()
                .all(|(service, _)| *service != TASK_CONTROLLER_DATA)
        );
    }

    #[test]
    fn every_call_is_listed_once() {
        let mut seen = std::collections::BTreeSet::new();
        for call in ALL {
            assert!(seen.insert(*call), "{call:?} listed twice");
        }
    }

    #[test]
    fn a_command_is_the_call_it_was_made_from() {
        let who = fedflow_core::ids::Participant {
            role: "host".into(),
            party_id: "10000".into(),
        };
        let call = start_job("j1", 5, &who);
        let command = call.command();
        assert_eq!(command.dest, "10000");
        assert_eq!(command.service, JOB_CONTROLLER);
        assert_eq!(command.method, "StartJob");
        assert_eq!(command.job_id, "j1");
        assert_eq!(command.request_id, "j1:5:start:host:10000");
        assert_eq!(command.request_id, call.request.request_id);
        let decoded = jc::StartJobRequest::decode(command.payload.as_slice()).expect("decodes");
        assert_eq!(decoded, call.request);
        assert_eq!(Command::from(&call), command);
    }
}
