//! gRPC plumbing shared by fedflow's services and the CLI. No service logic lives here.
//!
//! - [`calls`]: every party call defined once ([`calls::PartyCall`]), its constructors, and
//!   the outbox [`calls::Command`] made from the same value; [`request_id`]: their ids.
//! - [`retry`]: the one retry policy (backon), applied by [`party::PartyClient::send`].
//! - [`request`]: the request id of the call being served, as a task-local scope.
//! - [`convert`]: domain statuses to and from their proto enums.
//! - [`error`]: the small classification every service maps its errors into, and its
//!   `tonic::Status` (internal errors are logged once and masked).
//! - [`raw`]: a pass-through codec, so the gateway forwards encoded payloads untouched.
//! - [`party`]: [`party::PartyClient`], how a service calls another party's (or its own
//!   party's) services: always in a `Federation.Forward` envelope through its gateway.
//! - [`server`]: serving a set of tonic services with health, reflection (v1 and v1alpha) and
//!   graceful shutdown on a given listener.

pub mod calls;
pub mod convert;
pub mod error;
pub mod party;
pub mod raw;
pub mod request;
pub mod request_id;
pub mod retry;
pub mod server;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tonic::transport::{Channel, Endpoint};

/// Milliseconds since the Unix epoch.
pub use fedflow_core::clock::now_ms;

/// Microseconds since the Unix epoch.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// A fresh request id for a call that has none of its own.
pub fn new_request_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// A lazily connected channel, reused for every call to `addr` (`host:port` or a URL).
pub fn channel(addr: &str) -> Result<Channel, tonic::transport::Error> {
    let uri = if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    };
    Ok(Endpoint::from_shared(uri)?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .max_frame_size(fedflow_core::wire::HTTP2_MAX_FRAME)
        .connect_lazy())
}
