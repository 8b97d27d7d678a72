//! utrace's integration tests: real fixture programs (tests/fixtures, built by
//! the tests), real BPF programs and uprobes, exact call counts and exact
//! normalised call graphs. One module per area.

mod common;

#[path = "integration/attach.rs"]
mod attach;
#[path = "integration/cli_errors.rs"]
mod cli_errors;
#[path = "integration/completions.rs"]
mod completions;
#[path = "integration/counting.rs"]
mod counting;
#[path = "integration/debuginfo.rs"]
mod debuginfo;
#[path = "integration/exits.rs"]
mod exits;
#[path = "integration/io.rs"]
mod io;
#[path = "integration/layering.rs"]
mod layering;
#[path = "integration/live.rs"]
mod live;
#[path = "integration/moved.rs"]
mod moved;
#[path = "integration/option_modes.rs"]
mod option_modes;
#[path = "integration/options.rs"]
mod options;
#[path = "integration/record.rs"]
mod record;
#[path = "integration/report_filters.rs"]
mod report_filters;
#[path = "integration/robust.rs"]
mod robust;
#[path = "integration/syscalls.rs"]
mod syscalls;
#[path = "integration/terminal.rs"]
mod terminal;
#[path = "integration/values.rs"]
mod values;
