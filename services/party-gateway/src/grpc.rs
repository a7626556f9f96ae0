//! `Federation.Forward` adapters: one for the internal port (this party's services), one for
//! the federation port (other parties' gateways); a [`forward::Failure`] becomes a
//! `tonic::Status` here and nowhere else.
//!
//! The gateway's job is moving envelopes between gRPC channels, so the modules that touch
//! envelopes and generated types are gRPC adapters and live under `grpc/`: [`forward`]
//! (routing, one try per hop), [`policy`] (what other parties may call, read from their
//! requests), [`replay`] (envelope freshness and repeats). `error` and `limits` are plain.

pub mod forward;
pub mod osx;
pub mod policy;
pub mod replay;

use std::sync::Arc;

use fedflow_proto::gateway::v1 as pb;
use fedflow_tls::server::PeerParty;
use tonic::server::NamedService;
use tonic::{Request, Response, Status};

use crate::limits::MAX_MESSAGE;
use crate::metrics::Metrics;
use forward::{Failure, Router};

pub const SERVICE_NAME: &str =
    <pb::federation_server::FederationServer<Federation> as NamedService>::NAME;
pub const OSX_SERVICE_NAME: &str =
    <fedflow_proto::osx::private_transfer_transport_server::PrivateTransferTransportServer<
        osx::Transport,
    > as NamedService>::NAME;

/// `fedflow.gateway.v1.Transfer` for `port` (Deliver on the federation port, DropSession on
/// the internal one).
pub fn transfer_service(
    broker: Arc<crate::transfer::Broker>,
    port: Port,
    metrics: Metrics,
) -> pb::transfer_server::TransferServer<osx::Transfer> {
    let limit = broker.max_message() + (1 << 20);
    pb::transfer_server::TransferServer::new(osx::Transfer {
        broker,
        port,
        metrics,
    })
    .max_decoding_message_size(limit)
    .max_encoding_message_size(limit)
}

/// The transfer port's services: FATE's `PrivateTransferTransport` (and its unserved
/// broker-to-broker `PrivateTransferProtocol`).
pub fn osx_services(
    broker: Arc<crate::transfer::Broker>,
    metrics: Metrics,
) -> (
    fedflow_proto::osx::private_transfer_transport_server::PrivateTransferTransportServer<
        osx::Transport,
    >,
    fedflow_proto::osx::private_transfer_protocol_server::PrivateTransferProtocolServer<
        osx::Protocol,
    >,
) {
    // A little more than the largest payload, so an oversized push reaches the broker and
    // gets its clear refusal; far larger ones are cut by tonic.
    let limit = broker.max_message() + (1 << 20);
    (
        fedflow_proto::osx::private_transfer_transport_server::PrivateTransferTransportServer::new(
            osx::Transport { broker, metrics },
        )
        .max_decoding_message_size(limit)
        .max_encoding_message_size(limit),
        fedflow_proto::osx::private_transfer_protocol_server::PrivateTransferProtocolServer::new(
            osx::Protocol,
        ),
    )
}

impl From<Failure> for Status {
    fn from(failure: Failure) -> Status {
        match failure {
            Failure::Refused(refusal) => fedflow_rpc::error::to_status(&refusal),
            Failure::Answer(status) => status,
        }
    }
}

/// Which port a `Federation` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Internal,
    Federation,
}

pub fn service(
    router: Arc<Router>,
    port: Port,
    metrics: Metrics,
) -> pb::federation_server::FederationServer<Federation> {
    pb::federation_server::FederationServer::new(Federation {
        router,
        port,
        metrics,
    })
    .max_decoding_message_size(MAX_MESSAGE)
    .max_encoding_message_size(MAX_MESSAGE)
}

pub struct Federation {
    router: Arc<Router>,
    port: Port,
    metrics: Metrics,
}

#[tonic::async_trait]
impl pb::federation_server::Federation for Federation {
    async fn forward(
        &self,
        request: Request<pb::Envelope>,
    ) -> Result<Response<pb::ForwardReply>, Status> {
        let peer = request
            .extensions()
            .get::<Option<PeerParty>>()
            .cloned()
            .flatten();
        let envelope = request.into_inner();
        let (service, method) = (envelope.service.clone(), envelope.method.clone());
        let payload = match self.port {
            Port::Internal => {
                let dest = envelope.dest_party_id.clone();
                let started = std::time::Instant::now();
                let result = self
                    .router
                    .accept_local(envelope)
                    .await
                    .map_err(Status::from);
                let code = result
                    .as_ref()
                    .map_or_else(Status::code, |_| tonic::Code::Ok);
                let seconds = started.elapsed().as_secs_f64();
                self.metrics.sent(&service, &method, &dest, code, seconds);
                result?
            }
            Port::Federation => {
                let src = envelope.src_party_id.clone();
                let result = self
                    .router
                    .accept_remote(envelope, peer.as_ref().map(|p| p.0.as_str()))
                    .await
                    .map_err(Status::from);
                let code = result
                    .as_ref()
                    .map_or_else(Status::code, |_| tonic::Code::Ok);
                self.metrics.received(&service, &method, &src, code);
                result?
            }
        };
        Ok(Response::new(pb::ForwardReply { payload }))
    }
}
