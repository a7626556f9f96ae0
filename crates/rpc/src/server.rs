//! Serving tonic services on a given listener with what every fedflow server carries:
//! `grpc.health.v1` (each named service and the server as a whole), server reflection v1 and
//! v1alpha (grpcurl 1.8 speaks only v1alpha), request tracing, the request-id scope
//! ([`RequestIdLayer`]), graceful shutdown, and bounded connections ([`connections`]).

pub mod connections;

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tonic_health::server::HealthReporter;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use tracing::Level;

/// Binds `addr` (`127.0.0.1:0` for an ephemeral port).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The routes every server starts from: health and reflection, which describes exactly the
/// services in `names` (and health). Add the services with `routes.add_service(..)`, then
/// [`serve`] with the same `names`.
pub fn base_routes(names: &[&'static str]) -> (HealthReporter, Routes) {
    let (health, health_service) = tonic_health::server::health_reporter();
    let configure = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(fedflow_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("grpc.health.v1.Health");
        for name in names {
            builder = builder.with_service_name(*name);
        }
        builder
    };
    let reflection_v1 = configure()
        .build_v1()
        .expect("the built-in descriptor sets are valid");
    let reflection_v1alpha = configure()
        .build_v1alpha()
        .expect("the built-in descriptor sets are valid");
    let routes = Routes::new(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha);
    (health, routes)
}

/// Serves `routes` on `listener` until `shutdown` is cancelled. Marks `names` (and the server
/// as a whole) SERVING, and NOT_SERVING as soon as shutdown begins, before in-flight calls
/// drain.
pub async fn serve(
    routes: Routes,
    health: HealthReporter,
    names: &[&'static str],
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    // Set per accepted stream: the builder's tcp_nodelay only applies when tonic binds itself,
    // and without it every small reply waits out a delayed ACK (about 40 ms).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    serve_incoming(routes, health, names, incoming, shutdown).await
}

/// [`serve`] on connections from `incoming` (TLS streams, say), whose connection info reaches
/// every request's extensions.
pub async fn serve_incoming<I, IO, IE>(
    routes: Routes,
    health: HealthReporter,
    names: &[&'static str],
    incoming: I,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error>
where
    I: tokio_stream::Stream<Item = Result<IO, IE>> + Unpin,
    IO: tokio::io::AsyncRead
        + tokio::io::AsyncWrite
        + tonic::transport::server::Connected
        + Unpin
        + Send
        + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let names = names.to_vec();
    set_status(&health, &names, tonic_health::ServingStatus::Serving).await;
    let trace = TraceLayer::new_for_grpc()
        .make_span_with(request_span as fn(&http::Request<_>) -> tracing::Span)
        .on_failure(DefaultOnFailure::new().level(Level::WARN));
    tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .max_frame_size(Some(fedflow_core::wire::HTTP2_MAX_FRAME))
        .layer(trace)
        .layer(RequestIdLayer)
        .add_routes(routes)
        .serve_with_incoming_shutdown(connections::limit(incoming), async move {
            shutdown.cancelled().await;
            set_status(&health, &names, tonic_health::ServingStatus::NotServing).await;
        })
        .await
}

/// The span of one served call. When the call carries a W3C `traceparent` (a gateway's
/// delivery, a direct call) the span is its remote child, and the process remembers that
/// context as the trace of the job named by [`crate::party::JOB_ID_HEADER`].
fn request_span<B>(request: &http::Request<B>) -> tracing::Span {
    use fedflow_telemetry::context;
    if !context::exporting() {
        // As tower-http's default: a debug span, off at the usual log levels.
        return tracing::debug_span!("grpc request", rpc.method = %request.uri().path());
    }
    let span = tracing::info_span!(
        "grpc request",
        rpc.method = %request.uri().path(),
        job_id = tracing::field::Empty,
    );
    let headers = request.headers();
    let Some(parent) = headers
        .get(context::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
    else {
        return span;
    };
    let mut carrier = context::carrier(parent);
    if let Some(state) = headers
        .get(context::TRACESTATE)
        .and_then(|v| v.to_str().ok())
    {
        carrier.insert(context::TRACESTATE.to_owned(), state.to_owned());
    }
    if context::set_parent(&span, &carrier)
        && let Some(job_id) = headers
            .get(crate::party::JOB_ID_HEADER)
            .and_then(|v| v.to_str().ok())
    {
        span.record("job_id", job_id);
        context::jobs::remember(job_id, &carrier);
    }
    span
}

/// Writes the current span's trace context into a call's metadata (`traceparent`,
/// `tracestate`); nothing when there is none.
pub fn inject_trace(metadata: &mut tonic::metadata::MetadataMap) {
    if !fedflow_telemetry::context::exporting() {
        return;
    }
    for (key, value) in fedflow_telemetry::context::of_span(&tracing::Span::current()) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            value.parse(),
        ) {
            metadata.insert(key, value);
        }
    }
}

/// Sets the health status of every service in `names` and of the server as a whole (`""`).
async fn set_status(
    health: &HealthReporter,
    names: &[&'static str],
    status: tonic_health::ServingStatus,
) {
    for name in names.iter().copied().chain([""]) {
        health.set_service_status(name, status).await;
    }
}

/// Scopes every call that names its request id in [`crate::party::REQUEST_ID_HEADER`] (the
/// gateway sets it from `Envelope.request_id`) as [`crate::request::with_request`] does: the
/// audit rows of the transitions it makes carry the id, and the handler runs to completion in
/// a task of its own even if the caller goes away. A call without the header runs as it is.
/// Every server of [`serve`] has it, so a handler needs no `with_request` block of its own
/// where the envelope's request id is the call's (every `fedflow_rpc::calls` call).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestIdLayer;

impl<S> tower::Layer<S> for RequestIdLayer {
    type Service = RequestIdService<S>;

    fn layer(&self, inner: S) -> RequestIdService<S> {
        RequestIdService { inner }
    }
}

/// The service [`RequestIdLayer`] wraps around a server's routes.
#[derive(Debug, Clone)]
pub struct RequestIdService<S> {
    inner: S,
}

impl<S, B> tower::Service<http::Request<B>> for RequestIdService<S>
where
    S: tower::Service<http::Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Response: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let id = request
            .headers()
            .get(crate::party::REQUEST_ID_HEADER)
            .and_then(|v| v.to_str().ok())
            .filter(|id| !id.is_empty())
            .map(str::to_owned);
        // The service that was polled ready serves this call; a clone takes its place.
        let clone = self.inner.clone();
        let mut ready = std::mem::replace(&mut self.inner, clone);
        let future = ready.call(request);
        match id {
            // The call's own task stays in the call's span.
            Some(id) => {
                let future = tracing::Instrument::in_current_span(future);
                Box::pin(async move { crate::request::with_request(&id, future).await })
            }
            None => Box::pin(future),
        }
    }
}

/// A token cancelled on the first SIGTERM or SIGINT. The process exits on its own once the
/// service returns; if it has not after `drain` (in-flight work that does not finish), it
/// exits anyway. A second signal exits at once.
pub fn shutdown_on_signals(drain: Duration) -> CancellationToken {
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!(
            drain_ms = drain.as_millis() as u64,
            "shutting down: draining in-flight calls (a second signal exits at once)"
        );
        trigger.cancel();
        tokio::select! {
            _ = wait_for_signal() => std::process::exit(130),
            _ = tokio::time::sleep(drain) => {
                tracing::warn!("drain deadline passed; exiting with work still in flight");
                std::process::exit(0);
            }
        }
    });
    token
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tower::{Layer, Service};

    use super::*;

    /// Answers with the request id in scope while it runs.
    #[derive(Clone)]
    struct Echo;

    impl Service<http::Request<()>> for Echo {
        type Response = String;
        type Error = Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<String, Infallible>> + Send>>;

        fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _: http::Request<()>) -> Self::Future {
            Box::pin(async { Ok(crate::request::current_request()) })
        }
    }

    #[tokio::test]
    async fn the_header_scopes_the_request_id_of_the_call() {
        let mut service = RequestIdLayer.layer(Echo);
        let request = http::Request::builder()
            .header(crate::party::REQUEST_ID_HEADER, "j1:create:host:10000")
            .body(())
            .expect("a request");
        let seen = service.call(request).await.expect("answered");
        assert_eq!(seen, "j1:create:host:10000");
        let seen = service
            .call(http::Request::new(()))
            .await
            .expect("answered");
        assert_eq!(seen, "", "no header, no scope");
    }
}
