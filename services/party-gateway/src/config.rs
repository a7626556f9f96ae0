//! The gateway's configuration (TOML + `FEDFLOW_PARTY_GATEWAY__…`); see
//! `deploy/config/party-gateway.toml` for every key.

use std::collections::BTreeMap;

use fedflow_config::{GrpcConfig, TelemetryConfig};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// This party's id.
    pub party_id: String,
    pub grpc: GrpcConfig,
    /// Addresses of this party's services.
    pub local: LocalServices,
    /// Other parties' gateways: party id -> `host:port`.
    pub routes: BTreeMap<String, String>,
    pub forward: ForwardConfig,
    pub telemetry: TelemetryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            party_id: "9999".into(),
            grpc: GrpcConfig::default(),
            local: LocalServices::default(),
            routes: BTreeMap::new(),
            forward: ForwardConfig::default(),
            telemetry: TelemetryConfig::default(),
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
    /// Deadline of a call whose envelope names none.
    pub default_timeout_ms: u64,
    /// Tries per delivery when the next hop is unavailable.
    pub max_attempts: u32,
    /// First backoff; doubles per try, with jitter, up to `backoff_max_ms`.
    pub backoff_initial_ms: u64,
    pub backoff_max_ms: u64,
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
            max_attempts: 6,
            backoff_initial_ms: 20,
            backoff_max_ms: 1_000,
            max_hops: 2,
            duplicate_delivery_for_testing: false,
        }
    }
}
