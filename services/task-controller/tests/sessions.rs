//! `Sessions.GetSession` and the end-of-attempt hook: a task-controller started through `run`
//! on 127.0.0.1:0 with a fake gateway (answers status reports, records `DropSession`), running
//! the real `fedflow-worker` (built by `cargo build --workspace --bins`). Polls with deadlines.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use fedflow_proto::common::v1::TaskStatus;
use fedflow_proto::gateway::v1 as gw;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as pb;
use fedflow_task_controller::Config;
use fedflow_task_controller::config::WorkerConfig;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::{Request, Response, Status};

const PARTY: &str = "9999";
const SCHEDULER: &str = "10000";
const JOB: &str = "202612010000000000000002";
const WITHIN: Duration = Duration::from_secs(30);

async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if tokio::time::Instant::now() >= deadline => {
                panic!("timed out waiting for {what}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Answers status reports; records the sessions it is told to drop.
#[derive(Clone, Default)]
struct FakeGateway {
    dropped: Arc<parking_lot::Mutex<Vec<String>>>,
}

#[tonic::async_trait]
impl gw::federation_server::Federation for FakeGateway {
    async fn forward(
        &self,
        request: Request<gw::Envelope>,
    ) -> Result<Response<gw::ForwardReply>, Status> {
        match request.into_inner().method.as_str() {
            "ReportTaskStatus" => Ok(Response::new(gw::ForwardReply {
                payload: sc::ReportTaskStatusResponse { applied: true }
                    .encode_to_vec()
                    .into(),
            })),
            "Probe" => Ok(Response::new(gw::ForwardReply {
                payload: sc::ProbeResponse::default().encode_to_vec().into(),
            })),
            other => Err(Status::unimplemented(format!("fake gateway: {other}"))),
        }
    }
}

#[tonic::async_trait]
impl gw::transfer_server::Transfer for FakeGateway {
    async fn deliver(
        &self,
        _: Request<gw::DeliverRequest>,
    ) -> Result<Response<gw::DeliverReply>, Status> {
        Err(Status::unimplemented("fake gateway"))
    }

    async fn drop_session(
        &self,
        request: Request<gw::DropSessionRequest>,
    ) -> Result<Response<gw::DropSessionReply>, Status> {
        self.dropped.lock().push(request.into_inner().session_id);
        Ok(Response::new(gw::DropSessionReply { dropped: 0 }))
    }
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_is_open_while_its_attempt_runs_and_its_end_tells_the_gateway() {
    let dir = std::env::temp_dir().join(format!(
        "fedflow-tc-sessions-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let shutdown = CancellationToken::new();
    let gateway = FakeGateway::default();
    let gateway_listener = fedflow_rpc::server::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gateway_addr = gateway_listener.local_addr().expect("addr");
    let (health, routes) = fedflow_rpc::server::base_routes(&[]);
    let routes = routes
        .add_service(gw::federation_server::FederationServer::new(
            gateway.clone(),
        ))
        .add_service(gw::transfer_server::TransferServer::new(gateway.clone()));
    tokio::spawn(fedflow_rpc::server::serve(
        routes,
        health,
        &[],
        gateway_listener,
        shutdown.clone(),
    ));
    let config = Config {
        party_id: PARTY.into(),
        gateway: gateway_addr.to_string(),
        data_dir: dir.join("data"),
        database: fedflow_config::DatabaseConfig {
            url: format!("sqlite://{}?mode=rwc", dir.join("tc.db").display()),
            max_connections: 4,
        },
        worker: WorkerConfig {
            bin: worker_bin(),
            heartbeat_interval_ms: 100,
            ..WorkerConfig::default()
        },
        ..Config::default()
    };
    let listener = fedflow_rpc::server::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let channel =
        fedflow_rpc::channel(&listener.local_addr().expect("addr").to_string()).expect("channel");
    let served = tokio::spawn(fedflow_task_controller::run(
        config,
        listener,
        shutdown.clone(),
    ));
    let mut tc = pb::task_controller_client::TaskControllerClient::new(channel.clone());
    let sessions = pb::sessions_client::SessionsClient::new(channel);
    let session = format!("{JOB}_exchange_0");
    let ask = |id: String| {
        let mut sessions = sessions.clone();
        async move {
            sessions
                .get_session(pb::GetSessionRequest { session_id: id })
                .await
                .map(Response::into_inner)
        }
    };

    let create = pb::CreateTasksRequest {
        job_id: JOB.into(),
        role: "guest".into(),
        party_id: PARTY.into(),
        scheduler_party_id: SCHEDULER.into(),
        version: 0,
        tasks: vec![pb::TaskSpec {
            component: "exchange".into(),
            module: "Sleep".into(),
            parameters_json: r#"{"seconds": 300}"#.into(),
            need_run: true,
            upstream: Vec::new(),
        }],
        request_id: fedflow_rpc::new_request_id(),
        parties: Vec::new(),
    };
    eventually("CreateTasks", || {
        let (mut tc, create) = (tc.clone(), create.clone());
        async move {
            tc.create_tasks(create)
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        }
    })
    .await;
    let waiting = ask(session.clone()).await.expect("GetSession");
    assert!(
        !waiting.running,
        "a created, not started, task is no open session: {waiting:?}"
    );
    assert!(
        waiting.pending,
        "a created task's session is pending: {waiting:?}"
    );
    assert_eq!(waiting.scheduler_party_id, SCHEDULER);

    tc.start_task(pb::StartTaskRequest {
        job_id: JOB.into(),
        component: "exchange".into(),
        version: 0,
        role: "guest".into(),
        party_id: PARTY.into(),
        request_id: fedflow_rpc::new_request_id(),
    })
    .await
    .expect("StartTask");
    let running = ask(session.clone()).await.expect("GetSession");
    assert!(running.running, "{running:?}");
    assert_eq!(running.roles, vec!["guest".to_owned()]);
    assert_eq!(running.job_id, JOB);
    for other in [format!("{JOB}_exchange_1"), format!("{JOB}_other_0")] {
        assert!(
            !ask(other.clone()).await.expect("GetSession").running,
            "{other}"
        );
    }
    let bad = ask("exchange_0".into())
        .await
        .expect_err("a malformed session id");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument, "{bad:?}");
    assert!(bad.message().contains("session id"), "{bad:?}");
    let mut from_party = Request::new(pb::GetSessionRequest {
        session_id: session.clone(),
    });
    from_party.metadata_mut().insert(
        fedflow_rpc::party::CALLER_HEADER,
        SCHEDULER.parse().expect("ascii"),
    );
    let refused = sessions
        .clone()
        .get_session(from_party)
        .await
        .expect_err("another party may not ask");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
    assert!(gateway.dropped.lock().is_empty(), "dropped while running");

    tc.stop_tasks(pb::StopTasksRequest {
        job_id: JOB.into(),
        component: "exchange".into(),
        role: "guest".into(),
        party_id: PARTY.into(),
        status: TaskStatus::Canceled as i32,
        reason: "test".into(),
        request_id: fedflow_rpc::new_request_id(),
        ..Default::default()
    })
    .await
    .expect("StopTasks");
    eventually("the gateway told to drop the session", || {
        let dropped = gateway.dropped.lock().clone();
        let expected = session.clone();
        async move {
            if dropped == vec![expected] {
                Ok(())
            } else {
                Err(format!("{dropped:?}"))
            }
        }
    })
    .await;
    let ended = ask(session.clone()).await.expect("GetSession");
    assert!(
        !ended.running && !ended.pending,
        "an ended attempt is closed: {ended:?}"
    );
    shutdown.cancel();
    served
        .await
        .expect("join")
        .expect("the task-controller stops cleanly");
    let _ = std::fs::remove_dir_all(&dir);
}
