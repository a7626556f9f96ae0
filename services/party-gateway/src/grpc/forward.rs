//! Routing one envelope: to a local service by its service name, or to the destination party's
//! gateway, once, within the envelope's deadline. The gateway does not retry: the sending
//! service does (`fedflow_rpc::party::PartyClient::send`), so retries do not stack. A next hop
//! that cannot be reached is `UNAVAILABLE` with the reason; every other answer goes back as it
//! is ([`Failure::Answer`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fedflow_proto::gateway::v1 as pb;
use fedflow_rpc::party::services;
use rand::Rng;
use tokio_util::task::TaskTracker;
use tonic::Status;
use tonic::transport::Channel;
use tracing::Instrument;

use super::policy::{self, Membership};
use super::replay::{Admission, ReplayGuard};
use crate::config::{Config, FaultsConfig, ForwardConfig};
use crate::error::{Error, Refusal};
use crate::limits::MAX_MESSAGE;

/// Why an envelope got no answer from the gateway: refused (or undeliverable) here, or the
/// answer of the service or gateway it was passed to, which goes back as it came.
#[derive(Debug)]
pub enum Failure {
    Refused(Refusal),
    Answer(Status),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        Failure::Refused(refusal)
    }
}

impl From<fedflow_core::access::Denied> for Failure {
    fn from(denied: fedflow_core::access::Denied) -> Failure {
        Failure::Refused(denied.into())
    }
}

/// Which way an envelope passes this gateway, for its span.
#[derive(Debug, Clone, Copy)]
enum Hop {
    /// To another party's gateway (`gateway forward`).
    Forward,
    /// To one of this party's services (`gateway deliver`).
    Deliver,
}

pub struct Router {
    party_id: String,
    local: HashMap<&'static str, Channel>,
    remote: HashMap<String, pb::federation_client::FederationClient<Channel>>,
    /// The federation channel to each party of the route table (shared with the data plane).
    channels: HashMap<String, Channel>,
    forward: ForwardConfig,
    /// Set in mtls mode: callers are authenticated by their certificates.
    mtls: bool,
    replay: ReplayGuard,
    membership: Membership,
    /// The testing switch's duplicate deliveries, waited for at shutdown.
    background: TaskTracker,
    /// Injected faults (tests only).
    faults: FaultsConfig,
}

impl Router {
    /// `tls`: this gateway's TLS material (mtls mode), used to dial other parties.
    /// `background` owns the tasks the router spawns.
    pub fn new(
        config: &Config,
        tls: Option<Arc<fedflow_tls::Reloadable>>,
        background: TaskTracker,
    ) -> Result<Self, Error> {
        fedflow_core::ids::party_id(&config.party_id).map_err(|e| Error::Config(e.to_string()))?;
        if config.faults.drop_reply_per_mille > 1000 {
            return Err(Error::Config(format!(
                "faults.drop_reply_per_mille is {}: a share per thousand, at most 1000",
                config.faults.drop_reply_per_mille
            )));
        }
        if config.faults.drop_reply_per_mille > 0 {
            tracing::warn!(
                per_mille = config.faults.drop_reply_per_mille,
                "TESTING ONLY: faults.drop_reply_per_mille drops the replies of calls from other parties"
            );
        }
        let chan = |addr: &str| {
            fedflow_rpc::channel(addr).map_err(|e| Error::Config(format!("address {addr:?}: {e}")))
        };
        let scheduler = chan(&config.local.scheduler)?;
        let job_controller = chan(&config.local.job_controller)?;
        let mut local = HashMap::new();
        local.insert(services::SCHEDULER, scheduler.clone());
        local.insert(services::STATUS_REPORT, scheduler);
        local.insert(services::JOB_CONTROLLER, job_controller.clone());
        let task_controller = chan(&config.local.task_controller)?;
        local.insert(services::TASK_CONTROLLER, task_controller.clone());
        // This party's own services only: no other party's call reaches it (the policy opens
        // none of its methods), so data and models never leave the party through here.
        local.insert(services::TASK_CONTROLLER_DATA, task_controller);
        let mut remote = HashMap::new();
        let mut channels = HashMap::new();
        for (party, route) in &config.routes {
            fedflow_core::ids::party_id(party)
                .map_err(|e| Error::Config(format!("routes: {e}")))?;
            let channel = match &tls {
                Some(material) => {
                    fedflow_tls::client::channel(route.address(), material.clone(), party)
                        .map_err(|e| Error::Config(format!("routes.{party}: {e}")))?
                }
                None => chan(route.address())?,
            };
            channels.insert(party.clone(), channel.clone());
            remote.insert(
                party.clone(),
                pb::federation_client::FederationClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE)
                    .max_encoding_message_size(MAX_MESSAGE),
            );
        }
        Ok(Router {
            party_id: config.party_id.clone(),
            local,
            remote,
            channels,
            forward: config.forward.clone(),
            mtls: tls.is_some(),
            replay: ReplayGuard::new(
                config.federation.max_clock_skew_ms,
                config.federation.max_envelope_lifetime_ms,
            ),
            membership: Membership::new(job_controller),
            background,
            faults: config.faults.clone(),
        })
    }

    /// The federation channel to each party of the route table.
    pub fn federation_channels(&self) -> HashMap<String, Channel> {
        self.channels.clone()
    }

    /// An envelope from one of this party's own services (the internal port): it speaks for
    /// this party, whatever it wrote; delivered here or sent to the destination's gateway.
    pub async fn accept_local(&self, mut envelope: pb::Envelope) -> Result<Bytes, Failure> {
        envelope.src_party_id = self.party_id.clone();
        self.check_ids(&envelope)?;
        let now = fedflow_rpc::now_ms();
        if envelope.issued_at_unix_ms == 0 {
            envelope.issued_at_unix_ms = now;
        }
        if envelope.deadline_unix_ms == 0 {
            envelope.deadline_unix_ms =
                now + i64::try_from(self.forward.default_timeout_ms).unwrap_or(30_000);
        }
        if envelope.request_id.is_empty() {
            envelope.request_id = fedflow_rpc::new_request_id();
        }
        if envelope.dest_party_id == self.party_id {
            let caller = self.party_id.clone();
            let span = self.hop_span(Hop::Deliver, &envelope);
            // This party's own envelope: its times are by this clock.
            let deadline_ms = envelope.deadline_unix_ms;
            self.deliver_local(&envelope, &caller, deadline_ms)
                .instrument(span)
                .await
        } else {
            let span = self.hop_span(Hop::Forward, &envelope);
            // The next gateway's span is this one's child.
            fedflow_telemetry::context::inject(&span, &mut envelope.trace_context);
            self.to_remote(envelope).instrument(span).await
        }
    }

    /// The span of one hop of `envelope` through this gateway (`gateway forward` to another
    /// party, `gateway deliver` to a local service), the child of the context the envelope
    /// carries; disabled when this process does not export spans.
    fn hop_span(&self, hop: Hop, envelope: &pb::Envelope) -> tracing::Span {
        if !fedflow_telemetry::context::exporting() {
            return tracing::Span::none();
        }
        let span = match hop {
            Hop::Forward => tracing::info_span!(
                "gateway forward",
                job_id = %envelope.job_id,
                party_id = %self.party_id,
                src_party_id = %envelope.src_party_id,
                dest_party_id = %envelope.dest_party_id,
                rpc.service = %envelope.service,
                rpc.method = %envelope.method,
            ),
            Hop::Deliver => tracing::info_span!(
                "gateway deliver",
                job_id = %envelope.job_id,
                party_id = %self.party_id,
                src_party_id = %envelope.src_party_id,
                dest_party_id = %envelope.dest_party_id,
                rpc.service = %envelope.service,
                rpc.method = %envelope.method,
            ),
        };
        if fedflow_telemetry::context::set_parent(&span, &envelope.trace_context) {
            // The data plane's spans for the job join the same trace.
            fedflow_telemetry::context::jobs::remember(&envelope.job_id, &envelope.trace_context);
        } else {
            fedflow_telemetry::context::join_job(&span, &envelope.job_id);
        }
        span
    }

    /// An envelope from another party's gateway (the federation port). `peer`: the party the
    /// connection authenticated as (mtls mode).
    pub async fn accept_remote(
        &self,
        envelope: pb::Envelope,
        peer: Option<&str>,
    ) -> Result<Bytes, Failure> {
        self.check_ids(&envelope)?;
        let caller = match (self.mtls, peer) {
            (true, Some(peer)) => {
                if envelope.src_party_id != peer {
                    return Err(Refusal::Unauthenticated(format!(
                        "the envelope claims to come from party {}, the connection is authenticated as party {peer}",
                        envelope.src_party_id
                    ))
                    .into());
                }
                peer.to_owned()
            }
            (true, None) => {
                return Err(Refusal::Unauthenticated(
                    "no authenticated party on this connection".into(),
                )
                .into());
            }
            (false, _) => envelope.src_party_id.clone(),
        };
        if envelope.dest_party_id != self.party_id {
            return Err(Refusal::PermissionDenied(format!(
                "this is party {}'s gateway; it does not relay envelopes for party {}",
                self.party_id, envelope.dest_party_id
            ))
            .into());
        }
        let now = fedflow_rpc::now_ms();
        // The deadline by this gateway's clock, whatever the sender's clock says.
        let arrival = self.replay.check_times(&envelope, now)?;
        let call = policy::inspect(&envelope.service, &envelope.method, &envelope.payload)?;
        if call.job_id != envelope.job_id {
            return Err(Refusal::PermissionDenied(format!(
                "the envelope is about job {:?} but its call is about job {}",
                envelope.job_id, call.job_id
            ))
            .into());
        }
        // A party id claimed anywhere in the call must be the authenticated one.
        for (field, claimed) in &call.claims {
            if *claimed != caller {
                return Err(Refusal::Unauthenticated(format!(
                    "{}/{}: {field} names party {claimed:?}, but the call comes from party {caller}",
                    envelope.service, envelope.method
                ))
                .into());
            }
        }
        if !call.creates_job {
            self.membership
                .check(&caller, &call.job_id, call.need)
                .await?;
        }
        match self.replay.admit(&envelope, now)? {
            Admission::Answered(answer) => {
                tracing::info!(from = %caller, request_id = %envelope.request_id, "repeated envelope answered without executing it again");
                Ok(answer)
            }
            Admission::Execute(ticket) => {
                let span = self.hop_span(Hop::Deliver, &envelope);
                let result = self
                    .deliver_local(&envelope, &caller, arrival.deadline_ms)
                    .instrument(span)
                    .await;
                if result.is_ok() && self.drops_reply(&envelope.method) {
                    tracing::warn!(
                        from = %caller,
                        service = %envelope.service,
                        method = %envelope.method,
                        request_id = %envelope.request_id,
                        "reply dropped (faults.drop_reply_per_mille): the call was applied"
                    );
                    // Forgotten, so the retry reaches the service again.
                    ticket.finish::<()>(&Err(()));
                    return Err(Refusal::Unavailable(format!(
                        "the reply of {}/{} (request {}) was dropped after the call was applied (faults.drop_reply_per_mille, a testing fault)",
                        envelope.service, envelope.method, envelope.request_id
                    ))
                    .into());
                }
                ticket.finish(&result);
                result
            }
        }
    }

    /// Whether the testing fault drops the reply of this call (a mutating one).
    fn drops_reply(&self, method: &str) -> bool {
        let per_mille = self.faults.drop_reply_per_mille;
        per_mille > 0
            && !["Get", "List", "Probe"]
                .iter()
                .any(|read| method.starts_with(read))
            && rand::rng().random_range(0..1000) < per_mille
    }

    fn check_ids(&self, envelope: &pb::Envelope) -> Result<(), Refusal> {
        fedflow_core::ids::party_id(&envelope.dest_party_id)
            .map_err(|e| Refusal::InvalidArgument(format!("dest_party_id: {e}")))?;
        fedflow_core::ids::party_id(&envelope.src_party_id)
            .map_err(|e| Refusal::InvalidArgument(format!("src_party_id: {e}")))?;
        if envelope.hops > self.forward.max_hops {
            return Err(Refusal::FailedPrecondition(format!(
                "envelope passed {} gateways (at most {}): routing loop?",
                envelope.hops, self.forward.max_hops
            )));
        }
        Ok(())
    }

    /// Calls the local service the envelope names, on behalf of `caller`, once, by
    /// `deadline_ms` (this gateway's clock).
    async fn deliver_local(
        &self,
        envelope: &pb::Envelope,
        caller: &str,
        deadline_ms: i64,
    ) -> Result<Bytes, Failure> {
        let timeout = self.timeout_of(deadline_ms)?;
        let channel = self.local.get(envelope.service.as_str()).ok_or_else(|| {
            Refusal::PermissionDenied(format!(
                "service {:?} is not reachable through the gateway",
                envelope.service
            ))
        })?;
        if envelope.method.is_empty() || !envelope.method.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(Refusal::InvalidArgument(format!(
                "malformed method {:?}",
                envelope.method
            ))
            .into());
        }
        if self.forward.duplicate_delivery_for_testing {
            let (channel, envelope, caller) =
                (channel.clone(), envelope.clone(), caller.to_owned());
            let delay = Duration::from_millis(rand::rng().random_range(0..50));
            self.background.spawn(async move {
                tokio::time::sleep(delay).await;
                let result = fedflow_rpc::raw::unary(
                    channel,
                    (&envelope.service, &envelope.method),
                    envelope.payload,
                    timeout,
                    Some(&caller),
                    Some(&envelope.request_id),
                    Some(&envelope.job_id),
                )
                .await;
                tracing::debug!(service = %envelope.service, method = %envelope.method, ok = result.is_ok(), "duplicate delivered");
            });
        }
        fedflow_rpc::raw::unary(
            channel.clone(),
            (&envelope.service, &envelope.method),
            envelope.payload.clone(),
            timeout,
            Some(caller),
            Some(&envelope.request_id),
            Some(&envelope.job_id),
        )
        .await
        .map_err(Failure::Answer)
    }

    /// Passes the envelope to the destination party's gateway, once.
    async fn to_remote(&self, mut envelope: pb::Envelope) -> Result<Bytes, Failure> {
        // Issued by this party's own service: its deadline is by this clock.
        let timeout = self.timeout_of(envelope.deadline_unix_ms)?;
        let mut client = self
            .remote
            .get(&envelope.dest_party_id)
            .ok_or_else(|| {
                Refusal::FailedPrecondition(format!(
                    "no route to party {} in the route table of party {}'s gateway",
                    envelope.dest_party_id, self.party_id
                ))
            })?
            .clone();
        envelope.hops += 1;
        let dest = envelope.dest_party_id.clone();
        let mut request = tonic::Request::new(envelope);
        request.set_timeout(timeout);
        match client.forward(request).await {
            Ok(reply) => Ok(reply.into_inner().payload),
            Err(status)
                if status.code() == tonic::Code::Unavailable
                    || fedflow_rpc::error::is_transport_failure(&status) =>
            {
                Err(Refusal::Unavailable(format!(
                    "party {dest} unreachable from party {}: {}",
                    self.party_id,
                    status.message()
                ))
                .into())
            }
            Err(status) => Err(Failure::Answer(status)),
        }
    }

    /// The time left until `deadline_ms` (unix ms by this gateway's clock; 0: none given).
    fn timeout_of(&self, deadline_ms: i64) -> Result<Duration, Refusal> {
        if deadline_ms == 0 {
            return Ok(Duration::from_millis(self.forward.default_timeout_ms));
        }
        let left = deadline_ms - fedflow_rpc::now_ms();
        if left <= 0 {
            return Err(Refusal::DeadlineExceeded(
                "the envelope's deadline has passed".into(),
            ));
        }
        Ok(Duration::from_millis(
            u64::try_from(left)
                .unwrap_or(0)
                .min(self.forward.default_timeout_ms * 10),
        ))
    }
}
