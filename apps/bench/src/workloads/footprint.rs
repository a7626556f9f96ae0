//! Footprint: CPU seconds and resident memory of every service process of a federation, and
//! a sampler of their peaks while a workload runs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use fedflow_tests::process::ProcessFederation;
use tokio::sync::Notify;

use crate::measure::{cpu_seconds, rss_mib};

pub(super) fn service_kind(name: &str) -> &str {
    name.split_whitespace().nth(1).unwrap_or(name)
}

pub(super) fn total_cpu(fed: &ProcessFederation) -> f64 {
    fed.services().iter().map(|s| cpu_seconds(s.pid)).sum()
}

pub(super) fn rss_by_kind(fed: &ProcessFederation) -> HashMap<String, f64> {
    let mut by: HashMap<String, f64> = HashMap::new();
    for s in fed.services() {
        let e = by.entry(service_kind(s.name).to_owned()).or_default();
        *e = e.max(rss_mib(s.pid));
    }
    by
}

pub(super) fn total_rss(fed: &ProcessFederation) -> f64 {
    fed.services().iter().map(|s| rss_mib(s.pid)).sum()
}

/// Samples every service's RSS until told to stop; returns the peak per kind of service.
pub(super) fn sample_peaks(
    fed: &ProcessFederation,
    stop: Arc<Notify>,
) -> tokio::task::JoinHandle<HashMap<String, f64>> {
    let services: Vec<(String, u32)> = fed
        .services()
        .iter()
        .map(|s| (service_kind(s.name).to_owned(), s.pid))
        .collect();
    tokio::spawn(async move {
        let mut peaks: HashMap<String, f64> = HashMap::new();
        loop {
            for (kind, pid) in &services {
                let e = peaks.entry(kind.clone()).or_default();
                *e = e.max(rss_mib(*pid));
            }
            tokio::select! {
                _ = stop.notified() => return peaks,
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    })
}
