//! Logs and traces for fedflow's binaries. [`init`] installs a `tracing` subscriber (text or
//! JSON lines on stderr, filtered by `RUST_LOG` or the config) and, when `otlp_endpoint` is
//! set, an OpenTelemetry layer exporting spans over OTLP/gRPC. Export is off by default. Call
//! once per process, inside the tokio runtime; keep the returned guard until exit.
//! [`context`] carries a span's trace context across processes (W3C `traceparent`).
//!
//! The batch exporter sends every `OTEL_BSP_SCHEDULE_DELAY` ms (5000 by default); [`Guard::shutdown`]
//! flushes the rest at exit.

pub mod context;

pub mod metrics;

use fedflow_config::TelemetryConfig;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Flushes and shuts the exporter down when dropped.
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Guard {
    /// Flushes the spans still batched and shuts the exporter down, on a blocking thread
    /// while this task keeps the runtime turning: the OTLP exporter's connection lives on the
    /// runtime, so a flush that blocked it (as [`Drop`] does on a single-threaded runtime)
    /// would wait out its time-out and lose the last spans.
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the global subscriber. A second call (tests, `standalone`) keeps the first.
pub fn init(service: &'static str, config: &TelemetryConfig) -> Guard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.log_filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let provider = (!config.otlp_endpoint.is_empty())
        .then(|| build_provider(service, &config.otlp_endpoint))
        .and_then(|result| match result {
            Ok(provider) => Some(provider),
            Err(e) => {
                eprintln!("{service}: opentelemetry export disabled: {e}");
                None
            }
        });
    if provider.is_some() {
        context::set_exporting();
    }
    let otel = provider
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer(service)));
    // A line that cannot be written (stderr on a full disk) is lost, not reported on the
    // same stderr: that report would panic the thread that logged.
    let json = config.log_json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
    });
    let text = (!config.log_json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .log_internal_errors(false)
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(otel)
        .with(json)
        .with(text)
        .try_init();
    Guard { provider }
}

fn build_provider(
    service: &'static str,
    endpoint: &str,
) -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    use opentelemetry_otlp::WithExportConfig;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}
