//! Workloads 1-3: latency of sequential 3-task jobs, throughput with process workers (two
//! rounds), and the services' footprint idle, at peak and after each round.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Notify;

use super::footprint::{rss_by_kind, sample_peaks, total_cpu, total_rss};
use super::jobs::{conf3, throughput, timed_chain};
use super::{PARTIES3, start};
use crate::Args;
use crate::measure::Results;

pub(super) async fn run(args: &Args, r: &mut Results) {
    eprintln!(
        "fedflow-bench: latency ({} sequential jobs)",
        args.latency_jobs
    );
    let (fed, observer, mut client) = start(&PARTIES3, "process", 1_000_000).await;
    let idle = rss_by_kind(&fed);
    for _ in 0..if args.runs("latency") {
        args.latency_jobs
    } else {
        0
    } {
        let l = timed_chain(&mut client, &observer, &conf3(), 3).await;
        r.samples("latency.submit_to_first_running_all")
            .push_ms(l.first_running);
        for e in l.edges {
            r.samples("latency.dag_edge").push_ms(e);
        }
        r.samples("latency.last_success_to_job_success")
            .push_ms(l.finish);
        r.samples("latency.scheduling_overhead_per_job")
            .push_ms(l.overhead);
    }
    let mut after_runs = Vec::new();
    let mut peaks: HashMap<String, f64> = HashMap::new();
    for round in 1..=if args.runs("throughput") { 2 } else { 0 } {
        eprintln!(
            "fedflow-bench: throughput, process workers, round {round} ({} jobs)",
            args.throughput_jobs
        );
        let cpu_before = total_cpu(&fed);
        let stop = Arc::new(Notify::new());
        let sampler = sample_peaks(&fed, stop.clone());
        let key = format!("throughput.process.round{round}");
        throughput(&client, &observer, args, r, &key).await;
        stop.notify_one();
        for (k, v) in sampler.await.expect("sampler") {
            let e = peaks.entry(k).or_default();
            *e = e.max(v);
        }
        let cpu = total_cpu(&fed) - cpu_before;
        r.values.insert(
            format!("footprint.cpu_seconds_per_job.round{round}"),
            cpu / args.throughput_jobs as f64,
        );
        after_runs.push(total_rss(&fed));
    }
    for (kind, mib) in &idle {
        r.values
            .insert(format!("footprint.idle_rss_mib.{kind}"), *mib);
    }
    for (kind, mib) in &peaks {
        r.values
            .insert(format!("footprint.peak_rss_mib.{kind}"), *mib);
    }
    if let [first, second] = after_runs[..] {
        r.values
            .insert("footprint.total_rss_mib_after_round1".into(), first);
        r.values
            .insert("footprint.total_rss_mib_after_round2".into(), second);
    }
}
