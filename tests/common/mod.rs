//! The integration tests' harness: builds the fixture programs (cached, parallel-safe),
//! gates BPF tests on root, runs utrace with a timeout, and turns its live output into
//! something exact tests can compare: durations and ids normalised, calls counted, text
//! compared with a readable line diff. Its own unit tests are at the bottom.
#![allow(dead_code)] // each test file uses a different part of it

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

/// How a fixture is built. C and C++ take the first six, Rust the last two.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Build {
    /// `-O0`, PIE.
    O0,
    /// `-O2`, PIE: what distributions ship.
    O2,
    /// `-O2 -fno-pie -no-pie`: absolute addresses, ET_EXEC.
    NoPie,
    /// `-O2 -fcf-protection=full -fno-omit-frame-pointer` (Ubuntu/Fedora): `endbr64; push %rbp`,
    /// except leaf functions that need no stack: gcc gives them no frame (`endbr64; lea …`).
    Cet,
    /// `-O2 -pg -mfentry -mnop-mcount -mrecord-mcount`, non-PIE: a nop5 at every entry.
    Nop5,
    /// clang `-O2 -fpatchable-function-entry=5`, PIE: a 5-byte nop (`0f 1f 44 00 08`) at every entry.
    Patchable,
    /// rustc `-C opt-level=2 -C symbol-mangling-version=v0`.
    V0,
    /// rustc `-C opt-level=2` with the default (legacy) mangling: naming `legacy` explicitly
    /// needs `-Z unstable-options` on stable rustc.
    Legacy,
}

impl Build {
    /// The C/C++ variants, for tests that run one fixture every way.
    pub const C: [Build; 5] = [Build::O0, Build::O2, Build::NoPie, Build::Cet, Build::Nop5];

    /// The file-name suffix: `target/fixtures/<name>-<suffix>`.
    pub fn suffix(self) -> &'static str {
        match self {
            Build::O0 => "O0",
            Build::O2 => "O2",
            Build::NoPie => "nopie",
            Build::Cet => "cet",
            Build::Nop5 => "nop5",
            Build::Patchable => "patchable",
            Build::V0 => "v0",
            Build::Legacy => "legacy",
        }
    }

    /// Compiler flags for C and C++ (`shared`: a plugin, built -fPIC instead of PIE).
    fn c_flags(self, shared: bool) -> Vec<&'static str> {
        let mut flags = match self {
            Build::O0 => vec!["-O0", "-g"],
            Build::O2 | Build::NoPie => vec!["-O2", "-g"],
            Build::Cet => vec![
                "-O2",
                "-g",
                "-fcf-protection=full",
                "-fno-omit-frame-pointer",
            ],
            Build::Nop5 => vec![
                "-O2",
                "-g",
                "-pg",
                "-mfentry",
                "-mnop-mcount",
                "-mrecord-mcount",
            ],
            Build::Patchable => vec!["-O2", "-g", "-fpatchable-function-entry=5"],
            Build::V0 | Build::Legacy => {
                panic!("{self:?} is a Rust build: C and C++ take O0..Patchable")
            }
        };
        flags.extend(match self {
            _ if shared => ["-shared", "-fPIC"],
            Build::NoPie | Build::Nop5 => ["-fno-pie", "-no-pie"],
            _ => ["-fPIE", "-pie"],
        });
        flags
    }
}

/// `<target>/fixtures`, next to `<target>/release`: CARGO_TARGET_TMPDIR is `<target>/tmp`.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("fixtures")
}

fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Builds tests/fixtures/<name>.{c,cpp,rs} into `target/fixtures/<name>-<suffix>` (for
/// `plugin`, the shared library `plugin-<suffix>.so`) unless an up-to-date build is there,
/// and returns its path. Parallel-safe: builds in a private directory, then renames.
pub fn fixture(name: &str, build: Build) -> PathBuf {
    static BUILDING: Mutex<()> = Mutex::new(()); // one build at a time in this process
    let _guard = BUILDING.lock().unwrap_or_else(|e| e.into_inner());
    let src = ["c", "cpp", "rs"]
        .iter()
        .map(|ext| source_dir().join(format!("{name}.{ext}")))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("no fixture tests/fixtures/{name}.{{c,cpp,rs}}"));
    let ext = if name == "plugin" { ".so" } else { "" };
    let out = fixtures_dir().join(format!("{name}-{}{ext}", build.suffix()));
    let inputs = [
        src.clone(),
        source_dir().join("fixture.h"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join(file!()),
    ];
    if is_fresh(&out, &inputs) {
        return out;
    }
    // A private directory per build: rustc puts its temporaries next to its output, under
    // names that two processes building the same fixture would share.
    let dir = fixtures_dir().join(format!(
        ".build-{name}-{}-{}",
        build.suffix(),
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).expect("creating target/fixtures");
    let tmp = dir.join(out.file_name().expect("file name"));
    for mut cmd in build_commands(name, &src, build, &tmp) {
        let res = cmd
            .output()
            .unwrap_or_else(|e| panic!("running {cmd:?}: {e} (tools/setup installs compilers)"));
        assert!(
            res.status.success(),
            "building fixture {name} failed: {cmd:?}\n{}",
            String::from_utf8_lossy(&res.stderr)
        );
    }
    std::fs::rename(&tmp, &out).expect("renaming the built fixture");
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// True when `out` exists and is newer than every input that exists.
fn is_fresh(out: &Path, inputs: &[PathBuf]) -> bool {
    let mtime = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(built) = mtime(out) else {
        return false;
    };
    inputs.iter().filter_map(|p| mtime(p)).all(|t| t <= built)
}

/// The compiler invocations for one fixture (two for Nop5: compile with -pg, link without,
/// because linking with -pg adds gcrt1.o, which writes gmon.out into the cwd at exit).
fn build_commands(name: &str, src: &Path, build: Build, out: &Path) -> Vec<Command> {
    let lang = src.extension().and_then(|e| e.to_str()).unwrap_or("");
    if lang == "rs" {
        let mut rustc = Command::new("rustc");
        rustc
            .args(["--edition", "2021", "-C", "opt-level=2", "-g", "-o"])
            .arg(out)
            .arg(src);
        match build {
            Build::V0 => {
                rustc.args(["-C", "symbol-mangling-version=v0"]);
            }
            Build::Legacy => {}
            _ => panic!("{name} is Rust: use Build::V0 or Build::Legacy, not {build:?}"),
        }
        return vec![rustc];
    }
    let shared = name == "plugin";
    assert!(
        !(shared && build == Build::Nop5),
        "gcc: -mnop-mcount is not implemented for -fPIC (plugin)"
    );
    let cc = match (lang, build) {
        ("cpp", Build::Patchable) => "clang++",
        (_, Build::Patchable) => "clang",
        ("cpp", _) => "g++",
        _ => "gcc",
    };
    let libs: &[&str] = match name {
        "threads" | "threads64" | "throw" | "ends" | "syscalls" => &["-pthread"],
        "dlopen" | "dlloop" => &["-ldl"],
        _ => &[],
    };
    let flags = build.c_flags(shared);
    let mut first = Command::new(cc);
    first.args(["-Wall", "-Wextra"]).arg("-I").arg(source_dir());
    if build != Build::Nop5 {
        first.args(&flags).arg("-o").arg(out).arg(src).args(libs);
        return vec![first];
    }
    let obj = out.with_extension("o");
    first.args(&flags).arg("-c").arg("-o").arg(&obj).arg(src);
    let mut link = Command::new(cc);
    link.args(["-no-pie", "-o"]).arg(out).arg(&obj).args(libs);
    vec![first, link]
}

/// Whether a BPF test can run. Root is needed (CAP_BPF, CAP_PERFMON and CAP_SYS_ADMIN for
/// uprobe_multi). Not root: under CI=true it panics, so CI can never pass by skipping;
/// otherwise it says why once on the real stderr (past the test harness' capture) and the
/// caller returns early: `if !require_bpf() { return; }`.
pub fn require_bpf() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if matches!(std::env::var("CI").as_deref(), Ok("true") | Ok("1")) {
        panic!(
            "BPF tests must run in CI: run as root (utrace needs CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN)"
        );
    }
    static SAID: Once = Once::new();
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "utrace tests: not root: skipping the BPF tests (run tools/test as root)"
        );
    });
    false
}

/// Copies the program `src` to `dst` (a file of its own, so that probes other
/// tests put on `src` never show in it) in a `cp` process. A program the test
/// process wrote itself can fail to start with ETXTBSY: while another test
/// thread spawns a command, its child holds a copy of the write descriptor
/// until it execs, and the kernel runs no file open for writing.
pub fn copy_program(src: &Path, dst: &Path) {
    let status = Command::new("cp")
        .arg(src)
        .arg(dst)
        .status()
        .expect("running cp");
    assert!(
        status.success(),
        "cp {} {}: {status}",
        src.display(),
        dst.display()
    );
}

/// The utrace binary cargo built for this test run.
pub fn utrace() -> Command {
    Command::new(env!("CARGO_BIN_EXE_utrace"))
}

/// Runs `cmd` to completion with its stdout and stderr captured (stdin: /dev/null); kills it
/// and panics after `timeout`, so a hung tracer fails one test instead of stalling CI. (Output
/// is read until the pipes close: a descendant left running with them open delays the return.)
pub fn run(cmd: &mut Command, timeout: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            buf
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped")));
    let err = drain(Box::new(child.stderr.take().expect("piped")));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for child") {
            break status;
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
            panic!("{cmd:?} still running after {timeout:?}: killed\nstderr:\n{stderr}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    }
}

/// Makes a live call graph comparable: every duration (`0.731 us`, `12.5 ms`, `1.283  s`, with
/// the spaces before it) becomes `<dur>` right-aligned in the same width; every TID in
/// `[ 12345]` and every number after `pid`/`tid` (`pid=42`, `PID 42`, `tid: 42`) is renumbered
/// 1, 2, 3… by first appearance, one numbering for both (a main thread's TID is its PID);
/// trailing spaces are removed.
/// The normalised graph of a `main` that runs `round` (lines below main,
/// indented as in the graph) `times` times, then calls printf: the shape
/// of the fixtures that loop a few calls and print their result.
pub fn looped_main(round: &[&str], times: usize) -> String {
    let head = [
        "# DURATION     TID     FUNCTION",
        "            [     1] | main() {",
    ];
    let tail = [
        "      <dur> [     1] |   printf@plt();",
        "      <dur> [     1] | } /* main */",
    ];
    let body = round.iter().cycle().take(times * round.len()).copied();
    head.into_iter()
        .chain(body)
        .chain(tail)
        .map(|l| format!("{l}\n"))
        .collect()
}

/// The duration in ns a call-graph line shows (0 when it shows none).
pub fn duration_of(line: &str) -> u64 {
    let (value, unit) = line
        .split_whitespace()
        .take(2)
        .fold((0.0, ""), |(v, _), w| match w {
            "ns" | "us" | "ms" | "s" => (v, w),
            n => (n.parse().unwrap_or(v), ""),
        });
    let scale = match unit {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        _ => 1e9,
    };
    (value * scale) as u64
}

pub fn normalise(output: &str) -> String {
    let mut ids = Ids::default();
    let lines: Vec<String> = output
        .lines()
        .map(|l| {
            renumber_ids(&replace_durations(l), &mut ids)
                .trim_end()
                .to_string()
        })
        .collect();
    let mut text = lines.join("\n");
    if output.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Ids renumbered by first appearance.
#[derive(Default)]
struct Ids(HashMap<String, usize>);

impl Ids {
    fn number(&mut self, id: &str) -> usize {
        let next = self.0.len() + 1;
        *self.0.entry(id.to_string()).or_insert(next)
    }
}

const UNITS: [&str; 5] = ["ns", "us", "µs", "ms", "s"];

fn digits_end(b: &[u8], from: usize) -> usize {
    (from..b.len())
        .find(|&j| !b[j].is_ascii_digit())
        .unwrap_or(b.len())
}

/// Replaces `<spaces><digits>.<digits> <unit>` with a placeholder of the same width.
fn replace_durations(line: &str) -> String {
    let b = line.as_bytes();
    let (mut out, mut i) = (String::new(), 0);
    while i < b.len() {
        let starts_number = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.');
        if let Some(end) = duration_at(line, i).filter(|_| starts_number) {
            let start = out.trim_end_matches(' ').len();
            let width = out.len() - start + (end - i);
            out.truncate(start);
            out.push_str(&format!("{:>width$}", "<dur>"));
            i = end;
        } else {
            let ch = line[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// If `line[i..]` starts with `\d+\.\d+ {1,2}(ns|us|µs|ms|s)\b`, the index just past the unit.
fn duration_at(line: &str, i: usize) -> Option<usize> {
    let b = line.as_bytes();
    let int_end = digits_end(b, i);
    if int_end == i || b.get(int_end) != Some(&b'.') {
        return None;
    }
    let frac_end = digits_end(b, int_end + 1);
    // uftrace pads the unit to two characters: `1.283  s`.
    let unit_at = (frac_end..b.len()).find(|&j| b[j] != b' ')?;
    if frac_end == int_end + 1 || !(1..=2).contains(&(unit_at - frac_end)) {
        return None;
    }
    let unit = UNITS.iter().find(|u| line[unit_at..].starts_with(*u))?;
    let end = unit_at + unit.len();
    let at_boundary = line[end..]
        .chars()
        .next()
        .is_none_or(|c| !c.is_alphanumeric());
    at_boundary.then_some(end)
}

/// Renumbers the ids of one line (see `id_at`).
fn renumber_ids(line: &str, ids: &mut Ids) -> String {
    let (mut out, mut i) = (String::new(), 0);
    while i < line.len() {
        if let Some((end, text)) = id_at(line, i, ids) {
            out.push_str(&text);
            i = end;
        } else {
            let ch = line[i..].chars().next().expect("in bounds");
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// An id at `i`: `[  123]` (renumbered in the same width) or `pid=123`, `tid 123`, `PID: 123`;
/// returns the index past it and its replacement.
fn id_at(line: &str, i: usize, ids: &mut Ids) -> Option<(usize, String)> {
    let b = line.as_bytes();
    if b[i] == b'[' {
        let from = (i + 1..b.len()).find(|&j| b[j] != b' ')?;
        let end = digits_end(b, from);
        let n = (end > from && b.get(end) == Some(&b']')).then(|| ids.number(&line[from..end]))?;
        return Some((end + 1, format!("[{n:>w$}]", w = end - i - 1)));
    }
    let word = line.get(i..i + 3)?.to_ascii_lowercase();
    if !matches!(word.as_str(), "pid" | "tid") || (i > 0 && b[i - 1].is_ascii_alphanumeric()) {
        return None;
    }
    let from = (i + 3..b.len()).find(|&j| !matches!(b[j], b'=' | b':' | b' '))?;
    let end = digits_end(b, from);
    let n = (from - (i + 3) <= 2 && end > from).then(|| ids.number(&line[from..end]))?;
    Some((end, format!("{}{n}", &line[i..from])))
}

/// Counts the calls in a live call graph: the text after the first `|` of each line, when it
/// is `name() {` or `name();` (a trailing `/* ... */` note ignored), is one call of `name`.
/// Lines without `|` (the program's own output, headers) and closing `}` lines are skipped.
pub fn count_calls(output: &str) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in output.lines() {
        let Some((_, body)) = line.split_once('|') else {
            continue;
        };
        let mut body = body.trim();
        if let Some(open) = body.rfind("/*").filter(|_| body.ends_with("*/")) {
            body = body[..open].trim_end();
        }
        let Some(call) = body.strip_suffix(" {").or_else(|| body.strip_suffix(';')) else {
            continue;
        };
        let name = call.strip_suffix("()").unwrap_or(call).trim();
        if !name.is_empty() && !name.starts_with('}') {
            *counts.entry(name.to_string()).or_insert(0) += 1;
        }
    }
    counts
}

/// Asserts two texts are equal, ignoring blank lines at the start and end (so an expected
/// raw string may start on the line after `r#"`); on mismatch panics with a line diff:
/// `-` only in expected, `+` only in actual.
#[track_caller]
pub fn assert_text_eq(expected: &str, actual: &str) {
    let trim = |s: &str| s.trim_start_matches(['\n', '\r']).trim_end().to_string();
    let (e, a) = (trim(expected), trim(actual));
    if e != a {
        panic!("texts differ (-expected +actual):\n{}", line_diff(&e, &a));
    }
}

/// A longest-common-subsequence line diff, good enough for test outputs (a few thousand lines).
fn line_diff(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    if e.len() * a.len() > 25_000_000 {
        let first = e
            .iter()
            .zip(&a)
            .position(|(x, y)| x != y)
            .unwrap_or(e.len().min(a.len()));
        return format!(
            "too long to diff; first difference at line {}:\n-{:?}\n+{:?}",
            first + 1,
            e.get(first),
            a.get(first)
        );
    }
    // lcs[i][j]: length of the LCS of e[i..] and a[j..].
    let mut lcs = vec![vec![0u32; a.len() + 1]; e.len() + 1];
    for i in (0..e.len()).rev() {
        for j in (0..a.len()).rev() {
            lcs[i][j] = if e[i] == a[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut out, mut i, mut j) = (String::new(), 0, 0);
    while i < e.len() || j < a.len() {
        if i < e.len() && j < a.len() && e[i] == a[j] {
            out += &format!(" {}\n", e[i]);
            (i, j) = (i + 1, j + 1);
        } else if j < a.len() && (i == e.len() || lcs[i][j + 1] >= lcs[i + 1][j]) {
            out += &format!("+{}\n", a[j]);
            j += 1;
        } else {
            out += &format!("-{}\n", e[i]);
            i += 1;
        }
    }
    out
}

/// What one traced run produced: the call graph (written with `-o`, so it
/// stays apart from the program's own stdout), the program's stdout, utrace's
/// stderr and exit code.
pub struct Traced {
    pub graph: String,
    pub stdout: String,
    pub stderr: String,
    pub code: Option<i32>,
}

/// Runs `utrace <opts> -o GRAPH -- <bin> <args>` and collects what it wrote.
pub fn trace(bin: &Path, args: &[&str], opts: &[&str]) -> Traced {
    let graph = tempfile::NamedTempFile::new().expect("temp file");
    let mut cmd = utrace();
    cmd.args(opts)
        .arg("-o")
        .arg(graph.path())
        .arg("--")
        .arg(bin)
        .args(args);
    let out = run(&mut cmd, Duration::from_secs(120));
    Traced {
        graph: std::fs::read_to_string(graph.path()).unwrap_or_default(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        code: out.status.code(),
    }
}

/// The (function, PROBE, EXIT) of each row of `utrace --list`'s output
/// `text` (MODULE OFFSET PROBE EXIT SOURCE FUNCTION), in its order; a
/// function's name may hold spaces.
pub fn list_rows(text: &str) -> Vec<(String, String, String)> {
    (text.lines().skip(1))
        .filter_map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            let (probe, exit) = (cols.get(2)?.to_string(), cols.get(3)?.to_string());
            Some((cols.get(5..)?.join(" "), probe, exit))
        })
        .collect()
}

/// calls.c's calls: main → a ×3 → b ×2 → c, fib(10) (177 calls), printf once.
pub fn calls_counts() -> BTreeMap<String, usize> {
    counts(&[
        ("main", 1),
        ("a", 3),
        ("b", 6),
        ("c", 6),
        ("fib", 177),
        ("printf@plt", 1),
    ])
}

/// (function, calls) rows of a summary table.
pub fn summary_calls(text: &str) -> BTreeMap<String, usize> {
    text.lines()
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (
                f[f.len() - 2].to_string(),
                f[0].replace(',', "").parse().unwrap(),
            )
        })
        .collect()
}

/// Expected call counts, written as `&[("main", 1), ...]`.
pub fn counts(expected: &[(&str, usize)]) -> BTreeMap<String, usize> {
    expected
        .iter()
        .map(|&(name, n)| (name.to_string(), n))
        .collect()
}

/// Asserts each (function, calls) of `expected` is in `counts` exactly
/// (functions not named are not checked).
#[track_caller]
pub fn assert_calls(counts: &BTreeMap<String, usize>, expected: &[(&str, usize)]) {
    for &(name, n) in expected {
        assert_eq!(counts.get(name), Some(&n), "{name}: {counts:?}");
    }
}

/// The distinct TIDs a call graph shows.
pub fn tids(graph: &str) -> std::collections::BTreeSet<&str> {
    graph
        .lines()
        .filter_map(|l| l.split('[').nth(1)?.split(']').next())
        .collect()
}

/// "850 ns", "12.345 us", "1.234 ms", "2.500 s" in ns.
pub fn ns_of(human: &str) -> f64 {
    let (value, unit) = human.split_once(' ').expect("value and unit");
    let scale = match unit {
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => panic!("unit of {human}"),
    };
    value.parse::<f64>().unwrap() * scale
}

/// Starts `cmd`, a `utrace -p`, and waits (a minute at most) for it to say
/// it attached: the child and that line. Its stderr keeps draining after,
/// so utrace never blocks on a full pipe.
pub fn spawn_attached(cmd: &mut Command) -> (Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = cmd.stderr(Stdio::piped()).spawn().expect("starting utrace");
    let mut stderr = BufReader::new(child.stderr.take().expect("piped"));
    let mut line = String::new();
    let start = Instant::now();
    while !line.contains("attached") {
        line.clear();
        if stderr.read_line(&mut line).unwrap_or(0) == 0
            || start.elapsed() > Duration::from_secs(60)
        {
            panic!("utrace never said it attached; last line: {line}");
        }
    }
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVE: &str = "\
# DURATION     TID     FUNCTION
            [ 12345] | main() {
            [ 12345] |   sort_numbers() {
   0.731 us [ 12345] |     compare();   
   1.200 ms [ 12399] | work(); /* unwound */
   1.283  s [ 12399] | } /* thread_main */
  52.004 us [ 12345] |   } /* sort_numbers */
pid=12345 tid 12399 done in 3.5 s
";

    #[test]
    fn normalise_strips_durations_and_renumbers_ids() {
        let expected = "\
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   sort_numbers() {
      <dur> [     1] |     compare();
      <dur> [     2] | work(); /* unwound */
      <dur> [     2] | } /* thread_main */
      <dur> [     1] |   } /* sort_numbers */
pid=1 tid 2 done in <dur>
";
        assert_eq!(normalise(LIVE), expected);
    }

    #[test]
    fn normalise_leaves_other_numbers_alone() {
        assert_eq!(
            normalise("sum=3.5 x [1, 2] 2.0 usd v1.2 us\n"),
            "sum=3.5 x [1, 2] 2.0 usd v1.2 us\n"
        );
    }

    #[test]
    fn count_calls_counts_openings_and_one_liners() {
        let counts = count_calls(LIVE);
        let expected: BTreeMap<String, usize> = [
            ("main", 1),
            ("sort_numbers", 1),
            ("compare", 1),
            ("work", 1),
        ]
        .map(|(k, v)| (k.to_string(), v))
        .into();
        assert_eq!(counts, expected);
        assert_eq!(
            count_calls("  | geo::scale(int)() {\n  | operator()();\n")["geo::scale(int)"],
            1
        );
    }

    #[test]
    fn line_diff_marks_changes() {
        assert_eq!(line_diff("a\nb\nc", "a\nx\nc"), " a\n+x\n-b\n c\n");
        assert_text_eq("\nsame\n", "same");
    }
}
