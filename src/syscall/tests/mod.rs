//! Exact strings for names, sets, results and classes; `decoding` has the
//! argument lists. The expected lines are strace 6.1's for the same values
//! (checked by running it; the module doc says where ours differ on purpose).

use syscalls::x86_64::Sysno;

use super::*;

mod decoding;

const CWD: u64 = libc::AT_FDCWD as u64;
const BUF: u64 = 0x7ffd_3c5a_1000;

fn args(a: &[u64]) -> [u64; 6] {
    let mut out = [0; 6];
    out[..a.len()].copy_from_slice(a);
    out
}

/// `name(args)` for a syscall with the given copies.
fn call(sysno: Sysno, a: &[u64], copied: &[Copied<'_>]) -> String {
    let nr = sysno as u32;
    format!("{}({})", name(nr), format_args(nr, &args(a), copied))
}

fn str_copy(s: &[u8]) -> Copied<'_> {
    Copied {
        bytes: s,
        truncated: false,
    }
}

fn o(flags: i32) -> u64 {
    flags as u64
}

#[test]
fn names_and_numbers_round_trip_over_the_table() {
    let mut known = 0;
    for nr in 0..TABLE_SIZE {
        let n = name(nr);
        assert_eq!(number(&n), Some(nr), "{n}");
        known += usize::from(!n.starts_with("syscall_"));
    }
    assert_eq!(known, Sysno::count());
    assert_eq!(name(0), "read");
    assert_eq!(name(231), "exit_group");
    assert_eq!(TABLE_SIZE, 470);
}

#[test]
fn unknown_numbers_are_named_and_read_back() {
    assert_eq!(name(999), "syscall_999");
    assert_eq!(name(400), "syscall_400");
    assert_eq!(number("syscall_999"), Some(999));
    assert_eq!(number("syscall_0x3e7"), Some(999));
    assert_eq!(number("no_such_call"), None);
    assert_eq!(number("syscall_"), None);
}

#[test]
fn set_reads_names_numbers_and_negation() {
    let set = Set::parse("read,write,2").unwrap();
    assert!(set.contains(0) && set.contains(1) && set.contains(2) && !set.contains(3));
    assert_eq!(set.numbers().collect::<Vec<_>>(), [0, 1, 2]);
    let not = Set::parse("!read,write").unwrap();
    assert!(!not.contains(0) && !not.contains(1) && not.contains(2) && not.contains(999));
    assert!(Set::parse("all").unwrap().is_all());
    assert!(Set::parse("all").unwrap().contains(999));
    assert_eq!(Set::parse("none").unwrap().numbers().count(), 0);
    assert!(Set::parse("!none").unwrap().is_all());
    assert_eq!(
        Set::parse("?no_such_call,read")
            .unwrap()
            .numbers()
            .collect::<Vec<_>>(),
        [0]
    );
}

#[test]
fn set_classes_follow_strace() {
    let has = |spec: &str, s: Sysno| Set::parse(spec).unwrap().contains(s as u32);
    assert!(
        has("%file", Sysno::openat) && has("%file", Sysno::execve) && !has("%file", Sysno::read)
    );
    assert!(has("%net", Sysno::socket) && has("%network", Sysno::connect));
    assert!(!has("%net", Sysno::read) && !has("%net", Sysno::close));
    assert!(
        has("%desc", Sysno::read) && has("%desc", Sysno::close) && !has("%desc", Sysno::getpid)
    );
    assert!(has("%process", Sysno::clone) && has("%process", Sysno::exit_group));
    assert!(
        has("%memory", Sysno::mmap) && has("%memory", Sysno::brk) && !has("%memory", Sysno::read)
    );
    assert!(has("%signal", Sysno::kill) && has("%signal", Sysno::rt_sigaction));
    assert!(
        has("%ipc", Sysno::shmget) && has("%ipc", Sysno::msgsnd) && !has("%ipc", Sysno::socket)
    );
    assert!(has("%stat", Sysno::stat) && !has("%stat", Sysno::fstat));
    assert!(
        has("%lstat", Sysno::lstat)
            && has("%fstat", Sysno::fstat)
            && has("%fstat", Sysno::newfstatat)
    );
    assert!(has("%%stat", Sysno::statx) && has("%%stat", Sysno::lstat));
    assert!(has("%statfs", Sysno::statfs) && has("%fstatfs", Sysno::fstatfs));
    assert!(has("%%statfs", Sysno::ustat) && has("%creds", Sysno::setuid));
    assert!(has("%clock", Sysno::clock_gettime) && has("%pure", Sysno::getppid));
    assert!(has("file", Sysno::open) && has("%file,%net", Sysno::bind));
    assert!(has("!%file", Sysno::read) && !has("!%file", Sysno::open));
}

#[test]
fn set_errors_name_the_culprit_and_list_the_classes() {
    let err = |spec: &str| Set::parse(spec).unwrap_err().to_string();
    assert_eq!(
        err("read,no_such_call"),
        "unknown system call \"no_such_call\" (give names, numbers or classes: %file %net \
         (%network) %desc %process %memory %signal %ipc %stat %lstat %fstat %%stat %statfs \
         %fstatfs %%statfs %creds %clock %pure)"
    );
    assert_eq!(
        err("%files"),
        "unknown system call class \"%files\" (the classes: %file %net (%network) %desc \
         %process %memory %signal %ipc %stat %lstat %fstat %%stat %statfs %fstatfs %%statfs \
         %creds %clock %pure)"
    );
    assert_eq!(
        err("read,,write"),
        "empty system call name in \"read,,write\""
    );
    assert_eq!(err(""), "empty system call name in \"\"");
    assert_eq!(
        Set::parse("1024"),
        Err(SetError::UnknownName("1024".into()))
    );
}

#[test]
fn classes_of_a_few_calls_match_strace() {
    use classes::{Entry, NF, PU, TD, TF, TN, entry};
    let f = |s: Sysno| entry(s as u32).unwrap();
    assert_eq!(
        f(Sysno::openat),
        Entry {
            nargs: 4,
            flags: TD | TF
        }
    );
    assert_eq!(
        f(Sysno::getppid),
        Entry {
            nargs: 0,
            flags: PU | NF
        }
    );
    assert_eq!(f(Sysno::connect).flags, TN);
    assert_eq!(f(Sysno::read).flags, TD);
    assert_eq!(entry(400), None);
    assert_eq!(entry(TABLE_SIZE), None);
}

#[test]
fn signatures_take_strace_argument_counts() {
    for nr in 0..TABLE_SIZE {
        let Some(sysno) = Sysno::new(nr as usize) else {
            continue;
        };
        let Some(sig) = decode::signature(sysno) else {
            continue;
        };
        let nargs = classes::entry(nr).map(|e| e.nargs);
        assert_eq!(Some(sig.len() as u8), nargs, "{sysno}");
        // copies() keeps two: a third would silently print as a pointer.
        let copied = sig
            .iter()
            .filter(|a| {
                matches!(
                    a,
                    decode::Arg::Path | decode::Arg::Sockaddr { .. } | decode::Arg::Timespec
                )
            })
            .count();
        assert!(copied <= 2, "{sysno}");
    }
}

#[test]
fn results_are_short_and_addresses_hex() {
    let nr = |s: Sysno| s as u32;
    assert_eq!(format_result(nr(Sysno::openat), Some(3)), "3");
    assert_eq!(format_result(nr(Sysno::openat), Some(-2)), "-ENOENT");
    assert_eq!(format_result(nr(Sysno::read), Some(-4095)), "-E4095");
    assert_eq!(format_result(nr(Sysno::read), Some(-4096)), "-4096");
    assert_eq!(format_result(nr(Sysno::read), Some(-512)), "-ERESTARTSYS");
    assert_eq!(
        format_result(nr(Sysno::mmap), Some(0x7f2a_3c00_0000)),
        "0x7f2a3c000000"
    );
    assert_eq!(format_result(nr(Sysno::mmap), Some(-12)), "-ENOMEM");
    assert_eq!(
        format_result(nr(Sysno::brk), Some(0x5555_5555_6000)),
        "0x555555556000"
    );
    assert_eq!(format_result(nr(Sysno::exit_group), None), "?");
    assert_eq!(format_result(999, Some(-38)), "-ENOSYS");
    assert_eq!(format_result(nr(Sysno::umask), Some(0o22)), "022");
    assert_eq!(call(Sysno::umask, &[0o27], &[]), "umask(027)");
}

#[test]
fn errors_bytes_and_errno_names() {
    assert!(is_error(Sysno::read as u32, -1) && is_error(Sysno::read as u32, -4095));
    assert!(!is_error(Sysno::read as u32, -4096) && !is_error(Sysno::read as u32, 0));
    // getppid never fails: strace's NF.
    assert!(!is_error(Sysno::getppid as u32, -1));
    assert_eq!(bytes(Sysno::read as u32, 811), Some(811));
    assert_eq!(bytes(Sysno::sendto as u32, 0), Some(0));
    assert_eq!(bytes(Sysno::read as u32, -11), None);
    assert_eq!(bytes(Sysno::openat as u32, 3), None);
    assert_eq!(bytes(999, 3), None);
    assert_eq!(errno_name(2), "ENOENT");
    assert_eq!(errno_name(11), "EAGAIN");
    assert_eq!(errno_name(123), "ENOMEDIUM");
    assert_eq!(errno_name(4000), "E4000");
}
