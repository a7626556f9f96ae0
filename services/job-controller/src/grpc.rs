//! `fedflow.jobcontroller.v1.JobController` adapters: authorise, convert the request
//! (`grpc/convert.rs`), one app call, convert the answer back. App errors become a `Status`
//! through the one shared mapping (`fedflow_rpc::error::to_status`). Every call comes through
//! the gateway, whose request-id header scopes it (`fedflow_rpc::server::RequestIdLayer`), so
//! the audit records of mutating calls name the request id.

mod convert;

use fedflow_core::access::Need;
use fedflow_proto::jobcontroller::v1 as pb;
use fedflow_rpc::error::to_status;
use fedflow_rpc::party::caller;
use tonic::{Request, Response, Status};

use crate::app::{self, App, CreateJob, JobRef, UpdateJobStatus};

pub const SERVICE_NAME: &str = "fedflow.jobcontroller.v1.JobController";

pub fn service(app: App) -> pb::job_controller_server::JobControllerServer<JobController> {
    pb::job_controller_server::JobControllerServer::new(JobController { app })
}

pub struct JobController {
    app: App,
}

impl From<app::Error> for Status {
    fn from(e: app::Error) -> Self {
        to_status(&e)
    }
}

impl JobController {
    /// Refuses another party's call about `job_id` unless it plays the part `need`s in it.
    async fn authorize<T>(
        &self,
        request: &Request<T>,
        job_id: &str,
        need: Need,
    ) -> Result<(), Status> {
        let who = caller(request, self.app.party_id());
        Ok(self.app.authorize(&who, job_id, need).await?)
    }
}

#[tonic::async_trait]
impl pb::job_controller_server::JobController for JobController {
    async fn create_job(
        &self,
        request: Request<pb::CreateJobRequest>,
    ) -> Result<Response<pb::CreateJobResponse>, Status> {
        caller(&request, self.app.party_id())
            .claims(&request.get_ref().scheduler_party_id, "scheduler_party_id")
            .map_err(app::Error::from)?;
        let job = CreateJob::try_from(request.into_inner())?;
        let components = self.app.create_job(job).await?;
        Ok(Response::new(convert::create_job_response(components)))
    }

    async fn apply_resource(
        &self,
        request: Request<pb::ApplyResourceRequest>,
    ) -> Result<Response<pb::ApplyResourceResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id, Need::Scheduler)
            .await?;
        let job = JobRef::try_from(request.into_inner())?;
        let applied = self.app.apply_resource(job).await?;
        Ok(Response::new(applied.into()))
    }

    async fn return_resource(
        &self,
        request: Request<pb::ReturnResourceRequest>,
    ) -> Result<Response<pb::ReturnResourceResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id, Need::Scheduler)
            .await?;
        let job = JobRef::try_from(request.into_inner())?;
        let released = self.app.return_resource(job).await?;
        Ok(Response::new(pb::ReturnResourceResponse { released }))
    }

    async fn start_job(
        &self,
        request: Request<pb::StartJobRequest>,
    ) -> Result<Response<pb::StartJobResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id, Need::Scheduler)
            .await?;
        let job = JobRef::try_from(request.into_inner())?;
        let status = self.app.start_job(job).await?;
        Ok(Response::new(pb::StartJobResponse {
            status: fedflow_rpc::convert::job_status_to_pb(status) as i32,
        }))
    }

    async fn update_job_status(
        &self,
        request: Request<pb::UpdateJobStatusRequest>,
    ) -> Result<Response<pb::UpdateJobStatusResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id, Need::Scheduler)
            .await?;
        let update = UpdateJobStatus::try_from(request.into_inner())?;
        let set = self.app.update_job_status(update).await?;
        Ok(Response::new(set.into()))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id, Need::Participant)
            .await?;
        let job_id = convert::get_job(request.into_inner())?;
        Ok(Response::new(self.app.get_job(&job_id).await?.into()))
    }

    async fn get_resources(
        &self,
        request: Request<pb::GetResourcesRequest>,
    ) -> Result<Response<pb::GetResourcesResponse>, Status> {
        caller(&request, self.app.party_id())
            .local_only("GetResources")
            .map_err(app::Error::from)?;
        Ok(Response::new(self.app.resources().await?.into()))
    }
}
