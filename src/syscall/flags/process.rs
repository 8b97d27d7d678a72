//! Memory, futex, signal, wait, clock and resource-limit arguments.

use nix::sys::signal::Signal;

use super::{Table, bits, enumerated, lookup};

const RLIMIT: Table = named![
    RLIMIT_CPU,
    RLIMIT_FSIZE,
    RLIMIT_DATA,
    RLIMIT_STACK,
    RLIMIT_CORE,
    RLIMIT_RSS,
    RLIMIT_NPROC,
    RLIMIT_NOFILE,
    RLIMIT_MEMLOCK,
    RLIMIT_AS,
    RLIMIT_LOCKS,
    RLIMIT_SIGPENDING,
    RLIMIT_MSGQUEUE,
    RLIMIT_NICE,
    RLIMIT_RTPRIO,
    RLIMIT_RTTIME,
];
const SIGMASK_HOW: Table = named![SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK];
const PROT: Table = named![
    PROT_READ,
    PROT_WRITE,
    PROT_EXEC,
    PROT_GROWSDOWN,
    PROT_GROWSUP
];
const MAP_TYPE: Table = named![MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_DROPPABLE];
const MAP: Table = named![
    MAP_FIXED,
    MAP_ANONYMOUS,
    MAP_32BIT,
    MAP_NORESERVE,
    MAP_POPULATE,
    MAP_NONBLOCK,
    MAP_GROWSDOWN,
    MAP_DENYWRITE,
    MAP_EXECUTABLE,
    MAP_LOCKED,
    MAP_STACK,
    MAP_HUGETLB,
    MAP_SYNC,
    MAP_FIXED_NOREPLACE,
];
const FUTEX: Table = named![
    FUTEX_WAIT,
    FUTEX_WAKE,
    FUTEX_FD,
    FUTEX_REQUEUE,
    FUTEX_CMP_REQUEUE,
    FUTEX_WAKE_OP,
    FUTEX_LOCK_PI,
    FUTEX_UNLOCK_PI,
    FUTEX_TRYLOCK_PI,
    FUTEX_WAIT_BITSET,
    FUTEX_WAKE_BITSET,
    FUTEX_WAIT_REQUEUE_PI,
    FUTEX_CMP_REQUEUE_PI,
    FUTEX_LOCK_PI2,
];
const MADV: Table = named![
    MADV_NORMAL,
    MADV_RANDOM,
    MADV_SEQUENTIAL,
    MADV_WILLNEED,
    MADV_DONTNEED,
    MADV_FREE,
    MADV_REMOVE,
    MADV_DONTFORK,
    MADV_DOFORK,
    MADV_MERGEABLE,
    MADV_UNMERGEABLE,
    MADV_HUGEPAGE,
    MADV_NOHUGEPAGE,
    MADV_DONTDUMP,
    MADV_DODUMP,
    MADV_WIPEONFORK,
    MADV_KEEPONFORK,
    MADV_COLD,
    MADV_PAGEOUT,
    MADV_HWPOISON,
    MADV_POPULATE_READ,
    MADV_POPULATE_WRITE,
];
const CLOCK: Table = named![
    CLOCK_REALTIME,
    CLOCK_MONOTONIC,
    CLOCK_PROCESS_CPUTIME_ID,
    CLOCK_THREAD_CPUTIME_ID,
    CLOCK_MONOTONIC_RAW,
    CLOCK_REALTIME_COARSE,
    CLOCK_MONOTONIC_COARSE,
    CLOCK_BOOTTIME,
    CLOCK_REALTIME_ALARM,
    CLOCK_BOOTTIME_ALARM,
    CLOCK_TAI,
];
const TIMER: Table = named![TIMER_ABSTIME];
const MREMAP: Table = named![MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP];
const GRND: Table = named![GRND_NONBLOCK, GRND_RANDOM, GRND_INSECURE];
const WAIT: Table = named![
    WNOHANG,
    WUNTRACED,
    WEXITED,
    WCONTINUED,
    WNOWAIT,
    __WNOTHREAD,
    __WALL,
    __WCLONE,
];

pub(in crate::syscall) fn prot(v: u32) -> String {
    if v == libc::PROT_NONE as u32 {
        "PROT_NONE".to_string()
    } else {
        bits(v, PROT, None)
    }
}

/// mmap flags: the mapping type, the flags, then a huge page size as strace
/// writes it (`21<<MAP_HUGE_SHIFT`).
pub(in crate::syscall) fn map(v: u32) -> String {
    let kind = v & libc::MAP_TYPE as u32;
    let shift = libc::MAP_HUGE_SHIFT as u32;
    let huge = (v >> shift) & libc::MAP_HUGE_MASK as u32;
    let rest = v & !kind & !((libc::MAP_HUGE_MASK as u32) << shift);
    let kind_name = lookup(kind, MAP_TYPE).map_or_else(|| format!("{kind:#x}"), str::to_string);
    let mut out = bits(rest, MAP, Some(kind_name));
    if huge != 0 {
        out.push_str(&format!("|{huge}<<MAP_HUGE_SHIFT"));
    }
    out
}

/// futex operations: "FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME".
pub(in crate::syscall) fn futex_op(v: u32) -> String {
    let cmd = v & libc::FUTEX_CMD_MASK as u32;
    let Some(name) = lookup(cmd, FUTEX) else {
        return format!("{v:#x}");
    };
    let private = if v & libc::FUTEX_PRIVATE_FLAG as u32 != 0 {
        "_PRIVATE"
    } else {
        ""
    };
    let clock = if v & libc::FUTEX_CLOCK_REALTIME as u32 != 0 {
        "|FUTEX_CLOCK_REALTIME"
    } else {
        ""
    };
    format!("{name}{private}{clock}")
}

/// futex's command without the private and clock bits.
pub(in crate::syscall) fn futex_cmd(v: u32) -> i32 {
    (v & libc::FUTEX_CMD_MASK as u32) as i32
}

/// A signal number as strace names it: "SIGTERM", "SIGRTMIN", "SIGRT_3";
/// 0 and out-of-range numbers in decimal.
pub(in crate::syscall) fn signal(v: u32) -> String {
    let sig = v as i32;
    // The kernel's real-time signals start at 32 (glibc's SIGRTMIN is
    // higher: it keeps two for itself); strace counts from the kernel's.
    let rt_min = libc::SIGSYS + 1;
    let rt_max = libc::SIGRTMAX();
    match Signal::try_from(sig) {
        Ok(signal) => signal.as_str().to_string(),
        Err(_) if sig == rt_min => "SIGRTMIN".to_string(),
        Err(_) if sig > rt_min && sig <= rt_max => format!("SIGRT_{}", sig - rt_min),
        Err(_) => sig.to_string(),
    }
}

pub(in crate::syscall) fn madvise(v: u32) -> String {
    enumerated(v, MADV)
}

pub(in crate::syscall) fn clock(v: u32) -> String {
    enumerated(v, CLOCK)
}

pub(in crate::syscall) fn timer(v: u32) -> String {
    bits(v, TIMER, None)
}

pub(in crate::syscall) fn mremap(v: u32) -> String {
    bits(v, MREMAP, None)
}

pub(in crate::syscall) fn getrandom(v: u32) -> String {
    bits(v, GRND, None)
}

pub(in crate::syscall) fn wait(v: u32) -> String {
    bits(v, WAIT, None)
}

/// futex's bitset (val3): strace names the match-everything mask.
pub(in crate::syscall) fn futex_bitset(v: u32) -> String {
    if v == libc::FUTEX_BITSET_MATCH_ANY as u32 {
        "FUTEX_BITSET_MATCH_ANY".to_string()
    } else {
        format!("{v:#x}")
    }
}

/// rt_sigprocmask's `how`: "SIG_BLOCK".
pub(in crate::syscall) fn sigmask_how(v: u32) -> String {
    enumerated(v, SIGMASK_HOW)
}

pub(in crate::syscall) fn rlimit(v: u32) -> String {
    enumerated(v, RLIMIT)
}
