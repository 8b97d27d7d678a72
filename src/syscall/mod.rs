//! x86-64 system calls for the syscall tracing: numbers and names, strace's
//! `-e trace=` sets, which argument memory BPF copies at entry, and
//! strace-style text for arguments and results.
//!
//! Facts come from where they are kept: numbers and names from the `syscalls`
//! crate, errno names from `nix`, flag values from `libc`, and the argument
//! counts and classes from strace's syscallent tables (`classes`).
//!
//! How the text differs from strace, on purpose:
//! * A buffer is shown as its pointer (`read(3, 0x7ffc12345000, 4096)`), never
//!   its contents: BPF copies only what [`copies`] names (paths, socket
//!   addresses, a timespec), so every argument keeps strace's position and
//!   count, and a data buffer is never read. The same holds for structures the
//!   kernel fills in (`pipe2`'s fds, `accept`'s address, `stat`'s buffer).
//! * An error result is the short `-ENOENT`, where strace prints
//!   `-1 ENOENT (No such file or directory)`.
//! * An unknown number is `syscall_999` in decimal; strace (6.1 here, and
//!   7.2) prints `syscall_0x3e7`. [`number`] reads both.
//! * Unknown syscalls show all six arguments in hex, as strace does.
//! * Values strace names but this module does not show in hex or decimal:
//!   ioctl requests (`0x5401`, strace `TCGETS`), clone flags, prctl and
//!   arch_prctl codes, a result that is flags (`fcntl(3, F_GETFL) = 32768`,
//!   strace `= 0x8000 (flags O_RDONLY|O_LARGEFILE)`), an IPv6 scope id (a
//!   number, not `if_nametoindex("lo")`: the interface is the traced host's).
//! * A path is cut at [`COPY_MAX`] bytes and ends `"..."...`; strace reads up
//!   to PATH_MAX.
//! * Sets hold known numbers only: strace traces a number outside its table
//!   under every `-e trace=`, even `none`; here only `all` and a `!` list
//!   take them in.
//!
//! Only x86-64's own numbers: a 32-bit (ia32) task's syscalls arrive with
//! i386 numbers and an x32 task's with bit 30 set, and read as other calls or
//! unknown ones; the tracer has to tell those tasks apart.

mod classes;
mod decode;
mod flags;
mod quote;
mod set;
mod sockaddr;
#[cfg(test)]
mod tests;

use std::borrow::Cow;

use syscalls::x86_64::Sysno;

// Unused, like the rest, until the lead's code calls them; goes with the
// dead_code allow above.
#[allow(unused_imports)]
pub use decode::{copies, format_args};
#[allow(unused_imports)]
pub use set::{CLASSES, Set, SetError};

/// The highest syscall number + 1 (BPF sizes a per-number array by it).
pub const TABLE_SIZE: u32 = Sysno::last() as u32 + 1;

// BPF's per-number arrays are sized by TABLE_SIZE and the Set bitmap holds
// 1024 numbers; the table is indexed from 0.
const _: () = assert!(TABLE_SIZE <= 1024 && Sysno::first() as u32 == 0);

/// The bytes BPF copies at most for one [`Copy`]; a longer string or
/// sockaddr is cut there and marked truncated.
pub const COPY_MAX: usize = 256;

/// Memory an argument points to that BPF copies at syscall entry (before the
/// call can change it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    /// Nothing to copy.
    None,
    /// A NUL-terminated string (a path) at argument `arg`.
    Str { arg: u8 },
    /// `args[len_arg]` bytes at argument `arg` (a sockaddr and its socklen).
    Bytes { arg: u8, len_arg: u8 },
    /// `len` bytes at argument `arg` (a fixed-size structure).
    Fixed { arg: u8, len: u16 },
}

impl Copy {
    /// The argument whose memory is copied.
    pub fn arg(&self) -> Option<u8> {
        match *self {
            Copy::None => None,
            Copy::Str { arg } | Copy::Bytes { arg, .. } | Copy::Fixed { arg, .. } => Some(arg),
        }
    }
}

/// The bytes BPF copied for one [`Copy`], and whether it cut them at its
/// limit ([`COPY_MAX`]). A string's bytes end before its NUL; a NUL inside
/// them ends the string too.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Copied<'a> {
    pub bytes: &'a [u8],
    pub truncated: bool,
}

/// Name of x86-64 syscall `nr`; "syscall_NNN" for an unknown number.
pub fn name(nr: u32) -> Cow<'static, str> {
    match Sysno::new(nr as usize) {
        Some(sysno) => Cow::Borrowed(sysno.name()),
        None => Cow::Owned(format!("syscall_{nr}")),
    }
}

/// Number of a syscall by name; also reads what [`name`] prints for an
/// unknown number ("syscall_999") and strace's hex spelling ("syscall_0x3e7").
pub fn number(name: &str) -> Option<u32> {
    if let Ok(sysno) = name.parse::<Sysno>() {
        return Some(sysno as u32);
    }
    let digits = name.strip_prefix("syscall_")?;
    match digits.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16).ok(),
        None => digits.parse().ok(),
    }
}

/// Whether `ret` is an error (-4095..=-1, the kernel's convention) for this
/// syscall. Calls strace marks never-failing (getpid, umask) have none.
pub fn is_error(nr: u32, ret: i64) -> bool {
    let never_fails = classes::entry(nr).is_some_and(|e| e.flags & classes::NF != 0);
    (-4095..=-1).contains(&ret) && !never_fails
}

/// Bytes moved, for the read/write family, when `ret` ≥ 0; None for every
/// other syscall and for errors.
pub fn bytes(nr: u32, ret: i64) -> Option<u64> {
    use Sysno as S;
    let moves = matches!(
        Sysno::new(nr as usize)?,
        S::read
            | S::write
            | S::pread64
            | S::pwrite64
            | S::readv
            | S::writev
            | S::preadv
            | S::pwritev
            | S::preadv2
            | S::pwritev2
            | S::sendto
            | S::recvfrom
            | S::sendmsg
            | S::recvmsg
            | S::sendfile
            | S::copy_file_range
            | S::splice
            | S::tee
    );
    if moves && ret >= 0 {
        Some(ret as u64)
    } else {
        None
    }
}

/// The result as strace shows it, in short: "3", "-ENOENT", hex for an
/// address ("0x7f2a3c000000"), "?" when the call never returned (None).
pub fn format_result(nr: u32, ret: Option<i64>) -> String {
    let Some(ret) = ret else {
        return "?".to_string();
    };
    if is_error(nr, ret) {
        return format!("-{}", errno_name((-ret) as i32));
    }
    if nr == Sysno::umask as u32 {
        // The previous mask, which strace shows in octal like the argument.
        return decode::mode(ret as u32);
    }
    let address = matches!(
        Sysno::new(nr as usize),
        Some(Sysno::mmap | Sysno::brk | Sysno::mremap | Sysno::shmat)
    );
    match (address, ret) {
        (true, 0) => "0".to_string(),
        (true, _) => format!("{:#x}", ret as u64),
        (false, _) => ret.to_string(),
    }
}

/// The short errno name, "ENOENT"; "E123" for one nix does not know.
pub fn errno_name(errno: i32) -> String {
    if let Some((name, _)) = kernel_internal(errno) {
        return name.to_string();
    }
    match nix::errno::Errno::from_raw(errno) {
        nix::errno::Errno::UnknownErrno => format!("E{errno}"),
        known => format!("{known:?}"),
    }
}

/// The kernel's restart codes (include/linux/errno.h): user space never sees
/// them, but `raw_syscalls:sys_exit` does when a signal interrupts a call,
/// before signal delivery turns them into EINTR or a restart. No crate
/// carries them; strace names them too.
fn kernel_internal(errno: i32) -> Option<(&'static str, &'static str)> {
    Some(match errno {
        512 => ("ERESTARTSYS", "To be restarted if SA_RESTART is set"),
        513 => ("ERESTARTNOINTR", "To be restarted"),
        514 => ("ERESTARTNOHAND", "To be restarted if no handler"),
        515 => ("ENOIOCTLCMD", "No ioctl command"),
        516 => ("ERESTART_RESTARTBLOCK", "Interrupted by signal"),
        _ => return None,
    })
}
