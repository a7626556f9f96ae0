//! The job-controller's calls to its own party's task-controller: direct (same party), with
//! the same typed calls (`fedflow_rpc::calls`) and request ids the scheduler uses, so a
//! version created here and one created by the scheduler are the same request.

use std::time::Duration;

use fedflow_core::TaskStatus;
use fedflow_core::dsl::TaskPlan;
use fedflow_core::ids::Participant;
use fedflow_rpc::calls;
use fedflow_rpc::error::RemoteError;
use fedflow_rpc::party::DirectClient;

#[derive(Clone)]
pub struct TaskControllerClient {
    client: DirectClient,
}

impl TaskControllerClient {
    pub fn new(addr: &str) -> Result<Self, tonic::transport::Error> {
        let channel = fedflow_rpc::channel(addr)?;
        Ok(TaskControllerClient {
            client: DirectClient::new(channel, Duration::from_secs(10)),
        })
    }

    /// Creates `who`'s task rows of one version (once: the scheduler sends the `CreateJob`
    /// that calls for it again if this fails).
    pub async fn create_tasks(
        &self,
        job_id: &str,
        who: &Participant,
        scheduler_party_id: &str,
        version: i32,
        plans: &[TaskPlan],
    ) -> Result<(), RemoteError> {
        let call = calls::create_tasks(job_id, who, scheduler_party_id, version, plans);
        self.client.send_once(&call).await?;
        Ok(())
    }

    /// Delivers an outbox command, once: `Ok` once the task-controller answered (a refusal is
    /// final and logged), `Err` while it cannot be reached.
    pub async fn deliver(&self, command: fedflow_store::Command) -> Result<(), String> {
        self.client.deliver(command).await
    }

    /// The command that stops the job's remaining tasks of `who` here (for the outbox).
    pub fn stop_command(
        job_id: &str,
        who: &Participant,
        status: TaskStatus,
        reason: &str,
    ) -> fedflow_store::Command {
        calls::stop_remaining(job_id, who, status, reason).command()
    }
}
