//! Parties on different versions run jobs together: one party runs the previous landed
//! version's binaries (the commit in `tests/compat/previous`, built by
//! `scripts/build-previous.sh`), the others this build's. A federation is upgraded one party at
//! a time, so every version must schedule, run and stop jobs with the one before it, as the
//! initiator and as a participant, over the data plane as well as the control plane.
//!
//! The previous version's binaries come from `FEDFLOW_PREVIOUS_BIN` or, failing that, from
//! where `scripts/build-previous.sh` puts them. Without them the tests say so and pass, unless
//! `FEDFLOW_REQUIRE_TOOLS` is set (CI builds them).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use fedflow_core::JobStatus;
use fedflow_proto::common::v1::JobStatus as WireStatus;
use fedflow_proto::scheduler::v1 as sc;
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use fedflow_tests::*;
use serde_json::{Value, json};

const WITHIN: Duration = Duration::from_secs(90);

/// The directory of the previous version's binaries, or why there is none.
fn previous_bin() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os("FEDFLOW_PREVIOUS_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace root")
        .to_path_buf();
    let recorded = std::fs::read_to_string(root.join("tests/compat/previous"))
        .map_err(|e| format!("cannot read tests/compat/previous: {e}"))?;
    let commit = recorded
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#'))
        .ok_or("tests/compat/previous names no commit")?
        .to_owned();
    let dir = root.join("target/previous").join(&commit).join("bin");
    if dir.join("fedflow-scheduler").exists() {
        Ok(dir)
    } else {
        Err(format!(
            "the previous version ({commit}) is not built: run scripts/build-previous.sh"
        ))
    }
}

/// A 3-party federation in which `old` runs the previous version; `None` (after saying why)
/// when that version is not built and CI does not require it.
async fn federation(old: &str) -> Option<ProcessFederation> {
    let dir = match previous_bin() {
        Ok(dir) => dir,
        Err(why) => {
            assert!(
                std::env::var_os("FEDFLOW_REQUIRE_TOOLS").is_none(),
                "no previous version and FEDFLOW_REQUIRE_TOOLS is set: {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        }
    };
    let options = ProcessOptions {
        binaries: BTreeMap::from([(old.to_owned(), dir)]),
        ..ProcessOptions::default()
    };
    Some(ProcessFederation::start_with(&["9999", "10000", "10001"], options).await)
}

fn diamond_conf() -> Value {
    conf3(
        json!({"common": {"task_cores": 1, "task_parallelism": 2}}),
        json!({"common": {"a": {"value": 1}, "b": {"value": 2}, "c": {"value": 3}, "d": {"value": 4}}}),
    )
}

async fn output(
    scheduler: &mut sc::scheduler_client::SchedulerClient<tonic::transport::Channel>,
    job_id: &str,
    component: &str,
    who: (&str, &str),
) -> Value {
    let reply = task_output(scheduler, job_id, component, who).await;
    serde_json::from_str(&reply.output_json).expect("a JSON output")
}

/// Runs, on a federation with one party on the previous version: two diamonds (the DAG's
/// edges, outputs handed downstream on every party), a `Gather` (every party's value through
/// the gateways' data plane to the guest) and a job stopped while its tasks run; then the
/// crash tests' invariants over every party's store.
async fn jobs_run_across_versions(fed: &ProcessFederation) {
    let mut scheduler = fed.scheduler("9999");
    let mut jobs = Vec::new();
    for _ in 0..2 {
        let (job_id, _) =
            run_to_success(&mut scheduler, &diamond_dsl(), &diamond_conf(), WITHIN).await;
        assert_eq!(
            output(&mut scheduler, &job_id, "d", ("host", "10000")).await,
            json!({"value": 11}),
            "{}",
            fed.logs()
        );
        jobs.push(job_id);
    }

    let (dsl, conf) = gather_job();
    let (job_id, _) = run_to_success(&mut scheduler, &dsl, &conf, WITHIN).await;
    assert_eq!(
        output(&mut scheduler, &job_id, "gather", ("guest", "9999")).await,
        json!({"value": 975, "parties": 3}),
        "every party's value crossed the gateways\n{}",
        fed.logs()
    );
    jobs.push(job_id);

    let dsl = json!({"components": {"nap": {"module": "Sleep"}}});
    let conf = conf3(
        json!({"common": {"task_cores": 1}}),
        json!({"common": {"nap": {"seconds": 60}}}),
    );
    let stopped = submit(&mut scheduler, &dsl, &conf)
        .await
        .unwrap_or_else(|s| panic!("submit: {s:?}\n{}", fed.logs()));
    eventually("the sleeping job to run", WITHIN, || {
        let mut scheduler = scheduler.clone();
        let job_id = stopped.clone();
        async move {
            let job = get_job(&mut scheduler, &job_id)
                .await
                .map_err(|e| e.to_string())?;
            if job_status(job.status) == WireStatus::Running {
                Ok(())
            } else {
                Err(format!("{job:?}"))
            }
        }
    })
    .await;
    scheduler
        .stop_job(sc::StopJobRequest {
            job_id: stopped.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|s| panic!("stop: {s:?}\n{}", fed.logs()));
    let ended = wait_ended(&mut scheduler, &stopped, WITHIN).await;
    assert_eq!(
        job_status(ended.status),
        WireStatus::Canceled,
        "{ended:?}\n{}",
        fed.logs()
    );
    jobs.push(stopped.clone());

    let statuses = fed.check_invariants("9999", &jobs, WITHIN).await;
    for (job, status) in statuses {
        let want = if job == stopped {
            JobStatus::Canceled
        } else {
            JobStatus::Success
        };
        assert_eq!(status, want, "{job}\n{}", fed.logs());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_host_on_the_previous_version_runs_jobs_scheduled_by_this_one() {
    let Some(fed) = federation("10000").await else {
        return;
    };
    jobs_run_across_versions(&fed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_initiator_on_the_previous_version_schedules_jobs_that_this_one_runs() {
    let Some(fed) = federation("9999").await else {
        return;
    };
    jobs_run_across_versions(&fed).await;
}
