//! Requests into the app's commands and rows into replies. Each `TryFrom<pb::XRequest>` checks
//! every id, status and parameter of the request once, on arrival, into the typed ids of
//! [`fedflow_core::ids`], naming the bad field, so the app only ever sees well-formed values;
//! whether a party id is this party's is the app's to say.

use fedflow_core::TaskStatus;
use fedflow_core::ids::{self, ComponentName, JobId, Participant, PartyId, Role, TaskKey};
use fedflow_proto::taskcontroller::v1 as pb;
use fedflow_rpc::convert::{task_status_from_pb, task_status_to_pb};

use crate::app::{CreateTasks, Error, NewTask, StopTasks, WorkerReport};
use crate::domain::Task;
use crate::domain::attempt::Which;

fn status_of(value: i32, field: &str) -> Result<TaskStatus, Error> {
    task_status_from_pb(value)
        .ok_or_else(|| Error::InvalidArgument(format!("{field}: unspecified or unknown")))
}

/// A checked job id.
pub fn job_id(job_id: String) -> Result<JobId, Error> {
    Ok(ids::field("job_id", job_id)?)
}

/// Task `i` of a `CreateTasks`: its ids, a known module, and parameters that are a JSON object
/// the module accepts.
fn new_task(i: usize, task: pb::TaskSpec) -> Result<NewTask, Error> {
    let component: ComponentName = ids::field(format!("tasks[{i}].component"), task.component)?;
    // A module that is not built in must be registered here (the app checks).
    let builtin = fedflow_core::modules::is_known(&task.module);
    let fate = fedflow_core::fate::component_of(&task.module)
        .is_some_and(fedflow_core::modules::is_external_name);
    if !builtin && !fate && !fedflow_core::modules::is_external_name(&task.module) {
        return Err(Error::InvalidArgument(format!(
            "unknown module {:?} for component {component}",
            task.module
        )));
    }
    let bad = |e: String| Error::InvalidArgument(format!("parameters of {component}: {e}"));
    let params: serde_json::Value =
        serde_json::from_str(&task.parameters_json).map_err(|e| bad(e.to_string()))?;
    let params = params
        .as_object()
        .ok_or_else(|| bad("not an object".to_owned()))?;
    if builtin {
        fedflow_core::modules::validate_params(&task.module, params).map_err(bad)?;
    }
    let upstream = task
        .upstream
        .into_iter()
        .enumerate()
        .map(|(j, up)| ids::field(format!("tasks[{i}].upstream[{j}]"), up))
        .collect::<Result<_, _>>()?;
    Ok(NewTask {
        component,
        module: task.module,
        parameters_json: task.parameters_json,
        need_run: task.need_run,
        upstream,
    })
}

impl TryFrom<pb::CreateTasksRequest> for CreateTasks {
    type Error = Error;

    fn try_from(r: pb::CreateTasksRequest) -> Result<Self, Error> {
        Ok(CreateTasks {
            job_id: job_id(r.job_id)?,
            scheduler_party_id: ids::field("scheduler_party_id", r.scheduler_party_id)?,
            role: ids::field("role", r.role)?,
            party_id: ids::field("party_id", r.party_id)?,
            version: ids::field("version", r.version)?,
            tasks: r
                .tasks
                .into_iter()
                .enumerate()
                .map(|(i, task)| new_task(i, task))
                .collect::<Result<_, _>>()?,
            parties: r
                .parties
                .into_iter()
                .enumerate()
                .map(|(i, p)| {
                    let role: Role = ids::field(format!("parties[{i}].role"), p.role)?;
                    let party_id: PartyId =
                        ids::field(format!("parties[{i}].party_id"), p.party_id)?;
                    Ok::<_, Error>(Participant {
                        role: role.into_inner(),
                        party_id: party_id.to_string(),
                    })
                })
                .collect::<Result<_, _>>()?,
        })
    }
}

/// `StartTask`: the task's key.
pub fn start_task(r: pb::StartTaskRequest) -> Result<TaskKey, Error> {
    Ok(TaskKey::from_fields(
        r.job_id,
        r.component,
        r.version,
        r.role,
        r.party_id,
    )?)
}

impl TryFrom<pb::StopTasksRequest> for StopTasks {
    type Error = Error;

    fn try_from(r: pb::StopTasksRequest) -> Result<Self, Error> {
        let status = status_of(r.status, "status")?;
        let job_id = job_id(r.job_id)?;
        let role: ids::Role = ids::field("role", r.role)?;
        let component = match r.component.as_str() {
            "" => None,
            _ => Some(ids::field::<ComponentName, _>("component", r.component)?),
        };
        Ok(StopTasks {
            job_id,
            party_id: ids::field("party_id", r.party_id)?,
            which: Which {
                role: role.into_inner(),
                component: component.map(ComponentName::into_inner),
                version: r.version,
            },
            status,
            reason: r.reason,
        })
    }
}

/// `UpdateTaskStatus`: the job and its task versions' federated statuses (the request's own
/// fields first, then `more`).
pub struct UpdateTaskStatus {
    pub job_id: JobId,
    pub updates: Vec<(ComponentName, i32, TaskStatus)>,
}

impl TryFrom<pb::UpdateTaskStatusRequest> for UpdateTaskStatus {
    type Error = Error;

    fn try_from(r: pb::UpdateTaskStatusRequest) -> Result<Self, Error> {
        let mut updates = vec![(
            ids::field("component", r.component)?,
            r.version,
            status_of(r.status, "status")?,
        )];
        for (i, u) in r.more.into_iter().enumerate() {
            updates.push((
                ids::field(format!("more[{i}].component"), u.component)?,
                u.version,
                status_of(u.status, &format!("more[{i}].status"))?,
            ));
        }
        Ok(UpdateTaskStatus {
            job_id: job_id(r.job_id)?,
            updates,
        })
    }
}

/// `GetTaskOutput`: (job, component, participant).
pub struct GetTaskOutput {
    pub job_id: JobId,
    pub component: ComponentName,
    pub role: ids::Role,
    pub party_id: ids::PartyId,
}

impl TryFrom<pb::GetTaskOutputRequest> for GetTaskOutput {
    type Error = Error;

    fn try_from(r: pb::GetTaskOutputRequest) -> Result<Self, Error> {
        Ok(GetTaskOutput {
            job_id: job_id(r.job_id)?,
            component: ids::field("component", r.component)?,
            role: ids::field("role", r.role)?,
            party_id: ids::field("party_id", r.party_id)?,
        })
    }
}

impl TryFrom<pb::ReportStatusRequest> for WorkerReport {
    type Error = Error;

    fn try_from(r: pb::ReportStatusRequest) -> Result<Self, Error> {
        let status = status_of(r.status, "status")?;
        Ok(WorkerReport {
            key: TaskKey::from_fields(r.job_id, r.component, r.version, r.role, r.party_id)?,
            token: r.token,
            status,
            reason: r.reason,
            output: r.output_json,
            outputs: r
                .outputs
                .into_iter()
                .enumerate()
                .map(|(i, o)| output_artifact(i, o))
                .collect::<Result<_, _>>()?,
        })
    }
}

/// Output `i` of a worker's report; its metadata and overview must be JSON.
fn output_artifact(
    i: usize,
    o: pb::OutputArtifact,
) -> Result<fedflow_core::task_file::OutputArtifact, Error> {
    let json = |field: &str, text: &str| -> Result<serde_json::Value, Error> {
        if text.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(text)
            .map_err(|e| Error::InvalidArgument(format!("outputs[{i}].{field}: {e}")))
    };
    Ok(fedflow_core::task_file::OutputArtifact {
        metadata: json("metadata_json", &o.metadata_json)?,
        overview: json("overview_json", &o.overview_json)?,
        output_key: o.output_key,
        kind: o.kind,
        type_name: o.type_name,
        file: o.file,
    })
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
            key: TaskKey::from_fields(r.job_id, r.component, r.version, r.role, r.party_id)?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn create() -> pb::CreateTasksRequest {
        pb::CreateTasksRequest {
            job_id: "202612010000000000000001".into(),
            role: "guest".into(),
            party_id: "9999".into(),
            scheduler_party_id: "9999".into(),
            version: 0,
            tasks: vec![pb::TaskSpec {
                component: "nap".into(),
                module: "Sleep".into(),
                parameters_json: r#"{"seconds": 1}"#.into(),
                need_run: true,
                upstream: vec!["reader".into()],
            }],
            request_id: String::new(),
            parties: Vec::new(),
        }
    }

    fn refusal(r: pb::CreateTasksRequest) -> String {
        match CreateTasks::try_from(r) {
            Err(Error::InvalidArgument(message)) => message,
            other => panic!("expected INVALID_ARGUMENT, got {other:?}"),
        }
    }

    #[test]
    fn a_bad_create_tasks_request_is_refused_naming_the_field() {
        let ok = CreateTasks::try_from(create()).expect("a valid request");
        assert_eq!(ok.tasks[0].upstream[0].as_str(), "reader");
        type Spoil = fn(&mut pb::CreateTasksRequest);
        let cases: [(Spoil, &str); 8] = [
            (|r| r.job_id = "../x".into(), "job_id: "),
            (
                |r| r.scheduler_party_id = String::new(),
                "scheduler_party_id: ",
            ),
            (|r| r.role = "admin".into(), "role: "),
            (|r| r.version = -1, "version: "),
            (
                |r| r.tasks[0].component = "a/b".into(),
                "tasks[0].component: ",
            ),
            (
                |r| r.tasks[0].upstream[0] = "a b".into(),
                "tasks[0].upstream[0]: ",
            ),
            (
                |r| r.tasks[0].module = "../Nope".into(),
                "unknown module \"../Nope\"",
            ),
            (
                |r| r.tasks[0].parameters_json = "[]".into(),
                "parameters of nap: not an object",
            ),
        ];
        for (spoil, names) in cases {
            let mut r = create();
            spoil(&mut r);
            let message = refusal(r);
            assert!(
                message.starts_with(names),
                "{message:?} should start with {names:?}"
            );
        }
    }

    #[test]
    fn a_stop_needs_a_known_status_and_an_empty_component_means_all() {
        let stop = pb::StopTasksRequest {
            job_id: "j1".into(),
            component: String::new(),
            role: "host".into(),
            party_id: "10000".into(),
            status: fedflow_proto::common::v1::TaskStatus::Canceled as i32,
            reason: "r".into(),
            request_id: String::new(),
            version: Some(2),
        };
        let converted = StopTasks::try_from(stop.clone()).expect("valid");
        assert_eq!(converted.which.component, None);
        assert_eq!(converted.which.version, Some(2));
        let unknown = StopTasks::try_from(pb::StopTasksRequest { status: 0, ..stop });
        assert!(
            matches!(&unknown, Err(Error::InvalidArgument(m)) if m == "status: unspecified or unknown"),
            "{unknown:?}"
        );
    }
}
