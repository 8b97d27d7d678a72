//! The BPF↔Rust interface as Rust sees it: the skeleton libbpf-cargo
//! generates from bpf/utrace.bpf.c, and the types and constants of
//! bpf/utrace.h it carries. Nothing here is typed twice: a change in the
//! header is a compile error here, never a silent mismatch.

#[allow(clippy::all, unsafe_op_in_unsafe_fn, dead_code, unused_imports)]
mod skel {
    include!(concat!(env!("OUT_DIR"), "/utrace.skel.rs"));
}

pub(crate) use skel::types::{
    batch_head as RawHead, cookie_bits, copy_kind, drop_kind, event as RawEvent,
    event_flags as RawFlags, event_kind as RawKind, exit_sites_state, func_counts as BpfCounts,
    helper_kind, io_counts as BpfIo, io_dir, io_limits, record_kind as RawRecord,
    syscall_counts as SyscallCounts, syscall_event as RawSyscall, syscall_flags as SysFlags,
    syscall_key as SyscallKey, syscall_limits, syscall_spec as SyscallSpec, utrace_limits,
    utrace_signal, value_flags, value_limits, value_slot as RawValueSlot, value_source,
    value_spec as RawValueSpec, values_event as RawValues,
};

use crate::symbols::libc::Helper;
pub(crate) use skel::{UtraceSkel, UtraceSkelBuilder};

/// How far past a function's first byte BPF looks for its entry probe:
/// as far as symbols moves it, checked when this builds.
const ENTRY_SLACK: u64 = utrace_limits::ENTRY_SLACK.0 as u64;
const _: () = assert!(ENTRY_SLACK == crate::symbols::placement::ENTRY_MOVE_MAX);

/// `--max-depth` is capped here: an event's depth field is 16 bits.
pub const MAX_SENT_DEPTH: u32 = utrace_limits::MAX_SENT_DEPTH.0;

/// Functions numbered after load that counting mode counts in BPF.
pub const LATE_COUNTS_MAX: u32 = utrace_limits::LATE_COUNTS_MAX.0;

/// Functions numbered after load whose values (-A/-R) BPF can read.
pub const LATE_VALUES_MAX: u32 = utrace_limits::LATE_VALUES_MAX.0;

/// Frames BPF keeps per thread: counting mode gets the calls deeper than
/// this as events.
pub const MAX_FRAMES: u32 = utrace_limits::MAX_FRAMES.0;

/// Entry cookie flag: the function's exit is probed at its ret sites.
pub const COOKIE_RET_SITE: u64 = 1 << cookie_bits::COOKIE_RET_SITE_BIT.0;

/// Entry cookie flag: a short call, which may use the hijacks BPF keeps
/// above the budget of the others (`SHORT_BUDGET`).
pub const COOKIE_SHORT: u64 = 1 << cookie_bits::COOKIE_SHORT_BIT.0;

// One hijack kept above the budget per level a short call may nest.
const _: () = assert!(
    utrace_limits::SHORT_BUDGET.0 - utrace_limits::HIJACK_BUDGET.0
        == crate::symbols::SHORT_HEIGHT as u32 + 1
);

/// Entry cookie flag: probed at a call to the function (a PLT stub).
pub const COOKIE_AT_CALL: u64 = 1 << cookie_bits::COOKIE_AT_CALL_BIT.0;

/// Ret-site cookie flag: the site is a tail jump (no return value yet).
pub const COOKIE_TAIL_JUMP: u64 = 1 << cookie_bits::COOKIE_TAIL_JUMP_BIT.0;

/// Ret-site cookie flag: a conditional jump, whose condition code sits at
/// [`COOKIE_CC_SHIFT`]; BPF ignores it when the jump is not taken.
pub const COOKIE_JCC: u64 = 1 << cookie_bits::COOKIE_JCC_BIT.0;

/// Where a conditional ret site's condition code (4 bits) sits in its cookie.
pub const COOKIE_CC_SHIFT: u32 = cookie_bits::COOKIE_CC_SHIFT.0;

/// Ret-site cookie flag: a jump through a register, whose number (4 bits)
/// sits at [`COOKIE_REG_SHIFT`]; BPF keeps where it jumped.
pub const COOKIE_JMP_REG: u64 = 1 << cookie_bits::COOKIE_JMP_REG_BIT.0;
pub const COOKIE_REG_SHIFT: u32 = cookie_bits::COOKIE_REG_SHIFT.0;

/// Ret-site cookie flag: a tail jump to a traced function whose return is
/// seen at the same slot; the frame ends with that call.
pub const COOKIE_CHAIN: u64 = 1 << cookie_bits::COOKIE_CHAIN_BIT.0;
/// Entry cookie flag at a call to a stub: its caller's exit ends it.
pub const COOKIE_WITH_CALLER: u64 = 1 << cookie_bits::COOKIE_WITH_CALLER_BIT.0;

/// Ret-site cookie flag: a branch into an epilogue, whose `ret` is the
/// stack slots at [`COOKIE_SLOTS_SHIFT`] (8 bits) above.
pub const COOKIE_EARLY: u64 = 1 << cookie_bits::COOKIE_EARLY_BIT.0;
pub const COOKIE_SLOTS_SHIFT: u32 = cookie_bits::COOKIE_SLOTS_SHIFT.0;
/// Ret-site cookie flag: a call returning into the epilogue, whose `ret`
/// is the slots at [`COOKIE_SLOTS_SHIFT`] above the return address.
pub const COOKIE_INTO_RET: u64 = 1 << cookie_bits::COOKIE_INTO_RET_BIT.0;

/// `exit_sites` map values: the ret sites BPF asked for are attached, and
/// the `ret`s of calls that could not chain (EV_NEED_RETS) are.
pub const EXITS_ATTACHED: u8 = exit_sites_state::EXITS_ATTACHED.0 as u8;
pub const EXITS_RETS_ATTACHED: u8 = exit_sites_state::EXITS_RETS_ATTACHED.0 as u8;

/// Values BPF reads per entry or return (`-A`/`-R`).
pub const VALUES_MAX: usize = value_limits::VALUES_MAX.0 as usize;

// The plan caps a function's values at the same number.
const _: () = assert!(VALUES_MAX == crate::values::VALUES_MAX);

/// Bytes BPF copies per string value.
pub const VALUE_STR_MAX: usize = value_limits::VALUE_STR_MAX.0 as usize;

/// The types of bpf/utrace.h that Rust reads out of map values and
/// ring-buffer records, or writes into maps.
///
/// # Safety
/// An implementor is a plain `repr(C)` struct of integers (arrays of them
/// included) with no implicit padding (utrace.h pads by hand): every bit
/// pattern of its size is a valid value, and every byte is initialised.
pub(crate) unsafe trait Plain: Copy {}

// SAFETY: all generated from utrace.h's structs of __u8/__u16/__u32/__u64/__s64.
unsafe impl Plain for RawHead {}
// SAFETY: as above.
unsafe impl Plain for RawEvent {}
// SAFETY: as above.
unsafe impl Plain for RawSyscall {}
// SAFETY: as above.
unsafe impl Plain for BpfCounts {}
// SAFETY: as above.
unsafe impl Plain for BpfIo {}
// SAFETY: as above.
unsafe impl Plain for SyscallCounts {}
// SAFETY: as above.
unsafe impl Plain for SyscallKey {}
// SAFETY: as above.
unsafe impl Plain for RawValues {}
// SAFETY: as above.
unsafe impl Plain for SyscallSpec {}
// SAFETY: as above.
unsafe impl Plain for RawValueSpec {}

/// The start of `bytes` as a `T`; `None` when they are too short for one.
pub(crate) fn read_plain<T: Plain>(bytes: &[u8]) -> Option<T> {
    // SAFETY: the length is checked, T is valid for any bytes (Plain), and
    // read_unaligned needs no alignment.
    (bytes.len() >= std::mem::size_of::<T>())
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast()) })
}

/// `value`'s bytes, as a map update takes them.
pub(crate) fn plain_bytes<T: Plain>(value: &T) -> &[u8] {
    // SAFETY: T has no padding (Plain), so all size_of::<T>() bytes behind
    // the reference are initialised, and they live as long as it does.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

/// The caller BPF names for a system call made outside every traced call.
pub const SYS_NO_CALLER: u32 = syscall_limits::SYS_NO_CALLER.0;

/// The owner BPF names for the devices' traffic the program did not cause.
pub const IO_OTHER: u32 = io_limits::IO_OTHER.0;

/// Entries of BPF's per-number syscall table.
pub const SYSCALL_SLOTS: u32 = syscall_limits::SYSCALL_SLOTS.0;

/// The attach cookie of a helper probe (`enum helper_kind`).
pub fn helper_cookie(helper: Helper) -> u64 {
    let kind = match helper {
        Helper::UnwindStart => helper_kind::HELPER_UNWIND_START,
        Helper::Catch => helper_kind::HELPER_CATCH,
        Helper::Freed => helper_kind::HELPER_FREED,
        Helper::Longjmp => helper_kind::HELPER_LONGJMP,
    };
    u64::from(kind.0)
}

// What BPF copies and the numbers it has room for are what the syscall
// table expects.
const _: () = assert!(syscall_limits::COPY_MAX.0 as usize == crate::syscall::COPY_MAX);
const _: () = assert!(crate::syscall::TABLE_SIZE <= syscall_limits::SYSCALL_SLOTS.0);

// bpf_send_signal() takes a bare number; it must be the one libc means.
const _: () = assert!(utrace_signal::UTRACE_SIGSTOP.0 as i32 == libc::SIGSTOP);

/// What BPF could not deliver in a run, by cause (`enum drop_kind`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drops {
    /// Events dropped because the ring buffer was full.
    pub ring_full: u64,
    /// Calls of threads whose BPF state could not be created.
    pub no_state: u64,
    /// Calls nested deeper than BPF's frames that a time filter left out.
    pub unfiltered: u64,
    /// Counting mode: calls of functions numbered after load that found no
    /// room in BPF's table of them.
    pub uncounted: u64,
    /// Library calls deeper than BPF's frames that only their caller's
    /// exit would have ended.
    pub too_deep: u64,
}

impl Drops {
    pub fn total(&self) -> u64 {
        self.ring_full + self.no_state + self.unfiltered + self.uncounted + self.too_deep
    }

    /// Adds one CPU's counter of kind `kind`.
    pub(crate) fn add(&mut self, kind: u32, n: u64) {
        match drop_kind(kind) {
            drop_kind::DROP_RINGBUF => self.ring_full += n,
            drop_kind::DROP_NOSTATE => self.no_state += n,
            drop_kind::DROP_UNFILTERED => self.unfiltered += n,
            drop_kind::DROP_UNCOUNTED => self.uncounted += n,
            drop_kind::DROP_TOO_DEEP => self.too_deep += n,
            _ => {}
        }
    }

    /// The kinds, for reading the per-CPU counters.
    pub(crate) fn kinds() -> std::ops::Range<u32> {
        0..drop_kind::DROP_KINDS.0
    }
}
