//! What every fedflow endpoint, server or client, sets on its HTTP/2 connections.

/// The largest HTTP/2 frame a fedflow endpoint accepts (`SETTINGS_MAX_FRAME_SIZE`): 1 MiB
/// instead of HTTP/2's default 16 KiB, so that a 1 MiB data-plane message crosses a
/// connection as one DATA frame instead of 64, each with its own header, flow-control
/// accounting and trip through the connection's write loop (BENCHMARKS.md, "The data
/// plane"). A peer that keeps the default still receives frames of at most 16 KiB.
pub const HTTP2_MAX_FRAME: u32 = 1 << 20;
