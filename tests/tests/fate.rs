//! FATE 2.x jobs with FATE's own components (pyfate 2.2), end to end and driven through the
//! `fedflow` CLI like a FATE user: FATE-Flow upload confs on guest 9999 and host 10000,
//! `fedflow job submit -c dag.yaml`, FATE's reader → psi → coordinated_lr → evaluation across
//! the parties' gateways (the OSX data plane), and the results pyfate gives when run directly.
//!
//! These tests need pyfate: the python named by `FEDFLOW_FATE_PYTHON`, else the venv
//! `scripts/setup-fate.sh` makes (a cold install takes about 8 minutes). Where that venv
//! cannot be made, each test prints why and returns without running.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use fedflow_proto::common::v1::JobStatus;
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use fedflow_tests::*;
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// pyfate's python, or why there is none.
fn fate_python() -> Result<PathBuf, String> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            if let Some(python) = std::env::var_os("FEDFLOW_FATE_PYTHON").filter(|p| !p.is_empty())
            {
                let python = PathBuf::from(python);
                return if python.is_file() {
                    Ok(python)
                } else {
                    Err(format!(
                        "FEDFLOW_FATE_PYTHON={} is not a file",
                        python.display()
                    ))
                };
            }
            let out = Command::new("bash")
                .arg(repo().join("scripts/setup-fate.sh"))
                .output()
                .map_err(|e| format!("cannot run scripts/setup-fate.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "scripts/setup-fate.sh failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            let stdout = String::from_utf8_lossy(&out.stdout);
            let last = stdout.lines().last().unwrap_or_default().trim().to_owned();
            Ok(PathBuf::from(last))
        })
        .clone()
}

/// The federation with pyfate on both parties, or None (printed) without pyfate.
async fn start(test: &str) -> Option<TestFederation> {
    start_warm(test, None).await
}

/// [`start`] with `warm_pool` warm interpreters per party (None: the default), all of them
/// ready before the tables are uploaded.
async fn start_warm(test: &str, warm_pool: Option<u32>) -> Option<TestFederation> {
    let python = match fate_python() {
        Ok(python) => python,
        Err(why) => {
            eprintln!("SKIPPED {test}: pyfate 2.2 is not available here: {why}");
            return None;
        }
    };
    let fed = TestFederation::start_with(&["9999", "10000"], |o| {
        o.fate_python = python;
        if let Some(n) = warm_pool {
            o.fate_warm_pool = n;
        }
    })
    .await;
    if let Some(n) = warm_pool {
        for party in ["9999", "10000"] {
            pool_ready(&fed, party, n as usize).await;
        }
    }
    for (party, conf) in UPLOADS {
        cli_ok(&fed, party, &["data", "upload", "-c", conf]);
    }
    Some(fed)
}

/// Runs the CLI against the scheduler at `scheduler` from the repository's root: (success,
/// stdout, stderr).
fn cli_at(scheduler: &str, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("fedflow"))
        .current_dir(repo())
        .arg("--scheduler")
        .arg(scheduler)
        .args(args)
        .output()
        .expect("run the fedflow CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn cli(fed: &TestFederation, party: &str, args: &[&str]) -> (bool, String, String) {
    cli_at(&fed.scheduler_addr(party), args)
}

fn cli_ok_at(scheduler: &str, args: &[&str]) -> String {
    let (ok, out, err) = cli_at(scheduler, args);
    assert!(ok, "fedflow {args:?} at {scheduler} failed: {out}\n{err}");
    out
}

fn cli_ok(fed: &TestFederation, party: &str, args: &[&str]) -> String {
    cli_ok_at(&fed.scheduler_addr(party), args)
}

fn cli_json_at(scheduler: &str, args: &[&str]) -> Value {
    let mut full = vec!["--json"];
    full.extend_from_slice(args);
    let out = cli_ok_at(scheduler, &full);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("fedflow {args:?}: not JSON ({e}): {out}"))
}

fn cli_json(fed: &TestFederation, party: &str, args: &[&str]) -> Value {
    cli_json_at(&fed.scheduler_addr(party), args)
}

/// FATE-Flow upload confs for the breast data, by party.
const UPLOADS: [(&str, &str); 2] = [
    ("9999", "examples/fate-lr/upload_guest.json"),
    ("10000", "examples/fate-lr/upload_host.json"),
];

/// Submits a FATE 2.x DAG file (YAML) as a user does; returns the job id.
fn submit_dag(fed: &TestFederation, path: &Path) -> String {
    submit_dag_at(&fed.scheduler_addr("9999"), path)
}

fn submit_dag_at(scheduler: &str, path: &Path) -> String {
    let path = path.display().to_string();
    let answer = cli_json_at(scheduler, &["job", "submit", "-c", &path]);
    answer["job_id"]
        .as_str()
        .unwrap_or_else(|| panic!("no job_id in {answer}"))
        .to_owned()
}

/// The evaluation's AUC and KS in `fedflow output metric`'s JSON.
fn auc_and_ks(metrics: &Value) -> (f64, f64) {
    let mut found = Vec::new();
    metric_values(metrics, &mut found);
    let value = |name: &str| {
        found
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("no {name} in the evaluation's metrics: {metrics}"))
    };
    (value("auc"), value("ks"))
}

/// Every `{metric, val}` entry under `value`, whatever its value (curves and tables too).
fn metric_entries(value: &Value, found: &mut Vec<(String, Value)>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(name)), Some(val)) = (map.get("metric"), map.get("val")) {
                found.push((name.clone(), val.clone()));
            }
            map.values().for_each(|v| metric_entries(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| metric_entries(v, found)),
        _ => {}
    }
}

/// Every `{metric, val}` pair under `value` (metric files nest them in groups and lists).
fn metric_values(value: &Value, found: &mut Vec<(String, f64)>) {
    match value {
        Value::Object(map) => {
            if let (Some(Value::String(name)), Some(val)) = (map.get("metric"), map.get("val"))
                && let Some(val) = val.as_f64()
            {
                found.push((name.clone(), val));
            }
            map.values().for_each(|v| metric_values(v, found));
        }
        Value::Array(items) => items.iter().for_each(|v| metric_values(v, found)),
        Value::String(text) if text.starts_with(['[', '{']) => {
            if let Ok(inner) = serde_json::from_str::<Value>(text) {
                metric_values(&inner, found);
            }
        }
        _ => {}
    }
}

/// Waits until the job ends and asserts it succeeded, naming it `what` otherwise.
async fn wait_success(
    scheduler: &mut fedflow_proto::scheduler::v1::scheduler_client::SchedulerClient<
        tonic::transport::Channel,
    >,
    job_id: &str,
    within: Duration,
    what: &str,
) {
    let job = wait_ended(scheduler, job_id, within).await;
    assert_eq!(
        job_status(job.status),
        JobStatus::Success,
        "{what} ended {:?}: {}",
        job_status(job.status),
        job.reason
    );
}

/// psi_0's output on guest and host holds all 569 ids, and its overview no rows.
fn psi_intersected_every_id(fed: &TestFederation, job_id: &str) {
    for party in ["9999", "10000"] {
        let outputs = cli_json(fed, party, &["output", "list", "-j", job_id, "-c", "psi_0"]);
        let data = outputs
            .as_array()
            .and_then(|a| a.iter().find(|o| o["key"] == "psi_0.output_data"))
            .unwrap_or_else(|| panic!("no psi_0.output_data on {party}: {outputs}"));
        assert_eq!(data["overview"]["count"], 569, "psi on {party}: {data}");
        assert!(
            data["overview"].get("samples").is_none(),
            "an overview never carries rows: {data}"
        );
    }
}

/// Waits until no process mentions the job (workers, pyfate and its pool).
async fn no_process_of(job_id: &str, within: Duration) {
    eventually(
        &format!("every process of job {job_id} to end"),
        within,
        || async {
            let left = processes_mentioning(job_id);
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("still running: {left:?}"))
            }
        },
    )
    .await;
}

/// A party's warm pool directory.
fn pool_dir(fed: &TestFederation, party: &str) -> PathBuf {
    fed.dir
        .path()
        .canonicalize()
        .expect("the federation's directory")
        .join(party)
        .join("fate-pool")
}

/// A live warm-pool process of `party`: pid, process group, working directory.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PoolProcess {
    pid: u32,
    pgrp: u32,
    cwd: PathBuf,
}

/// Every live process running `party`'s pool runner (only this test's: the path is under
/// its own temporary directory).
fn pool_processes(fed: &TestFederation, party: &str) -> Vec<PoolProcess> {
    let runner = pool_dir(fed, party).join("fate_runner.py");
    processes_mentioning(&runner.display().to_string())
        .into_iter()
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let rest = &stat[stat.rfind(')')? + 2..];
            let pgrp = rest.split_whitespace().nth(2)?.parse().ok()?;
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?;
            Some(PoolProcess { pid, pgrp, cwd })
        })
        .collect()
}

/// Waits until `party`'s pool has `n` interpreters ready (each listens on its socket).
async fn pool_ready(fed: &TestFederation, party: &str, n: usize) {
    let dir = pool_dir(fed, party);
    eventually(
        &format!("{n} warm interpreters ready on {party}"),
        Duration::from_secs(300),
        || async {
            let sockets = std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().extension().is_some_and(|x| x == "sock"))
                        .count()
                })
                .unwrap_or(0);
            if sockets >= n {
                Ok(())
            } else {
                Err(format!(
                    "{sockets} sockets in {}; pool processes {:?}",
                    dir.display(),
                    pool_processes(fed, party)
                ))
            }
        },
    )
    .await;
}

/// `fate/timing.json` of every attempt of the job on every party, by task directory.
fn timings(fed: &TestFederation, job_id: &str) -> Vec<(PathBuf, Value)> {
    let mut found = Vec::new();
    for party in ["9999", "10000"] {
        let root = fed.dir.path().join(party).join("jobs").join(job_id);
        let mut stack = vec![root];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.ends_with("fate/timing.json") {
                    let value = serde_json::from_slice(&std::fs::read(&path).unwrap_or_default())
                        .unwrap_or(Value::Null);
                    found.push((path, value));
                } else if path.is_dir() {
                    stack.push(path);
                }
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fates_lr_pipeline_gives_fates_auc_and_ks_and_psi_intersects_every_id() {
    // Four warm interpreters a party, all ready: every task of the job (four a party)
    // starts warm; the AUC and KS are those pyfate gives when started cold.
    let Some(fed) = start_warm("fates_lr_pipeline", Some(4)).await else {
        return;
    };
    let job_id = submit_dag(&fed, &repo().join("examples/fate-lr/train.yaml"));
    // Live metrics: the arbiter's loss per epoch shows while the LR runs (on party 10000).
    let live = eventually(
        "lr_0's loss while it runs",
        Duration::from_secs(900),
        || async {
            let args = ["--json", "output", "metric", "-j", &job_id, "-c", "lr_0"];
            let (ok, out, err) = cli(&fed, "10000", &args);
            let parsed: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
            let losses = parsed.as_array().map_or(0, |records| {
                records
                    .iter()
                    .filter(|r| r.to_string().contains("lr_loss"))
                    .count()
            });
            // Fewer than the 10 epochs: read while the LR runs, not after it.
            if ok && losses > 0 && losses < 10 {
                Ok(parsed)
            } else {
                Err(format!("{out}{err}"))
            }
        },
    )
    .await;
    eprintln!("lr_0's loss read while it ran: {live}");
    wait_success(
        &mut fed.scheduler("9999"),
        &job_id,
        Duration::from_secs(1200),
        "the job",
    )
    .await;
    // psi intersected all 569 ids, on both sides.
    psi_intersected_every_id(&fed, &job_id);
    // The evaluation's AUC and KS are those pyfate gives when run directly.
    let metrics = cli_json(
        &fed,
        "9999",
        &["output", "metric", "-j", &job_id, "-c", "evaluation_0"],
    );
    let (auc, ks) = auc_and_ks(&metrics);
    eprintln!("evaluation_0: AUC {auc} KS {ks}");
    assert!(
        (auc - 0.99236).abs() <= 1e-5,
        "AUC {auc}, pyfate gives 0.99236"
    );
    assert!(
        (ks - 0.92762).abs() <= 1e-5,
        "KS {ks}, pyfate gives 0.92762"
    );
    no_process_of(&job_id, Duration::from_secs(5)).await;
    // Every task ran in a warm interpreter, and says how long StartTask took to computing.
    let timed = timings(&fed, &job_id);
    assert!(
        timed.len() >= 8,
        "four tasks on each party have timings: {timed:?}"
    );
    for (path, timing) in &timed {
        eprintln!("{}: {timing}", path.display());
        assert_eq!(timing["warm"], true, "{}: {timing}", path.display());
        assert!(
            timing["start_to_computing_ms"]
                .as_i64()
                .is_some_and(|ms| ms >= 0),
            "{}: {timing}",
            path.display()
        );
    }

    // The trained model, as FATE users list and export it.
    let models = cli_json(&fed, "9999", &["model", "list", "-j", &job_id]);
    assert!(
        models
            .as_array()
            .is_some_and(|m| m.iter().any(|x| x["component"] == "lr_0"
                && x["output_key"] == "output_model"
                && x["type_name"] == "json_model")),
        "lr_0's model is listed: {models}"
    );
    let export_dir = fed.dir.path().join("exported");
    let export_conf = fed.dir.path().join("export.json");
    std::fs::write(
        &export_conf,
        serde_json::json!({"model_id": job_id, "model_version": "0", "role": "guest",
                           "party_id": "9999", "path": export_dir.display().to_string()})
        .to_string(),
    )
    .expect("write the export conf");
    cli_ok(
        &fed,
        "9999",
        &["model", "export", "-c", &export_conf.display().to_string()],
    );
    let model: Value = serde_json::from_slice(
        &std::fs::read(export_dir.join("guest/9999/lr_0/output_model/json_model"))
            .expect("the exported model file"),
    )
    .expect("the model is JSON");
    assert!(
        model.to_string().contains("coef"),
        "an LR model holds its coefficients: {model}"
    );
    let manifest: Value =
        serde_json::from_slice(&std::fs::read(export_dir.join("manifest.json")).expect("manifest"))
            .expect("the manifest is JSON");
    assert_eq!(manifest["model_id"], job_id.as_str());

    // Predict with the trained model (model_warehouse: the training job's lr_0) on the same
    // data: the scores are the training run's, so the evaluation of them is the same, to
    // every threshold of its curves (the thresholds are the scores).
    let predict = std::fs::read_to_string(repo().join("examples/fate-lr/predict.yaml"))
        .expect("read the predict DAG")
        .replace("TRAINING_JOB_ID", &job_id);
    let path = fed.dir.path().join("predict.yaml");
    std::fs::write(&path, predict).expect("write the predict DAG");
    let predict_id = submit_dag(&fed, &path);
    wait_success(
        &mut fed.scheduler("9999"),
        &predict_id,
        Duration::from_secs(900),
        "the predict job",
    )
    .await;
    let predicted = cli_json(
        &fed,
        "9999",
        &["output", "metric", "-j", &predict_id, "-c", "evaluation_0"],
    );
    let (mut trained_entries, mut predicted_entries) = (Vec::new(), Vec::new());
    metric_entries(&metrics, &mut trained_entries);
    metric_entries(&predicted, &mut predicted_entries);
    assert!(
        trained_entries.len() >= 2,
        "the training run's evaluation has metrics: {metrics}"
    );
    assert_eq!(
        predicted_entries, trained_entries,
        "the predict run's evaluation is the training run's"
    );
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bad_parameter_fails_the_job_with_pyfates_reason_and_leaves_no_process() {
    let Some(fed) = start("a_bad_parameter").await else {
        return;
    };
    // psi with a curve pyfate does not have, on the guest only: the host's psi is left waiting
    // for its peer in a pop, and must be stopped when the guest's fails.
    let dag = std::fs::read_to_string(repo().join("examples/fate-lr/train.yaml"))
        .expect("read the example DAG");
    let dag = dag.replace(
        "parameters: {name: breast_hetero_guest, namespace: experiment}",
        "parameters: {name: breast_hetero_guest, namespace: experiment}\n        psi_0:\n          parameters: {curve_type: no_such_curve}",
    );
    assert!(dag.contains("no_such_curve"), "the override went in");
    let path = fed.dir.path().join("bad_psi.yaml");
    std::fs::write(&path, dag).expect("write the DAG");
    let job_id = submit_dag(&fed, &path);
    let job = wait_ended(
        &mut fed.scheduler("9999"),
        &job_id,
        Duration::from_secs(600),
    )
    .await;
    assert_eq!(job_status(job.status), JobStatus::Failed, "{}", job.reason);
    assert!(
        job.reason.contains("no_such_curve") || job.reason.contains("curve"),
        "the reason is pyfate's error: {}",
        job.reason
    );
    assert!(
        !job.reason.contains("Traceback"),
        "the reason is the error's line, not the traceback: {}",
        job.reason
    );
    no_process_of(&job_id, Duration::from_secs(5)).await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_hosts_gateway_killed_in_the_middle_of_the_lr_and_restarted_the_job_still_succeeds() {
    let python = match fate_python() {
        Ok(python) => python,
        Err(why) => {
            eprintln!("SKIPPED the_hosts_gateway_killed: pyfate 2.2 is not available here: {why}");
            return;
        }
    };
    let mut fed = ProcessFederation::start_with(
        &["9999", "10000"],
        ProcessOptions {
            env: vec![(
                "FEDFLOW_TASK_CONTROLLER__FATE__PYTHON".into(),
                python.display().to_string(),
            )],
            ..ProcessOptions::default()
        },
    )
    .await;
    for (party, conf) in UPLOADS {
        cli_ok_at(&fed.party(party).scheduler, &["data", "upload", "-c", conf]);
    }
    let guest = fed.party("9999").scheduler.clone();
    let job_id = submit_dag_at(&guest, &repo().join("examples/fate-lr/train.yaml"));
    // In the middle of the LR: the guest has finished an epoch of it.
    let log = fed
        .dir
        .path()
        .join("9999/jobs")
        .join(&job_id)
        .join("guest/9999/lr_0/0/fate/logs/INFO");
    eventually(
        "the guest's LR to finish its second epoch",
        Duration::from_secs(900),
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("set epoch 2") {
                Ok(())
            } else {
                Err(format!("{} not there yet", log.display()))
            }
        },
    )
    .await;
    fed.kill("10000", "fedflow-party-gateway");
    fed.restart("10000", "fedflow-party-gateway").await;
    let job = wait_ended(
        &mut fed.scheduler("9999"),
        &job_id,
        Duration::from_secs(1200),
    )
    .await;
    assert_eq!(
        job_status(job.status),
        JobStatus::Success,
        "the job ended {:?}: {}\n{}",
        job_status(job.status),
        job.reason,
        fed.logs()
    );
    let lr = scheduler_tasks(&mut fed.scheduler("9999"), &job_id)
        .await
        .into_iter()
        .filter(|t| t.component == "lr_0")
        .map(|t| t.version)
        .max();
    eprintln!("lr_0 ended at version {lr:?} (0: pyfate's own retries rode out the restart)");
    let metrics = cli_json_at(
        &guest,
        &["output", "metric", "-j", &job_id, "-c", "evaluation_0"],
    );
    let (auc, ks) = auc_and_ks(&metrics);
    assert!((auc - 0.99236).abs() <= 1e-5, "AUC {auc}");
    assert!((ks - 0.92762).abs() <= 1e-5, "KS {ks}");
    no_process_of(&job_id, Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn psi_reads_each_partys_table_through_data_warehouse() {
    let Some(fed) = start("psi_reads_each_partys_table").await else {
        return;
    };
    // No reader: psi's input is each party's registered table (one source per party).
    let table = |name: &str, role: &str, party: &str| {
        serde_json::json!({"name": name, "namespace": "experiment",
                           "parties": [{"role": role, "party_id": [party]}]})
    };
    let dag = serde_json::json!({
        "schema_version": "2.1.0",
        "dag": {
            "parties": [{"role": "guest", "party_id": ["9999"]},
                        {"role": "host", "party_id": ["10000"]}],
            "tasks": {"psi_0": {
                "component_ref": "psi",
                "inputs": {"data": {"input_data": {"data_warehouse": [
                    table("breast_hetero_guest", "guest", "9999"),
                    table("breast_hetero_host", "host", "10000"),
                ]}}},
            }},
        },
    });
    let path = fed.dir.path().join("psi_tables.json");
    std::fs::write(&path, dag.to_string()).expect("write the DAG");
    let job_id = submit_dag(&fed, &path);
    wait_success(
        &mut fed.scheduler("9999"),
        &job_id,
        Duration::from_secs(600),
        "the job",
    )
    .await;
    psi_intersected_every_id(&fed, &job_id);
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stopped_job_leaves_no_interpreter_and_a_shut_down_party_no_pool() {
    let Some(fed) = start_warm("a_stopped_job_leaves_no_interpreter", Some(2)).await else {
        return;
    };
    let first: Vec<u32> = ["9999", "10000"]
        .iter()
        .flat_map(|p| pool_processes(&fed, p))
        .map(|p| p.pid)
        .collect();
    let job_id = submit_dag(&fed, &repo().join("examples/fate-lr/train.yaml"));
    // The guest's LR computes in a warm interpreter: it works in the task's directory.
    let lr_dir = fed
        .dir
        .path()
        .canonicalize()
        .expect("dir")
        .join("9999/jobs")
        .join(&job_id)
        .join("guest/9999/lr_0/0");
    let log = lr_dir.join("fate/logs/INFO");
    let running = eventually(
        "the guest's LR to compute an epoch in a warm interpreter",
        Duration::from_secs(900),
        || async {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let lr: Vec<PoolProcess> = pool_processes(&fed, "9999")
                .into_iter()
                .filter(|p| p.cwd == lr_dir)
                .collect();
            if text.contains("set epoch 1") && !lr.is_empty() {
                Ok(lr)
            } else {
                Err(format!(
                    "epoch logged: {}; interpreters in {}: {lr:?}",
                    text.contains("set epoch 1"),
                    lr_dir.display()
                ))
            }
        },
    )
    .await;
    // It moved out of its own group into the worker's.
    for p in &running {
        assert_ne!(
            p.pgrp, p.pid,
            "an assigned interpreter is in its worker's group: {p:?}"
        );
    }
    let taken: Vec<u32> = ["9999", "10000"]
        .iter()
        .flat_map(|p| pool_processes(&fed, p))
        .filter(|p| {
            p.cwd.starts_with(
                fed.dir
                    .path()
                    .canonicalize()
                    .expect("dir")
                    .join("9999/jobs")
                    .join(&job_id),
            ) || p.pgrp != p.pid
        })
        .map(|p| p.pid)
        .collect();
    cli_ok(&fed, "9999", &["job", "stop", "-j", &job_id]);
    let job = wait_ended(
        &mut fed.scheduler("9999"),
        &job_id,
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(
        job_status(job.status),
        JobStatus::Canceled,
        "{}",
        job.reason
    );
    no_process_of(&job_id, Duration::from_secs(30)).await;
    // No interpreter of the job is left, and each pool holds only fresh, unassigned ones.
    for party in ["9999", "10000"] {
        let dir = pool_dir(&fed, party);
        eventually(
            &format!("{party}'s pool to hold only fresh, unassigned interpreters"),
            Duration::from_secs(300),
            || async {
                let now = pool_processes(&fed, party);
                let stale: Vec<&PoolProcess> = now
                    .iter()
                    .filter(|p| taken.contains(&p.pid) || p.pgrp != p.pid || p.cwd != dir)
                    .collect();
                if stale.is_empty() && now.len() == 2 {
                    Ok(())
                } else {
                    Err(format!(
                        "pool processes {now:?}; stale {stale:?}; taken {taken:?}"
                    ))
                }
            },
        )
        .await;
    }
    for p in &running {
        assert!(
            !Path::new(&format!("/proc/{}", p.pid)).exists()
                || std::fs::read_to_string(format!("/proc/{}/stat", p.pid))
                    .is_ok_and(|s| s.contains(") Z")),
            "the LR's interpreter {} is gone",
            p.pid
        );
    }
    eprintln!("first pool {first:?}; taken by the job {taken:?}");
    // Shut down: no pool process of either party remains.
    let pools: Vec<PathBuf> = ["9999", "10000"]
        .iter()
        .map(|p| pool_dir(&fed, p))
        .collect();
    let dir = fed.dir.path().to_path_buf();
    fed.shutdown().await;
    eventually(
        "no pool process after the shutdown",
        Duration::from_secs(10),
        || async {
            let left: Vec<u32> = pools
                .iter()
                .flat_map(|d| processes_mentioning(&d.join("fate_runner.py").display().to_string()))
                .collect();
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("left: {left:?} (under {})", dir.display()))
            }
        },
    )
    .await;
}
