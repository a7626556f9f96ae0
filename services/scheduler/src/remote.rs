//! The scheduler's calls to parties' services, always through its own party-gateway (its own
//! party included). Each is a typed call from `fedflow_rpc::calls` (one definition of its
//! service, method, request id and retry rule, shared with every other sender) sent through
//! [`PartyClient::send`], which retries; the outbox commands are made from the same calls.
//! Every call also records whether the party could be reached ([`Remote::unreachable_for`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use fedflow_core::dsl::TaskPlan;
use fedflow_core::ids::Participant;
use fedflow_core::{JobStatus, TaskStatus};
use fedflow_rpc::calls::{self, Call, PartyCall};
use fedflow_rpc::convert::task_status_from_pb;
use fedflow_rpc::error::RemoteError;
use fedflow_rpc::party::{PartyClient, services};

use crate::domain::end;

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

/// A party's own status of one task row, as its task-controller holds it.
pub struct PartyTaskStatus {
    pub component: String,
    pub version: i32,
    pub who: Participant,
    pub party_status: TaskStatus,
    pub reason: String,
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

    /// Sends `call` (with its retries) and notes whether its party was reached.
    async fn send<C: PartyCall>(&self, call: Call<C>) -> Result<C::Reply, RemoteError> {
        let result = self.client.send(&call).await;
        self.note_contact(&call.dest, !matches!(&result, Err(e) if e.is_transient()));
        result
    }

    pub async fn create_job(
        &self,
        job_id: &str,
        who: &Participant,
        dsl: &str,
        conf: &str,
        scheduler_party: &str,
        plans: &[TaskPlan],
    ) -> Result<(), RemoteError> {
        self.send(calls::create_job(
            job_id,
            who,
            dsl,
            conf,
            scheduler_party,
            plans,
        ))
        .await?;
        Ok(())
    }

    /// Delivers an outbox command through the gateway, once: `Ok` once the party answered (a
    /// refusal is final and logged), `Err` while it cannot be reached.
    pub async fn deliver(&self, command: fedflow_store::Command) -> Result<(), String> {
        let dest = command.dest.clone();
        let delivered = self.client.deliver(command).await;
        self.note_contact(&dest, delivered.is_ok());
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
        calls::update_job_status(job_id, epoch, who, status, reason).command()
    }

    /// The command that stops what still runs of the job's run `epoch` on `who` once it ended
    /// (for the outbox, committed with the end).
    pub fn end_stop_command(
        job_id: &str,
        epoch: i64,
        who: &Participant,
        stop: &end::Stop,
    ) -> fedflow_store::Command {
        calls::end_stop(job_id, epoch, who, stop.status, &stop.reason).command()
    }

    /// The command that tells `party` a task version's federated status (for the outbox).
    pub fn task_status_command(
        job_id: &str,
        party: &str,
        component: &str,
        version: i32,
        status: TaskStatus,
    ) -> fedflow_store::Command {
        calls::update_task_status(job_id, party, component, version, status).command()
    }

    /// The command that tells `party` the federated statuses of several task versions at once
    /// (component, version, status), the end sync of the job's run `epoch`; `None` for none.
    pub fn task_statuses_command(
        job_id: &str,
        epoch: i64,
        party: &str,
        statuses: &[(&str, i32, TaskStatus)],
    ) -> Option<fedflow_store::Command> {
        calls::update_task_statuses(job_id, epoch, party, statuses).map(|c| c.command())
    }

    /// The same call as [`Remote::job_status_command`], sent now.
    pub async fn update_job_status(
        &self,
        job_id: &str,
        epoch: i64,
        who: &Participant,
        status: JobStatus,
        reason: &str,
    ) -> Result<(), RemoteError> {
        self.send(calls::update_job_status(job_id, epoch, who, status, reason))
            .await?;
        Ok(())
    }

    pub async fn apply_resource(
        &self,
        job_id: &str,
        who: &Participant,
    ) -> Result<Grant, RemoteError> {
        let reply = self.send(calls::apply_resource(job_id, who)).await?;
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
        self.send(calls::return_resource(job_id, who)).await?;
        Ok(())
    }

    pub async fn start_job(
        &self,
        job_id: &str,
        epoch: i64,
        who: &Participant,
    ) -> Result<(), RemoteError> {
        self.send(calls::start_job(job_id, epoch, who)).await?;
        Ok(())
    }

    /// The jobs rows a party holds for `job_id`: (role, scheduler party).
    pub async fn party_jobs(
        &self,
        party: &str,
        job_id: &str,
    ) -> Result<Vec<(String, String)>, RemoteError> {
        let reply = self.send(calls::party_job(party, job_id)).await?;
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
        parties: &[Participant],
    ) -> Result<(), RemoteError> {
        self.send(calls::create_tasks(
            job_id,
            who,
            scheduler_party,
            version,
            plans,
            parties,
        ))
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
        let reply = self
            .send(calls::start_task(job_id, who, component, version))
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
        let reply = self
            .send(calls::stop_tasks(job_id, epoch, who, task, status, reason))
            .await?;
        Ok(reply.stopped)
    }

    /// Asks another party's scheduler (the job's) through the gateways: a client call passed
    /// on as it is (retried only when it did not reach).
    pub async fn scheduler<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        party: &str,
        job_id: &str,
        method: &str,
        request: &Req,
    ) -> Result<Resp, RemoteError> {
        let result = self
            .client
            .send_raw(
                party,
                job_id,
                (services::SCHEDULER, method),
                Bytes::from(request.encode_to_vec()),
            )
            .await;
        self.note_contact(party, !matches!(&result, Err(e) if e.is_transient()));
        Resp::decode(result?).map_err(|e| RemoteError {
            code: tonic::Code::Internal,
            message: format!("undecodable reply from party {party}: {e}"),
        })
    }

    /// Asks this party's own data and artifacts registry (its task-controller's `Data`,
    /// through this party's gateway, never another party's): an encoded request passed on
    /// as it is, retried only when it did not reach; the encoded reply.
    pub async fn own_data(
        &self,
        method: &str,
        job_id: &str,
        payload: Bytes,
    ) -> Result<Bytes, RemoteError> {
        let own = self.client.local_party().to_owned();
        self.client
            .send_raw(
                &own,
                job_id,
                (services::TASK_CONTROLLER_DATA, method),
                payload,
            )
            .await
    }

    /// Pulls a party's task rows of a job (for parties that have gone quiet).
    pub async fn party_tasks(
        &self,
        party: &str,
        job_id: &str,
    ) -> Result<Vec<PartyTaskStatus>, RemoteError> {
        let reply = self.send(calls::party_tasks(party, job_id)).await?;
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

    /// The output of a component on one participant, from its task-controller.
    pub async fn task_output(
        &self,
        job_id: &str,
        component: &str,
        who: &Participant,
    ) -> Result<(i32, String), RemoteError> {
        let reply = self
            .send(calls::task_output(job_id, component, who))
            .await?;
        Ok((reply.version, reply.output_json))
    }
}
