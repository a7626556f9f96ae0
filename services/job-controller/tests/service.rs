//! The job-controller alone: started through its `run` on 127.0.0.1:0 with its own SQLite file
//! and a fake task-controller (a tiny tonic server that records what it is asked), driven by
//! real tonic clients. What crosses parties is tested in the federation suites (`tests/`).

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedflow_proto::common::v1::JobStatus;
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::taskcontroller::v1 as tc;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

/// What the fake task-controller was asked.
#[derive(Default)]
struct Calls {
    create: Vec<tc::CreateTasksRequest>,
    stop: Vec<tc::StopTasksRequest>,
}

#[derive(Clone, Default)]
struct FakeTaskController {
    calls: Arc<Mutex<Calls>>,
}

impl FakeTaskController {
    fn creates(&self) -> Vec<tc::CreateTasksRequest> {
        self.calls.lock().expect("calls").create.clone()
    }

    fn stops(&self) -> Vec<tc::StopTasksRequest> {
        self.calls.lock().expect("calls").stop.clone()
    }
}

/// Implements the task-controller for the fake: the given methods, and every other one
/// (named with its request and response) refused as not called by the job-controller.
macro_rules! task_controller {
    ($fake:ty { $($methods:tt)* } refuse { $($name:ident($req:ident) -> $resp:ident),* $(,)? }) => {
        #[tonic::async_trait]
        impl tc::task_controller_server::TaskController for $fake {
            $($methods)*
            $(
                async fn $name(&self, _: Request<tc::$req>) -> Result<Response<tc::$resp>, Status> {
                    Err(Status::unimplemented("not called by the job-controller"))
                }
            )*
        }
    };
}

task_controller! {
    FakeTaskController {
        async fn create_tasks(
            &self,
            request: Request<tc::CreateTasksRequest>,
        ) -> Result<Response<tc::CreateTasksResponse>, Status> {
            let request = request.into_inner();
            let created = u32::try_from(request.tasks.len()).unwrap_or(u32::MAX);
            self.calls.lock().expect("calls").create.push(request);
            Ok(Response::new(tc::CreateTasksResponse { created }))
        }

        async fn stop_tasks(
            &self,
            request: Request<tc::StopTasksRequest>,
        ) -> Result<Response<tc::StopTasksResponse>, Status> {
            self.calls
                .lock()
                .expect("calls")
                .stop
                .push(request.into_inner());
            Ok(Response::new(tc::StopTasksResponse::default()))
        }
    }
    refuse {
        start_task(StartTaskRequest) -> StartTaskResponse,
        update_task_status(UpdateTaskStatusRequest) -> UpdateTaskStatusResponse,
        list_tasks(ListTasksRequest) -> ListTasksResponse,
        get_task_output(GetTaskOutputRequest) -> GetTaskOutputResponse,
    }
}

/// One job-controller (party 9999) with its fake task-controller; stopped when dropped.
struct Service {
    client: jc::job_controller_client::JobControllerClient<Channel>,
    tasks: FakeTaskController,
    stop: CancellationToken,
    dir: std::path::PathBuf,
}

impl Drop for Service {
    fn drop(&mut self) {
        self.stop.cancel();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn start(name: &str, resources: fedflow_job_controller::config::Resources) -> Service {
    let stop = CancellationToken::new();
    let tasks = FakeTaskController::default();
    let tc_listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the fake task-controller");
    let tc_addr = tc_listener.local_addr().expect("address");
    tokio::spawn({
        let (tasks, stop) = (tasks.clone(), stop.clone());
        async move {
            tonic::transport::Server::builder()
                .add_service(tc::task_controller_server::TaskControllerServer::new(tasks))
                .serve_with_incoming_shutdown(
                    tonic::transport::server::TcpIncoming::from(tc_listener),
                    stop.cancelled_owned(),
                )
                .await
        }
    });

    let dir = std::env::temp_dir().join(format!(
        "fedflow-jc-service-{}-{name}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    std::fs::create_dir_all(&dir).expect("a test directory");
    let config = fedflow_job_controller::Config {
        party_id: "9999".into(),
        task_controller: tc_addr.to_string(),
        database: fedflow_config::DatabaseConfig {
            url: fedflow_store::sqlite_url(&dir.join("job-controller.db")),
            max_connections: 4,
        },
        resources,
        ..Default::default()
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the job-controller");
    let addr = listener.local_addr().expect("address");
    tokio::spawn(fedflow_job_controller::run(config, listener, stop.clone()));
    let channel = fedflow_rpc::channel(&addr.to_string()).expect("a channel");
    Service {
        client: jc::job_controller_client::JobControllerClient::new(channel),
        tasks,
        stop,
        dir,
    }
}

fn cores(cores: u32) -> fedflow_job_controller::config::Resources {
    fedflow_job_controller::config::Resources {
        cores,
        ..Default::default()
    }
}

/// A one-party job (guest 9999) with one component, needing one core.
fn create(job_id: &str) -> jc::CreateJobRequest {
    jc::CreateJobRequest {
        job_id: job_id.to_owned(),
        dsl: json!({"components": {"a": {"module": "Sleep"}}}).to_string(),
        runtime_conf: json!({
            "dsl_version": 2,
            "initiator": {"role": "guest", "party_id": 9999},
            "role": {"guest": [9999]},
            "job_parameters": {"common": {"task_cores": 1}},
            "component_parameters": {"common": {"a": {"seconds": 0}}},
        })
        .to_string(),
        role: "guest".into(),
        party_id: "9999".into(),
        scheduler_party_id: "9999".into(),
        request_id: format!("{job_id}:create"),
        tasks: Vec::new(),
    }
}

/// [`create`], carrying the scheduler's plan of version 0 of component `a`.
fn create_with_tasks(job_id: &str, component: &str) -> jc::CreateJobRequest {
    jc::CreateJobRequest {
        tasks: vec![tc::TaskSpec {
            component: component.into(),
            module: "Sleep".into(),
            parameters_json: json!({"seconds": 0}).to_string(),
            need_run: true,
            upstream: Vec::new(),
        }],
        ..create(job_id)
    }
}

fn apply(job_id: &str) -> jc::ApplyResourceRequest {
    jc::ApplyResourceRequest {
        job_id: job_id.to_owned(),
        role: "guest".into(),
        party_id: "9999".into(),
        request_id: format!("{job_id}:apply"),
    }
}

fn update(job_id: &str, status: JobStatus, reason: &str) -> jc::UpdateJobStatusRequest {
    jc::UpdateJobStatusRequest {
        job_id: job_id.to_owned(),
        role: "guest".into(),
        party_id: "9999".into(),
        status: status as i32,
        reason: reason.to_owned(),
        request_id: format!("{job_id}:status:{}", status.as_str_name()),
    }
}

async fn get_job(service: &mut Service, job_id: &str) -> jc::GetJobResponse {
    service
        .client
        .get_job(jc::GetJobRequest {
            job_id: job_id.to_owned(),
        })
        .await
        .expect("GetJob")
        .into_inner()
}

async fn resources(service: &mut Service) -> jc::GetResourcesResponse {
    service
        .client
        .get_resources(jc::GetResourcesRequest {})
        .await
        .expect("GetResources")
        .into_inner()
}

/// The answer to a call the test expects to succeed.
async fn ok<T>(call: impl Future<Output = Result<Response<T>, Status>>) -> T {
    call.await
        .unwrap_or_else(|status| panic!("the call failed: {status:?}"))
        .into_inner()
}

/// Polls `check` until it returns `Some`, failing after `within` with what was last seen.
async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + within;
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) if Instant::now() >= deadline => {
                panic!("timed out after {within:?} waiting for {what}; last saw: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_job_is_waiting_here_and_its_version_0_tasks_are_the_schedulers_plans() {
    let mut service = start("create", cores(4)).await;
    // Without plans (a scheduler that sends CreateTasks itself), no task row is made here.
    ok(service.client.create_job(create("job0"))).await;
    assert!(
        service.tasks.creates().is_empty(),
        "{:?}",
        service.tasks.creates()
    );

    let created = ok(service.client.create_job(create_with_tasks("job1", "a"))).await;
    assert_eq!(
        created.components,
        vec![jc::ComponentPlan {
            component: "a".into(),
            need_run: true
        }]
    );
    let job = get_job(&mut service, "job1").await;
    assert_eq!(job.participants, vec!["9999".to_owned()]);
    assert_eq!(job.jobs.len(), 1, "{job:?}");
    assert_eq!(job.jobs[0].status, JobStatus::Waiting as i32);
    assert_eq!(job.jobs[0].cores, 1);
    let creates = service.tasks.creates();
    assert_eq!(creates.len(), 1, "{creates:?}");
    assert_eq!(
        (
            creates[0].job_id.as_str(),
            creates[0].role.as_str(),
            creates[0].party_id.as_str(),
            creates[0].scheduler_party_id.as_str(),
            creates[0].version,
        ),
        ("job1", "guest", "9999", "9999", 0)
    );
    assert_eq!(creates[0].tasks.len(), 1);
    assert_eq!(creates[0].tasks[0].component, "a");
    assert_eq!(creates[0].tasks[0].module, "Sleep");
    assert_eq!(creates[0].tasks[0].parameters_json, r#"{"seconds":0}"#);

    // A plan naming a component the job does not have here is refused, and creates nothing.
    let refused = service
        .client
        .create_job(create_with_tasks("job2", "b"))
        .await
        .expect_err("a component outside the job");
    assert_eq!(refused.code(), Code::InvalidArgument, "{refused:?}");
    assert!(refused.message().contains("component b"), "{refused:?}");
    assert_eq!(service.tasks.creates().len(), 1);
    let none = service
        .client
        .get_job(jc::GetJobRequest {
            job_id: "job2".into(),
        })
        .await;
    assert!(
        none.as_ref()
            .map_or(true, |job| job.get_ref().jobs.is_empty()),
        "the refused job was stored: {none:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_grants_until_full_then_refuses_naming_what_is_short_until_a_release() {
    let mut service = start("ledger", cores(3)).await;
    for i in 1..=4 {
        let job = format!("job{i}");
        ok(service.client.create_job(create(&job))).await;
    }
    for i in 1..=3 {
        let job = format!("job{i}");
        let reply = ok(service.client.apply_resource(apply(&job))).await;
        assert!(reply.granted, "job{i}: {reply:?}");
        assert_eq!(reply.cores, 1);
    }
    let refused = ok(service.client.apply_resource(apply("job4"))).await;
    assert!(!refused.granted);
    assert_eq!(refused.reason, "cores: requested 1, free 0 of 3");
    let full = resources(&mut service).await;
    assert_eq!((full.total_cores, full.free_cores), (3, 0));
    assert_eq!(full.allocations.len(), 3);

    let returned = jc::ReturnResourceRequest {
        job_id: "job1".into(),
        role: "guest".into(),
        party_id: "9999".into(),
        request_id: "job1:return".into(),
    };
    let released = ok(service.client.return_resource(returned)).await;
    assert!(released.released);
    assert_eq!(resources(&mut service).await.free_cores, 1);
    let granted = ok(service.client.apply_resource(apply("job4"))).await;
    assert!(granted.granted, "{granted:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_status_releases_the_allocation_and_leaves_the_stops_to_the_scheduler() {
    let mut service = start("end", cores(4)).await;
    ok(service.client.create_job(create("job1"))).await;
    let granted = ok(service.client.apply_resource(apply("job1"))).await;
    assert!(granted.granted);
    assert_eq!(resources(&mut service).await.free_cores, 3);
    let cancel = update("job1", JobStatus::Canceled, "by user");
    let set = ok(service.client.update_job_status(cancel)).await;
    assert!(set.applied);
    assert_eq!(set.status, JobStatus::Canceled as i32);
    let after = resources(&mut service).await;
    assert!(after.allocations.is_empty(), "{after:?}");
    assert_eq!(after.free_cores, 4);
    let row = &get_job(&mut service, "job1").await.jobs[0];
    assert_eq!(row.status, JobStatus::Canceled as i32);
    assert!(row.end_time_ms > 0);
    assert!(
        service.tasks.stops().is_empty(),
        "the scheduler commits StopTasks with the end: {:?}",
        service.tasks.stops()
    );
    let late = service
        .client
        .apply_resource(apply("job1"))
        .await
        .expect_err("an ended job reserves nothing");
    assert_eq!(late.code(), Code::FailedPrecondition, "{late:?}");
    assert!(resources(&mut service).await.allocations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_successful_end_releases_the_allocation_and_stops_nothing() {
    let mut service = start("success", cores(4)).await;
    ok(service.client.create_job(create("job1"))).await;
    ok(service.client.apply_resource(apply("job1"))).await;
    for status in [JobStatus::Running, JobStatus::Success] {
        let set = ok(service.client.update_job_status(update("job1", status, ""))).await;
        assert!(set.applied, "{status:?}");
    }
    let row = &get_job(&mut service, "job1").await.jobs[0];
    assert_eq!(row.status, JobStatus::Success as i32);
    assert!(
        row.start_time_ms > 0 && row.end_time_ms >= row.start_time_ms,
        "{row:?}"
    );
    assert!(resources(&mut service).await.allocations.is_empty());
    assert!(service.tasks.stops().is_empty(), "a success stops nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_request_changes_nothing() {
    let mut service = start("replay", cores(4)).await;
    let first = ok(service.client.create_job(create("job1"))).await;
    let created = get_job(&mut service, "job1").await;
    let again = ok(service.client.create_job(create("job1"))).await;
    assert_eq!(again, first, "a repeat answers as the first did");
    assert_eq!(get_job(&mut service, "job1").await, created);

    for _ in 0..2 {
        let reply = ok(service.client.apply_resource(apply("job1"))).await;
        assert!(reply.granted);
    }
    let held = resources(&mut service).await;
    assert_eq!(
        (held.allocations.len(), held.free_cores),
        (1, 3),
        "{held:?}"
    );

    let start = jc::StartJobRequest {
        job_id: "job1".into(),
        role: "guest".into(),
        party_id: "9999".into(),
        request_id: "job1:start".into(),
    };
    for _ in 0..2 {
        let started = ok(service.client.start_job(start.clone())).await;
        assert_eq!(started.status, JobStatus::Running as i32);
    }
    let running = get_job(&mut service, "job1").await;

    let fail = update("job1", JobStatus::Failed, "task a failed");
    let first = ok(service.client.update_job_status(fail.clone())).await;
    assert!(first.applied);
    let ended = get_job(&mut service, "job1").await;
    assert_ne!(ended, running);
    let again = ok(service.client.update_job_status(fail)).await;
    assert!(!again.applied, "the row was already there");
    assert_eq!(again.status, JobStatus::Failed as i32);
    assert_eq!(get_job(&mut service, "job1").await, ended);
    assert!(resources(&mut service).await.allocations.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_whose_job_never_starts_is_released_by_the_reconciler() {
    let mut service = start(
        "reconcile",
        fedflow_job_controller::config::Resources {
            cores: 4,
            reservation_timeout_s: 0,
            reconcile_period_ms: 20,
            ..Default::default()
        },
    )
    .await;
    ok(service.client.create_job(create("job1"))).await;
    let granted = ok(service.client.apply_resource(apply("job1"))).await;
    assert!(granted.granted);
    let client = service.client.clone();
    eventually(
        "the stray reservation's release",
        Duration::from_secs(10),
        || {
            let mut client = client.clone();
            async move {
                let view = client
                    .get_resources(jc::GetResourcesRequest {})
                    .await
                    .map_err(|e| e.to_string())?
                    .into_inner();
                if view.allocations.is_empty() && view.free_cores == 4 {
                    Ok(())
                } else {
                    Err(format!("{view:?}"))
                }
            }
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_bad_field_is_refused_naming_it_and_stores_nothing() {
    let mut service = start("fields", cores(4)).await;
    let mut bad_role = create("job1");
    bad_role.role = "admin".into();
    let mut bad_scheduler = create("job1");
    bad_scheduler.scheduler_party_id = "../x".into();
    let mut not_here = create("job1");
    not_here.party_id = "10000".into();
    for (request, field) in [
        (bad_role, "role"),
        (bad_scheduler, "scheduler_party_id"),
        (not_here, "party_id"),
    ] {
        let refused = service
            .client
            .create_job(request)
            .await
            .expect_err("refused");
        assert_eq!(
            refused.code(),
            Code::InvalidArgument,
            "{field}: {refused:?}"
        );
        assert!(
            refused.message().contains(field),
            "{:?} does not name {field}",
            refused.message()
        );
    }
    let mut bad_status = update("job1", JobStatus::Running, "");
    bad_status.status = 99;
    let refused = service
        .client
        .update_job_status(bad_status)
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("status"), "{refused:?}");
    let missing = service
        .client
        .get_job(jc::GetJobRequest {
            job_id: "job1".into(),
        })
        .await
        .expect_err("nothing stored");
    assert_eq!(missing.code(), Code::NotFound);
    assert!(service.tasks.creates().is_empty());
}
