//! Arguments as strace prints them. Each decoded syscall has a signature,
//! one [`Arg`] per argument in strace's order and count; the signature also
//! says which memory BPF must copy at entry ([`copies`]), so what is copied
//! and what is printed cannot drift apart. A syscall without a signature
//! prints its strace argument count in hex; an unknown number all six.

use std::mem::size_of;

use syscalls::x86_64::Sysno;

use super::{Copied, Copy, classes, flags, quote, sockaddr};

/// How one argument reads.
#[derive(Clone, Copy, Debug)]
pub(super) enum Arg {
    /// A file descriptor, decimal.
    Fd,
    /// A directory fd of the *at calls: `AT_FDCWD` for -100.
    DirFd,
    /// A NUL-terminated string BPF copies (a path, an xattr or memfd name).
    Path,
    /// A pointer whose memory is not copied: `NULL` or hex.
    Ptr,
    /// A value without a better reading: hex, `0` for zero.
    Hex,
    /// A C int, decimal.
    Int,
    /// A C unsigned int, decimal.
    UInt,
    /// A size_t, decimal.
    Size,
    /// A file offset, decimal.
    Off,
    /// A file mode in octal (`0644`).
    Mode,
    /// A mode printed only when the open flags at `flags` create a file.
    ModeIf { flags: u8 },
    /// A pointer printed only when the test on all the arguments holds.
    PtrIf(fn(&[u64; 6]) -> bool),
    /// A sockaddr BPF copies, `len` being the socklen argument.
    Sockaddr { len: u8 },
    /// A struct timespec BPF copies.
    Timespec,
    /// fcntl's third argument, read by the command in argument 1.
    FcntlValue,
    /// socket's protocol, read by the family in argument 0.
    Protocol,
    /// A socket option, read by the level in argument 1.
    SockOpt,
    /// A flag or enumeration named by `flags` (the function takes the
    /// register's low 32 bits, as the kernel does for an int).
    Named(fn(u32) -> String),
}

use Arg::*;

/// The argument list of `nr`, strace-style, without the name and parentheses.
/// `copied[i]` is the copy for `copies(nr)[i]`; a missing one prints the
/// pointer.
pub fn format_args(nr: u32, args: &[u64; 6], copied: &[Copied<'_>]) -> String {
    let Some(sysno) = Sysno::new(nr as usize) else {
        return hex(args, 6);
    };
    if sysno == Sysno::futex {
        return futex(args);
    }
    let Some(sig) = signature(sysno) else {
        let nargs = classes::entry(nr).map_or(6, |e| usize::from(e.nargs));
        return hex(args, nargs);
    };
    let wanted = copies_of(sig);
    let parts: Vec<String> = sig
        .iter()
        .enumerate()
        .filter_map(|(i, &kind)| {
            let copy = wanted
                .iter()
                .position(|c| copy_arg(c) == Some(i))
                .and_then(|k| copied.get(k));
            one(kind, i, args, copy)
        })
        .collect();
    parts.join(", ")
}

/// At most two copies per syscall, in argument order; `Copy::None` pads.
pub fn copies(nr: u32) -> [Copy; 2] {
    match Sysno::new(nr as usize).and_then(signature) {
        Some(sig) => copies_of(sig),
        None => [Copy::None; 2],
    }
}

fn copies_of(sig: &[Arg]) -> [Copy; 2] {
    let mut out = [Copy::None; 2];
    let wanted = sig.iter().enumerate().filter_map(|(i, kind)| {
        let arg = i as u8;
        match *kind {
            Path => Some(Copy::Str { arg }),
            Sockaddr { len } => Some(Copy::Bytes { arg, len_arg: len }),
            Timespec => Some(Copy::Fixed {
                arg,
                len: size_of::<libc::timespec>() as u16,
            }),
            _ => None,
        }
    });
    for (slot, copy) in out.iter_mut().zip(wanted) {
        *slot = copy;
    }
    out
}

fn copy_arg(copy: &Copy) -> Option<usize> {
    copy.arg().map(usize::from)
}

/// Argument `i` read as `kind`; None when strace leaves it out (open's mode
/// without O_CREAT, fcntl's argument for a getter).
fn one(kind: Arg, i: usize, args: &[u64; 6], copy: Option<&Copied<'_>>) -> Option<String> {
    let v = args[i];
    let int = v as u32;
    Some(match kind {
        Fd | Int => (int as i32).to_string(),
        DirFd if int as i32 == libc::AT_FDCWD => "AT_FDCWD".to_string(),
        DirFd => (int as i32).to_string(),
        Path => match copy {
            Some(c) if v != 0 => quote::string(c),
            _ => pointer(v),
        },
        Ptr => pointer(v),
        Hex => c_hex(v),
        UInt => int.to_string(),
        Size => v.to_string(),
        Off => (v as i64).to_string(),
        Mode => mode(int),
        ModeIf { flags } if flags::open_takes_mode(args[usize::from(flags)] as u32) => mode(int),
        ModeIf { .. } => return None,
        PtrIf(shown) if shown(args) => pointer(v),
        PtrIf(_) => return None,
        Sockaddr { .. } => match copy {
            Some(c) if v != 0 => sockaddr::format(c),
            _ => pointer(v),
        },
        Timespec => match copy {
            Some(c) if v != 0 => timespec(c).unwrap_or_else(|| pointer(v)),
            _ => pointer(v),
        },
        FcntlValue => fcntl_arg(args[1] as u32, v)?,
        Protocol => flags::protocol(args[0] as u32, int),
        SockOpt => flags::sock_opt(args[1] as u32, int),
        Named(name) => name(int),
    })
}

/// `NULL` or the address in hex.
fn pointer(v: u64) -> String {
    if v == 0 {
        "NULL".to_string()
    } else {
        format!("{v:#x}")
    }
}

/// Hex as C's `%#x` writes it: `0x1f`, but `0` for zero.
fn c_hex(v: u64) -> String {
    if v == 0 {
        "0".to_string()
    } else {
        format!("{v:#x}")
    }
}

/// The first `n` arguments in hex.
fn hex(args: &[u64; 6], n: usize) -> String {
    let parts: Vec<String> = args.iter().take(n).map(|&v| c_hex(v)).collect();
    parts.join(", ")
}

/// A mode as strace's `%#03o` prints it: `0644`, `000`, `04755`.
pub(super) fn mode(m: u32) -> String {
    format!("{:0>3}", format!("0{m:o}"))
}

/// `{tv_sec=1, tv_nsec=500000000}` from a copied struct timespec.
fn timespec(c: &Copied<'_>) -> Option<String> {
    let sec = i64::from_ne_bytes(c.bytes.get(..8)?.try_into().ok()?);
    let nsec = i64::from_ne_bytes(c.bytes.get(8..16)?.try_into().ok()?);
    Some(format!("{{tv_sec={sec}, tv_nsec={nsec}}}"))
}

/// fcntl's third argument as its command reads it.
fn fcntl_arg(cmd: u32, v: u64) -> Option<String> {
    if flags::fcntl_takes_no_arg(cmd) {
        return None;
    }
    Some(match cmd as i32 {
        libc::F_SETFL => flags::open(v as u32),
        libc::F_SETFD => flags::fd_flags(v as u32),
        libc::F_GETLK
        | libc::F_SETLK
        | libc::F_SETLKW
        | libc::F_OFD_GETLK
        | libc::F_OFD_SETLK
        | libc::F_OFD_SETLKW => pointer(v),
        _ => (v as i32).to_string(),
    })
}

/// Whether mremap's new address counts: strace prints it only then.
fn mremap_moves(args: &[u64; 6]) -> bool {
    let flags = args[3] as i32;
    flags & (libc::MREMAP_FIXED | libc::MREMAP_DONTUNMAP) != 0 && flags & libc::MREMAP_MAYMOVE != 0
}

/// futex's arguments depend on its operation; this follows strace's
/// `do_futex` (its timeouts stay pointers: futex is too hot to copy for).
fn futex(args: &[u64; 6]) -> String {
    let op = args[1] as u32;
    let (val, timeout, val2, uaddr2, val3) = (UInt, Ptr, UInt, Ptr, Hex);
    let bitset = Named(flags::futex_bitset);
    let rest: &[(usize, Arg)] = match flags::futex_cmd(op) {
        libc::FUTEX_WAIT => &[(2, val), (3, timeout)],
        libc::FUTEX_LOCK_PI | libc::FUTEX_LOCK_PI2 => &[(3, timeout)],
        libc::FUTEX_WAIT_BITSET => &[(2, val), (3, timeout), (5, bitset)],
        libc::FUTEX_WAKE_BITSET => &[(2, val), (5, bitset)],
        libc::FUTEX_REQUEUE => &[(2, val), (3, val2), (4, uaddr2)],
        libc::FUTEX_CMP_REQUEUE | libc::FUTEX_CMP_REQUEUE_PI => {
            &[(2, val), (3, val2), (4, uaddr2), (5, UInt)]
        }
        libc::FUTEX_WAKE_OP => &[(2, val), (3, val2), (4, uaddr2), (5, val3)],
        libc::FUTEX_WAIT_REQUEUE_PI => &[(2, val), (3, timeout), (4, uaddr2)],
        libc::FUTEX_WAKE | libc::FUTEX_FD => &[(2, val)],
        libc::FUTEX_UNLOCK_PI | libc::FUTEX_TRYLOCK_PI => &[],
        _ => &[(2, val), (3, timeout), (4, uaddr2), (5, val3)],
    };
    let mut parts = vec![pointer(args[0]), flags::futex_op(op)];
    parts.extend(
        rest.iter()
            .filter_map(|&(i, kind)| one(kind, i, args, None)),
    );
    parts.join(", ")
}

/// The decoded syscalls, in strace's argument order and count (a test holds
/// each to strace's count in `classes`).
pub(super) fn signature(sysno: Sysno) -> Option<&'static [Arg]> {
    use Sysno as S;
    use flags as f;
    const OPEN: Arg = Named(f::open);
    const AT: Arg = Named(f::at);
    const MSG: Arg = Named(f::msg);
    const FAMILY: Arg = Named(f::family);
    const SOCK_TYPE: Arg = Named(f::sock_type);
    Some(match sysno {
        S::read | S::write => &[Fd, Ptr, Size],
        S::pread64 | S::pwrite64 => &[Fd, Ptr, Size, Off],
        S::readv | S::writev => &[Fd, Ptr, Int],
        S::preadv | S::pwritev => &[Fd, Ptr, Int, Off],
        S::open => &[Path, OPEN, ModeIf { flags: 1 }],
        S::openat => &[DirFd, Path, OPEN, ModeIf { flags: 2 }],
        S::openat2 => &[DirFd, Path, Ptr, Size],
        S::creat | S::mkdir | S::chmod => &[Path, Mode],
        S::close | S::dup | S::fsync | S::fdatasync | S::fchdir => &[Fd],
        S::dup2 => &[Fd, Fd],
        S::dup3 => &[Fd, Fd, Named(f::fd_open)],
        S::pipe => &[Ptr],
        S::pipe2 => &[Ptr, Named(f::fd_open)],
        S::stat | S::lstat | S::statfs => &[Path, Ptr],
        S::fstat | S::fstatfs => &[Fd, Ptr],
        S::newfstatat => &[DirFd, Path, Ptr, AT],
        S::statx => &[
            DirFd,
            Path,
            Named(f::statx_flags),
            Named(f::statx_mask),
            Ptr,
        ],
        S::access => &[Path, Named(f::access)],
        S::faccessat => &[DirFd, Path, Named(f::access)],
        S::faccessat2 => &[DirFd, Path, Named(f::access), Named(f::access_at)],
        S::lseek => &[Fd, Off, Named(f::whence)],
        S::truncate => &[Path, Off],
        S::ftruncate => &[Fd, Off],
        S::mmap => &[Ptr, Size, Named(f::prot), Named(f::map), Fd, Hex],
        S::mprotect => &[Ptr, Size, Named(f::prot)],
        S::munmap => &[Ptr, Size],
        S::brk => &[Ptr],
        S::mremap => &[Ptr, Size, Size, Named(f::mremap), PtrIf(mremap_moves)],
        S::madvise => &[Ptr, Size, Named(f::madvise)],
        S::ioctl => &[Fd, Hex, Hex],
        S::fcntl => &[Fd, Named(f::fcntl_cmd), FcntlValue],
        S::flock => &[Fd, Named(f::flock)],
        S::fadvise64 => &[Fd, Off, Size, Named(f::advice)],
        S::getdents | S::getdents64 => &[Fd, Ptr, UInt],
        S::getcwd => &[Ptr, Size],
        S::chdir | S::rmdir | S::unlink => &[Path],
        S::rename | S::link | S::symlink => &[Path, Path],
        S::readlink => &[Path, Ptr, Size],
        S::fchmod => &[Fd, Mode],
        S::chown | S::lchown => &[Path, Int, Int],
        S::fchown => &[Fd, Int, Int],
        S::umask => &[Mode],
        S::mkdirat | S::fchmodat => &[DirFd, Path, Mode],
        S::fchownat => &[DirFd, Path, Int, Int, AT],
        S::unlinkat => &[DirFd, Path, AT],
        S::renameat => &[DirFd, Path, DirFd, Path],
        S::renameat2 => &[DirFd, Path, DirFd, Path, Hex],
        S::linkat => &[DirFd, Path, DirFd, Path, AT],
        S::symlinkat => &[Path, DirFd, Path],
        S::readlinkat => &[DirFd, Path, Ptr, Size],
        S::execve => &[Path, Ptr, Ptr],
        S::execveat => &[DirFd, Path, Ptr, Ptr, AT],
        S::memfd_create => &[Path, Named(f::memfd)],
        S::getxattr | S::lgetxattr => &[Path, Path, Ptr, Size],
        S::fgetxattr => &[Fd, Path, Ptr, Size],
        S::setxattr | S::lsetxattr => &[Path, Path, Ptr, Size, Hex],
        S::fsetxattr => &[Fd, Path, Ptr, Size, Hex],
        S::listxattr | S::llistxattr => &[Path, Ptr, Size],
        S::flistxattr => &[Fd, Ptr, Size],
        S::removexattr | S::lremovexattr => &[Path, Path],
        S::fremovexattr => &[Fd, Path],
        S::socket => &[FAMILY, SOCK_TYPE, Protocol],
        S::socketpair => &[FAMILY, SOCK_TYPE, Protocol, Ptr],
        S::connect | S::bind => &[Fd, Sockaddr { len: 2 }, UInt],
        S::listen => &[Fd, Int],
        S::accept | S::getsockname | S::getpeername => &[Fd, Ptr, Ptr],
        S::accept4 => &[Fd, Ptr, Ptr, Named(f::sock_flags)],
        S::sendto => &[Fd, Ptr, Size, MSG, Sockaddr { len: 5 }, UInt],
        S::recvfrom => &[Fd, Ptr, Size, MSG, Ptr, Ptr],
        S::sendmsg | S::recvmsg => &[Fd, Ptr, MSG],
        S::sendmmsg => &[Fd, Ptr, UInt, MSG],
        S::recvmmsg => &[Fd, Ptr, UInt, MSG, Ptr],
        S::shutdown => &[Fd, Named(f::shutdown)],
        S::setsockopt => &[Fd, Named(f::sock_level), SockOpt, Ptr, UInt],
        S::getsockopt => &[Fd, Named(f::sock_level), SockOpt, Ptr, Ptr],
        S::sendfile => &[Fd, Fd, Ptr, Size],
        S::splice => &[Fd, Ptr, Fd, Ptr, Size, Hex],
        S::tee => &[Fd, Fd, Size, Hex],
        S::copy_file_range => &[Fd, Ptr, Fd, Ptr, Size, UInt],
        S::poll => &[Ptr, UInt, Int],
        S::epoll_wait => &[Fd, Ptr, Int, Int],
        S::epoll_pwait => &[Fd, Ptr, Int, Int, Ptr, Size],
        S::epoll_ctl => &[Fd, Named(f::epoll_ctl), Fd, Ptr],
        S::epoll_create1 => &[Named(f::epoll)],
        S::eventfd2 => &[UInt, Named(f::eventfd)],
        S::kill | S::tkill => &[Int, Named(f::signal)],
        S::tgkill => &[Int, Int, Named(f::signal)],
        S::rt_sigaction => &[Named(f::signal), Ptr, Ptr, Size],
        S::rt_sigprocmask => &[Named(f::sigmask_how), Ptr, Ptr, Size],
        S::exit | S::exit_group => &[Int],
        S::wait4 => &[Int, Ptr, Named(f::wait), Ptr],
        S::clone3 => &[Ptr, Size],
        S::setuid | S::setgid => &[UInt],
        S::nanosleep => &[Timespec, Ptr],
        S::clock_gettime | S::clock_getres => &[Named(f::clock), Ptr],
        S::clock_nanosleep => &[Named(f::clock), Named(f::timer), Timespec, Ptr],
        S::getrandom => &[Ptr, Size, Named(f::getrandom)],
        S::set_tid_address => &[Ptr],
        S::getrlimit | S::setrlimit => &[Named(f::rlimit), Ptr],
        S::prlimit64 => &[Int, Named(f::rlimit), Ptr, Ptr],
        S::set_robust_list => &[Ptr, Size],
        S::close_range => &[UInt, UInt, Hex],
        _ => return None,
    })
}
