//! Exact argument lists, one test per family of decoding; the expected
//! lines are strace 6.1's for the same values, except where the module doc
//! says ours differ.

use syscalls::x86_64::Sysno;

use super::*;

#[test]
fn open_calls_show_flags_and_mode_only_when_creating() {
    let path = str_copy(b"/etc/app.conf");
    let rd = o(libc::O_RDONLY | libc::O_CLOEXEC);
    assert_eq!(
        call(Sysno::openat, &[CWD, BUF, rd, 0o777], &[path]),
        r#"openat(AT_FDCWD, "/etc/app.conf", O_RDONLY|O_CLOEXEC)"#
    );
    let creat = o(libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC);
    assert_eq!(
        call(Sysno::openat, &[3, BUF, creat, 0o644], &[path]),
        r#"openat(3, "/etc/app.conf", O_WRONLY|O_CREAT|O_TRUNC, 0644)"#
    );
    let tmp = o(libc::O_RDWR | libc::O_TMPFILE);
    assert_eq!(
        call(Sysno::open, &[BUF, tmp, 0], &[path]),
        r#"open("/etc/app.conf", O_RDWR|O_TMPFILE, 000)"#
    );
    assert_eq!(
        call(Sysno::creat, &[BUF, 0o4755], &[path]),
        r#"creat("/etc/app.conf", 04755)"#
    );
    // A bit no libc name covers shows in hex, as strace does for bits it lacks.
    assert_eq!(
        call(Sysno::open, &[BUF, 0x8000], &[path]),
        r#"open("/etc/app.conf", O_RDONLY|0x8000)"#
    );
}

#[test]
fn paths_are_escaped_and_truncated_ones_end_in_dots() {
    let long = [b'a'; COPY_MAX - 1];
    let mut bytes = b"/".to_vec();
    bytes.extend_from_slice(&long);
    let cut = Copied {
        bytes: &bytes,
        truncated: true,
    };
    let expected = format!(
        "openat(AT_FDCWD, \"/{}\"..., O_RDONLY)",
        "a".repeat(COPY_MAX - 1)
    );
    assert_eq!(call(Sysno::openat, &[CWD, BUF, 0], &[cut]), expected);
    let odd = str_copy(b"/tmp/a \"b\"\n\x01");
    assert_eq!(
        call(Sysno::unlink, &[BUF], &[odd]),
        r#"unlink("/tmp/a \"b\"\n\1")"#
    );
    // No copy (BPF could not read it): the pointer; a NULL path stays NULL.
    assert_eq!(call(Sysno::chdir, &[BUF], &[]), "chdir(0x7ffd3c5a1000)");
    assert_eq!(call(Sysno::chdir, &[0], &[str_copy(b"x")]), "chdir(NULL)");
}

#[test]
fn at_calls_copy_both_paths_and_name_their_flags() {
    let (a, b) = (str_copy(b"old"), str_copy(b"new"));
    assert_eq!(
        copies(Sysno::renameat as u32),
        [Copy::Str { arg: 1 }, Copy::Str { arg: 3 }]
    );
    assert_eq!(
        call(Sysno::renameat, &[CWD, 1, 4, 2], &[a, b]),
        r#"renameat(AT_FDCWD, "old", 4, "new")"#
    );
    let nofollow = o(libc::AT_SYMLINK_NOFOLLOW);
    assert_eq!(
        call(Sysno::newfstatat, &[CWD, 1, BUF, nofollow], &[a]),
        r#"newfstatat(AT_FDCWD, "old", 0x7ffd3c5a1000, AT_SYMLINK_NOFOLLOW)"#
    );
    assert_eq!(
        call(Sysno::unlinkat, &[3, 1, o(libc::AT_REMOVEDIR)], &[a]),
        r#"unlinkat(3, "old", AT_REMOVEDIR)"#
    );
    let eaccess = o(libc::AT_EACCESS);
    assert_eq!(
        call(Sysno::faccessat2, &[CWD, 1, o(libc::R_OK), eaccess], &[a]),
        r#"faccessat2(AT_FDCWD, "old", R_OK, AT_EACCESS)"#
    );
    assert_eq!(
        call(Sysno::access, &[1, o(libc::R_OK | libc::W_OK)], &[a]),
        r#"access("old", R_OK|W_OK)"#
    );
    assert_eq!(call(Sysno::access, &[1, 0], &[a]), r#"access("old", F_OK)"#);
    assert_eq!(
        copies(Sysno::execve as u32),
        [Copy::Str { arg: 0 }, Copy::None]
    );
    assert_eq!(
        call(Sysno::execve, &[1, BUF, 0], &[a]),
        r#"execve("old", 0x7ffd3c5a1000, NULL)"#
    );
}

#[test]
fn fd_calls_read_as_strace_prints_them() {
    assert_eq!(
        call(Sysno::read, &[3, BUF, 4096], &[]),
        "read(3, 0x7ffd3c5a1000, 4096)"
    );
    assert_eq!(
        call(Sysno::pwrite64, &[3, BUF, 10, 1 << 40], &[]),
        "pwrite64(3, 0x7ffd3c5a1000, 10, 1099511627776)"
    );
    assert_eq!(call(Sysno::close, &[3], &[]), "close(3)");
    assert_eq!(call(Sysno::dup2, &[3, 1], &[]), "dup2(3, 1)");
    let pipe = o(libc::O_CLOEXEC | libc::O_NONBLOCK);
    assert_eq!(
        call(Sysno::pipe2, &[BUF, pipe], &[]),
        "pipe2(0x7ffd3c5a1000, O_NONBLOCK|O_CLOEXEC)"
    );
    assert_eq!(call(Sysno::dup3, &[3, 4, 0], &[]), "dup3(3, 4, 0)");
    assert_eq!(
        call(Sysno::lseek, &[3, -5i64 as u64, o(libc::SEEK_END)], &[]),
        "lseek(3, -5, SEEK_END)"
    );
    assert_eq!(call(Sysno::lseek, &[3, 0, 0], &[]), "lseek(3, 0, SEEK_SET)");
    assert_eq!(
        call(Sysno::ioctl, &[1, 0x5401, BUF], &[]),
        "ioctl(1, 0x5401, 0x7ffd3c5a1000)"
    );
    let add = o(libc::EPOLL_CTL_ADD);
    assert_eq!(
        call(Sysno::epoll_ctl, &[5, add, 3, BUF], &[]),
        "epoll_ctl(5, EPOLL_CTL_ADD, 3, 0x7ffd3c5a1000)"
    );
    let efd = o(libc::EFD_CLOEXEC | libc::EFD_NONBLOCK);
    assert_eq!(
        call(Sysno::eventfd2, &[0, efd], &[]),
        "eventfd2(0, EFD_CLOEXEC|EFD_NONBLOCK)"
    );
    let dontneed = o(libc::POSIX_FADV_DONTNEED);
    assert_eq!(
        call(Sysno::fadvise64, &[3, 0, 0, dontneed], &[]),
        "fadvise64(3, 0, 0, POSIX_FADV_DONTNEED)"
    );
}

#[test]
fn fcntl_reads_its_argument_by_command() {
    let fcntl = |cmd: i32, arg: u64| call(Sysno::fcntl, &[3, o(cmd), arg], &[]);
    assert_eq!(fcntl(libc::F_GETFL, 0x7f), "fcntl(3, F_GETFL)");
    assert_eq!(
        fcntl(libc::F_SETFL, o(libc::O_RDWR | libc::O_NONBLOCK)),
        "fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK)"
    );
    assert_eq!(
        fcntl(libc::F_SETFD, o(libc::FD_CLOEXEC)),
        "fcntl(3, F_SETFD, FD_CLOEXEC)"
    );
    assert_eq!(
        fcntl(libc::F_DUPFD_CLOEXEC, 10),
        "fcntl(3, F_DUPFD_CLOEXEC, 10)"
    );
    assert_eq!(
        fcntl(libc::F_SETLK, BUF),
        "fcntl(3, F_SETLK, 0x7ffd3c5a1000)"
    );
}

#[test]
fn memory_calls_name_prot_and_map_flags() {
    let stack = o(libc::RLIMIT_STACK as i32);
    assert_eq!(
        call(Sysno::prlimit64, &[0, stack, 0, BUF], &[]),
        "prlimit64(0, RLIMIT_STACK, NULL, 0x7ffd3c5a1000)"
    );
    let rw = o(libc::PROT_READ | libc::PROT_WRITE);
    let anon = o(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS);
    assert_eq!(
        call(Sysno::mmap, &[0, 8192, rw, anon, u64::MAX, 0], &[]),
        "mmap(NULL, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)"
    );
    let fixed = o(libc::MAP_PRIVATE | libc::MAP_FIXED | libc::MAP_DENYWRITE);
    assert_eq!(
        call(
            Sysno::mmap,
            &[
                0x7f00_0000_0000,
                4096,
                o(libc::PROT_READ),
                fixed,
                3,
                0x28000
            ],
            &[]
        ),
        "mmap(0x7f0000000000, 4096, PROT_READ, MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, 3, 0x28000)"
    );
    let huge = anon | o(libc::MAP_HUGETLB) | (21 << libc::MAP_HUGE_SHIFT);
    assert_eq!(
        call(Sysno::mmap, &[0, 1 << 21, 0, huge, u64::MAX, 0], &[]),
        "mmap(NULL, 2097152, PROT_NONE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|21<<MAP_HUGE_SHIFT, -1, 0)"
    );
    assert_eq!(
        call(Sysno::mprotect, &[BUF, 4096, o(libc::PROT_EXEC)], &[]),
        "mprotect(0x7ffd3c5a1000, 4096, PROT_EXEC)"
    );
    assert_eq!(
        call(Sysno::munmap, &[BUF, 8192], &[]),
        "munmap(0x7ffd3c5a1000, 8192)"
    );
    assert_eq!(call(Sysno::brk, &[0], &[]), "brk(NULL)");
    let (may, fixed) = (
        o(libc::MREMAP_MAYMOVE),
        o(libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED),
    );
    assert_eq!(
        call(Sysno::mremap, &[BUF, 4096, 8192, may, BUF], &[]),
        "mremap(0x7ffd3c5a1000, 4096, 8192, MREMAP_MAYMOVE)"
    );
    assert_eq!(
        call(Sysno::mremap, &[BUF, 4096, 8192, fixed, 1 << 40], &[]),
        "mremap(0x7ffd3c5a1000, 4096, 8192, MREMAP_MAYMOVE|MREMAP_FIXED, 0x10000000000)"
    );
}

#[test]
fn sockets_name_family_type_and_protocol() {
    let stream = o(libc::SOCK_STREAM | libc::SOCK_CLOEXEC);
    assert_eq!(
        call(
            Sysno::socket,
            &[o(libc::AF_INET), stream, o(libc::IPPROTO_TCP)],
            &[]
        ),
        "socket(AF_INET, SOCK_STREAM|SOCK_CLOEXEC, IPPROTO_TCP)"
    );
    assert_eq!(
        call(
            Sysno::socket,
            &[o(libc::AF_INET6), o(libc::SOCK_DGRAM), 0],
            &[]
        ),
        "socket(AF_INET6, SOCK_DGRAM, IPPROTO_IP)"
    );
    assert_eq!(
        call(
            Sysno::socket,
            &[o(libc::AF_UNIX), o(libc::SOCK_STREAM), 0],
            &[]
        ),
        "socket(AF_UNIX, SOCK_STREAM, 0)"
    );
    assert_eq!(call(Sysno::listen, &[3, 5], &[]), "listen(3, 5)");
    let cloexec = o(libc::SOCK_CLOEXEC);
    assert_eq!(
        call(Sysno::accept4, &[3, 0, 0, cloexec], &[]),
        "accept4(3, NULL, NULL, SOCK_CLOEXEC)"
    );
    let (sol, reuse) = (o(libc::SOL_SOCKET), o(libc::SO_REUSEADDR));
    assert_eq!(
        call(Sysno::setsockopt, &[3, sol, reuse, BUF, 4], &[]),
        "setsockopt(3, SOL_SOCKET, SO_REUSEADDR, 0x7ffd3c5a1000, 4)"
    );
    let (tcp, nodelay) = (o(libc::SOL_TCP), o(libc::TCP_NODELAY));
    assert_eq!(
        call(Sysno::getsockopt, &[3, tcp, nodelay, BUF, BUF], &[]),
        "getsockopt(3, SOL_TCP, TCP_NODELAY, 0x7ffd3c5a1000, 0x7ffd3c5a1000)"
    );
    let flags = o(libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT);
    assert_eq!(
        call(Sysno::sendto, &[3, BUF, 5, flags, 0, 0], &[]),
        "sendto(3, 0x7ffd3c5a1000, 5, MSG_DONTWAIT|MSG_NOSIGNAL, NULL, 0)"
    );
}

/// A sockaddr's bytes as the kernel lays them out.
fn bytes_of<T>(value: &T) -> Vec<u8> {
    // SAFETY: T is a plain C struct (a sockaddr); its bytes are initialised
    // because every test value is built from `mem::zeroed`.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

#[test]
fn sockaddrs_read_as_strace_prints_them() {
    assert_eq!(
        copies(Sysno::connect as u32),
        [Copy::Bytes { arg: 1, len_arg: 2 }, Copy::None]
    );
    assert_eq!(
        copies(Sysno::sendto as u32),
        [Copy::Bytes { arg: 4, len_arg: 5 }, Copy::None]
    );
    // SAFETY: all-zero is a valid sockaddr_in.
    let mut sin: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    sin.sin_family = libc::AF_INET as u16;
    sin.sin_port = 8080u16.to_be();
    sin.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
    let b = bytes_of(&sin);
    assert_eq!(
        call(Sysno::connect, &[3, BUF, 16], &[str_copy(&b)]),
        r#"connect(3, {sa_family=AF_INET, sin_port=htons(8080), sin_addr=inet_addr("127.0.0.1")}, 16)"#
    );
    // SAFETY: all-zero is a valid sockaddr_in6.
    let mut sin6: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
    sin6.sin6_family = libc::AF_INET6 as u16;
    sin6.sin6_port = 443u16.to_be();
    sin6.sin6_addr.s6_addr[15] = 1;
    let b6 = bytes_of(&sin6);
    assert_eq!(
        call(Sysno::bind, &[3, BUF, 28], &[str_copy(&b6)]),
        r#"bind(3, {sa_family=AF_INET6, sin6_port=htons(443), sin6_flowinfo=htonl(0), inet_pton(AF_INET6, "::1", &sin6_addr), sin6_scope_id=0}, 28)"#
    );
    let mut un = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    un.extend_from_slice(b"/tmp/x\0");
    assert_eq!(
        call(Sysno::bind, &[3, BUF, 9], &[str_copy(&un)]),
        r#"bind(3, {sa_family=AF_UNIX, sun_path="/tmp/x"}, 9)"#
    );
    let mut abs = (libc::AF_UNIX as u16).to_ne_bytes().to_vec();
    abs.extend_from_slice(b"\0name");
    assert_eq!(
        call(Sysno::connect, &[3, BUF, 7], &[str_copy(&abs)]),
        r#"connect(3, {sa_family=AF_UNIX, sun_path=@"name"}, 7)"#
    );
    assert_eq!(
        call(Sysno::connect, &[3, BUF, 16], &[]),
        "connect(3, 0x7ffd3c5a1000, 16)"
    );
}

#[test]
fn signals_and_exits() {
    assert_eq!(
        call(Sysno::kill, &[1234, o(libc::SIGTERM)], &[]),
        "kill(1234, SIGTERM)"
    );
    assert_eq!(call(Sysno::kill, &[1234, 0], &[]), "kill(1234, 0)");
    assert_eq!(
        call(Sysno::tgkill, &[10, 11, 34], &[]),
        "tgkill(10, 11, SIGRT_2)"
    );
    assert_eq!(call(Sysno::tkill, &[10, 32], &[]), "tkill(10, SIGRTMIN)");
    assert_eq!(call(Sysno::exit_group, &[0], &[]), "exit_group(0)");
    let block = o(libc::SIG_BLOCK);
    assert_eq!(
        call(Sysno::rt_sigprocmask, &[block, BUF, 0, 8], &[]),
        "rt_sigprocmask(SIG_BLOCK, 0x7ffd3c5a1000, NULL, 8)"
    );
    assert_eq!(call(Sysno::getppid, &[7, 7], &[]), "getppid()");
    let nohang = o(libc::WNOHANG);
    assert_eq!(
        call(Sysno::wait4, &[u64::MAX, 0, nohang, 0], &[]),
        "wait4(-1, NULL, WNOHANG, NULL)"
    );
    assert_eq!(
        call(Sysno::clone3, &[BUF, 88], &[]),
        "clone3(0x7ffd3c5a1000, 88)"
    );
}

#[test]
fn futex_shows_the_arguments_its_operation_takes() {
    let op = |cmd: i32| o(cmd | libc::FUTEX_PRIVATE_FLAG);
    assert_eq!(
        call(Sysno::futex, &[BUF, op(libc::FUTEX_WAKE), 1], &[]),
        "futex(0x7ffd3c5a1000, FUTEX_WAKE_PRIVATE, 1)"
    );
    assert_eq!(
        call(Sysno::futex, &[BUF, op(libc::FUTEX_WAIT), 2, 0], &[]),
        "futex(0x7ffd3c5a1000, FUTEX_WAIT_PRIVATE, 2, NULL)"
    );
    let bitset = op(libc::FUTEX_WAIT_BITSET) | o(libc::FUTEX_CLOCK_REALTIME);
    assert_eq!(
        call(Sysno::futex, &[BUF, bitset, 0, 0, 0, 0xffff_ffff], &[]),
        "futex(0x7ffd3c5a1000, FUTEX_WAIT_BITSET_PRIVATE|FUTEX_CLOCK_REALTIME, 0, NULL, FUTEX_BITSET_MATCH_ANY)"
    );
}

#[test]
fn timespecs_are_copied_and_shown() {
    assert_eq!(
        copies(Sysno::nanosleep as u32),
        [Copy::Fixed { arg: 0, len: 16 }, Copy::None]
    );
    let ts = [1i64.to_ne_bytes(), 500i64.to_ne_bytes()].concat();
    assert_eq!(
        call(Sysno::nanosleep, &[BUF, 0], &[str_copy(&ts)]),
        "nanosleep({tv_sec=1, tv_nsec=500}, NULL)"
    );
}

#[test]
fn undecoded_and_unknown_calls_print_hex() {
    assert_eq!(
        call(Sysno::clone, &[0x1200011, 0, 0, BUF, 0, 9], &[]),
        "clone(0x1200011, 0, 0, 0x7ffd3c5a1000, 0)"
    );
    assert_eq!(
        format_args(999, &args(&[1, 2, 3, 4, 5, 6]), &[]),
        "0x1, 0x2, 0x3, 0x4, 0x5, 0x6"
    );
    assert_eq!(copies(999), [Copy::None; 2]);
}
