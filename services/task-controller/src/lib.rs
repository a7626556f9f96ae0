//! The task-controller: one party's task rows (one per version), the workers that run them,
//! and the API those workers call back on.
//!
//! It launches `fedflow-worker` processes through its engine (local processes; see
//! [`engine`]), takes their reports and heartbeats (each attempt carries a token; a report
//! without the right one changes nothing), kills whole process groups on stop and confirms
//! they are gone, detects workers that die or hang, and pushes every end status to the job's
//! scheduler through the party's gateway.

mod app;
pub mod config;
mod domain;
pub mod engine;
mod grpc;
mod metrics;
mod remote;
mod store;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// Why the task-controller could not start or stopped serving.
pub use fedflow_service_main::ServiceError as Error;

/// This party's FATE runtime from its config, with its pyfate version: none without
/// `fate.python`; the python must be an absolute path to a file that has pyfate; the data
/// directory defaults to `<data_dir>/fate` and is made.
fn fate_runtime(
    config: &Config,
) -> Result<Option<(fedflow_core::task_file::FateRuntime, String)>, Error> {
    let fate = &config.fate;
    if fate.python.as_os_str().is_empty() {
        return Ok(None);
    }
    if !fate.python.is_absolute() || !fate.python.is_file() {
        return Err(Error::Config(format!(
            "fate.python: {} is not an absolute path to a python (scripts/setup-fate.sh prints one)",
            fate.python.display()
        )));
    }
    let dir = if fate.data_dir.as_os_str().is_empty() {
        config.data_dir.join("fate")
    } else {
        fate.data_dir.clone()
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Config(format!("fate.data_dir {}: {e}", dir.display())))?;
    let dir = dir
        .canonicalize()
        .map_err(|e| Error::Config(format!("fate.data_dir {}: {e}", dir.display())))?;
    // The version from pyfate's package metadata (nothing of it is imported: milliseconds).
    let asked = std::process::Command::new(&fate.python)
        .args([
            "-c",
            "import importlib.metadata as m; print(m.version('pyfate'))",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::Config(format!("fate.python {}: {e}", fate.python.display())))?;
    let version = String::from_utf8_lossy(&asked.stdout).trim().to_owned();
    if !asked.status.success() || version.is_empty() {
        return Err(Error::Config(format!(
            "fate.python {}: no pyfate there ({})",
            fate.python.display(),
            String::from_utf8_lossy(&asked.stderr).trim()
        )));
    }
    if version != fedflow_core::fate::VERSION {
        tracing::warn!(
            pyfate = %version,
            known = fedflow_core::fate::VERSION,
            "this party's pyfate is not the one fedflow knows the components of: FATE jobs are refused here"
        );
    }
    Ok(Some((
        fedflow_core::task_file::FateRuntime {
            python: fate.python.display().to_string(),
            data_dir: dir.display().to_string(),
            warm: None,
        },
        version,
    )))
}

/// This party's warm pool (`[fate] warm_pool` interpreters under `<data_dir>/fate-pool`), with
/// the process engine and a FATE runtime; a pool that cannot be made is left off (warned):
/// FATE tasks then start cold.
fn warm_pool(
    config: &Config,
    fate: Option<&fedflow_core::task_file::FateRuntime>,
) -> Option<engine::WarmPool> {
    let fate = fate?;
    if config.fate.warm_pool == 0 || config.worker.engine != config::EngineKind::Process {
        return None;
    }
    match engine::WarmPool::new(
        std::path::PathBuf::from(&fate.python),
        config.data_dir.join("fate-pool"),
        config.fate.warm_pool as usize,
        engine::pool::PRELOAD,
    ) {
        Ok(pool) => {
            tracing::info!(size = config.fate.warm_pool, dir = %pool.dir().display(), "warm pyfate pool");
            Some(pool)
        }
        Err(e) => {
            tracing::warn!(error = %e, "no warm pyfate pool: FATE tasks start cold");
            None
        }
    }
}

/// Serves the task-controller on `listener` until `shutdown` is cancelled. Running workers are
/// left running at shutdown (a restarted task-controller finds them again); the warm pool's
/// unassigned interpreters are killed.
///
/// Shutdown runs in one order: the server stops accepting and drains its in-flight calls, then
/// the background loops (worker monitor, fencing, outbox delivery) are cancelled and joined,
/// waiting at most `grpc.drain_timeout_ms` for them.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    run_with_metrics(
        config,
        listener,
        shutdown,
        fedflow_telemetry::metrics::Metrics::new(),
    )
    .await
}

/// [`run`], adding the task-controller's metrics to `registry` (the registry its party's
/// endpoint serves).
pub async fn run_with_metrics(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    registry: fedflow_telemetry::metrics::Metrics,
) -> Result<(), Error> {
    fedflow_core::ids::party_id(&config.party_id).map_err(|e| Error::Config(e.to_string()))?;
    for (module, component) in &config.components {
        if !fedflow_core::modules::is_external_name(module)
            || fedflow_core::modules::is_known(module)
        {
            return Err(Error::Config(format!(
                "components.{module}: not a module name, or the name of a built-in module"
            )));
        }
        if !component.command.is_absolute() {
            return Err(Error::Config(format!(
                "components.{module}.command: {} is not an absolute path",
                component.command.display()
            )));
        }
    }
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| Error::Config(format!("data_dir {}: {e}", config.data_dir.display())))?;
    let store =
        store::Store::connect(&config.database.url, config.database.max_connections).await?;
    store.register_statements(&registry, "fedflow_task_controller");
    if fedflow_telemetry::context::exporting() {
        // The jobs' traces, as recorded at creation: this party's later spans join them.
        for (job_id, traceparent) in store
            .trace_parents(fedflow_telemetry::context::jobs::CAPACITY as u32 / 2)
            .await?
        {
            fedflow_telemetry::context::jobs::remember(
                &job_id,
                &fedflow_telemetry::context::carrier(&traceparent),
            );
        }
    }
    let advertise = if config.advertise.is_empty() {
        listener
            .local_addr()
            .map(|a| a.to_string())
            .map_err(|e| Error::Config(format!("listener: {e}")))?
    } else {
        config.advertise.clone()
    };
    let client = fedflow_rpc::party::PartyClient::new(
        &config.gateway,
        &config.party_id,
        Duration::from_millis(config.gateway_call_timeout_ms),
    )
    .map_err(|e| Error::Config(format!("gateway: {e}")))?;
    let fate = fate_runtime(&config)?;
    let pool = warm_pool(&config, fate.as_ref().map(|(runtime, _)| runtime));
    let engine: Arc<dyn engine::Engine> = match config.worker.engine {
        config::EngineKind::Process => {
            let process =
                engine::ProcessEngine::new(config.data_dir.clone(), config.worker.resolve_bin());
            Arc::new(match &pool {
                Some(pool) => process.with_pool(pool.clone()),
                None => process,
            })
        }
        config::EngineKind::Instant => Arc::new(engine::InstantEngine),
    };
    let timing = app::Timing {
        heartbeat_interval: Duration::from_millis(config.worker.heartbeat_interval_ms),
        heartbeat_timeout: Duration::from_millis(config.worker.heartbeat_timeout_ms),
        kill_grace: Duration::from_millis(config.worker.kill_grace_ms),
        fence_after: (config.fencing.party_unreachable_timeout_s > 0)
            .then(|| Duration::from_secs(config.fencing.party_unreachable_timeout_s)),
        fence_probe_interval: Duration::from_millis(config.fencing.probe_interval_ms),
    };
    let app = app::App::new(
        config.party_id.clone(),
        store,
        engine,
        remote::Reporter::new(client),
        advertise,
        timing,
        app::Local {
            data_dir: config.data_dir.clone(),
            components: config.components.clone(),
            data_plane: config.data_plane.clone(),
            fate: fate.as_ref().map(|(runtime, _)| runtime.clone()),
            fate_version: fate.map(|(_, version)| version).unwrap_or_default(),
            metrics: metrics::Metrics::register(&registry),
            session_ends: remote::sessions::SessionEnds::new(
                fedflow_rpc::channel(&config.gateway)
                    .map_err(|e| Error::Config(format!("gateway: {e}")))?,
                Duration::from_millis(config.gateway_call_timeout_ms),
            ),
        },
    );
    app.outbox()
        .report_to(fedflow_store::OutboxGauges::register(
            &registry,
            "fedflow_task_controller",
        ));
    if let Err(e) = app.sweep_data().await {
        tracing::warn!(error = %e, "sweeping the data directory failed");
    }
    let loops = CancellationToken::new();
    let background = TaskTracker::new();
    background.spawn({
        let (app, stop) = (app.clone(), loops.clone());
        async move { app.monitor(stop).await }
    });
    background.spawn({
        let (app, stop) = (app.clone(), loops.clone());
        async move { app.fence(stop).await }
    });
    background.spawn({
        let (app, stop) = (app.clone(), loops.clone());
        async move { app.run_outbox(stop).await }
    });
    if let Some(pool) = &pool {
        background.spawn(pool.clone().run());
    }
    background.close();
    let sessions = grpc::sessions::service(app.clone());
    let (task_controller, worker, data) = grpc::services(app);
    let (health, routes) = fedflow_rpc::server::base_routes(&[
        grpc::SERVICE_NAME,
        grpc::WORKER_SERVICE_NAME,
        grpc::DATA_SERVICE_NAME,
        grpc::sessions::SERVICE_NAME,
    ]);
    let routes = routes
        .add_service(task_controller)
        .add_service(worker)
        .add_service(data)
        .add_service(sessions);
    tracing::info!(
        party = %config.party_id,
        addr = ?listener.local_addr().ok(),
        database = config.database.backend(),
        "task-controller serving"
    );
    let served = fedflow_rpc::server::serve(
        routes,
        health,
        &[
            grpc::SERVICE_NAME,
            grpc::WORKER_SERVICE_NAME,
            grpc::DATA_SERVICE_NAME,
            grpc::sessions::SERVICE_NAME,
        ],
        listener,
        shutdown,
    )
    .await;
    loops.cancel();
    if let Some(pool) = &pool {
        pool.shutdown().await;
    }
    let drain = Duration::from_millis(config.grpc.drain_timeout_ms);
    if tokio::time::timeout(drain, background.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            drain_ms = drain.as_millis() as u64,
            "background loops still running after the drain deadline"
        );
    }
    served?;
    Ok(())
}
