//! Bugs the re-layering fixed, one test each: live `-o -` means stdout as it
//! does for reports, a run that fails mid-way leaves no process stopped, and
//! an absurd --buffer-size is refused in one line.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{Build, calls_counts, count_calls, fixture, require_bpf, run, utrace};

#[test]
fn live_dash_output_is_stdout_not_a_file_named_dash() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = utrace();
    cmd.current_dir(dir.path())
        .args(["-o", "-", "--"])
        .arg(fixture("calls", Build::O2));
    let out = run(&mut cmd, Duration::from_secs(60));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count_calls(&stdout), calls_counts(), "{stdout}");
    assert!(
        !dir.path().join("-").exists(),
        "a file named '-' was created"
    );
}

#[test]
fn buffer_size_that_overflows_is_refused_in_one_line() {
    let out = run(
        utrace().args(["--buffer-size", "17179869184G", "-c", "true"]),
        Duration::from_secs(10),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "\"17179869184G\": the ring buffer size must be a power of two from 4K to 1G"
        ),
        "{stderr}"
    );
}

/// A tmpfs mounted for one test, unmounted on every path.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "mounting a tmpfs");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// The scheduler state of `pid` (`R`, `S`, `T`, …), or None once it is gone.
fn state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .next()?
        .chars()
        .next()
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Attached with `-p` under --nest-lib to a process that dlopens in a loop
/// (so it is stopped at the loader's breakpoint most of the time), the
/// recording fails when the disk fills. utrace must exit with the error,
/// and the process must run on to its own end: nothing stays stopped.
#[test]
fn a_run_that_fails_leaves_no_process_stopped() {
    if !require_bpf() {
        return;
    }
    let fs = Tmpfs::mount("4m");
    let plugin = fixture("plugin", Build::O2);
    let mut target = Command::new(fixture("dlloop", Build::O2))
        .arg(&plugin)
        .arg("8")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = target.id();
    let data = fs.path().join("x.data");
    let mut tracer = utrace()
        .args(["--record", "--nest-lib", "plugin*", "-d"])
        .arg(&data)
        .args(["-p", &pid.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once the recording has begun, fill the file system: its next write fails.
    let start = Instant::now();
    while !data.exists() && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(300));
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=64k"])
        .arg(format!("of={}", fs.path().join("fill").display()))
        .stderr(Stdio::null())
        .status();
    let status = wait_with_timeout(&mut tracer, Duration::from_secs(30));
    let mut stderr = String::new();
    std::io::Read::read_to_string(tracer.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let Some(status) = status else {
        let _ = tracer.kill();
        let _ = target.kill();
        panic!("utrace did not fail on the full disk: {stderr}");
    };
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    // Stopped for good would be `T` from now on: it must be seen running.
    let seen_running = (0..50).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        state(pid).is_some_and(|s| s != 'T')
    });
    let exited = wait_with_timeout(&mut target, Duration::from_secs(30));
    if exited.is_none() {
        let _ = target.kill();
    }
    assert!(
        seen_running,
        "pid {pid} stayed stopped after utrace failed: {stderr}"
    );
    assert!(
        exited.is_some_and(|s| s.success()),
        "the target did not finish"
    );
}

#[test]
fn the_command_starts_with_sigpipe_at_its_default() {
    if !require_bpf() {
        return;
    }
    let t = crate::common::trace(&fixture("sigpipe", Build::O2), &[], &["-f", "main"]);
    assert_eq!(t.stdout, "sigpipe=default\n", "{}", t.stderr);
    assert_eq!(count_calls(&t.graph).get("main"), Some(&1), "{}", t.graph);
}
