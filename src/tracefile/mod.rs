//! The trace file (`utrace.data`): self-contained, versioned, crash-safe.
//!
//! Layout, all integers little-endian:
//!
//! ```text
//! preamble   magic "\x89utrace\n", format version u16, 2 reserved bytes
//! frame H    header: utrace version, clock, command, pid, start times
//! frame T    module and function table (zstd): per function its module,
//!            names, flags, PLT library (format 3), source `file:line`
//!            (format 4), address and size; then (format 5) the `-A`/`-R`
//!            specs of the functions that have them (values.rs)
//! frame C…   chunks of up to 65,536 events each (zstd), see chunk.rs,
//!            and a frame T again whenever the table grew (dlopen, exec):
//!            whole, ids unchanged; the last intact one is the table
//! frame E    trailer: end time, lost events, counts (fixed size, last)
//! ```
//!
//! Every frame has a 28-byte header with its own CRC-32 and a CRC-32 of its
//! payload (frame.rs). Header and table are written and flushed before the
//! first event, and each chunk goes to the file as soon as it fills, so if the
//! recorder dies every chunk already written stays readable: the reader
//! reports the missing trailer as truncation, skips a damaged chunk with a
//! count of what it lost, and never holds more than one chunk in memory.

mod chunk;
mod frame;
mod fuzz;
mod meta;
mod reader;
mod values;
mod varint;
mod writer;

#[cfg(test)]
pub(crate) mod tests;

use std::io;
use std::path::PathBuf;

pub use fuzz::fuzz_one;
pub use meta::{CLOCK, Header, Trailer};
pub use reader::{Events, ReadStatus, TraceReader};
pub use writer::{TraceWriter, Written};

/// The format this build writes, and the newest it reads (older ones read
/// as they were written). 2: frames T may follow events (version 1 readers
/// would drop those functions' names). 3: a function may carry the library
/// its PLT stub binds to (flag `FN_LIBRARY` in meta.rs; version 2 readers
/// would misread the table), which `--libname` shows, and chunks may hold
/// end markers (calls left by an exception or a longjmp, threads that ended).
/// 4: a function may carry where it is defined (flag `FN_SOURCE`; version 3
/// readers would misread the table), which the JSON report and `--srcline`
/// show; chunks may hold system calls (`--syscalls`), in a column version 3
/// readers would take for damage; an `I` frame holds the `--io` table.
/// 5: the table ends with the `-A`/`-R` specs (a version 4 table ends after
/// its functions: no specs) and chunks may hold `Args` and `Retval` markers,
/// with what was read in a values column after the syscall column, which
/// version 4 readers would take for damage.
pub const FORMAT_VERSION: u16 = 5;

/// Why a trace file cannot be read at all. Damage after the function table is
/// not an error: the reader skips it and says so in its [`ReadStatus`].
#[derive(Debug, thiserror::Error)]
pub enum TraceFileError {
    #[error("{path}: no such file (record one with `utrace --record -c COMMAND`)")]
    Missing { path: PathBuf },
    #[error("{path} is a directory, not a trace file")]
    IsADirectory { path: PathBuf },
    #[error("{path} is empty: the recording stopped before it wrote anything")]
    Empty { path: PathBuf },
    #[error("{path} is not a utrace trace file")]
    NotATraceFile { path: PathBuf },
    #[error(
        "{path} is in trace format version {found}, newer than this utrace reads (up to {supported}): use a newer utrace"
    )]
    NewerVersion {
        path: PathBuf,
        found: u16,
        supported: u16,
    },
    #[error("{path} is damaged: {what}")]
    Corrupt { path: PathBuf, what: String },
    #[error("reading {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}
