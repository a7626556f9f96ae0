//! `fedflow-party-gateway --config party-gateway.toml`

fedflow_service_main::main!(
    "party-gateway",
    fedflow_party_gateway::start,
    threads = |c| c.threads
);
