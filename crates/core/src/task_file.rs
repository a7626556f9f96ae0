//! `task.json`: everything one worker attempt is told, written by the task-controller into the
//! attempt's task directory (mode 0600: it holds the token) and read by `fedflow-worker`.
//! One type for both sides, so the two halves of the contract cannot drift apart. The fields
//! are declared in alphabetical order so the file is byte-for-byte what earlier releases wrote
//! (an untyped JSON object, whose keys serialise sorted). Fields added later are optional and
//! left out when empty, so a file without them reads as before and older files read here.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The content of `task.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskFile {
    pub component: String,
    /// Where and as what the component talks to its peers on other parties: its party's
    /// data-plane port (FATE's OSX protocol), the task's federation session and every party
    /// of the task. Left out when the task-controller has no data plane configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_plane: Option<DataPlane>,
    /// A FATE component (`fate:<component_ref>`): this party's pyfate runtime. Left out for
    /// fedflow's own modules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fate: Option<FateRuntime>,
    /// How often the worker heartbeats.
    pub heartbeat_interval_ms: u64,
    /// The artifacts the component reads, by input key: `table` for a registered table a
    /// parameter names, `<upstream component>.<output key>` for an upstream output on this
    /// party. Resolved by the task-controller from its registries.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inputs: BTreeMap<String, InputArtifact>,
    pub job_id: String,
    /// The built-in module the worker runs (`Sleep`, `Fail`, `Sum`, ...).
    pub module: String,
    /// This party's resolved parameters of the component.
    pub parameters: Map<String, Value>,
    pub party_id: String,
    /// An external module: the executable this party's operator registered for it (from the
    /// task-controller's config, never from a DSL), which the worker runs as its child.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<Program>,
    pub role: String,
    /// When the task-controller took the `StartTask` that launched this attempt (unix ms):
    /// the start of "StartTask → pyfate computing". Left out by older task-controllers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_task_ms: Option<i64>,
    /// The task-controller's address, where the worker reports and heartbeats.
    pub task_controller: String,
    /// The attempt's secret: a report or heartbeat without it changes nothing.
    pub token: String,
    /// The upstream components whose outputs the module may read.
    pub upstream: Vec<String>,
    pub version: i32,
}

/// A task's place on the data plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPlane {
    /// The party-gateway's data-plane port, `host:port`.
    pub address: String,
    /// Every party of the task, by role (this one included).
    pub parties: Vec<DataPlaneParty>,
    /// FATE's federation session, `{job_id}_{component}_{version}`.
    pub session: String,
}

/// This party's FATE provider, as its task-controller is configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FateRuntime {
    /// The python of a venv holding pyfate.
    pub python: String,
    /// pyfate's standalone data directory on this party (its tables).
    pub data_dir: String,
    /// A warm interpreter of the task-controller's pool, given to this attempt alone: the
    /// worker hands it its first pyfate process instead of starting one. Left out when the
    /// pool is off or had none ready (the worker starts pyfate cold).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warm: Option<WarmInterpreter>,
}

/// A pre-started python that has imported pyfate's modules and waits for one assignment on
/// its unix socket ([`FATE_RUNNER`]'s `serve` mode). Its pid is trusted only with its start
/// time (`/proc/<pid>/stat`), so a reused pid is never taken for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarmInterpreter {
    pub pid: u32,
    pub start_time: u64,
    /// The interpreter's unix socket.
    pub socket: String,
}

/// The runner of pyfate processes, one script for both sides of its protocol: the worker runs
/// it for a cold start (`run ASSIGNMENT.json`), the task-controller's warm pool starts it as
/// `serve SOCKET PRELOAD`. Its header says the protocol.
pub const FATE_RUNNER: &str = include_str!("fate_runner.py");

/// A party of the task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataPlaneParty {
    pub party_id: String,
    pub role: String,
}

/// A registered component's executable, fixed arguments and environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Program {
    pub args: Vec<String>,
    pub command: String,
    pub env: BTreeMap<String, String>,
}

/// One input of a component: where it is and what its producer said of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InputArtifact {
    /// `data`, `model` or `metric`.
    pub kind: String,
    /// The producer's metadata, verbatim (a table's: its upload `meta`, columns and row count).
    pub metadata: Value,
    /// The file on this party's disk.
    pub path: String,
    /// FATE's type name (`dataframe`, `json_model`, ...).
    pub type_name: String,
    pub uri: String,
}

/// What a component wrote into `outputs/` of its task directory, listed in `outputs.json`
/// beside it and in the worker's success report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputArtifact {
    pub output_key: String,
    pub kind: String,
    pub type_name: String,
    /// The file, relative to `outputs/`.
    pub file: String,
    pub metadata: Value,
    /// What other parties may know of it (row count, ...): never content or paths.
    pub overview: Value,
}

impl TaskFile {
    /// The file's bytes.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a TaskFile always serialises")
    }

    /// Reads a file's bytes; the error says what is wrong with them.
    pub fn from_json(bytes: &[u8]) -> Result<TaskFile, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn sample() -> TaskFile {
        TaskFile {
            component: "train".into(),
            data_plane: None,
            fate: None,
            heartbeat_interval_ms: 1000,
            inputs: BTreeMap::new(),
            job_id: "202611261617000000001234".into(),
            module: "Sum".into(),
            parameters: json!({"value": 3, "b": [1, 2]})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            party_id: "9999".into(),
            program: None,
            role: "guest".into(),
            start_task_ms: None,
            task_controller: "127.0.0.1:9382".into(),
            token: "abc".into(),
            upstream: vec!["reader".into()],
            version: 2,
        }
    }

    #[test]
    fn the_file_is_what_the_untyped_writer_wrote() {
        let file = sample();
        // The shape the task-controller used to build by hand.
        let untyped = json!({
            "job_id": file.job_id,
            "component": file.component,
            "version": file.version,
            "role": file.role,
            "party_id": file.party_id,
            "module": file.module,
            "parameters": Value::Object(file.parameters.clone()),
            "upstream": file.upstream,
            "task_controller": file.task_controller,
            "token": file.token,
            "heartbeat_interval_ms": file.heartbeat_interval_ms,
        });
        assert_eq!(
            String::from_utf8(file.to_json()).expect("utf-8"),
            untyped.to_string()
        );
    }

    #[test]
    fn a_file_round_trips_and_a_missing_field_is_named() {
        let file = sample();
        assert_eq!(TaskFile::from_json(&file.to_json()).expect("reads"), file);
        let err = TaskFile::from_json(br#"{"job_id": "j"}"#).expect_err("incomplete");
        assert!(err.to_string().contains("missing field"), "{err}");
    }
}
