//! `Train {iterations, learning_rate}`: a toy training component that needs no pyfate. It fits
//! a logistic regression by gradient descent to a small synthetic data set (made on the spot
//! from a fixed seed, so every run draws the same curve) and writes the metric `metric` in
//! pyfate's record shape: a `loss` record per iteration (`step_axis` iterations), then an
//! evaluation's `roc` curve (`fpr`, `tpr`) and `ks` curve (`threshold`, `tpr`, `fpr`, with
//! the KS statistic). It is what the board's metric plots are tested with.

use std::path::Path;

use fedflow_core::task_file::OutputArtifact;
use serde_json::{Map, Value, json};

use crate::Outcome;

/// Samples in the synthetic data set.
const SAMPLES: usize = 200;

/// A tiny deterministic generator (an LCG): the data set is the same on every run.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The data set: two features; the label is 1 when a noisy linear score is positive.
fn data() -> Vec<([f64; 2], f64)> {
    let mut rng = Lcg(42);
    (0..SAMPLES)
        .map(|_| {
            let x = [rng.next() * 4.0 - 2.0, rng.next() * 4.0 - 2.0];
            let noise = rng.next() * 1.6 - 0.8;
            let y = if 1.5 * x[0] - x[1] + noise > 0.0 {
                1.0
            } else {
                0.0
            };
            (x, y)
        })
        .collect()
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// The metric records of a training run of `iterations` steps at `rate`.
pub fn records(iterations: u32, rate: f64) -> Vec<Value> {
    let data = data();
    let n = data.len() as f64;
    let (mut w, mut b) = ([0.0f64; 2], 0.0f64);
    let mut records = Vec::new();
    for step in 0..iterations {
        let (mut gw, mut gb, mut loss) = ([0.0f64; 2], 0.0f64, 0.0f64);
        for (x, y) in &data {
            let p = sigmoid(w[0] * x[0] + w[1] * x[1] + b).clamp(1e-12, 1.0 - 1e-12);
            loss -= y * p.ln() + (1.0 - y) * (1.0 - p).ln();
            gw[0] += (p - y) * x[0];
            gw[1] += (p - y) * x[1];
            gb += p - y;
        }
        w[0] -= rate * gw[0] / n;
        w[1] -= rate * gw[1] / n;
        b -= rate * gb / n;
        records.push(json!({
            "name": "loss", "type": "loss", "groups": [{"name": "train", "index": null}],
            "step_axis": "iterations", "data": [{"step": step, "metric": loss / n}],
        }));
    }
    // Evaluation on the same data: scores, then the ROC and KS curves.
    let mut scored: Vec<(f64, f64)> = data
        .iter()
        .map(|(x, y)| (sigmoid(w[0] * x[0] + w[1] * x[1] + b), *y))
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = scored.iter().filter(|(_, y)| *y > 0.5).count().max(1) as f64;
    let negatives = (scored.len() as f64 - positives).max(1.0);
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut roc = vec![json!({"fpr": 0.0, "tpr": 0.0})];
    let mut ks_points = Vec::new();
    let mut ks: f64 = 0.0;
    let mut auc = 0.0;
    let mut last = (0.0, 0.0);
    for (i, (score, y)) in scored.iter().enumerate() {
        if *y > 0.5 {
            tp += 1.0;
        } else {
            fp += 1.0;
        }
        let (fpr, tpr) = (fp / negatives, tp / positives);
        auc += (fpr - last.0) * (tpr + last.1) / 2.0;
        last = (fpr, tpr);
        ks = ks.max(tpr - fpr);
        if i % 10 == 9 || i + 1 == scored.len() {
            roc.push(json!({"fpr": fpr, "tpr": tpr}));
            ks_points.push(json!({"threshold": score, "tpr": tpr, "fpr": fpr}));
        }
    }
    records.push(
        json!({"name": "roc", "type": "roc_curve", "groups": [{"name": "train"}],
                        "metadata": {"auc": auc}, "data": roc}),
    );
    records.push(
        json!({"name": "ks", "type": "ks_curve", "groups": [{"name": "train"}],
                        "metadata": {"ks": ks}, "data": ks_points}),
    );
    records
}

/// Runs the toy training and writes its metric under `outputs/metric/`.
pub fn run(task_dir: &Path, params: &Map<String, Value>) -> Outcome {
    let iterations = params
        .get("iterations")
        .and_then(Value::as_u64)
        .unwrap_or(20)
        .min(10_000) as u32;
    let rate = params
        .get("learning_rate")
        .and_then(Value::as_f64)
        .unwrap_or(0.5);
    let records = Value::Array(records(iterations, rate));
    let dir = task_dir.join("outputs").join("metric");
    let written = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(dir.join("metric.json"), records.to_string()));
    if let Err(e) = written {
        return Outcome::Failed(format!("Train: write {}: {e}", dir.display()));
    }
    Outcome::Produced(vec![OutputArtifact {
        output_key: "metric".into(),
        kind: "metric".into(),
        type_name: "json_metric".into(),
        file: "metric/metric.json".into(),
        metadata: json!({"name": "train"}),
        overview: json!({"iterations": iterations}),
    }])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_loss_falls_and_the_evaluation_separates_the_classes() {
        let records = records(30, 0.5);
        let loss: Vec<f64> = records
            .iter()
            .filter(|r| r["name"] == "loss")
            .map(|r| r["data"][0]["metric"].as_f64().unwrap_or(f64::NAN))
            .collect();
        assert_eq!(loss.len(), 30);
        assert!(loss[29] < loss[0] * 0.8, "loss {loss:?}");
        let roc = records
            .iter()
            .find(|r| r["name"] == "roc")
            .expect("a roc record");
        assert!(roc["metadata"]["auc"].as_f64().unwrap_or(0.0) > 0.8);
        let ks = records
            .iter()
            .find(|r| r["name"] == "ks")
            .expect("a ks record");
        assert!(ks["metadata"]["ks"].as_f64().unwrap_or(0.0) > 0.5);
    }
}
