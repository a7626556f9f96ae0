//! The party-gateway: the one door of a party. Every party call of fedflow arrives here as a
//! `Federation.Forward` envelope, from a local service (hops = 0) or from another party's
//! gateway, and is delivered to the local service it names or to the destination party's
//! gateway from the route table, with a deadline and bounded retries with backoff.
//!
//! Only the party APIs (scheduler, status reports, job-controller, task-controller) can be
//! reached through it; the worker API never leaves the party.

pub mod config;
mod forward;
mod grpc;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

/// Serves the gateway on `listener` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let router = forward::Router::new(&config)?;
    let (health, routes) = fedflow_rpc::server::base_routes(&[grpc::SERVICE_NAME]);
    let routes = routes.add_service(grpc::service(router));
    tracing::info!(party = %config.party_id, addr = ?listener.local_addr().ok(), "party-gateway serving");
    fedflow_rpc::server::serve(routes, health, &[grpc::SERVICE_NAME], listener, shutdown).await?;
    Ok(())
}

/// Why the gateway could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("bad configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Transport(#[from] tonic::transport::Error),
}
