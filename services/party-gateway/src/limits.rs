//! The gateway's size limits, one place for both ports and for its clients of other parties'
//! gateways. A payload passes through undecoded, so the limit is on the whole envelope; the
//! services behind the gateway keep their own, smaller limits per call.

/// The largest message either port takes or sends.
pub const MAX_MESSAGE: usize = 64 << 20;
