//! The gateway's Prometheus metrics (`fedflow_gateway_…`): party calls this party's services
//! sent through it (count by result, latency) and those other parties' gateways brought,
//! and the data plane's messages and bytes by direction and its refusals by OSX code.
//!
//! Labels are bounded: a method is one of the party calls (`fedflow_rpc::calls::ALL`, else
//! `other`), a party one of the route table or this party (else `other`), a code a gRPC code
//! or an OSX code. Job, session and request ids never become labels.

use fedflow_telemetry::metrics::{Counter, Family, HistogramFamily, Metrics as Registry};

type Call = [(&'static str, String); 4];
type CallLatency = [(&'static str, String); 3];
type ByDirection = [(&'static str, String); 1];
type ByCode = [(&'static str, String); 1];

/// Where the data-plane messages counted went.
#[derive(Debug, Clone, Copy)]
pub enum Direction {
    /// A component of this party pushed it (to this party or another).
    Push,
    /// A component of this party popped it.
    Pop,
    /// Sent to another party's gateway (a push for that party).
    Sent,
    /// Another party's gateway delivered it here.
    Received,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Push => "push",
            Direction::Pop => "pop",
            Direction::Sent => "sent",
            Direction::Received => "received",
        }
    }
}

#[derive(Clone)]
pub struct Metrics {
    party_id: String,
    parties: Vec<String>,
    calls_sent: Family<Call, Counter>,
    call_seconds: HistogramFamily<CallLatency>,
    calls_received: Family<Call, Counter>,
    messages: Family<ByDirection, Counter>,
    bytes: Family<ByDirection, Counter>,
    refusals: Family<ByCode, Counter>,
}

impl Metrics {
    /// `parties`: the route table's parties (with this one, the values a party label takes).
    pub fn register(registry: &Registry, party_id: &str, parties: Vec<String>) -> Metrics {
        let metrics = Metrics {
            party_id: party_id.to_owned(),
            parties,
            calls_sent: Family::default(),
            call_seconds: fedflow_telemetry::metrics::seconds_family(),
            calls_received: Family::default(),
            messages: Family::default(),
            bytes: Family::default(),
            refusals: Family::default(),
        };
        registry.register(
            "fedflow_gateway_party_calls",
            "Party calls this party's services sent through the gateway, by service, method, destination party and gRPC code.",
            metrics.calls_sent.clone(),
        );
        registry.register(
            "fedflow_gateway_party_call_duration_seconds",
            "Latency of the party calls this party's services sent, by service, method and destination party.",
            metrics.call_seconds.clone(),
        );
        registry.register(
            "fedflow_gateway_party_calls_received",
            "Party calls other parties' gateways brought to this party, by service, method, source party and gRPC code.",
            metrics.calls_received.clone(),
        );
        registry.register(
            "fedflow_gateway_data_plane_messages",
            "Data-plane messages, by direction: push and pop (this party's components), sent and received (other parties' gateways).",
            metrics.messages.clone(),
        );
        registry.register(
            "fedflow_gateway_data_plane_bytes",
            "Data-plane payload bytes, by direction (as for fedflow_gateway_data_plane_messages).",
            metrics.bytes.clone(),
        );
        registry.register(
            "fedflow_gateway_data_plane_refusals",
            "Data-plane calls answered with an OSX error code (a refusal, a pop that timed out, an empty peek), by code.",
            metrics.refusals.clone(),
        );
        // Every direction and code from the start, so rates and absences read right.
        for direction in [
            Direction::Push,
            Direction::Pop,
            Direction::Sent,
            Direction::Received,
        ] {
            let labels = [("direction", direction.as_str().to_owned())];
            let _ = metrics.messages.get_or_create(&labels);
            let _ = metrics.bytes.get_or_create(&labels);
        }
        for code in crate::transfer::CODES {
            let _ = metrics
                .refusals
                .get_or_create(&[("code", (*code).to_owned())]);
        }
        metrics
    }

    fn party(&self, party: &str) -> String {
        if party == self.party_id || self.parties.iter().any(|p| p == party) {
            party.to_owned()
        } else {
            "other".to_owned()
        }
    }

    /// (short service name, method) of a party call, `other` for anything else.
    fn call(service: &str, method: &str) -> (String, String) {
        if fedflow_rpc::calls::ALL.contains(&(service, method)) {
            let short = service.rsplit('.').next().unwrap_or(service);
            (short.to_owned(), method.to_owned())
        } else {
            ("other".to_owned(), "other".to_owned())
        }
    }

    /// A party call this party's services sent to `dest` ended with `code` after `seconds`.
    pub fn sent(&self, service: &str, method: &str, dest: &str, code: tonic::Code, seconds: f64) {
        let (service, method) = Metrics::call(service, method);
        let party = self.party(dest);
        self.calls_sent
            .get_or_create(&[
                ("service", service.clone()),
                ("method", method.clone()),
                ("party", party.clone()),
                ("code", format!("{code:?}")),
            ])
            .inc();
        self.call_seconds
            .get_or_create(&[("service", service), ("method", method), ("party", party)])
            .observe(seconds);
    }

    /// A party call from `src` (another party's gateway) was answered with `code`.
    pub fn received(&self, service: &str, method: &str, src: &str, code: tonic::Code) {
        let (service, method) = Metrics::call(service, method);
        self.calls_received
            .get_or_create(&[
                ("service", service),
                ("method", method),
                ("party", self.party(src)),
                ("code", format!("{code:?}")),
            ])
            .inc();
    }

    /// A data-plane message of `bytes` moved in `direction`.
    pub fn message(&self, direction: Direction, bytes: usize) {
        let labels = [("direction", direction.as_str().to_owned())];
        self.messages.get_or_create(&labels).inc();
        self.bytes.get_or_create(&labels).inc_by(bytes as u64);
    }

    /// A data-plane call was answered with the OSX error `code`.
    pub fn refused(&self, code: &'static str) {
        self.refusals
            .get_or_create(&[("code", code.to_owned())])
            .inc();
    }
}
