//! `fedflow-scheduler --config scheduler.toml`

fedflow_service_main::main!("scheduler", fedflow_scheduler::start);
