//! Running one program once, under one tracer, and reading what it left.
//!
//! The program's own span comes from benches/real/span.c, preloaded into every
//! run (untraced and traced alike): its constructor stamps the clock, its
//! `on_exit` handler writes `pid status ns` when the program exits. So tracer
//! start-up, attach and detach drop out of the figures, and the exit status
//! is known even under bpftrace and uftrace, which do not pass it on. A
//! program killed by a signal (an aborting exception, a segfault) writes
//! nothing: that is how a crash under a tracer is seen.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A program's stdout larger than this is not compared (a runaway loop).
const STDOUT_CAP: u64 = 64 << 20;
/// utrace's own progress lines, left out of a failure's reason.
fn is_status(line: &str) -> bool {
    [
        "utrace: attached",
        "utrace: detached",
        "Wrote ",
        "View it with",
    ]
    .iter()
    .any(|s| line.starts_with(s))
        || line.starts_with("utrace: ") && line.contains(" functions in ")
}
/// How long a killed tracer may take to exit.
const KILL_GRACE: Duration = Duration::from_secs(20);

/// Where one run's files go, and the preloaded span library.
pub struct Scratch {
    pub dir: PathBuf,
    pub span_lib: PathBuf,
}

impl Scratch {
    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

/// What the program reported about itself through span.c.
#[derive(Clone, Copy, Debug)]
pub struct Span {
    pub ns: u64,
    /// The status passed to exit() (or returned from main).
    pub status: i32,
}

/// One finished (or killed) run.
pub struct Ran {
    pub span: Option<Span>,
    /// None when stdout grew past [`STDOUT_CAP`].
    pub stdout: Option<Vec<u8>>,
    pub stderr: String,
    /// The tracer's (or untraced program's) own exit; None when killed at the limit.
    pub status: Option<ExitStatus>,
    pub limit: Duration,
}

impl Ran {
    /// Why the program did not finish, from what the run left (for notes).
    pub fn failure(&self) -> String {
        if self.status.is_none() {
            return format!("killed after {} s", self.limit.as_secs());
        }
        let tail: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| !is_status(l))
            .collect();
        let tail = tail[tail.len().saturating_sub(2)..].join(" | ");
        match (self.span, self.status) {
            (Some(s), _) if tail.is_empty() => format!("exit status {}", s.status),
            (Some(_), _) => truncate(&tail, 160),
            (None, Some(st)) if tail.is_empty() => {
                format!("program killed by a signal; tracer {st}")
            }
            (None, Some(st)) => format!("{} (program killed; tracer {st})", truncate(&tail, 160)),
            (None, None) => "no exit recorded".into(),
        }
    }
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    format!("{cut}…")
}

/// Runs `argv` with `stdin` (or /dev/null), the span library preloaded for
/// `exe`, stdout and stderr in files; kills its process group after `limit`.
pub fn run(
    scratch: &Scratch,
    argv: &[OsString],
    exe: &Path,
    stdin: Option<&Path>,
    limit: Duration,
) -> std::io::Result<Ran> {
    let (out_path, err_path, span_path) = (
        scratch.file("stdout"),
        scratch.file("stderr"),
        scratch.file("span"),
    );
    let _ = std::fs::remove_file(&span_path);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..])
        .env("LD_PRELOAD", &scratch.span_lib)
        .env("REAL_SPAN_EXE", exe)
        .env("REAL_SPAN_OUT", &span_path)
        .stdout(File::create(&out_path)?)
        .stderr(File::create(&err_path)?)
        .process_group(0);
    match stdin {
        Some(p) => cmd.stdin(File::open(p)?),
        None => cmd.stdin(Stdio::null()),
    };
    let mut child = cmd.spawn()?;
    let status = wait(&mut child, limit)?;
    if status.is_none() {
        // SAFETY: kill(2) on the process group created for this child only.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        wait(&mut child, KILL_GRACE)?;
    }
    let stdout = match std::fs::metadata(&out_path)?.len() {
        n if n > STDOUT_CAP => None,
        _ => Some(std::fs::read(&out_path)?),
    };
    let stderr = read_capped(&err_path)?;
    let span = std::fs::read_to_string(&span_path)
        .ok()
        .and_then(|s| parse_span(&s));
    Ok(Ran {
        span,
        stdout,
        stderr,
        status,
        limit,
    })
}

fn wait(child: &mut std::process::Child, limit: Duration) -> std::io::Result<Option<ExitStatus>> {
    let start = Instant::now();
    while start.elapsed() <= limit {
        if let Some(st) = child.try_wait()? {
            return Ok(Some(st));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    Ok(None)
}

/// The last 64 KiB of a file (a tracer's stderr can be long).
fn read_capped(path: &Path) -> std::io::Result<String> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    let skip = len.saturating_sub(64 << 10);
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(skip))?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// `pid status ns` lines: the first one is the program's (it does not fork).
fn parse_span(text: &str) -> Option<Span> {
    let mut words = text.lines().next()?.split_whitespace().skip(1);
    let status = words.next()?.parse().ok()?;
    let ns = words.next()?.parse().ok()?;
    Some(Span { ns, status })
}
