//! Workload 2b: throughput of the control plane alone, on the benchmark engine (every task
//! succeeds at once, no worker process), with what each job cost: service CPU, party calls
//! and store statements.

use fedflow_tests::process::ProcessOptions;

use super::footprint::total_cpu;
use super::jobs::throughput;
use super::{PARTIES3, counts, start_with};
use crate::Args;
use crate::measure::Results;

pub(super) async fn run(args: &Args, r: &mut Results) {
    // 2: throughput of the control plane alone (benchmark engine).
    eprintln!(
        "fedflow-bench: throughput, benchmark engine ({} jobs)",
        args.throughput_jobs
    );
    let options = ProcessOptions {
        cores: 1_000_000,
        engine: "instant",
        log: "warn",
        // Every service serves its metrics (read twice: before and after) to count the party
        // calls and statements.
        observe: true,
        ..ProcessOptions::default()
    };
    let (fed, observer, client) = start_with(&PARTIES3, options).await;
    let idle = counts::idle(&fed).await;
    let (before, start) = (counts::settled(&fed).await, std::time::Instant::now());
    let cpu_before = total_cpu(&fed);
    throughput(&client, &observer, args, r, "throughput.instant").await;
    let cpu = total_cpu(&fed) - cpu_before;
    let jobs = args.throughput_jobs;
    r.values.insert(
        "throughput.instant.cpu_seconds_per_job".into(),
        cpu / jobs as f64,
    );
    let after = counts::settled(&fed).await;
    after
        .per_job(&before, jobs, idle.statements_per_s, start.elapsed())
        .record(r, "throughput.instant");
    r.values.insert(
        "throughput.instant.idle_statements_per_s".into(),
        idle.statements_per_s,
    );
}
