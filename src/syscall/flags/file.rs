//! File and descriptor flags: open, the *at calls, access, fcntl, flock,
//! lseek, fadvise, statx, memfd, epoll, eventfd.

use super::{Table, bits, enumerated, lookup};

const STATX_SYNC: Table = named![
    AT_STATX_SYNC_AS_STAT,
    AT_STATX_FORCE_SYNC,
    AT_STATX_DONT_SYNC
];
// The combined masks first, as strace lists them.
const STATX: Table = named![
    STATX_ALL,
    STATX_BASIC_STATS,
    STATX_TYPE,
    STATX_MODE,
    STATX_NLINK,
    STATX_UID,
    STATX_GID,
    STATX_ATIME,
    STATX_MTIME,
    STATX_CTIME,
    STATX_INO,
    STATX_SIZE,
    STATX_BLOCKS,
    STATX_BTIME,
    STATX_MNT_ID,
    STATX_DIOALIGN,
    STATX_MNT_ID_UNIQUE,
    STATX_SUBVOL,
];
const EPOLL_CTL: Table = named![EPOLL_CTL_ADD, EPOLL_CTL_DEL, EPOLL_CTL_MOD];
const EPOLL: Table = named![EPOLL_CLOEXEC];
const EFD: Table = named![EFD_SEMAPHORE, EFD_CLOEXEC, EFD_NONBLOCK];
// A combined flag comes before its parts (O_SYNC holds O_DSYNC, O_TMPFILE
// holds O_DIRECTORY), so it is matched whole. O_LARGEFILE is 0 in libc on
// x86-64 (the kernel bit then prints in hex) and is skipped as zero.
const OPEN: Table = named![
    O_CREAT,
    O_EXCL,
    O_NOCTTY,
    O_TRUNC,
    O_APPEND,
    O_NONBLOCK,
    O_SYNC,
    O_DSYNC,
    O_DIRECT,
    O_LARGEFILE,
    O_NOFOLLOW,
    O_NOATIME,
    O_CLOEXEC,
    O_PATH,
    O_TMPFILE,
    O_DIRECTORY,
    O_ASYNC,
];
const ACCESS_MODE: Table = named![O_RDONLY, O_WRONLY, O_RDWR, O_ACCMODE];
const AT: Table = named![
    AT_SYMLINK_NOFOLLOW,
    AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
    AT_NO_AUTOMOUNT,
    AT_EMPTY_PATH,
    AT_RECURSIVE,
];
// faccessat2's 0x200 is AT_EACCESS, the same bit as AT_REMOVEDIR.
const ACCESS_AT: Table = named![AT_SYMLINK_NOFOLLOW, AT_EACCESS, AT_EMPTY_PATH];
const ACCESS: Table = named![R_OK, W_OK, X_OK];
const WHENCE: Table = named![SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE];
const FCNTL: Table = named![
    F_DUPFD,
    F_GETFD,
    F_SETFD,
    F_GETFL,
    F_SETFL,
    F_GETLK,
    F_SETLK,
    F_SETLKW,
    F_SETOWN,
    F_GETOWN,
    F_OFD_GETLK,
    F_OFD_SETLK,
    F_OFD_SETLKW,
    F_SETLEASE,
    F_GETLEASE,
    F_NOTIFY,
    F_CANCELLK,
    F_DUPFD_CLOEXEC,
    F_SETPIPE_SZ,
    F_GETPIPE_SZ,
    F_ADD_SEALS,
    F_GET_SEALS,
];
const FD: Table = named![FD_CLOEXEC];
const ADVICE: Table = named![
    POSIX_FADV_NORMAL,
    POSIX_FADV_RANDOM,
    POSIX_FADV_SEQUENTIAL,
    POSIX_FADV_WILLNEED,
    POSIX_FADV_DONTNEED,
    POSIX_FADV_NOREUSE,
];
const LOCK: Table = named![LOCK_SH, LOCK_EX, LOCK_NB, LOCK_UN];
const MFD: Table = named![
    MFD_CLOEXEC,
    MFD_ALLOW_SEALING,
    MFD_HUGETLB,
    MFD_NOEXEC_SEAL,
    MFD_EXEC
];

/// open/openat flags: the access mode always comes first (`O_RDONLY|…`).
pub(in crate::syscall) fn open(v: u32) -> String {
    let mode = v & libc::O_ACCMODE as u32;
    bits(
        v & !mode,
        OPEN,
        lookup(mode, ACCESS_MODE).map(str::to_string),
    )
}

/// Whether open's flags make it take a mode argument.
pub(in crate::syscall) fn open_takes_mode(v: u32) -> bool {
    v & libc::O_CREAT as u32 != 0 || v & libc::O_TMPFILE as u32 == libc::O_TMPFILE as u32
}

/// O_* flags without an access mode (pipe2, dup3): "O_CLOEXEC", "0".
pub(in crate::syscall) fn fd_open(v: u32) -> String {
    bits(v, OPEN, None)
}

pub(in crate::syscall) fn at(v: u32) -> String {
    bits(v, AT, None)
}

pub(in crate::syscall) fn access_at(v: u32) -> String {
    bits(v, ACCESS_AT, None)
}

/// access modes: "F_OK" or "R_OK|W_OK".
pub(in crate::syscall) fn access(v: u32) -> String {
    if v == libc::F_OK as u32 {
        "F_OK".to_string()
    } else {
        bits(v, ACCESS, None)
    }
}

pub(in crate::syscall) fn whence(v: u32) -> String {
    enumerated(v, WHENCE)
}

pub(in crate::syscall) fn fcntl_cmd(v: u32) -> String {
    enumerated(v, FCNTL)
}

/// Whether fcntl `cmd` is one of the getters that take no third argument.
pub(in crate::syscall) fn fcntl_takes_no_arg(cmd: u32) -> bool {
    [
        libc::F_GETFD,
        libc::F_GETFL,
        libc::F_GETOWN,
        libc::F_GETLEASE,
        libc::F_GETPIPE_SZ,
        libc::F_GET_SEALS,
    ]
    .contains(&(cmd as i32))
}

pub(in crate::syscall) fn fd_flags(v: u32) -> String {
    bits(v, FD, None)
}

pub(in crate::syscall) fn advice(v: u32) -> String {
    enumerated(v, ADVICE)
}

pub(in crate::syscall) fn flock(v: u32) -> String {
    bits(v, LOCK, None)
}

pub(in crate::syscall) fn memfd(v: u32) -> String {
    bits(v, MFD, None)
}

pub(in crate::syscall) fn epoll_ctl(v: u32) -> String {
    enumerated(v, EPOLL_CTL)
}

pub(in crate::syscall) fn epoll(v: u32) -> String {
    bits(v, EPOLL, None)
}

pub(in crate::syscall) fn eventfd(v: u32) -> String {
    bits(v, EFD, None)
}

/// statx's flags: the sync type always first (`AT_STATX_SYNC_AS_STAT|…`).
pub(in crate::syscall) fn statx_flags(v: u32) -> String {
    let sync = v & libc::AT_STATX_SYNC_TYPE as u32;
    let sync_name = lookup(sync, STATX_SYNC).map_or_else(|| format!("{sync:#x}"), str::to_string);
    bits(v & !sync, AT, Some(sync_name))
}

pub(in crate::syscall) fn statx_mask(v: u32) -> String {
    bits(v, STATX, None)
}
