//! -p: attach to a running process, count exactly, detach cleanly — checked
//! at the source: the probed instruction's first byte in /proc/PID/mem.

use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{
    Build, assert_text_eq, copy_program, count_calls, counts, fixture, normalise, require_bpf,
    spawn_attached, summary_calls, utrace,
};

/// A copy of `bin` in `dir`: a file of its own, so probes other tests put on
/// the fixture (with no pid filter when they follow forks) never show here.
fn private_copy(bin: &Path, dir: &Path) -> std::path::PathBuf {
    let copy = dir.join(bin.file_name().unwrap());
    copy_program(bin, &copy);
    copy
}

/// A fixture process that reported its pid; killed when dropped.
struct Spin {
    child: Child,
    pid: u32,
}

impl Spin {
    fn start(bin: &Path, args: &[&str]) -> Spin {
        let mut child = Command::new(bin)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting the spin fixture");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("piped"))
            .read_line(&mut line)
            .expect("reading pid");
        let pid = line
            .trim()
            .strip_prefix("pid=")
            .and_then(|p| p.parse().ok())
            .expect("pid=N line");
        Spin { child, pid }
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The fixture's next line of output, trimmed.
    fn next_line(&mut self) -> String {
        let mut line = String::new();
        BufReader::new(self.child.stdout.as_mut().expect("piped"))
            .read_line(&mut line)
            .expect("reading the fixture's output");
        line.trim().to_string()
    }
}

/// Ctrl-C to `tracer`: it detaches and ends with success.
fn ctrl_c(tracer: &mut Child) {
    signal(tracer.id(), libc::SIGINT);
    let status = wait(tracer, Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
}

impl Drop for Spin {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `utrace -p PID` and waits for it to say it is attached.
fn attach(pid: u32, opts: &[&str], graph: &Path) -> Child {
    let mut cmd = utrace();
    cmd.args(opts)
        .arg("-p")
        .arg(pid.to_string())
        .arg("-o")
        .arg(graph);
    spawn_attached(&mut cmd).0
}

fn signal(pid: u32, sig: i32) {
    // SAFETY: kill has no memory-safety preconditions.
    assert_eq!(
        unsafe { libc::kill(pid as i32, sig) },
        0,
        "kill({pid}, {sig})"
    );
}

fn wait(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("waiting") {
            return status;
        }
        assert!(
            start.elapsed() < timeout,
            "utrace did not end within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn attach_counts_exactly_and_ends_with_the_process() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spin = Spin::start(
        &private_copy(&fixture("spin", Build::O2), dir.path()),
        &["-n", "1000"],
    );
    let graph = tempfile::NamedTempFile::new().unwrap();
    let mut tracer = attach(spin.pid, &[], graph.path());
    signal(spin.pid, libc::SIGUSR1);
    let status = wait(&mut tracer, Duration::from_secs(60));
    assert!(status.success(), "{status:?}");
    assert!(!spin.alive());
    let text = std::fs::read_to_string(graph.path()).unwrap();
    assert_eq!(
        count_calls(&text),
        counts(&[("tick", 1000), ("finish", 1), ("printf@plt", 1)]),
        "{text}"
    );
}

/// Threads queue their events in BPF and send them when they block or exit;
/// this one does neither after its last call, so its queue is sent at detach.
#[test]
fn detach_sends_what_a_running_thread_queued() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut spin = Spin::start(
        &private_copy(&fixture("spin", Build::O2), dir.path()),
        &["-n", "5", "-hold"],
    );
    let graph = tempfile::NamedTempFile::new().unwrap();
    let mut tracer = attach(spin.pid, &[], graph.path());
    signal(spin.pid, libc::SIGUSR1);
    assert_eq!(spin.next_line(), "ticks=5");
    ctrl_c(&mut tracer);
    assert!(spin.alive(), "the traced process keeps running");
    let text = std::fs::read_to_string(graph.path()).unwrap();
    assert_eq!(
        count_calls(&text),
        counts(&[
            ("tick", 5),
            ("finish", 1),
            ("printf@plt", 1),
            ("fflush@plt", 1)
        ]),
        "{text}"
    );
}

/// File offset of `name`'s probe in `bin`, from `utrace --list`.
/// The bytes of `bin`'s executable mapping in process `pid` that differ
/// from the file's, as (file offset, byte in memory): the breakpoints of the
/// probes attached there.
fn changed_code(pid: u32, bin: &Path) -> Vec<(u64, u8)> {
    let real = std::fs::canonicalize(bin).unwrap();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let file = std::fs::read(bin).unwrap();
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).unwrap();
    let mut changed = Vec::new();
    for l in maps.lines().filter(|l| l.ends_with(real.to_str().unwrap())) {
        let f: Vec<&str> = l.split_whitespace().collect();
        if !f[1].contains('x') {
            continue;
        }
        let (start, end) = f[0].split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let file_off = u64::from_str_radix(f[2], 16).unwrap();
        let len = (end - start).min(file.len() as u64 - file_off) as usize;
        let mut bytes = vec![0u8; len];
        mem.seek(SeekFrom::Start(start)).unwrap();
        mem.read_exact(&mut bytes).unwrap();
        let on_disk = &file[file_off as usize..file_off as usize + len];
        for (i, (&m, &d)) in bytes.iter().zip(on_disk).enumerate() {
            if m != d {
                changed.push((file_off + i as u64, m));
            }
        }
    }
    changed
}

/// Attaches, checks tick()'s probes are breakpoints in the code, stops
/// utrace with `sig`, and checks the code is the file's again and the
/// process still runs.
fn detach_restores_code(sig: i32) {
    let dir = tempfile::tempdir().unwrap();
    let bin = private_copy(&fixture("spin", Build::O2), dir.path());
    let mut spin = Spin::start(&bin, &[]);
    assert_eq!(changed_code(spin.pid, &bin), [], "code as in the file");
    let graph = tempfile::NamedTempFile::new().unwrap();
    let mut tracer = attach(spin.pid, &["-f", "tick"], graph.path());
    let attached = changed_code(spin.pid, &bin);
    assert!(
        !attached.is_empty() && attached.iter().all(|&(_, b)| b == 0xcc),
        "int3s while attached: {attached:x?}"
    );
    let start = Instant::now();
    while !std::fs::read_to_string(graph.path())
        .unwrap()
        .contains("tick()")
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no tick() traced"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(tracer.id(), sig);
    let status = wait(&mut tracer, Duration::from_secs(60));
    if sig == libc::SIGINT {
        assert!(status.success(), "Ctrl-C detaches cleanly: {status:?}");
    }
    assert_eq!(changed_code(spin.pid, &bin), [], "original code restored");
    std::thread::sleep(Duration::from_millis(100));
    assert!(spin.alive(), "the traced process keeps running");
}

#[test]
fn ctrl_c_detaches_and_leaves_the_process_running() {
    if !require_bpf() {
        return;
    }
    detach_restores_code(libc::SIGINT);
}

#[test]
fn sigkill_of_utrace_leaves_no_probe_behind() {
    if !require_bpf() {
        return;
    }
    detach_restores_code(libc::SIGKILL);
}

/// Attaches to the running fixture with `opts`, tracing its three
/// functions, lets it run until block() waits, and detaches; returns what
/// utrace wrote to `-o` (none with `--record`).
fn detached_while_blocked(opts: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut running = Spin::start(
        &private_copy(&fixture("running", Build::O2), dir.path()),
        &[],
    );
    let out = tempfile::NamedTempFile::new().unwrap();
    let mut cmd = utrace();
    cmd.args(opts)
        .args(["-f", "step", "-f", "work", "-f", "block"])
        .arg("-p")
        .arg(running.pid.to_string());
    if !opts.contains(&"--record") {
        cmd.arg("-o").arg(out.path());
    }
    let mut tracer = spawn_attached(&mut cmd).0;
    signal(running.pid, libc::SIGUSR1);
    assert_eq!(running.next_line(), "blocking");
    // work() and block() are entered microseconds after that line.
    std::thread::sleep(Duration::from_millis(300));
    ctrl_c(&mut tracer);
    assert!(running.alive(), "the traced process keeps running");
    std::fs::read_to_string(out.path()).unwrap()
}

#[test]
fn calls_running_at_detach_close_marked_with_no_duration() {
    if !require_bpf() {
        return;
    }
    let graph = detached_while_blocked(&[]);
    let expected = "
# DURATION     TID     FUNCTION
      <dur> [     1] | step();
      <dur> [     1] | step();
      <dur> [     1] | step();
            [     1] | work() {
            [     1] |   block() {
            [     1] |   } /* block */ /* still running */
            [     1] | } /* work */ /* still running */
";
    assert_text_eq(expected, &normalise(&graph));
}

/// Checks the summary of the running fixture: every call counted, and the
/// rows of the calls still running at the end (block's and work's) marked
/// `+` (times that are lower bounds), with the note under the table.
#[track_caller]
fn assert_running_marked(summary: &str) {
    assert_eq!(
        summary_calls(summary),
        counts(&[("step", 3), ("work", 1), ("block", 1)]),
        "{summary}"
    );
    let marked: Vec<(&str, u64)> = (summary.lines().skip(2))
        .take_while(|l| !l.trim().is_empty())
        .filter(|l| l.contains("s+ "))
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f[f.len() - 2], f[0].parse().unwrap())
        })
        .collect();
    assert_eq!(marked, [("block", 1), ("work", 1)], "{summary}");
    let note = "+ at least: 2 calls were still running when the trace ended, \
                timed to its end: block (1), work (1)";
    assert!(summary.lines().any(|l| l == note), "{summary}");
}

#[test]
fn calls_running_at_detach_count_as_lower_bounds_in_the_report() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("utrace.data");
    detached_while_blocked(&["--record", "-d", data.to_str().unwrap()]);
    let report = |format: &str| crate::record::report(&data, &["--sort=name", format]);
    assert_running_marked(&report("--format=summary"));
    let json: serde_json::Value = serde_json::from_str(&report("--format=json")).unwrap();
    let running: Vec<(&str, u64)> = (json["functions"].as_array().unwrap().iter())
        .map(|f| {
            (
                f["function"].as_str().unwrap(),
                f["running"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(running, [("block", 1), ("step", 0), ("work", 1)], "{json}");
}

#[test]
fn counting_marks_the_calls_running_at_detach_as_the_report_does() {
    if !require_bpf() {
        return;
    }
    let summary = detached_while_blocked(&["--format=summary", "--sort=name"]);
    assert_running_marked(&summary);
}
