//! `fedflow.scheduler.v1.Scheduler` (the client API) and `StatusReport` adapters. Calls about
//! a job another party schedules are passed on to that party's scheduler as they are.

use std::pin::Pin;
use std::sync::Arc;

use fedflow_core::ids::Participant;
use fedflow_proto::common::v1 as common;
use fedflow_proto::scheduler::v1 as pb;
use fedflow_rpc::convert::{job_status_to_pb, task_status_from_pb, task_status_to_pb};
use fedflow_rpc::error::to_status;
use fedflow_rpc::party::caller;
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::app::{App, Located, TaskView};
use crate::events::Event;
use crate::store::Job;

pub const SERVICE_NAME: &str = "fedflow.scheduler.v1.Scheduler";
pub const REPORT_SERVICE_NAME: &str = "fedflow.scheduler.v1.StatusReport";

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
    app.authorize(&caller(request, app.party_id()), job_id)
        .await
        .map_err(|e| to_status(&e))
}

/// Refuses another party's call to a method of the client API only.
fn local_only<T>(app: &App, request: &Request<T>, method: &str) -> Result<(), Status> {
    caller(request, app.party_id())
        .local_only(method)
        .map_err(|e| to_status(&e))
}

impl Scheduler {
    /// Answers with `here` when this party schedules the job; otherwise passes the same
    /// request on to the job's scheduler (through the gateways) and returns its answer.
    async fn here_or_forwarded<Req, Resp, F, Fut>(
        &self,
        job_id: &str,
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
        let answer = match self.app.locate(job_id).await.map_err(|e| to_status(&e))? {
            Located::Here => here().await,
            Located::At(party) => self.app.forward(&party, job_id, method, request).await,
        };
        answer.map(Response::new).map_err(|e| to_status(&e))
    }
}

pub struct StatusReport {
    app: App,
}

fn party_ref(who: &Participant) -> common::PartyRef {
    common::PartyRef {
        role: who.role.clone(),
        party_id: who.party_id.clone(),
    }
}

fn job_to_pb(job: Job, include_conf: bool) -> pb::Job {
    let parties = fedflow_core::dsl::parse(&job.dsl, &job.conf, &Default::default())
        .map(|spec| spec.participants().iter().map(party_ref).collect())
        .unwrap_or_default();
    let elapsed = if job.start_ms > 0 && job.end_ms > 0 {
        job.end_ms - job.start_ms
    } else {
        0
    };
    pb::Job {
        job_id: job.job_id,
        status: job_status_to_pb(job.status) as i32,
        initiator: Some(party_ref(&job.initiator)),
        parties,
        priority: job.priority,
        reason: job.reason,
        pending_reason: job.pending_reason,
        create_time_ms: job.create_ms,
        start_time_ms: job.start_ms,
        end_time_ms: job.end_ms,
        elapsed_ms: elapsed,
        progress: job.progress,
        cancel_requested: job.cancel_requested,
        dsl: if include_conf { job.dsl } else { String::new() },
        runtime_conf: if include_conf {
            job.conf
        } else {
            String::new()
        },
    }
}

fn task_to_pb(view: TaskView) -> pb::Task {
    pb::Task {
        job_id: view.task.job_id,
        component: view.task.component,
        module: view.task.module,
        version: view.task.version,
        status: task_status_to_pb(view.task.status) as i32,
        reason: view.task.reason,
        parties: view
            .parties
            .into_iter()
            .map(|p| pb::TaskParty {
                role: p.who.role,
                party_id: p.who.party_id,
                status: task_status_to_pb(p.status) as i32,
                reason: p.reason,
                update_time_ms: p.update_ms,
            })
            .collect(),
        start_time_ms: view.task.start_ms,
        end_time_ms: view.task.end_ms,
    }
}

fn event_to_pb(event: Event) -> pb::JobEvent {
    match event {
        Event::Job {
            job_id,
            time_ms,
            status,
            reason,
        } => pb::JobEvent {
            job_id,
            time_ms,
            event: Some(pb::job_event::Event::Job(pb::JobStatusChanged {
                status: job_status_to_pb(status) as i32,
                reason,
            })),
        },
        Event::Task {
            job_id,
            time_ms,
            component,
            version,
            who,
            status,
            reason,
        } => {
            let (role, party_id) = who.map(|w| (w.role, w.party_id)).unwrap_or_default();
            pb::JobEvent {
                job_id,
                time_ms,
                event: Some(pb::job_event::Event::Task(pb::TaskStatusChanged {
                    component,
                    version,
                    role,
                    party_id,
                    status: task_status_to_pb(status) as i32,
                    reason,
                })),
            }
        }
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<pb::JobEvent, Status>> + Send>>;

#[tonic::async_trait]
impl pb::scheduler_server::Scheduler for Scheduler {
    async fn submit_job(
        &self,
        request: Request<pb::SubmitJobRequest>,
    ) -> Result<Response<pb::SubmitJobResponse>, Status> {
        local_only(&self.app, &request, "SubmitJob")?;
        let r = request.into_inner();
        let job_id = self
            .app
            .submit(r.dsl, r.runtime_conf, r.request_id)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::SubmitJobResponse { job_id }))
    }

    async fn get_job(
        &self,
        request: Request<pb::GetJobRequest>,
    ) -> Result<Response<pb::GetJobResponse>, Status> {
        authorize(&self.app, &request, &request.get_ref().job_id).await?;
        let r = request.into_inner();
        self.here_or_forwarded(&r.job_id, "GetJob", &r, || async {
            let job = self.app.job_here(&r.job_id).await?;
            Ok(pb::GetJobResponse {
                job: Some(job_to_pb(job, r.include_conf)),
            })
        })
        .await
    }

    async fn list_jobs(
        &self,
        request: Request<pb::ListJobsRequest>,
    ) -> Result<Response<pb::ListJobsResponse>, Status> {
        local_only(&self.app, &request, "ListJobs")?;
        let jobs = self
            .app
            .list_jobs(request.into_inner().limit)
            .await
            .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ListJobsResponse {
            jobs: jobs.into_iter().map(|j| job_to_pb(j, false)).collect(),
        }))
    }

    async fn stop_job(
        &self,
        request: Request<pb::StopJobRequest>,
    ) -> Result<Response<pb::StopJobResponse>, Status> {
        authorize(&self.app, &request, &request.get_ref().job_id).await?;
        let r = request.into_inner();
        self.here_or_forwarded(&r.job_id, "StopJob", &r, || async {
            let (status, message) = self.app.stop(&r.job_id).await?;
            Ok(pb::StopJobResponse {
                job_id: r.job_id.clone(),
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
        self.here_or_forwarded(&r.job_id, "RerunJob", &r, || async {
            let components = fedflow_store::with_request(&r.request_id, {
                let (app, job_id, component) =
                    (self.app.clone(), r.job_id.clone(), r.component.clone());
                async move { app.rerun(&job_id, &component, r.force).await }
            })
            .await?;
            Ok(pb::RerunJobResponse {
                job_id: r.job_id.clone(),
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
        self.here_or_forwarded(&r.job_id, "ListTasks", &r, || async {
            let tasks = self.app.tasks(&r.job_id, r.all_versions).await?;
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
        self.here_or_forwarded(&r.job_id, "GetTaskOutput", &r, || async {
            let who = Participant {
                role: r.role.clone(),
                party_id: r.party_id.clone(),
            };
            let (version, output_json) =
                self.app.task_output(&r.job_id, &r.component, &who).await?;
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
        let job_id = request.into_inner().job_id;
        if job_id.is_empty() {
            return Ok(Response::new(Box::pin(watch_all(self.app.subscribe()))));
        }
        if let Located::At(party) = self.app.locate(&job_id).await.map_err(|e| to_status(&e))? {
            return Err(Status::failed_precondition(format!(
                "job {job_id} is scheduled by party {party}: watch it on that party's scheduler"
            )));
        }
        // Subscribe before the snapshot so no change falls between them.
        let mut events = self.app.subscribe();
        let snapshot = self
            .app
            .snapshot(&job_id)
            .await
            .map_err(|e| to_status(&e))?;
        let (tx, rx) = tokio::sync::mpsc::channel(256);
        let app = self.app.clone();
        tokio::spawn(async move {
            let mut ended = false;
            for event in snapshot {
                ended |= event.ends_job();
                if tx.send(Ok(event_to_pb(event))).await.is_err() {
                    return;
                }
            }
            while !ended {
                let event = match events.recv().await {
                    Ok(event) if event.job_id() == job_id => event,
                    Ok(_) => continue,
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Too slow a reader: send a fresh snapshot instead of what was missed.
                        match app.snapshot(&job_id).await {
                            Ok(snapshot) => {
                                for event in snapshot {
                                    ended |= event.ends_job();
                                    if tx.send(Ok(event_to_pb(event))).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(Err(to_status(&e))).await;
                                return;
                            }
                        }
                        continue;
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
                };
                ended = event.ends_job();
                if tx.send(Ok(event_to_pb(event))).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
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

/// Every event of every job, as it happens. A reader too slow to keep up gets `DATA_LOSS`
/// (how many events it missed) and the stream ends.
fn watch_all(
    mut events: tokio::sync::broadcast::Receiver<Event>,
) -> impl Stream<Item = Result<pb::JobEvent, Status>> + Send {
    let (tx, rx) = tokio::sync::mpsc::channel(1024);
    tokio::spawn(async move {
        loop {
            let item = match events.recv().await {
                Ok(event) => Ok(event_to_pb(event)),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => Err(Status::data_loss(
                    format!("{n} events were dropped: the reader is too slow"),
                )),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            };
            let last = item.is_err();
            if tx.send(item).await.is_err() || last {
                return;
            }
        }
    });
    ReceiverStream::new(rx)
}

#[tonic::async_trait]
impl pb::status_report_server::StatusReport for StatusReport {
    async fn report_task_status(
        &self,
        request: Request<pb::ReportTaskStatusRequest>,
    ) -> Result<Response<pb::ReportTaskStatusResponse>, Status> {
        caller(&request, self.app.party_id())
            .claims(&request.get_ref().party_id, "party_id")
            .map_err(|e| to_status(&e))?;
        authorize(&self.app, &request, &request.get_ref().job_id).await?;
        let mut r = request.into_inner();
        let request_id = std::mem::take(&mut r.request_id);
        let status = task_status_from_pb(r.status)
            .ok_or_else(|| Status::invalid_argument("status: unspecified or unknown"))?;
        let who = Participant {
            role: r.role,
            party_id: r.party_id,
        };
        let applied = fedflow_store::with_request(&request_id, {
            let app = self.app.clone();
            async move {
                app.report(&r.job_id, &r.component, r.version, &who, status, &r.reason)
                    .await
            }
        })
        .await
        .map_err(|e| to_status(&e))?;
        Ok(Response::new(pb::ReportTaskStatusResponse { applied }))
    }
}

/// The client port's gate: the bearer token when one is set; a party's identity can never be
/// claimed there (the caller header is dropped, so every call is a client's).
#[derive(Clone)]
pub struct ClientGate {
    token: Option<Arc<String>>,
}

impl ClientGate {
    pub fn new(token: Option<String>) -> ClientGate {
        ClientGate {
            token: token.map(Arc::new),
        }
    }
}

impl tonic::service::Interceptor for ClientGate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        request
            .metadata_mut()
            .remove(fedflow_rpc::party::CALLER_HEADER);
        let Some(token) = &self.token else {
            return Ok(request);
        };
        let sent = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match sent {
            Some(sent) if constant_time_eq(sent.as_bytes(), token.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("the bearer token is not valid")),
            None => Err(Status::unauthenticated(
                "this port needs a bearer token: send `authorization: Bearer <token>` (fedflow --token)",
            )),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
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
