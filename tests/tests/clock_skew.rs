//! Clock skew (S24): every service of party 10000 runs under libfaketime with its wall clock
//! moved, its monotonic clock true. Within the gateways' tolerance (±90 s against 2 min) jobs
//! across the three parties succeed as if the clocks agreed; beyond it (±10 min) the skewed
//! party's envelopes are refused with the distinct clock-skew error, and its jobs fail with a
//! reason naming it instead of hanging, while jobs of the other parties go on.
//!
//! Needs Debian's `faketime` package (libfaketime); skipped with the reason when it is
//! missing, failed under `FEDFLOW_REQUIRE_TOOLS=1`.

use std::collections::BTreeMap;
use std::time::Duration;

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::jobcontroller::v1 as jc;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_tests::process::{ProcessFederation, ProcessOptions, faketime};
use fedflow_tests::*;
use serde_json::json;

const SKEWED: &str = "10000";

/// The faketime environment for `offset`, or `None` (skip) with the reason printed.
fn skew_env(offset: &str) -> Option<Vec<(String, String)>> {
    match faketime(offset) {
        Ok(env) => Some(env),
        Err(why) if std::env::var_os("FEDFLOW_REQUIRE_TOOLS").is_some() => {
            panic!("FEDFLOW_REQUIRE_TOOLS is set: {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}

async fn skewed_federation(env: Vec<(String, String)>) -> ProcessFederation {
    ProcessFederation::start_with(
        &["9999", "10000", "10001"],
        ProcessOptions {
            party_env: BTreeMap::from([(SKEWED.to_owned(), env)]),
            ..ProcessOptions::default()
        },
    )
    .await
}

/// How far party 10000's clock is from the test's: the create time its job-controller
/// stamped on `job_id`, minus the test's clock around the submission.
async fn measured_skew_ms(fed: &ProcessFederation, job_id: &str, submitted_ms: i64) -> i64 {
    let jobs = jc::job_controller_client::JobControllerClient::new(channel(
        &fed.party(SKEWED).job_controller,
    ));
    let job = eventually(
        &format!("job {job_id} on party {SKEWED}"),
        Duration::from_secs(30),
        || {
            let mut jobs = jobs.clone();
            async move {
                jobs.get_job(jc::GetJobRequest {
                    job_id: job_id.to_owned(),
                })
                .await
                .map_err(|s| format!("{:?}: {}", s.code(), s.message()))?
                .into_inner()
                .jobs
                .into_iter()
                .next()
                .ok_or_else(|| "no job".to_owned())
            }
        },
    )
    .await;
    job.create_time_ms - submitted_ms
}

/// The diamond job on the three parties, `n` times; each succeeds with one attempt per task on
/// every party (no heartbeat or lease decision flipped by the skew), the invariants hold.
async fn diamonds_succeed(offset: &str, expected_skew_ms: i64) {
    let Some(env) = skew_env(offset) else { return };
    let fed = skewed_federation(env).await;
    let mut scheduler = fed.scheduler("9999");
    let conf = conf3(
        json!({"common": {"task_cores": 1, "task_parallelism": 2}}),
        json!({"common": {"a": {"value": 1}, "b": {"value": 2}, "c": {"value": 3}, "d": {"value": 4}}}),
    );
    let submitted_ms = fedflow_rpc::now_ms();
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let job_id = submit(&mut scheduler, &diamond_dsl(), &conf)
            .await
            .unwrap_or_else(|s| panic!("submit: {s:?}\n{}", fed.logs()));
        jobs.push(job_id);
    }
    // The skew is real: party 10000's services see the moved clock.
    let skew = measured_skew_ms(&fed, &jobs[0], submitted_ms).await;
    assert!(
        (skew - expected_skew_ms).abs() < 20_000,
        "party {SKEWED}'s clock should be {expected_skew_ms} ms off, it is {skew} ms off (does libfaketime reach the binaries?)"
    );
    for job_id in &jobs {
        let job = wait_ended(&mut scheduler, job_id, Duration::from_secs(120)).await;
        assert_eq!(
            job_status(job.status),
            JobStatus::Success,
            "job {job:?} with party {SKEWED} {offset}\n{}",
            fed.logs()
        );
    }
    for party in &fed.parties {
        let mut tasks =
            tc::task_controller_client::TaskControllerClient::new(channel(&party.task_controller));
        for job_id in &jobs {
            let rows = tasks_of(&mut tasks, job_id).await.expect("list tasks");
            assert_eq!(
                rows.len(),
                4,
                "one attempt per task, party {}: {rows:?}",
                party.party_id
            );
            assert!(
                rows.iter()
                    .all(|t| task_status(t.party_status) == TaskStatus::Success),
                "party {}: {rows:?}",
                party.party_id
            );
        }
    }
    let output = task_output(&mut scheduler, &jobs[0], "d", ("host", SKEWED)).await;
    assert_eq!(output.output_json, r#"{"value":11}"#);
    let statuses = fed
        .check_invariants("9999", &jobs, Duration::from_secs(60))
        .await;
    assert!(
        statuses
            .values()
            .all(|s| *s == fedflow_core::JobStatus::Success),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_succeed_with_one_party_90_s_ahead() {
    diamonds_succeed("+90s", 90_000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn jobs_succeed_with_one_party_90_s_behind() {
    diamonds_succeed("-90s", -90_000).await;
}

/// Party 10000 `offset` off, beyond the tolerance: a job with it fails (or is refused at
/// submission) with the clock-skew error, not hanging; a job of the two other parties,
/// submitted at the same time, succeeds; the invariants hold.
async fn beyond_tolerance_fails_with_clock_skew(offset: &str) {
    let Some(env) = skew_env(offset) else { return };
    let fed = skewed_federation(env).await;
    let mut scheduler = fed.scheduler("9999");
    let with_skewed = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"nap": {"seconds": 0}}}),
    );
    let dsl = json!({"components": {"nap": {"module": "Sleep"}}});
    let others = json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": 9999},
        "role": {"guest": [9999], "host": [10001]},
        "job_parameters": {"common": {"task_cores": 1}},
        "component_parameters": {"common": {"nap": {"seconds": 0}}}
    });
    let mut ended = Vec::new();
    let skewed_job = match submit(&mut scheduler, &dsl, &with_skewed).await {
        Ok(job_id) => {
            let job = wait_ended(&mut scheduler, &job_id, Duration::from_secs(120)).await;
            assert_eq!(
                job_status(job.status),
                JobStatus::Failed,
                "a job with party {SKEWED} {offset} off: {job:?}\n{}",
                fed.logs()
            );
            assert!(
                job.reason.contains("clock skew"),
                "the job's reason names the clock skew: {:?}",
                job.reason
            );
            ended.push(job_id.clone());
            Some(job_id)
        }
        Err(status) => {
            assert!(
                status.message().contains("clock skew"),
                "a refused submission names the clock skew: {status:?}"
            );
            eprintln!(
                "submission refused: {:?}: {}",
                status.code(),
                status.message()
            );
            None
        }
    };
    let job_id = submit(&mut scheduler, &dsl, &others)
        .await
        .unwrap_or_else(|s| panic!("a job of 9999 and 10001: {s:?}\n{}", fed.logs()));
    let job = wait_ended(&mut scheduler, &job_id, Duration::from_secs(60)).await;
    assert_eq!(
        job_status(job.status),
        JobStatus::Success,
        "the other parties' job goes on: {job:?}"
    );
    ended.push(job_id);
    // Both clocks are in the refusal the skewed gateway or its peers logged.
    let refusal = eventually(
        "a clock-skew refusal in the logs",
        Duration::from_secs(30),
        || {
            let logs = all_logs(&fed);
            async move {
                logs.lines()
                    .find(|l| l.contains("clock skew:") && l.contains("this gateway's clock"))
                    .map(str::to_owned)
                    .ok_or_else(|| "none yet".to_owned())
            }
        },
    )
    .await;
    assert!(refusal.contains("tolerance is 120000 ms"), "{refusal}");
    // The invariants over the parties of the jobs that exist (a refused submission left none
    // with party 10000).
    let parties: &[&str] = if skewed_job.is_some() {
        &["9999", "10000", "10001"]
    } else {
        &["9999", "10001"]
    };
    let statuses = fedflow_tests::invariants::check(&fedflow_tests::invariants::Scope {
        root: fed.dir.path(),
        parties,
        initiator: "9999",
        jobs: &ended,
        within: Duration::from_secs(60),
    })
    .await;
    if let Some(job_id) = skewed_job {
        assert_eq!(statuses[&job_id], fedflow_core::JobStatus::Failed);
    }
}

/// Every log line of every process.
fn all_logs(fed: &ProcessFederation) -> String {
    let mut out = String::new();
    for party in &fed.parties {
        let pdir = fed.dir.path().join(&party.party_id);
        for entry in std::fs::read_dir(&pdir).into_iter().flatten().flatten() {
            if entry.path().extension().is_some_and(|e| e == "log") {
                out.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_party_10_min_ahead_is_refused_as_clock_skew() {
    beyond_tolerance_fails_with_clock_skew("+10m").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_party_10_min_behind_is_refused_as_clock_skew() {
    beyond_tolerance_fails_with_clock_skew("-10m").await;
}
