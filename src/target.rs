//! The traced process. `-c`: fork, hold the child before exec until every
//! probe is attached, then exec the command itself (no shell in between).
//! `-p`: check the process exists and can be traced.

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use nix::sys::signal::{Signal, kill};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Gid, Group, Pid, Uid, User, fork, pipe};

/// A command forked and waiting for [`Launched::release`] to exec.
pub struct Launched {
    pub pid: u32,
    pub exe: PathBuf,
    go: Option<OwnedFd>,
    exec_error: OwnedFd,
}

/// Finds `name` the way execvp would: as a path if it has a slash, else on $PATH.
pub fn resolve_command(name: &str) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = if name.contains('/') {
        vec![PathBuf::from(name)]
    } else {
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .collect()
    };
    for candidate in &candidates {
        if is_executable(candidate) {
            return Ok(candidate.clone());
        }
    }
    if name.contains('/') && Path::new(name).exists() {
        bail!("{name} is not an executable file");
    }
    bail!("no such command: {name} (not a file, and not found on $PATH)")
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Options that change how the command is started.
pub struct LaunchOptions<'a> {
    pub user: Option<&'a str>,
    pub no_randomize_addr: bool,
}

/// Forks `argv` with `exe` as the program, stopped before exec.
pub fn launch(exe: &Path, argv: &[String], opts: &LaunchOptions) -> Result<Launched> {
    // Everything the child needs is prepared here: after fork it may only
    // make async-signal-safe calls.
    let path =
        CString::new(exe.as_os_str().as_bytes()).context("command path contains a NUL byte")?;
    let args: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .context("command argument contains a NUL byte")?;
    let user = opts.user.map(credentials).transpose()?;
    let (go_r, go_w) = pipe().context("creating a pipe")?;
    let (err_r, err_w) = pipe2_cloexec()?;
    // SAFETY: utrace is single-threaded at this point (no reader or signal
    // thread yet) and the child only calls async-signal-safe functions.
    match unsafe { fork() }.context("fork failed")? {
        ForkResult::Child => {
            drop(go_w);
            drop(err_r);
            child(
                go_r,
                err_w,
                &path,
                &args,
                user.as_ref(),
                opts.no_randomize_addr,
            )
        }
        ForkResult::Parent { child } => Ok(Launched {
            pid: child.as_raw() as u32,
            exe: exe.to_path_buf(),
            go: Some(go_w),
            exec_error: err_r,
        }),
    }
}

/// Who the command runs as with `-u`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub uid: Uid,
    pub gid: Gid,
    /// Supplementary groups: the user's (from the group database), never
    /// utrace's own (root's) groups.
    pub groups: Vec<Gid>,
}

/// `-u USER[:GROUP]`: USER is a name or a numeric uid, GROUP a name or a
/// numeric gid (default: the user's primary group). A uid the user
/// database does not know needs its group spelled out.
pub fn credentials(spec: &str) -> Result<Credentials> {
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    let numeric = user.parse::<u32>().ok();
    let entry = match numeric {
        Some(uid) => User::from_uid(Uid::from_raw(uid)),
        None => User::from_name(user),
    }
    .with_context(|| format!("looking up user {user}"))?;
    let uid = match (&entry, numeric) {
        (Some(entry), _) => entry.uid,
        (None, Some(uid)) => Uid::from_raw(uid),
        (None, None) => bail!("no such user: {user}"),
    };
    let gid = match (group, &entry) {
        (Some(group), _) => group_id(group)?,
        (None, Some(entry)) => entry.gid,
        (None, None) => bail!(
            "uid {uid} has no entry in the user database: give its group too, as -u {uid}:GID"
        ),
    };
    let groups = match &entry {
        Some(entry) => {
            let name = CString::new(entry.name.as_bytes()).context("user name contains a NUL")?;
            nix::unistd::getgrouplist(&name, gid)
                .with_context(|| format!("reading the groups of user {}", entry.name))?
        }
        None => vec![gid],
    };
    Ok(Credentials { uid, gid, groups })
}

/// A group given by name or number.
fn group_id(group: &str) -> Result<Gid> {
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    let entry = Group::from_name(group).with_context(|| format!("looking up group {group}"))?;
    Ok(entry
        .with_context(|| format!("no such group: {group}"))?
        .gid)
}

fn pipe2_cloexec() -> Result<(OwnedFd, OwnedFd)> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).context("creating a pipe")
}

/// The child side: wait for the go byte, then exec. Never returns.
fn child(
    go: OwnedFd,
    err: OwnedFd,
    path: &CString,
    args: &[CString],
    user: Option<&Credentials>,
    no_aslr: bool,
) -> ! {
    // The Rust runtime ignores SIGPIPE, and an ignored signal stays ignored
    // across exec: the command gets the default back, as from a shell.
    // SAFETY: signal() is async-signal-safe and only changes this process.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let mut byte = [0u8; 1];
    // EOF instead of the byte means utrace gave up or died: never run untraced.
    if !matches!(nix::unistd::read(&go, &mut byte), Ok(1)) {
        // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers.
        unsafe { libc::_exit(127) };
    }
    if no_aslr {
        // SAFETY: personality only changes this process's execution domain flags.
        unsafe { libc::personality(libc::ADDR_NO_RANDOMIZE as libc::c_ulong) };
    }
    // Groups first: once the uid is dropped they can no longer be changed.
    if let Some(user) = user
        && (nix::unistd::setgroups(&user.groups).is_err()
            || nix::unistd::setgid(user.gid).is_err()
            || nix::unistd::setuid(user.uid).is_err())
    {
        report_and_exit(&err, nix::errno::Errno::last_raw());
    }
    let e = nix::unistd::execv(path, args).err().map_or(0, |e| e as i32);
    report_and_exit(&err, e)
}

fn report_and_exit(err: &OwnedFd, errno: i32) -> ! {
    let _ = nix::unistd::write(err, &errno.to_ne_bytes());
    // SAFETY: see `child`.
    unsafe { libc::_exit(127) }
}

impl Launched {
    /// Lets the child exec. Fails if exec itself failed.
    pub fn release(&mut self) -> Result<()> {
        let go = self.go.take().context("the command was already released")?;
        nix::unistd::write(&go, &[1]).context("releasing the command")?;
        drop(go);
        let mut buf = [0u8; 4];
        // The error pipe is close-on-exec: EOF means exec succeeded.
        match nix::unistd::read(&self.exec_error, &mut buf) {
            Ok(4) => {
                let errno = nix::errno::Errno::from_raw(i32::from_ne_bytes(buf));
                bail!("cannot execute {}: {errno}", self.exe.display())
            }
            _ => Ok(()),
        }
    }

    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.pid as i32), sig);
    }
}

impl Drop for Launched {
    fn drop(&mut self) {
        // Never released (an error before attach completed): the child sees
        // EOF and exits; reap it so no zombie is left.
        if self.go.take().is_some() {
            let _ = waitpid(Pid::from_raw(self.pid as i32), None);
        }
    }
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Code(i32),
    Signal { signal: Signal, core_dumped: bool },
}

impl Exit {
    /// The exit code utrace should end with: the process's own, or 128 +
    /// the signal that killed it, as a shell does.
    pub fn code(self) -> i32 {
        match self {
            Exit::Code(code) => code,
            Exit::Signal { signal, .. } => 128 + signal as i32,
        }
    }
}

/// Waits for child `pid` to end.
pub fn wait_pid(pid: u32) -> Result<Exit> {
    loop {
        match waitpid(Pid::from_raw(pid as i32), None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(Exit::Code(code)),
            Ok(WaitStatus::Signaled(_, signal, core_dumped)) => {
                return Ok(Exit::Signal {
                    signal,
                    core_dumped,
                });
            }
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e).context("waiting for the command"),
        }
    }
}

/// Checks that `pid` is a live user-space process we can look into.
pub fn check_pid(pid: u32) -> Result<PathBuf> {
    let exe = PathBuf::from(format!("/proc/{pid}/exe"));
    let stat = (pid != 0).then(|| proc_stat(pid)).flatten();
    let Some(stat) = stat else {
        bail!("no such process: {pid} (check the pid with `ps`)");
    };
    if stat.flags & PF_KTHREAD != 0 {
        bail!(
            "pid {pid} is a kernel thread ({}): only user-space processes can be traced",
            stat.comm
        );
    }
    if stat.state == 'Z' || stat.state == 'X' {
        if !threads_alive(pid) {
            bail!(
                "process {pid} is a zombie (exited, not yet reaped by its parent): nothing left to trace"
            );
        }
        // The leader called pthread_exit: /proc/PID shows its empty mm.
        bail!(
            "process {pid}'s main thread has exited while its other threads run on: its memory \
             cannot be read through /proc/{pid} (trace the program from its start with -c)"
        );
    }
    if let Err(e) = std::fs::read_link(&exe) {
        bail!(
            "cannot inspect process {pid}: {e} (run utrace as root, or as the process's owner with CAP_SYS_PTRACE)"
        );
    }
    Ok(exe)
}

/// `PF_KTHREAD` in /proc/PID/stat's flags (include/linux/sched.h).
const PF_KTHREAD: u64 = 0x0020_0000;

/// The fields of /proc/PID/stat (or /proc/PID/task/TID/stat) utrace reads.
struct ProcStat {
    comm: String,
    /// R, S, D, T, t, Z, X…
    state: char,
    flags: u64,
}

fn proc_stat(pid: u32) -> Option<ProcStat> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Parses a stat line: `pid (comm) state ppid pgrp session tty tpgid flags …`.
/// The command may hold spaces and parentheses: it ends at the last `)`.
fn parse_stat(stat: &str) -> Option<ProcStat> {
    let (head, rest) = stat.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let flags = fields.nth(5)?.parse().ok()?;
    Some(ProcStat { comm, state, flags })
}

/// Whether some thread of `pid` has not exited.
fn threads_alive(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().any(|t| {
        let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
        parse_stat(&stat).is_some_and(|s| !matches!(s.state, 'Z' | 'X'))
    })
}

/// A process stopped for utrace (SIGSTOP: by BPF at the loader's breakpoint
/// or an exec, or by us while links are remade). It runs again when this is
/// dropped, on every path, errors and early returns included: no run leaves
/// a traced process stopped.
#[derive(Debug)]
pub struct Stopped {
    pid: u32,
}

impl Stopped {
    /// Takes charge of `pid`, which BPF has stopped.
    pub fn adopt(pid: u32) -> Self {
        Stopped { pid }
    }

    /// Stops `pid` and waits (up to a second) until all its threads are;
    /// `None` when it could not be stopped (it is gone, or does not stop).
    pub fn stop(pid: u32) -> Option<Self> {
        kill(Pid::from_raw(pid as i32), Signal::SIGSTOP).ok()?;
        let stopped = Stopped { pid };
        wait_stopped(pid).then_some(stopped)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        let _ = kill(Pid::from_raw(self.pid as i32), Signal::SIGCONT);
    }
}

/// Waits (up to a second) until every thread of `pid` is stopped.
pub fn wait_stopped(pid: u32) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(1) {
        // Gone meanwhile: there is nothing to wait for.
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return false;
        };
        let all_stopped = tasks.flatten().all(|t| {
            let stat = std::fs::read_to_string(t.path().join("stat")).unwrap_or_default();
            parse_stat(&stat).is_some_and(|s| matches!(s.state, 'T' | 't' | 'Z' | 'X'))
        });
        if all_stopped {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    false
}

/// True while process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|s| s.state != 'Z')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_are_names_or_numbers_with_an_optional_group() {
        let root = credentials("root").unwrap();
        assert_eq!((root.uid.as_raw(), root.gid.as_raw()), (0, 0));
        assert_eq!(credentials("0").unwrap(), root);
        let both = credentials("0:100").unwrap();
        assert_eq!((both.uid.as_raw(), both.gid.as_raw()), (0, 100));
        assert!(both.groups.contains(&Gid::from_raw(100)));
        let unknown = credentials("4242424:4343").unwrap();
        assert_eq!(unknown.groups, [Gid::from_raw(4343)]);
        let err = |spec| credentials(spec).unwrap_err().to_string();
        assert_eq!(err("no-such-user-x"), "no such user: no-such-user-x");
        assert_eq!(
            err("root:no-such-group-x"),
            "no such group: no-such-group-x"
        );
        assert_eq!(
            err("4242424"),
            "uid 4242424 has no entry in the user database: give its group too, as -u 4242424:GID"
        );
    }

    #[test]
    fn stat_lines_parse_with_odd_commands() {
        let kthreadd = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 25 0";
        let s = parse_stat(kthreadd).unwrap();
        assert_eq!((s.comm.as_str(), s.state), ("kthreadd", 'S'));
        assert_ne!(s.flags & PF_KTHREAD, 0);
        let odd = "77 (a) b (c) Z 1 77 77 0 -1 4194316 0 0";
        let s = parse_stat(odd).unwrap();
        assert_eq!(
            (s.comm.as_str(), s.state, s.flags),
            ("a) b (c", 'Z', 4194316)
        );
        assert!(parse_stat("12 (cut").is_none());
    }
}
