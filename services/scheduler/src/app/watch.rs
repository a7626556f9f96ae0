//! Watching jobs, and the job views clients read. A job's watch is its snapshot, then its
//! live events until it ends; a watcher too slow for the broadcast gets a fresh snapshot
//! instead of what it missed. The watch of every job has no snapshot to fall back on: a
//! watcher that falls behind gets [`Missed`] and its stream ends.
//!
//! The parties a view shows come from the app's cached spec, never from a parse per row.

use fedflow_core::ids::JobId;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use super::{App, Error, Located};
use crate::domain::model::{Cursor, Job, JobView, ListJobs};
use crate::events::Event;

/// A watcher of every job fell this many events behind; its stream ends there.
#[derive(Debug, thiserror::Error)]
#[error("{0} events were dropped: the reader is too slow")]
pub struct Missed(pub u64);

impl App {
    /// The events of one job this party schedules: a snapshot, then each change as it is
    /// recorded, until the job ends (or the reader goes away). A job another party schedules
    /// is FAILED_PRECONDITION: it is watched on that party's scheduler.
    pub async fn watch_job(
        &self,
        job_id: &JobId,
    ) -> Result<ReceiverStream<Result<Event, Error>>, Error> {
        if let Located::At(party) = self.locate(job_id).await? {
            return Err(Error::FailedPrecondition(format!(
                "job {job_id} is scheduled by party {party}: watch it on that party's scheduler"
            )));
        }
        // Subscribe before the snapshot so no change falls between them.
        let mut events = self.subscribe();
        let snapshot = self.snapshot(job_id).await?;
        let (tx, rx) = mpsc::channel(256);
        let (app, job_id) = (self.clone(), job_id.clone());
        tokio::spawn(async move {
            let mut ended = false;
            for event in snapshot {
                ended |= event.ends_job();
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
            while !ended {
                let event = match events.recv().await {
                    Ok(event) if event.job_id() == job_id.as_str() => event,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => {
                        // Too slow a reader: send a fresh snapshot instead of what was missed.
                        match app.snapshot(&job_id).await {
                            Ok(snapshot) => {
                                for event in snapshot {
                                    ended |= event.ends_job();
                                    if tx.send(Ok(event)).await.is_err() {
                                        return;
                                    }
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(Err(e)).await;
                                return;
                            }
                        }
                        continue;
                    }
                    Err(RecvError::Closed) => return,
                };
                ended = event.ends_job();
                if tx.send(Ok(event)).await.is_err() {
                    return;
                }
            }
        });
        Ok(ReceiverStream::new(rx))
    }

    /// Every event of every job, as it happens, until the reader goes away or falls behind
    /// ([`Missed`], the last item).
    pub fn watch_all(&self) -> ReceiverStream<Result<Event, Missed>> {
        let mut events = self.subscribe();
        let (tx, rx) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let item = match events.recv().await {
                    Ok(event) => Ok(event),
                    Err(RecvError::Lagged(n)) => Err(Missed(n)),
                    Err(RecvError::Closed) => return,
                };
                let last = item.is_err();
                if tx.send(item).await.is_err() || last {
                    return;
                }
            }
        });
        ReceiverStream::new(rx)
    }

    /// A job this party schedules, with its parties.
    pub async fn job_view(&self, job_id: &JobId) -> Result<JobView, Error> {
        let job = self.job_here(job_id.as_str()).await?;
        Ok(self.view(job))
    }

    /// One page of [`App::list_jobs`], each job with its parties, and the next page's cursor.
    pub async fn job_views(
        &self,
        request: &ListJobs,
    ) -> Result<(Vec<JobView>, Option<Cursor>), Error> {
        let (jobs, next) = self.list_jobs(request).await?;
        Ok((jobs.into_iter().map(|job| self.view(job)).collect(), next))
    }

    /// A stored job whose DSL no longer parses (it parsed when it was submitted) is still
    /// shown, without parties, rather than failing a whole listing.
    fn view(&self, job: Job) -> JobView {
        let parties = match self.participants(&job) {
            Ok(participants) => participants.as_ref().clone(),
            Err(e) => {
                tracing::warn!(job = %job.job_id, error = %e, "job shown without its parties");
                Vec::new()
            }
        };
        JobView { job, parties }
    }
}
