//! This party's task-controller (direct, same party): the version-0 task rows a `CreateJob`
//! carries, and the delivery of the `StopTasks` commands that earlier versions of the
//! job-controller committed to its outbox (it commits no new ones: the scheduler stops every
//! party's tasks).

use std::time::Duration;

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

    /// Creates version 0 of `who`'s tasks of the job, once (the scheduler's retry of its
    /// `CreateJob` repeats it; a repeat creates nothing more).
    pub async fn create_tasks(
        &self,
        job_id: &str,
        who: &Participant,
        scheduler_party: &str,
        plans: &[TaskPlan],
        parties: &[Participant],
    ) -> Result<(), RemoteError> {
        let call = calls::create_tasks(job_id, who, scheduler_party, 0, plans, parties);
        self.client.send_once(&call).await?;
        Ok(())
    }

    /// Delivers an outbox command, once: `Ok` once the task-controller answered (a refusal is
    /// final and logged), `Err` while it cannot be reached.
    pub async fn deliver(&self, command: fedflow_store::Command) -> Result<(), String> {
        self.client.deliver(command).await
    }
}
