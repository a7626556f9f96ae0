//! `fedflow-scheduler --config scheduler.toml`

use fedflow_scheduler::Config;

fn main() {
    fedflow_service_main::service_main(
        "scheduler",
        |c: &Config| &c.telemetry,
        |config, start| async move {
            let listener = start.bind(&config.grpc.listen).await;
            let shutdown = start.shutdown(config.grpc.drain_timeout_ms);
            fedflow_scheduler::run(config, listener, shutdown).await
        },
    );
}
