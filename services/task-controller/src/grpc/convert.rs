//! Requests into the app's commands and rows into replies. Each `TryFrom<pb::XRequest>` checks
//! every id, status and parameter of the request once, on arrival, and names the bad field,
//! so the app only ever sees well-formed values; whether a party id is this party's is the
//! app's to say.

use fedflow_core::TaskStatus;
use fedflow_core::ids::{self, InvalidId, Participant};
use fedflow_proto::taskcontroller::v1 as pb;
use fedflow_rpc::convert::{task_status_from_pb, task_status_to_pb};

use crate::app::{CreateTasks, Error, NewTask, StopTasks, WorkerReport};
use crate::domain::attempt::Which;
use crate::domain::{Task, TaskKey};

fn invalid(e: InvalidId) -> Error {
    Error::InvalidArgument(e.to_string())
}

fn status_of(value: i32, field: &str) -> Result<TaskStatus, Error> {
    task_status_from_pb(value)
        .ok_or_else(|| Error::InvalidArgument(format!("{field}: unspecified or unknown")))
}

fn version_of(version: i32) -> Result<i32, Error> {
    if version < 0 {
        // Such a row could never start: refuse it on arrival, store nothing.
        return Err(Error::InvalidArgument(format!(
            "version {version} is negative"
        )));
    }
    Ok(version)
}

fn participant(role: String, party_id: String) -> Result<Participant, Error> {
    ids::role(&role).map_err(invalid)?;
    Ok(Participant { role, party_id })
}

/// A checked task key (its party id is checked against this party by the app).
pub fn task_key(
    job_id: String,
    component: String,
    version: i32,
    role: String,
    party_id: String,
) -> Result<TaskKey, Error> {
    ids::job_id(&job_id).map_err(invalid)?;
    ids::component(&component).map_err(invalid)?;
    ids::role(&role).map_err(invalid)?;
    Ok(TaskKey {
        job_id,
        component,
        version: version_of(version)?,
        role,
        party_id,
    })
}

/// A checked job id.
pub fn job_id(job_id: String) -> Result<String, Error> {
    ids::job_id(&job_id).map_err(invalid)?;
    Ok(job_id)
}

/// One task of a `CreateTasks`: its ids, a known module, and parameters that are a JSON
/// object the module accepts.
fn new_task(task: pb::TaskSpec) -> Result<NewTask, Error> {
    ids::component(&task.component).map_err(invalid)?;
    if !fedflow_core::modules::is_known(&task.module) {
        return Err(Error::InvalidArgument(format!(
            "unknown module {:?} for component {}",
            task.module, task.component
        )));
    }
    let bad = |e: String| Error::InvalidArgument(format!("parameters of {}: {e}", task.component));
    let params: serde_json::Value =
        serde_json::from_str(&task.parameters_json).map_err(|e| bad(e.to_string()))?;
    let params = params
        .as_object()
        .ok_or_else(|| bad("not an object".to_owned()))?;
    fedflow_core::modules::validate_params(&task.module, params).map_err(bad)?;
    for up in &task.upstream {
        ids::component(up).map_err(invalid)?;
    }
    Ok(NewTask {
        component: task.component,
        module: task.module,
        parameters_json: task.parameters_json,
        need_run: task.need_run,
        upstream: task.upstream,
    })
}

impl TryFrom<pb::CreateTasksRequest> for CreateTasks {
    type Error = Error;

    fn try_from(r: pb::CreateTasksRequest) -> Result<Self, Error> {
        let job_id = job_id(r.job_id)?;
        ids::party_id(&r.scheduler_party_id)
            .map_err(|e| Error::InvalidArgument(format!("scheduler_party_id: {e}")))?;
        let who = participant(r.role, r.party_id)?;
        let version = version_of(r.version)?;
        let tasks = r
            .tasks
            .into_iter()
            .map(new_task)
            .collect::<Result<_, _>>()?;
        Ok(CreateTasks {
            job_id,
            who,
            scheduler_party_id: r.scheduler_party_id,
            version,
            tasks,
        })
    }
}

impl TryFrom<pb::StartTaskRequest> for TaskKey {
    type Error = Error;

    fn try_from(r: pb::StartTaskRequest) -> Result<Self, Error> {
        task_key(r.job_id, r.component, r.version, r.role, r.party_id)
    }
}

impl TryFrom<pb::StopTasksRequest> for StopTasks {
    type Error = Error;

    fn try_from(r: pb::StopTasksRequest) -> Result<Self, Error> {
        let status = status_of(r.status, "status")?;
        let job_id = job_id(r.job_id)?;
        let who = participant(r.role, r.party_id)?;
        Ok(StopTasks {
            job_id,
            party_id: who.party_id,
            which: Which {
                role: who.role,
                component: (!r.component.is_empty()).then_some(r.component),
                version: r.version,
            },
            status,
            reason: r.reason,
        })
    }
}

/// `UpdateTaskStatus`: (job, component, version, federated status).
pub struct UpdateTaskStatus {
    pub job_id: String,
    pub component: String,
    pub version: i32,
    pub status: TaskStatus,
}

impl TryFrom<pb::UpdateTaskStatusRequest> for UpdateTaskStatus {
    type Error = Error;

    fn try_from(r: pb::UpdateTaskStatusRequest) -> Result<Self, Error> {
        let status = status_of(r.status, "status")?;
        let job_id = job_id(r.job_id)?;
        ids::component(&r.component).map_err(invalid)?;
        Ok(UpdateTaskStatus {
            job_id,
            component: r.component,
            version: r.version,
            status,
        })
    }
}

/// `GetTaskOutput`: (job, component, participant).
pub struct GetTaskOutput {
    pub job_id: String,
    pub component: String,
    pub who: Participant,
}

impl TryFrom<pb::GetTaskOutputRequest> for GetTaskOutput {
    type Error = Error;

    fn try_from(r: pb::GetTaskOutputRequest) -> Result<Self, Error> {
        let job_id = job_id(r.job_id)?;
        ids::component(&r.component).map_err(invalid)?;
        Ok(GetTaskOutput {
            job_id,
            component: r.component,
            who: participant(r.role, r.party_id)?,
        })
    }
}

impl TryFrom<pb::ReportStatusRequest> for WorkerReport {
    type Error = Error;

    fn try_from(r: pb::ReportStatusRequest) -> Result<Self, Error> {
        let status = status_of(r.status, "status")?;
        Ok(WorkerReport {
            key: task_key(r.job_id, r.component, r.version, r.role, r.party_id)?,
            token: r.token,
            status,
            reason: r.reason,
            output: r.output_json,
        })
    }
}

/// `Heartbeat`: the attempt and its token.
pub struct Heartbeat {
    pub key: TaskKey,
    pub token: String,
}

impl TryFrom<pb::HeartbeatRequest> for Heartbeat {
    type Error = Error;

    fn try_from(r: pb::HeartbeatRequest) -> Result<Self, Error> {
        Ok(Heartbeat {
            key: task_key(r.job_id, r.component, r.version, r.role, r.party_id)?,
            token: r.token,
        })
    }
}

impl From<Task> for pb::PartyTask {
    fn from(task: Task) -> Self {
        pb::PartyTask {
            job_id: task.key.job_id,
            component: task.key.component,
            version: task.key.version,
            role: task.key.role,
            party_id: task.key.party_id,
            module: task.module,
            party_status: task_status_to_pb(task.party_status) as i32,
            status: task_status_to_pb(task.status) as i32,
            reason: task.reason,
            pid: task.pid,
            need_run: task.need_run,
            start_time_ms: task.start_ms,
            end_time_ms: task.end_ms,
            output_json: task.output,
        }
    }
}
