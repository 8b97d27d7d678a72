//! utrace: a user-space function tracer on eBPF uprobe_multi links.
//!
//! The flow, one module per stage: cli → target → symbols → probe → events →
//! callstack → consumers (live, record, aggregate, report).

pub mod aggregate;
pub mod callstack;
pub mod cli;
pub mod events;
pub mod list;
pub mod loader;
pub mod model;
pub mod plan;
pub mod probe;
pub mod ratelimit;
pub mod record;
pub mod report;
pub mod session;
pub mod symbols;
pub mod target;
pub mod tracefile;
