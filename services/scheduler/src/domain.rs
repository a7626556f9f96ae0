//! The scheduler's pure rules: what happens next to a running job ([`plan`]), what the queue
//! does with a waiting one ([`queue`]), and which task versions a submit, a rerun or a retry
//! creates ([`versions`]), what an end asks of the parties ([`end`]); the rows themselves
//! and the effects of a status change ([`model`]). No I/O and no clocks: every function takes `now` and the rows it
//! needs and returns decisions; `app` applies them with compare-and-sets and performs their
//! effects. Every reason text the decisions carry is the one users and tests see.

pub mod end;
pub mod model;
pub mod plan;
pub mod queue;
pub mod versions;

pub use model::{Job, Task, TaskParty};

#[cfg(test)]
mod tests;
