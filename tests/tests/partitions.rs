//! Partitions over the real binaries: the host party's gateway is frozen with SIGSTOP (its
//! connections stay open, nothing is answered), for less and for more than
//! `party_unreachable_timeout`.

use std::time::Duration;

use fedflow_core::JobStatus;
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use fedflow_tests::*;
use serde_json::json;

const PARTIES: [&str; 3] = ["9999", "10000", "10001"];
const UNREACHABLE_S: u64 = 6;

/// Short deadlines so a partition is noticed in seconds: the scheduler repairs every 300 ms
/// with 1 s call deadlines, parties probe their schedulers every 300 ms, and both give a
/// party up after `UNREACHABLE_S`.
async fn federation() -> ProcessFederation {
    let env = [
        ("FEDFLOW_SCHEDULER__SCHEDULING__REPAIR_INTERVAL_MS", "300"),
        ("FEDFLOW_SCHEDULER__SCHEDULING__CALL_TIMEOUT_MS", "1000"),
        (
            "FEDFLOW_SCHEDULER__SCHEDULING__PARTY_UNREACHABLE_TIMEOUT_S",
            &UNREACHABLE_S.to_string(),
        ),
        ("FEDFLOW_TASK_CONTROLLER__FENCING__PROBE_INTERVAL_MS", "300"),
        (
            "FEDFLOW_TASK_CONTROLLER__FENCING__PARTY_UNREACHABLE_TIMEOUT_S",
            &UNREACHABLE_S.to_string(),
        ),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    ProcessFederation::start_with(
        &PARTIES,
        ProcessOptions {
            env,
            ..ProcessOptions::default()
        },
    )
    .await
}

async fn submit_sleepers(fed: &ProcessFederation, n: usize, seconds: f64) -> Vec<String> {
    let mut scheduler = fed.scheduler("9999");
    let dsl = json!({"components": {
        "first": {"module": "Sleep", "output": {"data": ["o"]}},
        "second": {"module": "Sleep", "input": {"data": {"data": ["first.o"]}}}
    }});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"first": {"seconds": seconds}, "second": {"seconds": 0.2}}}),
    );
    submit_many(&mut scheduler, &dsl, &conf, n).await
}

/// Waits (up to `within`) until a worker of every job runs on the host (`running`), so a
/// partition cuts running work, or until none does any more.
async fn host_workers(jobs: &[String], running: bool, within: Duration) {
    for job in jobs {
        let what = if running {
            format!("a worker of {job} running on the host")
        } else {
            format!("the host to stop its worker of {job} on its own")
        };
        eventually(&what, within, || async move {
            let pids = processes_mentioning(&format!("{job}/host/10000"));
            match (running, pids.is_empty()) {
                (true, true) => Err("none yet".to_owned()),
                (false, false) => Err(format!("{pids:?} still run")),
                _ => Ok(()),
            }
        })
        .await;
    }
}

/// Submits `n` jobs whose first task sleeps `seconds`, waits for their host workers and
/// freezes the host's gateway; returns the jobs and the gateway's pid.
async fn partition_host(fed: &ProcessFederation, n: usize, seconds: f64) -> (Vec<String>, u32) {
    let jobs = submit_sleepers(fed, n, seconds).await;
    host_workers(&jobs, true, Duration::from_secs(30)).await;
    let gateway = fed.pid("10000", "fedflow-party-gateway");
    signal(gateway, "STOP");
    (jobs, gateway)
}

/// Lets the frozen gateway run again and asserts that every party agrees each job ended `want`.
async fn heal(fed: &ProcessFederation, gateway: u32, jobs: &[String], want: JobStatus) {
    signal(gateway, "CONT");
    let statuses = fed
        .check_invariants("9999", jobs, Duration::from_secs(60))
        .await;
    for (job, status) in statuses {
        assert_eq!(status, want, "{job}\n{}", fed.logs());
    }
}

/// Frozen for half the timeout, across the end of the host's first task (its report and the
/// next start must wait for the gateway): the jobs still succeed.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_partition_is_ridden_out() {
    let fed = federation().await;
    let (jobs, gateway) = partition_host(&fed, 4, 1.0).await;
    tokio::time::sleep(Duration::from_millis(UNREACHABLE_S * 1000 / 2)).await;
    heal(&fed, gateway, &jobs, JobStatus::Success).await;
}

/// Frozen past the timeout: the scheduler fails the jobs naming the unreachable party, the
/// host fences its own workers (stopped while its gateway is still frozen), and once the
/// gateway runs again every party agrees on the scheduler's verdict.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_long_partition_fails_the_jobs_everywhere_and_the_host_fences_itself() {
    let fed = federation().await;
    let (jobs, gateway) = partition_host(&fed, 3, 60.0).await;
    // Nothing reaches the host now: its workers must stop on the host's own decision.
    host_workers(&jobs, false, Duration::from_secs(UNREACHABLE_S + 20)).await;
    let mut scheduler = fed.scheduler("9999");
    for job in &jobs {
        let ended = wait_ended(&mut scheduler, job, Duration::from_secs(30)).await;
        assert_eq!(
            job_status(ended.status),
            fedflow_proto::common::v1::JobStatus::Failed
        );
        assert!(
            ended.reason.contains("party 10000 unreachable"),
            "the reason names the party: {ended:?}"
        );
    }
    heal(&fed, gateway, &jobs, JobStatus::Failed).await;
    // The host's rows say why they stopped, and its job rows carry the scheduler's reason.
    for job in &jobs {
        let db = fedflow_store::Db::open_existing(&fedflow_store::sqlite_url(
            &fed.dir.path().join("10000").join("task-controller.db"),
        ))
        .await
        .expect("open the host's task-controller database");
        let rows = db
            .query(
                "SELECT reason FROM taskctl_tasks WHERE job_id = ? AND component = 'first'",
                vec![job.clone().into()],
            )
            .await
            .expect("query");
        let reason: String = fedflow_store::get(&rows[0], "reason").expect("reason");
        assert!(reason.starts_with("fenced"), "{job}: {reason}");
    }
}
