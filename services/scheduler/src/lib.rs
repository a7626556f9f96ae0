//! The scheduler: the client API of a party, and the scheduler of every job this party
//! initiates. It validates a FATE DSL v2 + runtime conf v2 before storing anything, creates
//! the job on every party, queues it until every party grants its resources, drives its DAG
//! (event-driven: a report that ends a task starts its ready successors at once), derives the
//! federated task and job statuses by FATE-Flow's rules, and tells every party. Every party
//! call goes through this party's gateway.

mod app;
mod board;
pub mod config;
mod domain;
mod events;
mod grpc;
mod metrics;
mod remote;
mod store;

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;

/// Why the scheduler could not start or stopped serving.
pub use fedflow_service_main::ServiceError as Error;

/// The ports the scheduler serves, bound by the caller.
pub struct Listeners {
    /// Every service, for this party's network and gateway (`grpc.listen`).
    pub grpc: TcpListener,
    /// The client port (`api.listen`): the client API only, with the `api.*` TLS and token.
    /// None: no client port.
    pub api: Option<TcpListener>,
    /// The web board (`board.listen`), with the `api.token_file` token when one is set.
    /// None: no board.
    pub board: Option<TcpListener>,
}

/// The binary's start: binds `grpc.listen` and, unless they are empty, `api.listen` and
/// `board.listen`, then [`run`]s until a signal asks it to stop.
pub async fn start(config: Config, start: fedflow_service_main::Start) -> Result<(), Error> {
    let grpc = start.bind(&config.grpc.listen).await;
    let api = match config.api.listen.as_str() {
        "" => None,
        addr => Some(start.bind(addr).await),
    };
    let board = match config.board.listen.as_str() {
        "" => None,
        addr => Some(start.bind(addr).await),
    };
    let shutdown = start.shutdown(config.grpc.drain_timeout_ms);
    run_with_metrics(
        config,
        Listeners { grpc, api, board },
        shutdown,
        start.metrics(),
    )
    .await
}

/// Serves the scheduler on `listeners` until `shutdown` is cancelled. Shutdown order: both
/// ports stop accepting and drain their calls, then the background loops are cancelled and
/// joined, for at most `grpc.drain_timeout_ms`.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let registry = fedflow_telemetry::metrics::Metrics::new();
    run_with_metrics(config, listeners, shutdown, registry).await
}

/// [`run`], adding the scheduler's metrics to `registry` (the registry its party's endpoint
/// serves).
pub async fn run_with_metrics(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    registry: fedflow_telemetry::metrics::Metrics,
) -> Result<(), Error> {
    fedflow_core::ids::party_id(&config.party_id).map_err(|e| Error::Config(e.to_string()))?;
    if listeners.api.is_none() && !config.api.listen.is_empty() {
        return Err(Error::Config(format!(
            "api.listen is {} but no client listener was given",
            config.api.listen
        )));
    }
    if listeners.board.is_none() && !config.board.listen.is_empty() {
        return Err(Error::Config(format!(
            "board.listen is {} but no board listener was given",
            config.board.listen
        )));
    }
    let store =
        store::Store::connect(&config.database.url, config.database.max_connections).await?;
    store.register_statements(&registry, "fedflow_scheduler");
    let client = fedflow_rpc::party::PartyClient::new(
        &config.gateway,
        &config.party_id,
        Duration::from_millis(config.scheduling.call_timeout_ms),
    )
    .map_err(|e| Error::Config(format!("gateway: {e}")))?;
    let app = app::App::new(
        config.party_id.clone(),
        store,
        remote::Remote::new(client),
        (&config.limits).into(),
        config.scheduling.clone(),
        metrics::Metrics::register(&registry),
    );
    if let Err(e) = app.count_jobs().await {
        tracing::warn!(error = %e, "jobs not counted: the job gauges start at 0");
    }
    app.outbox()
        .report_to(fedflow_store::OutboxGauges::register(
            &registry,
            "fedflow_scheduler",
        ));
    let client_port = match listeners.api {
        Some(listener) => Some(client_port(
            &config,
            listener,
            app.clone(),
            shutdown.clone(),
        )?),
        None => None,
    };
    let board = match listeners.board {
        Some(listener) => Some(board::serve(
            app.clone(),
            listener,
            api_token(&config.api)?,
            shutdown.clone(),
        )),
        None => None,
    };
    let background = Background::start(&app);
    let data = grpc::data_service(app.clone());
    let (scheduler, report) = grpc::services(app);
    let (health, routes) = fedflow_rpc::server::base_routes(&[
        grpc::SERVICE_NAME,
        grpc::REPORT_SERVICE_NAME,
        grpc::DATA_SERVICE_NAME,
    ]);
    let routes = routes
        .add_service(scheduler)
        .add_service(report)
        .add_service(data);
    tracing::info!(
        party = %config.party_id,
        addr = ?listeners.grpc.local_addr().ok(),
        database = config.database.backend(),
        "scheduler serving"
    );
    let served = fedflow_rpc::server::serve(
        routes,
        health,
        &[
            grpc::SERVICE_NAME,
            grpc::REPORT_SERVICE_NAME,
            grpc::DATA_SERVICE_NAME,
        ],
        listeners.grpc,
        shutdown,
    );
    let client_served = async {
        match client_port {
            Some(port) => port.await,
            None => Ok(()),
        }
    };
    let board_served = async {
        if let Some(board) = board {
            board.await;
        }
    };
    let (served, client_served, ()) = tokio::join!(served, client_served, board_served);
    background
        .stop(Duration::from_millis(config.grpc.drain_timeout_ms))
        .await;
    served?;
    client_served?;
    Ok(())
}

/// The background loops (queue, repair, timers, outbox), owned by one tracker and stopped
/// together.
struct Background {
    tracker: TaskTracker,
    stop: CancellationToken,
}

impl Background {
    fn start(app: &app::App) -> Self {
        let background = Background {
            tracker: TaskTracker::new(),
            stop: CancellationToken::new(),
        };
        background.spawn(app, |a, s| async move { a.run_queue(s).await });
        background.spawn(app, |a, s| async move { a.run_repair(s).await });
        background.spawn(app, |a, s| async move { a.run_timers(s).await });
        background.spawn(app, |a, s| async move { a.run_outbox(s).await });
        background.tracker.close();
        background
    }

    /// Runs `run(app, stop)` on the tracker.
    fn spawn<F, L>(&self, app: &app::App, run: F)
    where
        F: FnOnce(app::App, CancellationToken) -> L,
        L: Future<Output = ()> + Send + 'static,
    {
        self.tracker.spawn(run(app.clone(), self.stop.clone()));
    }

    /// Cancels the loops and waits for them, at most `deadline` (what they leave undone is
    /// stored, and the next start takes it over).
    async fn stop(self, deadline: Duration) {
        self.stop.cancel();
        if tokio::time::timeout(deadline, self.tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                deadline_ms = deadline.as_millis() as u64,
                "background loops still running at the drain deadline"
            );
        }
    }
}

/// The bearer token of `api.token_file`; None when no file is set.
fn api_token(api: &config::Api) -> Result<Option<String>, Error> {
    if api.token_file.as_os_str().is_empty() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&api.token_file)
        .map_err(|e| Error::Config(format!("api.token_file {}: {e}", api.token_file.display())))?;
    let token = text.trim().to_owned();
    if token.is_empty() {
        return Err(Error::Config(format!(
            "api.token_file {} is empty",
            api.token_file.display()
        )));
    }
    Ok(Some(token))
}

/// The client port on `listener`, with the `api.*` token and TLS, checked before anything
/// is served; the returned future serves it until `shutdown`.
fn client_port(
    config: &Config,
    listener: TcpListener,
    app: app::App,
    shutdown: CancellationToken,
) -> Result<impl Future<Output = Result<(), tonic::transport::Error>> + use<>, Error> {
    let api = &config.api;
    let token = api_token(api)?;
    let tls = match (
        api.tls_cert.as_os_str().is_empty(),
        api.tls_key.as_os_str().is_empty(),
    ) {
        (true, true) => None,
        (false, false) => Some(
            fedflow_tls::server::client_api_config(&api.tls_cert, &api.tls_key)
                .map_err(|e| Error::Config(format!("api TLS: {e}")))?,
        ),
        _ => {
            return Err(Error::Config(
                "api.tls_cert and api.tls_key go together".into(),
            ));
        }
    };
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        tls = tls.is_some(),
        token = token.is_some(),
        "scheduler client port serving"
    );
    if tls.is_none() && token.is_some() {
        tracing::warn!("api.token_file without TLS: the token crosses the network in the clear");
    }
    let (health, routes) =
        fedflow_rpc::server::base_routes(&[grpc::SERVICE_NAME, grpc::DATA_SERVICE_NAME]);
    let gate = grpc::ClientGate::new(token);
    let routes = routes
        .add_service(grpc::client_data_service(app.clone(), gate.clone()))
        .add_service(grpc::client_service(app, gate));
    Ok(async move {
        match tls {
            Some(tls) => {
                let incoming =
                    fedflow_tls::server::incoming(listener, tls, false, shutdown.clone());
                fedflow_rpc::server::serve_incoming(
                    routes,
                    health,
                    &[grpc::SERVICE_NAME, grpc::DATA_SERVICE_NAME],
                    incoming,
                    shutdown,
                )
                .await
            }
            None => {
                fedflow_rpc::server::serve(
                    routes,
                    health,
                    &[grpc::SERVICE_NAME, grpc::DATA_SERVICE_NAME],
                    listener,
                    shutdown,
                )
                .await
            }
        }
    })
}
