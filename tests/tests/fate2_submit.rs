//! FATE 2.x DAGs submitted through a real federation's `SubmitJob`: every refusal is
//! INVALID_ARGUMENT naming its field and stores nothing on any party; a valid DAG passes the
//! scheduler's checks.

use fedflow_proto::scheduler::v1 as sc;
use fedflow_tests::*;
use serde_json::{Value, json};
use tonic::Code;

const PARTIES: &[&str] = &["9999", "10000"];

/// `examples/fate-lr/train.yaml` as JSON: reader -> psi -> coordinated_lr -> evaluation, guest
/// 9999, host 10000, arbiter 10000.
fn lr_dag() -> Value {
    let guest = json!([{"role": "guest", "party_id": ["9999"]}]);
    let guest_host = json!([
        {"role": "guest", "party_id": ["9999"]},
        {"role": "host", "party_id": ["10000"]}
    ]);
    json!({
        "schema_version": "2.0.0",
        "dag": {
            "parties": [
                {"role": "guest", "party_id": ["9999"]},
                {"role": "host", "party_id": ["10000"]},
                {"role": "arbiter", "party_id": ["10000"]}
            ],
            "conf": {"auto_retries": 1, "task_cores": 1},
            "stage": "train",
            "party_tasks": {
                "guest_9999": {"parties": guest, "tasks": {"reader_0": {"parameters": {"name": "breast_hetero_guest", "namespace": "experiment"}}}},
                "host_10000": {"parties": [{"role": "host", "party_id": ["10000"]}], "tasks": {"reader_0": {"parameters": {"name": "breast_hetero_host", "namespace": "experiment"}}}}
            },
            "tasks": {
                "reader_0": {"component_ref": "reader", "stage": "default", "parties": guest_host},
                "psi_0": {
                    "component_ref": "psi", "stage": "default", "dependent_tasks": ["reader_0"],
                    "parties": guest_host,
                    "inputs": {"data": {"input_data": {"task_output_artifact": {"producer_task": "reader_0", "output_artifact_key": "output_data"}}}}
                },
                "lr_0": {
                    "component_ref": "coordinated_lr", "dependent_tasks": ["psi_0"],
                    "parameters": {"epochs": 10, "batch_size": 300},
                    "inputs": {"data": {"train_data": {"task_output_artifact": {"producer_task": "psi_0", "output_artifact_key": "output_data", "parties": guest_host}}}}
                },
                "evaluation_0": {
                    "component_ref": "evaluation", "stage": "default", "dependent_tasks": ["lr_0"],
                    "parties": guest, "parameters": {"default_eval_setting": "binary"},
                    "inputs": {"data": {"input_datas": {"task_output_artifact": [{"producer_task": "lr_0", "output_artifact_key": "train_output_data", "parties": guest}]}}}
                }
            }
        }
    })
}

/// `lr_dag` changed by `edit`.
fn edited(edit: impl FnOnce(&mut Value)) -> Value {
    let mut dag = lr_dag();
    edit(&mut dag);
    dag
}

async fn submit_dag(
    fed: &TestFederation,
    dag: &Value,
    conf: &str,
) -> Result<String, tonic::Status> {
    fed.scheduler("9999")
        .submit_job(sc::SubmitJobRequest {
            dsl: dag.to_string(),
            runtime_conf: conf.to_owned(),
            request_id: String::new(),
        })
        .await
        .map(|r| r.into_inner().job_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fate2_refusals_name_their_field_and_store_nothing() {
    let fed = TestFederation::start(PARTIES).await;
    let stranger = json!([{"role": "host", "party_id": ["4242"]}]);
    let source = json!({"producer_task": "reader_0", "output_artifact_key": "output_data"});
    let psi_input = "/dag/tasks/psi_0/inputs/data/input_data";
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "unknown producer",
            edited(|d| {
                d.pointer_mut(psi_input).expect("psi input")["task_output_artifact"]["producer_task"] =
                    json!("reader_9");
            }),
            "dag.tasks.psi_0.inputs.data.input_data.task_output_artifact.producer_task: unknown task \"reader_9\"",
        ),
        (
            "unknown output key",
            edited(|d| {
                d.pointer_mut(psi_input).expect("psi input")["task_output_artifact"]["output_artifact_key"] =
                    json!("nope");
            }),
            "dag.tasks.psi_0.inputs.data.input_data.task_output_artifact.output_artifact_key: task \"reader_0\" (reader) has no data output \"nope\"",
        ),
        (
            "cycle",
            edited(|d| d["dag"]["tasks"]["reader_0"]["dependent_tasks"] = json!(["lr_0"])),
            "dag.tasks: cycle lr_0 -> reader_0 -> psi_0 -> lr_0",
        ),
        (
            "unknown dependent task",
            edited(|d| d["dag"]["tasks"]["lr_0"]["dependent_tasks"] = json!(["psi_9"])),
            "dag.tasks.lr_0.dependent_tasks[0]: unknown task \"psi_9\"",
        ),
        (
            "task party outside dag.parties",
            edited(|d| d["dag"]["tasks"]["reader_0"]["parties"] = stranger.clone()),
            "dag.tasks.reader_0.parties[0].party_id[0]: host 4242 is not among dag.parties",
        ),
        (
            "party_tasks party outside dag.parties",
            edited(|d| d["dag"]["party_tasks"]["host_10000"]["parties"] = stranger.clone()),
            "dag.party_tasks.host_10000.parties[0].party_id[0]: host 4242 is not among dag.parties",
        ),
        (
            "source party outside dag.parties",
            edited(|d| {
                d["dag"]["tasks"]["lr_0"]["inputs"]["data"]["train_data"]["task_output_artifact"]
                    ["parties"] = stranger.clone();
            }),
            "dag.tasks.lr_0.inputs.data.train_data.task_output_artifact.parties[0].party_id[0]: host 4242 is not among dag.parties",
        ),
        (
            "unknown component",
            edited(|d| d["dag"]["tasks"]["lr_0"]["component_ref"] = json!("hetero_lr")),
            "dag.tasks.lr_0.component_ref: unknown FATE component \"hetero_lr\"",
        ),
        (
            "stage the component lacks",
            edited(|d| d["dag"]["tasks"]["lr_0"]["stage"] = json!("default")),
            "dag.tasks.lr_0.stage: component \"coordinated_lr\" has no stage \"default\"",
        ),
        (
            "role the component does not serve",
            edited(|d| {
                d["dag"]["tasks"]["psi_0"]["parties"] =
                    json!([{"role": "arbiter", "party_id": ["10000"]}]);
            }),
            "dag.tasks.psi_0.parties: component \"psi\" does not run on role arbiter",
        ),
        (
            "required input missing",
            edited(|d| {
                d["dag"]["tasks"]["psi_0"]
                    .as_object_mut()
                    .expect("psi_0")
                    .remove("inputs");
            }),
            "dag.tasks.psi_0.inputs.data.input_data: missing",
        ),
        (
            "unknown input slot",
            edited(|d| {
                d["dag"]["tasks"]["psi_0"]["inputs"]["data"]["train_data"] =
                    json!({"task_output_artifact": source.clone()});
            }),
            "dag.tasks.psi_0.inputs.data.train_data: component \"psi\" has no data input \"train_data\"",
        ),
        (
            "several sources for a single slot",
            edited(|d| {
                d.pointer_mut(psi_input).expect("psi input")["task_output_artifact"] =
                    json!([source.clone(), source.clone()]);
            }),
            "dag.tasks.psi_0.inputs.data.input_data.task_output_artifact: input \"input_data\" of \"psi\" takes one source, got 2",
        ),
        (
            "data warehouse",
            edited(|d| {
                *d.pointer_mut(psi_input).expect("psi input") =
                    json!({"data_warehouse": {"name": "breast", "namespace": "../x"}});
            }),
            "dag.tasks.psi_0.inputs.data.input_data.data_warehouse.namespace: 1 to 64 letters",
        ),
        (
            "model warehouse",
            edited(|d| {
                d["dag"]["tasks"]["lr_0"]["inputs"]["model"] = json!({"warm_start_model":
                    {"model_warehouse": {"model_version": "0", "producer_task": "lr_0",
                                         "output_artifact_key": "output_model"}}});
            }),
            "dag.tasks.lr_0.inputs.model.warm_start_model.model_warehouse.model_id: missing",
        ),
        (
            "malformed task name",
            edited(|d| {
                let tasks = d["dag"]["tasks"].as_object_mut().expect("tasks");
                let lr = tasks.remove("evaluation_0").expect("evaluation_0");
                tasks.insert("eval/../0".into(), lr);
            }),
            "dag.tasks.eval/../0: component name",
        ),
        (
            "another party as initiator",
            edited(|d| d["dag"]["conf"]["initiator_party_id"] = json!("10000")),
            "dag.conf.initiator_party_id: party 10000 is not this scheduler's party 9999",
        ),
        (
            "a job parameter out of range",
            edited(|d| d["dag"]["conf"]["task_cores"] = json!(-1)),
            "dag.conf.task_cores (for ",
        ),
    ];
    for (what, dag, message) in &cases {
        let status = submit_dag(&fed, dag, "").await.expect_err(what);
        assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
        assert!(
            status.message().contains(message),
            "{what}: {:?} lacks {message:?}",
            status.message()
        );
    }
    let status = submit_dag(&fed, &lr_dag(), r#"{"role": {"guest": [9999]}}"#)
        .await
        .expect_err("a runtime conf beside a DAG");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("runtime_conf: must be empty"),
        "{status:?}"
    );
    // Nothing stored: no job on any party's scheduler, no reservation or task directory.
    for party in PARTIES {
        let jobs = fed
            .scheduler(party)
            .list_jobs(sc::ListJobsRequest {
                limit: 100,
                ..Default::default()
            })
            .await
            .expect("list jobs")
            .into_inner()
            .jobs;
        assert!(jobs.is_empty(), "{party} stored {jobs:?}");
    }
    assert_nothing_stored(&fed, "9999").await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_fate2_dag_is_refused_by_a_party_without_a_fate_provider_naming_it() {
    // These parties have no pyfate ([fate] python unset): the DAG passes the scheduler's
    // checks, and every party that would run a FATE task refuses it when the job is created
    // on it, saying why. (tests/tests/fate.rs runs the same DAG with pyfate.)
    let fed = TestFederation::start(PARTIES).await;
    let status = submit_dag(&fed, &lr_dag(), "")
        .await
        .expect_err("no party here runs FATE components");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("refused the job")
            && status.message().contains("has no FATE provider"),
        "{status:?}"
    );
    fed.shutdown().await;
}

/// `fedflow job submit -c dag.yaml` with a YAML syntax error: refused before any call, the
/// error names the file and the line.
#[test]
fn the_cli_names_the_file_and_line_of_a_yaml_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("bad.yaml");
    std::fs::write(
        &path,
        "schema_version: 2.0.0\ndag:\n  parties: [\n  tasks: {a: b}\n",
    )
    .expect("write the DAG");
    let out = std::process::Command::new(bin("fedflow"))
        .args(["--scheduler", "http://127.0.0.1:1", "job", "submit", "-c"])
        .arg(&path)
        .output()
        .expect("run the fedflow CLI");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{stdout}{stderr}");
    let said = format!("{stdout}{stderr}");
    assert!(
        said.contains(&format!("{}: line 5", path.display())),
        "{said}"
    );
    assert!(
        !said.contains("UNAVAILABLE"),
        "refused before calling: {said}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_party_whose_pyfate_is_another_version_refuses_a_fate2_dag_naming_it() {
    // A "python" that answers the task-controller's version question with pyfate 2.1.0.
    let dir = TempDir::new("fedflow-fake-pyfate");
    let python = dir.path().join("python");
    std::fs::write(&python, "#!/bin/sh\necho 2.1.0\n").expect("write the fake python");
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755))
            .expect("make it executable");
    }
    let fed = TestFederation::start_with(PARTIES, |o| o.fate_python = python.clone()).await;
    let status = submit_dag(&fed, &lr_dag(), "")
        .await
        .expect_err("fedflow knows pyfate 2.2.0's components only");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("pyfate 2.1.0") && status.message().contains("2.2.0"),
        "{status:?}"
    );
    fed.shutdown().await;
}
