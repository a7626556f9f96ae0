//! The built-in components that read and write artifacts: `Reader` (a registered table, as a
//! data artifact with its schema and row count) and `Statistics` (per-column summaries of an
//! upstream data artifact, as a metric and a small model). Each writes its files under
//! `outputs/` of the task directory and returns the list the worker reports; the
//! task-controller registers them with the success. Overviews carry counts only, never
//! content: they are what other parties may see.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::Path;

use fedflow_core::task_file::{InputArtifact, OutputArtifact, TaskFile};
use serde_json::{Map, Value, json};

use crate::Outcome;

/// Writes `bytes` to `outputs/<key>/<file>` and describes it.
fn write_output(task_dir: &Path, key: &str, file: &str, bytes: &[u8]) -> Result<String, String> {
    let dir = task_dir.join("outputs").join(key);
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let path = dir.join(file);
    std::fs::write(&path, bytes).map_err(|e| format!("write {}: {e}", path.display()))?;
    Ok(format!("{key}/{file}"))
}

/// Reader: the table its parameters name (resolved by the task-controller as input `table`),
/// as the data artifact `output_data` with FATE's schema fields.
pub fn reader(task_dir: &Path, config: &TaskFile) -> Outcome {
    let Some(table) = config.inputs.get("table") else {
        return Outcome::Failed("Reader: no table among the inputs".into());
    };
    match read_table(task_dir, table) {
        Ok(outputs) => Outcome::Produced(outputs),
        Err(e) => Outcome::Failed(format!("Reader: {e}")),
    }
}

fn read_table(task_dir: &Path, table: &InputArtifact) -> Result<Vec<OutputArtifact>, String> {
    let dir = task_dir.join("outputs").join("output_data");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let target = dir.join("data.csv");
    let _ = std::fs::remove_file(&target);
    // A link shares the bytes (the table's file is never rewritten, only replaced).
    if std::fs::hard_link(&table.path, &target).is_err() {
        std::fs::copy(&table.path, &target).map_err(|e| format!("copy {}: {e}", table.path))?;
    }
    let m = &table.metadata;
    let meta = m.get("meta").cloned().unwrap_or(Value::Null);
    let columns = m.get("columns").cloned().unwrap_or(Value::Null);
    let row_count = m.get("row_count").cloned().unwrap_or(Value::Null);
    let delimiter = meta.get("delimiter").and_then(Value::as_str).unwrap_or(",");
    let label = m.get("label_name").and_then(Value::as_str).unwrap_or("");
    let schema = json!({
        "header": columns,
        "delimiter": delimiter,
        "sample_id_name": m.get("match_id_name"),
        "match_id_name": m.get("match_id_name"),
        "label_name": if label.is_empty() { Value::Null } else { json!(label) },
        "dtype": meta.get("dtype"),
    });
    Ok(vec![OutputArtifact {
        output_key: "output_data".into(),
        kind: "data".into(),
        type_name: "dataframe".into(),
        file: "output_data/data.csv".into(),
        metadata: json!({
            "schema": schema,
            "source_table": {"namespace": m.get("namespace"), "name": m.get("name")},
            "meta": meta,
            "row_count": row_count,
        }),
        overview: json!({
            "row_count": row_count,
            "column_count": columns.as_array().map(Vec::len),
        }),
    }])
}

/// Per-column count, mean, min, max and standard deviation of a numeric column.
#[derive(Debug, Default, Clone)]
struct Summary {
    count: u64,
    sum: f64,
    sum_sq: f64,
    min: f64,
    max: f64,
}

impl Summary {
    fn add(&mut self, x: f64) {
        if self.count == 0 {
            self.min = x;
            self.max = x;
        }
        self.count += 1;
        self.sum += x;
        self.sum_sq += x * x;
        self.min = self.min.min(x);
        self.max = self.max.max(x);
    }

    fn to_json(&self) -> Value {
        let n = self.count as f64;
        let mean = if self.count > 0 { self.sum / n } else { 0.0 };
        let var = if self.count > 1 {
            ((self.sum_sq - n * mean * mean) / (n - 1.0)).max(0.0)
        } else {
            0.0
        };
        json!({"count": self.count, "mean": mean, "min": self.min, "max": self.max,
               "stddev": var.sqrt()})
    }
}

/// Statistics: reads its one upstream data artifact and writes the metric `metric` and the
/// model `output_model` (per-column summaries of the numeric feature columns).
pub fn statistics(task_dir: &Path, config: &TaskFile) -> Outcome {
    let data: Vec<(&String, &InputArtifact)> = config
        .inputs
        .iter()
        .filter(|(_, a)| a.kind == "data")
        .collect();
    let (key, input) = match data.as_slice() {
        [one] => *one,
        [] => {
            return Outcome::Failed(
                "Statistics: no upstream data artifact among the inputs".into(),
            );
        }
        many => {
            return Outcome::Failed(format!(
                "Statistics: {} data inputs, expected one",
                many.len()
            ));
        }
    };
    match summarise(task_dir, key, input) {
        Ok(outputs) => Outcome::Produced(outputs),
        Err(e) => Outcome::Failed(format!("Statistics: {e}")),
    }
}

fn summarise(
    task_dir: &Path,
    key: &str,
    input: &InputArtifact,
) -> Result<Vec<OutputArtifact>, String> {
    let schema = input.metadata.get("schema").cloned().unwrap_or(Value::Null);
    let text = |field: &str| schema.get(field).and_then(Value::as_str).map(str::to_owned);
    let delimiter = text("delimiter").unwrap_or_else(|| ",".into());
    let skip: Vec<String> = [text("match_id_name"), text("label_name")]
        .into_iter()
        .flatten()
        .collect();
    let file = std::fs::File::open(&input.path).map_err(|e| format!("{key}: {e}"))?;
    let mut lines = std::io::BufReader::new(file).lines();
    let header = lines
        .next()
        .ok_or(format!("{key}: empty"))?
        .map_err(|e| e.to_string())?;
    let columns: Vec<String> = header
        .split(delimiter.as_str())
        .map(|c| c.trim().to_owned())
        .collect();
    let mut summaries: BTreeMap<usize, Summary> = BTreeMap::new();
    let mut rows = 0u64;
    for (n, line) in lines.enumerate() {
        let line = line.map_err(|e| format!("{key}: line {}: {e}", n + 2))?;
        if line.trim().is_empty() {
            continue;
        }
        rows += 1;
        for (i, field) in line.split(delimiter.as_str()).enumerate() {
            if skip.contains(&columns[i.min(columns.len() - 1)]) {
                continue;
            }
            if let Ok(x) = field.trim().parse::<f64>() {
                summaries.entry(i).or_default().add(x);
            }
        }
    }
    let mut per_column = Map::new();
    for (i, s) in &summaries {
        if let Some(name) = columns.get(*i) {
            per_column.insert(name.clone(), s.to_json());
        }
    }
    let metric = json!({"name": "statistics", "type": "statistics",
                        "data": {"row_count": rows, "columns": per_column}});
    let model = json!({"input": key, "row_count": rows, "columns": per_column});
    let metric_file = write_output(
        task_dir,
        "metric",
        "metric.json",
        metric.to_string().as_bytes(),
    )?;
    let model_file = write_output(
        task_dir,
        "output_model",
        "model.json",
        model.to_string().as_bytes(),
    )?;
    let overview = json!({"row_count": rows, "column_count": per_column.len()});
    Ok(vec![
        OutputArtifact {
            output_key: "metric".into(),
            kind: "metric".into(),
            type_name: "json_metric".into(),
            file: metric_file,
            metadata: json!({"name": "statistics"}),
            overview: overview.clone(),
        },
        OutputArtifact {
            output_key: "output_model".into(),
            kind: "model".into(),
            type_name: "json_model".into(),
            file: model_file,
            metadata: json!({"input": key}),
            overview,
        },
    ])
}
