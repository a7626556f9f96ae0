//! The scheduler on its own: started through its `run` on 127.0.0.1:0 with its own SQLite file
//! and a fake party-gateway (a tonic `Federation` server that records every envelope it is
//! handed and answers as the parties' job-controllers and task-controllers would), driven by a
//! real tonic `Scheduler` client and by `StatusReport` calls made as the parties make them.
//! Every wait polls with a deadline. What crosses real parties is tested in `tests/`.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::gateway::v1 as gw;
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_rpc::calls::PartyCall;
use fedflow_rpc::party::{CALLER_HEADER, services};
use parking_lot::Mutex;
use prost::Message;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

/// The scheduler's own party, the job's guest and initiator.
const GUEST: &str = "9999";
const HOST: &str = "10000";
const WITHIN: Duration = Duration::from_secs(20);

/// Polls `check` until it returns `Ok`, failing after `within` with what it last said.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last saw: {seen}")
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// One call the fake gateway was handed, decoded: where to, when, and its place in the order
/// of every call.
#[derive(Debug, Clone)]
struct Received<C> {
    seq: usize,
    at: Instant,
    dest: String,
    request: C,
}

/// The fake gateway: records every envelope and answers as the job-controller and the
/// task-controller of its destination party would. ApplyResource is granted unless the party
/// is set to refuse.
#[derive(Clone, Default)]
struct FakeParties {
    seen: Arc<Mutex<Vec<(Instant, gw::Envelope)>>>,
    /// Per party, the reason its job-controller refuses resources with.
    refusals: Arc<Mutex<HashMap<String, String>>>,
}

fn decode<C: PartyCall>(envelope: &gw::Envelope) -> Result<C, Status> {
    C::decode(envelope.payload.clone()).map_err(|e| {
        Status::invalid_argument(format!("fake gateway: undecodable {}: {e}", C::METHOD))
    })
}

fn reply(message: impl Message) -> Result<Bytes, Status> {
    Ok(message.encode_to_vec().into())
}

impl FakeParties {
    fn refuse(&self, party: &str, reason: &str) {
        self.refusals
            .lock()
            .insert(party.to_owned(), reason.to_owned());
    }

    fn grant(&self, party: &str) {
        self.refusals.lock().remove(party);
    }

    /// The answer of the destination party's service.
    fn answer(&self, envelope: &gw::Envelope) -> Result<Bytes, Status> {
        match (envelope.service.as_str(), envelope.method.as_str()) {
            (services::JOB_CONTROLLER, "CreateJob") => {
                decode::<jc::CreateJobRequest>(envelope)?;
                reply(jc::CreateJobResponse::default())
            }
            (services::JOB_CONTROLLER, "ApplyResource") => {
                let request = decode::<jc::ApplyResourceRequest>(envelope)?;
                reply(match self.refusals.lock().get(&request.party_id) {
                    Some(reason) => jc::ApplyResourceResponse {
                        granted: false,
                        reason: reason.clone(),
                        ..Default::default()
                    },
                    None => jc::ApplyResourceResponse {
                        granted: true,
                        cores: 1,
                        ..Default::default()
                    },
                })
            }
            (services::JOB_CONTROLLER, "ReturnResource") => {
                decode::<jc::ReturnResourceRequest>(envelope)?;
                reply(jc::ReturnResourceResponse { released: true })
            }
            (services::JOB_CONTROLLER, "StartJob") => {
                decode::<jc::StartJobRequest>(envelope)?;
                reply(jc::StartJobResponse {
                    status: JobStatus::Running as i32,
                })
            }
            (services::JOB_CONTROLLER, "UpdateJobStatus") => {
                let request = decode::<jc::UpdateJobStatusRequest>(envelope)?;
                reply(jc::UpdateJobStatusResponse {
                    applied: true,
                    status: request.status,
                })
            }
            (services::TASK_CONTROLLER, "CreateTasks") => {
                let request = decode::<tc::CreateTasksRequest>(envelope)?;
                reply(tc::CreateTasksResponse {
                    created: u32::try_from(request.tasks.len()).unwrap_or(u32::MAX),
                })
            }
            (services::TASK_CONTROLLER, "StartTask") => {
                decode::<tc::StartTaskRequest>(envelope)?;
                reply(tc::StartTaskResponse {
                    status: TaskStatus::Running as i32,
                })
            }
            (services::TASK_CONTROLLER, "StopTasks") => {
                decode::<tc::StopTasksRequest>(envelope)?;
                reply(tc::StopTasksResponse { stopped: 1 })
            }
            (services::TASK_CONTROLLER, "UpdateTaskStatus") => {
                decode::<tc::UpdateTaskStatusRequest>(envelope)?;
                reply(tc::UpdateTaskStatusResponse { updated: 1 })
            }
            (services::TASK_CONTROLLER, "ListTasks") => {
                decode::<tc::ListTasksRequest>(envelope)?;
                reply(tc::ListTasksResponse::default())
            }
            (service, method) => Err(Status::unimplemented(format!(
                "fake gateway: {service}/{method}"
            ))),
        }
    }

    /// Every call of type `C` so far, decoded, in order.
    fn calls<C: PartyCall>(&self) -> Vec<Received<C>> {
        self.seen
            .lock()
            .iter()
            .enumerate()
            .filter(|(_, (_, e))| e.service == C::SERVICE && e.method == C::METHOD)
            .map(|(seq, (at, e))| Received {
                seq,
                at: *at,
                dest: e.dest_party_id.clone(),
                request: decode::<C>(e).expect("the scheduler sends what it says it sends"),
            })
            .collect()
    }

    /// The calls of type `C` that match `wanted`, once there is at least one to every party.
    async fn to_every_party<C: PartyCall + std::fmt::Debug>(
        &self,
        what: &str,
        wanted: impl Fn(&C) -> bool,
    ) -> Vec<Received<C>> {
        eventually(&format!("{what} to every party"), WITHIN, || {
            let calls: Vec<_> = self
                .calls::<C>()
                .into_iter()
                .filter(|c| wanted(&c.request))
                .collect();
            let dests: BTreeSet<&str> = calls.iter().map(|c| c.dest.as_str()).collect();
            let every = dests == BTreeSet::from([GUEST, HOST]);
            let seen = format!("{:?}", calls.iter().map(|c| &c.dest).collect::<Vec<_>>());
            async move { if every { Ok(calls) } else { Err(seen) } }
        })
        .await
    }
}

#[tonic::async_trait]
impl gw::federation_server::Federation for FakeParties {
    async fn forward(
        &self,
        request: Request<gw::Envelope>,
    ) -> Result<Response<gw::ForwardReply>, Status> {
        let envelope = request.into_inner();
        self.seen.lock().push((Instant::now(), envelope.clone()));
        let payload = self.answer(&envelope)?;
        Ok(Response::new(gw::ForwardReply { payload }))
    }
}

/// One scheduler (party 9999) with its fake gateway; stopped when dropped.
struct Harness {
    parties: FakeParties,
    client: sc::scheduler_client::SchedulerClient<Channel>,
    reports: sc::status_report_client::StatusReportClient<Channel>,
    shutdown: CancellationToken,
    served: Option<tokio::task::JoinHandle<Result<(), fedflow_scheduler::Error>>>,
    dir: PathBuf,
}

impl Drop for Harness {
    fn drop(&mut self) {
        self.shutdown.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Harness {
    async fn start(name: &str) -> Harness {
        let shutdown = CancellationToken::new();
        let parties = FakeParties::default();
        let gateway_listener = fedflow_rpc::server::bind("127.0.0.1:0")
            .await
            .expect("bind the fake gateway");
        let gateway_addr = gateway_listener.local_addr().expect("address");
        let (health, routes) = fedflow_rpc::server::base_routes(&[]);
        let routes = routes.add_service(gw::federation_server::FederationServer::new(
            parties.clone(),
        ));
        tokio::spawn(fedflow_rpc::server::serve(
            routes,
            health,
            &[],
            gateway_listener,
            shutdown.clone(),
        ));

        let dir = std::env::temp_dir().join(format!(
            "fedflow-scheduler-service-{}-{name}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos())
        ));
        std::fs::create_dir_all(&dir).expect("a test directory");
        let config = fedflow_scheduler::Config {
            party_id: GUEST.into(),
            gateway: gateway_addr.to_string(),
            database: fedflow_config::DatabaseConfig {
                url: fedflow_store::sqlite_url(&dir.join("scheduler.db")),
                max_connections: 4,
            },
            scheduling: fedflow_scheduler::config::Scheduling {
                queue_retry_ms: 50,
                call_timeout_ms: 5_000,
                // Only the start-up pass: every test drives the scheduler by its events.
                repair_interval_ms: 600_000,
                ..Default::default()
            },
            ..Default::default()
        };
        let listener = fedflow_rpc::server::bind("127.0.0.1:0")
            .await
            .expect("bind the scheduler");
        let addr = listener.local_addr().expect("address");
        let served = tokio::spawn(fedflow_scheduler::run(
            config,
            fedflow_scheduler::Listeners {
                grpc: listener,
                api: None,
                board: None,
            },
            shutdown.clone(),
        ));
        let channel = fedflow_rpc::channel(&addr.to_string()).expect("a channel");
        Harness {
            parties,
            client: sc::scheduler_client::SchedulerClient::new(channel.clone()),
            reports: sc::status_report_client::StatusReportClient::new(channel),
            shutdown,
            served: Some(served),
            dir,
        }
    }

    /// Submits the chain `a -> b -> c` (guest 9999, host 10000) with `job_parameters` added to
    /// the common ones, waiting until the scheduler answers.
    async fn submit(&self, job_parameters: serde_json::Value) -> String {
        let dsl = json!({"components": {
            "a": {"module": "Sum", "output": {"data": ["total"]}},
            "b": {"module": "Sum", "input": {"data": {"data": ["a.total"]}}, "output": {"data": ["total"]}},
            "c": {"module": "Sum", "input": {"data": {"data": ["b.total"]}}, "output": {"data": ["total"]}},
        }});
        let mut common = json!({"task_cores": 1});
        if let (Some(common), Some(extra)) = (common.as_object_mut(), job_parameters.as_object()) {
            common.extend(extra.clone());
        }
        let conf = json!({
            "dsl_version": 2,
            "initiator": {"role": "guest", "party_id": 9999},
            "role": {"guest": [9999], "host": [10000]},
            "job_parameters": {"common": common},
            "component_parameters": {"common": {"a": {"value": 1}, "b": {"value": 2}, "c": {"value": 3}}},
        });
        let request = sc::SubmitJobRequest {
            dsl: dsl.to_string(),
            runtime_conf: conf.to_string(),
            request_id: fedflow_rpc::new_request_id(),
        };
        eventually("the scheduler to take SubmitJob", WITHIN, || {
            let (mut client, request) = (self.client.clone(), request.clone());
            async move {
                client
                    .submit_job(request)
                    .await
                    .map(|r| r.into_inner().job_id)
                    .map_err(|e| e.to_string())
            }
        })
        .await
    }

    async fn job(&self, job_id: &str) -> sc::Job {
        self.client
            .clone()
            .get_job(sc::GetJobRequest {
                job_id: job_id.to_owned(),
                include_conf: false,
            })
            .await
            .expect("GetJob")
            .into_inner()
            .job
            .expect("a job")
    }

    /// The job once `wanted` holds of it.
    async fn job_until(
        &self,
        job_id: &str,
        what: &str,
        wanted: impl Fn(&sc::Job) -> bool,
    ) -> sc::Job {
        eventually(what, WITHIN, || async {
            let job = self.job(job_id).await;
            if wanted(&job) {
                Ok(job)
            } else {
                Err(format!("{job:?}"))
            }
        })
        .await
    }

    /// Reports `party`'s own status of a task version, as that party's task-controller does
    /// (through its gateway, which names the caller). Returns whether it changed anything.
    async fn report(
        &self,
        job_id: &str,
        (component, version): (&str, i32),
        party: &str,
        status: TaskStatus,
        reason: &str,
    ) -> bool {
        let role = if party == GUEST { "guest" } else { "host" };
        let mut request = Request::new(sc::ReportTaskStatusRequest {
            job_id: job_id.to_owned(),
            component: component.to_owned(),
            version,
            role: role.into(),
            party_id: party.to_owned(),
            status: status as i32,
            reason: reason.to_owned(),
            request_id: fedflow_rpc::new_request_id(),
        });
        request
            .metadata_mut()
            .insert(CALLER_HEADER, party.parse().expect("a header value"));
        self.reports
            .clone()
            .report_task_status(request)
            .await
            .expect("ReportTaskStatus")
            .into_inner()
            .applied
    }

    /// The StartTask calls of one task version so far.
    fn starts(&self, component: &str, version: i32) -> Vec<Received<tc::StartTaskRequest>> {
        self.parties
            .calls::<tc::StartTaskRequest>()
            .into_iter()
            .filter(|c| c.request.component == component && c.request.version == version)
            .collect()
    }

    /// Waits for the StartTask of a task version on every party.
    async fn started(&self, component: &str, version: i32) -> Vec<Received<tc::StartTaskRequest>> {
        self.parties
            .to_every_party::<tc::StartTaskRequest>(
                &format!("StartTask of {component} v{version}"),
                |r| r.component == component && r.version == version,
            )
            .await
    }

    /// Stops the scheduler and checks that it stopped cleanly.
    async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(served) = self.served.take() {
            served
                .await
                .expect("the scheduler task")
                .expect("the scheduler stops cleanly");
        }
    }
}

fn status(job: &sc::Job) -> JobStatus {
    JobStatus::try_from(job.status).unwrap_or(JobStatus::Unspecified)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_refused_by_one_party_waits_gives_back_what_was_granted_and_starts_once_granted() {
    let h = Harness::start("queue").await;
    h.parties.refuse(HOST, "cores: requested 1, free 0 of 3");
    let job_id = h.submit(json!({})).await;
    let waiting = h
        .job_until(&job_id, "a pending reason", |j| {
            !j.pending_reason.is_empty()
        })
        .await;
    assert_eq!(status(&waiting), JobStatus::Waiting, "{waiting:?}");
    assert_eq!(
        waiting.pending_reason,
        "waiting for resources: party 10000 (host) lacks cores: requested 1, free 0 of 3"
    );
    let returned = eventually("the guest's grant given back", WITHIN, || async {
        let returned = h.parties.calls::<jc::ReturnResourceRequest>();
        if returned.is_empty() {
            Err("no ReturnResource".to_owned())
        } else {
            Ok(returned)
        }
    })
    .await;
    assert!(
        returned
            .iter()
            .all(|r| r.dest == GUEST && r.request.party_id == GUEST && r.request.job_id == job_id),
        "only the party that granted gives back: {returned:?}"
    );
    assert!(h.parties.calls::<jc::StartJobRequest>().is_empty());
    assert!(h.parties.calls::<tc::StartTaskRequest>().is_empty());

    h.parties.grant(HOST);
    let started_jobs = h
        .parties
        .to_every_party::<jc::StartJobRequest>("StartJob", |r| r.job_id == job_id)
        .await;
    let started_tasks = h.started("a", 0).await;
    let last_start_job = started_jobs.iter().map(|c| c.seq).max().unwrap_or(0);
    assert!(
        started_tasks.iter().all(|c| c.seq > last_start_job),
        "the job starts on every party before its first task: {started_jobs:?} {started_tasks:?}"
    );
    let running = h
        .job_until(&job_id, "the job running", |j| {
            status(j) == JobStatus::Running
        })
        .await;
    assert_eq!(running.pending_reason, "", "{running:?}");
    assert!(h.starts("b", 0).is_empty(), "b waits for a");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_success_on_every_party_starts_the_next_component_and_the_last_ends_the_job() {
    let h = Harness::start("drive").await;
    let job_id = h.submit(json!({})).await;
    let chain = ["a", "b", "c"];
    for (i, component) in chain.iter().enumerate() {
        h.started(component, 0).await;
        assert!(
            h.report(&job_id, (component, 0), GUEST, TaskStatus::Success, "")
                .await
        );
        if let Some(next) = chain.get(i + 1) {
            assert!(
                h.starts(next, 0).is_empty(),
                "{next} waits for {component} on every party"
            );
        }
        assert!(
            h.report(&job_id, (component, 0), HOST, TaskStatus::Success, "")
                .await
        );
    }
    let done = h
        .job_until(&job_id, "the job's success", |j| {
            status(j) == JobStatus::Success
        })
        .await;
    assert_eq!((done.progress, done.reason.as_str()), (100, ""), "{done:?}");
    h.parties
        .to_every_party::<jc::UpdateJobStatusRequest>("UpdateJobStatus(success)", |r| {
            r.job_id == job_id && r.status == JobStatus::Success as i32
        })
        .await;
    for component in chain {
        let starts = h.starts(component, 0);
        assert_eq!(starts.len(), 2, "one start per party: {starts:?}");
    }
    let stops = h.parties.calls::<tc::StopTasksRequest>();
    assert!(stops.is_empty(), "a success stops nothing: {stops:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_is_retried_as_a_new_version_after_the_delay_and_the_second_fails_the_job() {
    let delay = Duration::from_millis(300);
    let h = Harness::start("retry").await;
    let job_id = h
        .submit(json!({"auto_retries": 1, "auto_retry_delay": delay.as_secs_f64()}))
        .await;
    h.started("a", 0).await;
    let failed_at = Instant::now();
    assert!(
        h.report(&job_id, ("a", 0), HOST, TaskStatus::Failed, "boom")
            .await
    );
    let created = h
        .parties
        .to_every_party::<tc::CreateTasksRequest>("CreateTasks of version 1", |r| r.version == 1)
        .await;
    for call in &created {
        let components: Vec<&str> = call
            .request
            .tasks
            .iter()
            .map(|t| t.component.as_str())
            .collect();
        assert_eq!(components, ["a"], "only the failed component: {call:?}");
    }
    h.parties
        .to_every_party::<tc::StopTasksRequest>("the stop of what runs of version 0", |r| {
            r.component == "a" && r.version == Some(0) && r.status == TaskStatus::Canceled as i32
        })
        .await;
    let retried = h.started("a", 1).await;
    for start in &retried {
        assert!(
            start.at.duration_since(failed_at) >= delay - Duration::from_millis(10),
            "version 1 started {:?} after the failure, before the {delay:?} delay",
            start.at.duration_since(failed_at)
        );
    }
    let created_last = created.iter().map(|c| c.seq).max().unwrap_or(0);
    assert!(retried.iter().all(|s| s.seq > created_last));
    let running = h.job(&job_id).await;
    assert_eq!(status(&running), JobStatus::Running, "{running:?}");

    assert!(
        h.report(&job_id, ("a", 1), GUEST, TaskStatus::Failed, "boom again")
            .await
    );
    let failed = h
        .job_until(&job_id, "the job failed", |j| {
            status(j) == JobStatus::Failed
        })
        .await;
    assert_eq!(
        failed.reason, "component a failed on guest 9999: boom again (attempt 2)",
        "{failed:?}"
    );
    h.parties
        .to_every_party::<tc::StopTasksRequest>("the end's stop of the run", |r| {
            r.job_id == job_id
                && r.version.is_none()
                && r.component.is_empty()
                && r.status == TaskStatus::Canceled as i32
                && r.reason.starts_with("job failed: component a failed")
        })
        .await;
    h.parties
        .to_every_party::<jc::UpdateJobStatusRequest>("UpdateJobStatus(failed)", |r| {
            r.status == JobStatus::Failed as i32
        })
        .await;
    assert!(h.starts("a", 2).is_empty() && h.starts("b", 0).is_empty());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_stop_of_a_running_job_stops_its_tasks_everywhere_and_cancels_it() {
    let h = Harness::start("stop").await;
    let job_id = h.submit(json!({})).await;
    h.started("a", 0).await;
    h.job_until(&job_id, "the job running", |j| {
        status(j) == JobStatus::Running
    })
    .await;
    let stopped = h
        .client
        .clone()
        .stop_job(sc::StopJobRequest {
            job_id: job_id.clone(),
            request_id: fedflow_rpc::new_request_id(),
        })
        .await
        .expect("StopJob")
        .into_inner();
    assert_eq!(stopped.job_id, job_id);
    h.parties
        .to_every_party::<tc::StopTasksRequest>("StopTasks(canceled)", |r| {
            r.job_id == job_id && r.status == TaskStatus::Canceled as i32
        })
        .await;
    let canceled = h
        .job_until(&job_id, "the job canceled", |j| {
            status(j) == JobStatus::Canceled
        })
        .await;
    assert!(canceled.cancel_requested, "{canceled:?}");
    assert_eq!(
        canceled.reason, "canceled by a stop request to party 9999",
        "{canceled:?}"
    );
    h.parties
        .to_every_party::<jc::UpdateJobStatusRequest>("UpdateJobStatus(canceled)", |r| {
            r.status == JobStatus::Canceled as i32
        })
        .await;
    assert!(h.starts("b", 0).is_empty(), "nothing starts after a stop");
    h.stop().await;
}
