//! Trace context across processes: the W3C `traceparent`/`tracestate` of a span written into a
//! string map (an envelope's `trace_context`, gRPC metadata, an environment variable) and read
//! back as a span's parent, so one job's spans on every service and party share one trace.
//!
//! Everything here is a no-op unless this process exports spans ([`exporting`]): with no
//! OpenTelemetry layer span contexts are invalid, and nothing is injected or remembered.
//! [`jobs`] keeps, per process, the context each job was first seen with, so work on a job
//! that starts from a timer, a queue or an outbox joins the job's trace rather than a new one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header (and map key) that carries a span's trace id and span id.
pub const TRACEPARENT: &str = "traceparent";
/// The W3C header (and map key) that carries vendor trace state.
pub const TRACESTATE: &str = "tracestate";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether this process exports spans (an OTLP endpoint is configured and the layer installed).
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

/// The context of `span` as W3C fields, or an empty map when the span has no valid context.
pub fn of_span(span: &tracing::Span) -> HashMap<String, String> {
    let mut carrier = HashMap::new();
    inject(span, &mut carrier);
    carrier
}

/// Writes `span`'s context into `carrier` (`traceparent`, and `tracestate` when not empty).
/// Nothing when this process does not export or the span has no valid context.
pub fn inject(span: &tracing::Span, carrier: &mut HashMap<String, String>) {
    if !exporting() || span.is_disabled() {
        return;
    }
    let cx = span.context();
    if !cx.span().span_context().is_valid() {
        return;
    }
    TraceContextPropagator::new().inject_context(&cx, carrier);
}

/// The `traceparent` of `span`, when it has a valid context (to store with a job).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    of_span(span).remove(TRACEPARENT)
}

/// The remote context `carrier` holds, if it holds a valid one.
fn extract(carrier: &HashMap<String, String>) -> Option<opentelemetry::Context> {
    if !exporting() || !carrier.contains_key(TRACEPARENT) {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(carrier);
    cx.span().span_context().is_valid().then_some(cx)
}

/// Makes the context in `carrier` the parent of `span` (created, not yet entered). False (and
/// `span` unchanged) when the carrier holds no valid context.
pub fn set_parent(span: &tracing::Span, carrier: &HashMap<String, String>) -> bool {
    match extract(carrier) {
        Some(cx) => span.set_parent(cx).is_ok(),
        None => false,
    }
}

/// A carrier holding only `traceparent` (a stored one, an environment variable).
pub fn carrier(traceparent: &str) -> HashMap<String, String> {
    HashMap::from([(TRACEPARENT.to_owned(), traceparent.to_owned())])
}

/// The trace id of the context in `carrier`, if valid.
fn trace_id(carrier: &HashMap<String, String>) -> Option<opentelemetry::trace::TraceId> {
    extract(carrier).map(|cx| cx.span().span_context().trace_id())
}

/// Puts `span` (created, not yet entered) in job `job_id`'s trace: when the current span is
/// already in it, `span` stays its child; otherwise its parent becomes the job's remembered
/// context ([`jobs`]). Without a remembered context `span` stays as it is.
pub fn join_job(span: &tracing::Span, job_id: &str) {
    if !exporting() || span.is_disabled() || job_id.is_empty() {
        return;
    }
    let Some(job) = jobs::get(job_id) else {
        return;
    };
    let current = tracing::Span::current().context();
    let current = current.span().span_context().clone();
    if current.is_valid() && Some(current.trace_id()) == trace_id(&job) {
        return;
    }
    set_parent(span, &job);
}

/// Each job's trace context in this process: the context the job was first seen with (its
/// root span at the scheduler that created it, the first call about it elsewhere). Bounded:
/// past [`jobs::CAPACITY`] entries the oldest half is forgotten (those jobs' later spans then
/// start traces of their own until a call brings the context again).
pub mod jobs {
    use std::collections::{HashMap, VecDeque};
    use std::sync::{LazyLock, Mutex, PoisonError};

    /// How many jobs' contexts a process keeps.
    pub const CAPACITY: usize = 100_000;

    #[derive(Default)]
    struct Known {
        contexts: HashMap<String, HashMap<String, String>>,
        order: VecDeque<String>,
    }

    static KNOWN: LazyLock<Mutex<Known>> = LazyLock::new(Mutex::default);

    /// Remembers `carrier` as job `job_id`'s context unless one is known already. Nothing when
    /// the process does not export or the carrier holds no traceparent.
    pub fn remember(job_id: &str, carrier: &HashMap<String, String>) {
        if !super::exporting() || job_id.is_empty() || !carrier.contains_key(super::TRACEPARENT) {
            return;
        }
        let mut known = KNOWN.lock().unwrap_or_else(PoisonError::into_inner);
        if known.contexts.contains_key(job_id) {
            return;
        }
        if known.order.len() >= CAPACITY {
            for _ in 0..CAPACITY / 2 {
                if let Some(old) = known.order.pop_front() {
                    known.contexts.remove(&old);
                }
            }
        }
        // Only the W3C fields: a carrier from another party may hold anything else.
        let kept = [super::TRACEPARENT, super::TRACESTATE]
            .into_iter()
            .filter_map(|key| Some((key.to_owned(), carrier.get(key)?.clone())))
            .collect();
        known.order.push_back(job_id.to_owned());
        known.contexts.insert(job_id.to_owned(), kept);
    }

    /// Job `job_id`'s remembered context.
    pub fn get(job_id: &str) -> Option<HashMap<String, String>> {
        if !super::exporting() {
            return None;
        }
        KNOWN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contexts
            .get(job_id)
            .cloned()
    }

    /// Job `job_id`'s remembered `traceparent` (for a worker's environment).
    pub fn traceparent(job_id: &str) -> Option<String> {
        get(job_id).and_then(|mut c| c.remove(super::TRACEPARENT))
    }
}

#[cfg(test)]
mod tests {
    use opentelemetry::trace::TracerProvider as _;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    /// The map is the type of `Envelope.trace_context` and `DeliverRequest.trace_context`.
    fn a_context_injected_into_a_map_comes_back_as_the_parent_of_a_new_span() {
        set_exporting();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let sender = tracing::info_span!("sender");
            let mut envelope = HashMap::new();
            inject(&sender, &mut envelope);
            let sent = sender.context().span().span_context().clone();
            let header = envelope.get(TRACEPARENT).expect("a traceparent");
            assert_eq!(
                header,
                &format!("00-{}-{}-01", sent.trace_id(), sent.span_id())
            );

            let receiver = tracing::info_span!(parent: None, "receiver");
            assert!(set_parent(&receiver, &envelope));
            let received = receiver.context().span().span_context().clone();
            assert_eq!(received.trace_id(), sent.trace_id());
            assert_ne!(received.span_id(), sent.span_id());

            assert!(!set_parent(&tracing::info_span!("orphan"), &HashMap::new()));
            assert!(!set_parent(
                &tracing::info_span!("garbage"),
                &carrier("00-not-a-context-01")
            ));
        });
    }

    #[test]
    fn a_span_made_under_another_trace_joins_its_jobs_trace() {
        set_exporting();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let root = tracing::info_span!(parent: None, "job");
            jobs::remember("job-join", &of_span(&root));
            let job_trace = root.context().span().span_context().trace_id();
            let trace_of = |span: &tracing::Span| span.context().span().span_context().trace_id();

            let timer = tracing::info_span!(parent: None, "a timer pass");
            assert_ne!(trace_of(&timer), job_trace);
            let _in_timer = timer.enter();
            let call = tracing::info_span!("party call");
            join_job(&call, "job-join");
            assert_eq!(trace_of(&call), job_trace, "the call joins the job's trace");

            let unknown = tracing::info_span!("party call");
            join_job(&unknown, "job-never-seen");
            assert_eq!(
                trace_of(&unknown),
                trace_of(&timer),
                "without a remembered context the span stays where it is"
            );
        });
    }

    #[test]
    fn a_job_remembers_the_first_context_it_was_seen_with() {
        set_exporting();
        let first = carrier("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
        let second = carrier("00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01");
        jobs::remember("job-remember", &first);
        jobs::remember("job-remember", &second);
        assert_eq!(jobs::get("job-remember"), Some(first));
        jobs::remember("job-none", &HashMap::new());
        assert_eq!(jobs::get("job-none"), None);
    }
}
