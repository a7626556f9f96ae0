//! The task-controller's pure rules, with no I/O and no clock reads: what a start, a worker's
//! report, a heartbeat, an exit or a stop does to an attempt ([`attempt`]), when a running
//! worker counts as lost or unresponsive ([`heartbeat`]), and when a party fences itself off
//! from a scheduler it cannot reach ([`fencing`]). The app reads rows, asks these functions,
//! writes what they decide with a compare-and-set and then performs the effects.

pub mod attempt;
pub mod fencing;
pub mod heartbeat;
pub mod table;

use fedflow_core::ids::Participant;
use fedflow_core::{TaskStatus, Transition};

/// Which task row: one per (job, component, version, role) on this party.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TaskKey {
    pub job_id: String,
    pub component: String,
    pub version: i32,
    pub role: String,
    pub party_id: String,
}

impl TaskKey {
    /// How the audit trail names it: `job/component/version/role/party`.
    pub fn audit_key(&self) -> String {
        format!(
            "{}/{}/{}/{}/{}",
            self.job_id, self.component, self.version, self.role, self.party_id
        )
    }
}

/// A key checked on arrival, as the rows spell it.
impl From<fedflow_core::ids::TaskKey> for TaskKey {
    fn from(key: fedflow_core::ids::TaskKey) -> TaskKey {
        TaskKey {
            job_id: key.job_id.into_inner(),
            component: key.component.into_inner(),
            version: key.version.get(),
            role: key.role.into_inner(),
            party_id: key.party_id.into_inner(),
        }
    }
}

impl std::fmt::Display for TaskKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {} v{} ({} {})",
            self.job_id, self.component, self.version, self.role, self.party_id
        )
    }
}

/// One task row of this party.
#[derive(Debug, Clone)]
pub struct Task {
    pub key: TaskKey,
    pub module: String,
    /// This party's resolved parameters, a JSON object.
    pub parameters: String,
    pub need_run: bool,
    pub upstream: Vec<String>,
    pub scheduler_party_id: String,
    /// Every party of the job, by role: the task's peers on the data plane (empty for rows
    /// of a scheduler that did not send them).
    pub parties: Vec<Participant>,
    /// This party's own status: `waiting` until an attempt is claimed, `running` while its
    /// worker runs, then the attempt's end status.
    pub party_status: TaskStatus,
    /// The federated status as last synced by the scheduler (display only here).
    pub status: TaskStatus,
    pub reason: String,
    /// The worker's pid and its start time (clock ticks since boot); 0 when none was started
    /// or recorded yet.
    pub pid: u32,
    pub pid_start: u64,
    /// The worker attempt's secret; reports without it change nothing.
    pub token: String,
    /// The data output, JSON; empty when none.
    pub output: String,
    pub start_ms: i64,
    pub end_ms: i64,
}

impl Task {
    /// A new row of a task, waiting, with no attempt yet.
    pub fn new(
        key: TaskKey,
        module: String,
        parameters: String,
        need_run: bool,
        upstream: Vec<String>,
        scheduler_party_id: String,
    ) -> Task {
        Task {
            key,
            module,
            parameters,
            need_run,
            upstream,
            scheduler_party_id,
            parties: Vec::new(),
            party_status: TaskStatus::Waiting,
            status: TaskStatus::Waiting,
            reason: String::new(),
            pid: 0,
            pid_start: 0,
            token: String::new(),
            output: String::new(),
            start_ms: 0,
            end_ms: 0,
        }
    }
}

/// Whether the federated status `to` of (`component`, `version`) that the scheduler decided
/// is to be written on `task` (with a compare-and-set on its current status): only a legal
/// change of one of that version's rows.
pub fn syncs(task: &Task, component: &str, version: i32, to: TaskStatus) -> bool {
    task.key.component == component
        && task.key.version == version
        && task.status.apply(to) == Ok(Transition::Changed)
}

/// The row whose output `GetTaskOutput` answers: the latest version of `component` that
/// succeeded (or passed) here for `role`.
pub fn latest_success<'a>(tasks: &'a [Task], component: &str, role: &str) -> Option<&'a Task> {
    tasks
        .iter()
        .filter(|t| {
            t.key.component == component && t.key.role == role && t.party_status.is_success()
        })
        .max_by_key(|t| t.key.version)
}

/// A test row: version 0 of `component` for the host `10000`, a `Sleep` with no parameters
/// and no upstream, of a job `scheduler` schedules.
#[cfg(test)]
pub fn host_task(job_id: &str, component: &str, scheduler: &str) -> Task {
    let key = TaskKey {
        job_id: job_id.into(),
        component: component.into(),
        version: 0,
        role: "host".into(),
        party_id: "10000".into(),
    };
    Task::new(
        key,
        "Sleep".into(),
        "{}".into(),
        true,
        Vec::new(),
        scheduler.into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(component: &str, version: i32, role: &str, party_status: TaskStatus) -> Task {
        let mut task = Task::new(
            TaskKey {
                job_id: "j1".into(),
                component: component.into(),
                version,
                role: role.into(),
                party_id: "9999".into(),
            },
            "Sum".into(),
            "{}".into(),
            true,
            Vec::new(),
            "9999".into(),
        );
        task.party_status = party_status;
        task.output = format!("{component}{version}");
        task
    }

    #[test]
    fn a_federated_status_is_written_on_its_version_only_when_it_changes_legally() {
        for from in TaskStatus::ALL {
            for to in TaskStatus::ALL {
                let mut task = row("a", 1, "guest", TaskStatus::Running);
                task.status = from;
                assert_eq!(
                    syncs(&task, "a", 1, to),
                    from != to && from.can_move_to(to),
                    "{from} -> {to}"
                );
                assert!(!syncs(&task, "a", 0, to), "another version");
                assert!(!syncs(&task, "b", 1, to), "another component");
            }
        }
    }

    #[test]
    fn the_output_is_the_latest_successful_version_of_the_role() {
        use TaskStatus::*;
        let tasks = [
            row("a", 0, "guest", Success),
            row("a", 1, "guest", Pass),
            row("a", 2, "guest", Failed),
            row("a", 3, "host", Success),
            row("b", 4, "guest", Success),
        ];
        let cases = [
            ("a", "guest", Some("a1")),
            ("a", "host", Some("a3")),
            ("b", "guest", Some("b4")),
            ("b", "host", None),
            ("c", "guest", None),
        ];
        for (component, role, expected) in cases {
            assert_eq!(
                latest_success(&tasks, component, role).map(|t| t.output.as_str()),
                expected,
                "{component} {role}"
            );
        }
    }
}
