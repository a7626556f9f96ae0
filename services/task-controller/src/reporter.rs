//! This party's task statuses for each job's scheduler, through the gateway: the report is
//! committed to the outbox with the status change and delivered, with backoff, until the
//! scheduler answers (the scheduler also pulls from parties that have gone quiet).

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
        fedflow_rpc::error::delivery(result, &request.request_id).is_ok()
    }

    /// The command that reports `status` of `key` to the job's scheduler (for the outbox,
    /// committed with the status change).
    pub fn report_command(
        scheduler_party: &str,
        key: &TaskKey,
        status: TaskStatus,
        reason: &str,
    ) -> fedflow_store::Command {
        let request = request(key, status, reason);
        fedflow_store::Command {
            dest: scheduler_party.to_owned(),
            service: services::STATUS_REPORT.into(),
            method: "ReportTaskStatus".into(),
            job_id: key.job_id.clone(),
            request_id: request.request_id.clone(),
            payload: prost::Message::encode_to_vec(&request),
        }
    }

    /// Delivers an outbox command through the gateway: `Ok` once the scheduler answered (a
    /// refusal is final and logged; the scheduler also pulls from quiet parties), `Err` while
    /// it cannot be reached.
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
        fedflow_rpc::error::delivery(result, &command.request_id)
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
