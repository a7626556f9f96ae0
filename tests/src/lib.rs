//! The end-to-end harness: [`TestFederation`] runs N parties × 4 services in this process on
//! ephemeral ports (SQLite files in a fresh temporary directory), with typed clients for every
//! service, and helpers that poll a condition until a deadline and fail saying what was
//! awaited and what was seen. [`bin`] finds the real binaries (`cargo build --bins` puts them
//! in `target/<profile>/`) for tests that run them as processes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_standalone::{Federation, Options};
use serde_json::{Value, json};
use tonic::transport::Channel;

pub mod invariants;
pub mod netns;
pub mod party;
pub mod process;

/// A fresh directory under the system's temporary directory, removed when dropped; kept (and
/// named on stderr) when `FEDFLOW_KEEP_TEST_DIRS` is set, to read a failed run's logs and
/// databases.
pub struct TempDir(Option<tempfile::TempDir>);

impl TempDir {
    pub fn new(prefix: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("{prefix}-"))
            .tempdir()
            .expect("create a temporary directory");
        TempDir(Some(dir))
    }

    pub fn path(&self) -> &Path {
        self.0.as_ref().expect("present until dropped").path()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take()
            && std::env::var_os("FEDFLOW_KEEP_TEST_DIRS").is_some()
        {
            eprintln!("kept {}", dir.keep().display());
        }
    }
}

/// A binary of this workspace, built by `cargo build --bins`.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    let mut dir = exe.parent().expect("a directory").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (cargo build --workspace --bins)",
        path.display()
    );
    path
}

/// Polls `check` every few milliseconds until it returns `Ok(value)` or `within` passes; then
/// panics with `what` and the last thing `check` said.
pub async fn eventually<T, F, Fut>(what: &str, within: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + within;
    let mut pause = Duration::from_millis(5);
    loop {
        match check().await {
            Ok(value) => return value,
            Err(seen) => {
                if tokio::time::Instant::now() >= deadline {
                    panic!("timed out after {within:?} waiting for {what}; last seen: {seen}");
                }
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

pub fn channel(addr: impl ToString) -> Channel {
    fedflow_rpc::channel(&addr.to_string()).expect("a valid address")
}

/// N parties × 4 services in this process.
pub struct TestFederation {
    pub federation: Federation,
    pub dir: TempDir,
}

impl TestFederation {
    pub async fn start(parties: &[&str]) -> TestFederation {
        Self::start_with(parties, |_| {}).await
    }

    /// Starts `parties` with only `cores` cores on the host, party 10000 (to make its jobs wait).
    pub async fn start_with_host_cores(parties: &[&str], cores: u32) -> TestFederation {
        Self::start_with(parties, |o| {
            o.cores_by_party.insert("10000".into(), cores);
        })
        .await
    }

    pub async fn start_with(parties: &[&str], tune: impl FnOnce(&mut Options)) -> TestFederation {
        let dir = TempDir::new("fedflow-test");
        let mut options = Options::new(
            parties.iter().map(|p| (*p).to_owned()).collect(),
            dir.path().to_path_buf(),
        );
        options.worker_bin = bin("fedflow-worker");
        tune(&mut options);
        let federation = Federation::start(options)
            .await
            .expect("the federation starts");
        TestFederation { federation, dir }
    }

    /// The same federation with every service on its own PostgreSQL database, on the server
    /// `FEDFLOW_TEST_POSTGRES_URL` names; None when it is unset.
    pub async fn start_on_postgres(parties: &[&str]) -> Option<TestFederation> {
        let admin = std::env::var("FEDFLOW_TEST_POSTGRES_URL")
            .ok()
            .filter(|url| !url.is_empty())?;
        let prefix = fedflow_store::unique_test_name("e2e");
        for party in parties {
            for service in ["scheduler", "job_controller", "task_controller"] {
                fedflow_store::create_postgres_database(
                    &admin,
                    &format!("{prefix}_{party}_{service}"),
                )
                .await
                .expect("create a test database");
            }
        }
        let template = fedflow_store::postgres_url_with_database(
            &admin,
            &format!("{prefix}_{{party}}_{{service}}"),
        );
        Some(
            Self::start_with(parties, |o| {
                o.database_url_template = Some(template);
            })
            .await,
        )
    }

    fn party(&self, party: &str) -> &fedflow_standalone::Party {
        self.federation
            .party(party)
            .unwrap_or_else(|| panic!("no party {party} in this federation"))
    }

    pub fn scheduler_addr(&self, party: &str) -> String {
        self.party(party).scheduler.to_string()
    }

    pub fn scheduler(&self, party: &str) -> sc::scheduler_client::SchedulerClient<Channel> {
        sc::scheduler_client::SchedulerClient::new(channel(self.party(party).scheduler))
    }

    pub fn job_controller(
        &self,
        party: &str,
    ) -> jc::job_controller_client::JobControllerClient<Channel> {
        jc::job_controller_client::JobControllerClient::new(channel(
            self.party(party).job_controller,
        ))
    }

    pub fn task_controller(
        &self,
        party: &str,
    ) -> tc::task_controller_client::TaskControllerClient<Channel> {
        tc::task_controller_client::TaskControllerClient::new(channel(
            self.party(party).task_controller,
        ))
    }

    pub fn party_ids(&self) -> Vec<String> {
        self.federation
            .parties
            .iter()
            .map(|p| p.party_id.clone())
            .collect()
    }

    pub async fn shutdown(self) {
        let errors = self.federation.shutdown().await;
        assert!(errors.is_empty(), "services ended with errors: {errors:?}");
    }
}

/// Submits through `scheduler`.
pub async fn submit(
    scheduler: &mut sc::scheduler_client::SchedulerClient<Channel>,
    dsl: &Value,
    conf: &Value,
) -> Result<String, tonic::Status> {
    scheduler
        .submit_job(sc::SubmitJobRequest {
            dsl: dsl.to_string(),
            runtime_conf: conf.to_string(),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().job_id)
}

/// Submits `n` copies of a job through `scheduler`, each expected to be accepted; returns
/// their ids in order.
pub async fn submit_many(
    scheduler: &mut sc::scheduler_client::SchedulerClient<Channel>,
    dsl: &Value,
    conf: &Value,
    n: usize,
) -> Vec<String> {
    let mut jobs = Vec::with_capacity(n);
    for _ in 0..n {
        jobs.push(submit(scheduler, dsl, conf).await.expect("accepted"));
    }
    jobs
}

pub async fn get_job(
    scheduler: &mut sc::scheduler_client::SchedulerClient<Channel>,
    job_id: &str,
) -> Result<sc::Job, String> {
    scheduler
        .get_job(sc::GetJobRequest {
            job_id: job_id.to_owned(),
            include_conf: false,
        })
        .await
        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
        .into_inner()
        .job
        .ok_or_else(|| "no job in the answer".to_owned())
}

pub fn is_end(status: i32) -> bool {
    matches!(
        JobStatus::try_from(status),
        Ok(JobStatus::Success | JobStatus::Failed | JobStatus::Canceled | JobStatus::Timeout)
    )
}

pub fn job_status(value: i32) -> JobStatus {
    JobStatus::try_from(value).unwrap_or(JobStatus::Unspecified)
}

pub fn task_status(value: i32) -> TaskStatus {
    TaskStatus::try_from(value).unwrap_or(TaskStatus::Unspecified)
}

/// Waits until the job reaches an end status on its scheduler.
pub async fn wait_ended(
    scheduler: &mut sc::scheduler_client::SchedulerClient<Channel>,
    job_id: &str,
    within: Duration,
) -> sc::Job {
    eventually(&format!("job {job_id} to end"), within, || {
        let mut scheduler = scheduler.clone();
        async move {
            let job = get_job(&mut scheduler, job_id).await?;
            if is_end(job.status) {
                Ok(job)
            } else {
                Err(format!(
                    "status {:?}, pending reason {:?}",
                    job_status(job.status),
                    job.pending_reason
                ))
            }
        }
    })
    .await
}

/// Submits through `scheduler`, waits until the job ends and asserts that it succeeded;
/// returns its id and its end state.
pub async fn run_to_success(
    scheduler: &mut sc::scheduler_client::SchedulerClient<Channel>,
    dsl: &Value,
    conf: &Value,
    within: Duration,
) -> (String, sc::Job) {
    let job_id = submit(scheduler, dsl, conf)
        .await
        .expect("a valid job is accepted");
    let job = wait_ended(scheduler, &job_id, within).await;
    assert_eq!(job_status(job.status), JobStatus::Success, "job: {job:?}");
    (job_id, job)
}

/// Waits until every party's job-controller rows of the job say `want`.
pub async fn wait_party_jobs(
    fed: &TestFederation,
    job_id: &str,
    want: JobStatus,
    within: Duration,
) {
    for party in fed.party_ids() {
        wait_job_rows(&fed.job_controller(&party), &party, job_id, want, within).await;
    }
}

/// Waits until `party`'s job-controller (reached through `client`) holds rows of the job and
/// they all say `want`.
pub async fn wait_job_rows(
    client: &jc::job_controller_client::JobControllerClient<Channel>,
    party: &str,
    job_id: &str,
    want: JobStatus,
    within: Duration,
) {
    eventually(
        &format!("job {job_id} to be {want:?} on party {party}"),
        within,
        || {
            let mut client = client.clone();
            async move {
                let request = jc::GetJobRequest {
                    job_id: job_id.to_owned(),
                };
                let rows = answer(client.get_job(request)).await?.jobs;
                if !rows.is_empty() && rows.iter().all(|r| r.status == want as i32) {
                    Ok(())
                } else {
                    Err(format!(
                        "{:?}",
                        rows.iter()
                            .map(|r| (r.role.clone(), job_status(r.status)))
                            .collect::<Vec<_>>()
                    ))
                }
            }
        },
    )
    .await;
}

/// Every task row a party holds for a job.
pub async fn party_tasks(fed: &TestFederation, party: &str, job_id: &str) -> Vec<tc::PartyTask> {
    tasks_of(&mut fed.task_controller(party), job_id)
        .await
        .expect("the task-controller lists tasks")
}

/// The first row of `component` a party holds for a job, failing if it holds none.
pub async fn party_task(
    fed: &TestFederation,
    party: &str,
    job_id: &str,
    component: &str,
) -> tc::PartyTask {
    let tasks = party_tasks(fed, party, job_id).await;
    tasks
        .into_iter()
        .find(|t| t.component == component)
        .unwrap_or_else(|| panic!("party {party} holds no row of {component}"))
}

/// The task rows `client`'s task-controller holds for a job.
pub async fn tasks_of(
    client: &mut tc::task_controller_client::TaskControllerClient<Channel>,
    job_id: &str,
) -> Result<Vec<tc::PartyTask>, String> {
    let request = tc::ListTasksRequest {
        job_id: job_id.to_owned(),
    };
    Ok(answer(client.list_tasks(request)).await?.tasks)
}

/// What a service answered to `call`, or the message of the status it failed with (for
/// [`eventually`] to show).
pub async fn answer<T>(
    call: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, String> {
    call.await
        .map(tonic::Response::into_inner)
        .map_err(|s| s.message().to_owned())
}

/// Every version of every task of a job, as its scheduler lists them.
pub async fn scheduler_tasks(
    scheduler: &mut sc::scheduler_client::SchedulerClient<Channel>,
    job_id: &str,
) -> Vec<sc::Task> {
    scheduler
        .list_tasks(sc::ListTasksRequest {
            job_id: job_id.to_owned(),
            all_versions: true,
        })
        .await
        .expect("the scheduler lists tasks")
        .into_inner()
        .tasks
}

/// The output of the latest version of `component` at (`role`, `party_id`).
pub async fn task_output(
    scheduler: &mut sc::scheduler_client::SchedulerClient<Channel>,
    job_id: &str,
    component: &str,
    (role, party_id): (&str, &str),
) -> sc::GetTaskOutputResponse {
    scheduler
        .get_task_output(sc::GetTaskOutputRequest {
            job_id: job_id.to_owned(),
            component: component.to_owned(),
            role: role.to_owned(),
            party_id: party_id.to_owned(),
        })
        .await
        .expect("the scheduler answers with the output")
        .into_inner()
}

/// Asserts that a finished command exited successfully (showing its stdout and stderr if
/// not) and returns its stdout.
pub fn succeeded(out: &std::process::Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Asserts that nothing of a refused submission was stored anywhere: no job at `initiator`'s
/// scheduler, and on every party no resource reservation and no task directory.
pub async fn assert_nothing_stored(fed: &TestFederation, initiator: &str) {
    let jobs = fed
        .scheduler(initiator)
        .list_jobs(sc::ListJobsRequest {
            limit: 100,
            ..Default::default()
        })
        .await
        .expect("list jobs")
        .into_inner()
        .jobs;
    assert!(jobs.is_empty(), "stored: {jobs:?}");
    for party in fed.party_ids() {
        let resources = fed
            .job_controller(&party)
            .get_resources(jc::GetResourcesRequest {})
            .await
            .expect("resources")
            .into_inner();
        assert!(resources.allocations.is_empty(), "{party}: {resources:?}");
        assert!(
            !fed.dir.path().join(&party).join("jobs").exists(),
            "no task directory on {party}"
        );
    }
}

/// A 3-party conf (guest 9999 initiator, host 10000, arbiter 10001) with these parameters.
pub fn conf3(job_parameters: Value, component_parameters: Value) -> Value {
    json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000], "arbiter": [10001]},
        "job_parameters": job_parameters,
        "component_parameters": component_parameters,
    })
}

/// The diamond a → (b, c) → d of `Sum` components.
pub fn diamond_dsl() -> Value {
    json!({"components": {
        "a": {"module": "Sum", "output": {"data": ["out"]}},
        "b": {"module": "Sum", "input": {"data": {"data": ["a.out"]}}, "output": {"data": ["out"]}},
        "c": {"module": "Sum", "input": {"data": {"data": ["a.out"]}}, "output": {"data": ["out"]}},
        "d": {"module": "Sum", "input": {"data": {"data": ["b.out", "c.out"]}}, "output": {"data": ["out"]}}
    }})
}

/// Health check of a gRPC server: SERVING?
pub async fn serving(addr: &str) -> Result<(), String> {
    serving_on(channel(addr)).await
}

/// Health check of the gRPC server `channel` leads to: SERVING?
pub async fn serving_on(channel: Channel) -> Result<(), String> {
    let mut client = tonic_health::pb::health_client::HealthClient::new(channel);
    let reply = client
        .check(tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        })
        .await
        .map_err(|s| s.message().to_owned())?
        .into_inner();
    if reply.status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32 {
        Ok(())
    } else {
        Err(format!("status {}", reply.status))
    }
}

/// Live (non-zombie) processes whose command line mentions `needle` (e.g. a job id: a
/// worker's argv holds its task directory, which holds the job id).
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    let rest = &s[s.rfind(')')? + 2..];
                    rest.chars().next()
                });
            String::from_utf8_lossy(&cmdline).contains(needle) && !matches!(state, Some('Z') | None)
        })
        .collect()
}

/// Sends a signal (`KILL`, `STOP`, `CONT`, `TERM`) to a process.
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Waits until every party holds exactly `rows` task rows of `job_id` and they satisfy
/// `check` (so a party that lists nothing never passes).
pub async fn wait_party_tasks<F>(
    fed: &TestFederation,
    job_id: &str,
    what: &str,
    within: Duration,
    rows: usize,
    check: F,
) where
    F: Fn(&[tc::PartyTask]) -> bool,
{
    for party in fed.party_ids() {
        let client = fed.task_controller(&party);
        let check = &check;
        eventually(&format!("{what} on party {party}"), within, || {
            let mut client = client.clone();
            async move {
                let tasks = tasks_of(&mut client, job_id).await?;
                if tasks.len() == rows && check(&tasks) {
                    Ok(())
                } else {
                    Err(format!(
                        "{} rows (want {rows}): {:?}",
                        tasks.len(),
                        tasks
                            .iter()
                            .map(|t| (
                                t.component.clone(),
                                t.version,
                                task_status(t.party_status),
                                t.reason.clone()
                            ))
                            .collect::<Vec<_>>()
                    ))
                }
            }
        })
        .await;
    }
}

/// fedflow's `Gather` on guest 9999 (value 5) and hosts 10000 (70) and 10001 (900): each
/// host's worker pushes its value to the guest on the data plane, and the guest sums 975.
pub fn gather_job() -> (Value, Value) {
    let dsl = json!({"components": {"gather": {"module": "Gather"}}});
    let conf = json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10000, 10001]},
        "job_parameters": {"common": {"task_cores": 1}},
        "component_parameters": {
            "common": {"gather": {"timeout_s": 60}},
            "role": {
                "guest": {"0": {"gather": {"value": 5}}},
                "host": {"0": {"gather": {"value": 70}}, "1": {"gather": {"value": 900}}}
            }
        }
    });
    (dsl, conf)
}
