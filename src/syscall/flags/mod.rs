//! Flag and enumeration arguments by name: `O_RDONLY|O_CLOEXEC`, `PROT_READ`,
//! `AF_INET`, `SIGTERM`. Values come from `libc` (the table holds the names
//! next to their constants, never a typed number); the order of each table
//! is strace's (its `src/xlat/*.in`), so combined flags read the same.
//! Bits no table names are printed in hex after the names, as strace does.
//! One file per family: `file` (open, at, fcntl), `process` (memory,
//! futex, signals, clocks), `net` (sockets).

type Table = &'static [(u32, &'static str)];

/// A table of libc constants with their own names.
macro_rules! named {
    ($($name:ident),* $(,)?) => {
        &[$((libc::$name as u32, stringify!($name))),*]
    };
}

// After the macro: textual scope makes it visible in these.
mod file;
mod net;
mod process;

pub(super) use file::*;
pub(super) use net::*;
pub(super) use process::*;

/// The name of `v` in an enumeration.
fn lookup(v: u32, table: Table) -> Option<&'static str> {
    table
        .iter()
        .find(|&&(value, _)| value == v)
        .map(|&(_, name)| name)
}

/// `v`'s flags after `first` (a type or access mode already named), joined
/// by `|`; "0" when there is nothing to print.
fn bits(mut v: u32, table: Table, first: Option<String>) -> String {
    let mut parts: Vec<String> = first.into_iter().collect();
    for &(bit, name) in table {
        if bit != 0 && v & bit == bit {
            parts.push(name.to_string());
            v &= !bit;
        }
    }
    if v != 0 {
        parts.push(format!("{v:#x}"));
    }
    if parts.is_empty() {
        "0".to_string()
    } else {
        parts.join("|")
    }
}

/// An enumeration value by name, else in decimal.
fn enumerated(v: u32, table: Table) -> String {
    lookup(v, table).map_or_else(|| (v as i32).to_string(), str::to_string)
}
