//! The scheduler's Prometheus metrics (`fedflow_scheduler_…`): the jobs this party schedules
//! by status, the queue's length and how long jobs waited in it. The status gauges start from
//! one count of the job table at start-up and then follow every compare-and-set this process
//! makes (the only writer of its jobs), so they are right after a restart too.

use fedflow_core::JobStatus;
use fedflow_telemetry::metrics::{Family, Gauge, Histogram, Metrics as Registry};

type ByStatus = [(&'static str, String); 1];

#[derive(Clone)]
pub struct Metrics {
    jobs: Family<ByStatus, Gauge>,
    queue_length: Gauge,
    queue_wait_seconds: Histogram,
}

impl Metrics {
    pub fn register(registry: &Registry) -> Metrics {
        let metrics = Metrics {
            jobs: Family::default(),
            queue_length: Gauge::default(),
            queue_wait_seconds: fedflow_telemetry::metrics::long_seconds_histogram(),
        };
        registry.register(
            "fedflow_scheduler_jobs",
            "Jobs this party schedules, by status.",
            metrics.jobs.clone(),
        );
        registry.register(
            "fedflow_scheduler_queue_length",
            "Waiting jobs seen by the last queue pass (at most scheduling.queue_scan_limit).",
            metrics.queue_length.clone(),
        );
        registry.register(
            "fedflow_scheduler_queue_wait_seconds",
            "How long jobs waited in the queue before they started running.",
            metrics.queue_wait_seconds.clone(),
        );
        metrics
    }

    fn gauge(&self, status: JobStatus) -> Gauge {
        self.jobs
            .get_or_create_owned(&[("status", status.as_str().to_owned())])
    }

    /// The job table's counts at start-up.
    pub fn counted(&self, counts: &[(JobStatus, i64)]) {
        for status in JobStatus::ALL {
            let n = counts
                .iter()
                .find(|(s, _)| *s == status)
                .map_or(0, |(_, n)| *n);
            self.gauge(status).set(n);
        }
    }

    /// How many of this scheduler's jobs are in `status` now: the table's count at start-up,
    /// kept by every stored job and every status change since.
    pub fn jobs_in(&self, status: JobStatus) -> i64 {
        self.gauge(status).get()
    }

    /// A job row was stored in `status`.
    pub fn created(&self, status: JobStatus) {
        self.gauge(status).inc();
    }

    /// A job moved `from -> to`.
    pub fn moved(&self, from: JobStatus, to: JobStatus) {
        self.gauge(from).dec();
        self.gauge(to).inc();
    }

    /// A job started running after `seconds` in the queue.
    pub fn waited(&self, seconds: f64) {
        self.queue_wait_seconds.observe(seconds);
    }

    /// The last queue pass saw `n` waiting jobs.
    pub fn queue_length(&self, n: usize) {
        self.queue_length.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
}
