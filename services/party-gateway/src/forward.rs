//! Routing one envelope: to a local service by its service name, or to the destination party's
//! gateway. Retries only when the next hop is unreachable (UNAVAILABLE), with exponential
//! backoff and jitter, within the envelope's deadline; every other answer goes back as it is.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use fedflow_proto::gateway::v1 as pb;
use fedflow_rpc::party::services;
use rand::Rng;
use tonic::Status;
use tonic::transport::Channel;

use crate::Error;
use crate::config::{Config, ForwardConfig};

pub struct Router {
    party_id: String,
    local: HashMap<&'static str, Channel>,
    remote: HashMap<String, pb::federation_client::FederationClient<Channel>>,
    forward: ForwardConfig,
}

impl Router {
    pub fn new(config: &Config) -> Result<Self, Error> {
        fedflow_core::ids::party_id(&config.party_id).map_err(|e| Error::Config(e.to_string()))?;
        let chan = |addr: &str| {
            fedflow_rpc::channel(addr).map_err(|e| Error::Config(format!("address {addr:?}: {e}")))
        };
        let scheduler = chan(&config.local.scheduler)?;
        let mut local = HashMap::new();
        local.insert(services::SCHEDULER, scheduler.clone());
        local.insert(services::STATUS_REPORT, scheduler);
        local.insert(
            services::JOB_CONTROLLER,
            chan(&config.local.job_controller)?,
        );
        local.insert(
            services::TASK_CONTROLLER,
            chan(&config.local.task_controller)?,
        );
        let mut remote = HashMap::new();
        for (party, addr) in &config.routes {
            fedflow_core::ids::party_id(party)
                .map_err(|e| Error::Config(format!("routes: {e}")))?;
            remote.insert(
                party.clone(),
                pb::federation_client::FederationClient::new(chan(addr)?)
                    .max_decoding_message_size(64 << 20)
                    .max_encoding_message_size(64 << 20),
            );
        }
        Ok(Router {
            party_id: config.party_id.clone(),
            local,
            remote,
            forward: config.forward.clone(),
        })
    }

    /// Delivers `envelope` and returns the inner reply's payload.
    pub async fn forward(
        &self,
        mut envelope: pb::Envelope,
        from_remote: bool,
    ) -> Result<Bytes, Status> {
        fedflow_core::ids::party_id(&envelope.dest_party_id)
            .map_err(|e| Status::invalid_argument(format!("dest_party_id: {e}")))?;
        if !from_remote {
            // A local service speaks for this party, whatever it wrote.
            envelope.src_party_id = self.party_id.clone();
        }
        fedflow_core::ids::party_id(&envelope.src_party_id)
            .map_err(|e| Status::invalid_argument(format!("src_party_id: {e}")))?;
        if envelope.hops > self.forward.max_hops {
            return Err(Status::failed_precondition(format!(
                "envelope passed {} gateways (at most {}): routing loop?",
                envelope.hops, self.forward.max_hops
            )));
        }
        let timeout = self.timeout_of(&envelope)?;
        let deadline = tokio::time::Instant::now() + timeout;
        if envelope.dest_party_id == self.party_id {
            let channel = self.local.get(envelope.service.as_str()).ok_or_else(|| {
                Status::permission_denied(format!(
                    "service {:?} is not reachable through the gateway",
                    envelope.service
                ))
            })?;
            if envelope.method.is_empty()
                || !envelope.method.chars().all(|c| c.is_ascii_alphanumeric())
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
                let (channel, service, method, payload) = (
                    channel.clone(),
                    service.clone(),
                    method.clone(),
                    payload.clone(),
                );
                let delay = Duration::from_millis(rand::rng().random_range(0..50));
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    let result =
                        fedflow_rpc::raw::unary(channel, &service, &method, payload, timeout).await;
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
                )
            })
            .await
        } else {
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
                request
                    .set_timeout(deadline.saturating_duration_since(tokio::time::Instant::now()));
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
