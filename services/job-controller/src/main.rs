//! `fedflow-job-controller --config job-controller.toml`

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "fedflow job-controller")]
struct Args {
    /// TOML configuration file; FEDFLOW_JOB_CONTROLLER__* variables override it.
    #[arg(long, short, env = "FEDFLOW_JOB_CONTROLLER_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let config: fedflow_job_controller::Config =
        match fedflow_config::load("job-controller", args.config.as_deref()) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("fedflow-job-controller: {e}");
                std::process::exit(64);
            }
        };
    let _telemetry = fedflow_telemetry::init("fedflow-job-controller", &config.telemetry);
    let listener = match fedflow_rpc::server::bind(&config.grpc.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "fedflow-job-controller: cannot listen on {}: {e}",
                config.grpc.listen
            );
            std::process::exit(69);
        }
    };
    let shutdown = fedflow_rpc::server::shutdown_on_signals(std::time::Duration::from_millis(
        config.grpc.drain_timeout_ms,
    ));
    if let Err(e) = fedflow_job_controller::run(config, listener, shutdown).await {
        eprintln!("fedflow-job-controller: {e}");
        std::process::exit(1);
    }
}
