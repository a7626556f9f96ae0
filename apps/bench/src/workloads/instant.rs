//! Workload 2b: throughput of the control plane alone, on the benchmark engine (every task
//! succeeds at once, no worker process).

use super::jobs::throughput;
use super::{PARTIES3, start};
use crate::Args;
use crate::measure::Results;

pub(super) async fn run(args: &Args, r: &mut Results) {
    // 2: throughput of the control plane alone (benchmark engine).
    eprintln!(
        "fedflow-bench: throughput, benchmark engine ({} jobs)",
        args.throughput_jobs
    );
    let (_fed, observer, client) = start(&PARTIES3, "instant", 1_000_000).await;
    throughput(&client, &observer, args, r, "throughput.instant").await;
}
