//! `fedflow.taskcontroller.v1.TaskController` and `Worker` adapters.

use fedflow_core::TaskStatus;
use fedflow_core::ids::Participant;
use fedflow_proto::taskcontroller::v1 as pb;
use fedflow_rpc::convert::{task_status_from_pb, task_status_to_pb};
use fedflow_rpc::error::to_status;
use fedflow_rpc::party::caller;
use tonic::{Request, Response, Status};

use crate::app::{App, NewTask};
use crate::store::{Task, TaskKey};

pub const SERVICE_NAME: &str = "fedflow.taskcontroller.v1.TaskController";
pub const WORKER_SERVICE_NAME: &str = "fedflow.taskcontroller.v1.Worker";

pub fn services(
    app: App,
) -> (
    pb::task_controller_server::TaskControllerServer<TaskController>,
    pb::worker_server::WorkerServer<Worker>,
) {
    (
        pb::task_controller_server::TaskControllerServer::new(TaskController { app: app.clone() }),
        pb::worker_server::WorkerServer::new(Worker { app }),
    )
}

pub struct TaskController {
    app: App,
}

pub struct Worker {
    app: App,
}

fn status_of(value: i32, field: &str) -> Result<TaskStatus, Status> {
    task_status_from_pb(value)
        .ok_or_else(|| Status::invalid_argument(format!("{field}: unspecified or unknown")))
}

fn party_task(task: Task) -> pb::PartyTask {
    pb::PartyTask {
        job_id: task.key.job_id,
        component: task.key.component,
        version: task.key.version,
        role: task.key.role,
        party_id: task.key.party_id,
        module: task.module,
        party_status: task_status_to_pb(task.party_status) as i32,
        status: task_status_to_pb(task.status) as i32,
        reason: task.reason,
        pid: task.pid,
        need_run: task.need_run,
        start_time_ms: task.start_ms,
        end_time_ms: task.end_ms,
        output_json: task.output,
    }
}

impl TaskController {
    /// Refuses another party's call about `job_id` unless it is the job's scheduler party.
    async fn authorize<T>(&self, request: &Request<T>, job_id: &str) -> Result<(), Status> {
        self.app
            .authorize(&caller(request, self.app.party_id()), job_id)
            .await
            .map_err(|e| to_status(&e))
    }
}

#[tonic::async_trait]
impl pb::task_controller_server::TaskController for TaskController {
    async fn create_tasks(
        &self,
        request: Request<pb::CreateTasksRequest>,
    ) -> Result<Response<pb::CreateTasksResponse>, Status> {
        self.app
            .authorize_create(
                &caller(&request, self.app.party_id()),
                &request.get_ref().job_id,
                &request.get_ref().scheduler_party_id,
            )
            .await
            .map_err(|e| to_status(&e))?;
        let mut r = request.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        let who = Participant {
            role: r.role,
            party_id: r.party_id,
        };
        let tasks = r
            .tasks
            .into_iter()
            .map(|t| NewTask {
                component: t.component,
                module: t.module,
                parameters_json: t.parameters_json,
                need_run: t.need_run,
                upstream: t.upstream,
            })
            .collect();
        let created = fedflow_store::with_request(&request_id, {
            let app = self.app.clone();
            async move {
                app.create_tasks(&r.job_id, &who, &r.scheduler_party_id, r.version, tasks)
                    .await
            }
        })
        .await
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::CreateTasksResponse { created }))
    }

    async fn start_task(
        &self,
        request: Request<pb::StartTaskRequest>,
    ) -> Result<Response<pb::StartTaskResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id).await?;
        let mut r = request.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        let status = fedflow_store::with_request(&request_id, {
            let app = self.app.clone();
            async move {
                app.start_task(TaskKey {
                    job_id: r.job_id,
                    component: r.component,
                    version: r.version,
                    role: r.role,
                    party_id: r.party_id,
                })
                .await
            }
        })
        .await
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::StartTaskResponse {
            status: task_status_to_pb(status) as i32,
        }))
    }

    async fn stop_tasks(
        &self,
        request: Request<pb::StopTasksRequest>,
    ) -> Result<Response<pb::StopTasksResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id).await?;
        let mut r = request.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        let status = status_of(r.status, "status")?;
        let who = Participant {
            role: r.role,
            party_id: r.party_id,
        };
        let stopped = fedflow_store::with_request(&request_id, {
            let app = self.app.clone();
            async move {
                let component = (!r.component.is_empty()).then_some(r.component.as_str());
                app.stop_tasks(&r.job_id, component, r.version, &who, status, &r.reason)
                    .await
            }
        })
        .await
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::StopTasksResponse { stopped }))
    }

    async fn update_task_status(
        &self,
        request: Request<pb::UpdateTaskStatusRequest>,
    ) -> Result<Response<pb::UpdateTaskStatusResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id).await?;
        let mut r = request.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        let status = status_of(r.status, "status")?;
        let updated = fedflow_store::with_request(&request_id, {
            let app = self.app.clone();
            async move {
                app.update_task_status(&r.job_id, &r.component, r.version, status)
                    .await
            }
        })
        .await
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::UpdateTaskStatusResponse { updated }))
    }

    async fn list_tasks(
        &self,
        request: Request<pb::ListTasksRequest>,
    ) -> Result<Response<pb::ListTasksResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id).await?;
        let tasks = self
            .app
            .list_tasks(&request.into_inner().job_id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ListTasksResponse {
            tasks: tasks.into_iter().map(party_task).collect(),
        }))
    }

    async fn get_task_output(
        &self,
        request: Request<pb::GetTaskOutputRequest>,
    ) -> Result<Response<pb::GetTaskOutputResponse>, Status> {
        self.authorize(&request, &request.get_ref().job_id).await?;
        let r = request.into_inner();
        let who = Participant {
            role: r.role,
            party_id: r.party_id,
        };
        let (version, output_json) = self
            .app
            .task_output(&r.job_id, &r.component, &who)
            .await
            .map_err(|e| to_status(&e))?;
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
        let r = request.into_inner();
        let status = status_of(r.status, "status")?;
        let applied = self
            .app
            .worker_report(
                TaskKey {
                    job_id: r.job_id,
                    component: r.component,
                    version: r.version,
                    role: r.role,
                    party_id: r.party_id,
                },
                &r.token,
                status,
                &r.reason,
                &r.output_json,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ReportStatusResponse { applied }))
    }

    async fn heartbeat(
        &self,
        request: Request<pb::HeartbeatRequest>,
    ) -> Result<Response<pb::HeartbeatResponse>, Status> {
        let r = request.into_inner();
        let stop = self
            .app
            .worker_heartbeat(
                TaskKey {
                    job_id: r.job_id,
                    component: r.component,
                    version: r.version,
                    role: r.role,
                    party_id: r.party_id,
                },
                &r.token,
            )
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::HeartbeatResponse { stop }))
    }
}
