//! Replay protection for envelopes from other parties. Every envelope carries a request id, an
//! issue time and an expiry. The receiver refuses an expired envelope, one issued further in
//! the future than its clock-skew tolerance (a distinct error: the clocks disagree), one that
//! lives longer than allowed, and a request id the same party already used for a different
//! call. The same call again (a retry, or a captured copy) is answered with the first answer
//! and is not executed again, as long as the first envelope could still be valid; after that
//! it is expired.

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use fedflow_proto::gateway::v1 as pb;

use crate::error::Refusal;

/// Answers larger than this are not kept; a repeat of such a call (reads, in practice) is
/// executed again, which the services' request-id idempotency makes harmless.
const MAX_KEPT_ANSWER: usize = 64 << 10;

pub struct ReplayGuard {
    max_skew_ms: i64,
    max_lifetime_ms: i64,
    seen: Mutex<Seen>,
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
        }
    }

    /// The checks on the envelope's own times, at `now_ms` by this gateway's clock.
    pub fn check_times(&self, envelope: &pb::Envelope, now_ms: i64) -> Result<(), Refusal> {
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
        if ahead > self.max_skew_ms {
            return Err(Refusal::FailedPrecondition(format!(
                "clock skew: envelope {} from party {from} was issued {ahead} ms in the future by this gateway's clock (tolerance {} ms); check the clocks (NTP) of both parties",
                envelope.request_id, self.max_skew_ms
            )));
        }
        let lifetime = envelope.deadline_unix_ms - envelope.issued_at_unix_ms;
        if lifetime > self.max_lifetime_ms || lifetime < 0 {
            return Err(Refusal::InvalidArgument(format!(
                "envelope {} from party {from} lives {lifetime} ms (issue to expiry); at most {} ms is accepted",
                envelope.request_id, self.max_lifetime_ms
            )));
        }
        let late = now_ms - envelope.deadline_unix_ms;
        if late > 0 {
            return Err(Refusal::DeadlineExceeded(format!(
                "envelope {} from party {from} expired {late} ms ago by this gateway's clock; not executed (if this keeps happening, compare the two parties' clocks)",
                envelope.request_id
            )));
        }
        Ok(())
    }

    /// Records the call, or answers a repeat of it. `Err` for a request id already used for
    /// a different call, or while the first copy is still executing.
    pub fn admit(&self, envelope: &pb::Envelope, now_ms: i64) -> Result<Admission<'_>, Refusal> {
        let key = format!("{}\u{0}{}", envelope.src_party_id, envelope.request_id);
        let digest = digest(envelope);
        let keep_until_ms = envelope.deadline_unix_ms.saturating_add(self.max_skew_ms);
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
    fn expired_future_and_long_lived_envelopes_are_refused_distinctly() {
        let guard = ReplayGuard::new(1_000, 10_000);
        let now = 1_000_000;
        let e = envelope("r", b"a", now);
        let expired = guard.check_times(&e, now + 1_001).expect_err("expired");
        assert_eq!(expired.code(), Code::DeadlineExceeded);
        let future = envelope("r", b"a", now + 5_000);
        let skew = guard.check_times(&future, now).expect_err("skew");
        assert_eq!(skew.code(), Code::FailedPrecondition);
        assert!(skew.to_string().contains("clock skew"), "{skew}");
        let mut long = envelope("r", b"a", now);
        long.deadline_unix_ms = now + 20_000;
        let lived = guard.check_times(&long, now).expect_err("too long");
        assert_eq!(lived.code(), Code::InvalidArgument);
        guard
            .check_times(&envelope("r", b"a", now + 500), now)
            .expect("within tolerance");
    }
}
