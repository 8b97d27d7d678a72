//! `--report` applies -f, --no-function, --max-depth, -t, --tid and
//! --since/--until (uftrace's replay -F/-N/-D/-t) to every format: exact
//! trees and counts from fixtures recorded once per test run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::{
    Build, assert_text_eq, counts, fixture, normalise, require_bpf, run, summary_calls, utrace,
};
use crate::record::{json_calls, record, report};

/// `fixture` recorded once per test run with utrace options `opts`, into
/// the cargo target's scratch directory.
fn recorded(cell: &'static OnceLock<PathBuf>, name: &str, opts: &[&str]) -> &'static Path {
    cell.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("report-filters-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join(format!("{name}.data"));
        record(opts, &fixture(name, Build::O2), &[], &data);
        data
    })
}

/// calls.c, every function: main → a ×3 → b ×2 → c; main → fib(10); printf.
fn calls() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    recorded(&DATA, "calls", &[])
}

/// phases.c: early() at once, late() 300 ms later, slow() 30 ms long.
pub(crate) fn phases() -> &'static Path {
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    let opts = [
        "-f", "main", "-f", "early", "-f", "late", "-f", "slow", "-f", "quick",
    ];
    recorded(&DATA, "phases", &opts)
}

fn graph(data: &Path, args: &[&str]) -> String {
    let args: Vec<&str> = ["--format=call-graph"]
        .iter()
        .chain(args)
        .copied()
        .collect();
    normalise(&report(data, &args))
}

/// The frames of a folded report (`main;a;b`), without their weights.
fn folded_stacks(data: &Path, args: &[&str]) -> Vec<String> {
    let args: Vec<&str> = ["--format=folded"].iter().chain(args).copied().collect();
    let text = report(data, &args);
    let stacks = text
        .lines()
        .map(|l| l.rsplit_once(' ').unwrap().0.to_string());
    stacks.collect()
}

#[test]
fn function_shows_the_matching_calls_and_all_they_call_at_depth_0() {
    if !require_bpf() {
        return;
    }
    let b = "
            [     1] | b() {
      <dur> [     1] |   c();
      <dur> [     1] | } /* b */";
    let expected = format!("# DURATION     TID     FUNCTION{}", b.repeat(6));
    assert_text_eq(&expected, &graph(calls(), &["-f", "b"]));
    assert_eq!(
        summary_calls(&report(calls(), &["-f", "b"])),
        counts(&[("b", 6), ("c", 6)])
    );
    assert_eq!(folded_stacks(calls(), &["-f", "b"]), ["b", "b;c"]);
}

#[test]
fn no_function_hides_the_matching_calls_and_all_they_call() {
    if !require_bpf() {
        return;
    }
    let expected = "
# DURATION     TID     FUNCTION
            [     1] | main() {
      <dur> [     1] |   a();
      <dur> [     1] |   a();
      <dur> [     1] |   a();
      <dur> [     1] |   printf@plt();
      <dur> [     1] | } /* main */
";
    let args = ["--no-function", "b", "--no-function", "fib"];
    assert_text_eq(expected, &graph(calls(), &args));
    let json: Vec<&str> = ["--format=json"].iter().chain(&args).copied().collect();
    assert_eq!(
        json_calls(&report(calls(), &json)),
        counts(&[("main", 1), ("a", 3), ("printf@plt", 1)])
    );
}

#[test]
fn max_depth_limits_the_shown_tree_and_counts_from_a_function_filter() {
    if !require_bpf() {
        return;
    }
    let expected = "
# DURATION     TID     FUNCTION
            [     1] | main() {
      <dur> [     1] |   a();
      <dur> [     1] |   a();
      <dur> [     1] |   a();
      <dur> [     1] |   fib();
      <dur> [     1] |   printf@plt();
      <dur> [     1] | } /* main */
";
    assert_text_eq(expected, &graph(calls(), &["--max-depth", "1"]));
    // Depth 0 is the outermost call shown: under -f, the matching one.
    let a = "
            [     1] | a() {
      <dur> [     1] |   b();
      <dur> [     1] |   b();
      <dur> [     1] | } /* a */";
    let expected = format!("# DURATION     TID     FUNCTION{}", a.repeat(3));
    assert_text_eq(&expected, &graph(calls(), &["-f", "a", "--max-depth", "1"]));
    assert_eq!(
        summary_calls(&report(calls(), &["-f", "fib", "--max-depth", "2"])),
        counts(&[("fib", 7)]),
        "fib(10), its two callees and their four"
    );
}

#[test]
fn time_filter_keeps_long_calls_and_their_callers() {
    if !require_bpf() {
        return;
    }
    let expected = "
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   late() {
      <dur> [     1] |     slow();
      <dur> [     1] |   } /* late */
      <dur> [     1] | } /* main */
";
    assert_text_eq(expected, &graph(phases(), &["-t", "10ms"]));
    assert_eq!(
        summary_calls(&report(phases(), &["-t", "10ms"])),
        counts(&[("main", 1), ("late", 1), ("slow", 1)])
    );
}

#[test]
fn since_and_until_keep_the_calls_running_in_the_window() {
    if !require_bpf() {
        return;
    }
    let late = "
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   late() {
      <dur> [     1] |     quick();
            [     1] |     slow() {
      <dur> [     1] |       quick();
      <dur> [     1] |     } /* slow */
      <dur> [     1] |   } /* late */
      <dur> [     1] | } /* main */
";
    assert_text_eq(late, &graph(phases(), &["--since", "0.15"]));
    let early = "
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   early() {
      <dur> [     1] |     quick();
      <dur> [     1] |     quick();
      <dur> [     1] |   } /* early */
      <dur> [     1] | } /* main */
";
    assert_text_eq(early, &graph(phases(), &["--until", "150ms"]));
    assert_eq!(
        folded_stacks(phases(), &["--since", "0.15", "-t", "10ms"]),
        ["main", "main;late", "main;late;slow"]
    );
    let chrome = report(phases(), &["--format=chrome", "--until", "0.15"]);
    let v: serde_json::Value = serde_json::from_str(&chrome).expect("chrome JSON parses");
    let mut names: Vec<&str> = v["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["early", "main", "quick", "quick"], "{chrome}");
}

#[test]
fn tid_keeps_the_calls_of_the_threads_named() {
    if !require_bpf() {
        return;
    }
    static DATA: OnceLock<PathBuf> = OnceLock::new();
    let data = DATA.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("report-filters-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let data = dir.join("threads.data");
        let opts = ["-f", "thread_main", "-f", "work", "-f", "main"];
        record(&opts, &fixture("threads", Build::O2), &["2"], &data);
        data
    });
    // The TIDs as the report shows them, main's first. (Which thread's
    // first line comes first in the file depends on which flushed its
    // events first: a worker can finish before main first blocks.)
    let full = report(data, &["--format=call-graph"]);
    let mut tids: Vec<String> = Vec::new();
    for line in full.lines() {
        let Some(tid) = line.split('[').nth(1).and_then(|t| t.split(']').next()) else {
            continue;
        };
        let tid = tid.trim().to_string();
        if line.contains("| main()") {
            tids.retain(|t| *t != tid);
            tids.insert(0, tid);
        } else if !tids.contains(&tid) {
            tids.push(tid);
        }
    }
    assert_eq!(tids.len(), 5, "{full}");
    let expected = "
# DURATION     TID     FUNCTION
            [     1] | thread_main() {
      <dur> [     1] |   work();
      <dur> [     1] |   work();
      <dur> [     1] | } /* thread_main */
";
    assert_text_eq(expected, &graph(data, &["--tid", &tids[1]]));
    let two = format!("{},{}", tids[0], tids[2]);
    let summary: BTreeMap<String, usize> = summary_calls(&report(data, &["--tid", &two]));
    assert_eq!(
        summary,
        counts(&[("main", 1), ("thread_main", 1), ("work", 2)])
    );
}

#[test]
fn a_pattern_matching_no_recorded_function_is_refused_in_one_line() {
    if !require_bpf() {
        return;
    }
    let out = run(
        utrace()
            .args(["--report", "-f", "nope*", "-d"])
            .arg(calls()),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "utrace: {}: no function of the trace matches -f 'nope*' (`utrace --report` lists the functions it holds)\n",
            calls().display()
        )
    );
}
