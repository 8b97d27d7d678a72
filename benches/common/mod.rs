//! Helpers the benches share (included with `#[path]`, one copy): where
//! things live, cached fixture builds, running a command with a time limit,
//! medians, env knobs, and printing one table as aligned text and Markdown.
//!
//! Only std: the overhead and attach benches drive external binaries and must
//! build and report even while utrace itself is not usable.
#![allow(dead_code)] // each bench uses a different subset

pub mod rounds;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

/// The repository root (Cargo runs benches from there too).
pub fn repo_root() -> PathBuf {
    option_env!("CARGO_MANIFEST_DIR").map_or_else(|| PathBuf::from("."), PathBuf::from)
}

/// target/bench-fixtures: built fixtures and scratch files, kept between runs.
pub fn fixture_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| repo_root().join("target"), PathBuf::from);
    let dir = target.join("bench-fixtures");
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
    dir
}

/// A numeric knob from the environment (`UTRACE_BENCH_*`), or its default.
pub fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

/// Rounds for bench `name`: UTRACE_BENCH_<NAME>_RUNS, else UTRACE_BENCH_RUNS,
/// else 5 (CI gives the slowest benches fewer rounds than the rest).
pub fn runs(name: &str) -> usize {
    let own = format!("UTRACE_BENCH_{}_RUNS", name.to_uppercase());
    let all = env_usize("UTRACE_BENCH_RUNS", 5);
    env_usize(&own, all).max(1)
}

/// The utrace binary Cargo built for this bench (or $UTRACE_BIN), if it runs.
pub fn utrace_bin() -> Option<PathBuf> {
    let bin = std::env::var_os("UTRACE_BIN")
        .map(PathBuf::from)
        .or_else(|| option_env!("CARGO_BIN_EXE_utrace").map(PathBuf::from))
        .unwrap_or_else(|| repo_root().join("target/release/utrace"));
    let ok = Command::new(&bin)
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    ok.is_ok_and(|s| s.success()).then_some(bin)
}

/// `utrace --help` text, to find out which optional flags this build has.
pub fn help_text(bin: &Path) -> String {
    Command::new(bin).arg("--help").output().map_or_else(
        |_| String::new(),
        |o| String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

pub fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Runs `cc args… srcs… -o out` unless `out` is newer than every source and
/// every file in `deps` (headers) and was built by the same command line
/// (kept next to it in `out.cmd`).
pub fn build_cached(
    cc: &str,
    args: &[&str],
    srcs: &[&Path],
    deps: &[&Path],
    out: &Path,
) -> Result<(), String> {
    let cmdline = format!(
        "{cc} {} {}",
        args.join(" "),
        srcs.iter()
            .map(|s| s.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let stamp = PathBuf::from(format!("{}.cmd", out.display()));
    let fresh = mtime(out).is_some_and(|built| {
        srcs.iter()
            .chain(deps)
            .all(|s| mtime(s).is_some_and(|m| m <= built))
    }) && std::fs::read_to_string(&stamp).is_ok_and(|c| c == cmdline);
    if fresh {
        return Ok(());
    }
    eprintln!("bench: {cmdline} -o {}", out.display());
    let o = Command::new(cc)
        .args(args)
        .args(srcs)
        .arg("-o")
        .arg(out)
        .output()
        .map_err(|e| format!("{cc}: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "{cmdline}: {}",
            String::from_utf8_lossy(&o.stderr).trim()
        ));
    }
    std::fs::write(&stamp, cmdline).map_err(|e| e.to_string())
}

/// What a finished (or killed) command left behind.
pub struct Ran {
    /// None when it was killed at the time limit.
    pub status: Option<ExitStatus>,
    pub stdout: String,
    pub stderr: String,
    /// Until it exited, or until the limit when it was killed.
    pub wall: Duration,
    /// After a kill: how long it took to go away (None: still going when we
    /// gave up waiting, e.g. a tracer whose kernel probes are being torn down).
    pub exit_after_kill: Option<Duration>,
    /// After a kill: what `at_limit` said about the process just before it.
    pub at_limit: String,
}

impl Ran {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// The last few lines of stderr, for a failure message.
    pub fn stderr_tail(&self) -> String {
        let lines: Vec<&str> = self.stderr.lines().collect();
        lines[lines.len().saturating_sub(3)..].join(" | ")
    }
}

/// How long a killed command may take to exit before we stop waiting for it.
const KILL_GRACE: Duration = Duration::from_secs(10);

/// Runs `cmd` with piped output, killing it (and its process group) after `limit`.
pub fn run_with_limit(cmd: &mut Command, limit: Duration) -> std::io::Result<Ran> {
    run_until(cmd, limit, &|_| String::new())
}

/// Like [`run_with_limit`]; `at_limit(pid)` looks at the process before the kill.
pub fn run_until(
    cmd: &mut Command,
    limit: Duration,
    at_limit: &dyn Fn(u32) -> String,
) -> std::io::Result<Ran> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    let start = Instant::now();
    let mut child = cmd.spawn()?;
    let out = drain(child.stdout.take().map(|r| Box::new(r) as _));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as _));
    let wait =
        |child: &mut std::process::Child, until: Duration| -> std::io::Result<Option<ExitStatus>> {
            while start.elapsed() <= until {
                if let Some(st) = child.try_wait()? {
                    return Ok(Some(st));
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            Ok(None)
        };
    let mut ran = Ran {
        status: wait(&mut child, limit)?,
        stdout: String::new(),
        stderr: String::new(),
        wall: start.elapsed(),
        exit_after_kill: None,
        at_limit: String::new(),
    };
    if ran.status.is_none() {
        ran.at_limit = at_limit(child.id());
        // SAFETY: kill(2) on the process group created for this child only.
        unsafe { libc_kill(-(child.id() as i32), 9) };
        if wait(&mut child, limit + KILL_GRACE)?.is_none() {
            return Ok(ran); // still exiting: its pipes may stay open, so don't join the readers
        }
        ran.exit_after_kill = Some(start.elapsed() - ran.wall);
    }
    ran.stdout = out.join().unwrap_or_default();
    ran.stderr = err.join().unwrap_or_default();
    Ok(ran)
}

/// Reads a pipe to the end on a thread, so a chatty child never blocks on a full pipe.
fn drain(r: Option<Box<dyn Read + Send>>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut r) = r {
            let _ = r.read_to_end(&mut buf);
        }
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// The state letter of process `pid` (R, S, D, Z…) from /proc/PID/stat.
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: the state follows the last ')'.
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

/// How many perf events (one per classic uprobe) process `pid` holds open.
pub fn perf_event_fds(pid: u32) -> usize {
    let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return 0;
    };
    dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().contains("perf_event"))
        .count()
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

pub fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

/// `key=<number>` anywhere in `text` (the fixtures' `ns_per_call=12.3`).
pub fn find_value(text: &str, key: &str) -> Option<f64> {
    let at = text.find(&format!("{key}="))? + key.len() + 1;
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// 1234567 → "1,234,567" (how utrace prints counts).
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Host context printed with every table: results from a shared 2-core VM are
/// only comparable within one run, and the load says how noisy it was.
pub fn host_line() -> String {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!(
        "kernel {}, {cpus} CPUs, loadavg {}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// Prints `rows` (first row = header) as an aligned text table, then, when
/// `markdown` is set, once more as a Markdown table for the README.
pub fn print_table(rows: &[Vec<String>], markdown: bool) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for (i, r) in rows.iter().enumerate() {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, s)| format!("{s:<w$}", w = width[c]))
            .collect();
        println!("  {}", cells.join("  ").trim_end());
        if i == 0 {
            println!(
                "  {}",
                width
                    .iter()
                    .map(|w| "-".repeat(*w))
                    .collect::<Vec<_>>()
                    .join("  ")
            );
        }
    }
    if markdown {
        println!();
        for (i, r) in rows.iter().enumerate() {
            println!("| {} |", r.join(" | "));
            if i == 0 {
                println!("|{}", "---|".repeat(r.len()));
            }
        }
    }
}

/// Peak resident set size of this process in KiB (VmHWM).
pub fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resets VmHWM to the current RSS (Linux ≥ 4.0), so each stage reports its own peak.
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}
