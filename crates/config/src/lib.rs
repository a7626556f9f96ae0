//! Loading a service's configuration: its defaults (the struct's `Default`), then a TOML file,
//! then environment variables `FEDFLOW_<SERVICE>__<SECTION>__<KEY>` (e.g.
//! `FEDFLOW_SCHEDULER__GRPC__LISTEN=0.0.0.0:9380`). Unknown keys are refused, so a typo in a
//! config file fails at start-up (exit 64) instead of being ignored. Also holds the sections
//! every service shares.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct Error(#[from] config::ConfigError);

/// Loads `T` for the service whose env prefix is `FEDFLOW_<SERVICE>` (`service` upper-cased,
/// `-` as `_`).
pub fn load<T: DeserializeOwned>(service: &str, file: Option<&Path>) -> Result<T, Error> {
    let prefix = format!("FEDFLOW_{}", service.to_uppercase().replace('-', "_"));
    let mut builder = config::Config::builder();
    if let Some(file) = file {
        builder = builder.add_source(
            config::File::from(file)
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    builder = builder.add_source(
        config::Environment::with_prefix(&prefix)
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true),
    );
    Ok(builder.build()?.try_deserialize()?)
}

/// Parses TOML text as `T` (for tests and for configs embedded by `standalone`).
pub fn from_toml<T: DeserializeOwned>(text: &str) -> Result<T, Error> {
    Ok(config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()?
        .try_deserialize()?)
}

/// Where a server listens.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct GrpcConfig {
    /// `host:port`; port 0 picks a free one.
    pub listen: String,
    /// On SIGTERM the server reports NOT_SERVING, stops accepting and lets in-flight calls
    /// finish; after this long (ms) the process exits regardless. What was acknowledged is
    /// already stored, and the reconcilers of the restarted service take it over.
    pub drain_timeout_ms: u64,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: "127.0.0.1:0".into(),
            drain_timeout_ms: 10_000,
        }
    }
}

/// A service's store.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://path/to/file.db?mode=rwc` (default, embedded) or `postgres://user:pw@host/db`.
    pub url: String,
    pub max_connections: u32,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: "sqlite://fedflow.db?mode=rwc".into(),
            max_connections: 8,
        }
    }
}

impl DatabaseConfig {
    /// The URL's scheme only, for logs (the URL may hold a password).
    pub fn backend(&self) -> &str {
        self.url.split(':').next().unwrap_or("unknown")
    }
}

/// Logs and traces.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub log_filter: String,
    /// JSON lines instead of text.
    pub log_json: bool,
    /// OTLP/gRPC collector (`http://127.0.0.1:4317`); empty = tracing export off.
    pub otlp_endpoint: String,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            log_filter: "info".into(),
            log_json: false,
            otlp_endpoint: String::new(),
        }
    }
}

/// The Prometheus endpoint.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// `host:port` of the HTTP endpoint serving `GET /metrics` (OpenMetrics text); empty = no
    /// endpoint (the default).
    pub listen: String,
}
