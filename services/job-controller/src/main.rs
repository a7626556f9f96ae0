//! `fedflow-job-controller --config job-controller.toml`

use fedflow_job_controller::Config;

fn main() {
    fedflow_service_main::service_main(
        "job-controller",
        |c: &Config| &c.telemetry,
        |config, start| async move {
            let listener = start.bind(&config.grpc.listen).await;
            let shutdown = start.shutdown(config.grpc.drain_timeout_ms);
            fedflow_job_controller::run(config, listener, shutdown).await
        },
    );
}
