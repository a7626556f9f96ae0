//! `fedflow.taskcontroller.v1.TaskController` and `Worker` adapters: each handler authorises
//! the caller, converts the request ([`convert`]), makes one app call and converts the answer
//! back; app errors become replies through [`fedflow_rpc::error::to_status`].

mod convert;
mod data;
pub mod sessions;

use fedflow_proto::taskcontroller::v1 as pb;
use fedflow_rpc::convert::task_status_to_pb;
use fedflow_rpc::error::to_status;
use fedflow_rpc::party::caller;
use tonic::{Request, Response, Status};

use crate::app::{self, App, CreateTasks, StopTasks, WorkerReport};
use convert::{GetTaskOutput, Heartbeat, UpdateTaskStatus};

pub const SERVICE_NAME: &str = "fedflow.taskcontroller.v1.TaskController";
pub const WORKER_SERVICE_NAME: &str = "fedflow.taskcontroller.v1.Worker";
pub use data::DATA_SERVICE_NAME;

impl From<app::Error> for Status {
    fn from(e: app::Error) -> Status {
        to_status(&e)
    }
}

pub fn services(
    app: App,
) -> (
    pb::task_controller_server::TaskControllerServer<TaskController>,
    pb::worker_server::WorkerServer<Worker>,
    pb::data_server::DataServer<data::Data>,
) {
    (
        pb::task_controller_server::TaskControllerServer::new(TaskController { app: app.clone() }),
        pb::worker_server::WorkerServer::new(Worker { app: app.clone() }),
        pb::data_server::DataServer::new(data::Data { app }),
    )
}

pub struct TaskController {
    app: App,
}

pub struct Worker {
    app: App,
}

impl TaskController {
    /// Refuses another party's call about `job_id` unless it is the job's scheduler party.
    async fn authorize<T>(&self, request: &Request<T>, job_id: &str) -> Result<(), Status> {
        Ok(self
            .app
            .authorize(&caller(request, self.app.party_id()), job_id)
            .await?)
    }
}

#[tonic::async_trait]
impl pb::task_controller_server::TaskController for TaskController {
    async fn create_tasks(
        &self,
        request: Request<pb::CreateTasksRequest>,
    ) -> Result<Response<pb::CreateTasksResponse>, Status> {
        let r = request.get_ref();
        let who = caller(&request, self.app.party_id());
        self.app
            .authorize_create(&who, &r.job_id, &r.scheduler_party_id)
            .await?;
        let create = CreateTasks::try_from(request.into_inner())?;
        let created = self.app.create_tasks(create).await?;
        Ok(Response::new(pb::CreateTasksResponse { created }))
    }

    async fn start_task(
        &self,
        request: Request<pb::StartTaskRequest>,
    ) -> Result<Response<pb::StartTaskResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id).await?;
        let key = convert::start_task(request.into_inner())?;
        let status = self.app.start_task(key).await?;
        Ok(Response::new(pb::StartTaskResponse {
            status: task_status_to_pb(status) as i32,
        }))
    }

    async fn stop_tasks(
        &self,
        request: Request<pb::StopTasksRequest>,
    ) -> Result<Response<pb::StopTasksResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id).await?;
        let stop = StopTasks::try_from(request.into_inner())?;
        let stopped = self.app.stop_tasks(stop).await?;
        Ok(Response::new(pb::StopTasksResponse { stopped }))
    }

    async fn update_task_status(
        &self,
        request: Request<pb::UpdateTaskStatusRequest>,
    ) -> Result<Response<pb::UpdateTaskStatusResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id).await?;
        let u = UpdateTaskStatus::try_from(request.into_inner())?;
        let updated = self.app.update_task_status(&u.job_id, &u.updates).await?;
        Ok(Response::new(pb::UpdateTaskStatusResponse { updated }))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id).await?;
        let job_id = convert::job_id(request.into_inner().job_id)?;
        let tasks = self.app.list_tasks(&job_id).await?;
        Ok(Response::new(pb::ListTasksResponse {
            tasks: tasks.into_iter().map(pb::PartyTask::from).collect(),
        }))
    }

    async fn get_task_output(
        &self,
        request: Request<pb::GetTaskOutputRequest>,
    ) -> Result<Response<pb::GetTaskOutputResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id).await?;
        let get = GetTaskOutput::try_from(request.into_inner())?;
        let (version, output_json) = self
            .app
            .task_output(&get.job_id, &get.component, get.role, &get.party_id)
            .await?;
        Ok(Response::new(pb::GetTaskOutputResponse {
            version,
            output_json,
        }))
    }
}

#[tonic::async_trait]
impl pb::worker_server::Worker for Worker {
    async fn report_status(
        &self,
        request: Request<pb::ReportStatusRequest>,
    ) -> Result<Response<pb::ReportStatusResponse>, Status> {
        let report = WorkerReport::try_from(request.into_inner())?;
        let applied = self.app.worker_report(report).await?;
        Ok(Response::new(pb::ReportStatusResponse { applied }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let beat = Heartbeat::try_from(request.into_inner())?;
        let stop = self.app.worker_heartbeat(beat.key, &beat.token).await?;
        Ok(Response::new(pb::HeartbeatResponse { stop }))
    }
}
