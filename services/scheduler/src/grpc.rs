//! `fedflow.scheduler.v1.Scheduler` (the client API) and `StatusReport` adapters. Each
//! handler authorises, converts its request once (`convert`), makes one app call and converts
//! the answer back. Calls about a job another party schedules are passed on to that party's
//! scheduler as they are.

mod client_gate;
mod convert;
mod data;

use std::pin::Pin;

use fedflow_core::ids::JobId;
use fedflow_proto::scheduler::v1 as pb;
use fedflow_rpc::convert::job_status_to_pb;
use fedflow_rpc::party::caller;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status};

use crate::app::{self, App, Located};
use crate::domain::model::{
    GetJob, GetTaskOutput, ListJobs, ListTasks, ReportTaskStatus, RerunJob, StopJob, SubmitJob,
    WatchJob, participant,
};
pub use client_gate::ClientGate;
use convert::{event_to_pb, job_to_pb, task_to_pb};

pub const SERVICE_NAME: &str = "fedflow.scheduler.v1.Scheduler";
pub const REPORT_SERVICE_NAME: &str = "fedflow.scheduler.v1.StatusReport";
pub use data::DATA_SERVICE_NAME;

/// The data and outputs API (`fedflow.scheduler.v1.Data`) of this party.
pub fn data_service(app: App) -> pb::data_server::DataServer<data::Data> {
    pb::data_server::DataServer::new(data::Data { app }).max_decoding_message_size(8 << 20)
}

/// The data API behind `gate` (the client port).
pub fn client_data_service(
    app: App,
    gate: ClientGate,
) -> tonic::service::interceptor::InterceptedService<
    pb::data_server::DataServer<data::Data>,
    ClientGate,
> {
    tonic::service::interceptor::InterceptedService::new(data_service(app), gate)
}

pub fn services(
    app: App,
) -> (
    pb::scheduler_server::SchedulerServer<Scheduler>,
    pb::status_report_server::StatusReportServer<StatusReport>,
) {
    (
        pb::scheduler_server::SchedulerServer::new(Scheduler { app: app.clone() })
            .max_decoding_message_size(8 << 20),
        pb::status_report_server::StatusReportServer::new(StatusReport { app }),
    )
}

pub struct Scheduler {
    app: App,
}

/// Refuses another party's call about `job_id` unless it takes part in the job.
async fn authorize<T>(app: &App, request: &Request<T>, job_id: &str) -> Result<(), Status> {
    Ok(app
        .authorize(&caller(request, app.party_id()), job_id)
        .await?)
}

/// Refuses another party's call to a method of the client API only.
fn local_only<T>(app: &App, request: &Request<T>, method: &str) -> Result<(), Status> {
    caller(request, app.party_id())
        .local_only(method)
        .map_err(|e| app::Error::from(e).into())
}

impl Scheduler {
    /// Answers with `here` when this party schedules the job; otherwise passes the same
    /// request on to the job's scheduler (through the gateways) and returns its answer.
    async fn here_or_forwarded<Req, Resp, F, Fut>(
        &self,
        job_id: &JobId,
        method: &str,
        request: &Req,
        here: F,
    ) -> Result<Response<Resp>, Status>
    where
        Req: prost::Message,
        Resp: prost::Message + Default,
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Resp, crate::app::Error>>,
    {
        let answer = match self.app.locate(job_id).await? {
            Located::Here => here().await,
            Located::At(party) => {
                self.app
                    .forward(&party, job_id.as_str(), method, request)
                    .await
            }
        };
        Ok(answer.map(Response::new)?)
    }
}

pub struct StatusReport {
    app: App,
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::JobEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::scheduler_server::Scheduler for Scheduler {
    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        local_only(&self.app, &request, "SubmitJob")?;
        let r = SubmitJob::try_from(request.into_inner())?;
        let job_id = self.app.submit(r.dsl, r.conf, r.request_id).await?;
        Ok(Response::new(pb::SubmitJobResponse { job_id }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        authorize(&self.app, &request, &request.get_ref().job_id).await?;
        let r = request.into_inner();
        let cmd = GetJob::try_from(r.clone())?;
        self.here_or_forwarded(&cmd.job_id, "GetJob", &r, || async {
            let view = self.app.job_view(&cmd.job_id).await?;
            Ok(pb::GetJobResponse {
                job: Some(job_to_pb(view, cmd.include_conf)),
            })
        })
        .await
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        local_only(&self.app, &request, "ListJobs")?;
        let cmd = ListJobs::try_from(request.into_inner())?;
        let (jobs, next) = self.app.job_views(&cmd).await?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.into_iter().map(|j| job_to_pb(j, false)).collect(),
            next_page_token: next.map(|c| c.to_token()).unwrap_or_default(),
        }))
    }

    async fn stop_job(
        &self,
        request: Request<pb::StopJobRequest>,
    ) -> Result<Response<pb::StopJobResponse>, Status> {
        authorize(&self.app, &request, &request.get_ref().job_id).await?;
        let r = request.into_inner();
        let cmd = StopJob::try_from(r.clone())?;
        self.here_or_forwarded(&cmd.job_id, "StopJob", &r, || async {
            let (status, message) = self.app.stop(&cmd.job_id).await?;
            Ok(pb::StopJobResponse {
                job_id: cmd.job_id.to_string(),
                status: job_status_to_pb(status) as i32,
                message,
            })
        })
        .await
    }

    async fn rerun_job(
        &self,
        request: Request<pb::RerunJobRequest>,
    ) -> Result<Response<pb::RerunJobResponse>, Status> {
        authorize(&self.app, &request, &request.get_ref().job_id).await?;
        let r = request.into_inner();
        let cmd = RerunJob::try_from(r.clone())?;
        self.here_or_forwarded(&cmd.job_id, "RerunJob", &r, || async {
            let components = fedflow_store::with_request(&cmd.request_id, {
                let (app, cmd) = (self.app.clone(), cmd.clone());
                async move {
                    app.rerun(&cmd.job_id, cmd.component.as_ref(), cmd.force)
                        .await
                }
            })
            .await?;
            Ok(pb::RerunJobResponse {
                job_id: cmd.job_id.to_string(),
                components,
            })
        })
        .await
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        authorize(&self.app, &request, &request.get_ref().job_id).await?;
        let r = request.into_inner();
        let cmd = ListTasks::try_from(r.clone())?;
        self.here_or_forwarded(&cmd.job_id, "ListTasks", &r, || async {
            let tasks = self.app.tasks(&cmd.job_id, cmd.all_versions).await?;
            Ok(pb::ListTasksResponse {
                tasks: tasks.into_iter().map(task_to_pb).collect(),
            })
        })
        .await
    }

    async fn get_task_output(
        &self,
        request: Request<pb::GetTaskOutputRequest>,
    ) -> Result<Response<pb::GetTaskOutputResponse>, Status> {
        authorize(&self.app, &request, &request.get_ref().job_id).await?;
        let r = request.into_inner();
        let cmd = GetTaskOutput::try_from(r.clone())?;
        self.here_or_forwarded(&cmd.job_id, "GetTaskOutput", &r, || async {
            let who = participant(cmd.role, &cmd.party_id);
            let (version, output_json) = self
                .app
                .task_output(&cmd.job_id, &cmd.component, &who)
                .await?;
            Ok(pb::GetTaskOutputResponse {
                version,
                output_json,
            })
        })
        .await
    }

    type WatchJobStream = EventStream;

    async fn watch_job(
        &self,
        request: Request<pb::WatchJobRequest>,
    ) -> Result<Response<Self::WatchJobStream>, Status> {
        local_only(&self.app, &request, "WatchJob")?;
        let cmd = WatchJob::try_from(request.into_inner())?;
        let events: EventStream = match cmd.job_id {
            None => Box::pin(self.app.watch_all().map(|item| {
                item.map(event_to_pb)
                    .map_err(|missed| Status::data_loss(missed.to_string()))
            })),
            Some(job_id) => Box::pin(
                self.app
                    .watch_job(&job_id)
                    .await?
                    .map(|item| item.map(event_to_pb).map_err(Status::from)),
            ),
        };
        Ok(Response::new(events))
    }

    /// A participant's reachability probe: authorised as a read of the job, no side effects.
    async fn probe(
        &self,
        request: Request<pb::ProbeRequest>,
    ) -> Result<Response<pb::ProbeResponse>, Status> {
        authorize(&self.app, &request, &request.get_ref().job_id).await?;
        Ok(Response::new(pb::ProbeResponse {}))
    }
}

#[tonic::async_trait]
impl pb::status_report_server::StatusReport for StatusReport {
    async fn report_task_status(
        &self,
        request: Request<pb::ReportTaskStatusRequest>,
    ) -> Result<Response<pb::ReportTaskStatusResponse>, Status> {
        caller(&request, self.app.party_id())
            .claims(&request.get_ref().party_id, "party_id")
            .map_err(app::Error::from)?;
        authorize(&self.app, &request, &request.get_ref().job_id).await?;
        let r = ReportTaskStatus::try_from(request.into_inner())?;
        let key = &r.key;
        let who = participant(key.role, &key.party_id);
        let (job_id, component) = (key.job_id.as_str(), key.component.as_str());
        let applied = self
            .app
            .report(
                job_id,
                component,
                key.version.get(),
                &who,
                r.status,
                &r.reason,
            )
            .await?;
        Ok(Response::new(pb::ReportTaskStatusResponse { applied }))
    }
}

/// The client API alone, behind `gate`.
pub fn client_service(
    app: App,
    gate: ClientGate,
) -> tonic::service::interceptor::InterceptedService<
    pb::scheduler_server::SchedulerServer<Scheduler>,
    ClientGate,
> {
    let (scheduler, _) = services(app);
    tonic::service::interceptor::InterceptedService::new(scheduler, gate)
}
