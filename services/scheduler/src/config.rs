//! The scheduler's configuration (TOML + `FEDFLOW_SCHEDULER__…`); see
//! `deploy/config/scheduler.toml` for every key.

use std::path::PathBuf;

use fedflow_config::{DatabaseConfig, GrpcConfig, MetricsConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub party_id: String,
    pub grpc: GrpcConfig,
    pub database: DatabaseConfig,
    /// This party's gateway, `host:port`: every party call goes through it.
    pub gateway: String,
    pub scheduling: Scheduling,
    pub limits: Limits,
    /// An optional second port that serves only the client API, for clients outside the
    /// party's private network: TLS and a bearer token.
    pub api: Api,
    /// The web board: this party's jobs, tasks and queue in a browser.
    pub board: Board,
    pub telemetry: TelemetryConfig,
    pub metrics: MetricsConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            party_id: "9999".into(),
            grpc: GrpcConfig::default(),
            database: DatabaseConfig {
                url: "sqlite://scheduler.db?mode=rwc".into(),
                ..DatabaseConfig::default()
            },
            gateway: "127.0.0.1:9370".into(),
            scheduling: Scheduling::default(),
            limits: Limits::default(),
            api: Api::default(),
            board: Board::default(),
            telemetry: TelemetryConfig::default(),
            metrics: MetricsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Scheduling {
    /// Waiting jobs are tried again this often even without an event (resources freed by
    /// another party's jobs send no event here). Events trigger the queue at once.
    pub queue_retry_ms: u64,
    /// Deadline of one party call.
    pub call_timeout_ms: u64,
    /// Waiting jobs looked at per queue pass.
    pub queue_scan_limit: u32,
    /// Running jobs are re-driven this often to repair what events missed.
    pub repair_interval_ms: u64,
    /// Time limits for jobs whose `job_parameters` set none (seconds). The job timeout counts
    /// from the job's start, the task timeout from the task's start, the queue timeout from
    /// entering the queue.
    pub default_job_timeout_s: u64,
    pub default_task_timeout_s: u64,
    pub default_queue_timeout_s: u64,
    /// A party that no call has reached for this long fails every running job it takes
    /// part in, with the reason "party P unreachable" (seconds). Parties use the same figure
    /// to fence themselves off from a scheduler they cannot reach.
    pub party_unreachable_timeout_s: u64,
    /// How long a submit keeps trying to create the job on a party it cannot reach (a
    /// gateway or job-controller restarting, a link down for a moment) before the job fails
    /// naming that party (milliseconds). Creation is idempotent, so a try whose answer was
    /// lost is harmless.
    pub create_retry_ms: u64,
    /// Parsed job specs kept in memory (jobs in play); past this the cache starts afresh.
    pub spec_cache_size: usize,
    /// Submissions beyond this many waiting jobs are refused `RESOURCE_EXHAUSTED`, with the
    /// `retry-after-ms` metadata saying when to try again (`queue_retry_ms`).
    pub max_waiting_jobs: u32,
}

impl Default for Scheduling {
    fn default() -> Self {
        Scheduling {
            queue_retry_ms: 1_000,
            call_timeout_ms: 10_000,
            queue_scan_limit: 1_000,
            repair_interval_ms: 5_000,
            default_job_timeout_s: 12 * 3600,
            default_task_timeout_s: 4 * 3600,
            default_queue_timeout_s: 3600,
            party_unreachable_timeout_s: 300,
            create_retry_ms: 20_000,
            spec_cache_size: 10_000,
            max_waiting_jobs: 10_000,
        }
    }
}

/// Size limits on submissions.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub max_dsl_bytes: usize,
    pub max_conf_bytes: usize,
    pub max_components: usize,
    pub max_parties: usize,
}

impl Default for Limits {
    fn default() -> Self {
        let d = fedflow_core::dsl::Limits::default();
        Limits {
            max_dsl_bytes: d.max_dsl_bytes,
            max_conf_bytes: d.max_conf_bytes,
            max_components: d.max_components,
            max_parties: d.max_parties,
        }
    }
}

impl From<&Limits> for fedflow_core::dsl::Limits {
    fn from(l: &Limits) -> Self {
        fedflow_core::dsl::Limits {
            max_dsl_bytes: l.max_dsl_bytes,
            max_conf_bytes: l.max_conf_bytes,
            max_components: l.max_components,
            max_parties: l.max_parties,
        }
    }
}

/// The client port (`api.listen`): the `Scheduler` service only (plus health and reflection).
/// `grpc.listen` keeps serving everything for this party's network and gateway.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Api {
    /// `host:port`; empty: no client port.
    pub listen: String,
    /// A file holding the bearer token clients must send (`authorization: Bearer <token>`);
    /// empty: no token.
    pub token_file: PathBuf,
    /// The port's TLS certificate and key (PEM); empty: plaintext.
    pub tls_cert: PathBuf,
    pub tls_key: PathBuf,
}

/// The web board (`board.listen`): HTML pages of this party's jobs, tasks and queue, with live
/// task statuses. When `api.token_file` is set the board asks for the same token.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Board {
    /// `host:port` of the board's HTTP port; empty: no board.
    pub listen: String,
}
