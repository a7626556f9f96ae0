//! The task-controller on its own: started through `run` on 127.0.0.1:0 with a fake gateway
//! (a tonic `Federation` server that records every envelope it is handed and answers status
//! reports), driven with real tonic clients, running the real `fedflow-worker` binary (built by
//! `cargo build --workspace --bins`) or the benchmark engine. Every wait polls with a deadline.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use fedflow_proto::common::v1::TaskStatus;
use fedflow_proto::gateway::v1 as gw;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as pb;
use fedflow_task_controller::config::{EngineKind, FencingConfig, WorkerConfig};
use fedflow_task_controller::{Config, engine};
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

const PARTY: &str = "9999";
const SCHEDULER: &str = "10000";
const JOB: &str = "202612010000000000000001";
const WITHIN: Duration = Duration::from_secs(30);

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir =
            std::env::temp_dir().join(format!("fedflow-tc-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory");
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `fedflow-worker`, beside this test's directory (`target/<profile>/`).
fn worker_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let mut dir = exe.parent().expect("a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join("fedflow-worker");
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Polls `check` until it returns `Ok` or `within` passes, then panics with `what` and the
/// last thing `check` said.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => {}
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// The fake gateway: while reachable, records every envelope it is handed and answers status
/// reports; while `unreachable`, refuses every call as UNAVAILABLE and records nothing.
#[derive(Clone, Default)]
struct FakeGateway {
    calls: Arc<parking_lot::Mutex<Vec<gw::Envelope>>>,
    unreachable: Arc<AtomicBool>,
}

#[tonic::async_trait]
impl gw::federation_server::Federation for FakeGateway {
    async fn forward(
        &self,
        request: Request<gw::Envelope>,
    ) -> Result<Response<gw::ForwardReply>, Status> {
        if self.unreachable.load(Ordering::SeqCst) {
            return Err(Status::unavailable("party unreachable (fake)"));
        }
        let envelope = request.into_inner();
        self.calls.lock().push(envelope.clone());
        match envelope.method.as_str() {
            "ReportTaskStatus" => Ok(Response::new(gw::ForwardReply {
                payload: sc::ReportTaskStatusResponse { applied: true }
                    .encode_to_vec()
                    .into(),
            })),
            other => Err(Status::unimplemented(format!("fake gateway: {other}"))),
        }
    }
}

impl FakeGateway {
    /// The status reports received, decoded, in order.
    fn reports(&self) -> Vec<(gw::Envelope, sc::ReportTaskStatusRequest)> {
        self.calls
            .lock()
            .iter()
            .filter(|e| e.method == "ReportTaskStatus")
            .filter_map(|e| {
                sc::ReportTaskStatusRequest::decode(e.payload.clone())
                    .ok()
                    .map(|r| (e.clone(), r))
            })
            .collect()
    }

    /// The first report of `component` with `status`.
    async fn report_of(&self, component: &str, status: TaskStatus) -> sc::ReportTaskStatusRequest {
        eventually(
            &format!("a {status:?} report of {component}"),
            WITHIN,
            || async {
                let reports = self.reports();
                reports
                    .iter()
                    .find(|(_, r)| r.component == component && r.status == status as i32)
                    .map(|(_, r)| r.clone())
                    .ok_or_else(|| {
                        let seen: Vec<_> = reports
                            .iter()
                            .map(|(_, r)| format!("{} {} {}", r.component, r.status, r.reason))
                            .collect();
                        format!("{seen:?}")
                    })
            },
        )
        .await
    }
}

/// One task-controller and its fake gateway.
struct Harness {
    gateway: FakeGateway,
    tc: pb::task_controller_client::TaskControllerClient<Channel>,
    shutdown: CancellationToken,
    served: tokio::task::JoinHandle<Result<(), fedflow_task_controller::Error>>,
    _dir: TempDir,
}

impl Harness {
    async fn start(tune: impl FnOnce(&mut Config)) -> Harness {
        let dir = TempDir::new();
        let gateway = FakeGateway::default();
        let gateway_listener = fedflow_rpc::server::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let gateway_addr = gateway_listener.local_addr().expect("addr");
        let shutdown = CancellationToken::new();
        let (health, routes) = fedflow_rpc::server::base_routes(&[]);
        let routes = routes.add_service(gw::federation_server::FederationServer::new(
            gateway.clone(),
        ));
        tokio::spawn(fedflow_rpc::server::serve(
            routes,
            health,
            &[],
            gateway_listener,
            shutdown.clone(),
        ));
        let mut config = Config {
            party_id: PARTY.into(),
            gateway: gateway_addr.to_string(),
            data_dir: dir.path().join("data"),
            database: fedflow_config::DatabaseConfig {
                url: format!("sqlite://{}?mode=rwc", dir.path().join("tc.db").display()),
                max_connections: 4,
            },
            worker: WorkerConfig {
                bin: worker_bin(),
                heartbeat_interval_ms: 100,
                ..WorkerConfig::default()
            },
            ..Config::default()
        };
        tune(&mut config);
        let listener = fedflow_rpc::server::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let served = tokio::spawn(fedflow_task_controller::run(
            config,
            listener,
            shutdown.clone(),
        ));
        let channel = fedflow_rpc::channel(&addr.to_string()).expect("an address");
        Harness {
            gateway,
            tc: pb::task_controller_client::TaskControllerClient::new(channel),
            shutdown,
            served,
            _dir: dir,
        }
    }

    /// Creates one task of `module` with `parameters` (version 0, this party as guest),
    /// waiting until the server answers.
    async fn create(&self, component: &str, module: &str, parameters: serde_json::Value) {
        let request = pb::CreateTasksRequest {
            job_id: JOB.into(),
            role: "guest".into(),
            party_id: PARTY.into(),
            scheduler_party_id: SCHEDULER.into(),
            version: 0,
            tasks: vec![pb::TaskSpec {
                component: component.into(),
                module: module.into(),
                parameters_json: parameters.to_string(),
                need_run: true,
                upstream: Vec::new(),
            }],
            request_id: fedflow_rpc::new_request_id(),
            parties: Vec::new(),
        };
        let created = eventually("the task-controller to take CreateTasks", WITHIN, || {
            let mut tc = self.tc.clone();
            let request = request.clone();
            async move {
                tc.create_tasks(request)
                    .await
                    .map(|r| r.into_inner().created)
                    .map_err(|e| e.to_string())
            }
        })
        .await;
        assert_eq!(created, 1);
    }

    async fn start_task(&self, component: &str) -> TaskStatus {
        let reply = self
            .tc
            .clone()
            .start_task(pb::StartTaskRequest {
                job_id: JOB.into(),
                component: component.into(),
                version: 0,
                role: "guest".into(),
                party_id: PARTY.into(),
                request_id: fedflow_rpc::new_request_id(),
            })
            .await
            .expect("StartTask");
        TaskStatus::try_from(reply.into_inner().status).expect("a status")
    }

    async fn row(&self, component: &str) -> pb::PartyTask {
        let tasks = self
            .tc
            .clone()
            .list_tasks(pb::ListTasksRequest { job_id: JOB.into() })
            .await
            .expect("ListTasks")
            .into_inner()
            .tasks;
        assert_eq!(tasks.len(), 1, "one row: {tasks:?}");
        tasks
            .into_iter()
            .find(|t| t.component == component)
            .expect("the row of the component")
    }

    /// The pid of `component`'s worker, once recorded.
    async fn worker_pid(&self, component: &str) -> u32 {
        eventually(&format!("the worker of {component}"), WITHIN, || async {
            let row = self.row(component).await;
            (row.pid != 0).then_some(row.pid).ok_or(format!("{row:?}"))
        })
        .await
    }

    async fn stop(self) {
        self.shutdown.cancel();
        self.served
            .await
            .expect("the task-controller task")
            .expect("the task-controller stops cleanly");
    }
}

/// A process that exists and is not a zombie.
fn alive(pid: u32) -> bool {
    engine::proc_stat(pid).is_some_and(|s| s.state != 'Z' && s.state != 'X')
}

/// Waits until the worker `pid` has exited.
async fn worker_gone(pid: u32) {
    eventually(&format!("worker {pid} gone"), WITHIN, || async {
        (!alive(pid))
            .then_some(())
            .ok_or(format!("{:?}", engine::proc_stat(pid)))
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_started_task_runs_its_worker_and_reports_its_success_to_the_scheduler() {
    let h = Harness::start(|_| {}).await;
    h.create("nap", "Sleep", serde_json::json!({"seconds": 0}))
        .await;
    let status = h.start_task("nap").await;
    assert!(
        matches!(status, TaskStatus::Running | TaskStatus::Success),
        "{status:?}"
    );
    let report = h.gateway.report_of("nap", TaskStatus::Success).await;
    assert_eq!(
        (
            report.job_id.as_str(),
            report.role.as_str(),
            report.party_id.as_str()
        ),
        (JOB, "guest", PARTY)
    );
    let reports = h.gateway.reports();
    let (envelope, _) = reports
        .iter()
        .find(|(_, r)| r.status == TaskStatus::Success as i32)
        .expect("the success report");
    assert_eq!(envelope.dest_party_id, SCHEDULER, "to the job's scheduler");
    assert_eq!(envelope.src_party_id, PARTY);
    assert_eq!(envelope.service, "fedflow.scheduler.v1.StatusReport");
    let row = h.row("nap").await;
    assert_eq!(row.party_status, TaskStatus::Success as i32, "{row:?}");
    assert_ne!(row.pid, 0, "a worker process ran it");
    // A repeated start changes nothing and launches nothing.
    assert_eq!(h.start_task("nap").await, TaskStatus::Success);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_a_running_task_kills_its_worker() {
    let h = Harness::start(|_| {}).await;
    h.create("nap", "Sleep", serde_json::json!({"seconds": 600}))
        .await;
    assert_eq!(h.start_task("nap").await, TaskStatus::Running);
    let pid = h.worker_pid("nap").await;
    assert!(alive(pid), "worker {pid} runs");
    let stopped =
        h.tc.clone()
            .stop_tasks(pb::StopTasksRequest {
                job_id: JOB.into(),
                component: String::new(),
                role: "guest".into(),
                party_id: PARTY.into(),
                status: TaskStatus::Canceled as i32,
                reason: "stopped by the test".into(),
                request_id: fedflow_rpc::new_request_id(),
                version: None,
            })
            .await
            .expect("StopTasks")
            .into_inner()
            .stopped;
    assert_eq!(stopped, 1);
    worker_gone(pid).await;
    let report = h.gateway.report_of("nap", TaskStatus::Canceled).await;
    assert_eq!(report.reason, "stopped by the test");
    let row = h.row("nap").await;
    assert_eq!(row.party_status, TaskStatus::Canceled as i32, "{row:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_whose_heartbeats_stop_is_failed_as_unresponsive_and_killed() {
    let h = Harness::start(|c| c.worker.heartbeat_timeout_ms = 1_000).await;
    h.create("nap", "Sleep", serde_json::json!({"seconds": 600}))
        .await;
    assert_eq!(h.start_task("nap").await, TaskStatus::Running);
    let pid = h.worker_pid("nap").await;
    // Frozen, the worker can neither heartbeat nor exit.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).expect("a pid")),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .expect("SIGSTOP the worker");
    let report = h.gateway.report_of("nap", TaskStatus::Failed).await;
    assert!(
        report.reason.starts_with("worker unresponsive"),
        "{report:?}"
    );
    worker_gone(pid).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_engine_succeeds_a_task_without_a_worker() {
    let h = Harness::start(|c| c.worker.engine = EngineKind::Instant).await;
    h.create("nap", "Sleep", serde_json::json!({"seconds": 600}))
        .await;
    assert_eq!(h.start_task("nap").await, TaskStatus::Running);
    h.gateway.report_of("nap", TaskStatus::Success).await;
    let row = h.row("nap").await;
    assert_eq!(row.party_status, TaskStatus::Success as i32, "{row:?}");
    assert_eq!(row.pid, 0, "no process");
    assert_eq!(row.output_json, "{}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_that_cannot_reach_the_scheduler_fences_its_running_tasks() {
    let h = Harness::start(|c| {
        c.fencing = FencingConfig {
            party_unreachable_timeout_s: 1,
            probe_interval_ms: 100,
        };
    })
    .await;
    h.create("nap", "Sleep", serde_json::json!({"seconds": 600}))
        .await;
    assert_eq!(h.start_task("nap").await, TaskStatus::Running);
    let pid = h.worker_pid("nap").await;
    h.gateway.unreachable.store(true, Ordering::SeqCst);
    let row = eventually("the task fenced", WITHIN, || async {
        let row = h.row("nap").await;
        (row.party_status == TaskStatus::Failed as i32)
            .then_some(row.clone())
            .ok_or(format!("{row:?}"))
    })
    .await;
    assert!(
        row.reason
            .starts_with(&format!("fenced: the job's scheduler, party {SCHEDULER}")),
        "{row:?}"
    );
    worker_gone(pid).await;
    // Healed, the scheduler hears of it through the outbox.
    h.gateway.unreachable.store(false, Ordering::SeqCst);
    let report = h.gateway.report_of("nap", TaskStatus::Failed).await;
    assert!(report.reason.starts_with("fenced"), "{report:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_removes_unfinished_uploads_and_table_files_no_row_names() {
    let mut stray = Vec::new();
    let h = Harness::start(|c| {
        for (dir, file) in [
            ("uploads", "0123456789abcdef.part"),
            ("tables/experiment/t", "cut.csv"),
        ] {
            let dir = c.data_dir.join(dir);
            std::fs::create_dir_all(&dir).expect("create");
            std::fs::write(dir.join(file), "id\n1\n").expect("write");
            stray.push(dir.join(file));
        }
    })
    .await;
    // Serving: the sweep, which runs before, is done.
    h.create("nap", "Sleep", serde_json::json!({})).await;
    for path in &stray {
        assert!(!path.exists(), "{} was left", path.display());
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_update_records_the_federated_status_of_several_tasks_and_a_bad_entry_changes_none() {
    let h = Harness::start(|c| c.worker.engine = EngineKind::Instant).await;
    for component in ["a", "b"] {
        h.create(component, "Sleep", serde_json::json!({"seconds": 0}))
            .await;
        assert_eq!(h.start_task(component).await, TaskStatus::Running);
        h.gateway.report_of(component, TaskStatus::Success).await;
    }
    let federated = || async {
        let mut tasks =
            h.tc.clone()
                .list_tasks(pb::ListTasksRequest { job_id: JOB.into() })
                .await
                .expect("ListTasks")
                .into_inner()
                .tasks;
        tasks.sort_by(|x, y| x.component.cmp(&y.component));
        tasks
            .iter()
            .map(|t| (t.component.clone(), t.status))
            .collect::<Vec<_>>()
    };
    let before = federated().await;
    assert!(
        before.iter().all(|(_, s)| *s != TaskStatus::Success as i32),
        "not yet told: {before:?}"
    );
    let update = |more_component: &str| pb::UpdateTaskStatusRequest {
        job_id: JOB.into(),
        component: "a".into(),
        version: 0,
        status: TaskStatus::Success as i32,
        request_id: fedflow_rpc::new_request_id(),
        more: vec![pb::TaskStatusUpdate {
            component: more_component.into(),
            version: 0,
            status: TaskStatus::Success as i32,
        }],
    };
    let refused =
        h.tc.clone()
            .update_task_status(update("not a component!"))
            .await
            .expect_err("a bad component in more is refused");
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert!(
        refused.message().contains("more[0].component"),
        "{refused:?}"
    );
    assert_eq!(federated().await, before, "the refusal changed nothing");
    let updated =
        h.tc.clone()
            .update_task_status(update("b"))
            .await
            .expect("UpdateTaskStatus")
            .into_inner()
            .updated;
    assert_eq!(updated, 2, "both rows, in one call");
    assert_eq!(
        federated().await,
        vec![
            ("a".to_owned(), TaskStatus::Success as i32),
            ("b".to_owned(), TaskStatus::Success as i32)
        ]
    );
    h.stop().await;
}
