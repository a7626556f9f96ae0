//! Workload 8 (only with `--only fate`; needs `FEDFLOW_FATE_PYTHON`, the python of a venv
//! holding pyfate 2.2, as `scripts/setup-fate.sh` prints it): the README's FATE demo job,
//! FATE's reader → psi → coordinated_lr → evaluation on the breast data across guest 9999 and
//! host/arbiter 10000, a process per service. For each task: its time as the scheduler saw it
//! (start to its last party's end) beside its longest party's pyfate process time (what the
//! worker measured around `component execute`); the difference is fedflow's overhead on the
//! task. The floor of the whole job is the sum of those pyfate times: the same pipeline with
//! pyfate's processes started back to back and nothing else.
//!
//! Each task's "StartTask → pyfate computing" (its slowest party: from the `StartTask` its
//! task-controller took to the moment the component's code began, after pyfate's imports, as
//! the worker recorded it in `fate/timing.json`) is shown for a run with the warm pool (two
//! interpreters a party, all ready before the job) and, with `FEDFLOW_BENCH_FATE_COLD=1`,
//! for a cold run too.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fedflow_proto::common::v1::JobStatus;
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use serde_json::Value;

use crate::Args;
use crate::measure::Results;

const TASKS: [&str; 4] = ["reader_0", "psi_0", "lr_0", "evaluation_0"];

fn fedflow(scheduler: &str, args: &[&str]) -> String {
    let out = Command::new(fedflow_tests::bin("fedflow"))
        .arg("--scheduler")
        .arg(scheduler)
        .args(args)
        .output()
        .expect("run the fedflow CLI");
    assert!(
        out.status.success(),
        "fedflow {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The parties' `fate/timing.json` of `component`'s attempts of `version`.
fn timings(dir: &Path, job_id: &str, component: &str, version: i32) -> Vec<Value> {
    let mut found = Vec::new();
    for (party, role) in [("9999", "guest"), ("10000", "host"), ("10000", "arbiter")] {
        let path: PathBuf = dir
            .join(party)
            .join("jobs")
            .join(job_id)
            .join(role)
            .join(party)
            .join(component)
            .join(version.to_string())
            .join("fate/timing.json");
        if let Some(v) = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
        {
            found.push(v);
        }
    }
    found
}

/// The longest pyfate process time of `component` among its parties' attempts of `version`.
fn pyfate_ms(dir: &Path, job_id: &str, component: &str, version: i32) -> f64 {
    timings(dir, job_id, component, version)
        .iter()
        .filter_map(|v| v["pyfate_ms"].as_f64())
        .fold(0.0, f64::max)
}

/// The slowest party's StartTask → computing of `component`, and whether every party's
/// attempt started warm.
fn start_to_computing(dir: &Path, job_id: &str, component: &str, version: i32) -> (f64, bool) {
    let all = timings(dir, job_id, component, version);
    let ms = all
        .iter()
        .filter_map(|v| v["start_to_computing_ms"].as_f64())
        .fold(0.0, f64::max);
    let warm = !all.is_empty() && all.iter().all(|v| v["warm"] == true);
    (ms, warm)
}

/// Waits until each party's pool has `n` interpreters listening.
async fn pools_ready(dir: &Path, n: usize) {
    for party in ["9999", "10000"] {
        let pool = dir.join(party).join("fate-pool");
        fedflow_tests::eventually(
            &format!("{n} warm interpreters on {party}"),
            Duration::from_secs(600),
            || async {
                let ready = std::fs::read_dir(&pool)
                    .map(|d| {
                        d.flatten()
                            .filter(|e| e.path().extension().is_some_and(|x| x == "sock"))
                            .count()
                    })
                    .unwrap_or(0);
                if ready >= n {
                    Ok(())
                } else {
                    Err(format!("{ready} ready in {}", pool.display()))
                }
            },
        )
        .await;
    }
}

/// Warm interpreters a party in the warm run: the demo's most concurrent party task count
/// (host and arbiter of the LR on 10000), the rest refilled between tasks.
const WARM_POOL: usize = 2;

pub(super) async fn run(_args: &Args, r: &mut Results) {
    let python = std::env::var("FEDFLOW_FATE_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .expect("--only fate needs FEDFLOW_FATE_PYTHON (scripts/setup-fate.sh prints it)");
    run_one(&python, WARM_POOL, r).await;
    if std::env::var("FEDFLOW_BENCH_FATE_COLD").is_ok_and(|v| v == "1") {
        run_one(&python, 0, r).await;
    }
}

async fn run_one(python: &str, warm_pool: usize, r: &mut Results) {
    let mode = if warm_pool > 0 { "warm" } else { "cold" };
    eprintln!(
        "fedflow-bench: the FATE demo job (reader -> psi -> coordinated_lr -> evaluation), {mode}"
    );
    let fed = ProcessFederation::start_with(
        &["9999", "10000"],
        ProcessOptions {
            log: "warn",
            env: vec![
                (
                    "FEDFLOW_TASK_CONTROLLER__FATE__PYTHON".into(),
                    python.to_owned(),
                ),
                (
                    "FEDFLOW_TASK_CONTROLLER__FATE__WARM_POOL".into(),
                    warm_pool.to_string(),
                ),
            ],
            ..ProcessOptions::default()
        },
    )
    .await;
    if warm_pool > 0 {
        pools_ready(fed.dir.path(), warm_pool).await;
    }
    let guest = fed.party("9999").scheduler.clone();
    fedflow(
        &guest,
        &["data", "upload", "-c", "examples/fate-lr/upload_guest.json"],
    );
    fedflow(
        &fed.party("10000").scheduler,
        &["data", "upload", "-c", "examples/fate-lr/upload_host.json"],
    );
    let started = Instant::now();
    let answer = fedflow(
        &guest,
        &[
            "--json",
            "job",
            "submit",
            "-c",
            "examples/fate-lr/train.yaml",
        ],
    );
    let job_id = serde_json::from_str::<Value>(&answer).expect("a JSON answer")["job_id"]
        .as_str()
        .expect("a job id")
        .to_owned();
    let mut client = fed.scheduler("9999");
    let job = fedflow_tests::wait_ended(&mut client, &job_id, Duration::from_secs(1800)).await;
    let wall = started.elapsed().as_secs_f64();
    assert_eq!(
        job.status,
        JobStatus::Success as i32,
        "the FATE demo job failed: {}",
        job.reason
    );
    let tasks = fedflow_tests::scheduler_tasks(&mut client, &job_id).await;
    let mut floor = 0.0;
    for name in TASKS {
        let Some(task) = tasks
            .iter()
            .filter(|t| t.component == name)
            .max_by_key(|t| t.version)
        else {
            continue;
        };
        let task_ms = (task.end_time_ms - task.start_time_ms) as f64;
        let pyfate = pyfate_ms(fed.dir.path(), &job_id, name, task.version);
        let (to_computing, all_warm) =
            start_to_computing(fed.dir.path(), &job_id, name, task.version);
        r.values.insert(
            format!("fate.{mode}.{name}.start_to_computing_ms"),
            to_computing,
        );
        r.row(
            &format!("FATE demo ({mode}), {name}: StartTask -> pyfate computing"),
            if name == "psi_0" { "<= 300 ms" } else { "-" },
            format!(
                "{to_computing:.0} ms ({})",
                if all_warm { "warm" } else { "not all warm" }
            ),
            "-",
            (name == "psi_0").then_some(to_computing <= 300.0),
        );
        if warm_pool == 0 {
            continue;
        }
        floor += pyfate;
        let overhead = task_ms - pyfate;
        r.values.insert(format!("fate.{name}.task_ms"), task_ms);
        r.values.insert(format!("fate.{name}.pyfate_ms"), pyfate);
        r.values
            .insert(format!("fate.{name}.overhead_ms"), overhead);
        r.row(
            &format!("FATE demo, {name}: task time (pyfate's process; fedflow's overhead)"),
            "<= 500 ms overhead",
            format!(
                "{:.2} s ({:.2} s; {overhead:.0} ms)",
                task_ms / 1e3,
                pyfate / 1e3
            ),
            "-",
            Some(overhead <= 500.0),
        );
    }
    r.values.insert(format!("fate.{mode}.job.wall_s"), wall);
    if warm_pool == 0 {
        r.row(
            "FATE demo job (cold), submit -> success",
            "-",
            format!("{wall:.1} s"),
            "97.8-110.4 s",
            None,
        );
        return;
    }
    r.values.insert("fate.job.wall_s".into(), wall);
    r.values.insert("fate.job.floor_s".into(), floor / 1e3);
    r.row(
        "FATE demo job (warm), submit -> success (floor: pyfate's processes back to back)",
        "-",
        format!("{wall:.1} s (floor {:.1} s)", floor / 1e3),
        "97.8-110.4 s",
        None,
    );
}
