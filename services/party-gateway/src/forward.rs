//! Routing one envelope: to a local service by its service name, or to the destination party's
//! gateway. Retries only when the next hop is unreachable (UNAVAILABLE), with exponential
//! backoff and jitter, within the envelope's deadline; every other answer goes back as it is.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fedflow_proto::gateway::v1 as pb;
use fedflow_rpc::party::services;
use rand::Rng;
use tonic::Status;
use tonic::transport::Channel;

use crate::config::{Config, ForwardConfig};
use crate::policy::{self, Membership};
use crate::replay::{Admission, ReplayGuard};
use crate::{Error, MAX_MESSAGE};

pub struct Router {
    party_id: String,
    local: HashMap<&'static str, Channel>,
    remote: HashMap<String, pb::federation_client::FederationClient<Channel>>,
    forward: ForwardConfig,
    /// Set in mtls mode: callers are authenticated by their certificates.
    mtls: bool,
    replay: ReplayGuard,
    membership: Membership,
}

impl Router {
    /// `tls`: this gateway's TLS material (mtls mode), used to dial other parties.
    pub fn new(config: &Config, tls: Option<Arc<fedflow_tls::Reloadable>>) -> Result<Self, Error> {
        fedflow_core::ids::party_id(&config.party_id).map_err(|e| Error::Config(e.to_string()))?;
        let chan = |addr: &str| {
            fedflow_rpc::channel(addr).map_err(|e| Error::Config(format!("address {addr:?}: {e}")))
        };
        let scheduler = chan(&config.local.scheduler)?;
        let job_controller = chan(&config.local.job_controller)?;
        let mut local = HashMap::new();
        local.insert(services::SCHEDULER, scheduler.clone());
        local.insert(services::STATUS_REPORT, scheduler);
        local.insert(services::JOB_CONTROLLER, job_controller.clone());
        local.insert(
            services::TASK_CONTROLLER,
            chan(&config.local.task_controller)?,
        );
        let mut remote = HashMap::new();
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
            forward: config.forward.clone(),
            mtls: tls.is_some(),
            replay: ReplayGuard::new(
                config.federation.max_clock_skew_ms,
                config.federation.max_envelope_lifetime_ms,
            ),
            membership: Membership::new(job_controller),
        })
    }

    /// An envelope from one of this party's own services (the internal port): it speaks for
    /// this party, whatever it wrote; delivered here or sent to the destination's gateway.
    pub async fn accept_local(&self, mut envelope: pb::Envelope) -> Result<Bytes, Status> {
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
            self.deliver_local(&envelope, &caller).await
        } else {
            self.to_remote(envelope).await
        }
    }

    /// An envelope from another party's gateway (the federation port). `peer`: the party the
    /// connection authenticated as (mtls mode).
    pub async fn accept_remote(
        &self,
        envelope: pb::Envelope,
        peer: Option<&str>,
    ) -> Result<Bytes, Status> {
        self.check_ids(&envelope)?;
        let caller = match (self.mtls, peer) {
            (true, Some(peer)) => {
                if envelope.src_party_id != peer {
                    return Err(Status::unauthenticated(format!(
                        "the envelope claims to come from party {}, the connection is authenticated as party {peer}",
                        envelope.src_party_id
                    )));
                }
                peer.to_owned()
            }
            (true, None) => {
                return Err(Status::unauthenticated(
                    "no authenticated party on this connection",
                ));
            }
            (false, _) => envelope.src_party_id.clone(),
        };
        if envelope.dest_party_id != self.party_id {
            return Err(Status::permission_denied(format!(
                "this is party {}'s gateway; it does not relay envelopes for party {}",
                self.party_id, envelope.dest_party_id
            )));
        }
        let now = fedflow_rpc::now_ms();
        self.replay.check_times(&envelope, now)?;
        let call = policy::inspect(&envelope.service, &envelope.method, &envelope.payload)?;
        if call.job_id != envelope.job_id {
            return Err(Status::permission_denied(format!(
                "the envelope is about job {:?} but its call is about job {}",
                envelope.job_id, call.job_id
            )));
        }
        // A party id claimed anywhere in the call must be the authenticated one.
        for (field, claimed) in &call.claims {
            if *claimed != caller {
                return Err(Status::unauthenticated(format!(
                    "{}/{}: {field} names party {claimed:?}, but the call comes from party {caller}",
                    envelope.service, envelope.method
                )));
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
                let result = self.deliver_local(&envelope, &caller).await;
                ticket.finish(&result);
                result
            }
        }
    }

    fn check_ids(&self, envelope: &pb::Envelope) -> Result<(), Status> {
        fedflow_core::ids::party_id(&envelope.dest_party_id)
            .map_err(|e| Status::invalid_argument(format!("dest_party_id: {e}")))?;
        fedflow_core::ids::party_id(&envelope.src_party_id)
            .map_err(|e| Status::invalid_argument(format!("src_party_id: {e}")))?;
        if envelope.hops > self.forward.max_hops {
            return Err(Status::failed_precondition(format!(
                "envelope passed {} gateways (at most {}): routing loop?",
                envelope.hops, self.forward.max_hops
            )));
        }
        Ok(())
    }

    /// Calls the local service the envelope names, on behalf of `caller`.
    async fn deliver_local(&self, envelope: &pb::Envelope, caller: &str) -> Result<Bytes, Status> {
        let timeout = self.timeout_of(envelope)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let channel = self.local.get(envelope.service.as_str()).ok_or_else(|| {
            Status::permission_denied(format!(
                "service {:?} is not reachable through the gateway",
                envelope.service
            ))
        })?;
        if envelope.method.is_empty() || !envelope.method.chars().all(|c| c.is_ascii_alphanumeric())
        {
            return Err(Status::invalid_argument(format!(
                "malformed method {:?}",
                envelope.method
            )));
        }
        let service = envelope.service.clone();
        let method = envelope.method.clone();
        let payload = envelope.payload.clone();
        if self.forward.duplicate_delivery_for_testing {
            let (channel, service, method, payload, caller) = (
                channel.clone(),
                service.clone(),
                method.clone(),
                payload.clone(),
                caller.to_owned(),
            );
            let delay = Duration::from_millis(rand::rng().random_range(0..50));
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let result = fedflow_rpc::raw::unary(
                    channel,
                    &service,
                    &method,
                    payload,
                    timeout,
                    Some(&caller),
                )
                .await;
                tracing::debug!(%service, %method, ok = result.is_ok(), "duplicate delivered");
            });
        }
        self.retrying(deadline, || {
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            fedflow_rpc::raw::unary(
                channel.clone(),
                &service,
                &method,
                payload.clone(),
                remaining,
                Some(caller),
            )
        })
        .await
    }

    async fn to_remote(&self, mut envelope: pb::Envelope) -> Result<Bytes, Status> {
        let timeout = self.timeout_of(&envelope)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let client = self.remote.get(&envelope.dest_party_id).ok_or_else(|| {
            Status::failed_precondition(format!(
                "no route to party {} in the route table of party {}'s gateway",
                envelope.dest_party_id, self.party_id
            ))
        })?;
        envelope.hops += 1;
        let dest = envelope.dest_party_id.clone();
        self.retrying(deadline, || {
            let mut client = client.clone();
            let mut request = tonic::Request::new(envelope.clone());
            request.set_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
            async move { Ok(client.forward(request).await?.into_inner().payload) }
        })
        .await
        .map_err(|status| {
            if status.code() == tonic::Code::Unavailable {
                Status::unavailable(format!(
                    "party {dest} unreachable from party {}: {}",
                    self.party_id,
                    status.message()
                ))
            } else {
                status
            }
        })
    }

    fn timeout_of(&self, envelope: &pb::Envelope) -> Result<Duration, Status> {
        if envelope.deadline_unix_ms == 0 {
            return Ok(Duration::from_millis(self.forward.default_timeout_ms));
        }
        let left = envelope.deadline_unix_ms - fedflow_rpc::now_ms();
        if left <= 0 {
            return Err(Status::deadline_exceeded(
                "the envelope's deadline has passed",
            ));
        }
        Ok(Duration::from_millis(
            u64::try_from(left)
                .unwrap_or(0)
                .min(self.forward.default_timeout_ms * 10),
        ))
    }

    async fn retrying<F, Fut>(
        &self,
        deadline: tokio::time::Instant,
        mut call: F,
    ) -> Result<Bytes, Status>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<Bytes, Status>>,
    {
        let mut backoff = Duration::from_millis(self.forward.backoff_initial_ms.max(1));
        let max = Duration::from_millis(self.forward.backoff_max_ms.max(1));
        let mut attempt = 1;
        loop {
            match call().await {
                Err(status)
                    if status.code() == tonic::Code::Unavailable
                        && attempt < self.forward.max_attempts =>
                {
                    let jitter = rand::rng().random_range(0.5..1.5);
                    let pause = backoff.mul_f64(jitter);
                    if tokio::time::Instant::now() + pause >= deadline {
                        return Err(status);
                    }
                    tracing::debug!(attempt, error = %status.message(), "next hop unavailable, retrying");
                    tokio::time::sleep(pause).await;
                    backoff = (backoff * 2).min(max);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}
