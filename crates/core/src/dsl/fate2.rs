//! FATE 2.x DAGs (FATE-Flow 2.2's `DAGSchema`: `schema_version`, `kind`, `dag: {parties, conf,
//! stage, tasks, party_tasks}`), accepted as FATE users write them and checked against the
//! built-in component catalog ([`crate::fate::builtin`]) before anything is stored.
//!
//! A DAG becomes the same [`JobSpec`] as a FATE 1.x submission: one component per task, module
//! `fate:<component_ref>`, and per participant a [`fate::FateTask`] as the task's parameters.
//! The checks, each naming its field: task names, component references, the roles a component
//! serves, stages, input slots (unknown, missing, more sources than the slot takes), producers
//! and their outputs, `dependent_tasks`, parties outside `dag.parties`, and cycles.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::{Map, Value};

use crate::fate::{self, Catalog, Side};
use crate::ids::{self, Participant};

use super::components::topological_order;
use super::params::deep_merge;
use super::roles::party_id_value;
use super::{
    Component, Input, JobSpec, Limits, SpecError, TaskPlan, err, member, object, parse_json_strict,
};

/// Whether a parsed DSL document is a FATE 2.x DAG: its root object has a `dag` key.
pub(super) fn is_dag(dsl: &Value) -> bool {
    dsl.get("dag").is_some()
}

/// The stage of a task that names none, in a DAG that names none.
const DEFAULT_STAGE: &str = "train";

/// A validated DAG, kept in the [`JobSpec`] so each participant's plans are built without
/// reading the document again.
#[derive(Debug, Clone)]
pub(super) struct Dag {
    /// `dag.conf`, `{}` when absent.
    conf: Value,
    /// In topological order.
    tasks: Vec<Task>,
    party_tasks: Vec<PartyTasks>,
}

#[derive(Debug, Clone)]
struct Task {
    name: String,
    component_ref: String,
    /// `dag.tasks.<t>.stage`, else `dag.stage`, else `train`.
    wanted_stage: String,
    /// The stage each role of the task runs at (the catalog's rule).
    stages: BTreeMap<String, String>,
    parameters: Map<String, Value>,
    inputs: Vec<SlotInput>,
    /// Sorted.
    parties: Vec<Participant>,
    upstream: Vec<String>,
}

#[derive(Debug, Clone)]
struct SlotInput {
    /// `data` or `model`.
    kind: String,
    slot: String,
    sources: Vec<SourceRef>,
}

#[derive(Debug, Clone)]
struct SourceRef {
    producer: String,
    key: String,
    /// `task_output_artifact.parties`: the parties this source is for; `None`: every party.
    parties: Option<HashSet<Participant>>,
    /// A warehouse source: the earlier job whose output it is (not a task of this DAG).
    job: Option<String>,
    /// A `data_warehouse` table, `(namespace, name)`, registered on each party.
    table: Option<(String, String)>,
}

impl SourceRef {
    /// A task of this DAG produces it (not an earlier job, not a table).
    fn in_dag(&self) -> bool {
        self.job.is_none() && self.table.is_none()
    }
}

impl SourceRef {
    fn applies_to(&self, who: &Participant) -> bool {
        self.parties.as_ref().is_none_or(|ps| ps.contains(who))
    }
}

/// What every task of the DAG is read against: the DAG's parties and the model its
/// `model_warehouse` inputs come from by default (`dag.conf.model_warehouse.model_id`).
struct Scope<'a> {
    allowed: &'a HashSet<Participant>,
    model_id: Option<&'a str>,
}

#[derive(Debug, Clone)]
struct PartyTasks {
    parties: HashSet<Participant>,
    /// task name -> parameter overrides.
    tasks: HashMap<String, Value>,
    conf: Option<Value>,
}

/// Parses a FATE 2.x DAG (already read as strict JSON); the runtime conf must be empty.
pub(super) fn parse(dsl: Value, conf_text: &str, limits: &Limits) -> Result<JobSpec, SpecError> {
    if !conf_text.trim().is_empty() {
        let conf = parse_json_strict("runtime_conf", conf_text)?;
        if conf.as_object().is_none_or(|c| !c.is_empty()) {
            return Err(err(
                "runtime_conf",
                "must be empty or {}: a FATE 2.x DAG carries its own conf (dag.conf)",
            ));
        }
    }
    let catalog = fate::builtin();
    let root = object(&dsl, "dsl", "expected a JSON object")?;
    let version = member(root, "schema_version", "schema_version")?;
    if !version.as_str().is_some_and(|v| v.starts_with("2.")) {
        return Err(err(
            "schema_version",
            format!("expected a FATE 2.x schema version such as \"2.0.0\", got {version}"),
        ));
    }
    if let Some(kind) = root.get("kind")
        && kind.as_str() != Some("fate")
    {
        return Err(err("kind", format!("expected \"fate\", got {kind}")));
    }
    let dag = object(member(root, "dag", "dag")?, "dag", "expected an object")?;
    for key in dag.keys() {
        if !["parties", "conf", "stage", "tasks", "party_tasks"].contains(&key.as_str()) {
            return Err(err(
                format!("dag.{key}"),
                "unknown key (expected parties, conf, stage, tasks or party_tasks)",
            ));
        }
    }
    let (all_parties, roles) = read_dag_parties(dag, limits)?;
    let allowed: HashSet<Participant> = all_parties.iter().cloned().collect();
    let conf = match dag.get("conf") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(c) => Value::Object(object(c, "dag.conf", "expected an object")?.clone()),
    };
    let initiator = read_initiator(&conf, &all_parties)?;
    let stage = match dag.get("stage") {
        None | Some(Value::Null) => DEFAULT_STAGE.to_owned(),
        Some(s) => stage_name(s, "dag.stage")?,
    };
    let tasks = object(
        member(dag, "tasks", "dag.tasks")?,
        "dag.tasks",
        "expected an object keyed by task name",
    )?;
    if tasks.is_empty() {
        return Err(err("dag.tasks", "no tasks"));
    }
    if tasks.len() > limits.max_components {
        return Err(err(
            "dag.tasks",
            format!("{} tasks, at most {}", tasks.len(), limits.max_components),
        ));
    }
    let model_id = match conf.pointer("/model_warehouse/model_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => {
            ids::job_id(id).map_err(|e| err("dag.conf.model_warehouse.model_id", e.to_string()))?;
            Some(id.as_str())
        }
        Some(other) => {
            return Err(err(
                "dag.conf.model_warehouse.model_id",
                format!("expected the training job's id, got {other}"),
            ));
        }
    };
    let scope = Scope {
        allowed: &allowed,
        model_id,
    };
    let mut parsed: Vec<Task> = Vec::with_capacity(tasks.len());
    for (name, body) in tasks {
        parsed.push(read_task(
            catalog,
            name,
            body,
            tasks,
            &stage,
            &all_parties,
            &scope,
        )?);
    }
    check_producers(catalog, &parsed)?;
    let party_tasks = read_party_tasks(dag, tasks, &allowed)?;
    let components: Vec<Component> = parsed.iter().map(component_of).collect();
    let ordered = topological_order(components, "dag.tasks")?;
    let mut by_name: HashMap<String, Task> =
        parsed.into_iter().map(|t| (t.name.clone(), t)).collect();
    let tasks = ordered
        .iter()
        .filter_map(|c| by_name.remove(&c.name))
        .collect();
    Ok(JobSpec {
        components: ordered,
        roles,
        initiator,
        dsl,
        conf: Value::Object(Map::new()),
        fate2: Some(std::sync::Arc::new(Dag {
            conf,
            tasks,
            party_tasks,
        })),
    })
}

type Roles = BTreeMap<String, Vec<String>>;

/// `dag.parties`: every participant in order, and role -> party ids.
fn read_dag_parties(
    dag: &Map<String, Value>,
    limits: &Limits,
) -> Result<(Vec<Participant>, Roles), SpecError> {
    let value = member(dag, "parties", "dag.parties")?;
    let list = value
        .as_array()
        .ok_or_else(|| err("dag.parties", "expected a list of {role, party_id}"))?;
    // Counted before the lists are walked.
    let total: usize = list
        .iter()
        .filter_map(|p| p.get("party_id").and_then(Value::as_array))
        .map(Vec::len)
        .sum();
    if total > limits.max_parties {
        return Err(err(
            "dag.parties",
            format!("{total} participants, at most {}", limits.max_parties),
        ));
    }
    let parties = read_parties(value, "dag.parties", None)?;
    if parties.is_empty() {
        return Err(err("dag.parties", "no parties"));
    }
    let mut roles: Roles = BTreeMap::new();
    let mut seen = HashSet::new();
    for p in &parties {
        if !seen.insert(p) {
            return Err(err("dag.parties", format!("{p} is listed twice")));
        }
        roles
            .entry(p.role.clone())
            .or_default()
            .push(p.party_id.clone());
    }
    Ok((parties, roles))
}

/// A list of `{role, party_id: [ids]}`, each party among `allowed` when given.
fn read_parties(
    value: &Value,
    field: &str,
    allowed: Option<&HashSet<Participant>>,
) -> Result<Vec<Participant>, SpecError> {
    let list = value
        .as_array()
        .ok_or_else(|| err(field, "expected a list of {role, party_id}"))?;
    let mut parties = Vec::new();
    for (i, entry) in list.iter().enumerate() {
        let efield = format!("{field}[{i}]");
        let entry = object(entry, &efield, "expected {role, party_id: [...]}")?;
        for key in entry.keys() {
            if key != "role" && key != "party_id" {
                return Err(err(
                    format!("{efield}.{key}"),
                    "unknown key (expected role or party_id)",
                ));
            }
        }
        let role = member(entry, "role", format!("{efield}.role"))?
            .as_str()
            .ok_or_else(|| err(format!("{efield}.role"), "expected a string"))?;
        ids::role(role).map_err(|e| err(format!("{efield}.role"), e.to_string()))?;
        let ids = member(entry, "party_id", format!("{efield}.party_id"))?
            .as_array()
            .ok_or_else(|| err(format!("{efield}.party_id"), "expected a list of party ids"))?;
        if ids.is_empty() {
            return Err(err(format!("{efield}.party_id"), "no parties"));
        }
        for (j, id) in ids.iter().enumerate() {
            let pfield = format!("{efield}.party_id[{j}]");
            let party_id = party_id_value(id).map_err(|m| err(&pfield, m))?;
            let who = Participant {
                role: role.to_owned(),
                party_id,
            };
            if allowed.is_some_and(|a| !a.contains(&who)) {
                return Err(err(pfield, format!("{who} is not among dag.parties")));
            }
            parties.push(who);
        }
    }
    Ok(parties)
}

/// `dag.conf.initiator_party_id` (or `scheduler_party_id`), in its guest role if it has one;
/// by default the first guest, else the first party.
fn read_initiator(conf: &Value, parties: &[Participant]) -> Result<Participant, SpecError> {
    for key in ["initiator_party_id", "scheduler_party_id"] {
        let Some(value) = conf.get(key).filter(|v| !v.is_null()) else {
            continue;
        };
        let field = format!("dag.conf.{key}");
        let id = party_id_value(value).map_err(|m| err(&field, m))?;
        let mut with_id = parties.iter().filter(|p| p.party_id == id);
        let first = with_id
            .clone()
            .next()
            .ok_or_else(|| err(&field, format!("party {id} is not among dag.parties")))?;
        return Ok(with_id.find(|p| p.role == "guest").unwrap_or(first).clone());
    }
    let first = parties
        .iter()
        .find(|p| p.role == "guest")
        .or_else(|| parties.first())
        .expect("dag.parties is not empty");
    Ok(first.clone())
}

fn stage_name(value: &Value, field: &str) -> Result<String, SpecError> {
    let ok = value
        .as_str()
        .filter(|s| ids::component(s).is_ok())
        .ok_or_else(|| {
            err(
                field,
                format!("expected a stage name such as \"train\", got {value}"),
            )
        })?;
    Ok(ok.to_owned())
}

const TASK_KEYS: &[&str] = &[
    "component_ref",
    "dependent_tasks",
    "parameters",
    "inputs",
    "outputs",
    "parties",
    "conf",
    "stage",
];

/// One task, checked on its own and against the names of the other tasks (its producers'
/// outputs are checked by [`check_producers`] once every task is read).
fn read_task(
    catalog: &Catalog,
    name: &str,
    body: &Value,
    tasks: &Map<String, Value>,
    dag_stage: &str,
    dag_parties: &[Participant],
    scope: &Scope<'_>,
) -> Result<Task, SpecError> {
    let allowed = scope.allowed;
    let field = format!("dag.tasks.{name}");
    ids::component(name).map_err(|e| err(&field, e.to_string()))?;
    let body = object(body, &field, "expected an object")?;
    for key in body.keys() {
        if !TASK_KEYS.contains(&key.as_str()) {
            return Err(err(
                format!("{field}.{key}"),
                format!("unknown key (expected one of {})", TASK_KEYS.join(", ")),
            ));
        }
    }
    let rfield = format!("{field}.component_ref");
    let component_ref = member(body, "component_ref", &rfield)?
        .as_str()
        .ok_or_else(|| err(&rfield, "expected a string"))?;
    let def = catalog.components.get(component_ref).ok_or_else(|| {
        let known: Vec<&str> = catalog.components.keys().map(String::as_str).collect();
        err(
            &rfield,
            format!(
                "unknown FATE component {component_ref:?} (fate {} has: {})",
                catalog.version,
                known.join(", ")
            ),
        )
    })?;
    let serves = |role: &str| def.roles.iter().any(|r| r == role);
    let mut parties = match body.get("parties") {
        None | Some(Value::Null) => dag_parties
            .iter()
            .filter(|p| serves(&p.role))
            .cloned()
            .collect(),
        Some(value) => {
            let pfield = format!("{field}.parties");
            let parties = read_parties(value, &pfield, Some(allowed))?;
            if let Some(p) = parties.iter().find(|p| !serves(&p.role)) {
                return Err(err(
                    pfield,
                    format!(
                        "component {component_ref:?} does not run on role {} (it serves {})",
                        p.role,
                        def.roles.join(", ")
                    ),
                ));
            }
            parties
        }
    };
    parties.sort();
    parties.dedup();
    if parties.is_empty() {
        return Err(err(
            format!("{field}.parties"),
            format!(
                "the task runs on no party: component {component_ref:?} serves {}",
                def.roles.join(", ")
            ),
        ));
    }
    let (wanted_stage, sfield) = match body.get("stage") {
        None | Some(Value::Null) => (dag_stage.to_owned(), "dag.stage".to_owned()),
        Some(s) => {
            let sfield = format!("{field}.stage");
            (stage_name(s, &sfield)?, sfield)
        }
    };
    let mut stages = BTreeMap::new();
    for p in &parties {
        if stages.contains_key(&p.role) {
            continue;
        }
        let stage = catalog
            .stage_for(component_ref, &p.role, &wanted_stage)
            .ok_or_else(|| {
                let has: Vec<&str> = def
                    .io
                    .get(&p.role)
                    .map(|s| s.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                err(
                    &sfield,
                    format!(
                        "component {component_ref:?} has no stage {wanted_stage:?} for role {} (it has: {})",
                        p.role,
                        has.join(", ")
                    ),
                )
            })?;
        stages.insert(p.role.clone(), stage);
    }
    // Distinct, in first-referenced order; the set keeps a long list linear.
    let mut upstream: Vec<String> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    if let Some(deps) = body.get("dependent_tasks").filter(|d| !d.is_null()) {
        let dfield = format!("{field}.dependent_tasks");
        let deps = deps
            .as_array()
            .ok_or_else(|| err(&dfield, "expected a list of task names"))?;
        for (i, dep) in deps.iter().enumerate() {
            let ifield = format!("{dfield}[{i}]");
            let dep = dep
                .as_str()
                .ok_or_else(|| err(&ifield, format!("expected a task name, got {dep}")))?;
            if !tasks.contains_key(dep) {
                return Err(err(ifield, format!("unknown task {dep:?}")));
            }
            if seen.insert(dep.to_owned()) {
                upstream.push(dep.to_owned());
            }
        }
    }
    let parameters = match body.get("parameters") {
        None | Some(Value::Null) => Map::new(),
        Some(p) => object(p, format!("{field}.parameters"), "expected an object")?.clone(),
    };
    if let Some(c) = body.get("conf").filter(|c| !c.is_null()) {
        object(c, format!("{field}.conf"), "expected an object")?;
    }
    let inputs = match body.get("inputs") {
        None | Some(Value::Null) => Vec::new(),
        Some(i) => read_inputs(catalog, &field, component_ref, &stages, i, tasks, scope)?,
    };
    for input in &inputs {
        for s in input.sources.iter().filter(|s| s.in_dag()) {
            if seen.insert(s.producer.clone()) {
                upstream.push(s.producer.clone());
            }
        }
    }
    check_required(catalog, &field, component_ref, &stages, &parties, &inputs)?;
    Ok(Task {
        name: name.to_owned(),
        component_ref: component_ref.to_owned(),
        wanted_stage,
        stages,
        parameters,
        inputs,
        parties,
        upstream,
    })
}

/// The inputs of `kind` for `role` at `stage`.
fn side<'c>(catalog: &'c Catalog, component: &str, role: &str, stage: &str) -> Option<&'c Side> {
    catalog.io(component, role, stage).map(|io| &io.inputs)
}

fn slots<'s>(side: &'s Side, kind: &str) -> &'s [fate::ArtifactDef] {
    match kind {
        "data" => &side.data,
        "model" => &side.model,
        _ => &[],
    }
}

/// `dag.tasks.<t>.inputs`: `{data?: {<slot>: Channel}, model?: {<slot>: Channel}}`.
fn read_inputs(
    catalog: &Catalog,
    field: &str,
    component_ref: &str,
    stages: &BTreeMap<String, String>,
    inputs: &Value,
    tasks: &Map<String, Value>,
    scope: &Scope<'_>,
) -> Result<Vec<SlotInput>, SpecError> {
    let allowed = scope.allowed;
    let ifield = format!("{field}.inputs");
    let inputs = object(inputs, &ifield, "expected an object with data and model")?;
    let mut read = Vec::new();
    for (kind, by_slot) in inputs {
        let kfield = format!("{ifield}.{kind}");
        if kind != "data" && kind != "model" {
            return Err(err(kfield, "unknown input kind (expected data or model)"));
        }
        let by_slot = object(by_slot, &kfield, "expected an object keyed by input slot")?;
        for (slot, channel) in by_slot {
            let cfield = format!("{kfield}.{slot}");
            // The slot's definition for the first role of the task that has it.
            let def = stages.iter().find_map(|(role, stage)| {
                side(catalog, component_ref, role, stage)
                    .and_then(|s| slots(s, kind).iter().find(|a| a.name == *slot))
            });
            let Some(def) = def else {
                let mut has: BTreeSet<&str> = BTreeSet::new();
                for (role, stage) in stages {
                    if let Some(s) = side(catalog, component_ref, role, stage) {
                        has.extend(slots(s, kind).iter().map(|a| a.name.as_str()));
                    }
                }
                let has: Vec<&str> = has.into_iter().collect();
                return Err(err(
                    cfield,
                    format!(
                        "component {component_ref:?} has no {kind} input {slot:?} (it has: {})",
                        if has.is_empty() {
                            "none".to_owned()
                        } else {
                            has.join(", ")
                        }
                    ),
                ));
            };
            let channel = object(channel, &cfield, "expected {task_output_artifact: ...}")?;
            let mut sources = Vec::new();
            for (how, value) in channel {
                let hfield = format!("{cfield}.{how}");
                match how.as_str() {
                    "task_output_artifact" => {
                        read_sources(&hfield, value, tasks, allowed, &mut sources)?;
                    }
                    "data_warehouse" | "model_warehouse" => {
                        read_warehouse(&hfield, value, scope, &mut sources)?;
                    }
                    _ => {
                        return Err(err(
                            hfield,
                            "unknown channel (expected task_output_artifact, model_warehouse or data_warehouse)",
                        ));
                    }
                }
            }
            if sources.is_empty() {
                return Err(err(&cfield, "no source (expected task_output_artifact)"));
            }
            // A single-source slot may still be fed by one source per party (each with its
            // `parties`): what counts is how many apply to any one party.
            let most = allowed
                .iter()
                .map(|who| sources.iter().filter(|s| s.applies_to(who)).count())
                .max()
                .unwrap_or(sources.len());
            if most > 1 && !def.is_multi {
                let channel = channel
                    .keys()
                    .next()
                    .map_or("task_output_artifact", String::as_str);
                return Err(err(
                    format!("{cfield}.{channel}"),
                    format!("input {slot:?} of {component_ref:?} takes one source, got {most}"),
                ));
            }
            read.push(SlotInput {
                kind: kind.clone(),
                slot: slot.clone(),
                sources,
            });
        }
    }
    Ok(read)
}

const SOURCE_KEYS: &[&str] = &["producer_task", "output_artifact_key", "parties"];

const WAREHOUSE_KEYS: &[&str] = &[
    "job_id",
    "model_id",
    "model_version",
    "producer_task",
    "output_artifact_key",
    "parties",
];

/// `model_warehouse` / `data_warehouse`: an output of an earlier job on each party,
/// `{model_id | job_id, producer_task, output_artifact_key, model_version?, parties?}` (one or a
/// list). fedflow's model id is the training job's id. A table by `{name, namespace}` is read
/// with the `reader` component instead.
fn read_warehouse(
    field: &str,
    value: &Value,
    scope: &Scope<'_>,
    into: &mut Vec<SourceRef>,
) -> Result<(), SpecError> {
    let allowed = scope.allowed;
    let (list, indexed) = match value {
        Value::Array(list) => (list.as_slice(), true),
        _ => (std::slice::from_ref(value), false),
    };
    for (i, source) in list.iter().enumerate() {
        let sfield = if indexed {
            format!("{field}[{i}]")
        } else {
            field.to_owned()
        };
        let source = object(
            source,
            &sfield,
            "expected {model_id, producer_task, output_artifact_key, parties?}",
        )?;
        if source.contains_key("name") || source.contains_key("namespace") {
            into.push(read_table_source(&sfield, source, allowed)?);
            continue;
        }
        for key in source.keys() {
            if !WAREHOUSE_KEYS.contains(&key.as_str()) {
                return Err(err(
                    format!("{sfield}.{key}"),
                    format!("unknown key (expected {})", WAREHOUSE_KEYS.join(", ")),
                ));
            }
        }
        let text = |key: &str| -> Result<Option<String>, SpecError> {
            let f = format!("{sfield}.{key}");
            match source.get(key) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.clone())),
                Some(Value::Number(n)) if key == "model_version" => Ok(Some(n.to_string())),
                Some(_) => Err(err(f, "expected a string")),
            }
        };
        let job = match (text("model_id")?, text("job_id")?) {
            (Some(a), Some(b)) if a != b => {
                return Err(err(
                    format!("{sfield}.model_id"),
                    format!("names job {a:?} but job_id names {b:?}"),
                ));
            }
            (Some(j), _) | (None, Some(j)) => j,
            (None, None) => match scope.model_id {
                Some(j) => j.to_owned(),
                None => {
                    return Err(err(
                        format!("{sfield}.model_id"),
                        "missing (the training job's id, here or in dag.conf.model_warehouse.model_id)",
                    ));
                }
            },
        };
        crate::ids::job_id(&job).map_err(|e| err(format!("{sfield}.model_id"), e.to_string()))?;
        let producer = text("producer_task")?
            .ok_or_else(|| err(format!("{sfield}.producer_task"), "missing"))?;
        crate::ids::component(&producer)
            .map_err(|e| err(format!("{sfield}.producer_task"), e.to_string()))?;
        let key = text("output_artifact_key")?
            .ok_or_else(|| err(format!("{sfield}.output_artifact_key"), "missing"))?;
        let parties = match source.get("parties") {
            None | Some(Value::Null) => None,
            Some(p) => Some(
                read_parties(p, &format!("{sfield}.parties"), Some(allowed))?
                    .into_iter()
                    .collect(),
            ),
        };
        into.push(SourceRef {
            producer,
            key,
            parties,
            job: Some(job),
            table: None,
        });
    }
    Ok(())
}

/// `task_output_artifact`: one `{producer_task, output_artifact_key, parties?}` or a list.
fn read_sources(
    field: &str,
    value: &Value,
    tasks: &Map<String, Value>,
    allowed: &HashSet<Participant>,
    into: &mut Vec<SourceRef>,
) -> Result<(), SpecError> {
    let (list, indexed) = match value {
        Value::Array(list) => (list.as_slice(), true),
        _ => (std::slice::from_ref(value), false),
    };
    for (i, source) in list.iter().enumerate() {
        let sfield = if indexed {
            format!("{field}[{i}]")
        } else {
            field.to_owned()
        };
        let source = object(
            source,
            &sfield,
            "expected {producer_task, output_artifact_key, parties?}",
        )?;
        for key in source.keys() {
            if !SOURCE_KEYS.contains(&key.as_str()) {
                return Err(err(
                    format!("{sfield}.{key}"),
                    "unknown key (expected producer_task, output_artifact_key or parties)",
                ));
            }
        }
        let text = |key: &str| -> Result<String, SpecError> {
            let f = format!("{sfield}.{key}");
            member(source, key, &f)?
                .as_str()
                .map(str::to_owned)
                .ok_or_else(|| err(f, "expected a string"))
        };
        let producer = text("producer_task")?;
        if !tasks.contains_key(&producer) {
            return Err(err(
                format!("{sfield}.producer_task"),
                format!("unknown task {producer:?}"),
            ));
        }
        let key = text("output_artifact_key")?;
        let parties = match source.get("parties") {
            None | Some(Value::Null) => None,
            Some(p) => Some(
                read_parties(p, &format!("{sfield}.parties"), Some(allowed))?
                    .into_iter()
                    .collect(),
            ),
        };
        into.push(SourceRef {
            producer,
            key,
            parties,
            job: None,
            table: None,
        });
    }
    Ok(())
}

/// `data_warehouse: {name, namespace, parties?}`: the table registered under those names on
/// each party the source is for.
fn read_table_source(
    field: &str,
    source: &Map<String, Value>,
    allowed: &HashSet<Participant>,
) -> Result<SourceRef, SpecError> {
    for key in source.keys() {
        if !["name", "namespace", "parties"].contains(&key.as_str()) {
            return Err(err(
                format!("{field}.{key}"),
                "unknown key (a table is {name, namespace, parties?})",
            ));
        }
    }
    let part = |key: &str| -> Result<String, SpecError> {
        let f = format!("{field}.{key}");
        let v = member(source, key, &f)?
            .as_str()
            .ok_or_else(|| err(&f, "expected a string"))?;
        if !crate::modules::table_part(v) {
            return Err(err(
                f,
                "1 to 64 letters, digits, _ . - (not starting with .)",
            ));
        }
        Ok(v.to_owned())
    };
    let (namespace, name) = (part("namespace")?, part("name")?);
    let parties = match source.get("parties") {
        None | Some(Value::Null) => None,
        Some(p) => Some(
            read_parties(p, &format!("{field}.parties"), Some(allowed))?
                .into_iter()
                .collect(),
        ),
    };
    Ok(SourceRef {
        producer: String::new(),
        key: String::new(),
        parties,
        job: None,
        table: Some((namespace, name)),
    })
}

/// Every required input slot of the component has a source for each party that runs the task.
fn check_required(
    catalog: &Catalog,
    field: &str,
    component_ref: &str,
    stages: &BTreeMap<String, String>,
    parties: &[Participant],
    inputs: &[SlotInput],
) -> Result<(), SpecError> {
    let given: HashMap<(&str, &str), &SlotInput> = inputs
        .iter()
        .map(|i| ((i.kind.as_str(), i.slot.as_str()), i))
        .collect();
    for who in parties {
        let Some(side) = side(catalog, component_ref, &who.role, &stages[&who.role]) else {
            continue;
        };
        for kind in ["data", "model"] {
            for slot in slots(side, kind).iter().filter(|a| !a.optional) {
                let fed = given
                    .get(&(kind, slot.name.as_str()))
                    .is_some_and(|i| i.sources.iter().any(|s| s.applies_to(who)));
                if !fed {
                    return Err(err(
                        format!("{field}.inputs.{kind}.{}", slot.name),
                        format!(
                            "missing: component {component_ref:?} needs it on {who} (stage {})",
                            stages[&who.role]
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Each source names an output its producer has, for a role the producer runs on, at its stage.
fn check_producers(catalog: &Catalog, tasks: &[Task]) -> Result<(), SpecError> {
    let by_name: HashMap<&str, &Task> = tasks.iter().map(|t| (t.name.as_str(), t)).collect();
    for task in tasks {
        for input in &task.inputs {
            for (i, source) in input.sources.iter().enumerate() {
                // An earlier job's output, or a table, is checked when the task starts, on
                // each party.
                if !source.in_dag() {
                    continue;
                }
                let producer = by_name[source.producer.as_str()];
                let outputs = |role: &String, stage: &String| {
                    catalog
                        .io(&producer.component_ref, role, stage)
                        .map(|io| &io.outputs)
                };
                let has = producer.stages.iter().any(|(role, stage)| {
                    outputs(role, stage)
                        .is_some_and(|o| slots(o, &input.kind).iter().any(|a| a.name == source.key))
                });
                if has {
                    continue;
                }
                let mut names: BTreeSet<&str> = BTreeSet::new();
                for (role, stage) in &producer.stages {
                    if let Some(o) = outputs(role, stage) {
                        names.extend(slots(o, &input.kind).iter().map(|a| a.name.as_str()));
                    }
                }
                let names: Vec<&str> = names.into_iter().collect();
                let index = if input.sources.len() > 1 {
                    format!("[{i}]")
                } else {
                    String::new()
                };
                return Err(err(
                    format!(
                        "dag.tasks.{}.inputs.{}.{}.task_output_artifact{index}.output_artifact_key",
                        task.name, input.kind, input.slot
                    ),
                    format!(
                        "task {:?} ({}) has no {} output {:?} (it has: {})",
                        producer.name,
                        producer.component_ref,
                        input.kind,
                        source.key,
                        if names.is_empty() {
                            "none".to_owned()
                        } else {
                            names.join(", ")
                        }
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// `dag.party_tasks`: `<name> -> {parties, tasks?: {<task>: {parameters?, conf?}}, conf?}`.
fn read_party_tasks(
    dag: &Map<String, Value>,
    tasks: &Map<String, Value>,
    allowed: &HashSet<Participant>,
) -> Result<Vec<PartyTasks>, SpecError> {
    let Some(value) = dag.get("party_tasks").filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let by_name = object(value, "dag.party_tasks", "expected an object")?;
    let mut read = Vec::with_capacity(by_name.len());
    for (name, entry) in by_name {
        let field = format!("dag.party_tasks.{name}");
        let entry = object(entry, &field, "expected {parties, tasks?, conf?}")?;
        for key in entry.keys() {
            if !["parties", "tasks", "conf"].contains(&key.as_str()) {
                return Err(err(
                    format!("{field}.{key}"),
                    "unknown key (expected parties, tasks or conf)",
                ));
            }
        }
        let pfield = format!("{field}.parties");
        let parties = read_parties(member(entry, "parties", &pfield)?, &pfield, Some(allowed))?;
        let mut overrides = HashMap::new();
        if let Some(t) = entry.get("tasks").filter(|t| !t.is_null()) {
            let tfield = format!("{field}.tasks");
            for (task, body) in object(t, &tfield, "expected an object keyed by task name")? {
                let bfield = format!("{tfield}.{task}");
                if !tasks.contains_key(task) {
                    return Err(err(bfield, format!("unknown task {task:?}")));
                }
                let body = object(body, &bfield, "expected {parameters?, conf?}")?;
                for key in body.keys() {
                    if key != "parameters" && key != "conf" {
                        return Err(err(
                            format!("{bfield}.{key}"),
                            "unknown key (expected parameters or conf)",
                        ));
                    }
                }
                if let Some(c) = body.get("conf").filter(|c| !c.is_null()) {
                    object(c, format!("{bfield}.conf"), "expected an object")?;
                }
                if let Some(p) = body.get("parameters").filter(|p| !p.is_null()) {
                    object(p, format!("{bfield}.parameters"), "expected an object")?;
                    overrides.insert(task.clone(), p.clone());
                }
            }
        }
        let conf = match entry.get("conf").filter(|c| !c.is_null()) {
            None => None,
            Some(c) => Some(Value::Object(
                object(c, format!("{field}.conf"), "expected an object")?.clone(),
            )),
        };
        read.push(PartyTasks {
            parties: parties.into_iter().collect(),
            tasks: overrides,
            conf,
        });
    }
    Ok(read)
}

fn component_of(task: &Task) -> Component {
    Component {
        name: task.name.clone(),
        module: fate::module_of(&task.component_ref),
        provider: Some("fate".into()),
        inputs: task
            .inputs
            .iter()
            .flat_map(|i| {
                i.sources.iter().filter(|s| s.in_dag()).map(|s| Input {
                    kind: i.kind.clone(),
                    key: i.slot.clone(),
                    component: s.producer.clone(),
                    output: s.key.clone(),
                })
            })
            .collect(),
        upstream: task.upstream.clone(),
    }
}

impl Dag {
    /// The job conf layers for `who`: `dag.conf`, then each `party_tasks` entry's `conf` that
    /// names `who`.
    pub(super) fn conf_layers(&self, who: &Participant) -> Vec<&Value> {
        let mut layers = vec![&self.conf];
        layers.extend(
            self.party_tasks
                .iter()
                .filter(|p| p.parties.contains(who))
                .filter_map(|p| p.conf.as_ref()),
        );
        layers
    }

    /// What `who` runs: one plan per task, in topological order.
    pub(super) fn task_plans(&self, who: &Participant) -> Vec<TaskPlan> {
        let catalog = fate::builtin();
        // task -> the overrides for `who`, in `party_tasks` order: one pass over them all, so
        // the work is linear in the DAG however many entries and tasks it has.
        let mut overrides: HashMap<&str, Vec<&Value>> = HashMap::new();
        for entry in self.party_tasks.iter().filter(|p| p.parties.contains(who)) {
            for (task, params) in &entry.tasks {
                overrides.entry(task.as_str()).or_default().push(params);
            }
        }
        self.tasks
            .iter()
            .map(|task| {
                let stage = task
                    .stages
                    .get(&who.role)
                    .cloned()
                    .or_else(|| {
                        catalog.stage_for(&task.component_ref, &who.role, &task.wanted_stage)
                    })
                    .unwrap_or_else(|| task.wanted_stage.clone());
                let mut parameters = task.parameters.clone();
                for p in overrides.remove(task.name.as_str()).unwrap_or_default() {
                    deep_merge(&mut parameters, p);
                }
                let own = side(catalog, &task.component_ref, &who.role, &stage);
                let mut inputs = BTreeMap::new();
                for input in &task.inputs {
                    let def = match own {
                        Some(own) => slots(own, &input.kind)
                            .iter()
                            .find(|a| a.name == input.slot),
                        // A role the component does not serve: the first role that has it.
                        None => task.stages.iter().find_map(|(role, stage)| {
                            side(catalog, &task.component_ref, role, stage).and_then(|s| {
                                slots(s, &input.kind).iter().find(|a| a.name == input.slot)
                            })
                        }),
                    };
                    let Some(def) = def else { continue };
                    let sources: Vec<fate::Source> = input
                        .sources
                        .iter()
                        .filter(|s| s.applies_to(who))
                        .map(|s| fate::Source {
                            producer_task: s.producer.clone(),
                            output_artifact_key: s.key.clone(),
                            job_id: s.job.clone(),
                            table: s
                                .table
                                .clone()
                                .map(|(namespace, name)| fate::TableRef { namespace, name }),
                        })
                        .collect();
                    if sources.is_empty() {
                        continue;
                    }
                    inputs.insert(
                        input.slot.clone(),
                        fate::Input {
                            kind: input.kind.clone(),
                            multi: def.is_multi,
                            sources,
                        },
                    );
                }
                let fate_task = fate::FateTask {
                    component: task.component_ref.clone(),
                    stage,
                    parameters,
                    inputs,
                    parties: task
                        .parties
                        .iter()
                        .map(|p| fate::Party {
                            role: p.role.clone(),
                            party_id: p.party_id.clone(),
                        })
                        .collect(),
                };
                TaskPlan {
                    component: task.name.clone(),
                    module: fate::module_of(&task.component_ref),
                    params: fate_task.to_params(),
                    need_run: task.parties.binary_search(who).is_ok(),
                    upstream: task.upstream.clone(),
                }
            })
            .collect()
    }
}
