//! Prometheus metrics: one [`Metrics`] handle per endpoint (a service binary has one;
//! `fedflow standalone` has one per party, shared by that party's four services), each service
//! registering its own `fedflow_<service>_…` families on it, and [`serve`], the HTTP endpoint
//! answering `GET /metrics` in the OpenMetrics text format.
//!
//! No global registry: several parties run in one process. Names follow Prometheus's
//! conventions (base units, `_seconds`, `_bytes`; prometheus-client appends `_total` to
//! counters) and labels stay low-cardinality: methods, parties, statuses, codes — never a job
//! or task id. [`ProcessCollector`] adds the standard `process_*` metrics read from
//! `/proc/self` at scrape time (Linux; elsewhere it reports nothing).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::{Metric, Registry};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use prometheus_client::metrics::counter::Counter;
pub use prometheus_client::metrics::family::Family;
pub use prometheus_client::metrics::gauge::Gauge;
pub use prometheus_client::metrics::histogram::Histogram;

/// A gauge holding an `f64` (ages, seconds).
pub type FloatGauge = Gauge<f64, std::sync::atomic::AtomicU64>;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A registry that services add their metrics to; cheap to clone (all clones are one registry).
#[derive(Clone, Default)]
pub struct Metrics {
    registry: Arc<Mutex<Registry>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// An empty registry: what a service gets when nothing serves its metrics (tests).
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// A registry for one endpoint, with the process metrics already in it.
    pub fn for_endpoint() -> Metrics {
        let metrics = Metrics::default();
        metrics.register_collector(Box::new(ProcessCollector));
        metrics
    }

    /// Adds `metric` as `name` (a counter's `_total` is appended by the encoder).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        self.registry.lock().register(name, help, metric);
    }

    /// Adds a collector, asked for its metrics at every scrape.
    pub fn register_collector(&self, collector: Box<dyn Collector>) {
        self.registry.lock().register_collector(collector);
    }

    /// Every metric, in the OpenMetrics text format (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut text = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut text, &self.registry.lock())
        {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        text
    }
}

/// A histogram of durations in seconds, 0.5 ms to about 2 min.
pub fn seconds_histogram() -> Histogram {
    Histogram::new([
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
        60.0, 120.0,
    ])
}

/// A histogram of durations in seconds for long things (task run times, queue waits): 10 ms to
/// about 3 h.
pub fn long_seconds_histogram() -> Histogram {
    Histogram::new([
        0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 10800.0,
    ])
}

/// A family of [`seconds_histogram`]s by label set.
pub type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// A [`HistogramFamily`] with [`seconds_histogram`] buckets.
pub fn seconds_family<L>() -> HistogramFamily<L>
where
    L: Clone + std::hash::Hash + Eq,
{
    Family::new_with_constructor(seconds_histogram)
}

/// Serves `GET /metrics` on `listener` until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    metrics: Metrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use axum::http::header::CONTENT_TYPE as HEADER;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let metrics = metrics.clone();
            async move { ([(HEADER, CONTENT_TYPE)], metrics.encode()) }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

/// The standard `process_*` metrics of this process, read from `/proc/self` when scraped:
/// `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_virtual_memory_bytes`, `process_open_fds`, `process_max_fds`,
/// `process_start_time_seconds`.
#[derive(Debug)]
pub struct ProcessCollector;

/// What `/proc/self` says, at one moment.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ProcessStats {
    pub cpu_seconds: f64,
    pub resident_memory_bytes: u64,
    pub virtual_memory_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
    pub start_time_seconds: f64,
}

/// Linux's `USER_HZ`, the unit of `/proc/<pid>/stat` times: 100 on every architecture Linux
/// exports to user space.
const CLOCK_TICKS: f64 = 100.0;

impl ProcessStats {
    /// Reads `/proc/self`; None where there is no procfs.
    pub fn read() -> Option<ProcessStats> {
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let boot = std::fs::read_to_string("/proc/stat").ok()?;
        let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        ProcessStats::parse(&stat, &status, &boot, &limits, open_fds)
    }

    /// Parses the texts of `/proc/self/stat`, `/proc/self/status`, `/proc/stat` and
    /// `/proc/self/limits`.
    pub fn parse(
        stat: &str,
        status: &str,
        boot: &str,
        limits: &str,
        open_fds: u64,
    ) -> Option<ProcessStats> {
        // The command name (field 2) is in parentheses and may hold spaces: split after it.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        // Field 3 (state) is fields[0]; utime is field 14, stime 15, starttime 22.
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        let cpu_seconds = (field(14)? + field(15)?) / CLOCK_TICKS;
        let btime = boot
            .lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<f64>().ok())?;
        let start_time_seconds = btime + field(22)? / CLOCK_TICKS;
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<u64>().ok())
                .map(|v| v * 1024)
        };
        let max_fds = limits
            .lines()
            .find_map(|l| l.strip_prefix("Max open files"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        Some(ProcessStats {
            cpu_seconds,
            resident_memory_bytes: kb("VmRSS:").unwrap_or(0),
            virtual_memory_bytes: kb("VmSize:").unwrap_or(0),
            open_fds,
            max_fds,
            start_time_seconds,
        })
    }
}

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(stats) = ProcessStats::read() else {
            return Ok(());
        };
        let counter = ConstCounter::new(stats.cpu_seconds);
        counter.encode(encoder.encode_descriptor(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds.",
            None,
            counter.metric_type(),
        )?)?;
        let gauges: [(&str, &str, f64); 5] = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes.",
                stats.resident_memory_bytes as f64,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes.",
                stats.virtual_memory_bytes as f64,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors.",
                stats.open_fds as f64,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors.",
                stats.max_fds as f64,
            ),
            (
                "process_start_time_seconds",
                "Start time of the process since unix epoch in seconds.",
                stats.start_time_seconds,
            ),
        ];
        for (name, help, value) in gauges {
            let gauge = ConstGauge::new(value);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

/// Seconds since the Unix epoch, for ages computed at scrape time.
pub fn unix_seconds() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs_f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAT: &str = "4242 (fedflow (x) y) S 1 4242 4242 0 -1 4194560 2000 0 0 0 250 50 0 0 20 0 9 0 12345 1000000 500 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0";

    #[test]
    fn process_stats_are_parsed_from_proc_texts() {
        let stats = ProcessStats::parse(
            STAT,
            "Name:\tfedflow\nVmSize:\t  2048 kB\nVmRSS:\t  1024 kB\n",
            "cpu  1 2 3\nbtime 1700000000\n",
            "Limit                     Soft Limit           Hard Limit           Units\nMax open files            1024                 4096                 files\n",
            7,
        )
        .expect("parses");
        assert_eq!(
            stats,
            ProcessStats {
                cpu_seconds: 3.0,
                resident_memory_bytes: 1024 * 1024,
                virtual_memory_bytes: 2048 * 1024,
                open_fds: 7,
                max_fds: 1024,
                start_time_seconds: 1_700_000_123.45,
            }
        );
    }

    #[test]
    fn process_metrics_have_the_standard_names_and_plausible_values() {
        let metrics = Metrics::for_endpoint();
        let text = metrics.encode();
        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .unwrap_or_else(|| panic!("{name} missing in:\n{text}"))
                .parse()
                .unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        assert!(
            text.contains("# TYPE process_cpu_seconds counter"),
            "{text}"
        );
        assert!(value("process_cpu_seconds_total") >= 0.0);
        assert!(value("process_resident_memory_bytes") > 1e5);
        assert!(value("process_open_fds") >= 3.0);
        assert!(value("process_max_fds") >= value("process_open_fds"));
        let start = value("process_start_time_seconds");
        assert!(
            start > 1e9 && start <= unix_seconds() + 1.0,
            "start time {start}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn counters_get_total_and_labels_are_encoded() {
        let metrics = Metrics::new();
        let calls = Family::<[(&'static str, String); 1], Counter>::default();
        metrics.register("fedflow_test_calls", "Calls.", calls.clone());
        calls.get_or_create(&[("method", "Ping".to_owned())]).inc();
        let text = metrics.encode();
        assert!(
            text.contains("fedflow_test_calls_total{method=\"Ping\"} 1"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn the_endpoint_serves_the_registry() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let metrics = Metrics::for_endpoint();
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(listener, metrics, stop.clone()));
        let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.expect("read");
        assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
        assert!(reply.contains(CONTENT_TYPE), "{reply}");
        assert!(reply.contains("process_open_fds"), "{reply}");
        stop.cancel();
        server.await.expect("join").expect("served");
    }
}
