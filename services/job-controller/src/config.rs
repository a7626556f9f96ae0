//! The job-controller's configuration (TOML + `FEDFLOW_JOB_CONTROLLER__…`); see
//! `deploy/config/job-controller.toml` for every key.

use std::time::Duration;

use fedflow_config::{DatabaseConfig, GrpcConfig, MetricsConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};

use crate::domain::Capacity;

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub party_id: String,
    pub grpc: GrpcConfig,
    pub database: DatabaseConfig,
    /// This party's task-controller, `host:port`.
    pub task_controller: String,
    pub resources: Resources,
    pub telemetry: TelemetryConfig,
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            party_id: "9999".into(),
            grpc: GrpcConfig::default(),
            database: DatabaseConfig {
                url: "sqlite://job-controller.db?mode=rwc".into(),
                ..DatabaseConfig::default()
            },
            task_controller: "127.0.0.1:9382".into(),
            resources: Resources::default(),
            telemetry: TelemetryConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

/// What this party can give to jobs at once.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Resources {
    /// Cores (FATE's standalone default: 20).
    pub cores: u32,
    /// Memory in MB; 0 = memory is not managed.
    pub memory_mb: u32,
    /// A reservation whose job has not started running this long (seconds) after it was
    /// granted is released: its scheduler stopped between asking and starting. Reservations
    /// of jobs that ended are released at once; both are checked every
    /// `reconcile_period_ms`.
    pub reservation_timeout_s: u64,
    /// How often (ms) the ledger is checked for reservations that should not exist.
    pub reconcile_period_ms: u64,
}

impl Resources {
    /// What the ledger may grant at once.
    pub fn capacity(&self) -> Capacity {
        Capacity {
            cores: self.cores,
            memory_mb: self.memory_mb,
        }
    }

    pub fn reservation_timeout(&self) -> Duration {
        Duration::from_secs(self.reservation_timeout_s)
    }

    /// At least 1 ms, so a 0 in the file cannot make the reconciler spin.
    pub fn reconcile_period(&self) -> Duration {
        Duration::from_millis(self.reconcile_period_ms.max(1))
    }
}

impl Default for Resources {
    fn default() -> Self {
        Resources {
            cores: 20,
            memory_mb: 0,
            reservation_timeout_s: 120,
            reconcile_period_ms: 10_000,
        }
    }
}
