//! Every key of every service is documented in `deploy/config/<service>.toml`: each file
//! parses (unknown keys are refused), names exactly the keys the service has, and shows the
//! defaults.

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn keys(value: &Value, prefix: &str, into: &mut BTreeSet<String>) {
    if let Value::Object(map) = value {
        for (key, inner) in map {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            if inner.is_object() && !inner.as_object().is_some_and(|m| m.is_empty()) {
                keys(inner, &path, into);
            } else {
                into.insert(path);
            }
        }
    }
}

fn check<T>(file: &str)
where
    T: DeserializeOwned + Serialize + Default + PartialEq + std::fmt::Debug,
{
    let path = format!("{}/../deploy/config/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("the example config exists");
    let parsed: T = fedflow_config::from_toml(&text).unwrap_or_else(|e| panic!("{file}: {e}"));
    assert_eq!(parsed, T::default(), "{file} shows the defaults");
    let raw: Value = fedflow_config::from_toml(&text).expect("parses as data");
    let mut documented = BTreeSet::new();
    keys(&raw, "", &mut documented);
    let mut expected = BTreeSet::new();
    keys(
        &serde_json::to_value(T::default()).expect("serialises"),
        "",
        &mut expected,
    );
    let missing: Vec<_> = expected.difference(&documented).collect();
    assert!(missing.is_empty(), "{file} does not document {missing:?}");
}

#[test]
fn example_configs_document_every_key_with_its_default() {
    check::<fedflow_scheduler::Config>("scheduler.toml");
    check::<fedflow_job_controller::Config>("job-controller.toml");
    check::<fedflow_task_controller::Config>("task-controller.toml");
    check::<fedflow_party_gateway::Config>("party-gateway.toml");
}

#[test]
fn a_typo_in_a_config_file_is_refused() {
    let err = fedflow_config::from_toml::<fedflow_scheduler::Config>("party_idd = \"1\"")
        .expect_err("unknown key");
    assert!(err.to_string().contains("party_idd"), "{err}");
}
