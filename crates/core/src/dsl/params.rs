//! Per-participant resolution of a runtime conf: the job parameters fedflow acts on, each
//! component's parameters deep-merged from `common` and the role sections that select the
//! participant, and the checks [`super::parse`] runs on both sections before accepting them.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use crate::ids::Participant;
use crate::modules;

use super::{JobParams, JobSpec, SpecError, TaskPlan, err, object};

impl JobSpec {
    /// The job parameters for one participant: `job_parameters.common`, overridden by every
    /// `job_parameters.role.<role>.<selector>` that selects it.
    pub fn job_params(&self, who: &Participant) -> Result<JobParams, SpecError> {
        let mut merged = Map::new();
        for layer in self.layers("job_parameters", who)? {
            deep_merge(&mut merged, layer);
        }
        let section = if self.fate2.is_some() {
            "dag.conf"
        } else {
            "job_parameters"
        };
        let field = |key: &str| format!("{section}.{key} (for {who})");
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
    /// For a FATE 2.x DAG, each task's [`crate::fate::FateTask`] for `who`.
    pub fn task_plans(&self, who: &Participant) -> Result<Vec<TaskPlan>, SpecError> {
        if let Some(dag) = &self.fate2 {
            return Ok(dag.task_plans(who));
        }
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
        if let Some(dag) = &self.fate2 {
            let job = section == "job_parameters";
            return Ok(if job {
                dag.conf_layers(who)
            } else {
                Vec::new()
            });
        }
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

    pub(super) fn check_parameters(&self) -> Result<(), SpecError> {
        // A FATE 2.x DAG's tasks are checked as it is read; pyfate checks its own parameters
        // when a task runs.
        if self.fate2.is_some() {
            for who in self.participants() {
                self.job_params(&who)?;
            }
            return Ok(());
        }
        let names: HashSet<&str> = self.components.iter().map(|c| c.name.as_str()).collect();
        for section in ["job_parameters", "component_parameters"] {
            let Some(root) = self.conf.get(section) else {
                continue;
            };
            let root = object(root, section, "expected an object with common and role")?;
            for (key, value) in root {
                let field = format!("{section}.{key}");
                match key.as_str() {
                    "common" => {
                        let common = object(value, &field, "expected an object")?;
                        if section == "component_parameters" {
                            check_component_keys(&names, &field, common)?;
                        }
                    }
                    "role" => {
                        let by_role = object(value, &field, "expected an object keyed by role")?;
                        for (role, by_selector) in by_role {
                            let field = format!("{field}.{role}");
                            let parties = self.roles.get(role).ok_or_else(|| {
                                err(&field, format!("role {role:?} is not in the conf's role"))
                            })?;
                            let by_selector = object(
                                by_selector,
                                &field,
                                "expected an object keyed by party index",
                            )?;
                            for (selector, params) in by_selector {
                                let field = format!("{field}.{selector}");
                                selects(selector, 0, parties.len())
                                    .map_err(|message| err(&field, message))?;
                                let params = object(params, &field, "expected an object")?;
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
                let external = self
                    .components
                    .iter()
                    .any(|c| c.name == plan.component && c.provider.is_some());
                if external {
                    continue;
                }
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

pub(super) fn deep_merge(into: &mut Map<String, Value>, from: &Value) {
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
