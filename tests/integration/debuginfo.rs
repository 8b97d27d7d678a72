//! Debug info and names a user can trust (issue 13): a stripped program
//! traced with its separate debug file (found by build-id and by
//! .gnu_debuglink), `file:line` in `--list` and the JSON report, rows that
//! share a name told apart, and a stripped program that exports nothing
//! traced through its PLT stubs. Fixtures are built here, into a temporary
//! directory, because some take two sources or a split.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::{count_calls, require_bpf, run, trace, utrace};

fn fixture_src(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// `cc -o DIR/OUT FLAGS SOURCES…` with the fixtures' include directory.
fn build(dir: &Path, out: &str, cc: &str, sources: &[&str], flags: &[&str]) -> PathBuf {
    let bin = dir.join(out);
    let mut cmd = Command::new(cc);
    cmd.args(["-Wall", "-Wextra", "-I"])
        .arg(fixture_src(""))
        .args(flags)
        .arg("-o")
        .arg(&bin);
    cmd.args(sources.iter().map(|s| fixture_src(s)));
    checked(&mut cmd);
    bin
}

fn checked(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The distributions' split: `objcopy --only-keep-debug BIN DEBUG`, then a
/// stripped copy at `stripped` with `--add-gnu-debuglink=DEBUG` (the link
/// names DEBUG's file name and CRC).
fn split(bin: &Path, debug: &Path, stripped: &Path) {
    checked(
        Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(bin)
            .arg(debug),
    );
    checked(Command::new("strip").arg("-o").arg(stripped).arg(bin));
    checked(
        Command::new("objcopy")
            .arg(format!("--add-gnu-debuglink={}", debug.display()))
            .arg(stripped),
    );
}

fn build_id(bin: &Path) -> String {
    let out = Command::new("readelf").arg("-n").arg(bin).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("Build ID:")).unwrap();
    line.split("Build ID:").nth(1).unwrap().trim().to_string()
}

/// Where `--debug-dir DIR` looks the build-id of `bin` up.
fn build_id_path(dir: &Path, bin: &Path) -> PathBuf {
    let id = build_id(bin);
    dir.join(format!(".build-id/{}/{}.debug", &id[..2], &id[2..]))
}

/// (function, calls), (function, linkage_name) and (function, source) of a JSON report.
type JsonRows = (
    BTreeMap<String, u64>,
    BTreeMap<String, String>,
    BTreeMap<String, Option<String>>,
);

fn json_rows(text: &str) -> JsonRows {
    let value: serde_json::Value =
        serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let mut rows = JsonRows::default();
    for f in value["functions"].as_array().unwrap() {
        let name = f["function"].as_str().unwrap().to_string();
        rows.0.insert(name.clone(), f["calls"].as_u64().unwrap());
        rows.1
            .insert(name.clone(), f["linkage_name"].as_str().unwrap().into());
        rows.2.insert(name, f["source"].as_str().map(str::to_owned));
    }
    rows
}

fn calls(expected: &[(&str, u64)]) -> BTreeMap<String, u64> {
    expected.iter().map(|(n, c)| (n.to_string(), *c)).collect()
}

/// `utrace --list ARGS -- BIN`: (stdout, stderr), which must succeed.
fn list(bin: &Path, args: &[&str]) -> (String, String) {
    let out = run(
        utrace().arg("--list").args(args).arg("--").arg(bin),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// SOURCE and FUNCTION of each `--list` row.
fn listed_sources(text: &str) -> BTreeMap<String, String> {
    let rows = text.lines().skip(1).map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f[5..].join(" "), f[4].to_string())
    });
    rows.collect()
}

/// srcline.c built -O2 -g, split; the stripped copy in `bin/`.
struct Split {
    dir: tempfile::TempDir,
    full: PathBuf,
    stripped: PathBuf,
    debug: PathBuf,
}

fn split_srcline() -> Split {
    let dir = tempfile::tempdir().unwrap();
    let full = build(dir.path(), "srcline", "gcc", &["srcline.c"], &["-O2", "-g"]);
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let stripped = dir.path().join("bin/srcline");
    let debug = dir.path().join("srcline.debug");
    split(&full, &debug, &stripped);
    Split {
        dir,
        full,
        stripped,
        debug,
    }
}

/// Moves the split's debug file under DIR/.build-id/ (not beside the
/// program: found by build-id only); returns DIR, for --debug-dir.
fn by_build_id(s: &Split) -> PathBuf {
    let debug_dir = s.dir.path().join("debug");
    let by_id = build_id_path(&debug_dir, &s.stripped);
    std::fs::create_dir_all(by_id.parent().unwrap()).unwrap();
    std::fs::rename(&s.debug, &by_id).unwrap();
    debug_dir
}

fn srcline_line(line: u32) -> String {
    format!("{}:{line}", fixture_src("srcline.c").display())
}

#[test]
fn stripped_program_traces_with_its_debug_file_found_by_build_id() {
    if !require_bpf() {
        return;
    }
    let s = split_srcline();
    let debug_dir = by_build_id(&s);
    let dir_arg = debug_dir.to_str().unwrap();
    let t = trace(&s.stripped, &[], &["--debug-dir", dir_arg, "--format=json"]);
    assert_eq!(t.stdout, "sum=30\n", "{}", t.stderr);
    assert!(!t.stderr.contains("warning"), "{}", t.stderr);
    let (counts, linkage, sources) = json_rows(&t.graph);
    let expected = [
        ("main", 1),
        ("sum_squares", 1),
        ("square", 4),
        ("printf@plt", 1),
    ];
    assert_eq!(counts, calls(&expected), "{}", t.graph);
    assert_eq!(linkage["printf@plt"], "printf");
    assert_eq!(sources["square"], Some(srcline_line(8)));
    assert_eq!(sources["sum_squares"], Some(srcline_line(13)));
    assert_eq!(sources["main"], Some(srcline_line(23)));
    assert_eq!(sources["printf@plt"], None);
    // --list shows the same, file name and line.
    let (text, _) = list(&s.stripped, &["--debug-dir", dir_arg]);
    let listed = listed_sources(&text);
    assert_eq!(listed["square"], "srcline.c:8", "{text}");
    assert_eq!(listed["sum_squares"], "srcline.c:13", "{text}");
    assert_eq!(listed["printf@plt"], "-", "{text}");
}

/// A program a followed child execs is read as the one utrace started:
/// its debug file is looked for in `--debug-dir` too.
#[test]
fn a_stripped_program_a_child_execs_is_traced_with_its_debug_file() {
    if !require_bpf() {
        return;
    }
    let s = split_srcline();
    let debug_dir = by_build_id(&s);
    let fork = crate::common::fixture("fork", crate::common::Build::O2);
    let program = s.stripped.to_str().unwrap();
    let dir_arg = debug_dir.to_str().unwrap();
    let t = trace(&fork, &[program], &["--debug-dir", dir_arg]);
    assert!(t.stdout.contains("sum=30"), "{}", t.stderr);
    let c = count_calls(&t.graph);
    // square is only in the debug file's symbol table.
    for (name, n) in [("work", 69), ("sum_squares", 1), ("square", 4)] {
        assert_eq!(c.get(name), Some(&n), "{name}: {c:?}\n{}", t.stderr);
    }
}

#[test]
fn stripped_program_traces_with_its_debug_file_found_by_debuglink() {
    if !require_bpf() {
        return;
    }
    let s = split_srcline();
    let beside = s.dir.path().join("bin/.debug/srcline.debug");
    std::fs::create_dir_all(beside.parent().unwrap()).unwrap();
    std::fs::rename(&s.debug, &beside).unwrap();
    let t = trace(&s.stripped, &[], &["--format=json"]);
    assert_eq!(t.stdout, "sum=30\n", "{}", t.stderr);
    let (counts, _, sources) = json_rows(&t.graph);
    let expected = [
        ("main", 1),
        ("sum_squares", 1),
        ("square", 4),
        ("printf@plt", 1),
    ];
    assert_eq!(counts, calls(&expected), "{}", t.graph);
    assert_eq!(sources["square"], Some(srcline_line(8)));
    // DIR/<the binary's directory>/NAME, gdb's third place.
    std::fs::remove_file(&beside).unwrap();
    let debug_dir = s.dir.path().join("debug");
    let bin_dir = std::fs::canonicalize(s.dir.path().join("bin")).unwrap();
    let under = debug_dir
        .join(bin_dir.strip_prefix("/").unwrap())
        .join("srcline.debug");
    std::fs::create_dir_all(under.parent().unwrap()).unwrap();
    checked(
        Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&s.full)
            .arg(&under),
    );
    let (text, stderr) = list(&s.stripped, &["--debug-dir", debug_dir.to_str().unwrap()]);
    assert_eq!(
        listed_sources(&text)["square"],
        "srcline.c:8",
        "{text}{stderr}"
    );
}

#[test]
fn summary_shows_sources_with_srcline() {
    if !require_bpf() {
        return;
    }
    let s = split_srcline();
    let t = trace(&s.full, &[], &["--format=summary", "--srcline"]);
    let row = |name: &str| {
        let found = t.graph.lines().find(|l| l.contains(&format!("  {name}  ")));
        found
            .unwrap_or_else(|| panic!("no {name} row in {}", t.graph))
            .to_string()
    };
    assert!(
        t.graph.lines().next().unwrap().ends_with("Module   Source"),
        "{}",
        t.graph
    );
    assert!(
        row("square").ends_with("srcline  srcline.c:8"),
        "{}",
        t.graph
    );
    assert!(row("printf@plt").ends_with("srcline  -"), "{}", t.graph);
}

#[test]
fn mismatched_debug_files_are_not_used_and_said_once() {
    let s = split_srcline();
    // Another build's debug file where the build-id says: not this binary's.
    let other = build(s.dir.path(), "other", "gcc", &["srcline.c"], &["-O0", "-g"]);
    let debug_dir = s.dir.path().join("debug");
    let by_id = build_id_path(&debug_dir, &s.stripped);
    std::fs::create_dir_all(by_id.parent().unwrap()).unwrap();
    checked(
        Command::new("objcopy")
            .arg("--only-keep-debug")
            .arg(&other)
            .arg(&by_id),
    );
    // And the debuglink's file, changed after the link was made: its CRC.
    let mut bytes = std::fs::read(&s.debug).unwrap();
    bytes.extend_from_slice(b"tampered");
    std::fs::write(&s.debug, &bytes).unwrap();
    let beside = s.dir.path().join("bin/srcline.debug");
    std::fs::rename(&s.debug, &beside).unwrap();
    let (text, stderr) = list(&s.stripped, &["--debug-dir", debug_dir.to_str().unwrap()]);
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    let real = std::fs::canonicalize(&s.stripped).unwrap();
    assert_eq!(
        warnings,
        [
            format!(
                "utrace: warning: not using {} as the debug file of {}: its build-id is {}, srcline's is {}",
                by_id.display(),
                real.display(),
                build_id(&other),
                build_id(&s.stripped)
            )
            .as_str(),
            &format!(
                "utrace: warning: not using {} as the debug file of {}: its CRC-32 is {:#010x}, srcline's .gnu_debuglink expects {:#010x}",
                beside.display(),
                real.display(),
                crc32(&bytes),
                crc32(&bytes[..bytes.len() - 8])
            ),
            &format!(
                "utrace: warning: {} is stripped and exports nothing: only its library calls (PLT stubs) can be traced",
                s.stripped.display()
            ),
        ],
        "{stderr}"
    );
    assert_eq!(
        listed_sources(&text).keys().collect::<Vec<_>>(),
        ["printf@plt"]
    );
}

/// CRC-32 (IEEE, as .gnu_debuglink uses), bit by bit: the tests check the
/// tracer's crc32fast against an implementation of their own.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn missing_debug_dir_is_one_clear_line() {
    let out = run(
        utrace().args(["--list", "--debug-dir", "/nonexistent/debug", "--", "true"]),
        Duration::from_secs(30),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "utrace: --debug-dir /nonexistent/debug: no such directory\n"
    );
}

#[test]
fn two_static_functions_with_one_name_are_told_apart_by_file_and_line() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let sources = ["twins_a.c", "twins_b.c"];
    let bin = build(dir.path(), "twins", "gcc", &sources, &["-O2", "-g"]);
    let t = trace(&bin, &[], &["--format=json"]);
    assert_eq!(t.stdout, "twins=25\n", "{}", t.stderr);
    let expected = [
        ("main", 1),
        ("helper [twins_a.c:9]", 2),
        ("helper [twins_b.c:4]", 3),
        ("from_b", 1),
        ("printf@plt", 1),
    ];
    let (counts, linkage, _) = json_rows(&t.graph);
    assert_eq!(counts, calls(&expected), "{}", t.graph);
    assert_eq!(linkage["helper [twins_b.c:4]"], "helper");
    // The call graph names them the same way.
    let graph = trace(&bin, &[], &[]).graph;
    let graph_calls = count_calls(&graph);
    assert_eq!(
        graph_calls.get("helper() [twins_a.c:9]"),
        Some(&2),
        "{graph}"
    );
    assert_eq!(
        graph_calls.get("helper() [twins_b.c:4]"),
        Some(&3),
        "{graph}"
    );
    // Without debug info, by address.
    let bin = build(dir.path(), "twins-g0", "gcc", &sources, &["-O2", "-g0"]);
    let nm = Command::new("nm").arg(&bin).output().unwrap();
    let helpers: Vec<String> = String::from_utf8_lossy(&nm.stdout)
        .lines()
        .filter(|l| l.ends_with(" t helper"))
        .map(|l| format!("helper [{:#x}]", u64::from_str_radix(&l[..16], 16).unwrap()))
        .collect();
    assert_eq!(helpers.len(), 2, "{helpers:?}");
    let (counts, _, sources) = json_rows(&trace(&bin, &[], &["--format=json"]).graph);
    // nm sorts by name then address: twins_a.c's helper is linked first.
    assert_eq!(
        (counts[&helpers[0]], counts[&helpers[1]]),
        (2, 3),
        "{counts:?}"
    );
    assert_eq!(sources[&helpers[0]], None);
}

#[test]
fn deleting_and_complete_destructors_are_told_apart() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = build(dir.path(), "dtors", "g++", &["dtors.cpp"], &["-O2", "-g"]);
    let t = trace(&bin, &[], &["--format=json"]);
    assert_eq!(t.stdout, "alive=0\n", "{}", t.stderr);
    let (counts, linkage, _) = json_rows(&t.graph);
    let expected = [
        ("main", 1),
        ("drop(Base*)", 2),
        ("Derived::Derived()", 2),
        ("Base::Base()", 2),
        ("Derived::~Derived() [D0]", 2),
        ("Derived::~Derived() [D1]", 2),
        ("Base::~Base() [D1]", 2),
        ("operator new(unsigned long)@plt", 2),
        ("operator delete(void*, unsigned long)@plt", 2),
        ("printf@plt", 1),
    ];
    assert_eq!(counts, calls(&expected), "{}", t.graph);
    assert_eq!(linkage["Derived::~Derived() [D0]"], "_ZN7DerivedD0Ev");
    assert_eq!(linkage["Derived::~Derived() [D1]"], "_ZN7DerivedD1Ev");
}

#[test]
fn stripped_program_without_exports_traces_its_plt_calls() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = build(
        dir.path(),
        "noexports",
        "gcc",
        &["noexports.c"],
        &["-O2", "-s"],
    );
    let t = trace(&bin, &[], &[]);
    assert_eq!(t.stdout, "line\nline\nline\n", "{}", t.stderr);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    let warning = format!(
        "utrace: warning: {} is stripped and exports nothing: only its library calls (PLT stubs) can be traced",
        bin.display()
    );
    let warnings: Vec<&str> = t.stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(warnings, [warning.as_str()], "{}", t.stderr);
    let expected: BTreeMap<String, usize> = [("puts@plt".to_string(), 3)].into();
    assert_eq!(count_calls(&t.graph), expected, "{}", t.graph);
}

#[test]
fn a_lock_prefixed_entry_is_probed_past_or_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let bin = build(
        dir.path(),
        "lockfirst",
        "gcc",
        &["lockfirst.c"],
        &["-O2", "-g"],
    );
    let reason = "the kernel refuses a uprobe on its first instruction (lock bts), and a branch in it returns there";
    let (text, _) = list(&bin, &[]);
    let spin = text
        .lines()
        .find(|l| l.contains("spin_once"))
        .unwrap_or_else(|| panic!("{text}"));
    let fields: Vec<&str> = spin.split_whitespace().collect();
    assert_eq!(fields[2..6], ["refused", "-", "-", "spin_once"], "{text}");
    assert!(spin.ends_with(&format!("# not traced: {reason}")), "{text}");
    let out = run(
        utrace().args(["-f", "spin_once", "--"]).arg(&bin),
        Duration::from_secs(30),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("utrace: spin_once cannot be traced: {reason}\n")
    );
    if !require_bpf() {
        return;
    }
    // bump's `lock addl` is followed by `ret`: probed there, every call seen.
    let t = trace(&bin, &[], &["-f", "bump", "-f", "main", "--format=json"]);
    assert_eq!(t.stdout, "count=5 flag=1\n", "{}", t.stderr);
    let (counts, _, _) = json_rows(&t.graph);
    assert_eq!(counts, calls(&[("main", 1), ("bump", 5)]), "{}", t.graph);
}

#[test]
fn list_notes_functions_that_also_have_inlined_copies() {
    let dir = tempfile::tempdir().unwrap();
    let bin = build(dir.path(), "inlined", "gcc", &["inlined.c"], &["-O2", "-g"]);
    let (text, stderr) = list(&bin, &[]);
    let notes: Vec<&str> = stderr.lines().filter(|l| l.contains("note:")).collect();
    assert_eq!(
        notes,
        [
            "utrace: note: also inlined where they are called, and calls to those copies cannot be seen: square"
        ],
        "{stderr}"
    );
    assert_eq!(listed_sources(&text)["square"], "inlined.c:6", "{text}");
    // Without debug info nothing can be said, and nothing is.
    let bin = build(
        dir.path(),
        "inlined-g0",
        "gcc",
        &["inlined.c"],
        &["-O2", "-g0"],
    );
    let (_, stderr) = list(&bin, &[]);
    assert!(!stderr.contains("note:"), "{stderr}");
}

#[test]
fn a_recording_carries_sources_and_linkage_names_without_the_binary() {
    if !require_bpf() {
        return;
    }
    let s = split_srcline();
    let data = s.dir.path().join("srcline.data");
    let out = run(
        utrace()
            .arg("--record")
            .arg("-d")
            .arg(&data)
            .arg("--")
            .arg(&s.full),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&s.full).unwrap(); // a report never needs the binary
    let out = run(
        utrace()
            .args(["--report", "--format=json", "-d"])
            .arg(&data),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let (counts, linkage, sources) = json_rows(&text);
    assert_eq!(counts["square"], 4, "{text}");
    assert_eq!(sources["square"], Some(srcline_line(8)));
    assert_eq!(linkage["printf@plt"], "printf");
    let out = run(
        utrace().args(["--report", "--srcline", "-d"]).arg(&data),
        Duration::from_secs(60),
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.contains("  square  "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(row.ends_with("srcline  srcline.c:8"), "{text}");
}
