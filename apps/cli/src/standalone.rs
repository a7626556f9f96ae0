//! `fedflow standalone`: every service of the listed parties in this process, on localhost,
//! SQLite under the data directory. Prints one line per party with its scheduler's address (and
//! its web board's, ` board http://HOST:PORT`) and runs until interrupted; `--demo` runs the sample job instead and exits with its result.

use std::process::ExitCode;

use fedflow_standalone::{Federation, Options};

use crate::StandaloneArgs;
use crate::commands::{self, CliError, Ctx};

const DEMO_DSL: &str = include_str!("../../../examples/sum-diamond/dsl.json");
const DEMO_CONF: &str = include_str!("../../../examples/sum-diamond/conf.json");

pub async fn run(args: StandaloneArgs) -> commands::Result {
    let telemetry = fedflow_config::TelemetryConfig {
        log_filter: if args.demo { "warn" } else { "info" }.into(),
        ..Default::default()
    };
    let _telemetry = fedflow_telemetry::init("fedflow-standalone", &telemetry);
    let mut options = Options::new(args.parties.clone(), args.data_dir.clone());
    options.cores = args.cores;
    options.mtls = !args.insecure;
    options.metrics = true;
    options.board = true;
    if let Some(python) = &args.fate_python {
        // An absolute path, as the task-controllers need it.
        options.fate_python = std::path::absolute(python).unwrap_or_else(|_| python.clone());
    }
    let worker = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("fedflow-worker")));
    if let Some(worker) = worker.filter(|w| !w.exists()) {
        return Err(CliError(format!(
            "FAILED_PRECONDITION: the worker binary {} is missing (build it: cargo build --bins)",
            worker.display()
        )));
    }
    let mut federation = Federation::start(options)
        .await
        .map_err(|e| CliError(format!("UNAVAILABLE: {e}")))?;
    for party in &federation.parties {
        let metrics = party
            .metrics
            .map(|addr| format!(" metrics http://{addr}"))
            .unwrap_or_default();
        let board = party
            .board
            .map(|a| format!(" board http://{a}"))
            .unwrap_or_default();
        println!(
            "party {} scheduler {} gateway {} job-controller {} task-controller {} osx {}{metrics}{board}",
            party.party_id,
            party.scheduler,
            party.gateway,
            party.job_controller,
            party.task_controller,
            party.osx
        );
    }
    if args.insecure {
        println!(
            "INSECURE: gateways talk plaintext and trust the party ids in messages (--insecure; development only)"
        );
    } else {
        println!(
            "gateways use mutual TLS; each party's CA and certificate are in {}",
            args.data_dir.join("pki").display()
        );
    }
    if !args.demo {
        println!(
            "fedflow standalone running (data in {}); Ctrl-C stops it",
            args.data_dir.display()
        );
        let shutdown = fedflow_rpc::server::shutdown_on_signals(std::time::Duration::from_secs(10));
        tokio::select! {
            _ = shutdown.cancelled() => {}
            failed = federation.wait_any() => eprintln!("fedflow standalone: {failed}"),
        }
        for error in federation.shutdown().await {
            eprintln!("fedflow standalone: {error}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let result = demo(&federation).await;
    federation.shutdown().await;
    result
}

async fn demo(federation: &Federation) -> commands::Result {
    let guest = federation.party("9999").ok_or_else(|| {
        CliError("INVALID_ARGUMENT: the demo needs parties 9999,10000,10001".into())
    })?;
    let dir = std::env::temp_dir().join(format!("fedflow-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| CliError(format!("INTERNAL: {e}")))?;
    let dsl = dir.join("dsl.json");
    let conf = dir.join("conf.json");
    std::fs::write(&dsl, DEMO_DSL).map_err(|e| CliError(format!("INTERNAL: {e}")))?;
    std::fs::write(&conf, DEMO_CONF).map_err(|e| CliError(format!("INTERNAL: {e}")))?;
    let ctx = Ctx::new(&guest.scheduler.to_string(), false);
    println!("\nsubmitting examples/sum-diamond (guest 9999, host 10000, arbiter 10001)");
    let job_id = commands::submit_quiet(&ctx, &dsl, &conf).await?;
    println!("job {job_id}");
    let code = commands::watch(&ctx, &job_id).await?;
    println!("\ntasks:");
    commands::tasks(&ctx, &job_id, false).await?;
    println!("\noutput of component sink:");
    for (role, party) in [("guest", "9999"), ("host", "10000"), ("arbiter", "10001")] {
        print!("  {role} {party}: ");
        commands::output(&ctx, &job_id, "sink", role, party).await?;
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(code)
}
