//! `fedflow.jobcontroller.v1.JobController` adapters: proto in, one app call, proto out.

use std::sync::Arc;

use fedflow_core::access::Need;
use fedflow_core::ids::Participant;
use fedflow_proto::jobcontroller::v1 as pb;
use fedflow_rpc::convert::{job_status_from_pb, job_status_to_pb};
use fedflow_rpc::error::to_status;
use fedflow_rpc::party::caller;
use tonic::{Request, Response, Status};

use crate::app::{App, CreateJob};
use crate::store::{Grant, PartyJob};

pub const SERVICE_NAME: &str = "fedflow.jobcontroller.v1.JobController";

pub fn service(app: App) -> pb::job_controller_server::JobControllerServer<JobController> {
    pb::job_controller_server::JobControllerServer::new(JobController { app: Arc::new(app) })
}

pub struct JobController {
    app: Arc<App>,
}

impl JobController {
    /// Refuses another party's call about `job_id` unless it plays the part `need`s in it.
    async fn authorize<T>(
        &self,
        request: &Request<T>,
        job_id: &str,
        need: Need,
    ) -> Result<(), Status> {
        self.app
            .authorize(&caller(request, self.app.party_id()), job_id, need)
            .await
            .map_err(|e| to_status(&e))
    }
}

fn who(role: String, party_id: String) -> Participant {
    Participant { role, party_id }
}

fn party_job(job: PartyJob) -> pb::PartyJob {
    pb::PartyJob {
        job_id: job.job_id,
        role: job.role,
        party_id: job.party_id,
        status: job_status_to_pb(job.status) as i32,
        reason: job.reason,
        scheduler_party_id: job.scheduler_party_id,
        cores: job.cores,
        memory_mb: job.memory_mb,
        create_time_ms: job.create_ms,
        start_time_ms: job.start_ms,
        end_time_ms: job.end_ms,
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
            .map_err(|e| to_status(&e))?;
        let mut r = request.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        let components = fedflow_store::with_request(&request_id, {
            let app = self.app.clone();
            async move {
                app.create_job(CreateJob {
                    job_id: r.job_id,
                    dsl: r.dsl,
                    conf: r.runtime_conf,
                    who: who(r.role, r.party_id),
                    scheduler_party_id: r.scheduler_party_id,
                })
                .await
            }
        })
        .await
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::CreateJobResponse {
            components: components
                .into_iter()
                .map(|(component, need_run)| pb::ComponentPlan {
                    component,
                    need_run,
                })
                .collect(),
        }))
    }

    async fn apply_resource(
        &self,
        request: Request<pb::ApplyResourceRequest>,
    ) -> Result<Response<pb::ApplyResourceResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id, Need::Scheduler)
            .await?;
        let mut r = request.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        let (grant, cores, memory_mb) = fedflow_store::with_request(&request_id, {
            let app = self.app.clone();
            async move {
                app.apply_resource(&r.job_id, &who(r.role, r.party_id))
                    .await
            }
        })
        .await
        .map_err(|e| to_status(&e))?;
        let (granted, reason) = match grant {
            Grant::Granted => (true, String::new()),
            Grant::Refused(reason) => (false, reason),
        };
        Ok(Response::new(pb::ApplyResourceResponse {
            granted,
            cores,
            memory_mb,
            reason,
        }))
    }

    async fn return_resource(
        &self,
        request: Request<pb::ReturnResourceRequest>,
    ) -> Result<Response<pb::ReturnResourceResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id, Need::Scheduler)
            .await?;
        let mut r = request.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        let released = fedflow_store::with_request(&request_id, {
            let app = self.app.clone();
            async move {
                app.return_resource(&r.job_id, &who(r.role, r.party_id))
                    .await
            }
        })
        .await
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ReturnResourceResponse { released }))
    }

    async fn start_job(
        &self,
        request: Request<pb::StartJobRequest>,
    ) -> Result<Response<pb::StartJobResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id, Need::Scheduler)
            .await?;
        let mut r = request.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        let status = fedflow_store::with_request(&request_id, {
            let app = self.app.clone();
            async move { app.start_job(&r.job_id, &who(r.role, r.party_id)).await }
        })
        .await
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::StartJobResponse {
            status: job_status_to_pb(status) as i32,
        }))
    }

    async fn update_job_status(
        &self,
        request: Request<pb::UpdateJobStatusRequest>,
    ) -> Result<Response<pb::UpdateJobStatusResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id, Need::Scheduler)
            .await?;
        let mut r = request.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        let to = job_status_from_pb(r.status)
            .ok_or_else(|| Status::invalid_argument("status: unspecified or unknown"))?;
        let (applied, status) = fedflow_store::with_request(&request_id, {
            let app = self.app.clone();
            async move {
                app.update_job_status(&r.job_id, &who(r.role, r.party_id), to, &r.reason)
                    .await
            }
        })
        .await
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::UpdateJobStatusResponse {
            applied,
            status: job_status_to_pb(status) as i32,
        }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id, Need::Participant)
            .await?;
        let (jobs, participants) = self
            .app
            .get_job(&request.into_inner().job_id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::GetJobResponse {
            jobs: jobs.into_iter().map(party_job).collect(),
            participants,
        }))
    }

    async fn get_resources(
        &self,
        request: Request<pb::GetResourcesRequest>,
    ) -> Result<Response<pb::GetResourcesResponse>, Status> {
        caller(&request, self.app.party_id())
            .local_only("GetResources")
            .map_err(|e| to_status(&e))?;
        let view = self.app.resources().await.map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::GetResourcesResponse {
            total_cores: view.capacity.cores,
            total_memory_mb: view.capacity.memory_mb,
            free_cores: view.free_cores,
            free_memory_mb: view.free_memory_mb,
            allocations: view
                .allocations
                .into_iter()
                .map(|a| pb::Allocation {
                    job_id: a.job_id,
                    role: a.role,
                    cores: a.cores,
                    memory_mb: a.memory_mb,
                    create_time_ms: a.create_ms,
                })
                .collect(),
        }))
    }
}
