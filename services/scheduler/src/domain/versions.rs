//! Which task versions a submit (every component, version 0), a rerun (the chosen components
//! and everything downstream, each at its next version) or an automatic retry (one component,
//! next version) creates, and their rows: one federated row per version and one row per
//! participant, all `waiting`. Every party is sent the same versions ([`creations`]) before
//! the rows are stored, so nothing here is stored that a party refused.

use std::collections::{BTreeMap, BTreeSet};

use fedflow_core::TaskStatus;
use fedflow_core::dsl::{JobSpec, SpecError, TaskPlan};
use fedflow_core::ids::Participant;

use super::{Task, TaskParty};

/// The new versions' rows: for each `(component, version)`, its task row and one row per
/// participant, all waiting since `now`.
pub fn new_version_rows(
    job_id: &str,
    spec: &JobSpec,
    versions: &BTreeMap<String, i32>,
    retries_left: u32,
    not_before_ms: i64,
    now: i64,
) -> (Vec<Task>, Vec<TaskParty>) {
    let participants = spec.participants();
    let tasks = versions
        .iter()
        .map(|(component, version)| Task {
            job_id: job_id.to_owned(),
            component: component.clone(),
            version: *version,
            module: spec
                .component(component)
                .map(|c| c.module.clone())
                .unwrap_or_default(),
            status: TaskStatus::Waiting,
            reason: String::new(),
            retries_left,
            not_before_ms,
            start_ms: 0,
            end_ms: 0,
        })
        .collect();
    let parties = versions
        .iter()
        .flat_map(|(component, version)| {
            participants.iter().map(|who| TaskParty {
                job_id: job_id.to_owned(),
                component: component.clone(),
                version: *version,
                who: who.clone(),
                status: TaskStatus::Waiting,
                reason: String::new(),
                update_ms: now,
            })
        })
        .collect();
    (tasks, parties)
}

/// Version 0 of every component.
pub fn first_versions(spec: &JobSpec) -> BTreeMap<String, i32> {
    spec.components
        .iter()
        .map(|c| (c.name.clone(), 0))
        .collect()
}

/// What each participant is sent to create `versions`: one `CreateTasks` per participant and
/// version, with that participant's plans of the components at that version.
pub fn creations(
    spec: &JobSpec,
    versions: &BTreeMap<String, i32>,
) -> Result<Vec<(Participant, i32, Vec<TaskPlan>)>, SpecError> {
    let mut creations = Vec::new();
    for who in spec.participants() {
        let mut by_version: BTreeMap<i32, Vec<TaskPlan>> = BTreeMap::new();
        for plan in spec.task_plans(&who)? {
            if let Some(v) = versions.get(&plan.component) {
                by_version.entry(*v).or_default().push(plan);
            }
        }
        for (version, plans) in by_version {
            creations.push((who.clone(), version, plans));
        }
    }
    Ok(creations)
}

/// A rerun: the components it reruns (the roots and everything downstream of them) and the
/// version each gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rerun {
    pub components: BTreeSet<String>,
    pub versions: BTreeMap<String, i32>,
}

/// Why a rerun was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RerunRefused {
    /// The component named is not in the job (an invalid argument).
    #[error("component: job {job_id} has no component {component:?}")]
    NoSuchComponent { job_id: String, component: String },
    /// Nothing failed and no force (a failed precondition).
    #[error("job {job_id}: every component succeeded; nothing to rerun (use --force)")]
    NothingToRerun { job_id: String },
}

/// The rerun of `component` (or, when empty, of every component that did not succeed, or
/// every one with `force`) and of everything downstream, each at its latest version + 1.
pub fn rerun(
    job_id: &str,
    spec: &JobSpec,
    latest: &BTreeMap<String, Task>,
    component: &str,
    force: bool,
) -> Result<Rerun, RerunRefused> {
    let roots: Vec<String> = if !component.is_empty() {
        if spec.component(component).is_none() {
            return Err(RerunRefused::NoSuchComponent {
                job_id: job_id.to_owned(),
                component: component.to_owned(),
            });
        }
        vec![component.to_owned()]
    } else {
        latest
            .values()
            .filter(|t| force || !t.status.is_success())
            .map(|t| t.component.clone())
            .collect()
    };
    if roots.is_empty() {
        return Err(RerunRefused::NothingToRerun {
            job_id: job_id.to_owned(),
        });
    }
    let components = spec.downstream_closure(&roots);
    let versions = components
        .iter()
        .map(|c| (c.clone(), latest.get(c).map_or(0, |t| t.version + 1)))
        .collect();
    Ok(Rerun {
        components,
        versions,
    })
}
