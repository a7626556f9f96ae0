//! This party's task statuses for each job's scheduler, through the gateway: the report is
//! committed to the outbox with the status change and delivered, with backoff, until the
//! scheduler answers (the scheduler also pulls from parties that have gone quiet). The calls
//! are `fedflow_rpc::calls`' `report` and `probe`; this adapter maps a [`TaskKey`] onto them.

pub mod sessions;

use fedflow_core::TaskStatus;
use fedflow_core::ids::Participant;
use fedflow_rpc::calls;
use fedflow_rpc::party::PartyClient;

use crate::store::TaskKey;

#[derive(Clone)]
pub struct Reporter {
    client: PartyClient,
}

impl Reporter {
    pub fn new(client: PartyClient) -> Self {
        Reporter { client }
    }

    /// Whether the scheduler party can be reached about `key`'s job: one `Scheduler.Probe`,
    /// which it answers without side effects. True when it answered (whatever it said).
    /// `_status` is the status the fencing pass holds the task in; the probe does not send it.
    pub async fn probe(&self, scheduler_party: &str, key: &TaskKey, _status: TaskStatus) -> bool {
        let call = calls::probe(scheduler_party, &key.job_id);
        let result = self.client.send_once(&call).await;
        fedflow_rpc::error::delivery(result, &call.request_id).is_ok()
    }

    /// The command that reports `status` of `key` to the job's scheduler (for the outbox,
    /// committed with the status change).
    pub fn report_command(
        scheduler_party: &str,
        key: &TaskKey,
        status: TaskStatus,
        reason: &str,
    ) -> fedflow_store::Command {
        let who = Participant {
            role: key.role.clone(),
            party_id: key.party_id.clone(),
        };
        calls::report(
            scheduler_party,
            &key.job_id,
            &key.component,
            key.version,
            &who,
            status,
            reason,
        )
        .command()
    }

    /// Delivers an outbox command through the gateway, once: `Ok` once the scheduler answered
    /// (a refusal is final and logged; the scheduler also pulls from quiet parties), `Err`
    /// while it cannot be reached.
    pub async fn deliver(&self, command: fedflow_store::Command) -> Result<(), String> {
        self.client.deliver(command).await
    }
}
