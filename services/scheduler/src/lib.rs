//! The scheduler: the client API of a party, and the scheduler of every job this party
//! initiates. It validates a FATE DSL v2 + runtime conf v2 before storing anything, creates
//! the job on every party, queues it until every party grants its resources, drives its DAG
//! (event-driven: a report that ends a task starts its ready successors at once), derives the
//! federated task and job statuses by FATE-Flow's rules, and tells every party. Every party
//! call goes through this party's gateway.

mod app;
pub mod config;
mod events;
mod grpc;
mod model;
mod remote;
mod store;

use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Why the scheduler could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error("database: {0}")]
    Store(#[from] store::Error),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}

/// Serves the scheduler on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    fedflow_core::ids::party_id(&config.party_id).map_err(|e| Error::Config(e.to_string()))?;
    let store = store::Store::open(&config.database).await?;
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
    );
    let background = CancellationToken::new();
    let queue = {
        let (app, stop) = (app.clone(), background.clone());
        tokio::spawn(async move { app.run_queue(stop).await })
    };
    let repair = {
        let (app, stop) = (app.clone(), background.clone());
        tokio::spawn(async move { app.run_repair(stop).await })
    };
    let timers = {
        let (app, stop) = (app.clone(), background.clone());
        tokio::spawn(async move { app.run_timers(stop).await })
    };
    let outbox = {
        let (app, stop) = (app.clone(), background.clone());
        tokio::spawn(async move { app.run_outbox(stop).await })
    };
    let client_port = client_port(&config, app.clone(), shutdown.clone()).await?;
    let (scheduler, report) = grpc::services(app);
    let (health, routes) =
        fedflow_rpc::server::base_routes(&[grpc::SERVICE_NAME, grpc::REPORT_SERVICE_NAME]);
    let routes = routes.add_service(scheduler).add_service(report);
    tracing::info!(
        party = %config.party_id,
        addr = ?listener.local_addr().ok(),
        database = config.database.backend(),
        "scheduler serving"
    );
    let served = fedflow_rpc::server::serve(
        routes,
        health,
        &[grpc::SERVICE_NAME, grpc::REPORT_SERVICE_NAME],
        listener,
        shutdown,
    )
    .await;
    background.cancel();
    let client_served = match client_port {
        Some(handle) => match handle.await {
            Ok(served) => served,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Ok(()),
        },
        None => Ok(()),
    };
    let _ = tokio::join!(queue, repair, timers, outbox);
    served?;
    client_served?;
    Ok(())
}

/// Starts the client port (`api.*`) when one is configured.
async fn client_port(
    config: &Config,
    app: app::App,
    shutdown: CancellationToken,
) -> Result<Option<tokio::task::JoinHandle<Result<(), tonic::transport::Error>>>, Error> {
    let api = &config.api;
    if api.listen.is_empty() {
        return Ok(None);
    }
    let token = if api.token_file.as_os_str().is_empty() {
        None
    } else {
        let text = std::fs::read_to_string(&api.token_file).map_err(|e| {
            Error::Config(format!("api.token_file {}: {e}", api.token_file.display()))
        })?;
        let token = text.trim().to_owned();
        if token.is_empty() {
            return Err(Error::Config(format!(
                "api.token_file {} is empty",
                api.token_file.display()
            )));
        }
        Some(token)
    };
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
    let listener = fedflow_rpc::server::bind(&api.listen)
        .await
        .map_err(|e| Error::Config(format!("api.listen {}: {e}", api.listen)))?;
    tracing::info!(
        addr = ?listener.local_addr().ok(),
        tls = tls.is_some(),
        token = token.is_some(),
        "scheduler client port serving"
    );
    if tls.is_none() && token.is_some() {
        tracing::warn!("api.token_file without TLS: the token crosses the network in the clear");
    }
    let (health, routes) = fedflow_rpc::server::base_routes(&[grpc::SERVICE_NAME]);
    let routes = routes.add_service(grpc::client_service(app, grpc::ClientGate::new(token)));
    Ok(Some(tokio::spawn(async move {
        match tls {
            Some(tls) => {
                let incoming =
                    fedflow_tls::server::incoming(listener, tls, false, shutdown.clone());
                fedflow_rpc::server::serve_incoming(
                    routes,
                    health,
                    &[grpc::SERVICE_NAME],
                    incoming,
                    shutdown,
                )
                .await
            }
            None => {
                fedflow_rpc::server::serve(
                    routes,
                    health,
                    &[grpc::SERVICE_NAME],
                    listener,
                    shutdown,
                )
                .await
            }
        }
    })))
}
