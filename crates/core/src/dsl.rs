//! The FATE-Flow DSL v2 and runtime conf v2 (reference §7.1, §7.3), accepted as FATE 1.x users
//! write them, and turned into a validated [`JobSpec`].
//!
//! [`parse`] checks everything that can be checked before anything is stored: JSON shape and
//! size, duplicate keys, component names, modules, references to upstream components and their
//! declared outputs, cycles (the error names the loop), roles and parties, the initiator, and
//! each party's resolved parameters. Every error names the offending field.
//!
//! A submission comes from a client that may be hostile, so [`parse`] does no more work than
//! linear in the input (times the bounded number of participants): a DSL or conf over its size
//! limit is refused before it is read, JSON nested deeper than [`MAX_DEPTH`] is refused while it
//! is read, and too many components or participants are refused before they are walked.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::ids::Participant;

mod components;
mod fate2;
#[cfg(test)]
mod fate2_tests;
mod params;
mod roles;
mod strict_json;
#[cfg(test)]
mod tests;

pub use strict_json::parse_json_strict;

use components::{parse_components, topological_order};
use roles::parse_roles;

/// How deeply arrays and objects may nest in a DSL or a runtime conf, the outermost object
/// being level 1. FATE's deepest sections (`component_parameters.role.<role>.<index>.<component>
/// .<parameter>`) are about 8 levels. Deeper input is refused while it is read ("nested too
/// deeply"), before serde_json's own limit of 128 is reached, so no walk over a parsed document
/// (merging, validation, drop) can recurse further than this.
pub const MAX_DEPTH: usize = 32;

/// Size limits on a submission (nesting depth: [`MAX_DEPTH`]). Deserializes from a config
/// section, each missing limit taking its default.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_dsl_bytes: usize,
    pub max_conf_bytes: usize,
    pub max_components: usize,
    pub max_parties: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_dsl_bytes: 1 << 20,
            max_conf_bytes: 1 << 20,
            max_components: 500,
            max_parties: 64,
        }
    }
}

/// A rejected submission: the field at fault and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

/// The longest field or message a [`SpecError`] carries, in bytes: a name taken from the input
/// can be as long as the input, and the error goes back to the client in a gRPC status, which
/// travels as an HTTP/2 header.
pub const MAX_ERROR_TEXT: usize = 1024;

fn err(field: impl Into<String>, message: impl Into<String>) -> SpecError {
    SpecError {
        field: clip(field.into()),
        message: clip(message.into()),
    }
}

/// `value` as a JSON object, or the error `field: message`.
fn object<'a>(
    value: &'a Value,
    field: impl Into<String>,
    message: &str,
) -> Result<&'a Map<String, Value>, SpecError> {
    value.as_object().ok_or_else(|| err(field, message))
}

/// The member `key` of `object`, or the error `field: missing`.
fn member<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    field: impl Into<String>,
) -> Result<&'a Value, SpecError> {
    object.get(key).ok_or_else(|| err(field, "missing"))
}

/// The member `key` of the document `name`'s top-level object, itself an object (else the error
/// `name.key: message`): `dsl.components`, `runtime_conf.role`.
fn member_object<'a>(
    root: &'a Map<String, Value>,
    name: &str,
    key: &str,
    message: &str,
) -> Result<&'a Map<String, Value>, SpecError> {
    let field = format!("{name}.{key}");
    object(member(root, key, &field)?, field, message)
}

/// `text`, cut to at most [`MAX_ERROR_TEXT`] bytes (on a character boundary) and marked "...".
fn clip(mut text: String) -> String {
    if text.len() > MAX_ERROR_TEXT {
        let mut end = MAX_ERROR_TEXT - 3;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("...");
    }
    text
}

/// Where an input comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// `data`, `model`, `isometric_model` or `cache`.
    pub kind: String,
    /// For data inputs, the key (`data`, `train_data`, ...); empty otherwise.
    pub key: String,
    pub component: String,
    pub output: String,
}

/// One node of the DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    pub name: String,
    pub module: String,
    /// FATE's `provider`: set (and not `fedflow`), the module is one each party's operator
    /// registers (an external executable); its parameters are the component's to check.
    pub provider: Option<String>,
    pub inputs: Vec<Input>,
    /// Distinct upstream components, in the order first referenced.
    pub upstream: Vec<String>,
}

/// Job parameters that fedflow acts on, resolved for one participant (common, then the role
/// sections that select it). Unknown FATE keys are accepted and kept in the conf.
#[derive(Debug, Clone, PartialEq)]
pub struct JobParams {
    /// Cores each task needs on this party (FATE `task_cores`, default 4; arbiter 0... see
    /// [`JobSpec::job_params`]).
    pub task_cores: u32,
    /// How many tasks of the job may run at once (FATE `task_parallelism`, default 1).
    pub task_parallelism: u32,
    /// Memory per task in MB (FATE `task_memory`, default 0).
    pub task_memory_mb: u32,
    /// Queue order: higher first, then older first.
    pub priority: i32,
    /// Job time limit in seconds, counted from start (FATE `timeout`).
    pub timeout_secs: Option<u64>,
    /// Per-task time limit in seconds, counted from the task's start.
    pub task_timeout_secs: Option<u64>,
    /// Longest wait in the queue for resources, in seconds (fedflow's `queue_timeout`).
    pub queue_timeout_secs: Option<u64>,
    pub auto_retries: u32,
    pub auto_retry_delay_secs: f64,
}

impl JobParams {
    /// Cores the job reserves on a party for its whole run.
    pub fn job_cores(&self) -> u32 {
        self.task_cores.saturating_mul(self.task_parallelism)
    }

    pub fn job_memory_mb(&self) -> u32 {
        self.task_memory_mb.saturating_mul(self.task_parallelism)
    }
}

/// What one participant runs for one component.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskPlan {
    pub component: String,
    pub module: String,
    pub params: Map<String, Value>,
    pub need_run: bool,
    pub upstream: Vec<String>,
}

/// A validated submission.
#[derive(Debug, Clone)]
pub struct JobSpec {
    /// In topological order: every component comes after its upstream components.
    pub components: Vec<Component>,
    /// role -> party ids, in the conf's order (the index selects role sections).
    pub roles: BTreeMap<String, Vec<String>>,
    pub initiator: Participant,
    pub dsl: Value,
    pub conf: Value,
    /// The validated DAG of a FATE 2.x submission (`dsl` holds its document, `conf` is `{}`).
    fate2: Option<std::sync::Arc<fate2::Dag>>,
}

/// Parses and validates a DSL v2 + runtime conf v2, or a FATE 2.x DAG (a DSL whose root has
/// `dag`, with an empty runtime conf; see [`fate2`]).
pub fn parse(dsl_text: &str, conf_text: &str, limits: &Limits) -> Result<JobSpec, SpecError> {
    // Both sizes first: an oversized document is refused before either is read.
    check_size("dsl", dsl_text, limits.max_dsl_bytes)?;
    check_size("runtime_conf", conf_text, limits.max_conf_bytes)?;
    let dsl = parse_json_strict("dsl", dsl_text)?;
    if fate2::is_dag(&dsl) {
        let spec = fate2::parse(dsl, conf_text, limits)?;
        spec.check_parameters()?;
        return Ok(spec);
    }
    let conf = parse_json_strict("runtime_conf", conf_text)?;
    let components = parse_components(&dsl, limits)?;
    let ordered = topological_order(components, "dsl.components")?;
    let (roles, initiator) = parse_roles(&conf, limits)?;
    let spec = JobSpec {
        components: ordered,
        roles,
        initiator,
        dsl,
        conf,
        fate2: None,
    };
    spec.check_parameters()?;
    Ok(spec)
}

fn check_size(field: &str, text: &str, max: usize) -> Result<(), SpecError> {
    if text.len() > max {
        return Err(err(
            field,
            format!("too large: {} bytes, at most {max}", text.len()),
        ));
    }
    Ok(())
}

impl JobSpec {
    /// Every participant, role by role, parties in conf order.
    pub fn participants(&self) -> Vec<Participant> {
        self.roles
            .iter()
            .flat_map(|(role, parties)| {
                parties.iter().map(move |p| Participant {
                    role: role.clone(),
                    party_id: p.clone(),
                })
            })
            .collect()
    }

    /// Whether the submission is a FATE 2.x DAG (its components are `fate:` modules).
    pub fn is_fate2(&self) -> bool {
        self.fate2.is_some()
    }

    /// The field that chooses the initiator, for errors about it.
    pub fn initiator_field(&self) -> &'static str {
        if self.is_fate2() {
            "dag.conf.initiator_party_id"
        } else {
            "runtime_conf.initiator"
        }
    }

    /// Distinct party ids taking part.
    pub fn party_ids(&self) -> BTreeSet<String> {
        self.roles.values().flatten().cloned().collect()
    }

    pub fn component(&self, name: &str) -> Option<&Component> {
        self.components.iter().find(|c| c.name == name)
    }

    fn index_of(&self, who: &Participant) -> Option<usize> {
        self.roles
            .get(&who.role)?
            .iter()
            .position(|p| *p == who.party_id)
    }

    /// Components downstream of `roots`, transitively, including the roots.
    pub fn downstream_closure(&self, roots: &[String]) -> BTreeSet<String> {
        let mut closure: BTreeSet<String> = roots.iter().cloned().collect();
        // Topological order: one pass picks up every descendant.
        for component in &self.components {
            if component.upstream.iter().any(|u| closure.contains(u)) {
                closure.insert(component.name.clone());
            }
        }
        closure
    }
}
