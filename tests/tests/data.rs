//! The data plane's "data" half, end to end and driven through the `fedflow` CLI like a user:
//! tables uploaded in FATE-Flow's format to each party's registry, a `Reader` reading them,
//! its output registered and read by a downstream `Statistics`, `fedflow output ...` showing
//! them, and another party refused their content. Bad uploads are refused with nothing kept.

use std::path::{Path, PathBuf};
use std::process::Command;

use bytes::Bytes;
use fedflow_proto::taskcontroller::v1 as tc;
use fedflow_tests::*;
use prost::Message;
use serde_json::{Map, Value, json};

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// Runs the CLI against `party`'s scheduler: (success, stdout, stderr).
fn cli(fed: &TestFederation, party: &str, args: &[&str]) -> (bool, String, String) {
    // Run from the repository's root, as the examples' relative paths expect.
    let out = Command::new(bin("fedflow"))
        .current_dir(examples().join(".."))
        .arg("--scheduler")
        .arg(fed.scheduler_addr(party))
        .args(args)
        .output()
        .expect("run the fedflow CLI");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CLI's JSON answer, which must be a success.
fn cli_json(fed: &TestFederation, party: &str, args: &[&str]) -> Value {
    let (ok, out, err) = cli(fed, party, args);
    assert!(ok, "fedflow {args:?} on {party} failed: {out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("fedflow {args:?}: not JSON ({e}): {out}"))
}

/// Writes an upload conf for `file` into `dir`; returns its path.
fn upload_conf(dir: &Path, name: &str, file: &Path, meta: Value) -> PathBuf {
    let conf = json!({
        "file": file.display().to_string(), "head": 1, "partitions": 4, "extend_sid": false,
        "meta": meta, "namespace": "experiment", "name": name,
    });
    let path = dir.join(format!("{name}.upload.json"));
    std::fs::write(&path, conf.to_string()).expect("write the upload conf");
    path
}

/// Every file below `dir` (none when it does not exist).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

fn artifact<'a>(list: &'a Value, key: &str) -> &'a Value {
    list.as_array()
        .and_then(|a| a.iter().find(|x| x["key"] == key))
        .unwrap_or_else(|| panic!("no output {key} in {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploaded_tables_chain_through_reader_and_statistics_and_stay_home() {
    let fed = TestFederation::start(&["9999", "10000"]).await;
    chain_scenario(&fed).await;
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploaded_tables_chain_and_stay_home_with_every_service_on_postgres() {
    let Some(fed) = TestFederation::start_on_postgres(&["9999", "10000"]).await else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must set FEDFLOW_TEST_POSTGRES_URL"
        );
        eprintln!("FEDFLOW_TEST_POSTGRES_URL unset: PostgreSQL scenario not run");
        return;
    };
    chain_scenario(&fed).await;
    fed.shutdown().await;
}

async fn chain_scenario(fed: &TestFederation) {
    let ex = examples();
    // Each party uploads its own half of FATE's breast_hetero, as FATE users do.
    let guest = cli_json(
        fed,
        "9999",
        &[
            "--json",
            "data",
            "upload",
            "-c",
            ex.join("reader-statistics/upload_guest.json")
                .to_str()
                .expect("utf-8"),
        ],
    );
    assert_eq!(guest["row_count"], 569, "{guest}");
    assert_eq!(guest["label_name"], "y");
    let host = cli_json(
        fed,
        "10000",
        &[
            "--json",
            "data",
            "upload",
            "-c",
            ex.join("reader-statistics/upload_host.json")
                .to_str()
                .expect("utf-8"),
        ],
    );
    assert_eq!(host["columns"].as_array().map(Vec::len), Some(21), "{host}");
    let info = cli_json(
        fed,
        "9999",
        &[
            "--json",
            "data",
            "info",
            "--namespace",
            "experiment",
            "--name",
            "breast_hetero_guest",
        ],
    );
    assert_eq!(info["columns"][0], "id");
    assert_eq!(info["columns"][1], "y");
    assert_eq!(
        info["meta"],
        json!({"delimiter": ",", "label_name": "y", "match_id_name": "id"})
    );
    // Each party sees only its own tables.
    let listed = cli_json(fed, "10000", &["--json", "data", "list"]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["name"], "breast_hetero_host");

    let submitted = cli_json(
        fed,
        "9999",
        &[
            "--json",
            "job",
            "submit",
            "-d",
            ex.join("reader-statistics/dsl.json")
                .to_str()
                .expect("utf-8"),
            "-c",
            ex.join("reader-statistics/conf.json")
                .to_str()
                .expect("utf-8"),
        ],
    );
    let job_id = submitted["job_id"].as_str().expect("a job id").to_owned();
    let (ok, out, err) = cli(
        fed,
        "9999",
        &["job", "wait", "-j", &job_id, "--timeout", "60"],
    );
    assert!(ok, "the job did not succeed: {out}\n{err}");

    // The guest's outputs, from the guest's registry.
    let outputs = cli_json(fed, "9999", &["--json", "output", "list", "-j", &job_id]);
    let data = artifact(&outputs, "reader_0.output_data");
    assert_eq!(data["kind"], "data");
    assert_eq!(data["type_name"], "dataframe");
    assert_eq!(data["overview"]["row_count"], 569);
    assert_eq!(data["metadata"]["schema"]["label_name"], "y");
    assert_eq!(data["metadata"]["schema"]["match_id_name"], "id");
    assert_eq!(data["source"]["party_id"], "9999");
    assert_eq!(data["source"]["role"], "guest");
    assert_eq!(artifact(&outputs, "statistics_0.metric")["kind"], "metric");
    assert_eq!(
        artifact(&outputs, "statistics_0.output_model")["kind"],
        "model"
    );
    // The downstream component read the upstream artifact: its numbers are the table's.
    let metric = cli_json(
        fed,
        "9999",
        &[
            "--json",
            "output",
            "metric",
            "-j",
            &job_id,
            "-c",
            "statistics_0",
        ],
    );
    assert_eq!(metric["data"]["row_count"], 569, "{metric}");
    let columns = metric["data"]["columns"]
        .as_object()
        .expect("per-column statistics");
    assert_eq!(
        columns.len(),
        10,
        "x0..x9, not the id or the label: {metric}"
    );
    assert!(!columns.contains_key("y") && !columns.contains_key("id"));
    assert_eq!(columns["x0"]["count"], 569);
    let (ok, rows, err) = cli(
        fed,
        "9999",
        &[
            "output", "data", "-j", &job_id, "-c", "reader_0", "--limit", "3",
        ],
    );
    assert!(ok, "{err}");
    let lines: Vec<&str> = rows.lines().collect();
    assert_eq!(lines.len(), 4, "header and 3 rows: {rows}");
    assert!(lines[0].starts_with("id,y,x0"), "{rows}");
    assert!(lines[1].starts_with("133,1,"), "{rows}");
    let download = fed.dir.path().join("download");
    let (ok, out, err) = cli(
        fed,
        "9999",
        &[
            "output",
            "model",
            "-j",
            &job_id,
            "-c",
            "statistics_0",
            "--download",
            download.to_str().expect("utf-8"),
        ],
    );
    assert!(ok, "{out}\n{err}");
    let model: Value = serde_json::from_slice(
        &std::fs::read(download.join("statistics_0.output_model/model.json"))
            .expect("the model file"),
    )
    .expect("a JSON model");
    assert_eq!(model["row_count"], 569);
    assert_eq!(model["input"], "reader_0.output_data");

    // The host's own outputs, from the host's registry: its 20 features.
    let host_metric = cli_json(
        fed,
        "10000",
        &[
            "--json",
            "output",
            "metric",
            "-j",
            &job_id,
            "-c",
            "statistics_0",
        ],
    );
    assert_eq!(
        host_metric["data"]["columns"].as_object().map(Map::len),
        Some(20)
    );

    // Another party: refused the content, whether it asks for it by party or tries its
    // gateway route; it sees the overview only.
    for args in [
        vec![
            "output", "data", "-j", &job_id, "-c", "reader_0", "-p", "9999",
        ],
        vec!["output", "list", "-j", &job_id, "-p", "9999"],
        vec![
            "output",
            "model",
            "-j",
            &job_id,
            "-c",
            "statistics_0",
            "-p",
            "9999",
            "--download",
            "/tmp/x",
        ],
    ] {
        let (ok, out, err) = cli(fed, "10000", &args);
        assert!(!ok, "{args:?} was served to another party: {out}");
        assert!(err.starts_with("PERMISSION_DENIED"), "{args:?}: {err}");
        assert!(err.contains("stay on party 9999"), "{args:?}: {err}");
    }
    // Through the federation, as the host's gateway (its certificate): every method of the
    // guest's registry is closed to it, even for a job they share.
    let as_host = fed.as_party("10000", "9999");
    let read = tc::ReadArtifactRequest {
        job_id: job_id.clone(),
        component: "reader_0".into(),
        ..Default::default()
    };
    let list = tc::ListArtifactsRequest {
        job_id: job_id.clone(),
        component: String::new(),
    };
    let table = tc::GetTableRequest {
        namespace: "experiment".into(),
        name: "breast_hetero_guest".into(),
    };
    let payloads: [(&str, Vec<u8>); 5] = [
        ("ReadArtifact", read.encode_to_vec()),
        ("ListArtifacts", list.encode_to_vec()),
        ("GetTable", table.encode_to_vec()),
        (
            "ListTables",
            tc::ListTablesRequest::default().encode_to_vec(),
        ),
        (
            "DeleteTable",
            tc::DeleteTableRequest {
                namespace: "experiment".into(),
                name: "breast_hetero_guest".into(),
            }
            .encode_to_vec(),
        ),
    ];
    for (method, payload) in payloads {
        let mut envelope = as_host.envelope(
            &job_id,
            "fedflow.taskcontroller.v1.Data",
            method,
            &tc::ListTablesRequest::default(),
            10_000,
        );
        envelope.payload = Bytes::from(payload);
        let refused = as_host
            .send(envelope)
            .await
            .expect_err("another party's gateway may not reach the guest's registry");
        assert_eq!(
            refused.code(),
            tonic::Code::PermissionDenied,
            "{method}: {refused:?}"
        );
    }
    let still = cli_json(fed, "9999", &["--json", "data", "list"]);
    assert_eq!(
        still.as_array().map(Vec::len),
        Some(1),
        "nothing was deleted: {still}"
    );
    let (ok, overview, err) = cli(
        fed,
        "10000",
        &[
            "task", "output", "-j", &job_id, "-c", "reader_0", "-r", "guest", "-p", "9999",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        overview.contains("569"),
        "the overview has the row count: {overview}"
    );
    assert!(
        !overview.contains("file://") && !overview.contains("133,1"),
        "{overview}"
    );

    // The guest's log of its own task.
    let (ok, log, err) = cli(
        fed,
        "9999",
        &[
            "task",
            "log",
            "-j",
            &job_id,
            "-c",
            "statistics_0",
            "-r",
            "guest",
            "-p",
            "9999",
            "--tail",
            "2",
        ],
    );
    assert!(ok, "{err}");
    assert!(log.contains("fedflow-worker: success"), "{log}");
    assert!(log.lines().count() <= 2, "{log}");
    // Following an ended task's log prints all of it and returns.
    let (ok, all, err) = cli(
        fed,
        "9999",
        &[
            "task",
            "log",
            "-j",
            &job_id,
            "-c",
            "statistics_0",
            "-r",
            "guest",
            "-p",
            "9999",
            "--follow",
        ],
    );
    assert!(ok, "{err}");
    assert!(
        all.contains("running Statistics") && all.ends_with("fedflow-worker: success\n"),
        "{all}"
    );
    let (ok, _, err) = cli(
        fed,
        "10000",
        &[
            "task",
            "log",
            "-j",
            &job_id,
            "-c",
            "statistics_0",
            "-r",
            "guest",
            "-p",
            "9999",
        ],
    );
    assert!(
        !ok && err.starts_with("PERMISSION_DENIED"),
        "another party's log: {err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_uploads_are_refused_naming_the_fault_and_store_nothing() {
    let fed = TestFederation::start(&["9999"]).await;
    let dir = fed.dir.path().join("inputs");
    std::fs::create_dir_all(&dir).expect("inputs dir");
    let csv = |name: &str, text: &str| {
        let path = dir.join(format!("{name}.csv"));
        std::fs::write(&path, text).expect("write csv");
        path
    };
    let meta = json!({"delimiter": ",", "label_name": "y", "match_id_name": "id"});
    let cases = [
        (
            upload_conf(&dir, "missing", &dir.join("nowhere.csv"), meta.clone()),
            "INVALID_ARGUMENT: file",
            "nowhere.csv",
        ),
        (
            upload_conf(
                &dir,
                "ragged",
                &csv("ragged", "id,y,x0\n1,0,0.1\n2,1\n3,0,0.3\n"),
                meta.clone(),
            ),
            "INVALID_ARGUMENT",
            "line 3: 2 fields, but the header has 3 columns",
        ),
        (
            upload_conf(
                &dir,
                "no_id",
                &csv("no_id", "uid,y,x0\n1,0,0.1\n"),
                meta.clone(),
            ),
            "INVALID_ARGUMENT",
            "no id column \"id\"",
        ),
        (
            upload_conf(
                &dir,
                "no_label",
                &csv("no_label", "id,x0\n1,0.1\n"),
                meta.clone(),
            ),
            "INVALID_ARGUMENT",
            "no label column \"y\"",
        ),
        (
            upload_conf(
                &dir,
                "dup",
                &csv("dup", "id,y,x0\n1,0,0.1\n2,1,0.2\n1,1,0.3\n"),
                meta.clone(),
            ),
            "INVALID_ARGUMENT",
            "line 4: id \"1\" (column \"id\") already on line 2",
        ),
    ];
    let party_dir = fed.dir.path().join("9999");
    for (conf, code, message) in &cases {
        let (ok, out, err) = cli(
            &fed,
            "9999",
            &["data", "upload", "-c", conf.to_str().expect("utf-8")],
        );
        assert!(!ok, "{} was accepted: {out}", conf.display());
        assert!(err.starts_with(code), "{}: {err}", conf.display());
        assert!(
            err.contains(message),
            "{}: expected {message:?} in {err}",
            conf.display()
        );
        let listed = cli_json(&fed, "9999", &["--json", "data", "list"]);
        assert_eq!(listed, json!([]), "after {}", conf.display());
        for sub in ["tables", "uploads"] {
            let left = files_under(&party_dir.join(sub));
            assert!(left.is_empty(), "after {}: left {left:?}", conf.display());
        }
    }
    // A good one is kept; the same name again is refused and changes nothing; delete removes
    // the row and the file.
    let good = upload_conf(
        &dir,
        "good",
        &csv("good", "id,y,x0\n1,0,0.1\n2,1,0.2\n"),
        meta.clone(),
    );
    let (ok, _, err) = cli(
        &fed,
        "9999",
        &["data", "upload", "-c", good.to_str().expect("utf-8")],
    );
    assert!(ok, "{err}");
    let again = upload_conf(
        &dir,
        "good",
        &csv("other", "id,y,x0\n7,0,0.1\n"),
        meta.clone(),
    );
    let (ok, _, err) = cli(
        &fed,
        "9999",
        &["data", "upload", "-c", again.to_str().expect("utf-8")],
    );
    assert!(!ok && err.starts_with("ALREADY_EXISTS"), "{err}");
    let info = cli_json(
        &fed,
        "9999",
        &[
            "--json",
            "data",
            "info",
            "--namespace",
            "experiment",
            "--name",
            "good",
        ],
    );
    assert_eq!(info["row_count"], 2, "the first upload stays: {info}");
    assert_eq!(files_under(&party_dir.join("tables")).len(), 1);
    let (ok, _, err) = cli(
        &fed,
        "9999",
        &[
            "data",
            "delete",
            "--namespace",
            "experiment",
            "--name",
            "good",
        ],
    );
    assert!(ok, "{err}");
    assert_eq!(
        cli_json(&fed, "9999", &["--json", "data", "list"]),
        json!([])
    );
    assert!(files_under(&party_dir.join("tables")).is_empty());
    let (ok, _, err) = cli(
        &fed,
        "9999",
        &[
            "data",
            "info",
            "--namespace",
            "experiment",
            "--name",
            "good",
        ],
    );
    assert!(!ok && err.starts_with("NOT_FOUND"), "{err}");
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_of_a_table_not_registered_fails_naming_it() {
    let fed = TestFederation::start(&["9999", "10000"]).await;
    let ex = examples();
    let submitted = cli_json(
        &fed,
        "9999",
        &[
            "--json",
            "job",
            "submit",
            "-d",
            ex.join("reader-statistics/dsl.json")
                .to_str()
                .expect("utf-8"),
            "-c",
            ex.join("reader-statistics/conf.json")
                .to_str()
                .expect("utf-8"),
        ],
    );
    let job_id = submitted["job_id"].as_str().expect("a job id").to_owned();
    let (ok, _, _) = cli(
        &fed,
        "9999",
        &["job", "wait", "-j", &job_id, "--timeout", "60"],
    );
    assert!(!ok, "a job reading no table succeeded");
    let job = cli_json(&fed, "9999", &["--json", "job", "query", "-j", &job_id]);
    let text = job.to_string();
    assert!(
        text.contains("table experiment/breast_hetero_guest is not registered on party 9999")
            || text
                .contains("table experiment/breast_hetero_host is not registered on party 10000"),
        "{job}"
    );
    let outputs = cli_json(&fed, "9999", &["--json", "output", "list", "-j", &job_id]);
    assert_eq!(outputs, json!([]));
    fed.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn upload_chunks_repeat_harmlessly_and_gaps_or_short_uploads_are_refused() {
    let fed = TestFederation::start(&["9999"]).await;
    let task_controller = fed.federation.party("9999").expect("party").task_controller;
    let mut data = tc::data_client::DataClient::new(channel(task_controller));
    let chunk = |offset: u64, bytes: &'static [u8]| tc::UploadChunkRequest {
        upload_id: "0123456789abcdef".into(),
        offset,
        data: Bytes::from_static(bytes),
    };
    let size = |r: Result<tonic::Response<tc::UploadChunkResponse>, tonic::Status>| {
        r.expect("chunk accepted").into_inner().size
    };
    assert_eq!(size(data.upload_chunk(chunk(0, b"id,y\n1,0\n")).await), 9);
    // The same chunk again (a retried call): accepted, nothing written twice.
    assert_eq!(size(data.upload_chunk(chunk(0, b"id,y\n1,0\n")).await), 9);
    let gap = data
        .upload_chunk(chunk(20, b"3,1\n"))
        .await
        .expect_err("a gap");
    assert_eq!(gap.code(), tonic::Code::FailedPrecondition, "{gap:?}");
    assert_eq!(size(data.upload_chunk(chunk(9, b"2,1\n")).await), 13);
    let spec = tc::UploadSpec {
        namespace: "experiment".into(),
        name: "chunks".into(),
        head: true,
        meta_json: r#"{"label_name": "y"}"#.into(),
        file: "chunks.csv".into(),
        ..Default::default()
    };
    let short = data
        .commit_upload(tc::CommitUploadRequest {
            upload_id: "0123456789abcdef".into(),
            spec: Some(spec.clone()),
            size: 20,
        })
        .await
        .expect_err("fewer bytes than the client sent");
    assert_eq!(short.code(), tonic::Code::InvalidArgument, "{short:?}");
    assert!(short.message().contains("holds 13 bytes"), "{short:?}");
    let uploads = fed.dir.path().join("9999/uploads");
    assert!(
        files_under(&uploads).is_empty(),
        "a refused commit leaves no file"
    );
    // Bytes short of the file's size as the client found it: cut short, refused.
    let mut cut = chunk(0, b"id,y\n1,0\n");
    cut.upload_id = "00000000cccccccc".into();
    assert_eq!(size(data.upload_chunk(cut).await), 9);
    let refused = data
        .commit_upload(tc::CommitUploadRequest {
            upload_id: "00000000cccccccc".into(),
            spec: Some(tc::UploadSpec {
                file_size: 13,
                ..spec.clone()
            }),
            size: 9,
        })
        .await
        .expect_err("an upload cut short");
    assert!(
        refused
            .message()
            .contains("9 bytes arrived of the file's 13"),
        "{refused:?}"
    );
    assert!(files_under(&uploads).is_empty());
    // A fresh upload of the same bytes commits.
    let mut again = chunk(0, b"id,y\n1,0\n2,1\n");
    again.upload_id = "fedcba9876543210".into();
    assert_eq!(size(data.upload_chunk(again).await), 13);
    let table = data
        .commit_upload(tc::CommitUploadRequest {
            upload_id: "fedcba9876543210".into(),
            spec: Some(spec),
            size: 13,
        })
        .await
        .expect("committed")
        .into_inner()
        .table
        .expect("a table");
    assert_eq!(table.row_count, 2);
    assert!(files_under(&uploads).is_empty());
    let bad_id = data
        .upload_chunk(tc::UploadChunkRequest {
            upload_id: "../../etc".into(),
            offset: 0,
            data: Bytes::new(),
        })
        .await
        .expect_err("an upload id that is not a name");
    assert_eq!(bad_id.code(), tonic::Code::InvalidArgument);
    fed.shutdown().await;
}

/// A registered external component: a shell script that echoes what it was given.
fn echo_component(dir: &Path) -> fedflow_task_controller::config::ComponentConfig {
    let script = dir.join("echo-component.sh");
    std::fs::write(
        &script,
        r#"set -e
mkdir -p outputs/echo
cp "$FEDFLOW_COMPONENT_CONFIG" outputs/echo/config.json
printf '{"greeting": "%s %s"}' "$1" "$GREETING" > outputs/echo/greeting.json
echo "echo component ran" >&2
cat > component_outputs.json <<JSON
[{"output_key": "echo", "kind": "model", "type_name": "json_model", "file": "echo/config.json",
  "metadata": {"by": "shell"}, "overview": {}},
 {"output_key": "greeting", "kind": "metric", "type_name": "json_metric",
  "file": "echo/greeting.json", "metadata": {}, "overview": {}}]
JSON
"#,
    )
    .expect("write the component");
    fedflow_task_controller::config::ComponentConfig {
        command: "/bin/sh".into(),
        args: vec![script.display().to_string(), "fixed-arg".into()],
        env: [("GREETING".to_owned(), "from-config".to_owned())].into(),
        roles: vec!["guest".into()],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_registered_component_runs_under_the_worker_with_its_inputs_and_registers_outputs() {
    let scripts = TempDir::new("fedflow-components");
    let echo = echo_component(scripts.path());
    let fed = TestFederation::start_with(&["9999", "10000"], |o| {
        o.components_by_party
            .insert("9999".into(), [("Echo".to_owned(), echo)].into());
    })
    .await;
    let ex = examples();
    let upload = ex.join("reader-statistics/upload_guest.json");
    cli_json(
        &fed,
        "9999",
        &[
            "--json",
            "data",
            "upload",
            "-c",
            upload.to_str().expect("utf-8"),
        ],
    );
    let dsl = json!({"components": {
        "reader_0": {"module": "Reader", "output": {"data": ["output_data"]}},
        "echo_0": {"module": "Echo", "provider": "local@1",
                   "input": {"data": {"data": ["reader_0.output_data"]}},
                   "output": {"model": ["echo"]}}
    }});
    let conf = |roles: Value| {
        json!({
            "dsl_version": 2,
            "initiator": {"role": "guest", "party_id": 9999},
            "role": roles,
            "component_parameters": {"role": {"guest": {"0": {
                "reader_0": {"table": {"namespace": "experiment", "name": "breast_hetero_guest"}},
                "echo_0": {"anything": ["the component checks its own"]}
            }}}}
        })
    };
    let dir = fed.dir.path();
    let write = |name: &str, v: &Value| {
        let path = dir.join(name);
        std::fs::write(&path, v.to_string()).expect("write");
        path.display().to_string()
    };
    let (dsl_path, conf_path) = (
        write("echo-dsl.json", &dsl),
        write("echo-conf.json", &conf(json!({"guest": [9999]}))),
    );
    let submitted = cli_json(
        &fed,
        "9999",
        &["--json", "job", "submit", "-d", &dsl_path, "-c", &conf_path],
    );
    let job_id = submitted["job_id"].as_str().expect("a job id").to_owned();
    let (ok, out, err) = cli(
        &fed,
        "9999",
        &["job", "wait", "-j", &job_id, "--timeout", "60"],
    );
    assert!(ok, "the job did not succeed: {out}\n{err}");
    let metric = cli_json(
        &fed,
        "9999",
        &["--json", "output", "metric", "-j", &job_id, "-c", "echo_0"],
    );
    assert_eq!(
        metric["greeting"], "fixed-arg from-config",
        "fixed args and env: {metric}"
    );
    let download = dir.join("echo-model");
    let (ok, _, err) = cli(
        &fed,
        "9999",
        &[
            "output",
            "model",
            "-j",
            &job_id,
            "-c",
            "echo_0",
            "--download",
            download.to_str().expect("utf-8"),
        ],
    );
    assert!(ok, "{err}");
    let given: Value = serde_json::from_slice(
        &std::fs::read(download.join("echo_0.echo/config.json")).expect("the echoed config"),
    )
    .expect("JSON");
    assert_eq!(
        given["parameters"]["anything"][0],
        "the component checks its own"
    );
    // Its data plane: this party's gateway, FATE's session of the task, every party of it.
    let plane = &given["data_plane"];
    assert_eq!(
        plane["session"],
        format!("{job_id}_echo_0_0"),
        "the component's session: {given}"
    );
    assert!(
        plane["address"]
            .as_str()
            .is_some_and(|a| a.starts_with("127.0.0.1:"))
    );
    assert_eq!(
        plane["parties"],
        json!([{"party_id": "9999", "role": "guest"}]),
        "the job's one party: {plane}"
    );
    let input = &given["inputs"]["reader_0.output_data"];
    assert_eq!(input["metadata"]["schema"]["label_name"], "y", "{given}");
    assert!(Path::new(input["path"].as_str().expect("a path")).is_file());
    let (ok, log, _) = cli(
        &fed,
        "9999",
        &[
            "task", "log", "-j", &job_id, "-c", "echo_0", "-r", "guest", "-p", "9999",
        ],
    );
    assert!(
        ok && log.contains("echo component ran"),
        "the child's stderr is in the log: {log}"
    );

    // A party that registers no such component refuses the job before anything runs.
    let conf_path = write(
        "echo-conf2.json",
        &conf(json!({"guest": [9999], "host": [10000]})),
    );
    let (ok, out, err) = cli(
        &fed,
        "9999",
        &["job", "submit", "-d", &dsl_path, "-c", &conf_path],
    );
    assert!(!ok, "a host without the component took the job: {out}");
    assert!(
        err.contains("party 10000 (host) refused the job")
            && err.contains("party 10000 registers no such component"),
        "{err}"
    );
    // A DSL naming a module without a provider is still refused at submit.
    let typo = json!({"components": {"x": {"module": "Echo"}}});
    let typo_path = write("typo-dsl.json", &typo);
    let (ok, _, err) = cli(
        &fed,
        "9999",
        &["job", "submit", "-d", &typo_path, "-c", &conf_path],
    );
    assert!(!ok && err.contains("unknown module \"Echo\""), "{err}");
    fed.shutdown().await;
}
