//! Delivery of the `StopTasks` commands that earlier versions of the job-controller committed to
//! its outbox for its own party's task-controller (direct, same party). The job-controller
//! commits no new ones: the scheduler creates and stops every party's tasks.

use std::time::Duration;

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

    /// Delivers an outbox command, once: `Ok` once the task-controller answered (a refusal is
    /// final and logged), `Err` while it cannot be reached.
    pub async fn deliver(&self, command: fedflow_store::Command) -> Result<(), String> {
        self.client.deliver(command).await
    }
}
