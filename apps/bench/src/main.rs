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
    /// board: the same jobs with them off and on) and `soak` (S29: jobs paced over an hour
    /// with faults injected, memory, descriptors and stores sampled) run only when named.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// Soak: how long the jobs are paced over, in seconds.
    #[arg(long, env = "FEDFLOW_SOAK_SECS", default_value_t = 3600)]
    pub soak_secs: u64,
    /// Soak: how many jobs, submitted evenly over `--soak-secs`.
    #[arg(long, env = "FEDFLOW_SOAK_JOBS", default_value_t = 10_000)]
    pub soak_jobs: usize,
    /// Soak: seconds between samples (default 60, or 10 for runs under 30 minutes).
    #[arg(long, env = "FEDFLOW_SOAK_SAMPLE_SECS")]
    pub soak_sample_secs: Option<u64>,
    /// Soak: the share of jobs given a fault, in percent.
    #[arg(long, env = "FEDFLOW_SOAK_FAULT_PERCENT", default_value_t = 10)]
    pub soak_fault_percent: u32,
    /// Soak: every gateway also drops this many replies per thousand of the calls other
    /// parties make (`faults.drop_reply_per_mille`), so they are delivered again; 0: none.
    #[arg(long, env = "FEDFLOW_SOAK_DROP_REPLY_PER_MILLE", default_value_t = 0)]
    pub soak_drop_reply_per_mille: u32,
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
