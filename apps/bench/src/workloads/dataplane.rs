//! Workload 7: the data plane. Messages of 1 KiB, 100 KiB and 1 MiB from a component on the
//! host (10000) to one on the guest (9999): pushed at the host's data-plane port, carried by
//! the host's gateway over the mutual-TLS federation link to the guest's gateway, stored
//! there durably, popped at the guest's data-plane port. Four topics at once, each with its
//! own pusher and popper (as pyfate moves a table's partitions). Beside it, the floor
//! ([`super::floor`]): the same clients against a bare TLS server on loopback.
//!
//! The two are measured in rounds, the floor then fedflow for each size, so that each ratio
//! sets figures taken seconds apart beside each other; the figures kept are the medians over
//! the rounds, and the ratio kept is the median of the rounds' ratios. On a 2-core machine
//! the floor alone moved by a third between runs a minute apart.

use std::time::{Duration, Instant};

use fedflow_osx::{Federation, Party};
use fedflow_proto::common::v1::TaskStatus;
use serde_json::json;

use super::{jobs, start};
use crate::Args;
use crate::measure::{Results, Samples};

const STREAMS: usize = 4;

/// Rounds of floor-then-fedflow per size (one with `--smoke`).
const ROUNDS: usize = 3;

/// (label, message size, messages in all): a few seconds of each at fedflow's speed, so that
/// a stall of the machine's scheduler moves a figure by a few per cent, not by half (runs of
/// 200 MiB at 1 MiB, about a second, moved the ratio to the floor from 39 % to 58 %).
fn sizes(args: &Args) -> Vec<(&'static str, usize, usize)> {
    let scale = if args.smoke { 40 } else { 1 };
    vec![
        ("1kib", 1024, 4000 / scale),
        ("100kib", 100 * 1024, 2000 / scale),
        ("1mib", 1024 * 1024, 1000 / scale),
    ]
}

/// Moves `count` messages of `size` bytes from `from` to `to`, `STREAMS` topics at once;
/// returns the time from the first push to the last pop.
async fn transfer(from: &Federation, to: &Federation, size: usize, count: usize) -> Duration {
    let body = vec![0x5a_u8; size];
    let per_stream = count / STREAMS;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for stream in 0..STREAMS {
        let name = format!("bench-{stream}");
        let (pusher, body, name_push) = (from.clone(), body.clone(), name.clone());
        let receiver = to.me().clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_stream {
                pusher
                    .push(&receiver, &name_push, &i.to_string(), &body)
                    .await
                    .unwrap_or_else(|e| panic!("push {i} on {name_push}: {e}"));
            }
        }));
        let (popper, sender) = (to.clone(), from.me().clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_stream {
                let got = popper
                    .pop(&sender, &name, Duration::from_secs(60))
                    .await
                    .unwrap_or_else(|e| panic!("pop {i} on {name}: {e}"));
                assert_eq!(got.body.len(), size, "message {i} on {name}");
                assert_eq!(got.head.correlation_id, i.to_string(), "order on {name}");
            }
        }));
    }
    for task in tasks {
        task.await.expect("a transfer task");
    }
    start.elapsed()
}

/// What one transfer did: (messages per second, MB per second).
fn rates(size: usize, count: usize, took: Duration) -> (f64, f64) {
    let seconds = took.as_secs_f64();
    let moved = (count / STREAMS) * STREAMS;
    (
        moved as f64 / seconds,
        (moved * size) as f64 / seconds / 1e6,
    )
}

/// The median (the measure's p50) of `values`.
fn median(values: impl IntoIterator<Item = f64>) -> f64 {
    let mut samples = Samples::default();
    for value in values {
        samples.push(value);
    }
    samples.quantile(0.5)
}

/// Keeps the medians over the rounds of one size: `dataplane.{floor,fedflow}.{label}.*` and
/// `dataplane.ratio.{label}` (fedflow's MB/s over the floor's, the median of the rounds').
fn record(r: &mut Results, label: &str, floor: &[(f64, f64)], ours: &[(f64, f64)]) {
    for (path, runs) in [("floor", floor), ("fedflow", ours)] {
        r.values.insert(
            format!("dataplane.{path}.{label}.messages_per_s"),
            median(runs.iter().map(|x| x.0)),
        );
        r.values.insert(
            format!("dataplane.{path}.{label}.mb_per_s"),
            median(runs.iter().map(|x| x.1)),
        );
    }
    let ratios: Vec<f64> = floor.iter().zip(ours).map(|(f, o)| o.1 / f.1).collect();
    eprintln!(
        "fedflow-bench: data plane {label}: floor {:?} MB/s, fedflow {:?} MB/s, ratios {:?} %",
        floor.iter().map(|x| x.1.round()).collect::<Vec<_>>(),
        ours.iter().map(|x| x.1.round()).collect::<Vec<_>>(),
        ratios
            .iter()
            .map(|x| (x * 100.0).round())
            .collect::<Vec<_>>(),
    );
    r.values
        .insert(format!("dataplane.ratio.{label}"), median(ratios));
}

pub(super) async fn run(args: &Args, r: &mut Results) {
    let floor = super::floor::start().await;
    let host = Party::new("host", "10000");
    let guest = Party::new("guest", "9999");
    let floor_from = Federation::with_channel(floor.channel.clone(), "floor", host.clone());
    let floor_to = Federation::with_channel(floor.channel.clone(), "floor", guest.clone());

    let (fed, _observer, mut client) = start(&["9999", "10000"], "process", 16).await;
    let dsl = json!({"components": {"hold": {"module": "Sleep"}}});
    let conf = json!({
        "dsl_version": 2,
        "initiator": {"role": "guest", "party_id": "9999"},
        "role": {"guest": ["9999"], "host": ["10000"]},
        "job_parameters": {"common": {"task_cores": 1}},
        "component_parameters": {"common": {"hold": {"seconds": 600}}}
    });
    let job_id = jobs::submit(&mut client, &dsl, &conf).await;
    fedflow_tests::eventually(
        "hold running on both parties",
        Duration::from_secs(60),
        || {
            let mut client = client.clone();
            let job_id = job_id.clone();
            async move {
                let tasks = fedflow_tests::scheduler_tasks(&mut client, &job_id).await;
                let running = tasks.iter().any(|t| {
                    t.parties.len() == 2
                        && t.parties
                            .iter()
                            .all(|p| p.status == TaskStatus::Running as i32)
                });
                if running {
                    Ok(())
                } else {
                    Err(format!("{tasks:?}"))
                }
            }
        },
    )
    .await;
    let session = fedflow_core::session::id(&job_id, "hold", 0);
    let from = Federation::new(&fed.party("10000").osx, &session, host).expect("host's data plane");
    let to = Federation::new(&fed.party("9999").osx, &session, guest).expect("guest's data plane");
    let rounds = if args.smoke { 1 } else { ROUNDS };
    eprintln!(
        "fedflow-bench: data plane, {rounds} rounds of the floor (bare TLS gRPC on loopback) then host -> guest through both gateways"
    );
    for (label, size, count) in sizes(args) {
        let (mut floor_rates, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let took = transfer(&floor_from, &floor_to, size, count).await;
            floor_rates.push(rates(size, count, took));
            let took = transfer(&from, &to, size, count).await;
            ours.push(rates(size, count, took));
        }
        record(r, label, &floor_rates, &ours);
    }
    drop(floor);
    client
        .stop_job(fedflow_proto::scheduler::v1::StopJobRequest {
            job_id: job_id.clone(),
            request_id: String::new(),
        })
        .await
        .expect("stop the holding job");
}
