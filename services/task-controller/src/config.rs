//! The task-controller's configuration (TOML + `FEDFLOW_TASK_CONTROLLER__…`); see
//! `deploy/config/task-controller.toml` for every key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fedflow_config::{DatabaseConfig, GrpcConfig, MetricsConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub party_id: String,
    pub grpc: GrpcConfig,
    /// The address workers dial back on; empty = the address the server is bound to.
    pub advertise: String,
    pub database: DatabaseConfig,
    /// This party's gateway, `host:port` (status reports to schedulers go through it).
    pub gateway: String,
    /// The gateway's data-plane port (its `transfer.listen`) as this party's workers reach
    /// it: components exchange data with their peers on other parties there (FATE's OSX
    /// protocol). Empty: components are given no data plane.
    pub data_plane: String,
    /// Deadline of one call through the gateway (a status report, a fencing probe).
    pub gateway_call_timeout_ms: u64,
    /// Task directories live under `<data_dir>/jobs/…`.
    pub data_dir: PathBuf,
    pub worker: WorkerConfig,
    pub fencing: FencingConfig,
    pub telemetry: TelemetryConfig,
    pub metrics: MetricsConfig,
    /// External components this party's operator registers, by module name: what a DSL's
    /// component with a `provider` runs here. A DSL names a module, never a command.
    pub components: BTreeMap<String, ComponentConfig>,
    /// FATE 2.x components (`fate:<component>` in a FATE 2.x DAG): this party's pyfate.
    pub fate: FateConfig,
}

/// This party's FATE provider: the python of a venv holding pyfate 2.2
/// (`scripts/setup-fate.sh` makes one), pyfate's standalone data directory and the pool of
/// warm interpreters.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FateConfig {
    /// An absolute path; empty: this party runs no FATE components (a DAG naming one is
    /// refused at submit).
    pub python: PathBuf,
    /// pyfate's tables (its standalone computing); empty: `<data_dir>/fate`.
    pub data_dir: PathBuf,
    /// How many pre-started pythons, with pyfate's modules (torch, sklearn, fate) already
    /// imported, wait for a FATE task here (see `engine::pool`); 0: every pyfate process
    /// starts cold (3-10 s of imports). Only with `python` set. Each costs about 430 MB of
    /// private memory plus the shared libraries' pages, so the default is 1: a task starts
    /// warm, the next waits for the refill or starts cold, and `fedflow standalone` (three
    /// parties on one machine) holds three.
    pub warm_pool: u32,
}

impl Default for FateConfig {
    fn default() -> Self {
        FateConfig {
            python: PathBuf::new(),
            data_dir: PathBuf::new(),
            warm_pool: 1,
        }
    }
}

/// One registered component: an executable with fixed arguments and environment, and the
/// roles (empty: all) it serves. The worker runs it as its child, with
/// `FEDFLOW_COMPONENT_CONFIG` naming `component.json` (parameters, inputs, output directory).
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ComponentConfig {
    /// An absolute path.
    pub command: PathBuf,
    pub args: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub roles: Vec<String>,
}

/// Self-fencing: a party that cannot reach a job's scheduler stops its own workers for the
/// job rather than run on for a scheduler that has given up on it.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FencingConfig {
    /// After this long without reaching a scheduler (seconds), this party's running tasks
    /// of the jobs it schedules fail as "fenced" and their workers are stopped. The same
    /// figure as the schedulers' `party_unreachable_timeout_s`; 0 = never fence.
    pub party_unreachable_timeout_s: u64,
    /// How often each scheduler with running tasks here is probed.
    pub probe_interval_ms: u64,
}

impl Default for FencingConfig {
    fn default() -> Self {
        FencingConfig {
            party_unreachable_timeout_s: 300,
            probe_interval_ms: 5_000,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            party_id: "9999".into(),
            grpc: GrpcConfig::default(),
            advertise: String::new(),
            database: DatabaseConfig {
                url: "sqlite://task-controller.db?mode=rwc".into(),
                ..DatabaseConfig::default()
            },
            gateway: "127.0.0.1:9370".into(),
            data_plane: "127.0.0.1:9372".into(),
            gateway_call_timeout_ms: 10_000,
            data_dir: PathBuf::from("data"),
            worker: WorkerConfig::default(),
            fencing: FencingConfig::default(),
            telemetry: TelemetryConfig::default(),
            metrics: MetricsConfig::default(),
            components: BTreeMap::new(),
            fate: FateConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct WorkerConfig {
    /// How tasks run: `process` (a `fedflow-worker` process per attempt; the only engine for
    /// real work) or `instant` (BENCHMARK ONLY: every task succeeds the moment it starts,
    /// inside the task-controller, to measure the control plane alone).
    pub engine: EngineKind,
    /// The `fedflow-worker` binary; empty = next to this program.
    pub bin: PathBuf,
    /// How often workers heartbeat.
    pub heartbeat_interval_ms: u64,
    /// A running worker silent for this long is killed; its task fails `worker unresponsive`.
    pub heartbeat_timeout_ms: u64,
    /// SIGTERM, then SIGKILL after this long.
    pub kill_grace_ms: u64,
}

/// See [`WorkerConfig::engine`].
#[derive(Debug, Clone, Copy, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum EngineKind {
    #[default]
    Process,
    Instant,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            engine: EngineKind::Process,
            bin: PathBuf::new(),
            heartbeat_interval_ms: 1_000,
            heartbeat_timeout_ms: 10_000,
            kill_grace_ms: 2_000,
        }
    }
}

impl WorkerConfig {
    /// The configured binary, or `fedflow-worker` beside the running executable (or beside
    /// its parent directory, for test binaries in `target/*/deps`).
    pub fn resolve_bin(&self) -> PathBuf {
        if !self.bin.as_os_str().is_empty() {
            return self.bin.clone();
        }
        let exe = std::env::current_exe().unwrap_or_default();
        let dir = exe.parent().map(PathBuf::from).unwrap_or_default();
        let beside = dir.join("fedflow-worker");
        if beside.exists() {
            return beside;
        }
        dir.parent()
            .map(|p| p.join("fedflow-worker"))
            .filter(|p| p.exists())
            .unwrap_or(beside)
    }
}
