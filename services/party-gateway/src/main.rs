//! `fedflow-party-gateway --config party-gateway.toml`

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(version, about = "fedflow party-gateway")]
struct Args {
    /// TOML configuration file; FEDFLOW_PARTY_GATEWAY__* variables override it.
    #[arg(long, short, env = "FEDFLOW_PARTY_GATEWAY_CONFIG")]
    config: Option<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = Args::parse();
    let config: fedflow_party_gateway::Config =
        match fedflow_config::load("party-gateway", args.config.as_deref()) {
            Ok(config) => config,
            Err(e) => {
                eprintln!("fedflow-party-gateway: {e}");
                std::process::exit(64);
            }
        };
    let _telemetry = fedflow_telemetry::init("fedflow-party-gateway", &config.telemetry);
    let mut bound = Vec::new();
    for addr in [&config.grpc.listen, &config.federation.listen] {
        match fedflow_rpc::server::bind(addr).await {
            Ok(listener) => bound.push(listener),
            Err(e) => {
                eprintln!("fedflow-party-gateway: cannot listen on {addr}: {e}");
                std::process::exit(69);
            }
        }
    }
    let (Some(federation), Some(internal)) = (bound.pop(), bound.pop()) else {
        unreachable!("two addresses were bound")
    };
    let listeners = fedflow_party_gateway::Listeners {
        internal,
        federation,
    };
    let shutdown = fedflow_rpc::server::shutdown_on_signals(std::time::Duration::from_millis(
        config.grpc.drain_timeout_ms,
    ));
    if let Err(e) = fedflow_party_gateway::run(config, listeners, shutdown).await {
        eprintln!("fedflow-party-gateway: {e}");
        std::process::exit(1);
    }
}
