//! Workload 4b: scale in parties. An 8-party job against a 3-party job on one 8-party
//! federation (process workers), and a 32-party job (guest + 31 hosts) against a 3-party job on
//! one 32-party federation (the benchmark engine: the control plane alone, so 32 worker
//! processes per task on 2 cores do not stand in for scheduling).
//!
//! Scheduling overhead per job: the job's wall time from submit to success at the scheduler,
//! minus the run times of its three tasks (each from running on every party to success on
//! every party). The 32-party figures also count service CPU, party calls and store statements
//! per job.

use fedflow_tests::process::ProcessOptions;

use super::footprint::total_cpu;
use super::jobs::{conf_hosts, conf3, timed_chain};
use super::{counts, start, start_with};
use crate::Args;
use crate::measure::Results;

pub(super) async fn run(args: &Args, r: &mut Results) {
    // 4b: an 8-party job against a 3-party job.
    eprintln!("fedflow-bench: 8 parties");
    let parties8 = [
        "9999", "10000", "10001", "10002", "10003", "10004", "10005", "10006",
    ];
    {
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
    thirty_two(args, r).await;
}

/// A 32-party job against a 3-party job, alternating, on one 32-party federation.
async fn thirty_two(args: &Args, r: &mut Results) {
    eprintln!("fedflow-bench: 32 parties");
    let ids: Vec<String> = (0..32)
        .map(|i| {
            if i == 0 {
                "9999".to_owned()
            } else {
                (9999 + i).to_string()
            }
        })
        .collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let options = ProcessOptions {
        cores: 1_000_000,
        engine: "instant",
        log: "warn",
        observe: true,
        ..ProcessOptions::default()
    };
    let (fed, observer, mut client) = start_with(&ids, options).await;
    let rounds = args.latency_jobs.clamp(3, 20);
    let conf32 = conf_hosts(&ids[1..]);
    let idle = counts::idle(&fed).await;
    r.values.insert(
        "scale.32_party.idle_statements_per_s".into(),
        idle.statements_per_s,
    );
    r.values.insert(
        "scale.32_party.idle_cpu_seconds_per_s".into(),
        idle.cpu_per_s,
    );
    for (parties, conf, key) in [
        (3, conf3(), "scale.3_party_of_32"),
        (32, conf32, "scale.32_party"),
    ] {
        let (before, start) = (counts::settled(&fed).await, std::time::Instant::now());
        let cpu_before = total_cpu(&fed);
        for _ in 0..rounds {
            let l = timed_chain(&mut client, &observer, &conf, parties).await;
            let (first, overhead) = if parties == 3 {
                (
                    "scale.3_party_of_32.submit_to_first_running_all",
                    "scale.3_party_of_32.scheduling_overhead",
                )
            } else {
                (
                    "scale.32_party.submit_to_first_running_all",
                    "scale.32_party.scheduling_overhead",
                )
            };
            r.samples(first).push_ms(l.first_running);
            r.samples(overhead).push_ms(l.overhead);
        }
        // Read before the counters settle, less what the 128 processes use idle meanwhile.
        let cpu = total_cpu(&fed) - cpu_before - idle.cpu_per_s * start.elapsed().as_secs_f64();
        let after = counts::settled(&fed).await;
        r.values
            .insert(format!("{key}.cpu_seconds_per_job"), cpu / rounds as f64);
        after
            .per_job(&before, rounds, idle.statements_per_s, start.elapsed())
            .record(r, key);
    }
}
