//! Workload 8 (only with `--only fate`; needs `FEDFLOW_FATE_PYTHON`, the python of a venv
//! holding pyfate 2.2, as `scripts/setup-fate.sh` prints it): the README's FATE demo job,
//! FATE's reader → psi → coordinated_lr → evaluation on the breast data across guest 9999 and
//! host/arbiter 10000, a process per service. For each task: its time as the scheduler saw it
//! (start to its last party's end) beside its longest party's pyfate process time (what the
//! worker measured around `component execute`); the difference is fedflow's overhead on the
//! task. The floor of the whole job is the sum of those pyfate times: the same pipeline with
//! pyfate's processes started back to back and nothing else.

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

/// The longest pyfate process time of `component` among its parties' attempts of `version`.
fn pyfate_ms(dir: &Path, job_id: &str, component: &str, version: i32) -> f64 {
    let mut longest = 0.0_f64;
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
        let ms = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .and_then(|v| v["pyfate_ms"].as_f64())
            .unwrap_or(0.0);
        longest = longest.max(ms);
    }
    longest
}

pub(super) async fn run(_args: &Args, r: &mut Results) {
    let python = std::env::var("FEDFLOW_FATE_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .expect("--only fate needs FEDFLOW_FATE_PYTHON (scripts/setup-fate.sh prints it)");
    eprintln!("fedflow-bench: the FATE demo job (reader -> psi -> coordinated_lr -> evaluation)");
    let fed = ProcessFederation::start_with(
        &["9999", "10000"],
        ProcessOptions {
            log: "warn",
            env: vec![("FEDFLOW_TASK_CONTROLLER__FATE__PYTHON".into(), python)],
            ..ProcessOptions::default()
        },
    )
    .await;
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
    r.values.insert("fate.job.wall_s".into(), wall);
    r.values.insert("fate.job.floor_s".into(), floor / 1e3);
    r.row(
        "FATE demo job, submit -> success (floor: pyfate's processes back to back)",
        "-",
        format!("{wall:.1} s (floor {:.1} s)", floor / 1e3),
        "97.8-110.4 s",
        None,
    );
}
