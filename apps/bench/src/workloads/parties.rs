//! Workload 4b: scale in parties, an 8-party job against a 3-party job.

use super::jobs::{conf_hosts, conf3, timed_chain};
use super::start;
use crate::Args;
use crate::measure::Results;

pub(super) async fn run(args: &Args, r: &mut Results) {
    // 4b: an 8-party job against a 3-party job.
    eprintln!("fedflow-bench: 8 parties");
    let parties8 = [
        "9999", "10000", "10001", "10002", "10003", "10004", "10005", "10006",
    ];
    let (_fed, observer, mut client) = start(&parties8, "process", 1_000_000).await;
    let rounds = args.latency_jobs.clamp(3, 20);
    for _ in 0..rounds {
        let l = timed_chain(&mut client, &observer, &conf3(), 3).await;
        r.samples("scale.3_party.submit_to_first_running_all")
            .push_ms(l.first_running);
        r.samples("scale.3_party.scheduling_overhead")
            .push_ms(l.overhead);
        let hosts = &parties8[1..];
        let l = timed_chain(&mut client, &observer, &conf_hosts(hosts), 8).await;
        r.samples("scale.8_party.submit_to_first_running_all")
            .push_ms(l.first_running);
        r.samples("scale.8_party.scheduling_overhead")
            .push_ms(l.overhead);
    }
}
