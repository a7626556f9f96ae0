//! Workload 2b: throughput of the control plane alone, on the benchmark engine (every task
//! succeeds at once, no worker process).

use fedflow_tests::channel;
use fedflow_tests::process::ProcessFederation;

use super::jobs::{burst, chain3, conf3};
use super::observer::Observer;
use super::{Client, options};
use crate::Args;
use crate::measure::Results;

pub(super) async fn run(args: &Args, r: &mut Results) {
    let parties3 = ["9999", "10000", "10001"];
    // 2: throughput of the control plane alone (benchmark engine).
    eprintln!(
        "fedflow-bench: throughput, benchmark engine ({} jobs)",
        args.throughput_jobs
    );
    let fed = ProcessFederation::start_with(&parties3, options("instant", 1_000_000)).await;
    let addr = fed.party("9999").scheduler.clone();
    let observer = Observer::start(&addr).await;
    let client = Client::new(channel(&addr));
    let (rate, ok) = burst(
        &client,
        &observer,
        args.throughput_jobs,
        &chain3(),
        &conf3(),
    )
    .await;
    r.values
        .insert("throughput.instant.jobs_per_s".into(), rate);
    r.values
        .insert("throughput.instant.succeeded".into(), ok as f64);
}
