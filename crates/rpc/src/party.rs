//! How a service talks to a party's services: every call, including calls to its own party,
//! travels as a `Federation.Forward` envelope through the caller's party-gateway. This is the
//! one layer that retries: [`PartyClient::send`] tries a [`crate::calls::Call`] again on the
//! failures its definition allows, with [`crate::retry::backoff`]; the gateway forwards once,
//! and outbox senders make one attempt per delivery ([`PartyClient::deliver`]).

use std::time::Duration;

use bytes::Bytes;
use fedflow_proto::gateway::v1 as gw;
use prost::Message;
use tonic::transport::Channel;
use tracing::Instrument;

use crate::calls::{Call, Command, PartyCall};
use crate::error::RemoteError;
use crate::now_ms;
pub use fedflow_core::access::Caller;

/// The metadata key that carries a call's request id to the service that serves it: set by
/// the gateway from `Envelope.request_id` (where [`PartyClient`] puts it) and by
/// [`DirectClient`]; [`crate::server::RequestIdLayer`] scopes it.
pub const REQUEST_ID_HEADER: &str = "x-fedflow-request-id";

/// The metadata key that names the job a call is about, beside its trace context: set by the
/// gateway from `Envelope.job_id` and by [`DirectClient`], so the serving process remembers
/// the job's trace context ([`fedflow_telemetry::context::jobs`]).
pub const JOB_ID_HEADER: &str = "x-fedflow-job-id";

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

    /// Sends `call`, trying again (with the same request id) on the failures its definition
    /// allows ([`PartyCall::RETRY`]), with [`crate::retry::backoff`]; the last failure is
    /// returned. The callee's error comes back as it was (code and message).
    pub async fn send<C: PartyCall>(&self, call: &Call<C>) -> Result<C::Reply, RemoteError> {
        let payload = Bytes::from(call.request.encode_to_vec());
        let bytes = crate::retry::run(crate::retry::backoff(), C::RETRY, C::METHOD, || {
            self.forward(
                &call.dest,
                call.request.job_id(),
                (C::SERVICE, C::METHOD),
                &call.request_id,
                payload.clone(),
            )
        })
        .await?;
        decode(&call.dest, bytes)
    }

    /// Sends `call` once (a probe: whether the party answers now).
    pub async fn send_once<C: PartyCall>(&self, call: &Call<C>) -> Result<C::Reply, RemoteError> {
        let bytes = self
            .forward(
                &call.dest,
                call.request.job_id(),
                (C::SERVICE, C::METHOD),
                &call.request_id,
                Bytes::from(call.request.encode_to_vec()),
            )
            .await?;
        decode(&call.dest, bytes)
    }

    /// [`PartyClient::send`] of an already encoded request to `service`/`method` (a client
    /// call passed on as it is), retried only when it did not reach; the encoded reply.
    pub async fn send_raw(
        &self,
        dest: &str,
        job_id: &str,
        (service, method): (&str, &str),
        payload: Bytes,
    ) -> Result<Bytes, RemoteError> {
        let request_id = crate::request_id::fresh();
        crate::retry::run(
            crate::retry::backoff(),
            crate::retry::Retry::Unreached,
            method,
            || {
                self.forward(
                    dest,
                    job_id,
                    (service, method),
                    &request_id,
                    payload.clone(),
                )
            },
        )
        .await
    }

    /// Delivers an outbox command, once: `Ok` once the party answered (a refusal is final,
    /// and logged), `Err` with the reason while it cannot be reached; the outbox tries again
    /// on its own schedule.
    pub async fn deliver(&self, command: Command) -> Result<(), String> {
        let result = self
            .forward(
                &command.dest,
                &command.job_id,
                (&command.service, &command.method),
                &command.request_id,
                command.payload.into(),
            )
            .await;
        crate::error::delivery(result, &command.request_id)
    }

    /// One envelope through the local gateway; the encoded reply.
    async fn forward(
        &self,
        dest: &str,
        job_id: &str,
        (service, method): (&str, &str),
        request_id: &str,
        payload: Bytes,
    ) -> Result<Bytes, RemoteError> {
        let mut envelope = envelope(
            &self.local_party,
            dest,
            job_id,
            (service, method),
            request_id,
            payload,
            self.timeout,
        );
        // The request id travels in the envelope; the destination's gateway hands it to the
        // service as REQUEST_ID_HEADER.
        let deadline = self.timeout + Duration::from_millis(500);
        if !fedflow_telemetry::context::exporting() {
            return Ok(forward_envelope(&self.client, envelope, deadline).await?);
        }
        // The call's span joins its job's trace; its context travels in the envelope.
        let span = tracing::info_span!(
            "party call",
            job_id = %job_id,
            party_id = %self.local_party,
            dest_party_id = %dest,
            rpc.service = %service,
            rpc.method = %method,
        );
        fedflow_telemetry::context::join_job(&span, job_id);
        fedflow_telemetry::context::inject(&span, &mut envelope.trace_context);
        Ok(forward_envelope(&self.client, envelope, deadline)
            .instrument(span)
            .await?)
    }
}

/// Sends `envelope` as it is through the gateway `client` (`Federation.Forward`), with the
/// call's deadline `timeout`; the encoded inner reply.
pub async fn forward_envelope(
    client: &gw::federation_client::FederationClient<Channel>,
    envelope: gw::Envelope,
    timeout: Duration,
) -> Result<Bytes, tonic::Status> {
    let mut request = tonic::Request::new(envelope);
    request.set_timeout(timeout);
    Ok(client.clone().forward(request).await?.into_inner().payload)
}

fn decode<R: Message + Default>(dest: &str, bytes: Bytes) -> Result<R, RemoteError> {
    R::decode(bytes).map_err(|e| RemoteError {
        code: tonic::Code::Internal,
        message: format!("undecodable reply from party {dest}: {e}"),
    })
}

/// A client of a service of this party on its own address, without the gateway (the
/// job-controller's calls to its task-controller). It does not retry: its caller's caller
/// does (a `CreateJob` that failed is sent again by the scheduler), and its outbox does.
#[derive(Clone)]
pub struct DirectClient {
    channel: Channel,
    timeout: Duration,
}

impl DirectClient {
    pub fn new(channel: Channel, timeout: Duration) -> DirectClient {
        DirectClient { channel, timeout }
    }

    /// Sends `call` once (its `dest` is ignored: the channel is the destination).
    pub async fn send_once<C: PartyCall>(&self, call: &Call<C>) -> Result<C::Reply, RemoteError> {
        let span = direct_span(call.request.job_id(), (C::SERVICE, C::METHOD));
        let bytes = crate::raw::unary(
            self.channel.clone(),
            (C::SERVICE, C::METHOD),
            Bytes::from(call.request.encode_to_vec()),
            self.timeout,
            None,
            Some(&call.request_id),
            Some(call.request.job_id()),
        )
        .instrument(span)
        .await?;
        decode(&call.dest, bytes)
    }

    /// Delivers an outbox command, once: `Ok` once the service answered (a refusal is final,
    /// and logged), `Err` while it cannot be reached.
    pub async fn deliver(&self, command: Command) -> Result<(), String> {
        let span = direct_span(&command.job_id, (&command.service, &command.method));
        let result = crate::raw::unary(
            self.channel.clone(),
            (&command.service, &command.method),
            command.payload.into(),
            self.timeout,
            None,
            Some(&command.request_id),
            Some(&command.job_id),
        )
        .instrument(span)
        .await
        .map_err(RemoteError::from);
        crate::error::delivery(result, &command.request_id)
    }
}

/// The span of a direct call about `job_id`, in the job's trace; disabled when this process
/// does not export spans.
fn direct_span(job_id: &str, (service, method): (&str, &str)) -> tracing::Span {
    if !fedflow_telemetry::context::exporting() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "direct call",
        job_id = %job_id,
        rpc.service = %service,
        rpc.method = %method,
    );
    fedflow_telemetry::context::join_job(&span, job_id);
    span
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

/// Full gRPC service names, as envelopes carry them (tonic's `NamedService::NAME` of each
/// generated server).
pub mod services {
    pub use crate::calls::{
        JOB_CONTROLLER, SCHEDULER, STATUS_REPORT, TASK_CONTROLLER, TASK_CONTROLLER_DATA,
    };
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
