//! The scheduler's calls to parties' services, always through its own party-gateway (its own
//! party included). Request ids are derived from what the call does, so a retried call is
//! recognised by its receiver.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fedflow_core::dsl::TaskPlan;
use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_rpc::convert::{job_status_to_pb, task_status_from_pb, task_status_to_pb};
use fedflow_rpc::error::RemoteError;
use fedflow_rpc::party::{PartyClient, services};

#[derive(Clone)]
pub struct Remote {
    client: PartyClient,
    /// Per party, since when every call to it has failed to reach it (epoch ms); a party
    /// that answers (anything, even a refusal) is removed.
    unreachable: Arc<Mutex<HashMap<String, i64>>>,
}

/// The answer to a resource request.
pub enum Grant {
    Granted,
    Refused(String),
}

impl Remote {
    pub fn new(client: PartyClient) -> Self {
        Remote {
            client,
            unreachable: Arc::default(),
        }
    }

    /// How long every call to `party` has failed to reach it (ms), if its last call did.
    pub fn unreachable_for(&self, party: &str, now: i64) -> Option<i64> {
        self.unreachable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(party)
            .map(|since| now - since)
    }

    fn note_contact(&self, party: &str, reached: bool) {
        let mut unreachable = self.unreachable.lock().unwrap_or_else(|e| e.into_inner());
        if reached {
            unreachable.remove(party);
        } else {
            unreachable
                .entry(party.to_owned())
                .or_insert_with(fedflow_rpc::now_ms);
        }
    }

    async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        dest: &str,
        job_id: &str,
        service: &str,
        method: &str,
        request_id: String,
        request: &Req,
    ) -> Result<Resp, RemoteError> {
        let result = self
            .client
            .call(dest, job_id, service, method, &request_id, request)
            .await
            .map_err(RemoteError::from);
        self.note_contact(dest, !matches!(&result, Err(e) if e.is_transient()));
        result
    }

    pub async fn create_job(
        &self,
        job_id: &str,
        who: &Participant,
        dsl: &str,
        conf: &str,
        scheduler_party: &str,
    ) -> Result<(), RemoteError> {
        let request = jc::CreateJobRequest {
            job_id: job_id.to_owned(),
            dsl: dsl.to_owned(),
            runtime_conf: conf.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            scheduler_party_id: scheduler_party.to_owned(),
            request_id: format!("{job_id}:create:{}:{}", who.role, who.party_id),
        };
        let _: jc::CreateJobResponse = self
            .call(
                &who.party_id,
                job_id,
                services::JOB_CONTROLLER,
                "CreateJob",
                request.request_id.clone(),
                &request,
            )
            .await?;
        Ok(())
    }

    /// Delivers an outbox command through the gateway: `Ok` once the party answered (a
    /// refusal is final and logged), `Err` while it cannot be reached.
    pub async fn deliver(&self, command: fedflow_store::Command) -> Result<(), String> {
        let result = self
            .client
            .call_raw(
                &command.dest,
                &command.job_id,
                &command.service,
                &command.method,
                &command.request_id,
                command.payload.into(),
            )
            .await;
        let delivered = fedflow_rpc::error::delivery(result, &command.request_id);
        self.note_contact(&command.dest, delivered.is_ok());
        delivered
    }

    /// The command that tells `who` the job's status (for the outbox).
    pub fn job_status_command(
        job_id: &str,
        epoch: i64,
        who: &Participant,
        status: JobStatus,
        reason: &str,
    ) -> fedflow_store::Command {
        let request = jc::UpdateJobStatusRequest {
            job_id: job_id.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            status: job_status_to_pb(status) as i32,
            reason: reason.to_owned(),
            request_id: format!(
                "{job_id}:{epoch}:status:{}:{}:{status}",
                who.role, who.party_id
            ),
        };
        fedflow_store::Command {
            dest: who.party_id.clone(),
            service: services::JOB_CONTROLLER.into(),
            method: "UpdateJobStatus".into(),
            job_id: job_id.to_owned(),
            request_id: request.request_id.clone(),
            payload: prost::Message::encode_to_vec(&request),
        }
    }

    /// The command that tells `party` a task version's federated status (for the outbox).
    pub fn task_status_command(
        job_id: &str,
        party: &str,
        component: &str,
        version: i32,
        status: TaskStatus,
    ) -> fedflow_store::Command {
        let request = tc::UpdateTaskStatusRequest {
            job_id: job_id.to_owned(),
            component: component.to_owned(),
            version,
            status: task_status_to_pb(status) as i32,
            request_id: format!("{job_id}:task-status:{component}:{version}:{party}:{status}"),
        };
        fedflow_store::Command {
            dest: party.to_owned(),
            service: services::TASK_CONTROLLER.into(),
            method: "UpdateTaskStatus".into(),
            job_id: job_id.to_owned(),
            request_id: request.request_id.clone(),
            payload: prost::Message::encode_to_vec(&request),
        }
    }

    pub async fn update_job_status(
        &self,
        job_id: &str,
        epoch: i64,
        who: &Participant,
        status: JobStatus,
        reason: &str,
    ) -> Result<(), RemoteError> {
        let request = jc::UpdateJobStatusRequest {
            job_id: job_id.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            status: job_status_to_pb(status) as i32,
            reason: reason.to_owned(),
            request_id: format!(
                "{job_id}:{epoch}:status:{}:{}:{status}",
                who.role, who.party_id
            ),
        };
        let _: jc::UpdateJobStatusResponse = self
            .call(
                &who.party_id,
                job_id,
                services::JOB_CONTROLLER,
                "UpdateJobStatus",
                request.request_id.clone(),
                &request,
            )
            .await?;
        Ok(())
    }

    pub async fn apply_resource(
        &self,
        job_id: &str,
        who: &Participant,
    ) -> Result<Grant, RemoteError> {
        let request = jc::ApplyResourceRequest {
            job_id: job_id.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            request_id: fedflow_rpc::new_request_id(),
        };
        let reply: jc::ApplyResourceResponse = self
            .call(
                &who.party_id,
                job_id,
                services::JOB_CONTROLLER,
                "ApplyResource",
                request.request_id.clone(),
                &request,
            )
            .await?;
        Ok(if reply.granted {
            Grant::Granted
        } else {
            Grant::Refused(reply.reason)
        })
    }

    pub async fn return_resource(
        &self,
        job_id: &str,
        who: &Participant,
    ) -> Result<(), RemoteError> {
        let request = jc::ReturnResourceRequest {
            job_id: job_id.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            request_id: fedflow_rpc::new_request_id(),
        };
        let _: jc::ReturnResourceResponse = self
            .call(
                &who.party_id,
                job_id,
                services::JOB_CONTROLLER,
                "ReturnResource",
                request.request_id.clone(),
                &request,
            )
            .await?;
        Ok(())
    }

    pub async fn start_job(
        &self,
        job_id: &str,
        epoch: i64,
        who: &Participant,
    ) -> Result<(), RemoteError> {
        let request = jc::StartJobRequest {
            job_id: job_id.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            request_id: format!("{job_id}:{epoch}:start:{}:{}", who.role, who.party_id),
        };
        let _: jc::StartJobResponse = self
            .call(
                &who.party_id,
                job_id,
                services::JOB_CONTROLLER,
                "StartJob",
                request.request_id.clone(),
                &request,
            )
            .await?;
        Ok(())
    }

    /// The jobs rows a party holds for `job_id`: (role, scheduler party).
    pub async fn party_jobs(
        &self,
        party: &str,
        job_id: &str,
    ) -> Result<Vec<(String, String)>, RemoteError> {
        let request = jc::GetJobRequest {
            job_id: job_id.to_owned(),
        };
        let reply: jc::GetJobResponse = self
            .call(
                party,
                job_id,
                services::JOB_CONTROLLER,
                "GetJob",
                fedflow_rpc::new_request_id(),
                &request,
            )
            .await?;
        Ok(reply
            .jobs
            .into_iter()
            .map(|j| (j.role, j.scheduler_party_id))
            .collect())
    }

    pub async fn create_tasks(
        &self,
        job_id: &str,
        who: &Participant,
        scheduler_party: &str,
        version: i32,
        plans: &[TaskPlan],
    ) -> Result<(), RemoteError> {
        let request = tc::CreateTasksRequest {
            job_id: job_id.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            scheduler_party_id: scheduler_party.to_owned(),
            version,
            tasks: plans
                .iter()
                .map(|plan| tc::TaskSpec {
                    component: plan.component.clone(),
                    module: plan.module.clone(),
                    parameters_json: serde_json::Value::Object(plan.params.clone()).to_string(),
                    need_run: plan.need_run,
                    upstream: plan.upstream.clone(),
                })
                .collect(),
            request_id: format!(
                "{job_id}:create-tasks:{}:{}:{version}",
                who.role, who.party_id
            ),
        };
        let _: tc::CreateTasksResponse = self
            .call(
                &who.party_id,
                job_id,
                services::TASK_CONTROLLER,
                "CreateTasks",
                request.request_id.clone(),
                &request,
            )
            .await?;
        Ok(())
    }

    /// Starts a task version on one participant; returns its party status after the call.
    pub async fn start_task(
        &self,
        job_id: &str,
        who: &Participant,
        component: &str,
        version: i32,
    ) -> Result<TaskStatus, RemoteError> {
        let request = tc::StartTaskRequest {
            job_id: job_id.to_owned(),
            component: component.to_owned(),
            version,
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            request_id: format!(
                "{job_id}:start-task:{component}:{version}:{}:{}",
                who.role, who.party_id
            ),
        };
        let reply: tc::StartTaskResponse = self
            .call(
                &who.party_id,
                job_id,
                services::TASK_CONTROLLER,
                "StartTask",
                request.request_id.clone(),
                &request,
            )
            .await?;
        task_status_from_pb(reply.status).ok_or_else(|| RemoteError {
            code: tonic::Code::Internal,
            message: format!("party {} answered no task status", who.party_id),
        })
    }

    /// `epoch`: when the job last entered the queue (a job-wide stop of each run is its own
    /// call).
    pub async fn stop_tasks(
        &self,
        job_id: &str,
        epoch: i64,
        who: &Participant,
        task: Option<(&str, i32)>,
        status: TaskStatus,
        reason: &str,
    ) -> Result<u32, RemoteError> {
        let request = tc::StopTasksRequest {
            job_id: job_id.to_owned(),
            component: task.map(|(c, _)| c).unwrap_or_default().to_owned(),
            version: task.map(|(_, v)| v),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            status: task_status_to_pb(status) as i32,
            reason: reason.to_owned(),
            request_id: match task {
                Some((component, version)) => format!(
                    "{job_id}:stop:{component}:{version}:{}:{}",
                    who.role, who.party_id
                ),
                None => format!("{job_id}:{epoch}:stop:*:{}:{}", who.role, who.party_id),
            },
        };
        let reply: tc::StopTasksResponse = self
            .call(
                &who.party_id,
                job_id,
                services::TASK_CONTROLLER,
                "StopTasks",
                request.request_id.clone(),
                &request,
            )
            .await?;
        Ok(reply.stopped)
    }

    /// Asks another party's scheduler (the job's) through the gateways.
    pub async fn scheduler<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        party: &str,
        job_id: &str,
        method: &str,
        request: &Req,
    ) -> Result<Resp, RemoteError> {
        self.call(
            party,
            job_id,
            services::SCHEDULER,
            method,
            fedflow_rpc::new_request_id(),
            request,
        )
        .await
    }
}

/// A party's own status of one task row, as its task-controller holds it.
pub struct PartyTaskStatus {
    pub component: String,
    pub version: i32,
    pub who: Participant,
    pub party_status: TaskStatus,
    pub reason: String,
}

impl Remote {
    /// Pulls a party's task rows of a job (for parties that have gone quiet).
    pub async fn party_tasks(
        &self,
        party: &str,
        job_id: &str,
    ) -> Result<Vec<PartyTaskStatus>, RemoteError> {
        let request = tc::ListTasksRequest {
            job_id: job_id.to_owned(),
        };
        let reply: tc::ListTasksResponse = self
            .call(
                party,
                job_id,
                services::TASK_CONTROLLER,
                "ListTasks",
                fedflow_rpc::new_request_id(),
                &request,
            )
            .await?;
        Ok(reply
            .tasks
            .into_iter()
            .filter_map(|t| {
                Some(PartyTaskStatus {
                    party_status: task_status_from_pb(t.party_status)?,
                    component: t.component,
                    version: t.version,
                    who: Participant {
                        role: t.role,
                        party_id: t.party_id,
                    },
                    reason: t.reason,
                })
            })
            .collect())
    }
}

impl Remote {
    /// The output of a component on one participant, from its task-controller.
    pub async fn task_output(
        &self,
        job_id: &str,
        component: &str,
        who: &Participant,
    ) -> Result<(i32, String), RemoteError> {
        let request = tc::GetTaskOutputRequest {
            job_id: job_id.to_owned(),
            component: component.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
        };
        let reply: tc::GetTaskOutputResponse = self
            .call(
                &who.party_id,
                job_id,
                services::TASK_CONTROLLER,
                "GetTaskOutput",
                fedflow_rpc::new_request_id(),
                &request,
            )
            .await?;
        Ok((reply.version, reply.output_json))
    }
}
