//! `fedflow.taskcontroller.v1.Sessions`: the party-gateway asks whether a FATE session is a
//! running attempt on this party (`crate::app::App::session`). Local callers only.

use fedflow_proto::taskcontroller::v1 as pb;
use fedflow_rpc::party::caller;
use tonic::{Request, Response, Status};

use crate::app::App;

pub const SERVICE_NAME: &str = "fedflow.taskcontroller.v1.Sessions";

pub fn service(app: App) -> pb::sessions_server::SessionsServer<Sessions> {
    pb::sessions_server::SessionsServer::new(Sessions { app })
}

pub struct Sessions {
    app: App,
}

#[tonic::async_trait]
impl pb::sessions_server::Sessions for Sessions {
    async fn get_session(
        &self,
        request: Request<pb::GetSessionRequest>,
    ) -> Result<Response<pb::GetSessionResponse>, Status> {
        let who = caller(&request, self.app.party_id());
        let state = self
            .app
            .session(&who, &request.into_inner().session_id)
            .await?;
        Ok(Response::new(pb::GetSessionResponse {
            running: state.running,
            job_id: state.job_id,
            scheduler_party_id: state.scheduler_party_id,
            roles: state.roles,
            pending: state.pending,
        }))
    }
}
