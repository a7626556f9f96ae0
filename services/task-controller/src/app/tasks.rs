//! Task rows: creating a version's rows for one participant, recording the federated status
//! the scheduler decided, listing a job's rows and answering a component's output.

use fedflow_core::TaskStatus;
use fedflow_core::ids::Participant;
use fedflow_rpc::now_ms;

use super::{App, Error};
use crate::domain::{self, Task, TaskKey};

/// A task to create, as the scheduler sends it (its ids, module and parameters already
/// checked).
#[derive(Debug, Clone)]
pub struct NewTask {
    pub component: String,
    pub module: String,
    pub parameters_json: String,
    pub need_run: bool,
    pub upstream: Vec<String>,
}

/// `CreateTasks`: one version's rows of a job for one participant of this party.
#[derive(Debug, Clone)]
pub struct CreateTasks {
    pub job_id: String,
    pub who: Participant,
    pub scheduler_party_id: String,
    pub version: i32,
    pub tasks: Vec<NewTask>,
}

impl App {
    /// Creates the rows that do not exist yet (existing ones are kept); returns how many
    /// were new.
    pub async fn create_tasks(&self, create: CreateTasks) -> Result<u32, Error> {
        self.check_party(&create.who.party_id)?;
        let rows: Vec<Task> = create
            .tasks
            .into_iter()
            .map(|task| {
                Task::new(
                    TaskKey {
                        job_id: create.job_id.clone(),
                        component: task.component,
                        version: create.version,
                        role: create.who.role.clone(),
                        party_id: create.who.party_id.clone(),
                    },
                    task.module,
                    task.parameters_json,
                    task.need_run,
                    task.upstream,
                    create.scheduler_party_id.clone(),
                )
            })
            .collect();
        Ok(self.inner.store.insert_tasks(&rows, now_ms()).await?)
    }

    /// Records the federated status the scheduler decided, on every role's row here.
    pub async fn update_task_status(
        &self,
        job_id: &str,
        component: &str,
        version: i32,
        to: TaskStatus,
    ) -> Result<u32, Error> {
        let tasks = self.inner.store.job_tasks(job_id).await?;
        let mut updated = 0;
        for task in tasks
            .iter()
            .filter(|t| domain::syncs(t, component, version, to))
        {
            if self
                .inner
                .store
                .cas_status(&task.key, task.status, to, now_ms())
                .await?
            {
                updated += 1;
            }
        }
        Ok(updated)
    }

    pub async fn list_tasks(&self, job_id: &str) -> Result<Vec<Task>, Error> {
        Ok(self.inner.store.job_tasks(job_id).await?)
    }

    /// The output of the latest version of `component` that succeeded here for `who`.
    pub async fn task_output(
        &self,
        job_id: &str,
        component: &str,
        who: &Participant,
    ) -> Result<(i32, String), Error> {
        self.check_party(&who.party_id)?;
        let tasks = self.inner.store.job_tasks(job_id).await?;
        domain::latest_success(&tasks, component, &who.role)
            .map(|t| (t.key.version, t.output.clone()))
            .ok_or_else(|| {
                Error::NotFound(format!(
                    "no successful task of component {component} of job {job_id} for {who}"
                ))
            })
    }
}
