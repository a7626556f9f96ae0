//! The party-gateway: the one door of a party. It serves two ports:
//!
//! - the **internal** port (`grpc.listen`), where this party's own services hand it every
//!   party call as a `Federation.Forward` envelope; it speaks for this party;
//! - the **federation** port (`federation.listen`), where other parties' gateways connect.
//!   In `mtls` mode (the default) a peer is the party its certificate names and chains to
//!   (`fedflow_tls`); its envelopes must say so, must be fresh and not replayed
//!   ([`replay`]), and may only do what the peer's part in the job allows ([`policy`]).
//!
//! Envelopes are delivered to the local service they name (with the caller's party and the
//! request id in the `x-fedflow-caller-party` and `x-fedflow-request-id` headers) or to the
//! destination party's gateway from the route table, once, within their deadline (the
//! sending service retries). Only the party calls of `fedflow_rpc::calls` can be reached
//! through it; the worker API never leaves the party.
//!
//! A third port, the **transfer** port (`transfer.listen`), is the data plane: FATE's OSX
//! message queues for this party's components ([`transfer`]), kept in the gateway's own
//! store; pushes for another party cross the federation link to that party's gateway.

pub mod config;
mod error;
mod grpc;
mod limits;
mod metrics;
mod remote;
mod store;
mod transfer;

use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
use config::SecurityMode;
pub use error::Error;

/// The gateway's three listeners.
pub struct Listeners {
    /// For this party's own services (`grpc.listen`).
    pub internal: TcpListener,
    /// For other parties' gateways (`federation.listen`).
    pub federation: TcpListener,
    /// For this party's components' OSX pushes and pops (`transfer.listen`).
    pub transfer: TcpListener,
}

/// The binary's start: binds `grpc.listen`, `federation.listen` and `transfer.listen`, then
/// [`run`]s until a signal asks it to stop.
pub async fn start(config: Config, start: fedflow_service_main::Start) -> Result<(), Error> {
    let internal = start.bind(&config.grpc.listen).await;
    let federation = start.bind(&config.federation.listen).await;
    let transfer = start.bind(&config.transfer.listen).await;
    let shutdown = start.shutdown(config.grpc.drain_timeout_ms);
    let listeners = Listeners {
        internal,
        federation,
        transfer,
    };
    run_with_metrics(config, listeners, shutdown, start.metrics()).await
}

/// Serves the gateway on `listeners` until `shutdown` is cancelled.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let registry = fedflow_telemetry::metrics::Metrics::new();
    run_with_metrics(config, listeners, shutdown, registry).await
}

/// [`run`], adding the gateway's metrics to `registry` (the registry its party's endpoint
/// serves).
pub async fn run_with_metrics(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
    registry: fedflow_telemetry::metrics::Metrics,
) -> Result<(), Error> {
    let metrics = metrics::Metrics::register(
        &registry,
        &config.party_id,
        config.routes.keys().cloned().collect(),
    );
    let tls = tls_material(&config)?;
    let background = TaskTracker::new();
    let router = Arc::new(grpc::forward::Router::new(
        &config,
        tls.clone(),
        background.clone(),
    )?);
    let broker = Arc::new(broker(&config, &router).await?);
    let loops = CancellationToken::new();
    background.spawn({
        let (broker, stop) = (broker.clone(), loops.clone());
        async move { broker.sweep(stop).await }
    });
    let transfer_addr = listeners.transfer.local_addr().ok();
    let transfer = {
        let (health, routes) = fedflow_rpc::server::base_routes(&[grpc::OSX_SERVICE_NAME]);
        let (transport, protocol) = grpc::osx_services(broker.clone(), metrics.clone());
        let routes = routes.add_service(transport).add_service(protocol);
        fedflow_rpc::server::serve(
            routes,
            health,
            &[grpc::OSX_SERVICE_NAME],
            listeners.transfer,
            shutdown.clone(),
        )
    };
    let internal = {
        let (health, routes) = fedflow_rpc::server::base_routes(&[grpc::SERVICE_NAME]);
        let routes = routes
            .add_service(grpc::service(
                router.clone(),
                grpc::Port::Internal,
                metrics.clone(),
            ))
            .add_service(grpc::transfer_service(
                broker.clone(),
                grpc::Port::Internal,
                metrics.clone(),
            ));
        fedflow_rpc::server::serve(
            routes,
            health,
            &[grpc::SERVICE_NAME],
            listeners.internal,
            shutdown.clone(),
        )
    };
    let (health, routes) = fedflow_rpc::server::base_routes(&[grpc::SERVICE_NAME]);
    let routes = routes
        .add_service(grpc::service(
            router,
            grpc::Port::Federation,
            metrics.clone(),
        ))
        .add_service(grpc::transfer_service(
            broker,
            grpc::Port::Federation,
            metrics,
        ));
    let federation_addr = listeners.federation.local_addr().ok();
    let federation = async {
        match &tls {
            Some(material) => {
                material.spawn_reloader(
                    Duration::from_millis(config.federation.reload_interval_ms.max(100)),
                    shutdown.clone(),
                );
                let server_config = fedflow_tls::server::config(material.clone())
                    .map_err(|e| Error::Config(e.to_string()))?;
                let incoming = fedflow_tls::server::incoming(
                    listeners.federation,
                    server_config,
                    true,
                    shutdown.clone(),
                );
                fedflow_rpc::server::serve_incoming(
                    routes,
                    health,
                    &[grpc::SERVICE_NAME],
                    incoming,
                    shutdown.clone(),
                )
                .await?;
            }
            None => {
                fedflow_rpc::server::serve(
                    routes,
                    health,
                    &[grpc::SERVICE_NAME],
                    listeners.federation,
                    shutdown.clone(),
                )
                .await?;
            }
        }
        Ok::<(), Error>(())
    };
    match &tls {
        Some(material) => tracing::info!(
            party = %config.party_id,
            federation = ?federation_addr,
            transfer = ?transfer_addr,
            fingerprint = %material.current().fingerprint,
            "party-gateway serving; federation port with mutual TLS"
        ),
        None => tracing::warn!(
            party = %config.party_id,
            federation = ?federation_addr,
            transfer = ?transfer_addr,
            "party-gateway serving in INSECURE mode: the federation port is plaintext and trusts the party ids envelopes claim; for development only"
        ),
    }
    let (internal, federation, transfer) = tokio::join!(internal, federation, transfer);
    loops.cancel();
    background.close();
    background.wait().await;
    internal?;
    transfer?;
    federation
}

/// The data plane: the message store under `transfer.data_dir`, the task-controller and
/// job-controller it asks about sessions, and the federation channels to other parties.
async fn broker(
    config: &Config,
    router: &grpc::forward::Router,
) -> Result<transfer::Broker, Error> {
    let t = &config.transfer;
    if t.max_message_bytes == 0 || t.session_quota_bytes < t.max_message_bytes {
        return Err(Error::Config(format!(
            "transfer.session_quota_bytes ({}) must be at least transfer.max_message_bytes ({}), which must be above 0",
            t.session_quota_bytes, t.max_message_bytes
        )));
    }
    if t.gateway_quota_bytes < t.session_quota_bytes {
        return Err(Error::Config(format!(
            "transfer.gateway_quota_bytes ({}) must be at least transfer.session_quota_bytes ({})",
            t.gateway_quota_bytes, t.session_quota_bytes
        )));
    }
    std::fs::create_dir_all(&t.data_dir)
        .map_err(|e| Error::Config(format!("transfer.data_dir {}: {e}", t.data_dir.display())))?;
    let url = fedflow_store::sqlite_url(&t.data_dir.join("party-gateway-messages.db"));
    let options = store::Options {
        segments_dir: t.data_dir.join("segments"),
        segment_bytes: t.segment_bytes,
        cache_bytes: t.pop_cache_bytes.min(t.gateway_quota_bytes / 4),
    };
    let store = store::Store::open(&url, options)
        .await
        .map_err(|e| Error::Config(format!("message store {url}: {e}")))?;
    let chan = |addr: &str| {
        fedflow_rpc::channel(addr).map_err(|e| Error::Config(format!("address {addr:?}: {e}")))
    };
    let directory = remote::Directory::new(
        chan(&config.local.task_controller)?,
        chan(&config.local.job_controller)?,
        Duration::from_millis(t.session_cache_ms),
    );
    let limit = usize::try_from(t.max_message_bytes).unwrap_or(usize::MAX) + (1 << 20);
    let peers = remote::Peers::new(router.federation_channels(), limit);
    transfer::Broker::new(config.party_id.clone(), t.clone(), store, directory, peers)
        .await
        .map_err(|e| Error::Config(format!("message store: {e}")))
}

/// The TLS material of an mtls gateway (None in insecure mode), after checking that the
/// configuration names everything mtls needs.
fn tls_material(config: &Config) -> Result<Option<Arc<fedflow_tls::Reloadable>>, Error> {
    match config.federation.mode {
        SecurityMode::Insecure => Ok(None),
        SecurityMode::Mtls => {
            if config.forward.duplicate_delivery_for_testing {
                return Err(Error::Config(
                    "forward.duplicate_delivery_for_testing is refused in mtls mode (it is for tests in insecure mode only)".into(),
                ));
            }
            let (cert, key) = (&config.federation.cert, &config.federation.key);
            if cert.as_os_str().is_empty() || key.as_os_str().is_empty() {
                return Err(Error::Config(
                    "federation.mode = \"mtls\" needs federation.cert and federation.key (make them with `fedflow pki init`), or federation.mode = \"insecure\" for development".into(),
                ));
            }
            let mut trust = std::collections::BTreeMap::new();
            for (party, route) in &config.routes {
                let ca = route.ca().ok_or_else(|| {
                    Error::Config(format!(
                        "routes.{party}: mtls mode needs the party's CA: {{ address = \"{}\", ca = \"/path/to/party-{party}-ca.crt\" }}",
                        route.address()
                    ))
                })?;
                trust.insert(party.clone(), ca.clone());
            }
            let files = fedflow_tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                trust,
            };
            fedflow_tls::Reloadable::load(files, &config.party_id)
                .map(Some)
                .map_err(|e| Error::Config(format!("federation TLS: {e}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use config::{Route, RouteTable};

    #[test]
    fn mtls_mode_names_what_it_lacks() {
        let mut config = Config::default();
        let err = tls_material(&config).expect_err("no certificate");
        assert!(err.to_string().contains("federation.cert"), "{err}");

        config.federation.cert = "/nonexistent/gateway.crt".into();
        config.federation.key = "/nonexistent/gateway.key".into();
        config
            .routes
            .insert("10000".into(), Route::Address("127.0.0.1:1".into()));
        let err = tls_material(&config).expect_err("a route without a CA");
        assert!(err.to_string().contains("routes.10000"), "{err}");

        config.routes.insert(
            "10000".into(),
            Route::Full(RouteTable {
                address: "127.0.0.1:1".into(),
                ca: Some("/nonexistent/ca.crt".into()),
            }),
        );
        let err = tls_material(&config).expect_err("missing files");
        assert!(
            err.to_string().contains("/nonexistent/gateway.crt"),
            "{err}"
        );

        config.forward.duplicate_delivery_for_testing = true;
        let err = tls_material(&config).expect_err("the testing switch");
        assert!(
            err.to_string().contains("duplicate_delivery_for_testing"),
            "{err}"
        );

        config.federation.mode = SecurityMode::Insecure;
        assert!(tls_material(&config).expect("insecure").is_none());
    }
}
