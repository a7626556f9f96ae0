//! `Federation.Forward` adapters: one for the internal port (this party's services), one for
//! the federation port (other parties' gateways).

use std::sync::Arc;

use fedflow_proto::gateway::v1 as pb;
use fedflow_tls::server::PeerParty;
use tonic::{Request, Response, Status};

use crate::MAX_MESSAGE;
use crate::forward::Router;

pub const SERVICE_NAME: &str = "fedflow.gateway.v1.Federation";

/// Which port a `Federation` serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Port {
    Internal,
    Federation,
}

pub fn service(
    router: Arc<Router>,
    port: Port,
) -> pb::federation_server::FederationServer<Federation> {
    pb::federation_server::FederationServer::new(Federation { router, port })
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE)
}

pub struct Federation {
    router: Arc<Router>,
    port: Port,
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
        let payload = match self.port {
            Port::Internal => self.router.accept_local(envelope).await?,
            Port::Federation => {
                self.router
                    .accept_remote(envelope, peer.as_ref().map(|p| p.0.as_str()))
                    .await?
            }
        };
        Ok(Response::new(pb::ForwardReply { payload }))
    }
}
