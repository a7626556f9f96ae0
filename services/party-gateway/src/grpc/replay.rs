//! Replay protection for envelopes from other parties. Every envelope carries a request id, an
//! issue time and an expiry, both by the sender's clock. The receiver refuses an envelope
//! issued further from its own clock, ahead or behind, than its clock-skew tolerance (a
//! distinct error naming both clocks: they disagree), one that lives longer than allowed, one
//! that expired, and a request id the same party already used for a different call. The same
//! call again (a retry, or a captured copy) is answered with the first answer and is not
//! executed again, as long as the first envelope could still be valid; after that it is
//! refused.
//!
//! Clocks of different parties differ. Expiry is judged by the sender's clock: the receiver
//! keeps, per sending party, an estimate of how far that party's clock is ahead of its own
//! (the largest `issued_at − now` of its recent envelopes: transit only lowers it), and an
//! envelope expired when its deadline, moved onto this clock by that offset, has passed. So an
//! envelope from a party 90 s behind is as fresh as one from a party in step, and a captured
//! envelope replayed after its expiry is refused either way. The time left to a call it
//! carries is that local deadline minus now, never more than the envelope's own lifetime.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use fedflow_proto::gateway::v1 as pb;

use crate::error::Refusal;

/// Answers larger than this are not kept; a repeat of such a call (reads, in practice) is
/// executed again, which the services' request-id idempotency makes harmless.
const MAX_KEPT_ANSWER: usize = 64 << 10;

/// The offset of a party's clock is the largest seen over the last one or two windows of this
/// length: a party whose clock steps back is judged by its new clock within two windows.
const CLOCK_WINDOW_MS: i64 = 60_000;

/// An estimated offset smaller than this is taken as none: the estimate (the largest
/// `issued_at − now`) reads every clock in step as behind by its shortest transit, and
/// moving deadlines by that much would let a copy replayed just after its deadline through.
const CLOCK_NOISE_MS: i64 = 1_000;

pub struct ReplayGuard {
    max_skew_ms: i64,
    max_lifetime_ms: i64,
    seen: Mutex<Seen>,
    clocks: Mutex<HashMap<String, PeerClock>>,
}

struct Seen {
    calls: HashMap<String, Call>,
    prune_at: usize,
}

struct Call {
    digest: [u8; 32],
    /// Until when a copy of the envelope could still be valid.
    keep_until_ms: i64,
    state: State,
}

enum State {
    Running,
    Answered(Option<Bytes>),
}

/// How far one party's clock is ahead of this gateway's (negative: behind), as its envelopes
/// show: the largest `issued_at − now` in the current window and in the one before.
struct PeerClock {
    window_start_ms: i64,
    current: i64,
    previous: Option<i64>,
}

impl PeerClock {
    fn observe(&mut self, sample: i64, now_ms: i64) -> i64 {
        let age = now_ms - self.window_start_ms;
        if !(0..CLOCK_WINDOW_MS).contains(&age) {
            self.previous = (0..2 * CLOCK_WINDOW_MS)
                .contains(&age)
                .then_some(self.current);
            self.current = sample;
            self.window_start_ms = now_ms;
        } else {
            self.current = self.current.max(sample);
        }
        self.previous.map_or(self.current, |p| p.max(self.current))
    }
}

/// An envelope that passed [`ReplayGuard::check_times`], in this gateway's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// How far the sender's clock is ahead of this gateway's (negative: behind), estimated.
    pub offset_ms: i64,
    /// The envelope's deadline by this gateway's clock.
    pub deadline_ms: i64,
}

/// What to do with an envelope that passed the checks.
pub enum Admission<'a> {
    /// First time: execute it, then [`Ticket::finish`].
    Execute(Ticket<'a>),
    /// Executed before: this was the answer.
    Answered(Bytes),
}

/// A call being executed. Dropped unfinished (the caller went away, the handler was
/// cancelled), the call is forgotten, so a retry executes it instead of waiting for it forever.
pub struct Ticket<'a> {
    guard: &'a ReplayGuard,
    key: String,
    done: bool,
}

impl Ticket<'_> {
    /// Records the outcome: an answer is kept for repeats; a failed call is forgotten, so a
    /// retry executes again (every service is idempotent by request id).
    pub fn finish<E>(mut self, result: &Result<Bytes, E>) {
        self.done = true;
        let mut seen = self.guard.seen.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(answer) => {
                if let Some(call) = seen.calls.get_mut(&self.key) {
                    // A copy: the answer may be a slice of a much larger receive buffer,
                    // which a kept slice would keep alive.
                    call.state = State::Answered(
                        (answer.len() <= MAX_KEPT_ANSWER).then(|| Bytes::copy_from_slice(answer)),
                    );
                }
            }
            Err(_) => {
                seen.calls.remove(&self.key);
            }
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if !self.done {
            let mut seen = self.guard.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.calls.remove(&self.key);
        }
    }
}

impl ReplayGuard {
    pub fn new(max_skew_ms: u64, max_lifetime_ms: u64) -> ReplayGuard {
        ReplayGuard {
            max_skew_ms: i64::try_from(max_skew_ms).unwrap_or(i64::MAX / 4),
            max_lifetime_ms: i64::try_from(max_lifetime_ms).unwrap_or(i64::MAX / 4),
            seen: Mutex::new(Seen {
                calls: HashMap::new(),
                prune_at: 1024,
            }),
            clocks: Mutex::new(HashMap::new()),
        }
    }

    /// The checks on the envelope's own times, at `now_ms` by this gateway's clock; the
    /// envelope's deadline on this clock when it passes. Call it for authenticated senders only:
    /// their envelopes teach it how far their clock is off.
    pub fn check_times(&self, envelope: &pb::Envelope, now_ms: i64) -> Result<Arrival, Refusal> {
        let from = &envelope.src_party_id;
        if envelope.request_id.is_empty() {
            return Err(Refusal::InvalidArgument(format!(
                "envelope from party {from} has no request_id"
            )));
        }
        if envelope.issued_at_unix_ms <= 0 || envelope.deadline_unix_ms <= 0 {
            return Err(Refusal::InvalidArgument(format!(
                "envelope {} from party {from} lacks issued_at_unix_ms or deadline_unix_ms",
                envelope.request_id
            )));
        }
        let ahead = envelope.issued_at_unix_ms - now_ms;
        if ahead.abs() > self.max_skew_ms {
            let (by, way) = if ahead > 0 {
                (ahead, "ahead of")
            } else {
                (-ahead, "behind")
            };
            return Err(Refusal::FailedPrecondition(format!(
                "clock skew: envelope {} from party {from} was issued at {} (unix ms) by party {from}'s clock, {by} ms {way} this gateway's clock ({now_ms} unix ms, party {}); the tolerance is {} ms either way; check the clocks (NTP) of both parties",
                envelope.request_id,
                envelope.issued_at_unix_ms,
                envelope.dest_party_id,
                self.max_skew_ms
            )));
        }
        let lifetime = envelope.deadline_unix_ms - envelope.issued_at_unix_ms;
        if lifetime > self.max_lifetime_ms || lifetime < 0 {
            return Err(Refusal::InvalidArgument(format!(
                "envelope {} from party {from} lives {lifetime} ms (issue to expiry); at most {} ms is accepted",
                envelope.request_id, self.max_lifetime_ms
            )));
        }
        let offset_ms = {
            let mut clocks = self.clocks.lock().unwrap_or_else(|p| p.into_inner());
            match clocks.get_mut(from.as_str()) {
                Some(clock) => clock.observe(ahead, now_ms),
                None => {
                    clocks.insert(
                        from.clone(),
                        PeerClock {
                            window_start_ms: now_ms,
                            current: ahead,
                            previous: None,
                        },
                    );
                    ahead
                }
            }
        };
        let offset_ms = if offset_ms.abs() < CLOCK_NOISE_MS {
            0
        } else {
            offset_ms
        };
        let deadline_ms = envelope.deadline_unix_ms - offset_ms;
        let late = now_ms - deadline_ms;
        if late > 0 {
            return Err(Refusal::DeadlineExceeded(format!(
                "envelope {} from party {from} expired {late} ms ago (its deadline {} by party {from}'s clock, which is about {offset_ms} ms ahead of this gateway's); not executed",
                envelope.request_id, envelope.deadline_unix_ms
            )));
        }
        Ok(Arrival {
            offset_ms,
            deadline_ms,
        })
    }

    /// Records the call, or answers a repeat of it. `Err` for a request id already used for
    /// a different call, or while the first copy is still executing.
    pub fn admit(&self, envelope: &pb::Envelope, now_ms: i64) -> Result<Admission<'_>, Refusal> {
        let key = format!("{}\u{0}{}", envelope.src_party_id, envelope.request_id);
        let digest = digest(envelope);
        // A copy that arrives later is refused by `check_times` as issued too long ago
        // (`issued_at` and this clock are compared directly there, whatever the estimate).
        let keep_until_ms = envelope.issued_at_unix_ms.saturating_add(self.max_skew_ms);
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.calls.len() >= seen.prune_at {
            seen.calls.retain(|_, call| call.keep_until_ms >= now_ms);
            seen.prune_at = (seen.calls.len() * 2).max(1024);
        }
        if let Some(call) = seen.calls.get_mut(&key) {
            if call.digest != digest {
                return Err(Refusal::AlreadyExists(format!(
                    "request id {} was already used by party {} for a different call; refused (a replayed or altered envelope)",
                    envelope.request_id, envelope.src_party_id
                )));
            }
            call.keep_until_ms = call.keep_until_ms.max(keep_until_ms);
            return match &call.state {
                State::Running => Err(Refusal::Unavailable(format!(
                    "request {} is still executing; try again",
                    envelope.request_id
                ))),
                State::Answered(Some(answer)) => Ok(Admission::Answered(answer.clone())),
                State::Answered(None) => {
                    call.state = State::Running;
                    Ok(Admission::Execute(Ticket {
                        guard: self,
                        key,
                        done: false,
                    }))
                }
            };
        }
        seen.calls.insert(
            key.clone(),
            Call {
                digest,
                keep_until_ms,
                state: State::Running,
            },
        );
        Ok(Admission::Execute(Ticket {
            guard: self,
            key,
            done: false,
        }))
    }
}

/// What identifies a call: everything but its times.
fn digest(envelope: &pb::Envelope) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [
        envelope.src_party_id.as_bytes(),
        envelope.dest_party_id.as_bytes(),
        envelope.job_id.as_bytes(),
        envelope.service.as_bytes(),
        envelope.method.as_bytes(),
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.update(&envelope.payload);
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

#[cfg(test)]
mod tests {
    use fedflow_rpc::error::{Code, ServiceError};

    use super::*;

    fn envelope(request_id: &str, payload: &'static [u8], now: i64) -> pb::Envelope {
        pb::Envelope {
            src_party_id: "10000".into(),
            dest_party_id: "9999".into(),
            job_id: "j1".into(),
            service: "s".into(),
            method: "M".into(),
            request_id: request_id.into(),
            deadline_unix_ms: now + 1_000,
            issued_at_unix_ms: now,
            payload: Bytes::from_static(payload),
            ..Default::default()
        }
    }

    #[test]
    fn a_call_executes_once_and_an_altered_copy_is_refused() {
        let guard = ReplayGuard::new(1_000, 10_000);
        let now = 1_000_000;
        let first = envelope("r1", b"a", now);
        guard.check_times(&first, now).expect("fresh");
        let Ok(Admission::Execute(ticket)) = guard.admit(&first, now) else {
            panic!("a first call executes");
        };
        let again = guard.admit(&first, now).err().expect("still running");
        assert_eq!(again.code(), Code::Unavailable);
        ticket.finish::<Refusal>(&Ok(Bytes::from_static(b"answer")));
        match guard.admit(&first, now) {
            Ok(Admission::Answered(answer)) => assert_eq!(&answer[..], b"answer"),
            _ => panic!("a repeat is answered, not executed"),
        }
        let altered = envelope("r1", b"b", now);
        let refused = guard.admit(&altered, now).err().expect("altered");
        assert_eq!(refused.code(), Code::AlreadyExists);
        // A failed call is forgotten: a retry executes again.
        let second = envelope("r2", b"a", now);
        let Ok(Admission::Execute(ticket)) = guard.admit(&second, now) else {
            panic!("executes");
        };
        ticket.finish::<Refusal>(&Err(Refusal::Unavailable("down".into())));
        let Ok(Admission::Execute(ticket)) = guard.admit(&second, now) else {
            panic!("a failed call executes again");
        };
        // So is one whose execution was abandoned (the handler dropped).
        drop(ticket);
        assert!(matches!(
            guard.admit(&second, now),
            Ok(Admission::Execute(_))
        ));
    }

    #[test]
    fn expired_skewed_and_long_lived_envelopes_are_refused_distinctly() {
        let guard = ReplayGuard::new(10_000, 60_000);
        let now = 1_000_000;
        let e = envelope("r", b"a", now);
        let arrival = guard.check_times(&e, now).expect("fresh");
        assert_eq!(
            arrival,
            Arrival {
                offset_ms: 0,
                deadline_ms: now + 1_000
            }
        );
        let expired = guard.check_times(&e, now + 1_001).expect_err("expired");
        assert_eq!(expired.code(), Code::DeadlineExceeded);
        for (issued, way) in [(now + 10_001, "ahead of"), (now - 10_001, "behind")] {
            let skewed = envelope("r", b"a", issued);
            let refused = guard.check_times(&skewed, now).expect_err("skew");
            assert_eq!(refused.code(), Code::FailedPrecondition);
            let text = refused.to_string();
            assert!(text.starts_with("clock skew"), "{text}");
            assert!(text.contains(&format!("10001 ms {way}")), "{text}");
            assert!(text.contains(&issued.to_string()), "{text}");
            assert!(text.contains(&now.to_string()), "{text}");
        }
        let mut long = envelope("r", b"a", now);
        long.deadline_unix_ms = now + 60_001;
        let lived = guard.check_times(&long, now).expect_err("too long");
        assert_eq!(lived.code(), Code::InvalidArgument);
        guard
            .check_times(&envelope("r", b"a", now + 9_000), now)
            .expect("within tolerance");
    }

    #[test]
    fn a_party_whose_clock_is_off_within_tolerance_is_judged_by_its_own_clock() {
        let guard = ReplayGuard::new(20_000, 60_000);
        let now = 1_000_000;
        // Party 10000's clock is 9 s behind: its envelopes look 9 s old here.
        let behind = envelope("r1", b"a", now - 9_000);
        let arrival = guard.check_times(&behind, now).expect("fresh by its clock");
        assert_eq!(arrival.offset_ms, -9_000);
        assert_eq!(arrival.deadline_ms, now + 1_000, "its full second left");
        // 50 ms of transit on the next one does not move the estimate.
        let next = envelope("r2", b"a", now - 9_000 + 500);
        let arrival = guard.check_times(&next, now + 550).expect("fresh");
        assert_eq!(arrival.offset_ms, -9_000);
        assert_eq!(arrival.deadline_ms, now + 1_500);
        // A copy of the first after its expiry by the sender's clock is refused.
        let late = guard
            .check_times(&behind, now + 1_001)
            .expect_err("expired");
        assert_eq!(late.code(), Code::DeadlineExceeded);
        assert!(late.to_string().contains("-9000 ms ahead"), "{late}");
        // Another party, in step, is judged by its own clock.
        let mut other = envelope("r3", b"a", now);
        other.src_party_id = "10001".into();
        assert_eq!(guard.check_times(&other, now).expect("fresh").offset_ms, 0);
        // The first envelope is remembered as long as a copy could pass: until the skew
        // check refuses it as issued too long ago.
        let Ok(Admission::Execute(ticket)) = guard.admit(&behind, now) else {
            panic!("executes");
        };
        ticket.finish::<Refusal>(&Ok(Bytes::from_static(b"answer")));
        let refused = guard
            .check_times(&behind, now - 9_000 + 20_001)
            .expect_err("issued too long ago");
        assert_eq!(refused.code(), Code::FailedPrecondition);
    }

    #[test]
    fn a_party_clock_stepping_back_is_followed_within_two_windows() {
        let guard = ReplayGuard::new(10_000, 60_000);
        let mut now = 1_000_000;
        let ahead = envelope("r1", b"a", now + 5_000);
        assert_eq!(guard.check_times(&ahead, now).expect("ok").offset_ms, 5_000);
        // The party's clock steps 8 s back: by the old estimate its fresh envelopes look
        // expired, until the windows that saw the old clock have passed.
        now += 1_000;
        let stepped = envelope("r2", b"a", now - 3_000);
        assert_eq!(
            guard
                .check_times(&stepped, now)
                .expect_err("old estimate")
                .code(),
            Code::DeadlineExceeded
        );
        now += 2 * CLOCK_WINDOW_MS;
        let stepped = envelope("r3", b"a", now - 3_000);
        let arrival = guard.check_times(&stepped, now).expect("new clock");
        assert_eq!(arrival.offset_ms, -3_000);
    }
}
