//! FATE 2.x components (pyfate): the catalog of what each component reads and writes per role
//! and stage, and the task description a FATE task carries from the DAG to its worker.
//!
//! The catalog is what pyfate 2.2.0's `component artifact-type --name C --role R --stage S`
//! answers for every component, role and stage, asked once (by `scripts/fate-catalog.py`) and
//! kept in `fate/catalog-2.2.0.json`, so a submission is checked against it before anything is
//! stored and no task spends seconds asking pyfate again.
//!
//! A FATE task's module is `fate:<component_ref>`; its parameters are a [`FateTask`]: the
//! stage, pyfate's own parameters for this party, the inputs' bindings to producers' outputs
//! and the task's parties (the federation's members, which may be fewer than the job's).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The module prefix of a FATE component: `fate:psi`.
pub const MODULE_PREFIX: &str = "fate:";

/// The provider version whose catalog is built in.
pub const VERSION: &str = "2.2.0";

/// `fate:psi` -> `psi`.
pub fn component_of(module: &str) -> Option<&str> {
    module.strip_prefix(MODULE_PREFIX)
}

/// `psi` -> `fate:psi`.
pub fn module_of(component_ref: &str) -> String {
    format!("{MODULE_PREFIX}{component_ref}")
}

/// Every component of one provider version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    pub provider: String,
    pub version: String,
    pub components: BTreeMap<String, ComponentDef>,
}

/// One component: the roles it serves and, per role and stage, its inputs and outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComponentDef {
    pub roles: Vec<String>,
    /// role -> stage -> definition. A stage absent for a role is one the component lacks.
    pub io: BTreeMap<String, BTreeMap<String, Io>>,
}

#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Io {
    pub inputs: Side,
    pub outputs: Side,
}

/// Artifacts by kind.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Side {
    pub data: Vec<ArtifactDef>,
    pub model: Vec<ArtifactDef>,
    pub metric: Vec<ArtifactDef>,
}

impl Side {
    /// Every artifact with its kind (`data`, `model`, `metric`).
    pub fn all(&self) -> impl Iterator<Item = (&'static str, &ArtifactDef)> {
        let data = self.data.iter().map(|a| ("data", a));
        let model = self.model.iter().map(|a| ("model", a));
        let metric = self.metric.iter().map(|a| ("metric", a));
        data.chain(model).chain(metric)
    }

    pub fn find(&self, name: &str) -> Option<(&'static str, &ArtifactDef)> {
        self.all().find(|(_, a)| a.name == name)
    }
}

/// One input or output slot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArtifactDef {
    pub name: String,
    pub is_multi: bool,
    pub optional: bool,
    /// FATE type names (`dataframe`, `table`, `json_model`, `json_metric`, `model_directory`,
    /// `data_unresolved`, `data_directory`, ...).
    pub types: Vec<String>,
}

impl Catalog {
    /// The definition of `component` for `role` at `stage`.
    pub fn io(&self, component: &str, role: &str, stage: &str) -> Option<&Io> {
        self.components.get(component)?.io.get(role)?.get(stage)
    }

    /// The stage a task of `component` runs at when the DAG asks for `wanted`: `wanted` if the
    /// component has it for `role`, else `default` if that is all it has (FATE-Flow's rule:
    /// `psi` in a `train` job runs at `default`).
    pub fn stage_for(&self, component: &str, role: &str, wanted: &str) -> Option<String> {
        let stages = self.components.get(component)?.io.get(role)?;
        if stages.contains_key(wanted) {
            Some(wanted.to_owned())
        } else if stages.contains_key("default") {
            Some("default".to_owned())
        } else {
            None
        }
    }
}

/// pyfate 2.2.0's catalog, built in.
pub fn builtin() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        serde_json::from_str(include_str!("fate/catalog-2.2.0.json"))
            .expect("the built-in FATE catalog parses")
    })
}

/// Where one input comes from: an output of an upstream task of this job (or, from FATE's
/// `model_warehouse` or `data_warehouse`, of an earlier job, or a table registered on the
/// party), on this party in this role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub producer_task: String,
    pub output_artifact_key: String,
    /// The earlier job whose output it is (a warehouse input); absent: this job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// A table registered on each party (`data_warehouse: {name, namespace}`): the input is
    /// its dataframe; `producer_task` and `output_artifact_key` are empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableRef>,
}

/// A registered table by its FATE names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TableRef {
    pub namespace: String,
    pub name: String,
}

impl Source {
    /// The key of the input in a task file's `inputs`: `producer.output` for this job's,
    /// `job/producer.output` for an earlier job's.
    pub fn input_key(&self) -> String {
        if let Some(t) = &self.table {
            return format!("table:{}/{}", t.namespace, t.name);
        }
        match &self.job_id {
            None => format!("{}.{}", self.producer_task, self.output_artifact_key),
            Some(job) => format!("{job}/{}.{}", self.producer_task, self.output_artifact_key),
        }
    }
}

/// One input of a FATE task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    /// `data` or `model`.
    pub kind: String,
    /// The slot takes a list (`evaluation`'s `input_datas`).
    pub multi: bool,
    pub sources: Vec<Source>,
}

/// A party of a task, as the federation names it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Party {
    pub role: String,
    pub party_id: String,
}

/// What a FATE task's parameters hold (one party's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FateTask {
    /// FATE's `component_ref`.
    pub component: String,
    /// `default`, `train`, `predict`, ...
    pub stage: String,
    /// pyfate's parameters for this party: the task's, then its `party_tasks` overrides.
    pub parameters: Map<String, Value>,
    /// By input slot.
    pub inputs: BTreeMap<String, Input>,
    /// Every party the task runs on (the federation's members), this one included.
    pub parties: Vec<Party>,
}

impl FateTask {
    pub fn to_params(&self) -> Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("a FateTask serialises to an object"),
        }
    }

    /// Reads a task's parameters; the error says what is wrong.
    pub fn from_params(params: &Map<String, Value>) -> Result<FateTask, String> {
        serde_json::from_value(Value::Object(params.clone()))
            .map_err(|e| format!("not a FATE task description: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_knows_the_demo_components() {
        let c = builtin();
        assert_eq!(c.version, VERSION);
        let psi = c.io("psi", "guest", "default").expect("psi guest");
        assert!(psi.inputs.find("input_data").is_some());
        assert!(psi.outputs.find("output_data").is_some());
        assert_eq!(
            c.stage_for("psi", "host", "train").as_deref(),
            Some("default")
        );
        assert_eq!(
            c.stage_for("coordinated_lr", "arbiter", "train").as_deref(),
            Some("train")
        );
        assert!(c.io("coordinated_lr", "arbiter", "train").is_some());
        assert!(c.io("psi", "arbiter", "default").is_none());
    }

    #[test]
    fn a_task_round_trips_through_its_parameters() {
        let task = FateTask {
            component: "psi".into(),
            stage: "default".into(),
            parameters: Map::new(),
            inputs: BTreeMap::from([(
                "input_data".into(),
                Input {
                    kind: "data".into(),
                    multi: false,
                    sources: vec![Source {
                        producer_task: "reader_0".into(),
                        output_artifact_key: "output_data".into(),
                        job_id: None,
                        table: None,
                    }],
                },
            )]),
            parties: vec![Party {
                role: "guest".into(),
                party_id: "9999".into(),
            }],
        };
        assert_eq!(FateTask::from_params(&task.to_params()), Ok(task));
        assert!(FateTask::from_params(&Map::new()).is_err());
    }
}
