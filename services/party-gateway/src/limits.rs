//! The gateway's size limits, shared by both ports and by its clients of other gateways.

/// The largest message either port takes or sends.
pub const MAX_MESSAGE: usize = 64 << 20;
