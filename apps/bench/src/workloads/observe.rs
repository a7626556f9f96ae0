//! Workload 10 (only with `--only observe`): what metrics and the board cost. The same jobs
//! run on two 3-party federations of real processes: one as every other workload runs them,
//! one where every service serves its Prometheus endpoint and every scheduler its board but
//! nothing reads them (the cost of keeping the metrics), and one where a scraper also reads all
//! twelve endpoints and party 9999's job list and queue pages once a second while the jobs run
//! (Prometheus's usual interval is 15 s: this is the harsh case). Recorded per federation: the
//! sequential 3-task jobs' scheduling overhead and first-task latency, and the services' CPU
//! per job over a burst.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use fedflow_tests::process::{ProcessFederation, ProcessOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::footprint::total_cpu;
use super::jobs::{burst, chain3, conf3, timed_chain};
use super::{PARTIES3, start_with};
use crate::Args;
use crate::measure::Results;

/// Jobs in each burst (at most; fewer when `--throughput-jobs` says so).
const BURST: usize = 500;

pub(super) async fn run(args: &Args, r: &mut Results) {
    let sequential = args.latency_jobs;
    let jobs = args.throughput_jobs.min(BURST);
    for (mode, observe, read) in [
        ("off", false, false),
        ("kept", true, false),
        ("on", true, true),
    ] {
        eprintln!(
            "fedflow-bench: metrics and board {mode} ({sequential} sequential jobs, a burst of {jobs})"
        );
        let options = ProcessOptions {
            cores: 1_000_000,
            log: "info",
            observe,
            ..ProcessOptions::default()
        };
        let (fed, observer, mut client) = start_with(&PARTIES3, options).await;
        let stop = CancellationToken::new();
        let scrapes = Arc::new(AtomicU64::new(0));
        let scraper = read.then(|| tokio::spawn(scrape(&fed, stop.clone(), scrapes.clone())));
        let (overhead, first) = match mode {
            "off" => (
                "observe.off.scheduling_overhead",
                "observe.off.first_running",
            ),
            "kept" => (
                "observe.kept.scheduling_overhead",
                "observe.kept.first_running",
            ),
            _ => ("observe.on.scheduling_overhead", "observe.on.first_running"),
        };
        for _ in 0..sequential {
            let l = timed_chain(&mut client, &observer, &conf3(), 3).await;
            r.samples(overhead).push_ms(l.overhead);
            r.samples(first).push_ms(l.first_running);
        }
        let cpu_before = total_cpu(&fed);
        let (rate, ok) = burst(&client, &observer, jobs, &chain3(), &conf3()).await;
        let cpu = total_cpu(&fed) - cpu_before;
        stop.cancel();
        if let Some(scraper) = scraper {
            scraper.await.expect("the scraper ends");
        }
        r.values.insert(
            format!("observe.{mode}.cpu_ms_per_job"),
            cpu * 1000.0 / jobs as f64,
        );
        r.values.insert(format!("observe.{mode}.jobs_per_s"), rate);
        r.values
            .insert(format!("observe.{mode}.succeeded"), ok as f64);
        if read {
            r.values.insert(
                "observe.on.scrapes".into(),
                scrapes.load(Ordering::Relaxed) as f64,
            );
        }
    }
    let value = |r: &Results, k: &str| r.values.get(k).copied().unwrap_or(f64::NAN);
    let p50 = |r: &Results, mode: &str, key: &str| {
        r.samples
            .get(format!("observe.{mode}.{key}").as_str())
            .map_or(f64::NAN, |s| s.quantile(0.5))
    };
    let beside = |on: f64, kept: f64, off: f64| {
        format!(
            "read {on:.1} / kept {kept:.1} / off {off:.1} ms ({:+.1}% / {:+.1}%)",
            (on - off) / off * 100.0,
            (kept - off) / off * 100.0
        )
    };
    for (figure, key) in [
        (
            "metrics + board: scheduling overhead per 3-task job, p50",
            "scheduling_overhead",
        ),
        (
            "metrics + board: submit -> first task running, p50",
            "first_running",
        ),
    ] {
        let text = beside(p50(r, "on", key), p50(r, "kept", key), p50(r, "off", key));
        r.row(figure, "on ~ off", text, "-", None);
    }
    let text = beside(
        value(r, "observe.on.cpu_ms_per_job"),
        value(r, "observe.kept.cpu_ms_per_job"),
        value(r, "observe.off.cpu_ms_per_job"),
    );
    r.row(
        &format!("metrics + board: service CPU per job ({jobs}-job burst)"),
        "on ~ off",
        format!("{text}, {} reads", value(r, "observe.on.scrapes")),
        "-",
        None,
    );
}
/// Reads every metrics endpoint and party 9999's job list and queue pages once a second until
/// told to stop; counts the reads that answered 200. A read that fails is a broken endpoint:
/// the benchmark stops saying which.
fn scrape(
    fed: &ProcessFederation,
    stop: CancellationToken,
    count: Arc<AtomicU64>,
) -> impl Future<Output = ()> + use<> {
    let mut targets: Vec<(String, &'static str)> = fed
        .parties
        .iter()
        .flat_map(|p| p.metrics.values().map(|a| (a.clone(), "/metrics")))
        .collect();
    if let Some(board) = &fed.party("9999").board {
        targets.push((board.clone(), "/jobs"));
        targets.push((board.clone(), "/queue"));
    }
    async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            for (addr, path) in &targets {
                match get(addr, path).await {
                    Ok(()) => {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => panic!("GET http://{addr}{path}: {e}"),
                }
            }
        }
    }
}

/// One HTTP/1.1 GET; Ok when it answers 200 with a body.
async fn get(addr: &str, path: &str) -> Result<(), String> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| e.to_string())?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| e.to_string())?;
    let mut reply = Vec::new();
    stream
        .read_to_end(&mut reply)
        .await
        .map_err(|e| e.to_string())?;
    let head = String::from_utf8_lossy(&reply[..reply.len().min(64)]).into_owned();
    if head.starts_with("HTTP/1.1 200") && reply.len() > 100 {
        Ok(())
    } else {
        Err(format!("answered {head:?} ({} bytes)", reply.len()))
    }
}
