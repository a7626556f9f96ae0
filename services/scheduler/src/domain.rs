//! The scheduler's pure rules: what happens next to a running job ([`plan`]), what the queue
//! does with a waiting one ([`queue`]), and which task versions a submit, a rerun or a retry
//! creates ([`versions`]). No I/O and no clocks: every function takes `now` and the rows it
//! needs and returns decisions; `app` applies them with compare-and-sets and performs their
//! effects. Every reason text the decisions carry is the one users and tests see.

pub mod plan;
pub mod queue;
pub mod versions;

/// The job and task rows the rules read. They are defined with the tables for now; the rules
/// only read them.
pub use crate::store::{Job, Task, TaskParty};

#[cfg(test)]
mod tests;
