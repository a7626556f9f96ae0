//! Workload 4a: submit latency with an empty queue and with a deep one (a job holding the
//! only core, thousands waiting behind it).

use std::time::{Duration, Instant};

use fedflow_tests::process::ProcessOptions;
use fedflow_tests::{processes_mentioning, signal};
use futures::StreamExt;
use serde_json::json;

use super::jobs::{chain3, conf3, submit};
use super::{PARTIES3, start_with};
use crate::Args;
use crate::measure::Results;

pub(super) async fn run(args: &Args, r: &mut Results) {
    // 4a: submit latency, empty queue vs a deep one.
    eprintln!(
        "fedflow-bench: submit latency with {} jobs queued",
        args.queued_jobs
    );
    let probes = args.latency_jobs.clamp(3, 200);
    // The scheduler's admission bound (`scheduling.max_waiting_jobs`, 10,000 by default) is
    // raised above the queue this workload builds, so what is measured is a deep queue, not
    // the refusal of a full one.
    let room = (args.queued_jobs + 2 * probes + 100).to_string();
    let options = ProcessOptions {
        cores: 1,
        engine: "process",
        log: "warn",
        env: vec![(
            "FEDFLOW_SCHEDULER__SCHEDULING__MAX_WAITING_JOBS".to_owned(),
            room,
        )],
        ..ProcessOptions::default()
    };
    let (fed, observer, mut client) = start_with(&PARTIES3, options).await;
    for _ in 0..probes {
        let start = Instant::now();
        let job = submit(&mut client, &chain3(), &conf3()).await;
        r.samples("scale.submit_empty_queue")
            .push_ms(start.elapsed());
        observer
            .wait_all(std::slice::from_ref(&job), Duration::from_secs(60))
            .await;
        observer.forget(&job);
    }
    let holder_conf = {
        let mut c = conf3();
        c["component_parameters"]["common"]["c1"]["seconds"] = json!(3600);
        c
    };
    let holder = submit(&mut client, &chain3(), &holder_conf).await;
    futures::stream::iter(0..args.queued_jobs)
        .map(|_| {
            let mut client = client.clone();
            async move { submit(&mut client, &chain3(), &conf3()).await }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    for _ in 0..probes {
        let start = Instant::now();
        submit(&mut client, &chain3(), &conf3()).await;
        r.samples("scale.submit_with_deep_queue")
            .push_ms(start.elapsed());
    }
    let services: Vec<u32> = fed.services().iter().map(|s| s.pid).collect();
    for pid in services {
        signal(pid, "KILL");
    }
    for pid in processes_mentioning(&holder) {
        signal(pid, "KILL");
    }
}
