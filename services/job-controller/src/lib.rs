//! The job-controller: one party's view of the jobs it takes part in, and its resource ledger.
//!
//! It stores one job row per (job, role) this party plays, created `ready` when a scheduler
//! asks, and creates the party's task rows on its task-controller. Resources are a ledger of
//! allocation rows (one per job and role); what is free is always capacity − Σ allocations, so
//! nothing drifts. A job row reaching an end status releases its allocation and stops the
//! job's remaining tasks on this party; both effects are idempotent and redone on a repeat.
//! Layers: `grpc` (adapters) → `app` (use cases) → `domain` (pure rules); `store` writes.

mod app;
pub mod config;
mod domain;
mod grpc;
mod remote;
mod store;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// Why the job-controller could not start or stopped serving.
pub use fedflow_service_main::ServiceError as Error;

/// Serves the job-controller on `listener` until `shutdown` is cancelled.
///
/// Shutdown order: the server stops accepting and drains its calls; then the background loops
/// (outbox delivery, ledger reconciler), all owned by one tracker, are cancelled and awaited.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let registry = fedflow_telemetry::metrics::Metrics::new();
    run_with_metrics(config, listener, shutdown, registry).await
}

/// [`run`], adding the job-controller's metrics (its outbox's gauges) to `registry` (the
/// registry its party's endpoint serves).
pub async fn run_with_metrics(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
    registry: fedflow_telemetry::metrics::Metrics,
) -> Result<(), Error> {
    fedflow_core::ids::party_id(&config.party_id).map_err(|e| Error::Config(e.to_string()))?;
    let store =
        store::Store::connect(&config.database.url, config.database.max_connections).await?;
    store.register_statements(&registry, "fedflow_job_controller");
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
    let tasks = remote::TaskControllerClient::new(&config.task_controller)
        .map_err(|e| Error::Config(format!("task_controller: {e}")))?;
    let app = app::App::new(
        config.party_id.clone(),
        config.resources.capacity(),
        store,
        tasks,
    );
    app.outbox()
        .report_to(fedflow_store::OutboxGauges::register(
            &registry,
            "fedflow_job_controller",
        ));

    let background = CancellationToken::new();
    let loops = TaskTracker::new();
    loops.spawn({
        let (app, stop) = (app.clone(), background.clone());
        async move { app.run_outbox(stop).await }
    });
    loops.spawn({
        let (app, stop) = (app.clone(), background.clone());
        let (period, timeout) = (
            config.resources.reconcile_period(),
            config.resources.reservation_timeout(),
        );
        async move { app.run_reconciler(period, timeout, stop).await }
    });
    loops.close();

    let (health, routes) = fedflow_rpc::server::base_routes(&[grpc::SERVICE_NAME]);
    let routes = routes.add_service(grpc::service(app));
    tracing::info!(
        party = %config.party_id,
        addr = ?listener.local_addr().ok(),
        database = config.database.backend(),
        "job-controller serving"
    );
    let served =
        fedflow_rpc::server::serve(routes, health, &[grpc::SERVICE_NAME], listener, shutdown).await;
    background.cancel();
    loops.wait().await;
    served?;
    Ok(())
}
