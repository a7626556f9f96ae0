//! The gateway's configuration (TOML + `FEDFLOW_PARTY_GATEWAY__…`); see
//! `deploy/config/party-gateway.toml` for every key.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fedflow_config::{GrpcConfig, MetricsConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This party's id.
    pub party_id: String,
    /// Worker threads of the gateway's runtime: 0 (the default), one per core; 1, a single
    /// thread. The receiving gateway of a busy data plane writes pop replies while it takes in
    /// pushes from the federation link; on one thread those wait for each other. The
    /// `fedflow-party-gateway` binary's; `fedflow standalone` runs every service on its own
    /// runtime.
    pub threads: usize,
    /// The internal port: this party's own services send their envelopes here. Plaintext;
    /// bind it to the party's private network only.
    pub grpc: GrpcConfig,
    /// The federation port, where other parties' gateways connect, and how they are trusted.
    pub federation: FederationConfig,
    /// Addresses of this party's services.
    pub local: LocalServices,
    /// Other parties' gateways: party id -> `{ address = "host:port", ca = "their CA bundle" }`
    /// (a bare `"host:port"` only in insecure mode).
    pub routes: BTreeMap<String, Route>,
    pub forward: ForwardConfig,
    /// The data plane: FATE's OSX transfer protocol for this party's components.
    pub transfer: TransferConfig,
    pub telemetry: TelemetryConfig,
    pub metrics: MetricsConfig,
    /// TESTING ONLY: injected faults. Off by default; never enable in production.
    pub faults: FaultsConfig,
}

/// TESTING ONLY: faults the gateway injects, to show that the parties' retries, outboxes and
/// idempotency keys make them harmless.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FaultsConfig {
    /// Of the mutating calls other parties send (every party call but `Get*`, `List*` and
    /// `Probe`), this many per thousand are delivered to the local service and answered, and
    /// then the answer is dropped: the caller gets `UNAVAILABLE`, as if the link broke after
    /// the call took effect, and the gateway forgets the call, so the caller's retry reaches the
    /// service again. Each drop is logged ("reply dropped"). 0 (the default): none; at most 1000.
    pub drop_reply_per_mille: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            party_id: "9999".into(),
            threads: 0,
            grpc: GrpcConfig::default(),
            federation: FederationConfig::default(),
            local: LocalServices::default(),
            routes: BTreeMap::new(),
            forward: ForwardConfig::default(),
            transfer: TransferConfig::default(),
            telemetry: TelemetryConfig::default(),
            metrics: MetricsConfig::default(),
            faults: FaultsConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct LocalServices {
    pub scheduler: String,
    pub job_controller: String,
    pub task_controller: String,
}

impl Default for LocalServices {
    fn default() -> Self {
        LocalServices {
            scheduler: "127.0.0.1:9380".into(),
            job_controller: "127.0.0.1:9381".into(),
            task_controller: "127.0.0.1:9382".into(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardConfig {
    /// Deadline of a call whose envelope names none. Each envelope is forwarded once: the
    /// sending service retries (`fedflow_rpc::retry`).
    pub default_timeout_ms: u64,
    /// Envelopes that passed more gateways than this are refused (a routing loop).
    pub max_hops: u32,
    /// TESTING ONLY: every envelope for a local service is delivered twice, the copy after a
    /// random 0–50 ms delay (so it may overtake or trail later envelopes), to show that every
    /// receiver is idempotent. Never enable in production.
    pub duplicate_delivery_for_testing: bool,
}

impl Default for ForwardConfig {
    fn default() -> Self {
        ForwardConfig {
            default_timeout_ms: 30_000,
            max_hops: 2,
            duplicate_delivery_for_testing: false,
        }
    }
}

/// The data-plane port (FATE's OSX `PrivateTransferTransport`) and its limits.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TransferConfig {
    /// Where this party's components push and pop (`host:port`, plaintext; bind it to the
    /// party's private network only).
    pub listen: String,
    /// The message store lives in `<data_dir>/party-gateway-messages.db`, the payloads in
    /// segment files under `<data_dir>/segments`.
    pub data_dir: PathBuf,
    /// The largest payload a push may carry, in bytes.
    pub max_message_bytes: u64,
    /// Bytes queued here for one session (FATE session: one component version of a job),
    /// not yet popped, at most.
    pub session_quota_bytes: u64,
    /// Bytes queued here for all sessions together, at most.
    pub gateway_quota_bytes: u64,
    /// A push into a full quota waits this long for room, then is refused `UNAVAILABLE`.
    pub backpressure_ms: u64,
    /// The longest a pop waits for a message, whatever it asks (ms).
    pub max_pop_wait_ms: u64,
    /// How long a positive answer of the task-controller about a session is kept (ms).
    pub session_cache_ms: u64,
    /// How often the queues of sessions no longer running here are dropped (ms).
    pub sweep_interval_ms: u64,
    /// How long a push to another party's gateway is retried (same message id) before it is
    /// refused `UNAVAILABLE` (ms).
    pub deliver_timeout_ms: u64,
    /// A payload segment file takes appends until it holds this many bytes; it is deleted
    /// once every message in it was popped or dropped.
    pub segment_bytes: u64,
    /// Payloads of stored, unpopped messages kept in memory so that their pop reads nothing
    /// back, at most (bytes; never more than a quarter of `gateway_quota_bytes`).
    pub pop_cache_bytes: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            listen: "127.0.0.1:9372".into(),
            data_dir: PathBuf::from("data"),
            max_message_bytes: 8 << 20,
            session_quota_bytes: 1 << 30,
            gateway_quota_bytes: 4 << 30,
            backpressure_ms: 10_000,
            max_pop_wait_ms: 36_000_000,
            session_cache_ms: 2_000,
            sweep_interval_ms: 30_000,
            deliver_timeout_ms: 30_000,
            segment_bytes: 64 << 20,
            pop_cache_bytes: 64 << 20,
        }
    }
}

/// How other parties' gateways are authenticated on the federation port.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum SecurityMode {
    /// Mutual TLS: a peer is the party its certificate names, and only if the certificate
    /// chains to that party's CA from `routes`.
    #[default]
    Mtls,
    /// DEVELOPMENT ONLY: plaintext, and a peer is whoever its envelopes claim to be.
    Insecure,
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// Where other parties' gateways connect (`host:port`).
    pub listen: String,
    pub mode: SecurityMode,
    /// This gateway's certificate (PEM, URI SAN `spiffe://fedflow/party/<party_id>`), as
    /// `fedflow pki` makes it. Required in mtls mode.
    pub cert: PathBuf,
    /// Its private key (PEM). Required in mtls mode.
    pub key: PathBuf,
    /// How often the certificate, key and CA bundles are re-read; a change is used for new
    /// connections without a restart.
    pub reload_interval_ms: u64,
    /// An envelope issued further from this gateway's clock than this, in the future or in the
    /// past, is refused as clock skew (`FAILED_PRECONDITION`, "clock skew: …", naming both
    /// clocks). Within it, a party's envelopes are judged by that party's own clock (their
    /// expiry and the time left to their calls), so parties whose clocks differ by less work
    /// as if they agreed.
    pub max_clock_skew_ms: u64,
    /// The longest an envelope may live (expiry minus issue time).
    pub max_envelope_lifetime_ms: u64,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            listen: "127.0.0.1:0".into(),
            mode: SecurityMode::Mtls,
            cert: PathBuf::new(),
            key: PathBuf::new(),
            reload_interval_ms: 5_000,
            max_clock_skew_ms: 120_000,
            max_envelope_lifetime_ms: 600_000,
        }
    }
}

/// Another party's gateway.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Route {
    /// `"host:port"`: insecure mode only.
    Address(String),
    Full(RouteTable),
}

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    /// The party's federation port, `host:port`.
    pub address: String,
    /// The party's CA certificate(s), PEM (its `ca.crt` from `fedflow pki`; during a CA
    /// rotation, old and new concatenated).
    #[serde(default)]
    pub ca: Option<PathBuf>,
}

impl Route {
    pub fn address(&self) -> &str {
        match self {
            Route::Address(address) => address,
            Route::Full(table) => &table.address,
        }
    }

    pub fn ca(&self) -> Option<&PathBuf> {
        match self {
            Route::Address(_) => None,
            Route::Full(table) => table.ca.as_ref(),
        }
    }
}
