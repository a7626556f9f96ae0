//! The constructors of every party call: the request, its destination and its request id (from
//! [`crate::request_id`]), so a call is written once whichever service sends it and whether it
//! goes out live or through an outbox.

use fedflow_core::dsl::TaskPlan;
use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as tc;

use super::Call;
use crate::convert::{job_status_to_pb, task_status_to_pb};
use crate::request_id;

fn to<C>(dest: &str, request_id: String, request: C) -> Call<C> {
    Call {
        dest: dest.to_owned(),
        request_id,
        request,
    }
}

/// `to_participant!(who, job_id, id, Request { field: value, .. })`: the call to `who` of a
/// request about `job_id` that names `who` (its `role` and `party_id`) and carries the request
/// id `id`, with the other fields given; `to_participant!(dest; who, ..)` sends it to `dest`
/// instead (a report about `who` to the job's scheduler).
macro_rules! to_participant {
    ($who:expr, $($rest:tt)*) => {{
        let who: &Participant = $who;
        to_participant!(&who.party_id; who, $($rest)*)
    }};
    ($dest:expr; $who:expr, $job_id:expr, $id:expr, $($request:ident)::+ {
        $($field:ident $(: $value:expr)?),* $(,)?
    }) => {{
        let (who, id): (&Participant, String) = ($who, $id);
        to(
            $dest,
            id.clone(),
            $($request)::+ {
                job_id: $job_id.to_owned(),
                role: who.role.clone(),
                party_id: who.party_id.clone(),
                request_id: id,
                $($field $(: $value)?,)*
            },
        )
    }};
}

/// The job row of `who`, scheduled by `scheduler_party`, with version 0 of its tasks
/// (`plans`, `who`'s plans of every component), which its job-controller creates on its
/// task-controller.
pub fn create_job(
    job_id: &str,
    who: &Participant,
    dsl: &str,
    conf: &str,
    scheduler_party: &str,
    plans: &[TaskPlan],
) -> Call<jc::CreateJobRequest> {
    to_participant!(
        who,
        job_id,
        request_id::create_job(job_id, who),
        jc::CreateJobRequest {
            dsl: dsl.to_owned(),
            runtime_conf: conf.to_owned(),
            scheduler_party_id: scheduler_party.to_owned(),
            tasks: task_specs(plans),
        }
    )
}

/// Reserves `who`'s resources for the job.
pub fn apply_resource(job_id: &str, who: &Participant) -> Call<jc::ApplyResourceRequest> {
    to_participant!(
        who,
        job_id,
        request_id::fresh(),
        jc::ApplyResourceRequest {}
    )
}

/// Returns `who`'s reservation for the job.
pub fn return_resource(job_id: &str, who: &Participant) -> Call<jc::ReturnResourceRequest> {
    to_participant!(
        who,
        job_id,
        request_id::fresh(),
        jc::ReturnResourceRequest {}
    )
}

/// Starts the job on `who`, in the run that entered the queue at `epoch`.
pub fn start_job(job_id: &str, epoch: i64, who: &Participant) -> Call<jc::StartJobRequest> {
    to_participant!(
        who,
        job_id,
        request_id::start_job(job_id, epoch, who),
        jc::StartJobRequest {}
    )
}

/// Tells `who` the job's status, in the run that entered the queue at `epoch`.
pub fn update_job_status(
    job_id: &str,
    epoch: i64,
    who: &Participant,
    status: JobStatus,
    reason: &str,
) -> Call<jc::UpdateJobStatusRequest> {
    to_participant!(
        who,
        job_id,
        request_id::job_status(job_id, epoch, who, status),
        jc::UpdateJobStatusRequest {
            status: job_status_to_pb(status) as i32,
            reason: reason.to_owned(),
        }
    )
}

/// The job rows `party` holds for the job.
pub fn party_job(party: &str, job_id: &str) -> Call<jc::GetJobRequest> {
    to(
        party,
        request_id::fresh(),
        jc::GetJobRequest {
            job_id: job_id.to_owned(),
        },
    )
}

/// Creates `who`'s task rows of one version of the job.
pub fn create_tasks(
    job_id: &str,
    who: &Participant,
    scheduler_party: &str,
    version: i32,
    plans: &[TaskPlan],
    parties: &[Participant],
) -> Call<tc::CreateTasksRequest> {
    to_participant!(
        who,
        job_id,
        request_id::create_tasks(job_id, who, version),
        tc::CreateTasksRequest {
            scheduler_party_id: scheduler_party.to_owned(),
            version,
            tasks: task_specs(plans),
            parties: parties
                .iter()
                .map(|p| fedflow_proto::common::v1::PartyRef {
                    role: p.role.clone(),
                    party_id: p.party_id.clone(),
                })
                .collect(),
        }
    )
}

/// The wire form of task plans.
fn task_specs(plans: &[TaskPlan]) -> Vec<tc::TaskSpec> {
    plans
        .iter()
        .map(|plan| tc::TaskSpec {
            component: plan.component.clone(),
            module: plan.module.clone(),
            parameters_json: serde_json::Value::Object(plan.params.clone()).to_string(),
            need_run: plan.need_run,
            upstream: plan.upstream.clone(),
        })
        .collect()
}

/// Starts one task version on `who`.
pub fn start_task(
    job_id: &str,
    who: &Participant,
    component: &str,
    version: i32,
) -> Call<tc::StartTaskRequest> {
    to_participant!(
        who,
        job_id,
        request_id::start_task(job_id, component, version, who),
        tc::StartTaskRequest {
            component: component.to_owned(),
            version,
        }
    )
}

/// The scheduler's stop of one task version (`task`) or of every task of `who` in the run that
/// entered the queue at `epoch` (`None`), ending them as `status`.
pub fn stop_tasks(
    job_id: &str,
    epoch: i64,
    who: &Participant,
    task: Option<(&str, i32)>,
    status: TaskStatus,
    reason: &str,
) -> Call<tc::StopTasksRequest> {
    let id = match task {
        Some((component, version)) => request_id::stop_task(job_id, component, version, who),
        None => request_id::stop_run(job_id, epoch, who),
    };
    let mut call = stop(job_id, who, status, reason, id);
    if let Some((component, version)) = task {
        call.request.component = component.to_owned();
        call.request.version = Some(version);
    }
    call
}

/// The stop of every remaining task of `who` once the job's run `epoch` ended, for the
/// scheduler's outbox: the tasks end in `status` with `reason`.
pub fn end_stop(
    job_id: &str,
    epoch: i64,
    who: &Participant,
    status: TaskStatus,
    reason: &str,
) -> Call<tc::StopTasksRequest> {
    stop(
        job_id,
        who,
        status,
        reason,
        request_id::end_stop(job_id, epoch, who),
    )
}

fn stop(
    job_id: &str,
    who: &Participant,
    status: TaskStatus,
    reason: &str,
    id: String,
) -> Call<tc::StopTasksRequest> {
    to_participant!(
        who,
        job_id,
        id,
        tc::StopTasksRequest {
            component: String::new(),
            version: None,
            status: task_status_to_pb(status) as i32,
            reason: reason.to_owned(),
        }
    )
}

/// Tells `party` a task version's federated status (for display there).
pub fn update_task_status(
    job_id: &str,
    party: &str,
    component: &str,
    version: i32,
    status: TaskStatus,
) -> Call<tc::UpdateTaskStatusRequest> {
    let id = request_id::task_status(job_id, component, version, party, status);
    to(
        party,
        id.clone(),
        tc::UpdateTaskStatusRequest {
            job_id: job_id.to_owned(),
            component: component.to_owned(),
            version,
            status: task_status_to_pb(status) as i32,
            request_id: id,
            more: Vec::new(),
        },
    )
}

/// Tells `party` the federated statuses of several task versions of a job at once (for display
/// there): the job's end sync of every task, in the run that entered the queue at `epoch`. The
/// first of `statuses` fills the request's own fields (what a party that does not read `more`
/// records); `None` when there is none.
pub fn update_task_statuses(
    job_id: &str,
    epoch: i64,
    party: &str,
    statuses: &[(&str, i32, TaskStatus)],
) -> Option<Call<tc::UpdateTaskStatusRequest>> {
    let ((component, version, status), rest) = statuses.split_first()?;
    let id = request_id::task_statuses(job_id, epoch, party);
    Some(to(
        party,
        id.clone(),
        tc::UpdateTaskStatusRequest {
            job_id: job_id.to_owned(),
            component: (*component).to_owned(),
            version: *version,
            status: task_status_to_pb(*status) as i32,
            request_id: id,
            more: rest
                .iter()
                .map(|(component, version, status)| tc::TaskStatusUpdate {
                    component: (*component).to_owned(),
                    version: *version,
                    status: task_status_to_pb(*status) as i32,
                })
                .collect(),
        },
    ))
}

/// `party`'s task rows of the job.
pub fn party_tasks(party: &str, job_id: &str) -> Call<tc::ListTasksRequest> {
    to(
        party,
        request_id::fresh(),
        tc::ListTasksRequest {
            job_id: job_id.to_owned(),
        },
    )
}

/// A component's output on `who`.
pub fn task_output(
    job_id: &str,
    component: &str,
    who: &Participant,
) -> Call<tc::GetTaskOutputRequest> {
    to(
        &who.party_id,
        request_id::fresh(),
        tc::GetTaskOutputRequest {
            job_id: job_id.to_owned(),
            component: component.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
        },
    )
}

/// Reports `who`'s status of one task version to the job's scheduler, `scheduler_party`.
pub fn report(
    scheduler_party: &str,
    job_id: &str,
    component: &str,
    version: i32,
    who: &Participant,
    status: TaskStatus,
    reason: &str,
) -> Call<sc::ReportTaskStatusRequest> {
    to_participant!(
        scheduler_party;
        who,
        job_id,
        request_id::report(job_id, component, version, who, status),
        sc::ReportTaskStatusRequest {
            component: component.to_owned(),
            version,
            status: task_status_to_pb(status) as i32,
            reason: reason.to_owned(),
        }
    )
}

/// Asks the job's scheduler, `scheduler_party`, whether it can be reached.
pub fn probe(scheduler_party: &str, job_id: &str) -> Call<sc::ProbeRequest> {
    to(
        scheduler_party,
        request_id::fresh(),
        sc::ProbeRequest {
            job_id: job_id.to_owned(),
        },
    )
}
