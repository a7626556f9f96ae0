//! `Federation.Forward` adapter.

use std::sync::Arc;

use fedflow_proto::gateway::v1 as pb;
use tonic::{Request, Response, Status};

use crate::forward::Router;

pub const SERVICE_NAME: &str = "fedflow.gateway.v1.Federation";

pub fn service(router: Router) -> pb::federation_server::FederationServer<Federation> {
    pb::federation_server::FederationServer::new(Federation {
        router: Arc::new(router),
    })
    .max_decoding_message_size(64 << 20)
    .max_encoding_message_size(64 << 20)
}

pub struct Federation {
    router: Arc<Router>,
}

#[tonic::async_trait]
impl pb::federation_server::Federation for Federation {
    async fn forward(
        &self,
        request: Request<pb::Envelope>,
    ) -> Result<Response<pb::ForwardReply>, Status> {
        let envelope = request.into_inner();
        let from_remote = envelope.hops > 0;
        let payload = self.router.forward(envelope, from_remote).await?;
        Ok(Response::new(pb::ForwardReply { payload }))
    }
}
