//! The workloads: latency, throughput (process workers and the benchmark engine), footprint,
//! and scale (a deep queue, an 8-party job), one module each, and the table that sets their
//! figures beside the targets and FATE-Flow's.

mod counts;
mod dataplane;
mod fate;
mod floor;
mod footprint;
mod instant;
mod joblist;
mod jobs;
mod latency;
mod observe;
mod observer;
mod parties;
mod queue;
mod soak;

use fedflow_proto::scheduler::v1 as pb;
use fedflow_tests::channel;
use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use tonic::transport::Channel;

use crate::Args;
use crate::measure::Results;
use observer::Observer;

type Client = pb::scheduler_client::SchedulerClient<Channel>;

const PARTIES3: [&str; 3] = ["9999", "10000", "10001"];

/// A federation of real processes (`engine` workers, `cores` per party), an observer of party
/// 9999's scheduler and a client of it.
async fn start(
    parties: &[&str],
    engine: &'static str,
    cores: u32,
) -> (ProcessFederation, Observer, Client) {
    let options = ProcessOptions {
        cores,
        engine,
        log: "warn",
        ..ProcessOptions::default()
    };
    start_with(parties, options).await
}

/// [`start`] with any options.
async fn start_with(
    parties: &[&str],
    options: ProcessOptions,
) -> (ProcessFederation, Observer, Client) {
    let fed = ProcessFederation::start_with(parties, options).await;
    let addr = fed.party("9999").scheduler.clone();
    let observer = Observer::start(&addr).await;
    let client = Client::new(channel(&addr));
    (fed, observer, client)
}

pub async fn run(args: &Args) -> Results {
    let mut r = Results::default();

    // 1 + 2 + 3: latency, throughput with process workers, footprint.
    if args.runs("latency") || args.runs("throughput") {
        latency::run(args, &mut r).await;
    }
    if args.runs("instant") {
        instant::run(args, &mut r).await;
    }
    if args.runs("queue") {
        queue::run(args, &mut r).await;
    }
    if args.runs("parties") {
        parties::run(args, &mut r).await;
    }
    if args.runs("dataplane") {
        dataplane::run(args, &mut r).await;
    }
    // Only when asked for: it needs pyfate.
    if args.only.iter().any(|p| p == "fate") {
        fate::run(args, &mut r).await;
    }
    // A soak run alone prints its own table, not the default ones (they would be all NaN).
    let soak_only = args.only.iter().all(|p| p == "soak") && !args.only.is_empty();
    if !soak_only {
        table(&mut r, args);
        control_table(&mut r);
    }
    // Only when asked for, after the default rows (which it leaves as they are).
    if args.only.iter().any(|p| p == "joblist") {
        joblist::run(args, &mut r).await;
    }
    // Only when asked for: two more federations, one serving metrics and boards.
    if args.only.iter().any(|p| p == "observe") {
        observe::run(args, &mut r).await;
    }
    // Only when asked for: it takes an hour by default.
    if args.only.iter().any(|p| p == "soak") {
        soak::run(args, &mut r).await;
    }
    r
}

fn table(r: &mut Results, args: &Args) {
    let s = |r: &mut Results, name: &'static str| r.samples(name).clone();
    let first = s(r, "latency.submit_to_first_running_all");
    r.row(
        "submit -> first task running on all 3 parties, p50 / p99",
        "<= 25 ms / <= 100 ms",
        format!(
            "{:.1} ms / {:.1} ms",
            first.quantile(0.5),
            first.quantile(0.99)
        ),
        "1.47 s (2 parties)",
        Some(first.quantile(0.5) <= 25.0 && first.quantile(0.99) <= 100.0),
    );
    median_row(r, "latency.dag_edge", "DAG edge, p50", 15, "1.77 s");
    median_row(
        r,
        "latency.scheduling_overhead_per_job",
        "scheduling overhead per 3-task job, p50",
        75,
        "4.0 s per 2-task job",
    );
    let value = |r: &Results, k: &str| r.values.get(k).copied().unwrap_or(f64::NAN);
    let jobs = args.throughput_jobs;
    let instant = value(r, "throughput.instant.jobs_per_s");
    let process = value(r, "throughput.process.round1.jobs_per_s");
    for (figure, rate, decimals, min, fate) in [
        (
            "throughput, control-plane engine",
            instant,
            0,
            200,
            "~0.5 job starts/s by design",
        ),
        ("throughput, process workers", process, 1, 20, "-"),
    ] {
        r.row(
            figure,
            &format!(">= {min} jobs/s"),
            format!("{rate:.decimals$} jobs/s ({jobs} jobs)"),
            fate,
            Some(rate >= f64::from(min)),
        );
    }
    let idle_max = r
        .values
        .iter()
        .filter(|(k, _)| k.starts_with("footprint.idle_rss_mib."))
        .map(|(_, v)| *v)
        .fold(0.0, f64::max);
    r.row(
        "idle RSS per service (largest)",
        "<= 20 MiB",
        format!("{idle_max:.1} MiB"),
        "106 MiB (one server)",
        Some(idle_max <= 20.0),
    );
    let a1 = value(r, "footprint.total_rss_mib_after_round1");
    let a2 = value(r, "footprint.total_rss_mib_after_round2");
    r.row(
        "RSS after 2nd throughput run vs after 1st",
        "within 10%",
        format!("{a2:.1} vs {a1:.1} MiB ({:+.1}%)", (a2 - a1) / a1 * 100.0),
        "-",
        Some((a2 - a1).abs() <= a1 * 0.10),
    );
    let cpu = value(r, "footprint.cpu_seconds_per_job.round1");
    r.row(
        "service CPU per job (all 12 services)",
        "-",
        format!("{:.1} ms", cpu * 1000.0),
        "-",
        None,
    );
    let empty = s(r, "scale.submit_empty_queue");
    let deep = s(r, "scale.submit_with_deep_queue");
    r.row(
        &format!("submit p99 with {} queued jobs vs empty", args.queued_jobs),
        "<= 2 x empty-queue p99",
        format!(
            "{:.1} ms vs {:.1} ms",
            deep.quantile(0.99),
            empty.quantile(0.99)
        ),
        "-",
        Some(deep.quantile(0.99) <= 2.0 * empty.quantile(0.99)),
    );
    let p3 = s(r, "scale.3_party.submit_to_first_running_all");
    let p8 = s(r, "scale.8_party.submit_to_first_running_all");
    r.row(
        "8-party vs 3-party job: submit -> first running, p50",
        "-",
        format!("{:.1} ms vs {:.1} ms", p8.quantile(0.5), p3.quantile(0.5)),
        "-",
        None,
    );
    if args.runs("dataplane") {
        dataplane_rows(r);
    }
}

/// The control plane's targets, each beside its figure (NaN where its part did not run), and
/// what each job cost in party calls and store statements.
fn control_table(r: &mut Results) {
    let value = |r: &Results, k: &str| r.values.get(k).copied().unwrap_or(f64::NAN);
    let p50 = |r: &mut Results, k: &'static str| r.samples(k).quantile(0.5);
    let row = |r: &mut Results, figure: &str, target: &str, text: String, met: Option<bool>| {
        r.control.push((figure.into(), target.into(), text, met));
    };
    let instant = value(r, "throughput.instant.jobs_per_s");
    row(
        r,
        "throughput, benchmark engine",
        ">= 200 jobs/s",
        format!("{instant:.1} jobs/s"),
        Some(instant >= 200.0),
    );
    let process = value(r, "throughput.process.round1.jobs_per_s");
    row(
        r,
        "throughput, process workers (round 1)",
        ">= 40 jobs/s",
        format!("{process:.1} jobs/s"),
        Some(process >= 40.0),
    );
    let cpu = value(r, "throughput.instant.cpu_seconds_per_job") * 1000.0;
    let cpu_process = value(r, "footprint.cpu_seconds_per_job.round1") * 1000.0;
    row(
        r,
        "service CPU per 3-party 3-task job (benchmark engine)",
        "<= 10 ms",
        format!("{cpu:.1} ms (process workers: {cpu_process:.1} ms)"),
        Some(cpu <= 10.0),
    );
    let first = r.samples("latency.submit_to_first_running_all").clone();
    let (f50, f99) = (first.quantile(0.5), first.quantile(0.99));
    row(
        r,
        "submit -> first task running on all 3 parties, p50 / p99",
        "<= 15 / <= 50 ms",
        format!("{f50:.1} / {f99:.1} ms"),
        Some(f50 <= 15.0 && f99 <= 50.0),
    );
    let edge = p50(r, "latency.dag_edge");
    row(
        r,
        "DAG edge, p50",
        "<= 8 ms",
        format!("{edge:.1} ms"),
        Some(edge <= 8.0),
    );
    let o3 = p50(r, "scale.3_party_of_32.scheduling_overhead");
    let o32 = p50(r, "scale.32_party.scheduling_overhead");
    row(
        r,
        "32-party vs 3-party scheduling overhead per job, p50",
        "<= 4x",
        format!("{:.1}x ({o32:.1} vs {o3:.1} ms)", o32 / o3),
        Some(o32 / o3 <= 4.0),
    );
    let c3 = value(r, "scale.3_party_of_32.cpu_seconds_per_job") * 1000.0;
    let c32 = value(r, "scale.32_party.cpu_seconds_per_job") * 1000.0;
    row(
        r,
        "32-party vs 3-party service CPU per job",
        "-",
        format!("{:.1}x ({c32:.1} vs {c3:.1} ms)", c32 / c3),
        None,
    );
    for (key, figure) in [
        ("throughput.instant", "3-party 3-task job (burst)"),
        (
            "scale.3_party_of_32",
            "3-party 3-task job (32-party federation)",
        ),
        ("scale.32_party", "32-party 3-task job"),
    ] {
        let calls = value(r, &format!("{key}.party_calls_per_job"));
        let statements = value(r, &format!("{key}.statements_per_job"));
        row(
            r,
            &format!("party calls / SQL statements per {figure}"),
            "-",
            format!("{calls:.1} calls, {statements:.1} statements"),
            None,
        );
    }
}

/// The data plane beside its floor, per message size; the target is at 1 MiB.
fn dataplane_rows(r: &mut Results) {
    let value = |r: &Results, k: &str| r.values.get(k).copied().unwrap_or(f64::NAN);
    for (label, size) in [("1kib", "1 KiB"), ("100kib", "100 KiB"), ("1mib", "1 MiB")] {
        let ours = value(r, &format!("dataplane.fedflow.{label}.mb_per_s"));
        let floor = value(r, &format!("dataplane.floor.{label}.mb_per_s"));
        let rate = value(r, &format!("dataplane.fedflow.{label}.messages_per_s"));
        let floor_rate = value(r, &format!("dataplane.floor.{label}.messages_per_s"));
        let ratio = value(r, &format!("dataplane.ratio.{label}"));
        r.row(
            &format!("data plane, {size} messages, host -> guest (floor: bare TLS gRPC)"),
            if label == "1mib" { ">= 50% of the floor's MB/s" } else { "-" },
            format!(
                "{ours:.1} MB/s, {rate:.0} msg/s (floor {floor:.1} MB/s, {floor_rate:.0} msg/s; {:.0}%)",
                ratio * 100.0
            ),
            "-",
            (label == "1mib").then_some(ratio >= 0.5),
        );
    }
}

/// The row of the median of the sample `name` (in ms), met at or below `limit_ms`.
fn median_row(r: &mut Results, name: &'static str, figure: &str, limit_ms: u32, fate: &str) {
    let p50 = r.samples(name).quantile(0.5);
    r.row(
        figure,
        &format!("<= {limit_ms} ms"),
        format!("{p50:.1} ms"),
        fate,
        Some(p50 <= f64::from(limit_ms)),
    );
}
