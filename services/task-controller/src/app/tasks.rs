//! Task rows: creating a version's rows for one participant, recording the federated status
//! the scheduler decided, listing a job's rows and answering a component's output.

use fedflow_core::TaskStatus;
use fedflow_core::ids::{ComponentName, JobId, Participant, PartyId, Role, TaskVersion};
use fedflow_rpc::now_ms;

use super::{App, Error};
use crate::domain::{self, Task, TaskKey};

/// A task to create, as the scheduler sends it (its ids, module and parameters already
/// checked).
#[derive(Debug, Clone)]
pub struct NewTask {
    pub component: ComponentName,
    pub module: String,
    pub parameters_json: String,
    pub need_run: bool,
    pub upstream: Vec<ComponentName>,
}

/// `CreateTasks`: one version's rows of a job for one participant of this party.
#[derive(Debug, Clone)]
pub struct CreateTasks {
    pub job_id: JobId,
    pub role: Role,
    pub party_id: PartyId,
    pub scheduler_party_id: PartyId,
    pub version: TaskVersion,
    pub tasks: Vec<NewTask>,
    /// Every party of the job, by role.
    pub parties: Vec<Participant>,
}

impl App {
    /// Creates the rows that do not exist yet (existing ones are kept); returns how many
    /// were new.
    pub async fn create_tasks(&self, create: CreateTasks) -> Result<u32, Error> {
        self.check_party(create.party_id.as_str())?;
        for task in &create.tasks {
            // A FATE task this party does not run (psi on an arbiter) passes: nothing here
            // runs it, so nothing here needs to serve it.
            if task.need_run || fedflow_core::fate::component_of(&task.module).is_none() {
                self.check_module(&task.module, create.role.as_str())?;
            }
        }
        let job_id = create.job_id.to_string();
        let rows: Vec<Task> = create
            .tasks
            .into_iter()
            .map(|task| {
                let mut row = Task::new(
                    TaskKey {
                        job_id: create.job_id.to_string(),
                        component: task.component.into_inner(),
                        version: create.version.get(),
                        role: create.role.into_inner(),
                        party_id: create.party_id.to_string(),
                    },
                    task.module,
                    task.parameters_json,
                    task.need_run,
                    task.upstream
                        .into_iter()
                        .map(ComponentName::into_inner)
                        .collect(),
                    create.scheduler_party_id.to_string(),
                );
                row.parties = create.parties.clone();
                row
            })
            .collect();
        let created = self.inner.store.insert_tasks(&rows, now_ms()).await?;
        // The trace the job came with (remembered as the call was served), kept.
        if let Some(traceparent) = fedflow_telemetry::context::jobs::traceparent(&job_id)
            && let Err(e) = self
                .inner
                .store
                .set_trace_parent(&job_id, &traceparent)
                .await
        {
            tracing::debug!(job = %job_id, error = %e, "cannot record the job's trace");
        }
        Ok(created)
    }

    /// Records the federated statuses the scheduler decided (component, version, status), on
    /// every role's row here, against one read of the job's rows.
    pub async fn update_task_status(
        &self,
        job_id: &JobId,
        updates: &[(ComponentName, i32, TaskStatus)],
    ) -> Result<u32, Error> {
        let tasks = self.inner.store.job_tasks(job_id.as_str()).await?;
        let mut updated = 0;
        for (component, version, to) in updates {
            for task in tasks
                .iter()
                .filter(|t| domain::syncs(t, component.as_str(), *version, *to))
            {
                if self
                    .inner
                    .store
                    .cas_status(&task.key, task.status, *to, now_ms())
                    .await?
                {
                    updated += 1;
                }
            }
        }
        Ok(updated)
    }

    pub async fn list_tasks(&self, job_id: &JobId) -> Result<Vec<Task>, Error> {
        Ok(self.inner.store.job_tasks(job_id.as_str()).await?)
    }

    /// The output of the latest version of `component` that succeeded here for `role`.
    pub async fn task_output(
        &self,
        job_id: &JobId,
        component: &ComponentName,
        role: Role,
        party_id: &PartyId,
    ) -> Result<(i32, String), Error> {
        self.check_party(party_id.as_str())?;
        let tasks = self.inner.store.job_tasks(job_id.as_str()).await?;
        domain::latest_success(&tasks, component.as_str(), role.as_str())
            .map(|t| (t.key.version, t.output.clone()))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no successful task of component {component} of job {job_id} for {role} {party_id}"
                ))
            })
    }
}
