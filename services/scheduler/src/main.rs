//! `fedflow-scheduler --config scheduler.toml`

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "fedflow scheduler")]
struct Args {
    /// TOML configuration file; FEDFLOW_SCHEDULER__* variables override it.
    #[arg(long, short, env = "FEDFLOW_SCHEDULER_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let config: fedflow_scheduler::Config =
        match fedflow_config::load("scheduler", args.config.as_deref()) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("fedflow-scheduler: {e}");
                std::process::exit(64);
            }
        };
    let _telemetry = fedflow_telemetry::init("fedflow-scheduler", &config.telemetry);
    let listener = match fedflow_rpc::server::bind(&config.grpc.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!(
                "fedflow-scheduler: cannot listen on {}: {e}",
                config.grpc.listen
            );
            std::process::exit(69);
        }
    };
    let api = if config.api.listen.is_empty() {
        None
    } else {
        match fedflow_rpc::server::bind(&config.api.listen).await {
            Ok(listener) => Some(listener),
            Err(e) => {
                eprintln!(
                    "fedflow-scheduler: cannot listen on {} (api.listen): {e}",
                    config.api.listen
                );
                std::process::exit(69);
            }
        }
    };
    let shutdown = fedflow_rpc::server::shutdown_on_signals(std::time::Duration::from_millis(
        config.grpc.drain_timeout_ms,
    ));
    if let Err(e) = fedflow_scheduler::run(
        config,
        fedflow_scheduler::Listeners {
            grpc: listener,
            api,
        },
        shutdown,
    )
    .await
    {
        eprintln!("fedflow-scheduler: {e}");
        std::process::exit(1);
    }
}
