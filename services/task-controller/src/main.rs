//! `fedflow-task-controller --config task-controller.toml`

use fedflow_task_controller::Config;

fn main() {
    fedflow_service_main::service_main(
        "task-controller",
        |c: &Config| &c.telemetry,
        |config, start| async move {
            let listener = start.bind(&config.grpc.listen).await;
            let shutdown = start.shutdown(config.grpc.drain_timeout_ms);
            fedflow_task_controller::run(config, listener, shutdown).await
        },
    );
}
