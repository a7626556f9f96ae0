//! Telling this party's gateway that a FATE session ended here, so it drops the session's
//! message queues (`fedflow.gateway.v1.Transfer.DropSession` on its internal port). Best
//! effort: one call with a short deadline; a gateway that misses it drops the queues in its
//! own sweep, which asks this task-controller again.

use std::time::Duration;

use fedflow_proto::gateway::v1 as gw;
use tonic::transport::Channel;

#[derive(Clone)]
pub struct SessionEnds {
    client: gw::transfer_client::TransferClient<Channel>,
    timeout: Duration,
}

impl SessionEnds {
    pub fn new(gateway: Channel, timeout: Duration) -> SessionEnds {
        SessionEnds {
            client: gw::transfer_client::TransferClient::new(gateway),
            timeout,
        }
    }

    pub async fn ended(&self, session_id: String) {
        let mut request = tonic::Request::new(gw::DropSessionRequest {
            session_id: session_id.clone(),
        });
        request.set_timeout(self.timeout);
        match self.client.clone().drop_session(request).await {
            Ok(reply) => {
                tracing::debug!(session = %session_id, dropped = reply.into_inner().dropped, "gateway dropped the session's queues")
            }
            Err(status) => {
                tracing::info!(session = %session_id, error = %status.message(), "gateway not told that the session ended; its sweep will drop the queues")
            }
        }
    }
}
