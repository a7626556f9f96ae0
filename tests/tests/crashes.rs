//! Crash tests over the real binaries: services killed with SIGKILL and started again.

use std::time::Duration;

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::scheduler::v1 as sc;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_tests::process::ProcessFederation;
use fedflow_tests::*;
use serde_json::json;

/// The host's task-controller dies while ten workers run on it and comes back: the workers
/// that lived on are adopted again (no new attempt, same pid) and their jobs succeed; the
/// three killed while it was down are found lost after the restart and retried (the jobs
/// allow one automatic retry).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_task_controller_adopts_live_workers_and_finds_lost_ones() {
    let mut fed = ProcessFederation::start(&["9999", "10000", "10001"]).await;
    let mut scheduler = fed.scheduler("9999");
    let dsl = json!({"components": {"nap": {"module": "Sleep"}}});
    // Every worker naps until the test lets them go, so all ten are alive when it kills
    // three of them, however slowly the others start.
    let release = fed.dir.path().join("release");
    let conf = conf3(
        json!({"common": {"task_cores": 1, "auto_retries": 1, "auto_retry_delay": 0}}),
        json!({"common": {"nap": {"until_file": release.display().to_string()}}}),
    );
    let jobs = submit_many(&mut scheduler, &dsl, &conf, 10).await;
    let host_tc = fed.party("10000").task_controller.clone();
    let pids = eventually("ten host workers running", Duration::from_secs(30), || {
        let jobs = jobs.clone();
        let addr = host_tc.clone();
        async move {
            let mut client = tc::task_controller_client::TaskControllerClient::new(channel(&addr));
            let mut pids = Vec::new();
            for job in &jobs {
                let rows = tasks_of(&mut client, job).await?;
                match rows.first() {
                    Some(t) if t.pid != 0 && task_status(t.party_status) == TaskStatus::Running => {
                        pids.push(t.pid)
                    }
                    other => return Err(format!("job {job}: {other:?}")),
                }
            }
            Ok(pids)
        }
    })
    .await;
    fed.kill("10000", "fedflow-task-controller");
    // While it is down, three of its workers die too.
    for pid in &pids[..3] {
        signal(*pid, "KILL");
    }
    fed.restart("10000", "fedflow-task-controller").await;
    std::fs::write(&release, b"").expect("write the release file");
    each_succeeds(&fed, &mut scheduler, &jobs, Duration::from_secs(60)).await;
    let mut client = tc::task_controller_client::TaskControllerClient::new(channel(&host_tc));
    for (i, job) in jobs.iter().enumerate() {
        let rows = tasks_of(&mut client, job).await.expect("list");
        if i < 3 {
            assert_eq!(
                rows.len(),
                2,
                "the lost worker's task was retried: {rows:?}"
            );
            assert!(rows[0].reason.starts_with("worker lost"), "{rows:?}");
            assert_eq!(task_status(rows[1].party_status), TaskStatus::Success);
        } else {
            assert_eq!(rows.len(), 1, "no new attempt for a live worker: {rows:?}");
            assert_eq!(rows[0].pid, pids[i], "the same worker finished the task");
            assert_eq!(task_status(rows[0].party_status), TaskStatus::Success);
        }
    }
    fed.check_invariants("9999", &jobs, Duration::from_secs(30))
        .await;
}

/// The initiator's scheduler dies mid-job and comes back: what the parties reported while it
/// was down reaches it, it drives the jobs on from its own database, and every party agrees on
/// the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_scheduler_finishes_its_jobs_and_every_party_agrees() {
    let mut fed = ProcessFederation::start(&["9999", "10000", "10001"]).await;
    let addr = fed.party("9999").scheduler.clone();
    let mut scheduler = sc::scheduler_client::SchedulerClient::new(channel(&addr));
    let dsl = json!({"components": {
        "a": {"module": "Sleep", "output": {"data": ["o"]}},
        "b": {"module": "Sleep", "input": {"data": {"data": ["a.o"]}}, "output": {"data": ["o"]}},
        "c": {"module": "Sleep", "input": {"data": {"data": ["b.o"]}}}
    }});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"a": {"seconds": 1}, "b": {"seconds": 1}, "c": {"seconds": 0}}}),
    );
    let jobs = submit_many(&mut scheduler, &dsl, &conf, 3).await;
    eventually("the jobs to run", Duration::from_secs(30), || {
        let mut s = scheduler.clone();
        let jobs = jobs.clone();
        async move {
            for job in &jobs {
                let j = get_job(&mut s, job).await?;
                if job_status(j.status) != JobStatus::Running {
                    return Err(format!("{job}: {:?}", job_status(j.status)));
                }
            }
            Ok(())
        }
    })
    .await;
    fed.kill("9999", "fedflow-scheduler");
    fed.restart("9999", "fedflow-scheduler").await;
    let mut scheduler = sc::scheduler_client::SchedulerClient::new(channel(&addr));
    each_succeeds(&fed, &mut scheduler, &jobs, Duration::from_secs(90)).await;
    for party in &fed.parties {
        let jobs_client =
            fedflow_proto::jobcontroller::v1::job_controller_client::JobControllerClient::new(
                channel(&party.job_controller),
            );
        for job in &jobs {
            wait_job_rows(
                &jobs_client,
                &party.party_id,
                job,
                JobStatus::Success,
                Duration::from_secs(30),
            )
            .await;
        }
    }
    fed.check_invariants("9999", &jobs, Duration::from_secs(30))
        .await;
}

/// Waits (up to `within` for each) until every job ends on `scheduler`, asserting each
/// succeeded.
async fn each_succeeds(
    fed: &ProcessFederation,
    scheduler: &mut sc::scheduler_client::SchedulerClient<tonic::transport::Channel>,
    jobs: &[String],
    within: Duration,
) {
    for job in jobs {
        let ended = wait_ended(scheduler, job, within).await;
        assert_eq!(
            job_status(ended.status),
            JobStatus::Success,
            "{ended:?}\n{}",
            fed.logs()
        );
    }
}

/// Every invariant holds for `jobs` and every one of them succeeded (else the reasons and the
/// services' logs are shown).
async fn all_succeed(fed: &ProcessFederation, jobs: &[String], within: Duration) {
    let statuses = fed.check_invariants("9999", jobs, within).await;
    let failed: Vec<_> = statuses
        .iter()
        .filter(|(_, s)| **s != fedflow_core::JobStatus::Success)
        .map(|(job, _)| job)
        .collect();
    assert!(
        failed.is_empty(),
        "jobs did not succeed: {:?}\n{}",
        fedflow_tests::invariants::reasons(fed.dir.path(), "9999", &failed).await,
        fed.logs()
    );
}

/// A small seeded generator for the chaos schedule; the seed is printed so a failing run can be
/// replayed with `FEDFLOW_CHAOS_SEED`.
struct Chaos(u64);

impl Chaos {
    fn from_env() -> Chaos {
        let seed = std::env::var("FEDFLOW_CHAOS_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("chaos seed {seed} (FEDFLOW_CHAOS_SEED={seed} replays this schedule)");
        Chaos(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[lo, hi)` milliseconds.
    fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(lo + self.next() % (hi - lo))
    }
}

/// A diamond-with-a-tail DAG of five Sleep components: a → {b, c} → d → e.
fn five_sleeps() -> serde_json::Value {
    json!({"components": {
        "a": {"module": "Sleep", "output": {"data": ["o"]}},
        "b": {"module": "Sleep", "input": {"data": {"data": ["a.o"]}}, "output": {"data": ["o"]}},
        "c": {"module": "Sleep", "input": {"data": {"data": ["a.o"]}}, "output": {"data": ["o"]}},
        "d": {"module": "Sleep", "input": {"data": {"data": ["b.o", "c.o"]}}, "output": {"data": ["o"]}},
        "e": {"module": "Sleep", "input": {"data": {"data": ["d.o"]}}}
    }})
}

/// The conf of [`five_sleeps`], one core a task, sleeping these seconds in a, b, c, d and e.
fn five_sleeps_conf(seconds: [f64; 5]) -> serde_json::Value {
    let common: serde_json::Map<String, serde_json::Value> = ["a", "b", "c", "d", "e"]
        .into_iter()
        .zip(seconds)
        .map(|(component, s)| (component.to_owned(), json!({ "seconds": s })))
        .collect();
    conf3(
        json!({"common": {"task_cores": 1}}),
        json!({ "common": common }),
    )
}

const PARTIES: [&str; 3] = ["9999", "10000", "10001"];

/// Twenty concurrent three-party jobs while the host's job-controller, the host's
/// task-controller, the initiator's scheduler and a gateway are killed with SIGKILL in turn,
/// at random moments, twelve kills in all, each restarted after 0–3 s: every job succeeds and
/// every invariant holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_jobs_succeed_through_twelve_random_kills() {
    let mut chaos = Chaos::from_env();
    let mut fed = ProcessFederation::start(&PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    let mut jobs = Vec::new();
    for _ in 0..20 {
        let conf = five_sleeps_conf(std::array::from_fn(|_| {
            chaos.millis(200, 2_000).as_millis() as f64 / 1000.0
        }));
        jobs.push(
            submit(&mut scheduler, &five_sleeps(), &conf)
                .await
                .expect("accepted"),
        );
    }
    let victims = [
        ("10000", "fedflow-job-controller"),
        ("10000", "fedflow-task-controller"),
        ("9999", "fedflow-scheduler"),
        ("10000", "fedflow-party-gateway"),
    ];
    for kill in 0..12 {
        tokio::time::sleep(chaos.millis(300, 2_000)).await;
        let (party, service) = victims[kill % victims.len()];
        eprintln!("kill {kill}: {party} {service}");
        fed.kill(party, service);
        tokio::time::sleep(chaos.millis(0, 3_000)).await;
        fed.restart(party, service).await;
    }
    all_succeed(&fed, &jobs, Duration::from_secs(120)).await;
}

/// Every service of the host party is killed at once mid-job and started again: the jobs end,
/// the same on every party, and every invariant holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_host_service_killed_at_once_loses_nothing() {
    let mut fed = ProcessFederation::start(&PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    let conf = five_sleeps_conf([1.0, 1.0, 0.5, 0.5, 0.2]);
    let jobs = submit_many(&mut scheduler, &five_sleeps(), &conf, 5).await;
    let host_tc = fed.party("10000").task_controller.clone();
    eventually("host workers running", Duration::from_secs(30), || {
        let addr = host_tc.clone();
        let job = jobs[0].clone();
        async move {
            let mut client = tc::task_controller_client::TaskControllerClient::new(channel(&addr));
            let rows = client
                .list_tasks(tc::ListTasksRequest { job_id: job })
                .await
                .map_err(|s| s.message().to_owned())?
                .into_inner()
                .tasks;
            rows.iter()
                .any(|t| t.pid != 0 && task_status(t.party_status) == TaskStatus::Running)
                .then_some(())
                .ok_or(format!("{rows:?}"))
        }
    })
    .await;
    let services = [
        "fedflow-party-gateway",
        "fedflow-job-controller",
        "fedflow-task-controller",
        "fedflow-scheduler",
    ];
    for service in services {
        fed.kill("10000", service);
    }
    for service in services {
        fed.restart("10000", service).await;
    }
    all_succeed(&fed, &jobs, Duration::from_secs(120)).await;
}

/// `fedflow standalone` as a process, its output in a file.
struct Standalone {
    child: std::process::Child,
    out: std::path::PathBuf,
}

impl Standalone {
    fn start(data_dir: &std::path::Path, out: std::path::PathBuf) -> Standalone {
        let log = std::fs::File::create(&out).expect("create the output file");
        let child = std::process::Command::new(bin("fedflow"))
            .args(["standalone", "--data-dir"])
            .arg(data_dir)
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("clone"))
            .stderr(log)
            .spawn()
            .expect("start fedflow standalone");
        Standalone { child, out }
    }

    /// The `party … scheduler … gateway …` lines it printed, once every party is up.
    async fn addresses(&self) -> Vec<String> {
        eventually(
            "fedflow standalone to print its addresses",
            Duration::from_secs(30),
            || async {
                let text = std::fs::read_to_string(&self.out).unwrap_or_default();
                let lines: Vec<String> = text
                    .lines()
                    .filter(|l| l.starts_with("party "))
                    .map(str::to_owned)
                    .collect();
                if lines.len() == PARTIES.len() && text.contains("fedflow standalone running") {
                    Ok(lines)
                } else {
                    Err(text)
                }
            },
        )
        .await
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `fedflow standalone` killed with SIGKILL in the middle of several jobs and started again on
/// the same data directory: every service is back on the same address, the workers that ran
/// on are adopted, every job ends, the same on every party, and no worker is left behind.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn standalone_killed_mid_job_comes_back_on_the_same_addresses() {
    let dir = TempDir::new("fedflow-standalone-crash");
    let data = dir.path().join("data");
    let first = Standalone::start(&data, dir.path().join("first.out"));
    let before = first.addresses().await;
    let scheduler_addr = before[0]
        .split_whitespace()
        .nth(3)
        .expect("the scheduler's address")
        .to_owned();
    for addr in before
        .iter()
        .flat_map(|l| l.split_whitespace().skip(3).step_by(2))
        // The gRPC ports; the metrics endpoint (`http://…`) is plain HTTP.
        .filter(|addr| !addr.starts_with("http://"))
    {
        eventually(&format!("{addr} to serve"), Duration::from_secs(30), || {
            serving(addr)
        })
        .await;
    }
    let mut scheduler = sc::scheduler_client::SchedulerClient::new(channel(&scheduler_addr));
    let dsl = json!({"components": {
        "a": {"module": "Sleep", "output": {"data": ["o"]}},
        "b": {"module": "Sleep", "input": {"data": {"data": ["a.o"]}}}
    }});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"a": {"seconds": 2}, "b": {"seconds": 0.5}}}),
    );
    let jobs = submit_many(&mut scheduler, &dsl, &conf, 4).await;
    for job in &jobs {
        eventually(
            &format!("workers of {job} running"),
            Duration::from_secs(30),
            || async move {
                let n = processes_mentioning(job).len();
                if n == PARTIES.len() {
                    Ok(())
                } else {
                    Err(format!("{n} workers"))
                }
            },
        )
        .await;
    }
    drop(first);
    let second = Standalone::start(&data, dir.path().join("second.out"));
    let after = second.addresses().await;
    assert_eq!(
        before, after,
        "the same addresses for the same data directory"
    );
    let statuses = fedflow_tests::invariants::check(&fedflow_tests::invariants::Scope {
        root: &data,
        parties: &PARTIES,
        initiator: "9999",
        jobs: &jobs,
        within: Duration::from_secs(60),
    })
    .await;
    for (job, status) in statuses {
        assert_eq!(
            status,
            fedflow_core::JobStatus::Success,
            "{job}\n{}",
            std::fs::read_to_string(dir.path().join("second.out")).unwrap_or_default()
        );
    }
    // A second standalone on a data directory in use says so instead of starting.
    let third = Standalone::start(&data, dir.path().join("third.out"));
    let refused = eventually(
        "a second standalone on the data directory to refuse",
        Duration::from_secs(30),
        || {
            let out = third.out.clone();
            async move {
                let text = std::fs::read_to_string(&out).unwrap_or_default();
                if text.contains("is another fedflow standalone running on it?") {
                    Ok(text)
                } else {
                    Err(text)
                }
            }
        },
    )
    .await;
    assert!(refused.contains("addresses.json"), "{refused}");
}

const SERVICES: [&str; 4] = [
    "fedflow-party-gateway",
    "fedflow-job-controller",
    "fedflow-task-controller",
    "fedflow-scheduler",
];

/// SIGTERM to every service of every party while twelve jobs run: a health watcher sees the
/// scheduler turn NOT_SERVING, every process exits within its drain deadline (3 s here; the
/// watcher's own open stream is the in-flight call that makes the scheduler use it), and once
/// all are started again every job succeeds and every invariant holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_under_load_drains_and_every_job_completes_after_restart() {
    let env = [
        "SCHEDULER",
        "JOB_CONTROLLER",
        "TASK_CONTROLLER",
        "PARTY_GATEWAY",
    ]
    .iter()
    .map(|s| {
        (
            format!("FEDFLOW_{s}__GRPC__DRAIN_TIMEOUT_MS"),
            "3000".to_owned(),
        )
    })
    .collect();
    let mut fed = ProcessFederation::start_with(
        &PARTIES,
        fedflow_tests::process::ProcessOptions {
            env,
            ..Default::default()
        },
    )
    .await;
    let mut scheduler = fed.scheduler("9999");
    let conf = five_sleeps_conf([1.0, 0.5, 1.0, 0.3, 0.2]);
    let jobs = submit_many(&mut scheduler, &five_sleeps(), &conf, 12).await;
    eventually("workers running", Duration::from_secs(30), || {
        let job = jobs[0].clone();
        async move {
            let n = processes_mentioning(&job).len();
            if n > 0 {
                Ok(())
            } else {
                Err("none".to_owned())
            }
        }
    })
    .await;
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(channel(&fed.party("9999").scheduler));
    let mut watch = health
        .watch(tonic_health::pb::HealthCheckRequest {
            service: "fedflow.scheduler.v1.Scheduler".into(),
        })
        .await
        .expect("health watch")
        .into_inner();
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving as i32;
    let first = watch.message().await.expect("a status").expect("open");
    assert_eq!(first.status, serving);
    for party in PARTIES {
        for service in SERVICES {
            fed.signal(party, service, "TERM");
        }
    }
    let next = watch.message().await.expect("a status").expect("open");
    assert_eq!(
        next.status,
        tonic_health::pb::health_check_response::ServingStatus::NotServing as i32,
        "the scheduler reports NOT_SERVING as it drains"
    );
    for party in PARTIES {
        for service in SERVICES {
            eventually(
                &format!("{party} {service} to exit within its drain deadline"),
                Duration::from_secs(3 + 5),
                || {
                    let exited = fed.exited(party, service);
                    async move {
                        if exited {
                            Ok(())
                        } else {
                            Err("running".to_owned())
                        }
                    }
                },
            )
            .await;
        }
    }
    drop(watch);
    for party in PARTIES {
        for service in SERVICES {
            fed.restart(party, service).await;
        }
    }
    all_succeed(&fed, &jobs, Duration::from_secs(90)).await;
}

/// Another process holds the write lock of the initiator scheduler's and the host
/// task-controller's SQLite databases for 10 s while jobs run and one more is submitted: the
/// submit waits or is refused `UNAVAILABLE` (and a retry with its request id is answered with
/// the same job), nothing is lost, and everything carries on by itself once the lock goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sqlite_database_locked_for_ten_seconds_loses_nothing() {
    let fed = ProcessFederation::start(&PARTIES).await;
    let mut scheduler = fed.scheduler("9999");
    let conf = five_sleeps_conf([0.5, 0.5, 0.5, 0.5, 0.5]);
    let mut jobs = submit_many(&mut scheduler, &five_sleeps(), &conf, 4).await;
    // The lock holder: separate connections of this (other) process, each in a write
    // transaction, so every writer of those files has to wait.
    let mut held = Vec::new();
    for (party, service) in [("9999", "scheduler"), ("10000", "task-controller")] {
        let path = fed.dir.path().join(party).join(format!("{service}.db"));
        let db = fedflow_store::Db::open_existing(&fedflow_store::sqlite_url(&path))
            .await
            .expect("open the database");
        let tx = db.begin().await.expect("take the write lock");
        held.push((db, tx));
    }
    let request = sc::SubmitJobRequest {
        dsl: five_sleeps().to_string(),
        runtime_conf: conf.to_string(),
        request_id: "locked-db-submit-1".into(),
    };
    let during = {
        let mut client = scheduler.clone();
        let request = request.clone();
        tokio::spawn(async move { client.submit_job(request).await })
    };
    tokio::time::sleep(Duration::from_secs(10)).await;
    drop(held);
    let job = match during.await.expect("the submit task") {
        Ok(reply) => reply.into_inner().job_id,
        Err(status) => {
            assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
            scheduler
                .submit_job(request.clone())
                .await
                .expect("the retried submit")
                .into_inner()
                .job_id
        }
    };
    let again = scheduler
        .submit_job(request)
        .await
        .expect("a replayed submit")
        .into_inner()
        .job_id;
    assert_eq!(
        job, again,
        "a replayed request id is answered with the same job"
    );
    jobs.push(job);
    all_succeed(&fed, &jobs, Duration::from_secs(90)).await;
}

/// The end state of a job as the parties hold it: its status on its scheduler, and each
/// party's (component, version, role, status) rows, sorted.
async fn final_state(fed: &ProcessFederation, job: &str) -> (i32, Vec<(String, i32, String, i32)>) {
    let mut scheduler = fed.scheduler("9999");
    let ended = wait_ended(&mut scheduler, job, Duration::from_secs(60)).await;
    let mut rows = Vec::new();
    for party in &fed.parties {
        let mut client =
            tc::task_controller_client::TaskControllerClient::new(channel(&party.task_controller));
        let tasks = tasks_of(&mut client, job).await.expect("list tasks");
        rows.extend(
            tasks
                .into_iter()
                .map(|t| (t.component, t.version, t.role, t.party_status)),
        );
    }
    rows.sort();
    (ended.status, rows)
}

/// Runs a succeeding job, one that fails after a retry and one that succeeds on its retry,
/// and returns their end states.
async fn duplicate_workload(
    fed: &ProcessFederation,
) -> Vec<(i32, Vec<(String, i32, String, i32)>)> {
    let mut scheduler = fed.scheduler("9999");
    let ok = five_sleeps_conf([0.2, 0.2, 0.3, 0.2, 0.1]);
    let failing_dsl = json!({"components": {
        "a": {"module": "Sleep", "output": {"data": ["o"]}},
        "f": {"module": "Fail", "input": {"data": {"data": ["a.o"]}}}
    }});
    let fails = |attempts: i64| {
        conf3(
            json!({"common": {"task_cores": 1, "auto_retries": 1, "auto_retry_delay": 0}}),
            json!({"common": {"a": {"seconds": 0.2},
                              "f": {"message": "boom", "roles": ["host"], "attempts": attempts}}}),
        )
    };
    let jobs = vec![
        submit(&mut scheduler, &five_sleeps(), &ok)
            .await
            .expect("accepted"),
        submit(&mut scheduler, &failing_dsl, &fails(5))
            .await
            .expect("accepted"),
        submit(&mut scheduler, &failing_dsl, &fails(1))
            .await
            .expect("accepted"),
    ];
    let mut states = Vec::new();
    for job in &jobs {
        states.push(final_state(fed, job).await);
    }
    fed.check_invariants("9999", &jobs, Duration::from_secs(60))
        .await;
    states
}

/// Every party call delivered twice, the copy 0–50 ms later (out of order with later calls):
/// the end states are identical to a run without duplication, and no task attempt is claimed
/// or started twice (the invariants read the audit trails).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicated_and_reordered_party_calls_change_nothing() {
    let plain = ProcessFederation::start(&PARTIES).await;
    let expected = duplicate_workload(&plain).await;
    drop(plain);
    let doubled = ProcessFederation::start_with(
        &PARTIES,
        fedflow_tests::process::ProcessOptions {
            log: "info,fedflow_party_gateway=debug",
            env: vec![(
                "FEDFLOW_PARTY_GATEWAY__FORWARD__DUPLICATE_DELIVERY_FOR_TESTING".into(),
                "true".into(),
            )],
            // The duplicating switch is refused with mutual TLS on.
            insecure: true,
            ..Default::default()
        },
    )
    .await;
    let got = duplicate_workload(&doubled).await;
    let duplicates: usize = PARTIES
        .iter()
        .map(|p| {
            std::fs::read_to_string(doubled.dir.path().join(p).join("fedflow-party-gateway.log"))
                .unwrap_or_default()
                .matches("duplicate delivered")
                .count()
        })
        .sum();
    assert!(
        duplicates > 50,
        "the gateways delivered only {duplicates} duplicates"
    );
    assert_eq!(got, expected, "end states with duplicated calls");
}
