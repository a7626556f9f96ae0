//! The one `main` of the four service binaries (`fedflow-<service> --config FILE.toml`):
//! parse the flags, load the configuration (defaults, the file, `FEDFLOW_<SERVICE>__*`
//! overrides; exit 64 when it is bad), start telemetry and, when `metrics.listen` is set, the
//! Prometheus endpoint (exit 69 when it cannot be bound), then hand the configuration to the
//! service's start function. That binds the listeners through [`Start::bind`] (exit 69 when an
//! address cannot be bound), takes [`Start::shutdown`] and calls the service's `run`; an error
//! from `run` exits 1. Errors before telemetry go to stderr as `fedflow-<service>: message`.

use std::fmt::Display;
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use fedflow_config::{MetricsConfig, TelemetryConfig};
use fedflow_telemetry::metrics::Metrics;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// Why a service with a store (job-controller, scheduler, task-controller) could not start or
/// stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Store(#[from] fedflow_store::StoreError),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

// The flags every service takes; `service_main` names the command and the variable.
#[derive(Parser)]
#[command(version)]
struct Args {
    #[arg(long, short)]
    config: Option<PathBuf>,
}

/// What a service's start function is given besides its configuration.
pub struct Start {
    binary: &'static str,
    metrics: Metrics,
}

impl Start {
    /// Binds `addr`; exits 69, saying which address, when it cannot.
    pub async fn bind(&self, addr: &str) -> TcpListener {
        match fedflow_rpc::server::bind(addr).await {
            Ok(listener) => listener,
            Err(e) => {
                eprintln!("{}: cannot listen on {addr}: {e}", self.binary);
                std::process::exit(69);
            }
        }
    }

    /// The registry the service adds its metrics to: served on `metrics.listen`, or kept by
    /// no one when that is empty.
    pub fn metrics(&self) -> Metrics {
        self.metrics.clone()
    }

    /// The shutdown token: cancelled on SIGTERM or SIGINT, after which in-flight calls have
    /// `drain_timeout_ms` to finish (a second signal exits at once).
    pub fn shutdown(&self, drain_timeout_ms: u64) -> CancellationToken {
        fedflow_rpc::server::shutdown_on_signals(Duration::from_millis(drain_timeout_ms))
    }
}

/// Runs the binary `fedflow-<service>`: `service` is the name in its flags, its environment
/// (`FEDFLOW_<SERVICE>_CONFIG`, `FEDFLOW_<SERVICE>__*`) and its messages; `sections` picks the
/// config's telemetry and metrics sections; `threads` the runtime's worker threads (1: a
/// single-threaded runtime, 0: one per core); `start` binds and runs.
pub fn service_main<C, S, F, E>(
    service: &'static str,
    sections: fn(&C) -> (&TelemetryConfig, &MetricsConfig),
    threads: fn(&C) -> usize,
    start: S,
) where
    C: DeserializeOwned,
    S: FnOnce(C, Start) -> F,
    F: Future<Output = Result<(), E>>,
    E: Display,
{
    let binary = leak(format!("fedflow-{service}"));
    let variable = service.to_uppercase().replace('-', "_");
    let command = Args::command()
        .name(binary)
        .about(leak(format!("fedflow {service}")))
        .mut_arg("config", |arg| {
            arg.env(leak(format!("FEDFLOW_{variable}_CONFIG")))
                .help(leak(format!(
                    "TOML configuration file; FEDFLOW_{variable}__* variables override it"
                )))
        });
    let args = match Args::from_arg_matches(&command.get_matches()) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    let config: C = match fedflow_config::load(service, args.config.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{binary}: {e}");
            std::process::exit(64);
        }
    };
    runtime(threads(&config))
        .build()
        .expect("Failed building the Runtime")
        .block_on(async move {
            let (telemetry_config, metrics) = sections(&config);
            let telemetry = fedflow_telemetry::init(binary, telemetry_config);
            let start_with = Start {
                binary,
                metrics: Metrics::for_endpoint(),
            };
            if !metrics.listen.is_empty() {
                let listener = start_with.bind(&metrics.listen).await;
                tracing::info!(addr = ?listener.local_addr().ok(), "metrics serving");
                // Served until the process exits: scrapes go on while the service drains.
                tokio::spawn(fedflow_telemetry::metrics::serve(
                    listener,
                    start_with.metrics(),
                    CancellationToken::new(),
                ));
            }
            if let Err(e) = start(config, start_with).await {
                eprintln!("{binary}: {e}");
                std::process::exit(1);
            }
            telemetry.shutdown().await;
        });
}

/// The whole `main` of a service binary. `main!("job-controller", fedflow_job_controller)`
/// serves the crate's `run(config, listener, shutdown)` on the one listener `grpc.listen`;
/// `main!("scheduler", fedflow_scheduler::start)` hands the configuration to a start function
/// of the service's own (`async fn(Config, Start) -> Result<(), Error>`, several listeners).
/// The first form calls `run_with_metrics(config, listener, shutdown, metrics)`. Both run on
/// a single-threaded runtime; `main!("party-gateway", fedflow_party_gateway::start, threads =
/// |c| c.threads)` is the second form on as many worker threads as the config says. In every
/// form the crate's `Config` has `telemetry`, `metrics` and `grpc.drain_timeout_ms`.
#[macro_export]
macro_rules! main {
    ($service:literal, $krate:ident) => {
        fn main() {
            $crate::service_main(
                $service,
                |c: &$krate::Config| (&c.telemetry, &c.metrics),
                |_| 1,
                |config, start| async move {
                    let listener = start.bind(&config.grpc.listen).await;
                    let shutdown = start.shutdown(config.grpc.drain_timeout_ms);
                    $krate::run_with_metrics(config, listener, shutdown, start.metrics()).await
                },
            );
        }
    };
    ($service:literal, $krate:ident :: $start:ident) => {
        $crate::main!($service, $krate::$start, threads = |_| 1);
    };
    ($service:literal, $krate:ident :: $start:ident, threads = $threads:expr) => {
        fn main() {
            $crate::service_main(
                $service,
                |c: &$krate::Config| (&c.telemetry, &c.metrics),
                $threads,
                $krate::$start,
            );
        }
    };
}

/// The runtime of a service on `threads` worker threads: 1, single-threaded; 0, one per core.
fn runtime(threads: usize) -> tokio::runtime::Builder {
    let mut builder = match threads {
        1 => tokio::runtime::Builder::new_current_thread(),
        0 => tokio::runtime::Builder::new_multi_thread(),
        n => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
    };
    builder.enable_all();
    builder
}

/// Names for clap and telemetry, which keep them for the whole process.
fn leak(text: String) -> &'static str {
    text.leak()
}

#[cfg(test)]
mod tests {
    use tokio::runtime::RuntimeFlavor;

    #[test]
    fn threads_pick_the_runtime() {
        let flavor = |threads| {
            let runtime = super::runtime(threads).build().expect("a runtime");
            let flavor = runtime.handle().runtime_flavor();
            let workers = runtime.metrics().num_workers();
            (flavor, workers)
        };
        assert_eq!(flavor(1), (RuntimeFlavor::CurrentThread, 1));
        assert_eq!(flavor(3), (RuntimeFlavor::MultiThread, 3));
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(flavor(0), (RuntimeFlavor::MultiThread, cores));
    }
}
