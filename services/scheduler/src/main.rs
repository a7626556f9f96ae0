//! `fedflow-scheduler --config scheduler.toml`

use fedflow_scheduler::{Config, Listeners};

fn main() {
    fedflow_service_main::service_main(
        "scheduler",
        |c: &Config| &c.telemetry,
        |config, start| async move {
            let grpc = start.bind(&config.grpc.listen).await;
            let api = match config.api.listen.as_str() {
                "" => None,
                addr => Some(start.bind(addr).await),
            };
            let shutdown = start.shutdown(config.grpc.drain_timeout_ms);
            fedflow_scheduler::run(config, Listeners { grpc, api }, shutdown).await
        },
    );
}
