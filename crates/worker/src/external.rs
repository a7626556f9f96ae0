//! External components: the executable this party's operator registered for a module
//! (`task.json`'s `program`, from the task-controller's config, never from a DSL), run as this
//! worker's child. The worker keeps its supervision: the child is in the worker's process
//! group (a stop kills both), the worker heartbeats meanwhile, and a timeout or kill of the
//! attempt ends it. The child reads `component.json` (named by `FEDFLOW_COMPONENT_CONFIG`:
//! job, component, role, party, version, parameters, inputs, its data plane: the gateway's
//! OSX address, the task's federation session and every party of the task; output
//! directory), writes its
//! files under `outputs/` and may list them in `component_outputs.json`; exit 0 is success.

use std::path::Path;

use fedflow_core::task_file::{OutputArtifact, Program, TaskFile};
use serde_json::json;

use crate::Outcome;

/// Runs `program` for the attempt in `task_dir` and waits for it.
pub async fn run(task_dir: &Path, config: &TaskFile, program: &Program) -> Outcome {
    let outputs_dir = task_dir.join("outputs");
    if let Err(e) = std::fs::create_dir_all(&outputs_dir) {
        return Outcome::Failed(format!("create {}: {e}", outputs_dir.display()));
    }
    let spec = json!({
        "job_id": config.job_id,
        "component": config.component,
        "module": config.module,
        "role": config.role,
        "party_id": config.party_id,
        "version": config.version,
        "parameters": config.parameters,
        "inputs": config.inputs,
        "data_plane": config.data_plane,
        "outputs_dir": outputs_dir.display().to_string(),
        "outputs_file": task_dir.join("component_outputs.json").display().to_string(),
    });
    let spec_path = task_dir.join("component.json");
    if let Err(e) = std::fs::write(&spec_path, spec.to_string()) {
        return Outcome::Failed(format!("write {}: {e}", spec_path.display()));
    }
    let status = tokio::process::Command::new(&program.command)
        .args(&program.args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(&program.env)
        .env("FEDFLOW_COMPONENT_CONFIG", &spec_path)
        .current_dir(task_dir)
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .status()
        .await;
    match status {
        Err(e) => Outcome::Failed(format!("cannot run {}: {e}", program.command)),
        Ok(status) if !status.success() => {
            Outcome::Failed(format!("component {} exited with {status}", config.module))
        }
        Ok(_) => match std::fs::read(task_dir.join("component_outputs.json")) {
            Err(_) => Outcome::Success(None),
            Ok(bytes) => match serde_json::from_slice::<Vec<OutputArtifact>>(&bytes) {
                Ok(outputs) => Outcome::Produced(outputs),
                Err(e) => Outcome::Failed(format!("component_outputs.json: {e}")),
            },
        },
    }
}
