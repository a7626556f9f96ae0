//! `fedflow-bench`: starts federations of real service processes on localhost (durable SQLite
//! stores, debug logging off), runs the workloads of BENCHMARKS.md and prints min / p50 / p99 /
//! max per figure beside FATE-Flow's, and writes them as JSON.
//!
//! Timings come from one stream of every status change (`WatchJob` with no job id), stamped on
//! arrival here, so no polling distorts them.

mod measure;
mod parse;
mod workloads;

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser, Clone)]
#[command(about = "fedflow benchmark (see BENCHMARKS.md)")]
pub struct Args {
    /// Tiny sizes: checks the benchmark runs (the test suite uses it).
    #[arg(long)]
    pub smoke: bool,
    /// Sequential 3-task jobs for the latency figures.
    #[arg(long, default_value_t = 100)]
    pub latency_jobs: usize,
    /// Jobs submitted at once for the throughput figures.
    #[arg(long, default_value_t = 2000)]
    pub throughput_jobs: usize,
    /// Jobs waiting in the queue for the scale figure.
    #[arg(long, default_value_t = 10_000)]
    pub queued_jobs: usize,
    /// Times each hostile (and legitimate) submission is parsed for the parse figures.
    #[arg(long, default_value_t = 20)]
    pub parse_runs: usize,
    /// Run only these parts (latency, throughput, instant, queue, parties, dataplane, parse);
    /// default all. `fate` (the FATE demo job; needs FEDFLOW_FATE_PYTHON) and `joblist`
    /// (ListJobs among 100,000 stored jobs) and `observe` (the cost of metrics and the
    /// board: the same jobs with them off and on) run only when named.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Where the JSON results go.
    #[arg(long, default_value = "bench-results.json")]
    pub json: PathBuf,
}

impl Args {
    pub fn runs(&self, part: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|p| p == part)
    }
}

#[tokio::main]
async fn main() {
    let mut args = Args::parse();
    if args.smoke {
        args.latency_jobs = 3;
        args.throughput_jobs = 12;
        args.queued_jobs = 20;
        args.parse_runs = 1;
    }
    let mut results = workloads::run(&args).await;
    if args.runs("parse") {
        parse::run(&args, &mut results);
    }
    measure::print_table(&results);
    let json = serde_json::to_string_pretty(&results.to_json()).expect("results serialise");
    if let Err(e) = std::fs::write(&args.json, json) {
        eprintln!("fedflow-bench: cannot write {}: {e}", args.json.display());
        std::process::exit(1);
    }
    println!("\nresults written to {}", args.json.display());
}
