//! Function arguments and return values (`-A`/`-R`): where BPF finds each
//! value at a probe, per the x86-64 SysV ABI, how it is shown, and what a
//! probe read. The specs come from DWARF types (symbols/params.rs) or from
//! the user's register list (spec.rs); they travel in the function table,
//! so a report formats values without the binary.

use std::sync::Arc;

mod show;
pub mod spec;

pub use show::{show_args, show_ret, with_args};
pub use spec::VALUES_MAX;

/// Where BPF reads a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    /// An integer argument register by position: rdi, rsi, rdx, rcx, r8, r9
    /// (0–5).
    Reg(u8),
    /// At entry, this many bytes above the return address: the stack
    /// arguments (the first is at 8).
    Stack(u16),
    /// At return: rax (0), or rdx (1) for a value's second eightbyte.
    Ret(u8),
    /// An SSE register, xmm0–7. BPF cannot read these (a probe's pt_regs
    /// holds no vector registers): shown marked, never guessed.
    Sse(u8),
    /// Passed by value in memory the ABI does not locate for us (a large
    /// struct, x87 `long double`): shown as `{...}`.
    Memory,
}

/// How a value's bytes are shown.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Format {
    /// Sign-extended from this many bytes (1, 2, 4, 8).
    Signed(u8),
    Unsigned(u8),
    Hex(u8),
    Bool,
    /// One byte as a quoted character.
    Char,
    /// Shown by enumerator name, or the number when it has none.
    Enum {
        size: u8,
        names: Vec<(i64, String)>,
    },
    Pointer,
    /// A NUL-terminated string: the probe copies up to `VALUE_STR_MAX`
    /// bytes (bpf/utrace.h) and marks a longer one cut.
    Str,
    /// Floating point of this many bytes (in an SSE register or memory).
    Float(u8),
    /// A struct, union or class passed by value.
    Aggregate,
}

/// One argument or return value to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueSpec {
    /// Its name from debug info; `None` for a register the user named.
    pub name: Option<String>,
    pub slot: Slot,
    pub format: Format,
}

/// What is read at a function's entry and its return.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FuncValues {
    pub args: Vec<ValueSpec>,
    pub ret: Option<ValueSpec>,
}

/// What a probe read for one spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// The register or stack word.
    Word(u64),
    /// A string argument: the pointer and the bytes copied from it (`None`
    /// when it could not be read), `cut` when it went on past the copy.
    Text {
        addr: u64,
        bytes: Option<Vec<u8>>,
        cut: bool,
    },
    /// Not read: an SSE register, memory, a stack word that could not be
    /// read, or a return seen at a tail jump (before the value exists).
    Missing,
}

/// The values of one call's entry or return, in its spec's order. Shared:
/// the raw event, the paired call and a sink may all hold it.
pub type Values = Arc<[Value]>;
