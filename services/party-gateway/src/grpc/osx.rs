//! The data-plane adapters: FATE's `org.ppc.ptp.PrivateTransferTransport` on the transfer
//! port (this party's components), and `fedflow.gateway.v1.Transfer` (`Deliver` on the
//! federation port, `DropSession` on the internal port). Headers and messages in, one
//! [`Broker`] call, `TransportOutbound` out.
//!
//! A pop that finds nothing in time answers `E0000000601`, an empty peek `E0000000404`, as
//! FATE's broker does. A refusal is a gRPC error (pyfate never reads push codes, so an OK
//! status with an error code would be silently lost) whose message starts with the OSX code
//! and which carries it in the `x-ptp-code` trailer; a full queue is `UNAVAILABLE`, the only
//! status pyfate retries.

use std::sync::Arc;

use fedflow_proto::gateway::v1 as gw;
use fedflow_proto::osx as pb;
use fedflow_tls::server::PeerParty;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Request, Response, Status};

use super::Port;
use crate::metrics::{Direction, Metrics};
use crate::transfer::{self, Arrival, Broker, Headers};

impl From<transfer::Error> for Status {
    fn from(e: transfer::Error) -> Status {
        let code = e.fate_code();
        let status = fedflow_rpc::error::to_status(&e);
        let mut metadata = MetadataMap::new();
        metadata.insert("x-ptp-code", MetadataValue::from_static(code));
        Status::with_metadata(
            status.code(),
            format!("{code}: {}", status.message()),
            metadata,
        )
    }
}

fn header(metadata: &MetadataMap, name: &str) -> Option<String> {
    metadata
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .filter(|v| !v.is_empty())
}

fn headers(metadata: &MetadataMap) -> Headers {
    Headers {
        session_id: header(metadata, "x-ptp-session-id").unwrap_or_default(),
        target_node_id: header(metadata, "x-ptp-target-node-id"),
        from_node_id: header(metadata, "x-ptp-from-node-id"),
        trace_id: header(metadata, "x-ptp-trace-id").unwrap_or_default(),
    }
}

fn outbound(code: &str, message: &str, payload: bytes::Bytes) -> Response<pb::TransportOutbound> {
    Response::new(pb::TransportOutbound {
        metadata: Default::default(),
        payload,
        code: code.to_owned(),
        message: message.to_owned(),
    })
}

/// `PrivateTransferTransport` on the transfer port.
pub struct Transport {
    pub broker: Arc<Broker>,
    pub metrics: Metrics,
}

impl Transport {
    /// Counts a refusal by its OSX code.
    fn refused<T>(&self, result: Result<T, transfer::Error>) -> Result<T, transfer::Error> {
        if let Err(e) = &result {
            self.metrics.refused(e.fate_code());
        }
        result
    }
}

#[tonic::async_trait]
impl pb::private_transfer_transport_server::PrivateTransferTransport for Transport {
    async fn peek(
        &self,
        request: Request<pb::PeekInbound>,
    ) -> Result<Response<pb::TransportOutbound>, Status> {
        let headers = headers(request.metadata());
        match self.refused(self.broker.peek(&headers, &request.get_ref().topic).await)? {
            Some(payload) => Ok(outbound(transfer::OK, "success", payload)),
            None => {
                self.metrics.refused(transfer::NOT_FOUND);
                Ok(outbound(
                    transfer::NOT_FOUND,
                    "no message",
                    Default::default(),
                ))
            }
        }
    }

    async fn pop(
        &self,
        request: Request<pb::PopInbound>,
    ) -> Result<Response<pb::TransportOutbound>, Status> {
        let headers = headers(request.metadata());
        let pop = request.into_inner();
        match self.refused(self.broker.pop(&headers, &pop.topic, pop.timeout).await)? {
            Some(payload) => {
                self.metrics.message(Direction::Pop, payload.len());
                Ok(outbound(transfer::OK, "success", payload))
            }
            None => {
                self.metrics.refused(transfer::TIMED_OUT);
                Ok(outbound(
                    transfer::TIMED_OUT,
                    &format!(
                        "no message on topic {:?} within {} ms",
                        pop.topic, pop.timeout
                    ),
                    Default::default(),
                ))
            }
        }
    }

    async fn push(
        &self,
        request: Request<pb::PushInbound>,
    ) -> Result<Response<pb::TransportOutbound>, Status> {
        let headers = headers(request.metadata());
        let push = request.into_inner();
        let bytes = push.payload.len();
        self.refused(self.broker.push(&headers, &push.topic, push.payload).await)?;
        self.metrics.message(Direction::Push, bytes);
        if headers.target_node_id.as_deref() != Some(self.broker.party_id()) {
            self.metrics.message(Direction::Sent, bytes);
        }
        Ok(outbound(transfer::OK, "success", Default::default()))
    }

    async fn release(
        &self,
        request: Request<pb::ReleaseInbound>,
    ) -> Result<Response<pb::TransportOutbound>, Status> {
        let headers = headers(request.metadata());
        self.refused(self.broker.release(&headers).await)?;
        Ok(outbound(transfer::OK, "success", Default::default()))
    }
}

/// `PrivateTransferProtocol`: FATE's broker-to-broker service. fedflow's gateways cross
/// parties on their mTLS link, so it is not served.
pub struct Protocol;

#[tonic::async_trait]
impl pb::private_transfer_protocol_server::PrivateTransferProtocol for Protocol {
    type transportStream =
        std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<pb::Outbound, Status>> + Send>>;

    async fn transport(
        &self,
        _request: Request<tonic::Streaming<pb::Inbound>>,
    ) -> Result<Response<Self::transportStream>, Status> {
        Err(unserved())
    }

    async fn invoke(
        &self,
        _request: Request<pb::Inbound>,
    ) -> Result<Response<pb::Outbound>, Status> {
        Err(unserved())
    }
}

fn unserved() -> Status {
    Status::unimplemented(
        "E0000000614: PrivateTransferProtocol is not served: parties' gateways federate over their mTLS link; push and pop on PrivateTransferTransport",
    )
}

/// `fedflow.gateway.v1.Transfer` on one port.
pub struct Transfer {
    pub broker: Arc<Broker>,
    pub port: Port,
    pub metrics: Metrics,
}

#[tonic::async_trait]
impl gw::transfer_server::Transfer for Transfer {
    async fn deliver(
        &self,
        request: Request<gw::DeliverRequest>,
    ) -> Result<Response<gw::DeliverReply>, Status> {
        if self.port != Port::Federation {
            return Err(Status::permission_denied(
                "E0000000403: Transfer.Deliver is for other parties' gateways, on the federation port",
            ));
        }
        let peer = request
            .extensions()
            .get::<Option<PeerParty>>()
            .cloned()
            .flatten();
        let d = request.into_inner();
        let arrival = Arrival {
            session_id: d.session_id,
            topic: d.topic,
            payload: d.payload,
            from_party_id: d.from_party_id,
            target_party_id: d.target_party_id,
            message_id: d.message_id,
            trace_context: d.trace_context,
        };
        let bytes = arrival.payload.len();
        let stored = self
            .broker
            .deliver(peer.as_ref().map(|p| p.0.as_str()), arrival)
            .await
            .inspect_err(|e| self.metrics.refused(e.fate_code()))?;
        if stored {
            self.metrics.message(Direction::Received, bytes);
        }
        Ok(Response::new(gw::DeliverReply { stored }))
    }

    async fn drop_session(
        &self,
        request: Request<gw::DropSessionRequest>,
    ) -> Result<Response<gw::DropSessionReply>, Status> {
        if self.port != Port::Internal {
            return Err(Status::permission_denied(
                "E0000000403: Transfer.DropSession is for this party's task-controller, on the internal port",
            ));
        }
        let dropped = self
            .broker
            .drop_session(&request.into_inner().session_id)
            .await?;
        Ok(Response::new(gw::DropSessionReply { dropped }))
    }
}
