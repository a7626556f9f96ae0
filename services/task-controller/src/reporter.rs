//! Pushes this party's task statuses to each job's scheduler, through the gateway, retrying
//! with backoff until the scheduler acknowledges (or a long bound passes; the scheduler also
//! pulls from quiet parties).

use std::time::Duration;

use fedflow_core::TaskStatus;
use fedflow_proto::scheduler::v1 as pb;
use fedflow_rpc::convert::task_status_to_pb;
use fedflow_rpc::party::{PartyClient, services};

use crate::store::TaskKey;

#[derive(Clone)]
pub struct Reporter {
    client: PartyClient,
}

impl Reporter {
    pub fn new(client: PartyClient) -> Self {
        Reporter { client }
    }

    /// Sends `status` once and waits for the answer: a probe of whether the scheduler
    /// party can be reached. True when it answered (whatever it said).
    pub async fn probe(&self, scheduler_party: &str, key: &TaskKey, status: TaskStatus) -> bool {
        let request = request(key, status, "");
        let result: Result<pb::ReportTaskStatusResponse, _> = self
            .client
            .call(
                scheduler_party,
                &request.job_id,
                services::STATUS_REPORT,
                "ReportTaskStatus",
                &request.request_id,
                &request,
            )
            .await;
        !matches!(
            result,
            Err(status) if matches!(
                status.code(),
                tonic::Code::Unavailable
                    | tonic::Code::DeadlineExceeded
                    | tonic::Code::Unknown
                    | tonic::Code::Cancelled
            )
        )
    }

    /// Sends in the background.
    pub fn report(&self, scheduler_party: &str, key: &TaskKey, status: TaskStatus, reason: &str) {
        let client = self.client.clone();
        let dest = scheduler_party.to_owned();
        let request = request(key, status, reason);
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(50);
            for attempt in 1..=30 {
                let result: Result<pb::ReportTaskStatusResponse, _> = client
                    .call(
                        &dest,
                        &request.job_id,
                        services::STATUS_REPORT,
                        "ReportTaskStatus",
                        &request.request_id,
                        &request,
                    )
                    .await;
                match result {
                    Ok(_) => return,
                    Err(status)
                        if matches!(
                            status.code(),
                            tonic::Code::InvalidArgument
                                | tonic::Code::NotFound
                                | tonic::Code::PermissionDenied
                        ) =>
                    {
                        tracing::warn!(job = %request.job_id, component = %request.component, error = %status.message(), "status report refused");
                        return;
                    }
                    Err(status) => {
                        tracing::debug!(attempt, job = %request.job_id, error = %status.message(), "status report failed, retrying");
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(5));
                    }
                }
            }
            tracing::warn!(job = %request.job_id, component = %request.component, "status report not delivered; the scheduler will pull it");
        });
    }
}

fn request(key: &TaskKey, status: TaskStatus, reason: &str) -> pb::ReportTaskStatusRequest {
    pb::ReportTaskStatusRequest {
        job_id: key.job_id.clone(),
        component: key.component.clone(),
        version: key.version,
        role: key.role.clone(),
        party_id: key.party_id.clone(),
        status: task_status_to_pb(status) as i32,
        reason: reason.to_owned(),
        request_id: format!(
            "{}:report:{}:{}:{}:{}:{}",
            key.job_id, key.component, key.version, key.role, key.party_id, status
        ),
    }
}
