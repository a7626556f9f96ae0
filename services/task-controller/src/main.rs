//! `fedflow-task-controller --config task-controller.toml`

fedflow_service_main::main!("task-controller", fedflow_task_controller);
