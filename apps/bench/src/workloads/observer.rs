//! The benchmark's one observer: a `WatchJob` stream of every status change of a scheduler,
//! each stamped on arrival here, so the latency figures come without polling.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fedflow_proto::common::v1::{JobStatus, TaskStatus};
use fedflow_proto::scheduler::v1 as pb;
use fedflow_tests::channel;
use futures::StreamExt;
use tokio::sync::Notify;

use super::Client;

/// When each status change of a job arrived here.
#[derive(Debug, Default, Clone)]
pub(super) struct Timeline {
    /// (component, version, "role party", status) -> arrival.
    pub(super) party: HashMap<(String, i32, String, i32), Instant>,
    /// job status -> arrival.
    pub(super) job: HashMap<i32, Instant>,
}

/// Reads every status change of a scheduler and stamps it on arrival.
#[derive(Clone)]
pub(super) struct Observer {
    pub(super) timelines: Arc<Mutex<HashMap<String, Timeline>>>,
    pub(super) changed: Arc<Notify>,
}

pub(super) fn is_end(status: i32) -> bool {
    [
        JobStatus::Success,
        JobStatus::Failed,
        JobStatus::Canceled,
        JobStatus::Timeout,
    ]
    .iter()
    .any(|s| *s as i32 == status)
}

impl Observer {
    pub(super) async fn start(scheduler: &str) -> Observer {
        let mut client = Client::new(channel(scheduler));
        let mut stream = client
            .watch_job(pb::WatchJobRequest {
                job_id: String::new(),
            })
            .await
            .expect("watch every job")
            .into_inner();
        let observer = Observer {
            timelines: Arc::default(),
            changed: Arc::new(Notify::new()),
        };
        let o = observer.clone();
        tokio::spawn(async move {
            while let Some(event) = stream.next().await {
                let now = Instant::now();
                let event = match event {
                    Ok(event) => event,
                    Err(status) => {
                        eprintln!("fedflow-bench: event stream ended: {}", status.message());
                        return;
                    }
                };
                {
                    let mut timelines = o.timelines.lock().expect("timelines");
                    let timeline = timelines.entry(event.job_id.clone()).or_default();
                    match event.event {
                        Some(pb::job_event::Event::Job(job)) => {
                            timeline.job.entry(job.status).or_insert(now);
                        }
                        Some(pb::job_event::Event::Task(task)) if !task.party_id.is_empty() => {
                            timeline
                                .party
                                .entry((
                                    task.component,
                                    task.version,
                                    format!("{} {}", task.role, task.party_id),
                                    task.status,
                                ))
                                .or_insert(now);
                        }
                        _ => {}
                    }
                }
                o.changed.notify_waiters();
            }
        });
        observer
    }

    pub(super) fn ended(&self, job_id: &str) -> Option<(i32, Instant)> {
        let timelines = self.timelines.lock().expect("timelines");
        timelines
            .get(job_id)?
            .job
            .iter()
            .find(|(s, _)| is_end(**s))
            .map(|(s, t)| (*s, *t))
    }

    /// Waits until every job in `jobs` has ended; returns how many succeeded. Checks at most
    /// every 5 ms, and only the jobs still pending, so waiting costs little CPU.
    pub(super) async fn wait_all(&self, jobs: &[String], within: Duration) -> usize {
        let deadline = tokio::time::Instant::now() + within;
        let mut pending: Vec<&String> = jobs.iter().collect();
        let mut succeeded = 0;
        loop {
            let notified = self.changed.notified();
            pending.retain(|job| match self.ended(job) {
                Some((status, _)) => {
                    succeeded += usize::from(status == JobStatus::Success as i32);
                    false
                }
                None => true,
            });
            if pending.is_empty() {
                return succeeded;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "only {} of {} jobs ended within {within:?}",
                    jobs.len() - pending.len(),
                    jobs.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(super) fn timeline(&self, job_id: &str) -> Timeline {
        self.timelines
            .lock()
            .expect("timelines")
            .get(job_id)
            .cloned()
            .unwrap_or_default()
    }

    pub(super) fn forget(&self, job_id: &str) {
        self.timelines.lock().expect("timelines").remove(job_id);
    }
}

/// When every party had `component` in `status` (the last of their arrivals).
pub(super) fn all_parties(
    t: &Timeline,
    component: &str,
    status: TaskStatus,
    parties: usize,
) -> Option<Instant> {
    let times: Vec<Instant> = t
        .party
        .iter()
        .filter(|((c, v, _, s), _)| c == component && *v == 0 && *s == status as i32)
        .map(|(_, at)| *at)
        .collect();
    (times.len() == parties)
        .then(|| times.into_iter().max())
        .flatten()
}
