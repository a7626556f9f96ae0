//! FATE 2.x components (pyfate), run as FATE-Flow runs them minus its overhead: one
//! `python -m fate.components component execute --config … --execution-final-meta-path …`
//! per party task, in this worker's process group (so a stop ends it): in a warm interpreter
//! of the task-controller's pool when the task file names one, else as this worker's child
//! (see [`crate::warm`]), with a
//! task configuration built here from the task file: FATE's ids, standalone computing on this
//! party's FATE data directory, `osx` federation at this party's gateway (the task's session,
//! the task's parties), file loggers into the attempt's `fate/logs/`. The component
//! definition comes from the catalog ([`fedflow_core::fate`]), never from asking pyfate.
//!
//! The execution final meta decides the outcome: its outputs are registered verbatim (a file
//! output by its file under `outputs/`, a dataframe by a descriptor file holding pyfate's
//! entry); a failure's reason is pyfate's exception reduced to its last line (the traceback
//! stays in the log). FATE's `reader` is resolved here as FATE-Flow resolves it: the party's
//! registered table becomes a dataframe (FATE's own `dataframe_transformer`, once per table,
//! kept), registered as the reader's `output_data`.
//!
//! After the run the task's temporary tables (the computing session's namespace) are deleted.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use fedflow_core::fate::{self, ArtifactDef, FateTask, Io};
use fedflow_core::task_file::{FateRuntime, InputArtifact, OutputArtifact, TaskFile};
use serde_json::{Map, Value, json};

use crate::Outcome;

/// The import script FATE's `reader` runs (see its header).
const IMPORT_SCRIPT: &str = include_str!("fate_import.py");

/// Runs the FATE task of `config` in `task_dir`.
pub async fn run(task_dir: &Path, config: &TaskFile) -> Outcome {
    let Some(runtime) = &config.fate else {
        return Outcome::Failed(format!(
            "party {} has no FATE provider configured ([fate] python)",
            config.party_id
        ));
    };
    let task = match FateTask::from_params(&config.parameters) {
        Ok(task) => task,
        Err(e) => return Outcome::Failed(e),
    };
    let catalog = fate::builtin();
    let Some(io) = catalog.io(&task.component, &config.role, &task.stage) else {
        return Outcome::Failed(format!(
            "FATE {} has no component {} for role {} at stage {}",
            catalog.version, task.component, config.role, task.stage
        ));
    };
    let Some(plane) = &config.data_plane else {
        return Outcome::Failed(format!(
            "party {} has no data plane configured (the task-controller's data_plane)",
            config.party_id
        ));
    };
    let ids = Ids::new(config);
    let fate_dir = task_dir.join("fate");
    let outputs_dir = task_dir.join("outputs");
    for dir in [&fate_dir, &outputs_dir] {
        if let Err(e) = std::fs::create_dir_all(dir) {
            return Outcome::Failed(format!("create {}: {e}", dir.display()));
        }
    }
    let outcome = if task.component == "reader" {
        reader(task_dir, config, runtime, &ids).await
    } else {
        let inputs = match input_artifacts(task_dir, config, runtime, &ids, &task, io).await {
            Ok(inputs) => inputs,
            Err(outcome) => return outcome,
        };
        let mut outputs = output_artifacts(io, runtime, &ids, &outputs_dir);
        // Metrics as pyfate computes them (it POSTs each to an HTTP metric URI), kept in the
        // attempt's metric file so `fedflow output metric` shows them during the run.
        let _sink = match io.outputs.metric.first() {
            Some(def) => {
                let file = outputs_dir.join(&def.name).join("json_metric");
                match metrics::Sink::start(file, &ids.party_task_id).await {
                    Ok(sink) => {
                        outputs.insert(
                            def.name.clone(),
                            json!({"uri": sink.uri, "type_name": "json_metric"}),
                        );
                        Some(sink)
                    }
                    Err(e) => {
                        crate::note!(
                            "fedflow-worker: no live metrics ({e}); pyfate writes them at its end"
                        );
                        None
                    }
                }
            }
            None => None,
        };
        let spec = TaskConfig {
            config,
            runtime,
            task: &task,
            ids: &ids,
            federation: federation(config, &task, &plane.address, &plane.session),
            inputs,
            outputs,
            log_dir: fate_dir.join("logs"),
        };
        let config_path = fate_dir.join("task_parameters.json");
        let result_path = fate_dir.join("task_result.json");
        if let Err(e) = std::fs::write(&config_path, spec.to_json().to_string()) {
            return Outcome::Failed(format!("write {}: {e}", config_path.display()));
        }
        let status = execute(runtime, task_dir, config, &config_path, &result_path, None).await;
        finish(status, &result_path, &outputs_dir)
    };
    cleanup(runtime, &ids);
    outcome
}

/// FATE-Flow's ids for one party task.
struct Ids {
    job_id: String,
    /// `{job_id}_{task_name}`.
    task_id: String,
    /// `{task_id}_{version}_{role}_{party_id}`: also the computing session.
    party_task_id: String,
}

impl Ids {
    fn new(config: &TaskFile) -> Ids {
        let task_id = format!("{}_{}", config.job_id, config.component);
        Ids {
            job_id: config.job_id.clone(),
            party_task_id: format!(
                "{task_id}_{}_{}_{}",
                config.version, config.role, config.party_id
            ),
            task_id,
        }
    }
}

/// The task configuration pyfate reads (`TaskConfigSpec`).
struct TaskConfig<'a> {
    config: &'a TaskFile,
    runtime: &'a FateRuntime,
    task: &'a FateTask,
    ids: &'a Ids,
    federation: Value,
    inputs: Map<String, Value>,
    outputs: Map<String, Value>,
    log_dir: PathBuf,
}

impl TaskConfig<'_> {
    fn to_json(&self) -> Value {
        json!({
            "job_id": self.ids.job_id,
            "task_id": self.ids.task_id,
            "party_task_id": self.ids.party_task_id,
            "task_name": self.config.component,
            "component": self.task.component,
            "role": self.config.role,
            "party_id": self.config.party_id,
            "stage": self.task.stage,
            "parameters": self.task.parameters,
            "input_artifacts": self.inputs,
            "output_artifacts": self.outputs,
            "conf": {
                "device": {"type": "CPU", "metadata": {}},
                "computing": {
                    "type": "standalone",
                    "metadata": {
                        "computing_id": self.ids.party_task_id,
                        "options": {"data_dir": self.runtime.data_dir},
                    },
                },
                "federation": self.federation,
                "logger": {"config": logger_config(&self.log_dir)},
            },
        })
    }
}

/// `osx` federation at this party's gateway, with the task's parties.
fn federation(config: &TaskFile, task: &FateTask, address: &str, session: &str) -> Value {
    let (host, port) = match address.rsplit_once(':') {
        Some((host, port)) => (host.trim_matches(['[', ']']), port.parse().unwrap_or(0u16)),
        None => (address, 0),
    };
    let parties: Vec<Value> = task
        .parties
        .iter()
        .map(|p| json!({"role": p.role, "partyid": p.party_id}))
        .collect();
    json!({
        "type": "osx",
        "metadata": {
            "federation_id": session,
            "parties": {
                "local": {"role": config.role, "partyid": config.party_id},
                "parties": parties,
            },
            "osx_config": {"host": host, "port": port},
        },
    })
}

/// File loggers into `dir` (DEBUG, INFO, ERROR), and warnings to the worker's log.
fn logger_config(dir: &Path) -> Value {
    let _ = std::fs::create_dir_all(dir);
    let mut handlers = Map::new();
    for level in ["DEBUG", "INFO", "ERROR"] {
        handlers.insert(
            level.to_lowercase(),
            json!({
                "class": "logging.FileHandler",
                "level": level,
                "formatter": "fate",
                "filename": dir.join(level).display().to_string(),
                "delay": true,
            }),
        );
    }
    handlers.insert(
        "console".into(),
        json!({"class": "logging.StreamHandler", "level": "WARNING", "formatter": "fate",
               "stream": "ext://sys.stderr"}),
    );
    let names: Vec<&String> = handlers.keys().collect();
    json!({
        "version": 1,
        "disable_existing_loggers": false,
        "formatters": {"fate": {"format":
            "[%(levelname)s][%(asctime)s][%(process)s][%(module)s.%(funcName)s][line:%(lineno)d]: %(message)s"}},
        "handlers": handlers,
        "root": {"handlers": names, "level": "DEBUG"},
    })
}

/// pyfate's input apply specs: each slot bound to its producers' outputs on this party (or a
/// registered table's dataframe).
async fn input_artifacts(
    task_dir: &Path,
    config: &TaskFile,
    runtime: &FateRuntime,
    ids: &Ids,
    task: &FateTask,
    io: &Io,
) -> Result<Map<String, Value>, Outcome> {
    let available: &BTreeMap<String, InputArtifact> = &config.inputs;
    let mut inputs = Map::new();
    for (slot, input) in &task.inputs {
        let mut specs = Vec::with_capacity(input.sources.len());
        for source in &input.sources {
            if source.table.is_some() {
                let Some(table) = available.get(&source.input_key()) else {
                    return Err(Outcome::Failed(format!(
                        "input {slot}: the task-controller resolved no table {}",
                        source.input_key()
                    )));
                };
                let entry = table_dataframe(task_dir, config, runtime, ids, table).await?;
                let as_input = InputArtifact {
                    metadata: entry,
                    ..table.clone()
                };
                specs.push(apply_spec(&as_input));
                continue;
            }
            let Some(artifact) = available.get(&source.input_key()) else {
                let job = source
                    .job_id
                    .as_deref()
                    .map(|j| format!(" of job {j}"))
                    .unwrap_or_default();
                return Err(Outcome::Failed(format!(
                    "input {slot}: {}{job} has no output {} on this party",
                    source.producer_task, source.output_artifact_key
                )));
            };
            specs.push(apply_spec(artifact));
        }
        let multi = io
            .inputs
            .find(slot)
            .map_or(input.multi, |(_, def)| def.is_multi);
        let value = if multi {
            Value::Array(specs)
        } else if let Some(first) = specs.into_iter().next() {
            first
        } else {
            continue;
        };
        inputs.insert(slot.clone(), value);
    }
    Ok(inputs)
}

/// One input from a registered output: pyfate's own entry for it, as its producer wrote it.
fn apply_spec(artifact: &InputArtifact) -> Value {
    let entry = &artifact.metadata;
    let meta = entry.get("metadata").cloned().unwrap_or(json!({}));
    let mut inner = meta.get("metadata").cloned().unwrap_or(json!({}));
    if let Some(obj) = inner.as_object_mut() {
        obj.entry("options").or_insert(json!({}));
    }
    json!({
        "uri": entry.get("uri").and_then(Value::as_str).unwrap_or(&artifact.uri),
        "type_name": entry.get("type_name").and_then(Value::as_str).unwrap_or(&artifact.type_name),
        "metadata": {
            "metadata": inner,
            "name": meta.get("name"),
            "namespace": meta.get("namespace"),
            "source": meta.get("source"),
        },
    })
}

/// Where each output of the component goes: tables in this party's FATE data directory,
/// files under the attempt's `outputs/`.
fn output_artifacts(
    io: &Io,
    runtime: &FateRuntime,
    ids: &Ids,
    outputs_dir: &Path,
) -> Map<String, Value> {
    io.outputs
        .all()
        .map(|(_, def)| (def.name.clone(), output_uri(def, runtime, ids, outputs_dir)))
        .collect()
}

fn output_uri(def: &ArtifactDef, runtime: &FateRuntime, ids: &Ids, outputs_dir: &Path) -> Value {
    let type_name = def.types.first().map_or("json_metric", String::as_str);
    let uri = match type_name {
        "dataframe" | "table" => {
            let name = uuid::Uuid::new_v4().simple().to_string();
            let index = if def.is_multi { "_{index}" } else { "" };
            format!(
                "standalone://{}/{}/{name}{index}",
                runtime.data_dir, ids.task_id
            )
        }
        _ => {
            let index = if def.is_multi { "/{index}" } else { "" };
            format!(
                "file://{}/{}{index}/{type_name}",
                outputs_dir.display(),
                def.name
            )
        }
    };
    json!({"uri": uri, "type_name": type_name})
}

/// Runs `component execute` of `component` (or, with `import`, the import script that ends in
/// it) through fedflow's runner: in the attempt's warm interpreter if it has one (its first
/// pyfate process only), else cold as this worker's child.
async fn execute(
    runtime: &FateRuntime,
    task_dir: &Path,
    config: &TaskFile,
    config_path: &Path,
    result_path: &Path,
    import: Option<&Path>,
) -> Result<std::process::ExitStatus, String> {
    let fate_dir = task_dir.join("fate");
    let component = match import {
        Some(_) => "dataframe_transformer".to_owned(),
        None => FateTask::from_params(&config.parameters)
            .map(|t| t.component)
            .unwrap_or_default(),
    };
    let mut preload: Vec<String> = [
        "fate.components.entrypoint.cli.component.__main__",
        "fate.components.entrypoint.cli.component.execute_cli",
        "fate.components.core",
        "fate.arch",
        "fate.arch.computing.backends.standalone",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    if !component.is_empty() {
        preload.push(format!("fate.components.components.{component}"));
    }
    let (kind, target, argv, exit_path) = match import {
        Some(spec) => {
            let script = fate_dir.join("fate_import.py");
            std::fs::write(&script, IMPORT_SCRIPT)
                .map_err(|e| format!("write {}: {e}", script.display()))?;
            (
                "script",
                script.display().to_string(),
                vec![spec.display().to_string()],
                fate_dir.join("import_exit.json"),
            )
        }
        None => (
            "module",
            "fate.components".to_owned(),
            vec![
                "component".into(),
                "execute".into(),
                "--config".into(),
                config_path.display().to_string(),
                "--execution-final-meta-path".into(),
                result_path.display().to_string(),
            ],
            fate_dir.join("execute_exit.json"),
        ),
    };
    let assignment = crate::warm::Assignment {
        kind,
        target,
        argv,
        cwd: task_dir.to_path_buf(),
        env: BTreeMap::from([("FATE_JOB_ID".to_owned(), config.job_id.clone())]),
        unset: vec!["FEDFLOW_COMPONENT_CONFIG".into()],
        preload,
        exit_path,
    };
    let started = std::time::Instant::now();
    let ran = crate::warm::run(
        &runtime.python,
        runtime.warm.as_ref(),
        &fate_dir,
        &assignment,
    )
    .await;
    record_process_time(
        task_dir,
        started.elapsed(),
        ran.warm,
        ran.computing_ms,
        config.start_task_ms,
    );
    ran.status
}

/// Adds a pyfate process's wall time to the attempt's `fate/timing.json`
/// (`{"pyfate_ms", "processes", "warm", "start_to_computing_ms"}`): what the benchmark sets
/// beside the task's time. `warm` and `start_to_computing_ms` (`StartTask` at the
/// task-controller → the component's code begins, after pyfate's imports) are the first
/// process's: when the task began computing.
fn record_process_time(
    task_dir: &Path,
    took: std::time::Duration,
    warm: bool,
    computing_ms: Option<i64>,
    start_task_ms: Option<i64>,
) {
    let path = task_dir.join("fate").join("timing.json");
    let mut timing: Value = std::fs::read(&path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(json!({"pyfate_ms": 0.0, "processes": 0}));
    let ms = timing["pyfate_ms"].as_f64().unwrap_or(0.0) + took.as_secs_f64() * 1e3;
    let n = timing["processes"].as_u64().unwrap_or(0) + 1;
    timing["pyfate_ms"] = json!(ms);
    timing["processes"] = json!(n);
    if n == 1 {
        timing["warm"] = json!(warm);
        if let (Some(computing), Some(start)) = (computing_ms, start_task_ms) {
            timing["start_to_computing_ms"] = json!(computing - start);
        }
    }
    crate::note!(
        "fedflow-worker: pyfate process ran {:.0} ms ({})",
        took.as_secs_f64() * 1e3,
        if warm { "warm" } else { "cold" }
    );
    if let Err(e) = std::fs::write(&path, timing.to_string()) {
        crate::note!("fedflow-worker: cannot write {}: {e}", path.display());
    }
}

/// The outcome from the exit status and pyfate's execution final meta.
fn finish(
    status: Result<std::process::ExitStatus, String>,
    result_path: &Path,
    outputs_dir: &Path,
) -> Outcome {
    let status = match status {
        Ok(status) => status,
        Err(e) => return Outcome::Failed(e),
    };
    let meta: Option<Value> = std::fs::read(result_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let code = meta
        .as_ref()
        .and_then(|m| m.pointer("/status/code"))
        .and_then(Value::as_i64);
    match (&meta, code) {
        (Some(meta), Some(0)) if status.success() => register(meta, outputs_dir),
        (Some(meta), _) => {
            let exceptions = meta
                .pointer("/status/exceptions")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !exceptions.is_empty() {
                crate::note!("fedflow-worker: pyfate's exception:\n{exceptions}");
            }
            Outcome::Failed(reason(exceptions).unwrap_or_else(|| {
                format!("pyfate ended with {status} and no exception in its final meta")
            }))
        }
        (None, _) => Outcome::Failed(format!(
            "pyfate ended with {status} without writing its final meta (see the task's log)"
        )),
    }
}

/// The useful line of a Python traceback: its last non-empty line (`ValueError: ...`).
pub fn reason(traceback: &str) -> Option<String> {
    let line = traceback
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())?;
    let mut line = line.to_owned();
    if line.len() > 900 {
        let mut end = 900;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
        line.push_str("...");
    }
    Some(line)
}

/// Registers every output of a successful run.
fn register(meta: &Value, outputs_dir: &Path) -> Outcome {
    let mut produced = Vec::new();
    for kind in ["data", "model", "metric"] {
        let Some(entries) = meta
            .pointer(&format!("/io_meta/outputs/{kind}"))
            .and_then(Value::as_object)
        else {
            continue;
        };
        for (key, entry) in entries {
            let list: Vec<&Value> = match entry {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let many = list.len() > 1 || entry.is_array();
            for (index, entry) in list.into_iter().enumerate() {
                let output_key = if many {
                    format!("{key}.{index}")
                } else {
                    key.clone()
                };
                match output(kind, &output_key, entry, outputs_dir) {
                    Ok(o) => produced.push(o),
                    Err(e) => return Outcome::Failed(e),
                }
            }
        }
    }
    Outcome::Produced(produced)
}

/// One registered output: the file pyfate wrote under `outputs/`, or for anything else (a
/// table in the FATE data directory, a directory) a descriptor file holding pyfate's entry.
fn output(
    kind: &str,
    key: &str,
    entry: &Value,
    outputs_dir: &Path,
) -> Result<OutputArtifact, String> {
    let type_name = entry
        .get("type_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let uri = entry.get("uri").and_then(Value::as_str).unwrap_or_default();
    // Metrics pyfate POSTed live are in the attempt's metric file.
    let live = (uri.starts_with("http://") && type_name == "json_metric")
        .then(|| outputs_dir.join(key).join("json_metric"));
    let in_outputs = live
        .or_else(|| uri.strip_prefix("file://").map(PathBuf::from))
        .filter(|p| p.is_file())
        .and_then(|p| {
            p.strip_prefix(outputs_dir)
                .ok()
                .map(|r| r.display().to_string())
        });
    let file = match in_outputs {
        Some(relative) => relative,
        None => {
            let name = format!("{key}.{type_name}.json");
            std::fs::write(outputs_dir.join(&name), entry.to_string())
                .map_err(|e| format!("write the descriptor of output {key}: {e}"))?;
            name
        }
    };
    // What other parties may know of it: the row count, never pyfate's sample rows.
    let count = entry
        .pointer("/metadata/data_overview/count")
        .and_then(Value::as_u64);
    let overview = match count {
        Some(count) => json!({ "count": count }),
        None => json!({}),
    };
    Ok(OutputArtifact {
        output_key: key.to_owned(),
        kind: kind.to_owned(),
        type_name,
        file,
        metadata: entry.clone(),
        overview,
    })
}

/// FATE's `reader`: the registered table named by its parameters, as a dataframe.
async fn reader(task_dir: &Path, config: &TaskFile, runtime: &FateRuntime, ids: &Ids) -> Outcome {
    let Some(table) = config.inputs.get("table") else {
        return Outcome::Failed("reader: the task-controller resolved no table".into());
    };
    let (namespace, name) = table_names(table);
    let outputs_dir = task_dir.join("outputs");
    let entry = match table_dataframe(task_dir, config, runtime, ids, table).await {
        Ok(entry) => entry,
        Err(outcome) => return outcome,
    };
    let mut entry = entry;
    if let Some(meta) = entry.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("name".into(), json!(name));
        meta.insert("namespace".into(), json!(namespace));
        meta.insert(
            "source".into(),
            json!({"task_id": ids.task_id, "party_task_id": ids.party_task_id,
                   "task_name": config.component, "component": "reader",
                   "output_artifact_key": "output_data"}),
        );
    }
    match output("data", "output_data", &entry, &outputs_dir) {
        Ok(o) => Outcome::Produced(vec![o]),
        Err(e) => Outcome::Failed(e),
    }
}

/// A registered table's FATE names.
fn table_names(table: &InputArtifact) -> (String, String) {
    let text = |k: &str| {
        table
            .metadata
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (text("namespace"), text("name"))
}

/// The dataframe of a registered table: pyfate's entry for it. One dataframe per registered
/// table (its file and registration time name it), kept in the FATE data directory, so a
/// second job reading the table reads that; tasks importing the same table at once take turns
/// (a lock file beside it).
async fn table_dataframe(
    task_dir: &Path,
    config: &TaskFile,
    runtime: &FateRuntime,
    ids: &Ids,
    table: &InputArtifact,
) -> Result<Value, Outcome> {
    let md = &table.metadata;
    let (namespace, name) = table_names(table);
    let stamp = md.get("create_ms").and_then(Value::as_i64).unwrap_or(0);
    let digest = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (&table.path, stamp, md.to_string()).hash(&mut h);
        format!("{:016x}", h.finish())
    };
    let kept_dir = Path::new(&runtime.data_dir).join("fedflow_readers");
    let kept = kept_dir.join(format!("{namespace}.{name}.{digest}.json"));
    let read_kept = || {
        std::fs::read(&kept)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
    };
    if let Some(entry) = read_kept() {
        return Ok(entry);
    }
    if let Err(e) = std::fs::create_dir_all(&kept_dir) {
        return Err(Outcome::Failed(format!(
            "create {}: {e}",
            kept_dir.display()
        )));
    }
    let lock_path = kept.with_extension("lock");
    let lock = tokio::task::spawn_blocking(move || {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)?;
        file.lock()?;
        Ok::<_, std::io::Error>(file)
    })
    .await
    .map_err(|e| Outcome::Failed(format!("locking the table's import: {e}")))?
    .map_err(|e| Outcome::Failed(format!("locking the table's import: {e}")))?;
    // Another task may have imported it while this one waited.
    if let Some(entry) = read_kept() {
        return Ok(entry);
    }
    let entry = import(
        task_dir, config, runtime, ids, table, &namespace, &name, &digest,
    )
    .await?;
    let tmp = kept.with_extension("tmp");
    if std::fs::write(&tmp, entry.to_string()).is_ok() {
        let _ = std::fs::rename(&tmp, &kept);
    }
    drop(lock);
    Ok(entry)
}

/// Imports `table` and runs FATE's `dataframe_transformer` on it; returns the dataframe's
/// entry from pyfate's final meta.
#[allow(clippy::too_many_arguments)]
async fn import(
    task_dir: &Path,
    config: &TaskFile,
    runtime: &FateRuntime,
    ids: &Ids,
    table: &InputArtifact,
    namespace: &str,
    name: &str,
    digest: &str,
) -> Result<Value, Outcome> {
    let md = &table.metadata;
    let fate_dir = task_dir.join("fate");
    let meta = md.get("meta").cloned().unwrap_or(json!({}));
    let mut meta = meta.as_object().cloned().unwrap_or_default();
    // FATE's upload defaults for the breast-style dense tables fedflow's examples use.
    meta.entry("dtype").or_insert(json!("float64"));
    if meta.contains_key("label_name") {
        meta.entry("label_type").or_insert(json!("int64"));
    }
    let partitions = md
        .get("partitions")
        .and_then(Value::as_i64)
        .unwrap_or(4)
        .max(1);
    let transformer = Io {
        inputs: Default::default(),
        outputs: fate::builtin()
            .io("dataframe_transformer", "local", "default")
            .map(|io| io.outputs.clone())
            .unwrap_or_default(),
    };
    let mut outputs = output_artifacts(&transformer, runtime, ids, &fate_dir.join("import"));
    outputs.insert(
        "dataframe_output".into(),
        json!({"uri": format!("standalone://{}/fedflow_readers/{digest}", runtime.data_dir),
               "type_name": "dataframe"}),
    );
    let local = FateTask {
        component: "dataframe_transformer".into(),
        stage: "default".into(),
        parameters: json!({"namespace": namespace, "name": name})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        inputs: BTreeMap::new(),
        parties: vec![fate::Party {
            role: "local".into(),
            party_id: "0".into(),
        }],
    };
    let mut local_config = config.clone();
    local_config.role = "local".into();
    local_config.party_id = "0".into();
    let spec = TaskConfig {
        config: &local_config,
        runtime,
        task: &local,
        ids,
        federation: json!({
            "type": "standalone",
            "metadata": {
                "federation_id": format!("{}_import", ids.party_task_id),
                "parties": {"local": {"role": "local", "partyid": "0"},
                            "parties": [{"role": "local", "partyid": "0"}]},
            },
        }),
        inputs: Map::new(),
        outputs,
        log_dir: fate_dir.join("logs"),
    };
    let mut spec = spec.to_json();
    spec["task_name"] = json!(format!("{}_import", config.component));
    let config_path = fate_dir.join("import_parameters.json");
    let result_path = fate_dir.join("import_result.json");
    let import_spec = json!({
        "data_dir": runtime.data_dir,
        "csv": table.path,
        "head": true,
        "extend_sid": md.get("extend_sid").and_then(Value::as_bool).unwrap_or(false),
        "partitions": partitions,
        "meta": meta,
        "raw_namespace": "fedflow_tables",
        "raw_name": digest,
        "task_config": config_path.display().to_string(),
        "execute": ["component", "execute", "--config", config_path.display().to_string(),
                    "--execution-final-meta-path", result_path.display().to_string()],
    });
    let import_path = fate_dir.join("import.json");
    for (path, value) in [(&config_path, &spec), (&import_path, &import_spec)] {
        if let Err(e) = std::fs::write(path, value.to_string()) {
            return Err(Outcome::Failed(format!("write {}: {e}", path.display())));
        }
    }
    let status = execute(
        runtime,
        task_dir,
        config,
        &config_path,
        &result_path,
        Some(&import_path),
    )
    .await;
    // The import's own computing session (the raw table stays, the transformer's input).
    let _ = std::fs::remove_dir_all(
        Path::new(&runtime.data_dir).join(format!("fedflow_import_{digest}")),
    );
    match finish(status, &result_path, &fate_dir) {
        Outcome::Produced(outputs) => outputs
            .into_iter()
            .find(|o| o.output_key == "dataframe_output")
            .map(|o| o.metadata)
            .ok_or_else(|| Outcome::Failed("reader: the import wrote no dataframe".into())),
        Outcome::Failed(why) => Err(Outcome::Failed(format!(
            "reader: importing table {namespace}/{name} failed: {why}"
        ))),
        Outcome::Success(_) => Err(Outcome::Failed(
            "reader: the import wrote no dataframe".into(),
        )),
    }
}

/// Deletes the task's temporary tables: its computing session's namespace.
fn cleanup(runtime: &FateRuntime, ids: &Ids) {
    let dir = Path::new(&runtime.data_dir).join(&ids.party_task_id);
    if dir.exists()
        && let Err(e) = std::fs::remove_dir_all(&dir)
    {
        crate::note!(
            "fedflow-worker: cannot delete the temporary tables {}: {e}",
            dir.display()
        );
    }
}

/// The HTTP endpoint pyfate POSTs its metrics to (`{"data": [record]}` per call, as to
/// FATE-Flow's `/v2/worker/metric/save/<party_task_id>`), on loopback, for this attempt only:
/// every record goes into the metric file, rewritten whole (a temporary file, then a rename)
/// so a reader never sees half of it.
mod metrics {
    use std::path::PathBuf;
    use std::sync::{Arc, Mutex};

    use serde_json::Value;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    use tokio::net::{TcpListener, TcpStream};

    /// The most one POST may carry.
    const MAX_BODY: usize = 64 << 20;

    pub struct Sink {
        pub uri: String,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Sink {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Sink {
        pub async fn start(file: PathBuf, party_task_id: &str) -> std::io::Result<Sink> {
            if let Some(dir) = file.parent() {
                std::fs::create_dir_all(dir)?;
            }
            std::fs::write(&file, "[]")?;
            let listener = TcpListener::bind("127.0.0.1:0").await?;
            let uri = format!(
                "http://{}/v2/worker/metric/save/{party_task_id}",
                listener.local_addr()?
            );
            let records = Arc::new(Mutex::new(Vec::<Value>::new()));
            let task = tokio::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (file, records) = (file.clone(), records.clone());
                    tokio::spawn(async move {
                        if let Err(e) = serve(stream, &file, &records).await {
                            crate::note!("fedflow-worker: a metric POST failed: {e}");
                        }
                    });
                }
            });
            Ok(Sink { uri, task })
        }
    }

    async fn serve(
        stream: TcpStream,
        file: &std::path::Path,
        records: &Mutex<Vec<Value>>,
    ) -> Result<(), String> {
        let mut reader = BufReader::new(stream);
        loop {
            // One request: its line, its headers, its body.
            let mut line = String::new();
            if reader
                .read_line(&mut line)
                .await
                .map_err(|e| e.to_string())?
                == 0
            {
                return Ok(());
            }
            let mut length = 0usize;
            let mut header_bytes = 0usize;
            loop {
                let mut header = String::new();
                let n = reader
                    .read_line(&mut header)
                    .await
                    .map_err(|e| e.to_string())?;
                header_bytes += n;
                if n == 0 || header_bytes > 64 << 10 {
                    return Err("headers cut short or too long".into());
                }
                let header = header.trim_end();
                if header.is_empty() {
                    break;
                }
                if let Some((name, value)) = header.split_once(':')
                    && name.eq_ignore_ascii_case("content-length")
                {
                    length = value.trim().parse().map_err(|_| "bad Content-Length")?;
                }
            }
            if length > MAX_BODY {
                return Err(format!("a body of {length} bytes"));
            }
            let mut body = vec![0; length];
            reader
                .read_exact(&mut body)
                .await
                .map_err(|e| e.to_string())?;
            let (status, answer) = match serde_json::from_slice::<Value>(&body) {
                Ok(Value::Object(mut doc)) if line.starts_with("POST ") => {
                    let data = match doc.remove("data") {
                        Some(Value::Array(items)) => items,
                        Some(other) => vec![other],
                        None => Vec::new(),
                    };
                    let snapshot = {
                        let mut all = records.lock().unwrap_or_else(|p| p.into_inner());
                        all.extend(data);
                        Value::Array(all.clone()).to_string()
                    };
                    let tmp = file.with_extension("tmp");
                    std::fs::write(&tmp, snapshot)
                        .and_then(|_| std::fs::rename(&tmp, file))
                        .map_err(|e| e.to_string())?;
                    ("200 OK", r#"{"code":0,"message":"success"}"#)
                }
                _ => (
                    "400 Bad Request",
                    r#"{"code":400,"message":"expected POST {data: [...]}"}"#,
                ),
            };
            let response = format!(
                "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            );
            reader
                .get_mut()
                .write_all(response.as_bytes())
                .await
                .map_err(|e| e.to_string())?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reason_is_the_last_line_of_the_traceback() {
        let tb = "Traceback (most recent call last):\n  File \"x.py\", line 1\n    boom()\nValueError: epochs must be positive\n\n";
        assert_eq!(
            reason(tb).as_deref(),
            Some("ValueError: epochs must be positive")
        );
        assert_eq!(reason("  \n"), None);
    }
}
