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

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt::{self, Write as _};

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

use crate::ids::{self, Participant};
use crate::modules;

/// How deeply arrays and objects may nest in a DSL or a runtime conf, the outermost object
/// being level 1. FATE's deepest sections (`component_parameters.role.<role>.<index>.<component>
/// .<parameter>`) are about 8 levels. Deeper input is refused while it is read ("nested too
/// deeply"), before serde_json's own limit of 128 is reached, so no walk over a parsed document
/// (merging, validation, drop) can recurse further than this.
pub const MAX_DEPTH: usize = 32;

/// Size limits on a submission (nesting depth: [`MAX_DEPTH`]).
#[derive(Debug, Clone, Copy)]
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
}

/// Parses and validates a DSL v2 + runtime conf v2.
pub fn parse(dsl_text: &str, conf_text: &str, limits: &Limits) -> Result<JobSpec, SpecError> {
    if dsl_text.len() > limits.max_dsl_bytes {
        return Err(err(
            "dsl",
            format!(
                "too large: {} bytes, at most {}",
                dsl_text.len(),
                limits.max_dsl_bytes
            ),
        ));
    }
    if conf_text.len() > limits.max_conf_bytes {
        return Err(err(
            "runtime_conf",
            format!(
                "too large: {} bytes, at most {}",
                conf_text.len(),
                limits.max_conf_bytes
            ),
        ));
    }
    let dsl = parse_json_strict("dsl", dsl_text)?;
    let conf = parse_json_strict("runtime_conf", conf_text)?;
    let components = parse_components(&dsl, limits)?;
    let ordered = topological_order(components)?;
    let (roles, initiator) = parse_roles(&conf, limits)?;
    let spec = JobSpec {
        components: ordered,
        roles,
        initiator,
        dsl,
        conf,
    };
    spec.check_parameters()?;
    Ok(spec)
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

    /// The job parameters for one participant: `job_parameters.common`, overridden by every
    /// `job_parameters.role.<role>.<selector>` that selects it.
    pub fn job_params(&self, who: &Participant) -> Result<JobParams, SpecError> {
        let mut merged = Map::new();
        for layer in self.layers("job_parameters", who)? {
            deep_merge(&mut merged, layer);
        }
        let field = |key: &str| format!("job_parameters.{key} (for {who})");
        let uint = |key: &str, default: u64, max: u64| -> Result<u64, SpecError> {
            match merged.get(key) {
                None | Some(Value::Null) => Ok(default),
                Some(v) => v.as_u64().filter(|n| *n <= max).ok_or_else(|| {
                    err(
                        field(key),
                        format!("expected a whole number from 0 to {max}, got {v}"),
                    )
                }),
            }
        };
        let task_cores = uint("task_cores", 4, 4096)? as u32;
        let task_parallelism = uint("task_parallelism", 1, 1024)?.max(1) as u32;
        let task_memory_mb = uint("task_memory", 0, 1 << 24)? as u32;
        let priority = match merged.get("priority") {
            None | Some(Value::Null) => 0,
            Some(v) => v
                .as_i64()
                .filter(|p| (-1_000_000..=1_000_000).contains(p))
                .ok_or_else(|| err(field("priority"), format!("expected an integer, got {v}")))?
                as i32,
        };
        let secs = |key: &str| -> Result<Option<u64>, SpecError> {
            match merged.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_u64()
                    .filter(|n| *n > 0)
                    .map(Some)
                    .ok_or_else(|| err(field(key), format!("expected seconds > 0, got {v}"))),
            }
        };
        let timeout_secs = secs("timeout")?;
        let task_timeout_secs = secs("task_timeout")?;
        let queue_timeout_secs = secs("queue_timeout")?;
        let auto_retries = uint("auto_retries", 0, 100)? as u32;
        let auto_retry_delay_secs = match merged.get("auto_retry_delay") {
            None | Some(Value::Null) => 1.0,
            Some(v) => v
                .as_f64()
                .filter(|d| (0.0..=86_400.0).contains(d))
                .ok_or_else(|| {
                    err(
                        field("auto_retry_delay"),
                        format!("expected seconds from 0 to 86400, got {v}"),
                    )
                })?,
        };
        Ok(JobParams {
            task_cores,
            task_parallelism,
            task_memory_mb,
            priority,
            timeout_secs,
            task_timeout_secs,
            queue_timeout_secs,
            auto_retries,
            auto_retry_delay_secs,
        })
    }

    /// The job's priority: the initiator's resolved `priority`.
    pub fn priority(&self) -> i32 {
        self.job_params(&self.initiator)
            .map(|p| p.priority)
            .unwrap_or(0)
    }

    /// What `who` runs: one plan per component, in topological order, with its resolved
    /// parameters (`component_parameters.common.<c>`, then matching role sections, deep-merged).
    pub fn task_plans(&self, who: &Participant) -> Result<Vec<TaskPlan>, SpecError> {
        // One pass over the layers for all components, so the work is linear in the conf.
        let mut by_component: HashMap<&str, Map<String, Value>> = HashMap::new();
        for layer in self.layers("component_parameters", who)? {
            let Some(layer) = layer.as_object() else {
                continue;
            };
            for (name, params) in layer {
                deep_merge(by_component.entry(name.as_str()).or_default(), params);
            }
        }
        self.components
            .iter()
            .map(|component| {
                let params = by_component
                    .remove(component.name.as_str())
                    .unwrap_or_default();
                let need_run = params
                    .get("need_run")
                    .and_then(Value::as_bool)
                    .unwrap_or(true);
                Ok(TaskPlan {
                    component: component.name.clone(),
                    module: component.module.clone(),
                    params,
                    need_run,
                    upstream: component.upstream.clone(),
                })
            })
            .collect()
    }

    /// The parts of `<section>` that apply to `who`, in merge order: `<section>.common`, then
    /// each `<section>.role.<role>.<selector>` that selects `who`, `"all"` first so a specific
    /// index wins over it.
    fn layers<'s>(&'s self, section: &str, who: &Participant) -> Result<Vec<&'s Value>, SpecError> {
        let mut layers = Vec::new();
        let Some(root) = self.conf.get(section) else {
            return Ok(layers);
        };
        if let Some(common) = root.get("common") {
            layers.push(common);
        }
        let by_selector = root
            .get("role")
            .and_then(|r| r.get(&who.role))
            .and_then(Value::as_object);
        if let (Some(by_selector), Some(index)) = (by_selector, self.index_of(who)) {
            let parties = self.roles.get(&who.role).map_or(0, Vec::len);
            let mut sections: Vec<(&String, &Value)> = by_selector.iter().collect();
            sections.sort_by_key(|(selector, _)| *selector != "all");
            for (selector, value) in sections {
                let hit = selects(selector, index, parties).map_err(|message| {
                    err(format!("{section}.role.{}.{selector}", who.role), message)
                })?;
                if hit {
                    layers.push(value);
                }
            }
        }
        Ok(layers)
    }

    fn check_parameters(&self) -> Result<(), SpecError> {
        let names: HashSet<&str> = self.components.iter().map(|c| c.name.as_str()).collect();
        for section in ["job_parameters", "component_parameters"] {
            let Some(root) = self.conf.get(section) else {
                continue;
            };
            let root = root
                .as_object()
                .ok_or_else(|| err(section, "expected an object with common and role"))?;
            for (key, value) in root {
                let field = format!("{section}.{key}");
                match key.as_str() {
                    "common" => {
                        let common = value
                            .as_object()
                            .ok_or_else(|| err(&field, "expected an object"))?;
                        if section == "component_parameters" {
                            check_component_keys(&names, &field, common)?;
                        }
                    }
                    "role" => {
                        let by_role = value
                            .as_object()
                            .ok_or_else(|| err(&field, "expected an object keyed by role"))?;
                        for (role, by_selector) in by_role {
                            let field = format!("{field}.{role}");
                            let parties = self.roles.get(role).ok_or_else(|| {
                                err(&field, format!("role {role:?} is not in the conf's role"))
                            })?;
                            let by_selector = by_selector.as_object().ok_or_else(|| {
                                err(&field, "expected an object keyed by party index")
                            })?;
                            for (selector, params) in by_selector {
                                let field = format!("{field}.{selector}");
                                selects(selector, 0, parties.len())
                                    .map_err(|message| err(&field, message))?;
                                let params = params
                                    .as_object()
                                    .ok_or_else(|| err(&field, "expected an object"))?;
                                if section == "component_parameters" {
                                    check_component_keys(&names, &field, params)?;
                                }
                            }
                        }
                    }
                    other => {
                        return Err(err(
                            &field,
                            format!("unknown key {other:?} (expected common or role)"),
                        ));
                    }
                }
            }
        }
        for who in self.participants() {
            self.job_params(&who)?;
            for plan in self.task_plans(&who)? {
                modules::validate_params(&plan.module, &plan.params).map_err(|message| {
                    err(
                        format!("component_parameters ({} for {who})", plan.component),
                        message,
                    )
                })?;
            }
        }
        Ok(())
    }
}

fn check_component_keys(
    names: &HashSet<&str>,
    field: &str,
    by_component: &Map<String, Value>,
) -> Result<(), SpecError> {
    for (name, params) in by_component {
        if !names.contains(name.as_str()) {
            return Err(err(
                format!("{field}.{name}"),
                format!("no component {name:?} in the DSL"),
            ));
        }
        if !params.is_object() {
            return Err(err(format!("{field}.{name}"), "expected an object"));
        }
    }
    Ok(())
}

/// Whether a role-section selector (`"all"`, `"0"`, `"0|2"`) selects party `index`; the error
/// says what is wrong with an out-of-range, repeated or malformed index. Each index appears at
/// most once, so a selector has at most as many parts as the role has parties.
fn selects(selector: &str, index: usize, parties: usize) -> Result<bool, String> {
    if selector == "all" {
        return Ok(true);
    }
    let mut hit = false;
    let mut listed = vec![false; parties];
    for part in selector.split('|') {
        let i: usize = part
            .trim()
            .parse()
            .map_err(|_| "expected \"all\" or party indexes such as \"0\" or \"0|1\"".to_owned())?;
        if i >= parties {
            return Err(format!(
                "party index {i} is out of range: the role has {parties} parties"
            ));
        }
        if std::mem::replace(&mut listed[i], true) {
            return Err(format!("party index {i} is listed twice"));
        }
        hit |= i == index;
    }
    Ok(hit)
}

fn deep_merge(into: &mut Map<String, Value>, from: &Value) {
    let Some(from) = from.as_object() else {
        return;
    };
    for (key, value) in from {
        match (into.get_mut(key), value) {
            (Some(Value::Object(existing)), Value::Object(_)) => deep_merge(existing, value),
            _ => {
                into.insert(key.clone(), value.clone());
            }
        }
    }
}

fn parse_components(dsl: &Value, limits: &Limits) -> Result<Vec<Component>, SpecError> {
    let root = dsl
        .as_object()
        .ok_or_else(|| err("dsl", "expected a JSON object"))?;
    let components = root
        .get("components")
        .ok_or_else(|| err("dsl.components", "missing"))?
        .as_object()
        .ok_or_else(|| {
            err(
                "dsl.components",
                "expected an object keyed by component name",
            )
        })?;
    if components.is_empty() {
        return Err(err("dsl.components", "no components"));
    }
    if components.len() > limits.max_components {
        return Err(err(
            "dsl.components",
            format!(
                "{} components, at most {}",
                components.len(),
                limits.max_components
            ),
        ));
    }
    for name in components.keys() {
        ids::component(name).map_err(|e| err(format!("dsl.components.{name}"), e.to_string()))?;
    }
    // Every declared output as (component, kind, name), so each reference is one look-up.
    let mut declared: HashSet<(&str, &str, &str)> = HashSet::new();
    for (name, body) in components {
        let Some(output) = body.get("output").and_then(Value::as_object) else {
            continue;
        };
        for (kind, names) in output {
            for n in names.as_array().into_iter().flatten() {
                if let Some(n) = n.as_str() {
                    declared.insert((name.as_str(), kind.as_str(), n));
                }
            }
        }
    }
    let mut parsed = Vec::with_capacity(components.len());
    for (name, body) in components {
        let field = format!("dsl.components.{name}");
        let body = body
            .as_object()
            .ok_or_else(|| err(&field, "expected an object"))?;
        let module = body
            .get("module")
            .ok_or_else(|| err(format!("{field}.module"), "missing"))?
            .as_str()
            .ok_or_else(|| err(format!("{field}.module"), "expected a string"))?;
        if !modules::is_known(module) {
            return Err(err(
                format!("{field}.module"),
                format!(
                    "unknown module {module:?} (this party has: {})",
                    modules::BUILTIN.join(", ")
                ),
            ));
        }
        let mut inputs = Vec::new();
        if let Some(input) = body.get("input") {
            let input = input
                .as_object()
                .ok_or_else(|| err(format!("{field}.input"), "expected an object"))?;
            for (kind, value) in input {
                let kfield = format!("{field}.input.{kind}");
                match kind.as_str() {
                    "data" => {
                        let by_key = value
                            .as_object()
                            .ok_or_else(|| err(&kfield, "expected an object of lists"))?;
                        for (key, refs) in by_key {
                            read_refs(&format!("{kfield}.{key}"), kind, key, refs, &mut inputs)?;
                        }
                    }
                    "model" | "isometric_model" | "cache" => {
                        read_refs(&kfield, kind, "", value, &mut inputs)?;
                    }
                    other => {
                        return Err(err(
                            &kfield,
                            format!(
                                "unknown input kind {other:?} (expected data, model, isometric_model or cache)"
                            ),
                        ));
                    }
                }
            }
        }
        let mut upstream: Vec<String> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for (i, input) in inputs.iter().enumerate() {
            // Only named on error: a DSL may have many inputs.
            let ifield = || {
                if input.key.is_empty() {
                    format!("{field}.input.{}[{i}]", input.kind)
                } else {
                    format!("{field}.input.{}.{}", input.kind, input.key)
                }
            };
            if !components.contains_key(&input.component) {
                return Err(err(
                    ifield(),
                    format!("unknown upstream component {:?}", input.component),
                ));
            }
            let out_kind = match input.kind.as_str() {
                "data" => "data",
                "cache" => "cache",
                _ => "model",
            };
            let key = (input.component.as_str(), out_kind, input.output.as_str());
            if !declared.contains(&key) {
                return Err(err(
                    ifield(),
                    format!(
                        "component {:?} declares no {out_kind} output {:?}",
                        input.component, input.output
                    ),
                ));
            }
            if input.component == *name {
                return Err(err(ifield(), format!("cycle {name} -> {name}")));
            }
            if seen.insert(input.component.as_str()) {
                upstream.push(input.component.clone());
            }
        }
        if let Some(output) = body.get("output") {
            let output = output
                .as_object()
                .ok_or_else(|| err(format!("{field}.output"), "expected an object"))?;
            for (kind, names) in output {
                let names = names.as_array().ok_or_else(|| {
                    err(format!("{field}.output.{kind}"), "expected a list of names")
                })?;
                for n in names {
                    let ok = n.as_str().is_some_and(|n| ids::component(n).is_ok());
                    if !ok {
                        return Err(err(
                            format!("{field}.output.{kind}"),
                            format!("malformed output name {n}"),
                        ));
                    }
                }
            }
        }
        parsed.push(Component {
            name: name.clone(),
            module: module.to_owned(),
            inputs,
            upstream,
        });
    }
    Ok(parsed)
}

fn read_refs(
    field: &str,
    kind: &str,
    key: &str,
    refs: &Value,
    into: &mut Vec<Input>,
) -> Result<(), SpecError> {
    let refs = refs
        .as_array()
        .ok_or_else(|| err(field, "expected a list of \"component.output\""))?;
    for r in refs {
        let text = r
            .as_str()
            .ok_or_else(|| err(field, format!("expected \"component.output\", got {r}")))?;
        if text.starts_with("args.") {
            return Err(err(
                field,
                format!("{text:?} is DSL v1; fedflow accepts DSL v2 (dsl_version 2)"),
            ));
        }
        let Some((component, output)) = text.split_once('.') else {
            return Err(err(
                field,
                format!("{text:?} is not of the form \"component.output\""),
            ));
        };
        into.push(Input {
            kind: kind.to_owned(),
            key: key.to_owned(),
            component: component.to_owned(),
            output: output.to_owned(),
        });
    }
    Ok(())
}

/// Kahn's sort; on a cycle, names one loop.
fn topological_order(components: Vec<Component>) -> Result<Vec<Component>, SpecError> {
    let order = topological_indices(&components)?;
    let mut slots: Vec<Option<Component>> = components.into_iter().map(Some).collect();
    Ok(order
        .into_iter()
        .filter_map(|i| slots.get_mut(i).and_then(Option::take))
        .collect())
}

/// The positions of `components` in topological order.
fn topological_indices(components: &[Component]) -> Result<Vec<usize>, SpecError> {
    let by_name: HashMap<&str, (usize, &Component)> = components
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name.as_str(), (i, c)))
        .collect();
    // name -> the components that take it as upstream, in `components` order.
    let mut downstream: HashMap<&str, Vec<&str>> = HashMap::new();
    for c in components {
        for u in &c.upstream {
            downstream
                .entry(u.as_str())
                .or_default()
                .push(c.name.as_str());
        }
    }
    let mut indegree: BTreeMap<&str, usize> = components
        .iter()
        .map(|c| (c.name.as_str(), c.upstream.len()))
        .collect();
    let mut ready: Vec<&str> = indegree
        .iter()
        .filter(|(_, d)| **d == 0)
        .map(|(n, _)| *n)
        .collect();
    ready.sort_unstable();
    ready.reverse();
    let mut ordered = Vec::with_capacity(components.len());
    while let Some(name) = ready.pop() {
        ordered.push(by_name[name].0);
        let mut next: Vec<&str> = Vec::new();
        for &down in downstream.get(name).map_or(&[][..], Vec::as_slice) {
            let d = indegree
                .get_mut(down)
                .expect("every component has a degree");
            *d -= 1;
            if *d == 0 {
                next.push(down);
            }
        }
        next.sort_unstable();
        for n in next.into_iter().rev() {
            ready.push(n);
        }
    }
    if ordered.len() == components.len() {
        return Ok(ordered);
    }
    // Walk upstream edges among the unsorted components until a name repeats.
    let left: BTreeSet<&str> = indegree
        .iter()
        .filter(|(_, d)| **d > 0)
        .map(|(n, _)| *n)
        .collect();
    let start = *left
        .iter()
        .next()
        .expect("a cycle leaves components unsorted");
    let mut path = vec![start];
    let mut current = start;
    loop {
        let next = by_name[current]
            .1
            .upstream
            .iter()
            .map(String::as_str)
            .find(|u| left.contains(u))
            .expect("an unsorted component has an unsorted upstream");
        if let Some(pos) = path.iter().position(|p| *p == next) {
            let mut cycle: Vec<&str> = path[pos..].to_vec();
            cycle.reverse();
            // Start at the smallest name so the same loop is always named the same way.
            let first = (0..cycle.len())
                .min_by_key(|i| cycle[*i])
                .expect("a cycle has members");
            cycle.rotate_left(first);
            cycle.push(cycle[0]);
            return Err(err(
                "dsl.components",
                format!("cycle {}", cycle.join(" -> ")),
            ));
        }
        path.push(next);
        current = next;
    }
}

fn parse_roles(
    conf: &Value,
    limits: &Limits,
) -> Result<(BTreeMap<String, Vec<String>>, Participant), SpecError> {
    let root = conf
        .as_object()
        .ok_or_else(|| err("runtime_conf", "expected a JSON object"))?;
    if let Some(version) = root.get("dsl_version") {
        let two = version.as_u64() == Some(2) || version.as_str() == Some("2");
        if !two {
            return Err(err(
                "runtime_conf.dsl_version",
                format!("must be 2, got {version} (DSL v1 is not supported)"),
            ));
        }
    }
    let role = root
        .get("role")
        .ok_or_else(|| err("runtime_conf.role", "missing"))?
        .as_object()
        .ok_or_else(|| {
            err(
                "runtime_conf.role",
                "expected an object of role -> party ids",
            )
        })?;
    if role.is_empty() {
        return Err(err("runtime_conf.role", "no roles"));
    }
    // Counted before the lists are walked (each list is checked for repeats).
    let total: usize = role
        .values()
        .filter_map(Value::as_array)
        .map(Vec::len)
        .sum();
    if total > limits.max_parties {
        return Err(err(
            "runtime_conf.role",
            format!("{total} participants, at most {}", limits.max_parties),
        ));
    }
    let mut roles = BTreeMap::new();
    for (name, parties) in role {
        let field = format!("runtime_conf.role.{name}");
        ids::role(name).map_err(|e| err(&field, e.to_string()))?;
        let parties = parties
            .as_array()
            .ok_or_else(|| err(&field, "expected a list of party ids"))?;
        if parties.is_empty() {
            return Err(err(&field, "no parties"));
        }
        let mut ids_seen = Vec::with_capacity(parties.len());
        for (i, p) in parties.iter().enumerate() {
            let id = party_id_value(p).map_err(|m| err(format!("{field}[{i}]"), m))?;
            if ids_seen.contains(&id) {
                return Err(err(
                    format!("{field}[{i}]"),
                    format!("party {id} is listed twice"),
                ));
            }
            ids_seen.push(id);
        }
        roles.insert(name.clone(), ids_seen);
    }
    let initiator = root
        .get("initiator")
        .ok_or_else(|| err("runtime_conf.initiator", "missing"))?;
    let irole = initiator
        .get("role")
        .and_then(Value::as_str)
        .ok_or_else(|| err("runtime_conf.initiator.role", "missing or not a string"))?;
    let iparty = initiator
        .get("party_id")
        .ok_or_else(|| err("runtime_conf.initiator.party_id", "missing"))
        .and_then(|p| party_id_value(p).map_err(|m| err("runtime_conf.initiator.party_id", m)))?;
    let among = roles.get(irole).is_some_and(|ps| ps.contains(&iparty));
    if !among {
        return Err(err(
            "runtime_conf.initiator",
            format!("{irole} {iparty} is not among the job's parties (runtime_conf.role)"),
        ));
    }
    Ok((
        roles,
        Participant {
            role: irole.to_owned(),
            party_id: iparty,
        },
    ))
}

/// FATE writes party ids as numbers; fedflow also takes strings of `[A-Za-z0-9_-]{1,32}`.
fn party_id_value(v: &Value) -> Result<String, String> {
    let text = match v {
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::String(s) => s.clone(),
        other => return Err(format!("expected a party id, got {other}")),
    };
    ids::party_id(&text).map_err(|e| e.to_string())?;
    Ok(text)
}

/// Parses JSON, refusing duplicate keys anywhere (a duplicate component name would otherwise
/// silently replace the first one) and nesting deeper than [`MAX_DEPTH`]; the error names
/// `field`.
pub fn parse_json_strict(field: &str, text: &str) -> Result<Value, SpecError> {
    let too_deep = Cell::new(false);
    let mut de = serde_json::Deserializer::from_str(text);
    let root = StrictValue {
        at: Path {
            parent: None,
            segment: Segment::Root,
            depth: 0,
        },
        too_deep: &too_deep,
    };
    let parsed = de::DeserializeSeed::deserialize(root, &mut de);
    let parsed = parsed.and_then(|value| de.end().map(|()| value));
    parsed.map_err(|e| {
        if too_deep.get() {
            err(field, e.to_string())
        } else {
            err(field, format!("not valid JSON: {e}"))
        }
    })
}

/// One step of the path to a value, for error messages.
#[derive(Clone, Copy)]
enum Segment<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

/// Where a value sits in the document: a list on the stack, rendered only for an error, so
/// reading a value costs nothing for the length of its path.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
    /// How many arrays and objects enclose the value.
    depth: usize,
}

impl Path<'_> {
    /// `components.a.input[0]`-style.
    fn render(&self) -> String {
        let mut segments = Vec::new();
        let mut at = Some(self);
        while let Some(p) = at {
            segments.push(p.segment);
            at = p.parent;
        }
        let mut out = String::new();
        for segment in segments.iter().rev() {
            match segment {
                Segment::Root => {}
                Segment::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Segment::Index(i) => {
                    let _ = write!(out, "[{i}]");
                }
            }
        }
        out
    }
}

/// Reads any JSON value as a [`Value`], refusing duplicate keys and deep nesting.
struct StrictValue<'a> {
    at: Path<'a>,
    /// Set when the error is the nesting depth (so it is not called invalid JSON).
    too_deep: &'a Cell<bool>,
}

impl StrictValue<'_> {
    /// The depth of the array or object being entered, or the error if it is one too many.
    fn enter<E: de::Error>(&self) -> Result<usize, E> {
        let depth = self.at.depth + 1;
        if depth > MAX_DEPTH {
            self.too_deep.set(true);
            return Err(E::custom(format!(
                "nested too deeply: more than {MAX_DEPTH} levels of arrays and objects"
            )));
        }
        Ok(depth)
    }
}

impl<'de> de::DeserializeSeed<'de> for StrictValue<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Value, D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut items = Vec::new();
        loop {
            let item = StrictValue {
                at: Path {
                    parent: Some(&self.at),
                    segment: Segment::Index(items.len()),
                    depth,
                },
                too_deep: self.too_deep,
            };
            let Some(item) = seq.next_element_seed(item)? else {
                break;
            };
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let depth = self.enter()?;
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let at = Path {
                parent: Some(&self.at),
                segment: Segment::Key(&key),
                depth,
            };
            if object.contains_key(&key) {
                return Err(de::Error::custom(format!(
                    "duplicate key {:?}",
                    at.render()
                )));
            }
            let value = map.next_value_seed(StrictValue {
                at,
                too_deep: self.too_deep,
            })?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn diamond_dsl() -> Value {
        json!({"components": {
            "a": {"module": "Sum", "output": {"data": ["out"]}},
            "b": {"module": "Sum", "input": {"data": {"data": ["a.out"]}}, "output": {"data": ["out"]}},
            "c": {"module": "Sum", "input": {"data": {"data": ["a.out"]}}, "output": {"data": ["out"]}},
            "d": {"module": "Sum", "input": {"data": {"data": ["b.out", "c.out"]}}, "output": {"data": ["out"]}}
        }})
    }

    fn conf() -> Value {
        json!({
            "dsl_version": 2,
            "initiator": {"role": "guest", "party_id": 9999},
            "role": {"guest": [9999], "host": [10000], "arbiter": [10001]},
            "job_parameters": {"common": {"task_cores": 2}, "role": {"host": {"0": {"task_cores": 1}}}},
            "component_parameters": {
                "common": {"a": {"value": 1}},
                "role": {"host": {"0": {"b": {"value": 5, "need_run": false}}},
                         "guest": {"all": {"a": {"value": 7}}}}
            }
        })
    }

    fn parse_values(dsl: &Value, conf: &Value) -> Result<JobSpec, SpecError> {
        parse(&dsl.to_string(), &conf.to_string(), &Limits::default())
    }

    #[test]
    fn a_fate_style_submission_parses_in_topological_order() {
        let spec = parse_values(&diamond_dsl(), &conf()).expect("valid");
        let names: Vec<&str> = spec.components.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert_eq!(spec.initiator.party_id, "9999");
        assert_eq!(spec.participants().len(), 3);
        let host = Participant {
            role: "host".into(),
            party_id: "10000".into(),
        };
        assert_eq!(spec.job_params(&host).expect("params").task_cores, 1);
        let plans = spec.task_plans(&host).expect("plans");
        assert_eq!(plans[0].params["value"], json!(1));
        assert!(!plans[1].need_run);
        let guest = spec.initiator.clone();
        assert_eq!(
            spec.task_plans(&guest).expect("plans")[0].params["value"],
            json!(7)
        );
        assert_eq!(spec.job_params(&guest).expect("params").task_cores, 2);
    }

    #[test]
    fn downstream_closure_is_transitive() {
        let spec = parse_values(&diamond_dsl(), &conf()).expect("valid");
        let closure = spec.downstream_closure(&["b".into()]);
        assert_eq!(closure.into_iter().collect::<Vec<_>>(), ["b", "d"]);
        assert_eq!(spec.downstream_closure(&["a".into()]).len(), 4);
    }

    fn rejected(dsl: Value, conf: Value) -> SpecError {
        parse_values(&dsl, &conf).expect_err("must be rejected")
    }

    #[test]
    fn every_rejection_names_the_field() {
        let mut dsl = diamond_dsl();
        dsl["components"]["d"]["input"]["data"]["data"] = json!(["x.out"]);
        let e = rejected(dsl, conf());
        assert!(
            e.to_string().contains("dsl.components.d.input.data.data"),
            "{e}"
        );
        assert!(
            e.message.contains("unknown upstream component \"x\""),
            "{e}"
        );

        let mut dsl = diamond_dsl();
        dsl["components"]["d"]["input"]["data"]["data"] = json!(["b.nope"]);
        let e = rejected(dsl, conf());
        assert!(
            e.message.contains("declares no data output \"nope\""),
            "{e}"
        );

        let mut dsl = diamond_dsl();
        dsl["components"]["a"]["input"] = json!({"data": {"data": ["d.out"]}});
        let e = rejected(dsl, conf());
        assert_eq!(e.field, "dsl.components");
        assert!(e.message.starts_with("cycle "), "{e}");
        for name in ["a", "b", "d"] {
            assert!(e.message.contains(name), "{e}");
        }

        let mut dsl = diamond_dsl();
        dsl["components"]["a"]["module"] = json!("HeteroSecureBoost");
        let e = rejected(dsl, conf());
        assert_eq!(e.field, "dsl.components.a.module");

        let mut dsl = diamond_dsl();
        dsl["components"]["bad name"] = json!({"module": "Sum"});
        let e = rejected(dsl, conf());
        assert!(e.field.contains("bad name"), "{e}");

        let mut c = conf();
        c["role"]["host"] = json!([]);
        let e = rejected(diamond_dsl(), c);
        assert_eq!(e.field, "runtime_conf.role.host");
        assert_eq!(e.message, "no parties");

        let mut c = conf();
        c["initiator"]["party_id"] = json!(1);
        let e = rejected(diamond_dsl(), c);
        assert_eq!(e.field, "runtime_conf.initiator");

        let mut c = conf();
        c["component_parameters"]["common"]["a"] = json!({"value": "one"});
        let e = rejected(diamond_dsl(), c);
        assert!(e.message.contains("parameter value"), "{e}");
    }

    #[test]
    fn duplicate_component_names_are_refused() {
        let text = r#"{"components": {"a": {"module": "Sum"}, "a": {"module": "Sleep"}}}"#;
        let e = parse(text, &conf().to_string(), &Limits::default()).expect_err("duplicate");
        assert_eq!(e.field, "dsl");
        assert!(e.message.contains("duplicate key \"components.a\""), "{e}");
    }

    #[test]
    fn oversized_input_is_refused() {
        let limits = Limits {
            max_dsl_bytes: 64,
            ..Limits::default()
        };
        let e =
            parse(&diamond_dsl().to_string(), &conf().to_string(), &limits).expect_err("too large");
        assert_eq!(e.field, "dsl");
        assert!(e.message.starts_with("too large"), "{e}");
    }

    /// `{"components": {"c0": {"module": "Sum"}, ...}}` with `n` components.
    fn dsl_with_components(n: usize) -> String {
        let components: Vec<String> = (0..n)
            .map(|i| format!(r#""c{i}": {{"module": "Sum"}}"#))
            .collect();
        format!(r#"{{"components": {{{}}}}}"#, components.join(", "))
    }

    #[test]
    fn a_5_mib_dsl_is_refused_as_too_large_before_it_is_read() {
        let dsl = format!(
            r#"{{"components": {{"a": {{"module": "Sum", "pad": "{}"}}}}}}"#,
            "x".repeat(5 << 20)
        );
        let e = parse(&dsl, &conf().to_string(), &Limits::default()).expect_err("5 MiB");
        assert_eq!(e.field, "dsl");
        assert!(e.message.starts_with("too large"), "{e}");
        assert!(e.message.contains("at most 1048576"), "{e}");
        // The same for the conf.
        let e = parse(&diamond_dsl().to_string(), &dsl, &Limits::default()).expect_err("5 MiB");
        assert_eq!(e.field, "runtime_conf");
        assert!(e.message.starts_with("too large"), "{e}");
    }

    #[test]
    fn ten_thousand_components_are_refused_naming_components() {
        let dsl = dsl_with_components(10_000);
        assert!(
            dsl.len() < Limits::default().max_dsl_bytes,
            "under the size limit"
        );
        let e = parse(&dsl, &conf().to_string(), &Limits::default()).expect_err("10,000");
        assert_eq!(e.field, "dsl.components");
        assert_eq!(e.message, "10000 components, at most 500");
        // The limit itself is accepted.
        let conf =
            r#"{"initiator": {"role": "guest", "party_id": 9999}, "role": {"guest": [9999]}}"#;
        let spec = parse(&dsl_with_components(500), conf, &Limits::default()).expect("500");
        assert_eq!(spec.components.len(), 500);
    }

    #[test]
    fn deep_nesting_is_refused_naming_the_document_without_overflowing_the_stack() {
        let deep_arrays = "[".repeat(100_000);
        let deep_objects = r#"{"a":"#.repeat(100_000);
        let ok_conf = conf().to_string();
        let ok_dsl = diamond_dsl().to_string();
        let in_component = format!(
            r#"{{"components": {{"a": {{"module": "Sum", "output": {}}}}}}}"#,
            deep_arrays
        );
        let in_parameters = format!(
            r#"{{"initiator": {{"role": "guest", "party_id": 9999}}, "role": {{"guest": [9999]}},
                "component_parameters": {{"common": {{"a": {{"value": {deep_objects}"#
        );
        let cases = [
            ("dsl", deep_arrays.as_str(), ok_conf.as_str()),
            ("dsl", deep_objects.as_str(), ok_conf.as_str()),
            ("dsl", in_component.as_str(), ok_conf.as_str()),
            ("runtime_conf", ok_dsl.as_str(), deep_arrays.as_str()),
            ("runtime_conf", ok_dsl.as_str(), deep_objects.as_str()),
            ("runtime_conf", ok_dsl.as_str(), in_parameters.as_str()),
        ];
        for (field, dsl, conf) in cases {
            let e = parse(dsl, conf, &Limits::default()).expect_err("too deep");
            assert_eq!(e.field, field, "{e}");
            assert!(
                e.message
                    .starts_with("nested too deeply: more than 32 levels"),
                "{e}"
            );
        }
    }

    #[test]
    fn nesting_up_to_the_depth_limit_is_read() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        assert!(parse_json_strict("x", &nested(MAX_DEPTH)).is_ok());
        let e = parse_json_strict("x", &nested(MAX_DEPTH + 1)).expect_err("one too deep");
        assert_eq!(e.field, "x");
        assert!(e.message.starts_with("nested too deeply"), "{e}");
    }

    #[test]
    fn a_duplicate_key_is_named_by_its_full_path() {
        let e = parse_json_strict("dsl", r#"{"a": [{"b": 1}, {"c": {"b": 1, "b": 2}}]}"#)
            .expect_err("duplicate");
        assert!(e.message.contains(r#"duplicate key "a[1].c.b""#), "{e}");
        let e = parse_json_strict("dsl", r#"[{"k": 1, "k": 2}]"#).expect_err("duplicate");
        assert!(e.message.contains(r#"duplicate key "[0].k""#), "{e}");
    }

    #[test]
    fn errors_quote_at_most_a_bounded_part_of_the_input() {
        let long = "é".repeat(300_000);
        let mut dsl = diamond_dsl();
        dsl["components"][&long] = json!({"module": "Sum"});
        let e = rejected(dsl, conf());
        assert!(e.field.starts_with("dsl.components.éé"), "{e}");
        assert!(e.field.ends_with("..."), "{e}");
        assert!(e.field.len() <= MAX_ERROR_TEXT);
        let mut c = conf();
        c["component_parameters"]["role"]["host"] = json!({ "0|".repeat(100_000): {} });
        let e = rejected(diamond_dsl(), c);
        assert!(e.field.len() <= MAX_ERROR_TEXT, "{}", e.field.len());
        assert_eq!(e.message, "party index 0 is listed twice");
    }

    #[test]
    fn a_long_party_list_is_refused_by_its_count() {
        let parties: Vec<String> = (0..120_000).map(|i| (100_000 + i).to_string()).collect();
        let conf = format!(
            r#"{{"initiator": {{"role": "guest", "party_id": 100000}}, "role": {{"guest": [{}]}}}}"#,
            parties.join(",")
        );
        let e = parse(&diamond_dsl().to_string(), &conf, &Limits::default()).expect_err("count");
        assert_eq!(e.field, "runtime_conf.role");
        assert_eq!(e.message, "120000 participants, at most 64");
    }

    #[test]
    fn role_sections_merge_all_first_then_by_selector() {
        let conf = json!({
            "initiator": {"role": "guest", "party_id": 9999},
            "role": {"guest": [9999, 9998]},
            "component_parameters": {
                "common": {"a": {"value": 0}, "b": {"value": 10}},
                "role": {"guest": {
                    "1": {"a": {"value": 3}},
                    "all": {"a": {"value": 1}, "b": {"need_run": false}},
                    "0|1": {"a": {"value": 2}}
                }}
            }
        });
        let spec = parse_values(&diamond_dsl(), &conf).expect("valid");
        let plans = |party: &str| {
            let who = Participant {
                role: "guest".into(),
                party_id: party.into(),
            };
            spec.task_plans(&who).expect("plans")
        };
        let (first, second) = (plans("9999"), plans("9998"));
        assert_eq!(first[0].params["value"], json!(2));
        assert_eq!(second[0].params["value"], json!(3));
        assert_eq!(
            second[1].params,
            *json!({"value": 10, "need_run": false})
                .as_object()
                .expect("object")
        );
        assert!(!second[1].need_run);
        assert!(first[2].params.is_empty());
        let mut bad = conf.clone();
        bad["component_parameters"]["role"]["guest"]["0|2"] = json!({});
        let e = rejected(diamond_dsl(), bad);
        assert_eq!(e.field, "component_parameters.role.guest.0|2");
        assert!(e.message.contains("party index 2 is out of range"), "{e}");
        let mut bad = conf.clone();
        bad["component_parameters"]["role"]["guest"]["1| 1"] = json!({});
        let e = rejected(diamond_dsl(), bad);
        assert_eq!(e.field, "component_parameters.role.guest.1| 1");
        assert_eq!(e.message, "party index 1 is listed twice");
    }
}
