//! `fedflow-party-gateway --config party-gateway.toml`

use fedflow_party_gateway::{Config, Listeners};

fn main() {
    fedflow_service_main::service_main(
        "party-gateway",
        |c: &Config| &c.telemetry,
        |config, start| async move {
            let internal = start.bind(&config.grpc.listen).await;
            let federation = start.bind(&config.federation.listen).await;
            let shutdown = start.shutdown(config.grpc.drain_timeout_ms);
            let listeners = Listeners {
                internal,
                federation,
            };
            fedflow_party_gateway::run(config, listeners, shutdown).await
        },
    );
}
