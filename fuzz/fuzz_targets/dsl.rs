//! `fedflow_core::dsl::parse` on any input: it must return, never panic or overflow the stack.
//!
//! The input is split at its first 0xFF byte (which never occurs in UTF-8) into the DSL and the
//! runtime conf; without one, it is cut in half. Both are read as lossy UTF-8, as a gRPC string
//! would arrive. The seeds in `fuzz/corpus/dsl` are `dsl 0xFF conf` pairs.

#![no_main]

use fedflow_core::dsl::{Limits, parse};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (dsl, conf) = match data.iter().position(|b| *b == 0xFF) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => data.split_at(data.len() / 2),
    };
    let dsl = String::from_utf8_lossy(dsl);
    let conf = String::from_utf8_lossy(conf);
    if let Ok(spec) = parse(&dsl, &conf, &Limits::default()) {
        // What the services do with an accepted job must not panic either.
        let _ = spec.priority();
        let _ = spec.downstream_closure(&[spec.components[0].name.clone()]);
        for who in spec.participants() {
            let _ = spec.job_params(&who);
            let _ = spec.task_plans(&who);
        }
    }
});
