//! Which strace class each x86-64 system call belongs to, and how many
//! arguments strace prints for it: the facts of strace's sysent tables, kept
//! as data so `-e trace=%file` here means what it means to strace.
//!
//! The rows follow strace 7.2 (commit 3e4d70a5), `src/linux/x86_64/syscallent.h`
//! and `src/linux/generic/syscallent-common.h`: per syscall the argument count
//! and the class flags (TD, TF, TI, TN, TP, TS, TM and the stat/statfs, creds,
//! clock, pure and never-fails groups; strace's own letters, kept so a row can
//! be checked against its line there). Numbers and names come from the
//! `syscalls` crate, so a row names a `Sysno` and the compiler rejects a name
//! the crate does not have. Syscalls strace 7.2 lacks carry a comment.
//! Checked against the strace 6.1 installed here (every number made to fail
//! under seccomp, traced per class and with `-e raw=all`): the same counts and
//! classes for 0-450; 451-469 are newer than 6.1, which traces them as unknown.

use syscalls::x86_64::Sysno;

use super::TABLE_SIZE;

/// File-descriptor related (%desc).
pub(super) const TD: u32 = 1 << 0;
/// Takes a file name (%file).
pub(super) const TF: u32 = 1 << 1;
/// System V IPC (%ipc).
pub(super) const TI: u32 = 1 << 2;
/// Network (%network, %net).
pub(super) const TN: u32 = 1 << 3;
/// Process management (%process).
pub(super) const TP: u32 = 1 << 4;
/// Signals (%signal).
pub(super) const TS: u32 = 1 << 5;
/// Memory mapping (%memory).
pub(super) const TM: u32 = 1 << 6;
/// stat variants (%stat).
pub(super) const TST: u32 = 1 << 7;
/// lstat variants (%lstat).
pub(super) const TLST: u32 = 1 << 8;
/// fstat variants (%fstat).
pub(super) const TFST: u32 = 1 << 9;
/// Every stat-like call (%%stat).
pub(super) const TSTA: u32 = 1 << 10;
/// statfs variants (%statfs).
pub(super) const TSF: u32 = 1 << 11;
/// fstatfs variants (%fstatfs).
pub(super) const TFSF: u32 = 1 << 12;
/// Every statfs-like call (%%statfs).
pub(super) const TSFA: u32 = 1 << 13;
/// Getters with no arguments (%pure).
pub(super) const PU: u32 = 1 << 14;
/// Never fails: a negative result is a value, not an errno (getpid, umask).
pub(super) const NF: u32 = 1 << 15;
/// Process credentials (%creds).
pub(super) const TC: u32 = 1 << 16;
/// System clocks (%clock).
pub(super) const TCL: u32 = 1 << 17;
/// Set on every row, so an empty slot of the table reads as unknown.
const KNOWN: u32 = 1 << 31;

/// One syscall's facts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Entry {
    /// Arguments strace prints.
    pub nargs: u8,
    /// Class flags (TD, TF, ...).
    pub flags: u32,
}

/// The facts of syscall `nr`, None for a number the table does not have.
pub(super) fn entry(nr: u32) -> Option<Entry> {
    let e = BY_NR.get(nr as usize)?;
    (e.flags & KNOWN != 0).then_some(Entry {
        nargs: e.nargs,
        flags: e.flags & !KNOWN,
    })
}

/// Every known number in at least one of the classes set in `flags`.
pub(super) fn with_any(flags: u32) -> impl Iterator<Item = u32> {
    (0..TABLE_SIZE).filter(move |&nr| entry(nr).is_some_and(|e| e.flags & flags != 0))
}

/// The rows laid out by number, built at compile time.
static BY_NR: [Entry; TABLE_SIZE as usize] = by_number();

const fn by_number() -> [Entry; TABLE_SIZE as usize] {
    let mut table = [Entry { nargs: 0, flags: 0 }; TABLE_SIZE as usize];
    let mut i = 0;
    while i < ROWS.len() {
        let (sysno, nargs, flags) = ROWS[i];
        table[sysno as usize] = Entry {
            nargs,
            flags: flags | KNOWN,
        };
        i += 1;
    }
    table
}

#[rustfmt::skip]
const ROWS: &[(Sysno, u8, u32)] = {
    use Sysno as S;
    &[
        (S::read, 3, TD),
        (S::write, 3, TD),
        (S::open, 3, TD|TF),
        (S::close, 1, TD),
        (S::stat, 2, TF|TST|TSTA),
        (S::fstat, 2, TD|TFST|TSTA),
        (S::lstat, 2, TF|TLST|TSTA),
        (S::poll, 3, TD),
        (S::lseek, 3, TD),
        (S::mmap, 6, TD|TM),
        (S::mprotect, 3, TM),
        (S::munmap, 2, TM),
        (S::brk, 1, TM),
        (S::rt_sigaction, 4, TS),
        (S::rt_sigprocmask, 4, TS),
        (S::rt_sigreturn, 0, TS),
        (S::ioctl, 3, TD),
        (S::pread64, 4, TD),
        (S::pwrite64, 4, TD),
        (S::readv, 3, TD),
        (S::writev, 3, TD),
        (S::access, 2, TF),
        (S::pipe, 1, TD),
        (S::select, 5, TD),
        (S::sched_yield, 0, 0),
        (S::mremap, 5, TM),
        (S::msync, 3, TM),
        (S::mincore, 3, TM),
        (S::madvise, 3, TM),
        (S::shmget, 3, TI),
        (S::shmat, 3, TI|TM),
        (S::shmctl, 3, TI),
        (S::dup, 1, TD),
        (S::dup2, 2, TD),
        (S::pause, 0, TS),
        (S::nanosleep, 2, 0),
        (S::getitimer, 2, 0),
        (S::alarm, 1, 0),
        (S::setitimer, 3, 0),
        (S::getpid, 0, PU|NF),
        (S::sendfile, 4, TD|TN),
        (S::socket, 3, TN),
        (S::connect, 3, TN),
        (S::accept, 3, TN),
        (S::sendto, 6, TN),
        (S::recvfrom, 6, TN),
        (S::sendmsg, 3, TN),
        (S::recvmsg, 3, TN),
        (S::shutdown, 2, TN),
        (S::bind, 3, TN),
        (S::listen, 2, TN),
        (S::getsockname, 3, TN),
        (S::getpeername, 3, TN),
        (S::socketpair, 4, TN),
        (S::setsockopt, 5, TN),
        (S::getsockopt, 5, TN),
        (S::clone, 5, TP),
        (S::fork, 0, TP),
        (S::vfork, 0, TP),
        (S::execve, 3, TF|TP),
        (S::exit, 1, TP),
        (S::wait4, 4, TP),
        (S::kill, 2, TS|TP),
        (S::uname, 1, 0),
        (S::semget, 3, TI),
        (S::semop, 3, TI),
        (S::semctl, 4, TI),
        (S::shmdt, 1, TI|TM),
        (S::msgget, 2, TI),
        (S::msgsnd, 4, TI),
        (S::msgrcv, 5, TI),
        (S::msgctl, 3, TI),
        (S::fcntl, 3, TD),
        (S::flock, 2, TD),
        (S::fsync, 1, TD),
        (S::fdatasync, 1, TD),
        (S::truncate, 2, TF),
        (S::ftruncate, 2, TD),
        (S::getdents, 3, TD),
        (S::getcwd, 2, TF),
        (S::chdir, 1, TF),
        (S::fchdir, 1, TD),
        (S::rename, 2, TF),
        (S::mkdir, 2, TF),
        (S::rmdir, 1, TF),
        (S::creat, 2, TD|TF),
        (S::link, 2, TF),
        (S::unlink, 1, TF),
        (S::symlink, 2, TF),
        (S::readlink, 3, TF),
        (S::chmod, 2, TF),
        (S::fchmod, 2, TD),
        (S::chown, 3, TF),
        (S::fchown, 3, TD),
        (S::lchown, 3, TF),
        (S::umask, 1, NF),
        (S::gettimeofday, 2, TCL),
        (S::getrlimit, 2, 0),
        (S::getrusage, 2, 0),
        (S::sysinfo, 1, 0),
        (S::times, 1, 0),
        (S::ptrace, 4, 0),
        (S::getuid, 0, TC|PU|NF),
        (S::syslog, 3, 0),
        (S::getgid, 0, TC|PU|NF),
        (S::setuid, 1, TC),
        (S::setgid, 1, TC),
        (S::geteuid, 0, TC|PU|NF),
        (S::getegid, 0, TC|PU|NF),
        (S::setpgid, 2, 0),
        (S::getppid, 0, PU|NF),
        (S::getpgrp, 0, PU|NF),
        (S::setsid, 0, 0),
        (S::setreuid, 2, TC),
        (S::setregid, 2, TC),
        (S::getgroups, 2, TC),
        (S::setgroups, 2, TC),
        (S::setresuid, 3, TC),
        (S::getresuid, 3, TC),
        (S::setresgid, 3, TC),
        (S::getresgid, 3, TC),
        (S::getpgid, 1, 0),
        (S::setfsuid, 1, TC|NF),
        (S::setfsgid, 1, TC|NF),
        (S::getsid, 1, 0),
        (S::capget, 2, TC),
        (S::capset, 2, TC),
        (S::rt_sigpending, 2, TS),
        (S::rt_sigtimedwait, 4, TS),
        (S::rt_sigqueueinfo, 3, TS|TP),
        (S::rt_sigsuspend, 2, TS),
        (S::sigaltstack, 2, TS),
        (S::utime, 2, TF),
        (S::mknod, 3, TF),
        (S::uselib, 1, TF),
        (S::personality, 1, NF),
        (S::ustat, 2, TSFA),
        (S::statfs, 2, TF|TSF|TSFA),
        (S::fstatfs, 2, TD|TFSF|TSFA),
        (S::sysfs, 3, 0),
        (S::getpriority, 2, 0),
        (S::setpriority, 3, 0),
        (S::sched_setparam, 2, 0),
        (S::sched_getparam, 2, 0),
        (S::sched_setscheduler, 3, 0),
        (S::sched_getscheduler, 1, 0),
        (S::sched_get_priority_max, 1, 0),
        (S::sched_get_priority_min, 1, 0),
        (S::sched_rr_get_interval, 2, 0),
        (S::mlock, 2, TM),
        (S::munlock, 2, TM),
        (S::mlockall, 1, TM),
        (S::munlockall, 0, TM),
        (S::vhangup, 0, 0),
        (S::modify_ldt, 3, 0),
        (S::pivot_root, 2, TF),
        (S::_sysctl, 1, 0),
        (S::prctl, 5, TC),
        (S::arch_prctl, 2, 0),
        (S::adjtimex, 1, TCL),
        (S::setrlimit, 2, 0),
        (S::chroot, 1, TF),
        (S::sync, 0, 0),
        (S::acct, 1, TF),
        (S::settimeofday, 2, TCL),
        (S::mount, 5, TF),
        (S::umount2, 2, TF),
        (S::swapon, 2, TF),
        (S::swapoff, 1, TF),
        (S::reboot, 4, 0),
        (S::sethostname, 2, 0),
        (S::setdomainname, 2, 0),
        (S::iopl, 1, 0),
        (S::ioperm, 3, 0),
        (S::create_module, 2, 0),
        (S::init_module, 3, 0),
        (S::delete_module, 2, 0),
        (S::get_kernel_syms, 1, 0),
        (S::query_module, 5, 0),
        (S::quotactl, 4, TF),
        (S::nfsservctl, 3, 0),
        (S::getpmsg, 5, TN),
        (S::putpmsg, 5, TN),
        (S::afs_syscall, 5, 0),
        (S::tuxcall, 3, 0),
        (S::security, 3, 0),
        (S::gettid, 0, PU|NF),
        (S::readahead, 3, TD),
        (S::setxattr, 5, TF),
        (S::lsetxattr, 5, TF),
        (S::fsetxattr, 5, TD),
        (S::getxattr, 4, TF),
        (S::lgetxattr, 4, TF),
        (S::fgetxattr, 4, TD),
        (S::listxattr, 3, TF),
        (S::llistxattr, 3, TF),
        (S::flistxattr, 3, TD),
        (S::removexattr, 2, TF),
        (S::lremovexattr, 2, TF),
        (S::fremovexattr, 2, TD),
        (S::tkill, 2, TS|TP),
        (S::time, 1, TCL),
        (S::futex, 6, 0),
        (S::sched_setaffinity, 3, 0),
        (S::sched_getaffinity, 3, 0),
        (S::set_thread_area, 1, 0),
        (S::io_setup, 2, TM),
        (S::io_destroy, 1, TM),
        (S::io_getevents, 5, 0),
        (S::io_submit, 3, 0),
        (S::io_cancel, 3, 0),
        (S::get_thread_area, 1, 0),
        (S::lookup_dcookie, 3, 0),
        (S::epoll_create, 1, TD),
        (S::epoll_ctl_old, 4, 0),
        (S::epoll_wait_old, 4, 0),
        (S::remap_file_pages, 5, TM),
        (S::getdents64, 3, TD),
        (S::set_tid_address, 1, 0),
        (S::restart_syscall, 0, 0),
        (S::semtimedop, 4, TI),
        (S::fadvise64, 4, TD),
        (S::timer_create, 3, 0),
        (S::timer_settime, 4, 0),
        (S::timer_gettime, 2, 0),
        (S::timer_getoverrun, 1, 0),
        (S::timer_delete, 1, 0),
        (S::clock_settime, 2, TCL),
        (S::clock_gettime, 2, TCL),
        (S::clock_getres, 2, TCL),
        (S::clock_nanosleep, 4, 0),
        (S::exit_group, 1, TP),
        (S::epoll_wait, 4, TD),
        (S::epoll_ctl, 4, TD),
        (S::tgkill, 3, TS|TP),
        (S::utimes, 2, TF),
        (S::vserver, 5, 0),
        (S::mbind, 6, TM),
        (S::set_mempolicy, 3, TM),
        (S::get_mempolicy, 5, TM),
        (S::mq_open, 4, TD),
        (S::mq_unlink, 1, 0),
        (S::mq_timedsend, 5, TD),
        (S::mq_timedreceive, 5, TD),
        (S::mq_notify, 2, TD),
        (S::mq_getsetattr, 3, TD),
        (S::kexec_load, 4, 0),
        (S::waitid, 5, TP),
        (S::add_key, 5, 0),
        (S::request_key, 4, 0),
        (S::keyctl, 5, 0),
        (S::ioprio_set, 3, 0),
        (S::ioprio_get, 2, 0),
        (S::inotify_init, 0, TD),
        (S::inotify_add_watch, 3, TD|TF),
        (S::inotify_rm_watch, 2, TD),
        (S::migrate_pages, 4, TM),
        (S::openat, 4, TD|TF),
        (S::mkdirat, 3, TD|TF),
        (S::mknodat, 4, TD|TF),
        (S::fchownat, 5, TD|TF),
        (S::futimesat, 3, TD|TF),
        (S::newfstatat, 4, TD|TF|TFST|TSTA),
        (S::unlinkat, 3, TD|TF),
        (S::renameat, 4, TD|TF),
        (S::linkat, 5, TD|TF),
        (S::symlinkat, 3, TD|TF),
        (S::readlinkat, 4, TD|TF),
        (S::fchmodat, 3, TD|TF),
        (S::faccessat, 3, TD|TF),
        (S::pselect6, 6, TD),
        (S::ppoll, 5, TD),
        (S::unshare, 1, 0),
        (S::set_robust_list, 2, 0),
        (S::get_robust_list, 3, 0),
        (S::splice, 6, TD),
        (S::tee, 4, TD),
        (S::sync_file_range, 4, TD),
        (S::vmsplice, 4, TD),
        (S::move_pages, 6, TM),
        (S::utimensat, 4, TD|TF),
        (S::epoll_pwait, 6, TD),
        (S::signalfd, 3, TD|TS),
        (S::timerfd_create, 2, TD),
        (S::eventfd, 1, TD),
        (S::fallocate, 4, TD),
        (S::timerfd_settime, 4, TD),
        (S::timerfd_gettime, 2, TD),
        (S::accept4, 4, TN),
        (S::signalfd4, 4, TD|TS),
        (S::eventfd2, 2, TD),
        (S::epoll_create1, 1, TD),
        (S::dup3, 3, TD),
        (S::pipe2, 2, TD),
        (S::inotify_init1, 1, TD),
        (S::preadv, 4, TD),
        (S::pwritev, 4, TD),
        (S::rt_tgsigqueueinfo, 4, TP|TS),
        (S::perf_event_open, 5, TD),
        (S::recvmmsg, 5, TN),
        (S::fanotify_init, 2, TD),
        (S::fanotify_mark, 5, TD|TF),
        (S::prlimit64, 4, 0),
        (S::name_to_handle_at, 5, TD|TF),
        (S::open_by_handle_at, 3, TD),
        (S::clock_adjtime, 2, TCL),
        (S::syncfs, 1, TD),
        (S::sendmmsg, 4, TN),
        (S::setns, 2, TD),
        (S::getcpu, 3, 0),
        (S::process_vm_readv, 6, 0),
        (S::process_vm_writev, 6, 0),
        (S::kcmp, 5, 0),
        (S::finit_module, 3, TD),
        (S::sched_setattr, 3, 0),
        (S::sched_getattr, 4, 0),
        (S::renameat2, 5, TD|TF),
        (S::seccomp, 3, 0),
        (S::getrandom, 3, 0),
        (S::memfd_create, 2, TD),
        (S::kexec_file_load, 5, TD),
        (S::bpf, 3, TD),
        (S::execveat, 5, TD|TF|TP),
        (S::userfaultfd, 1, TD),
        (S::membarrier, 3, 0),
        (S::mlock2, 3, TM),
        (S::copy_file_range, 6, TD),
        (S::preadv2, 6, TD),
        (S::pwritev2, 6, TD),
        (S::pkey_mprotect, 4, TM),
        (S::pkey_alloc, 2, 0),
        (S::pkey_free, 1, 0),
        (S::statx, 5, TD|TF|TFST|TSTA),
        (S::io_pgetevents, 6, 0),
        (S::rseq, 4, 0),
        (S::uretprobe, 0, 0),
        (S::pidfd_send_signal, 4, TD|TS|TP),
        (S::io_uring_setup, 2, TD),
        (S::io_uring_enter, 6, TD|TS),
        (S::io_uring_register, 4, TD|TM),
        (S::open_tree, 3, TD|TF),
        (S::move_mount, 5, TD|TF),
        (S::fsopen, 2, TD),
        (S::fsconfig, 5, TD|TF),
        (S::fsmount, 3, TD),
        (S::fspick, 3, TD|TF),
        (S::pidfd_open, 2, TD),
        (S::clone3, 2, TP),
        (S::close_range, 3, 0),
        (S::openat2, 4, TD|TF),
        (S::pidfd_getfd, 3, TD),
        (S::faccessat2, 4, TD|TF),
        (S::process_madvise, 5, TD),
        (S::epoll_pwait2, 6, TD),
        (S::mount_setattr, 5, TD|TF),
        (S::quotactl_fd, 4, TD),
        (S::landlock_create_ruleset, 3, TD),
        (S::landlock_add_rule, 4, TD),
        (S::landlock_restrict_self, 2, TD),
        (S::memfd_secret, 1, TD),
        (S::process_mrelease, 2, TD),
        (S::futex_waitv, 5, 0),
        (S::set_mempolicy_home_node, 4, TM),
        (S::cachestat, 4, TD),
        (S::fchmodat2, 4, TD|TF),
        (S::map_shadow_stack, 3, TM),
        (S::futex_wake, 4, 0),
        (S::futex_wait, 6, 0),
        (S::futex_requeue, 4, 0),
        (S::statmount, 4, 0),
        (S::listmount, 4, 0),
        (S::lsm_get_self_attr, 4, 0),
        (S::lsm_set_self_attr, 4, 0),
        (S::lsm_list_modules, 3, 0),
        (S::mseal, 3, TM),
        (S::setxattrat, 6, TD|TF),
        (S::getxattrat, 6, TD|TF),
        (S::listxattrat, 5, TD|TF),
        (S::removexattrat, 4, TD|TF),
        (S::open_tree_attr, 5, TD|TF),
        (S::file_getattr, 5, TD|TF),
        (S::file_setattr, 5, TD|TF),
        // Not in strace 7.2: Linux 6.16's uprobe trampoline call, no arguments.
        (S::uprobe, 0, 0),
    ]
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_row_is_in_range_and_once() {
        let mut seen = [false; TABLE_SIZE as usize];
        for &(sysno, nargs, _) in ROWS {
            assert!(nargs <= 6, "{sysno}");
            assert!(!seen[sysno as usize], "{sysno} twice");
            seen[sysno as usize] = true;
        }
    }
}
