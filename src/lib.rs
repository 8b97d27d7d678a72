//! utrace: a user-space function tracer on eBPF uprobe_multi links.
//!
//! The flow, one module per stage, dependencies pointing down it:
//! `cli` → `options` → `target` → `symbols` → `plan` → `bpf` → `session`
//! (with `events` reading the ring buffer) → `replay` (pairing through
//! `callstack`) → the sinks in `report`, or `record` into `tracefile`.
//! `model` and `util` sit at the bottom. See the README's Architecture
//! section.
//!
//! Only what the benches and the fuzzer drive is public; everything else is
//! crate-private, so the compiler reports what nothing uses.

mod aggregate;
mod app;
mod bpf;
mod callstack;
mod cli;
mod events;
mod list;
pub mod model;
pub mod options;
mod plan;
mod ratelimit;
pub mod record;
pub mod replay;
pub mod report;
mod session;
mod symbols;
mod syscall;
mod target;
pub mod tracefile;
mod util;
pub mod values;

pub use app::main;
pub use cli::command;
