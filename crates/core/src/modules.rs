//! The components a worker can run, by `module` name, and the shape of their parameters.
//! A DSL names a module; it can never name a path or a command. Parameters are checked at
//! submit so a typo fails the submit, not a worker an hour later.

use serde_json::{Map, Value};

/// Built-in modules compiled into `fedflow-worker`.
pub const BUILTIN: &[&str] = &[
    "Sleep",
    "Fail",
    "Sum",
    "Reader",
    "Statistics",
    "Gather",
    "Train",
];

/// Parameter keys any module accepts (they steer the scheduler, not the component).
const COMMON_KEYS: &[&str] = &["need_run"];

pub fn is_known(module: &str) -> bool {
    BUILTIN.contains(&module)
}

/// Checks one party's resolved parameters for `module`; the error names the parameter.
pub fn validate_params(module: &str, params: &Map<String, Value>) -> Result<(), String> {
    let allowed: &[&str] = match module {
        // `until_file`: sleep until that file exists (a test's hold on a running task).
        "Sleep" => &["seconds", "until_file"],
        "Fail" => &["message", "roles", "attempts"],
        "Sum" => &["value"],
        // The table, as `{"table": {"namespace", "name"}}` or FATE 2's flat `namespace`, `name`.
        "Reader" => &["table", "namespace", "name"],
        "Statistics" => &[],
        // A toy training run that reports a loss curve and an evaluation.
        "Train" => &["iterations", "learning_rate"],
        // Every party's value goes to the guest over the data plane; `timeout_s` bounds the
        // guest's wait for each.
        "Gather" => &["value", "timeout_s"],
        other => return Err(format!("unknown module {other:?}")),
    };
    for (key, value) in params {
        if COMMON_KEYS.contains(&key.as_str()) {
            if key == "need_run" && !value.is_boolean() {
                return Err("parameter need_run: expected true or false".into());
            }
            continue;
        }
        if !allowed.contains(&key.as_str()) {
            return Err(format!(
                "unknown parameter {key:?} for module {module} (expected one of {})",
                allowed.join(", ")
            ));
        }
        let ok = match (module, key.as_str()) {
            ("Sleep", "seconds") => value
                .as_f64()
                .is_some_and(|s| (0.0..=86_400.0).contains(&s)),
            ("Sleep", "until_file") => value.as_str().is_some_and(|f| !f.is_empty()),
            ("Train", "iterations") => value.as_u64().is_some_and(|n| (1..=10_000).contains(&n)),
            ("Train", "learning_rate") => value.as_f64().is_some_and(|r| r > 0.0 && r <= 100.0),
            ("Fail", "message") => value.is_string(),
            ("Fail", "roles") => value.as_array().is_some_and(|roles| {
                roles
                    .iter()
                    .all(|r| r.as_str().is_some_and(|r| crate::ids::role(r).is_ok()))
            }),
            ("Fail", "attempts") => value.as_u64().is_some_and(|n| n <= 1_000),
            ("Sum" | "Gather", "value") => value.as_i64().is_some(),
            ("Gather", "timeout_s") => value
                .as_f64()
                .is_some_and(|s| (0.0..=86_400.0).contains(&s)),
            ("Reader", "table") => value.as_object().is_some_and(|t| {
                t.len() == 2
                    && ["namespace", "name"]
                        .iter()
                        .all(|k| t.get(*k).and_then(Value::as_str).is_some_and(table_part))
            }),
            ("Reader", "namespace" | "name") => value.as_str().is_some_and(table_part),
            _ => true,
        };
        if !ok {
            let expected = match (module, key.as_str()) {
                ("Sleep", "seconds") | ("Gather", "timeout_s") => {
                    "a number of seconds from 0 to 86400"
                }
                ("Sleep", "until_file") => "a file path",
                ("Train", "iterations") => "a whole number from 1 to 10000",
                ("Train", "learning_rate") => "a number above 0, at most 100",
                ("Fail", "message") => "a string",
                ("Fail", "roles") => "a list of roles (guest, host, arbiter, local)",
                ("Fail", "attempts") => "a whole number from 0 to 1000",
                ("Reader", "table") => {
                    "{\"namespace\": .., \"name\": ..} of letters, digits, _ . -"
                }
                ("Reader", _) => "1 to 64 letters, digits, _ . -",
                _ => "an integer",
            };
            return Err(format!("parameter {key}: expected {expected}, got {value}"));
        }
    }
    Ok(())
}

/// The shape of an external module's name: a letter, then up to 63 letters, digits or `_`.
pub fn is_external_name(module: &str) -> bool {
    let mut chars = module.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && module.len() <= 64
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A table's namespace or name: 1 to 64 of `[A-Za-z0-9_.-]`, not starting with a dot (it
/// names a directory).
pub fn table_part(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// The table a `Reader`'s parameters name: `(namespace, name)`.
pub fn reader_table(params: &Map<String, Value>) -> Option<(String, String)> {
    let from = |o: &Map<String, Value>| {
        Some((
            o.get("namespace")?.as_str()?.to_owned(),
            o.get("name")?.as_str()?.to_owned(),
        ))
    };
    match params.get("table").and_then(Value::as_object) {
        Some(table) => from(table),
        None => from(params),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `validate_params` on the parameters written as a JSON object.
    fn check(module: &str, v: Value) -> Result<(), String> {
        validate_params(module, &v.as_object().cloned().unwrap_or_default())
    }

    #[test]
    fn builtin_parameters_are_checked_by_shape() {
        assert!(check("Sleep", json!({"seconds": 0.5})).is_ok());
        assert!(check("Sleep", json!({"seconds": "5"})).is_err());
        assert!(check("Sleep", json!({"secs": 1})).is_err());
        assert!(check("Fail", json!({"roles": ["host"], "attempts": 2})).is_ok());
        assert!(check("Fail", json!({"roles": ["boss"]})).is_err());
        assert!(check("Sum", json!({"value": 3, "need_run": false})).is_ok());
        assert!(check("Sum", json!({"value": 1.5})).is_err());
        assert!(check("Sum", json!({"need_run": "no"})).is_err());
        assert!(check("HeteroLR", json!({})).is_err());
        let table = json!({"table": {"namespace": "experiment", "name": "breast"}});
        assert!(check("Reader", table.clone()).is_ok());
        assert!(check("Reader", json!({"namespace": "experiment", "name": "b"})).is_ok());
        assert!(
            check(
                "Reader",
                json!({"table": {"namespace": "../x", "name": "b"}})
            )
            .is_err()
        );
        assert!(check("Reader", json!({"table": {"name": "b"}})).is_err());
        assert!(check("Statistics", json!({"x": 1})).is_err());
        let params = table.as_object().cloned().unwrap_or_default();
        assert_eq!(
            reader_table(&params),
            Some(("experiment".into(), "breast".into()))
        );
    }
}
