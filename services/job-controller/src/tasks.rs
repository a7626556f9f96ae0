//! The job-controller's calls to its own party's task-controller (direct: same party).

use fedflow_core::TaskStatus;
use fedflow_core::dsl::TaskPlan;
use fedflow_core::ids::Participant;
use fedflow_proto::taskcontroller::v1 as pb;
use fedflow_rpc::convert::task_status_to_pb;
use fedflow_rpc::error::RemoteError;
use tonic::transport::Channel;

#[derive(Clone)]
pub struct TaskControllerClient {
    channel: Channel,
    client: pb::task_controller_client::TaskControllerClient<Channel>,
}

impl TaskControllerClient {
    pub fn new(addr: &str) -> Result<Self, tonic::transport::Error> {
        let channel = fedflow_rpc::channel(addr)?;
        Ok(TaskControllerClient {
            client: pb::task_controller_client::TaskControllerClient::new(channel.clone()),
            channel,
        })
    }

    pub async fn create_tasks(
        &self,
        job_id: &str,
        who: &Participant,
        scheduler_party_id: &str,
        version: i32,
        plans: &[TaskPlan],
    ) -> Result<(), RemoteError> {
        let request = pb::CreateTasksRequest {
            job_id: job_id.to_owned(),
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            scheduler_party_id: scheduler_party_id.to_owned(),
            version,
            tasks: plans
                .iter()
                .map(|plan| pb::TaskSpec {
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
        self.client.clone().create_tasks(request).await?;
        Ok(())
    }

    /// Delivers an outbox command: `Ok` once the task-controller answered (a refusal is final
    /// and logged), `Err` while it cannot be reached.
    pub async fn deliver(&self, command: fedflow_store::Command) -> Result<(), String> {
        let result = fedflow_rpc::raw::unary(
            self.channel.clone(),
            &command.service,
            &command.method,
            command.payload.into(),
            std::time::Duration::from_secs(10),
            None,
        )
        .await;
        fedflow_rpc::error::delivery(result, &command.request_id)
    }

    /// The command that stops the job's remaining tasks of `who` here (for the outbox).
    pub fn stop_command(
        job_id: &str,
        who: &Participant,
        status: TaskStatus,
        reason: &str,
    ) -> fedflow_store::Command {
        let request = pb::StopTasksRequest {
            job_id: job_id.to_owned(),
            component: String::new(),
            version: None,
            role: who.role.clone(),
            party_id: who.party_id.clone(),
            status: task_status_to_pb(status) as i32,
            reason: reason.to_owned(),
            request_id: format!("{job_id}:stop-tasks:{}:{}", who.role, who.party_id),
        };
        fedflow_store::Command {
            dest: "task-controller".into(),
            service: fedflow_rpc::party::services::TASK_CONTROLLER.into(),
            method: "StopTasks".into(),
            job_id: job_id.to_owned(),
            request_id: request.request_id.clone(),
            payload: prost::Message::encode_to_vec(&request),
        }
    }
}
