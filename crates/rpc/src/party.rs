//! How a service talks to a party's services: every call, including calls to its own party,
//! travels as a `Federation.Forward` envelope through the caller's party-gateway (DESIGN §2).
//! One path gives one place for deadlines, retries, authentication and audit.

use std::time::Duration;

use bytes::Bytes;
use fedflow_proto::gateway::v1 as gw;
use prost::Message;
use tonic::Status;
use tonic::transport::Channel;

use crate::now_ms;
pub use fedflow_core::access::Caller;

/// A client of the local gateway, sending as `local_party`.
#[derive(Clone)]
pub struct PartyClient {
    client: gw::federation_client::FederationClient<Channel>,
    local_party: String,
    timeout: Duration,
}

impl PartyClient {
    /// `gateway` is the local gateway's address; `timeout` the default deadline per call.
    pub fn new(
        gateway: &str,
        local_party: &str,
        timeout: Duration,
    ) -> Result<Self, tonic::transport::Error> {
        let channel = crate::channel(gateway)?;
        Ok(PartyClient {
            client: gw::federation_client::FederationClient::new(channel)
                .max_decoding_message_size(64 << 20),
            local_party: local_party.to_owned(),
            timeout,
        })
    }

    pub fn local_party(&self) -> &str {
        &self.local_party
    }

    /// Calls `service`/`method` on party `dest` with `request`, returning its decoded answer.
    /// The inner call's error comes back as it was (code and message).
    pub async fn call<Req: Message, Resp: Message + Default>(
        &self,
        dest: &str,
        job_id: &str,
        service: &str,
        method: &str,
        request_id: &str,
        request: &Req,
    ) -> Result<Resp, Status> {
        let reply = self
            .call_raw(
                dest,
                job_id,
                service,
                method,
                request_id,
                Bytes::from(request.encode_to_vec()),
            )
            .await?;
        Resp::decode(reply)
            .map_err(|e| Status::internal(format!("undecodable reply from party {dest}: {e}")))
    }

    /// [`PartyClient::call`] with an encoded request; returns the encoded reply.
    pub async fn call_raw(
        &self,
        dest: &str,
        job_id: &str,
        service: &str,
        method: &str,
        request_id: &str,
        payload: Bytes,
    ) -> Result<Bytes, Status> {
        let envelope = envelope(
            &self.local_party,
            dest,
            job_id,
            (service, method),
            request_id,
            payload,
            self.timeout,
        );
        let mut request = tonic::Request::new(envelope);
        request.set_timeout(self.timeout + Duration::from_millis(500));
        Ok(self
            .client
            .clone()
            .forward(request)
            .await?
            .into_inner()
            .payload)
    }
}

/// An envelope from `src` to `dest` for `service`/`method` about `job_id`, issued now and
/// valid for `lifetime`; `hops` 0 (the sending party's gateway raises it).
pub fn envelope(
    src: &str,
    dest: &str,
    job_id: &str,
    (service, method): (&str, &str),
    request_id: &str,
    payload: Bytes,
    lifetime: Duration,
) -> gw::Envelope {
    let now = now_ms();
    gw::Envelope {
        src_party_id: src.to_owned(),
        dest_party_id: dest.to_owned(),
        job_id: job_id.to_owned(),
        service: service.to_owned(),
        method: method.to_owned(),
        request_id: request_id.to_owned(),
        deadline_unix_ms: now + i64::try_from(lifetime.as_millis()).unwrap_or(30_000),
        trace_context: Default::default(),
        payload,
        hops: 0,
        issued_at_unix_ms: now,
    }
}

/// Full gRPC service names, as envelopes carry them.
pub mod services {
    pub const SCHEDULER: &str = "fedflow.scheduler.v1.Scheduler";
    pub const STATUS_REPORT: &str = "fedflow.scheduler.v1.StatusReport";
    pub const JOB_CONTROLLER: &str = "fedflow.jobcontroller.v1.JobController";
    pub const TASK_CONTROLLER: &str = "fedflow.taskcontroller.v1.TaskController";
}

/// The metadata key under which the gateway tells a local service which party a call comes
/// from: this party for its own services' calls, the authenticated peer for another party's.
pub const CALLER_HEADER: &str = "x-fedflow-caller-party";

/// Who made `request`, for a service of party `own_party`, as the gateway vouched for it: no
/// header (a direct call on the service's own port, which only the party's own network
/// reaches) or this party is [`Caller::Local`].
pub fn caller<T>(request: &tonic::Request<T>, own_party: &str) -> Caller {
    match request
        .metadata()
        .get(CALLER_HEADER)
        .and_then(|v| v.to_str().ok())
    {
        Some(party) if party != own_party => Caller::Party(party.to_owned()),
        _ => Caller::Local,
    }
}
