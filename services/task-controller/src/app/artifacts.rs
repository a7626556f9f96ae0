//! The party's artifacts registry: the outputs a successful attempt lists are checked (each a
//! regular file under the attempt's `outputs/`) and registered with the success, in one
//! transaction; a downstream task's inputs are resolved from it (and a `Reader`'s table from
//! the data registry) into its task file; users list and read them here, on this party only.
//! Also the attempts' logs (`worker.log` in the attempt's directory).

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use fedflow_core::task_file::{InputArtifact, OutputArtifact};
use fedflow_rpc::now_ms;
use serde_json::{Value, json};

use super::{App, Error};
use crate::domain::{self, Task, TaskKey};
use crate::store::{Artifact, Table};

/// The most of an artifact's or a log's content one read returns.
pub const MAX_READ_BYTES: u64 = 4 << 20;

/// What to read of one artifact.
#[derive(Debug, Clone)]
pub struct ReadArtifact {
    pub job_id: String,
    pub component: String,
    pub output_key: Option<String>,
    pub kind: Option<String>,
    pub limit: u32,
}

/// What to read of one attempt's log.
#[derive(Debug, Clone)]
pub struct ReadLog {
    pub job_id: String,
    pub component: String,
    pub role: String,
    pub party_id: String,
    pub tail: u32,
    pub offset: u64,
}

/// A slice of a log.
#[derive(Debug, Clone)]
pub struct LogSlice {
    pub content: Vec<u8>,
    pub offset: u64,
    pub version: i32,
    pub ended: bool,
}

/// `file://` URI of a path.
pub fn uri(path: &str) -> String {
    format!("file://{path}")
}

impl App {
    /// The attempt's directory (built from ids checked when the row was made).
    pub(crate) fn attempt_dir(&self, key: &TaskKey) -> PathBuf {
        self.data_dir()
            .join("jobs")
            .join(&key.job_id)
            .join(&key.role)
            .join(&key.party_id)
            .join(&key.component)
            .join(key.version.to_string())
    }

    /// The inputs of `task`: its `Reader` table, and every artifact of its upstream
    /// components' latest successful versions in its role here. The error is the task's
    /// failure reason.
    pub(super) async fn resolve_inputs(
        &self,
        task: &Task,
        params: &serde_json::Map<String, Value>,
    ) -> Result<BTreeMap<String, InputArtifact>, String> {
        let mut inputs = BTreeMap::new();
        let fate_reader = task.module == fedflow_core::fate::module_of("reader");
        if task.module == "Reader" || fate_reader {
            let named = if fate_reader {
                fedflow_core::fate::FateTask::from_params(params)
                    .ok()
                    .and_then(|t| fedflow_core::modules::reader_table(&t.parameters))
            } else {
                fedflow_core::modules::reader_table(params)
            };
            let (namespace, name) =
                named.ok_or("reader: no table named (parameters namespace and name)")?;
            let table = self
                .inner
                .store
                .table(&namespace, &name)
                .await
                .map_err(|e| format!("reading the data registry: {e}"))?
                .ok_or_else(|| {
                    format!(
                        "table {namespace}/{name} is not registered on party {}",
                        self.party_id()
                    )
                })?;
            inputs.insert("table".to_owned(), table_input(&table));
        }
        // A FATE task's inputs from earlier jobs (model_warehouse, data_warehouse).
        if fedflow_core::fate::component_of(&task.module).is_some()
            && let Ok(fate) = fedflow_core::fate::FateTask::from_params(params)
        {
            for source in fate.inputs.values().flat_map(|i| &i.sources) {
                if let Some(t) = &source.table {
                    let table = self
                        .inner
                        .store
                        .table(&t.namespace, &t.name)
                        .await
                        .map_err(|e| format!("reading the data registry: {e}"))?
                        .ok_or_else(|| {
                            format!(
                                "table {}/{} is not registered on party {}",
                                t.namespace,
                                t.name,
                                self.party_id()
                            )
                        })?;
                    inputs.insert(source.input_key(), table_input(&table));
                } else if let Some(job) = &source.job_id {
                    let artifact = self
                        .earlier_output(
                            job,
                            &source.producer_task,
                            &source.output_artifact_key,
                            &task.key.role,
                        )
                        .await?;
                    inputs.insert(source.input_key(), artifact);
                }
            }
        }
        // Sleep, Fail and Sum read no artifacts (Sum reads its upstream's value output): no
        // registry reads on their starts.
        if task.upstream.is_empty() || matches!(task.module.as_str(), "Sleep" | "Fail" | "Sum") {
            return Ok(inputs);
        }
        let tasks = self
            .inner
            .store
            .job_tasks(&task.key.job_id)
            .await
            .map_err(|e| format!("reading the task rows: {e}"))?;
        let artifacts = self
            .inner
            .store
            .artifacts(&task.key.job_id, None)
            .await
            .map_err(|e| format!("reading the artifacts registry: {e}"))?;
        for up in &task.upstream {
            let Some(producer) = domain::latest_success(&tasks, up, &task.key.role) else {
                continue;
            };
            for a in artifacts.iter().filter(|a| a.key == producer.key) {
                inputs.insert(
                    format!("{up}.{}", a.output_key),
                    InputArtifact {
                        kind: a.kind.clone(),
                        metadata: serde_json::from_str(&a.metadata).unwrap_or(Value::Null),
                        path: a.path.clone(),
                        type_name: a.type_name.clone(),
                        uri: uri(&a.path),
                    },
                );
            }
        }
        Ok(inputs)
    }

    /// An earlier job's output on this party: `producer`'s latest successful version in `role`.
    /// The error is the task's failure reason.
    async fn earlier_output(
        &self,
        job_id: &str,
        producer: &str,
        output_key: &str,
        role: &str,
    ) -> Result<InputArtifact, String> {
        let party = self.party_id();
        fedflow_core::ids::job_id(job_id).map_err(|e| format!("job {job_id:?}: {e}"))?;
        let tasks = self
            .inner
            .store
            .job_tasks(job_id)
            .await
            .map_err(|e| format!("reading the task rows: {e}"))?;
        let producer_task = domain::latest_success(&tasks, producer, role).ok_or_else(|| {
            format!("job {job_id} has no successful {producer} as {role} on party {party}")
        })?;
        let artifacts = self
            .inner
            .store
            .artifacts(job_id, Some(producer))
            .await
            .map_err(|e| format!("reading the artifacts registry: {e}"))?;
        let a = artifacts
            .iter()
            .find(|a| a.key == producer_task.key && a.output_key == output_key)
            .ok_or_else(|| {
                format!("job {job_id}'s {producer} has no output {output_key} as {role} on party {party}")
            })?;
        Ok(InputArtifact {
            kind: a.kind.clone(),
            metadata: serde_json::from_str(&a.metadata).unwrap_or(Value::Null),
            path: a.path.clone(),
            type_name: a.type_name.clone(),
            uri: uri(&a.path),
        })
    }

    /// The registry rows of the outputs an attempt reports; the error says which output is
    /// wrong (the attempt then fails with it).
    pub(super) fn check_outputs(
        &self,
        key: &TaskKey,
        outputs: &[OutputArtifact],
    ) -> Result<Vec<Artifact>, String> {
        let root = self.attempt_dir(key).join("outputs");
        let root = root
            .canonicalize()
            .map_err(|e| format!("outputs directory {}: {e}", root.display()))?;
        let mut seen = std::collections::BTreeSet::new();
        let mut rows = Vec::with_capacity(outputs.len());
        for o in outputs {
            let bad = |why: String| format!("output {:?}: {why}", o.output_key);
            if !fedflow_core::modules::table_part(&o.output_key) {
                return Err(bad("not a valid output key".into()));
            }
            if !seen.insert(o.output_key.clone()) {
                return Err(bad("listed twice".into()));
            }
            if !matches!(o.kind.as_str(), "data" | "model" | "metric") {
                return Err(bad(format!(
                    "kind {:?} is not data, model or metric",
                    o.kind
                )));
            }
            let path = root
                .join(&o.file)
                .canonicalize()
                .map_err(|e| bad(format!("file {:?}: {e}", o.file)))?;
            let meta = std::fs::symlink_metadata(&path).map_err(|e| bad(e.to_string()))?;
            if !path.starts_with(&root) || !meta.is_file() {
                return Err(bad(format!(
                    "file {:?} is not a file under the attempt's outputs",
                    o.file
                )));
            }
            rows.push(Artifact {
                key: key.clone(),
                output_key: o.output_key.clone(),
                kind: o.kind.clone(),
                type_name: o.type_name.clone(),
                path: path.display().to_string(),
                size_bytes: meta.len(),
                metadata: o.metadata.to_string(),
                overview: o.overview.to_string(),
                create_ms: now_ms(),
            });
        }
        Ok(rows)
    }

    /// A job's artifacts on this party: each component's latest registered version per role.
    pub async fn artifacts(
        &self,
        job_id: &str,
        component: Option<&str>,
    ) -> Result<Vec<Artifact>, Error> {
        fedflow_core::ids::job_id(job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let all = self.inner.store.artifacts(job_id, component).await?;
        let mut latest: BTreeMap<(String, String), i32> = BTreeMap::new();
        for a in &all {
            let v = latest
                .entry((a.key.component.clone(), a.key.role.clone()))
                .or_insert(a.key.version);
            *v = (*v).max(a.key.version);
        }
        Ok(all
            .into_iter()
            .filter(|a| latest[&(a.key.component.clone(), a.key.role.clone())] == a.key.version)
            .collect())
    }

    /// One artifact and (up to [`MAX_READ_BYTES`]; a data artifact's first `limit` rows) its
    /// content; `true` when cut.
    pub async fn read_artifact(&self, r: ReadArtifact) -> Result<(Artifact, Vec<u8>, bool), Error> {
        let found: Vec<Artifact> = self
            .artifacts(&r.job_id, Some(&r.component))
            .await?
            .into_iter()
            .filter(|a| r.output_key.as_ref().is_none_or(|k| *k == a.output_key))
            .filter(|a| r.kind.as_ref().is_none_or(|k| *k == a.kind))
            .collect();
        let what = format!(
            "component {} of job {} on party {}",
            r.component,
            r.job_id,
            self.party_id()
        );
        let artifact = match found.as_slice() {
            [] => match self.live_metric(&r).await? {
                Some(live) => live,
                None => return Err(Error::NotFound(format!("no such output of {what}"))),
            },
            [one] => one.clone(),
            many => {
                return Err(Error::InvalidArgument(format!(
                    "{what} has {} outputs that match ({}): name one",
                    many.len(),
                    many.iter()
                        .map(|a| a.output_key.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
        };
        let limit = if r.limit == 0 { 100 } else { r.limit } as usize;
        let path = PathBuf::from(&artifact.path);
        let (content, cut) = tokio::task::spawn_blocking(move || {
            read_bounded(&path, (artifact_is_data(&path)).then_some(limit + 1))
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))?
        .map_err(|e| Error::Internal(format!("reading {}: {e}", artifact.path)))?;
        Ok((artifact, content, cut))
    }

    /// A running FATE task's metrics so far (pyfate POSTs them to its worker as it computes
    /// them), when the metric is asked for and nothing is registered yet.
    async fn live_metric(&self, r: &ReadArtifact) -> Result<Option<Artifact>, Error> {
        if r.kind.as_deref().is_some_and(|k| k != "metric")
            || r.output_key.as_deref().is_some_and(|k| k != "metric")
        {
            return Ok(None);
        }
        let tasks = self.inner.store.job_tasks(&r.job_id).await?;
        // Of this party's running attempts (host and arbiter may share a party), the one
        // with the most metrics so far.
        let Some((task, path, meta)) = tasks
            .iter()
            .filter(|t| {
                t.key.component == r.component
                    && t.party_status == fedflow_core::TaskStatus::Running
            })
            .filter_map(|t| {
                let path = self.attempt_dir(&t.key).join("outputs/metric/json_metric");
                let meta = std::fs::metadata(&path).ok()?;
                Some((t, path, meta))
            })
            .max_by_key(|(_, _, meta)| meta.len())
        else {
            return Ok(None);
        };
        Ok(Some(Artifact {
            key: task.key.clone(),
            output_key: "metric".into(),
            kind: "metric".into(),
            type_name: "json_metric".into(),
            path: path.display().to_string(),
            size_bytes: meta.len(),
            metadata: "{}".into(),
            overview: json!({"live": true}).to_string(),
            create_ms: now_ms(),
        }))
    }

    /// The log of the latest attempt of a task of this party, from `offset` (or its last
    /// `tail` lines).
    pub async fn read_log(&self, r: ReadLog) -> Result<LogSlice, Error> {
        self.check_party(&r.party_id)?;
        fedflow_core::ids::job_id(&r.job_id).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let tasks = self.inner.store.job_tasks(&r.job_id).await?;
        let task = tasks
            .iter()
            .filter(|t| t.key.component == r.component && t.key.role == r.role)
            .max_by_key(|t| t.key.version)
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no task of component {} of job {} for {} {} here",
                    r.component, r.job_id, r.role, r.party_id
                ))
            })?;
        let path = self.attempt_dir(&task.key).join("worker.log");
        let ended = task.party_status.is_end();
        let (tail, offset) = (r.tail, r.offset);
        let (content, next) = tokio::task::spawn_blocking(move || read_log(&path, offset, tail))
            .await
            .map_err(|e| Error::Internal(e.to_string()))?;
        Ok(LogSlice {
            content,
            offset: next,
            version: task.key.version,
            ended,
        })
    }
}

/// A table as a component's input: its file and its meta, columns and row count.
fn table_input(table: &Table) -> InputArtifact {
    let meta: Value = serde_json::from_str(&table.meta).unwrap_or(Value::Null);
    InputArtifact {
        kind: "data".into(),
        metadata: json!({
            "namespace": table.namespace,
            "name": table.name,
            "meta": meta,
            "columns": table.columns,
            "row_count": table.row_count,
            "match_id_name": table.id_name,
            "label_name": table.label_name,
            "partitions": table.partitions,
            "extend_sid": table.extend_sid,
            "create_ms": table.create_ms,
        }),
        path: table.path.clone(),
        type_name: "table".into(),
        uri: uri(&table.path),
    }
}

fn artifact_is_data(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "csv")
}

/// At most [`MAX_READ_BYTES`] of `path`, and with `lines`, at most that many lines.
fn read_bounded(path: &Path, lines: Option<usize>) -> std::io::Result<(Vec<u8>, bool)> {
    let mut buf = Vec::new();
    let file = std::fs::File::open(path)?;
    let total = file.metadata()?.len();
    file.take(MAX_READ_BYTES).read_to_end(&mut buf)?;
    let mut cut = total > MAX_READ_BYTES;
    if let Some(lines) = lines
        && let Some((at, _)) = buf
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .nth(lines.saturating_sub(1))
        && at + 1 < buf.len()
    {
        buf.truncate(at + 1);
        cut = true;
    }
    Ok((buf, cut))
}

/// A log from `offset` (or its last `tail` lines when reading from the start); a missing log
/// reads as empty.
fn read_log(path: &Path, offset: u64, tail: u32) -> (Vec<u8>, u64) {
    let Ok(mut file) = std::fs::File::open(path) else {
        return (Vec::new(), offset);
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = if offset == 0 {
        len.saturating_sub(MAX_READ_BYTES)
    } else {
        offset.min(len)
    };
    let mut buf = Vec::new();
    if file.seek(SeekFrom::Start(start)).is_err()
        || file.take(MAX_READ_BYTES).read_to_end(&mut buf).is_err()
    {
        return (Vec::new(), offset);
    }
    let next = start + buf.len() as u64;
    if offset == 0 && tail > 0 {
        let newlines: Vec<usize> = buf
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i)
            .collect();
        let n = tail as usize;
        let ends_with_newline = buf.last() == Some(&b'\n');
        let lines = newlines.len() + usize::from(!ends_with_newline && !buf.is_empty());
        if lines > n {
            // Keep the last n lines: cut after the newline that ends line (lines - n).
            let cut_after = newlines[lines - n - 1];
            buf.drain(..=cut_after);
        }
    }
    (buf, next)
}
