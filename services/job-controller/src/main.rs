//! `fedflow-job-controller --config job-controller.toml`

fedflow_service_main::main!("job-controller", fedflow_job_controller);
