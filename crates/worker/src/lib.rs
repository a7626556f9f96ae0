//! fedflow's task worker. The task-controller starts one per task attempt as
//! `fedflow-worker --task-dir DIR`; everything else comes from `DIR/task.json` ([`TaskFile`],
//! written mode 0600: it holds the attempt's token). The worker reports `running`, heartbeats,
//! runs the component named by `module` from the built-in registry, writes its output under
//! the task directory and reports the end status, with the failure reason if any.
//!
//! Built-in modules: `Sleep {seconds, until_file}`, `Fail {message, roles, attempts}`,
//! `Sum {value}`, `Gather {value, timeout_s}` (the data plane, [`gather`]), `Train
//! {iterations, learning_rate}` (a toy training with a loss curve and an evaluation,
//! [`train`]), and
//! the artifact components of [`data`]: `Reader {table}`, `Statistics`. Any other module runs
//! the executable this party registered for it ([`external`]); `fate:<component>` runs FATE's
//! own component with this party's pyfate ([`fate`]).

/// `eprintln!` that never panics: the worker's stderr is its task directory's `worker.log`,
/// and a full disk must not turn a line of log into a crash (a lost worker) while the
/// task-controller could still take its report.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

pub mod data;
pub mod external;
pub mod fate;
pub mod gather;
pub mod train;
pub mod warm;

use fedflow_core::task_file::OutputArtifact;
use serde_json::{Map, Value, json};

/// `task.json`, shared with the task-controller that writes it.
pub use fedflow_core::task_file::TaskFile;

/// How a component ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Success, with the data output if the component has one.
    Success(Option<Value>),
    /// Success, with the artifacts written under `outputs/` (registered on this party).
    Produced(Vec<OutputArtifact>),
    Failed(String),
}

/// Sleep: sleeps `seconds`, then succeeds. With `until_file`, it sleeps until that file
/// exists instead (looked for every 100 ms): a test holds a task running that way and lets
/// it go when it chooses.
pub async fn sleep(params: &Map<String, Value>) -> Outcome {
    if let Some(file) = params.get("until_file").and_then(Value::as_str) {
        let file = std::path::Path::new(file);
        while !file.exists() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        return Outcome::Success(None);
    }
    let seconds = params.get("seconds").and_then(Value::as_f64).unwrap_or(0.0);
    if seconds > 0.0 {
        tokio::time::sleep(std::time::Duration::from_secs_f64(seconds)).await;
    }
    Outcome::Success(None)
}

/// Fail: fails with `message` on the listed roles (all if empty) while the version is below
/// `attempts` (always, if not given); succeeds otherwise.
pub fn fail(params: &Map<String, Value>, role: &str, version: i32) -> Outcome {
    let message = params
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("failed on purpose")
        .to_owned();
    let roles: Vec<&str> = params
        .get("roles")
        .and_then(Value::as_array)
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let applies = roles.is_empty() || roles.contains(&role);
    let attempts = params.get("attempts").and_then(Value::as_i64);
    let still_failing = attempts.is_none_or(|n| i64::from(version) < n);
    if applies && still_failing {
        Outcome::Failed(message)
    } else {
        Outcome::Success(None)
    }
}

/// Sum: `{"value": value + Σ upstream values}`.
pub fn sum(params: &Map<String, Value>, upstream_values: &[i64]) -> Outcome {
    let own = params.get("value").and_then(Value::as_i64).unwrap_or(0);
    let total = upstream_values
        .iter()
        .try_fold(own, |acc, v| acc.checked_add(*v));
    match total {
        Some(total) => Outcome::Success(Some(json!({ "value": total }))),
        None => Outcome::Failed("sum overflows a 64-bit integer".into()),
    }
}

/// The `value` of an upstream output, if it has one.
pub fn value_of(output_json: &str) -> Option<i64> {
    serde_json::from_str::<Value>(output_json)
        .ok()?
        .get("value")?
        .as_i64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn fail_respects_roles_and_attempts() {
        let p = params(json!({"message": "boom", "roles": ["host"], "attempts": 2}));
        assert_eq!(fail(&p, "host", 0), Outcome::Failed("boom".into()));
        assert_eq!(fail(&p, "host", 1), Outcome::Failed("boom".into()));
        assert_eq!(fail(&p, "host", 2), Outcome::Success(None));
        assert_eq!(fail(&p, "guest", 0), Outcome::Success(None));
        let always = params(json!({}));
        assert!(matches!(fail(&always, "arbiter", 7), Outcome::Failed(_)));
    }

    #[test]
    fn sum_adds_upstream_values() {
        let p = params(json!({"value": 4}));
        assert_eq!(
            sum(&p, &[3, 4]),
            Outcome::Success(Some(json!({"value": 11})))
        );
        assert!(matches!(sum(&p, &[i64::MAX]), Outcome::Failed(_)));
        assert_eq!(value_of(r#"{"value": 5}"#), Some(5));
        assert_eq!(value_of(""), None);
    }
}
