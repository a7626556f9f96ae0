//! Queries: where a job is scheduled, the job list, a job's tasks with every party's status,
//! the snapshot a watcher starts from, a task's output; and the pass-through of a client call
//! to the scheduler of a job another party schedules. Nothing here writes.

use std::collections::HashMap;

use fedflow_core::JobStatus;
use fedflow_core::ids::{ComponentName, JobId, Participant};
use fedflow_rpc::now_ms;

use super::{App, Error};
use crate::domain::model::{Cursor, ListJobs};
use crate::domain::plan::latest;
use crate::events::Event;
use crate::store::{Job, Task, TaskParty};

/// Where a job is scheduled.
pub enum Located {
    Here,
    /// By another party's scheduler.
    At(String),
}

/// A task version with every party's own status.
pub struct TaskView {
    pub task: Task,
    pub parties: Vec<TaskParty>,
}

impl App {
    pub async fn locate(&self, job_id: &JobId) -> Result<Located, Error> {
        let job_id = job_id.as_str();
        if self.store().job(job_id).await?.is_some() {
            return Ok(Located::Here);
        }
        let rows = self
            .inner
            .remote
            .party_jobs(&self.inner.party_id, job_id)
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    Error::NotFound(format!(
                        "job {job_id} not found on party {}",
                        self.inner.party_id
                    ))
                } else {
                    Error::Remote(e)
                }
            })?;
        match rows.into_iter().next() {
            Some((_, scheduler)) if scheduler != self.inner.party_id => Ok(Located::At(scheduler)),
            _ => Err(Error::NotFound(format!(
                "job {job_id} not found on party {}",
                self.inner.party_id
            ))),
        }
    }

    /// One page of the jobs matching `request.filter` (`request.limit` of them: 0 means 20,
    /// at most 1000) and the cursor of the next page, None at the end.
    pub async fn list_jobs(&self, request: &ListJobs) -> Result<(Vec<Job>, Option<Cursor>), Error> {
        let limit = match request.limit {
            0 => 20,
            n => n.min(1000),
        };
        let filter = &request.filter;
        if filter.submitted_before_ms != 0
            && filter.submitted_before_ms <= filter.submitted_after_ms
        {
            return Ok((Vec::new(), None));
        }
        // One more than the page: whether another page follows, without a count.
        let mut jobs = self
            .store()
            .list_jobs(filter, request.after.as_ref(), limit + 1)
            .await?;
        let more = jobs.len() > limit as usize;
        jobs.truncate(limit as usize);
        let next = if more {
            jobs.last().and_then(Cursor::of)
        } else {
            None
        };
        Ok((jobs, next))
    }

    /// The job's tasks (latest versions, or all) with every party's status.
    pub async fn tasks(&self, job_id: &JobId, all_versions: bool) -> Result<Vec<TaskView>, Error> {
        let job_id = job_id.as_str();
        let job = self.job(job_id).await?;
        let spec = self.spec(&job)?;
        let mut parties = self.store().task_parties(job_id).await?;
        let tasks = self.store().tasks(job_id).await?;
        let mut tasks: Vec<Task> = if all_versions {
            tasks
        } else {
            latest(tasks).into_values().collect()
        };
        let order: HashMap<&str, usize> = spec
            .components
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name.as_str(), i))
            .collect();
        tasks.sort_by_key(|t| (order.get(t.component.as_str()).copied(), t.version));
        Ok(tasks
            .into_iter()
            .map(|task| {
                let (mine, rest): (Vec<_>, Vec<_>) = parties
                    .drain(..)
                    .partition(|p| p.component == task.component && p.version == task.version);
                parties = rest;
                TaskView {
                    task,
                    parties: mine,
                }
            })
            .collect())
    }

    /// Everything a watcher needs first: the job status, then each task's federated and
    /// party statuses.
    pub async fn snapshot(&self, id: &JobId) -> Result<Vec<Event>, Error> {
        let job_id = id.as_str();
        let job = self.job(job_id).await?;
        let now = now_ms();
        let mut events = Vec::new();
        for view in self.tasks(id, false).await? {
            for party in &view.parties {
                events.push(Event::Task {
                    job_id: job_id.to_owned(),
                    time_ms: now,
                    component: view.task.component.clone(),
                    version: view.task.version,
                    who: Some(party.who.clone()),
                    status: party.status,
                    reason: party.reason.clone(),
                });
            }
            events.push(Event::Task {
                job_id: job_id.to_owned(),
                time_ms: now,
                component: view.task.component.clone(),
                version: view.task.version,
                who: None,
                status: view.task.status,
                reason: view.task.reason.clone(),
            });
        }
        events.push(Event::Job {
            job_id: job_id.to_owned(),
            time_ms: now,
            status: job.status,
            reason: if job.status == JobStatus::Waiting {
                job.pending_reason
            } else {
                job.reason
            },
        });
        Ok(events)
    }

    /// Passes a client call on to the scheduler of `party` (the job's), through the gateways.
    pub async fn forward<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        party: &str,
        job_id: &str,
        method: &str,
        request: &Req,
    ) -> Result<Resp, Error> {
        Ok(self
            .inner
            .remote
            .scheduler(party, job_id, method, request)
            .await?)
    }

    /// A component's output on one participant of a job this party schedules.
    pub async fn task_output(
        &self,
        job_id: &JobId,
        component: &ComponentName,
        who: &Participant,
    ) -> Result<(i32, String), Error> {
        let (job_id, component) = (job_id.as_str(), component.as_str());
        let job = self.job(job_id).await?;
        let spec = self.spec(&job)?;
        if spec.component(component).is_none() {
            return Err(Error::InvalidArgument(format!(
                "component: job {job_id} has no component {component:?}"
            )));
        }
        if !spec.participants().contains(who) {
            return Err(Error::InvalidArgument(format!(
                "{who} is not a participant of job {job_id}"
            )));
        }
        self.inner
            .remote
            .task_output(job_id, component, who)
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    Error::NotFound(e.message)
                } else {
                    Error::Remote(e)
                }
            })
    }
}
