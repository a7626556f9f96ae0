//! The task-controller's Prometheus metrics (`fedflow_task_controller_…`): attempts started,
//! attempts ended by status, and how long attempts ran. Counted by the app where an attempt
//! is launched and where a running attempt's row reaches an end status; labels are module
//! names and statuses, never task or job ids.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use fedflow_telemetry::metrics::{Counter, Family, HistogramFamily, Metrics as Registry};
use parking_lot::Mutex;

use crate::store::TaskKey;

/// Label set of one module.
type ByModule = [(&'static str, String); 1];
/// Label set of one (module, end status).
type ByModuleStatus = [(&'static str, String); 2];

#[derive(Clone)]
pub struct Metrics {
    started: Family<ByModule, Counter>,
    ended: Family<ByModuleStatus, Counter>,
    run_seconds: HistogramFamily<ByModuleStatus>,
    /// When each attempt running here was launched (a restart forgets them: the row's
    /// `start_ms` is used then).
    launched: Arc<Mutex<HashMap<TaskKey, Instant>>>,
}

impl Metrics {
    pub fn register(registry: &Registry) -> Metrics {
        let metrics = Metrics {
            started: Family::default(),
            ended: Family::default(),
            run_seconds: Family::new_with_constructor(
                fedflow_telemetry::metrics::long_seconds_histogram,
            ),
            launched: Arc::default(),
        };
        registry.register(
            "fedflow_task_controller_tasks_started",
            "Task attempts whose worker this party launched, by module.",
            metrics.started.clone(),
        );
        registry.register(
            "fedflow_task_controller_tasks_ended",
            "Task attempts that ended after running, by module and end status.",
            metrics.ended.clone(),
        );
        registry.register(
            "fedflow_task_controller_task_run_seconds",
            "How long task attempts ran, from launch to their end status, by module and status.",
            metrics.run_seconds.clone(),
        );
        metrics
    }

    /// An attempt of `module` is being launched.
    pub fn started(&self, key: &TaskKey, module: &str) {
        self.started
            .get_or_create(&[("module", module.to_owned())])
            .inc();
        self.launched.lock().insert(key.clone(), Instant::now());
    }

    /// A running attempt ended with `status`; `start_ms` is its row's start stamp.
    pub fn ended(&self, key: &TaskKey, module: &str, status: &str, start_ms: i64) {
        let labels = [("module", module.to_owned()), ("status", status.to_owned())];
        self.ended.get_or_create(&labels).inc();
        let seconds = match self.launched.lock().remove(key) {
            Some(at) => at.elapsed().as_secs_f64(),
            None if start_ms > 0 => (fedflow_rpc::now_ms() - start_ms).max(0) as f64 / 1000.0,
            None => return,
        };
        self.run_seconds.get_or_create(&labels).observe(seconds);
    }
}
