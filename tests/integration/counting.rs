//! Counting mode (the live `--format=summary`, counted in BPF) agrees with
//! `--record` + `--report --format=summary` of the same run options: the
//! same calls per function, exactly, at any depth (past BPF's 1,024 frames),
//! for calls that end by an exception, a longjmp or their thread's end, and
//! under -f, -N, --max-depth, -t and --max-rate; where the program sleeps a
//! known time, the same Total.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::common::{Build, fixture, ns_of, require_bpf, run, summary_calls, trace, utrace};
use crate::record;

/// One row of a summary table: calls, and Total, Self, Avg, Min, Max in ns.
#[derive(Debug, Clone, Copy)]
struct Row {
    calls: u64,
    total: f64,
    own: f64,
    avg: f64,
    min: f64,
    max: f64,
}

/// The rows of a summary table by function name.
fn rows(text: &str) -> BTreeMap<String, Row> {
    let table = &text[text.find("      Calls").expect("a summary table")..];
    table
        .lines()
        .skip(2)
        .take_while(|l| !l.trim().is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let d = |i: usize| ns_of(&format!("{} {}", f[1 + 2 * i], f[2 + 2 * i]));
            let row = Row {
                calls: f[0].replace(',', "").parse().unwrap(),
                total: d(0),
                own: d(1),
                avg: d(2),
                min: d(3),
                max: d(4),
            };
            (f[f.len() - 2].to_string(), row)
        })
        .collect()
}

/// The live counted summary of `bin args` under `opts`.
fn counted(bin: &Path, args: &[&str], opts: &[&str]) -> String {
    let opts: Vec<&str> = ["--format=summary"].iter().chain(opts).copied().collect();
    let t = trace(bin, args, &opts);
    assert!(
        t.graph.contains(" counted ") && t.graph.contains(", 0 lost,"),
        "{}\n{}",
        t.graph,
        t.stderr
    );
    t.graph
}

/// `--record opts` of `bin args`, then `--report --format=summary report`.
fn reported(bin: &Path, args: &[&str], opts: &[&str], report: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("run.data");
    // Not record::record(): a fixture may exit non-zero on purpose (`ends`).
    let out = run(
        utrace()
            .arg("--record")
            .args(opts)
            .arg("-d")
            .arg(&data)
            .arg("--")
            .arg(bin)
            .args(args),
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Wrote "), "{stderr}");
    let summary: Vec<&str> = ["--format=summary"].iter().chain(report).copied().collect();
    record::report(&data, &summary)
}

/// Asserts the counted and the reported summaries have the same calls per
/// function, and min ≤ avg ≤ max in every counted row; returns both tables.
#[track_caller]
fn same_calls(
    bin: &Path,
    args: &[&str],
    opts: &[&str],
    report: &[&str],
) -> (BTreeMap<String, Row>, BTreeMap<String, Row>) {
    let live = counted(bin, args, opts);
    let recorded = reported(bin, args, opts, report);
    assert_eq!(
        summary_calls(&live),
        summary_calls(&recorded),
        "live:\n{live}\nreport:\n{recorded}"
    );
    let live = rows(&live);
    for (name, r) in &live {
        assert!(r.min <= r.avg && r.avg <= r.max, "{name}: {r:?}");
        assert!(r.own <= r.total + 1.0 || r.calls > 1, "{name}: {r:?}");
    }
    (live, rows(&recorded))
}

#[test]
fn counting_counts_the_functions_of_a_library_loaded_later() {
    if !require_bpf() {
        return;
    }
    // The plugin's functions are numbered when dlopen maps it, after BPF's
    // table of counts was sized: they are counted all the same, twice over
    // (loaded, closed, loaded again).
    let plugin = fixture("plugin", Build::O2);
    let plugin = plugin.to_str().unwrap();
    let bin = fixture("dlopen", Build::O2);
    let (live, _) = same_calls(&bin, &[plugin], &["--nest-lib", "plugin*"], &[]);
    let calls = |name: &str| live.get(name).map(|r| r.calls);
    assert_eq!(
        [
            calls("plugin_entry"),
            calls("plugin_work"),
            calls("plugin_helper")
        ],
        [Some(2), Some(5), Some(5)],
        "{live:?}"
    );
}

#[test]
fn counting_is_exact_past_the_frames_bpf_keeps() {
    if !require_bpf() {
        return;
    }
    // recurse nests 1,200 deep under main: 177 of its calls and leaf are
    // deeper than BPF's 1,024 frames, 356 entries and exits.
    let (live, _) = same_calls(&fixture("deep", Build::O2), &["1200"], &[], &[]);
    let text = counted(&fixture("deep", Build::O2), &["1200"], &[]);
    let streamed = "(356 events streamed for calls deeper than 1024 frames, the rest in BPF)";
    assert!(text.contains(streamed), "{text}");
    let (recurse, main) = (live["recurse"], live["main"]);
    assert_eq!(
        (recurse.calls, live["leaf"].calls, main.calls),
        (1200, 1, 1)
    );
    // Total counts the outermost activation only: within main's.
    assert!(
        recurse.total <= main.total && recurse.total >= recurse.max,
        "{live:?}"
    );
    // Self adds up: recurse's own time plus leaf's is all of the outermost call.
    let sum = recurse.own + live["leaf"].total;
    assert!(
        (sum - recurse.total).abs() <= recurse.total * 0.01,
        "{live:?}"
    );
}

#[test]
fn counting_is_exact_in_deep_mutual_and_pointer_recursion() {
    if !require_bpf() {
        return;
    }
    let (live, _) = same_calls(&fixture("mutual", Build::O2), &[], &[], &[]);
    let calls: Vec<u64> = ["ping", "pong", "via"].map(|f| live[f].calls).to_vec();
    assert_eq!(calls, [5000, 5000, 5000]);
    // ping and pong open each other: each Total is its outermost call's.
    assert!(live["ping"].total <= live["main"].total, "{live:?}");
    assert!(live["via"].total >= live["via"].max, "{live:?}");
}

#[test]
fn counting_counts_frames_a_longjmp_abandons() {
    if !require_bpf() {
        return;
    }
    let (live, _) = same_calls(&fixture("jmp", Build::O2), &[], &[], &[]);
    let levels: Vec<u64> = ["level1", "level2", "level3"]
        .map(|f| live[f].calls)
        .to_vec();
    assert_eq!(levels, [5, 5, 5]);
}

#[test]
fn counting_counts_calls_an_exception_unwinds() {
    if !require_bpf() {
        return;
    }
    let select = [
        "-f",
        "f?",
        "-f",
        "worker",
        "-f",
        "caught",
        "-f",
        "on_rethrow",
        "-f",
        "main",
    ];
    let (live, _) = same_calls(&fixture("throw", Build::O2), &[], &select, &[]);
    for f in ["f1(int)", "f2(int)", "f3(int)", "f4(int)", "f5(int)"] {
        assert_eq!(live[f].calls, 32, "{f}: {live:?}");
    }
    assert_eq!(live["caught(int)"].calls, 16);
}

#[test]
fn counting_counts_calls_an_exception_leaves_at_a_call_return_site() {
    if !require_bpf() {
        return;
    }
    let select = ["-f", "parse*", "-f", "check*", "-f", "free@plt"];
    let (live, _) = same_calls(&fixture("padcall", Build::O2), &[], &select, &[]);
    let calls: Vec<u64> = ["parse(int)", "check(int)", "free@plt"]
        .map(|f| live[f].calls)
        .to_vec();
    assert_eq!(calls, [2, 3, 3], "{live:?}");
}

#[test]
fn counting_counts_calls_ended_where_they_return() {
    if !require_bpf() {
        return;
    }
    let select = [
        "-f", "leafy*", "-f", "twice*", "-f", "down*", "-f", "pointed*", "-f", "handoff*", "-f",
        "tailee*",
    ];
    let (live, _) = same_calls(&fixture("returns", Build::O2), &[], &select, &[]);
    let calls: Vec<u64> = ["twice(int)", "leafy(int)", "down(int)", "pointed(int)"]
        .map(|f| live[f].calls)
        .to_vec();
    assert_eq!(calls, [5, 10, 4, 1], "{live:?}");
    // handoff ends with the call it jumps to: its Total holds tailee's.
    let (handoff, tailee) = (live["handoff(int)"], live["tailee(int)"]);
    assert_eq!((handoff.calls, tailee.calls), (1, 1), "{live:?}");
    assert!(handoff.total >= tailee.total, "{live:?}");
    // down's outermost call holds the other three and their twice calls.
    assert!(live["down(int)"].total >= live["down(int)"].max, "{live:?}");
}

#[test]
fn counting_times_tail_calls_to_their_return() {
    if !require_bpf() {
        return;
    }
    // Tail jumps chain the jumping frames on one slot (exits at ret sites):
    // each ends when the call it jumped to returns, 50 ms per inner().
    let (live, recorded) = same_calls(&fixture("tailcalls", Build::O2), &[], &[], &[]);
    let calls: Vec<u64> = ["outerf()", "three()", "two()", "inner()", "usleep@plt"]
        .map(|f| live[f].calls)
        .to_vec();
    assert_eq!(calls, [1, 1, 1, 3, 3], "{live:?}");
    for (f, ms) in [
        ("outerf()", 100.0),
        ("three()", 50.0),
        ("two()", 50.0),
        ("inner()", 150.0),
    ] {
        assert_lasted(&live, &recorded, f, ms);
    }
}

/// Asserts `f` ran `ms` in all (up to 30 ms more, for the tracing), counted
/// as recorded (within 20 ms).
#[track_caller]
fn assert_lasted(live: &BTreeMap<String, Row>, recorded: &BTreeMap<String, Row>, f: &str, ms: f64) {
    let (l, r) = (live[f].total, recorded[f].total);
    assert!(l >= ms * 1e6 && l < (ms + 30.0) * 1e6, "{f}: {l} ns");
    assert!((l - r).abs() < 20e6, "{f}: {l} / {r} ns");
}

#[test]
fn counting_ends_tail_calls_where_their_callee_says() {
    if !require_bpf() {
        return;
    }
    // Past the hijacks deep recursion holds, shrink's `jmp inner` keeps its
    // frame open over inner: all of inner's time is shrink's callees' time.
    let (live, _) = same_calls(&fixture("deeptail", Build::O2), &[], &[], &[]);
    let (shrink, inner) = (live["shrink"], live["inner"]);
    assert_eq!((shrink.calls, inner.calls), (201, 201), "{live:?}");
    let callees = shrink.total - shrink.own;
    assert!(
        (callees - inner.total).abs() <= inner.total / 100.0,
        "{live:?}"
    );
    // viaptr's `jmp *op` goes to code not traced: it ends at the jump, and
    // the calls main makes next are none of its own.
    let opts = ["-f", "main", "-f", "viaptr*", "-f", "after*"];
    let (live, _) = same_calls(&fixture("ptrjump", Build::O2), &[], &opts, &[]);
    assert_eq!(live["viaptr(long)"].calls, 5, "{live:?}");
    assert_eq!(
        live["viaptr(long)"].own, live["viaptr(long)"].total,
        "{live:?}"
    );
}

#[test]
fn counting_counts_calls_a_rust_panic_unwinds() {
    if !require_bpf() {
        return;
    }
    let opts = ["-f", "panics::*"];
    let (live, recorded) = same_calls(&fixture("panics", Build::V0), &[], &opts, &[]);
    for f in ["panics::guarded", "panics::risky", "panics::deeper"] {
        assert_eq!(live[f].calls, 4, "{f}: {live:?}");
        // Two of the four sleep 10 ms before their panic.
        let (l, r) = (live[f].total, recorded[f].total);
        assert!((20e6..60e6).contains(&l), "{f}: {l} ns");
        assert!((l - r).abs() < 10e6, "{f}: {l} / {r} ns");
    }
}

#[test]
fn counting_ends_calls_that_never_return_with_their_thread() {
    if !require_bpf() {
        return;
    }
    // run() sleeps 100 ms, then finish() calls exit(3); quit() pthread_exit()s.
    let (live, recorded) = same_calls(&fixture("ends", Build::O2), &[], &[], &[]);
    for f in ["main", "run", "finish", "worker", "quit"] {
        assert_eq!(live[f].calls, 1, "{f}: {live:?}");
    }
    for f in ["main", "run"] {
        let (l, r) = (live[f].total, recorded[f].total);
        assert!(l >= 100e6 && r >= 100e6, "{f}: {l} / {r} ns");
        assert!((l - r).abs() < 20e6, "{f}: {l} / {r} ns");
    }
}

#[test]
fn counting_follows_every_thread() {
    if !require_bpf() {
        return;
    }
    let (live, _) = same_calls(&fixture("threads", Build::O2), &[], &[], &[]);
    assert_eq!((live["work"].calls, live["thread_main"].calls), (400, 4));
}

#[test]
fn counting_max_depth_hides_what_the_report_hides() {
    if !require_bpf() {
        return;
    }
    let calls = fixture("calls", Build::O2);
    for depth in ["0", "1", "2"] {
        let live = counted(&calls, &[], &["--max-depth", depth]);
        let recorded = reported(&calls, &[], &[], &["--max-depth", depth]);
        assert_eq!(
            summary_calls(&live),
            summary_calls(&recorded),
            "--max-depth {depth}"
        );
    }
    let live = counted(&calls, &[], &["--max-depth", "0"]);
    assert_eq!(summary_calls(&live), crate::common::counts(&[("main", 1)]));
    // main's own time then includes all it called.
    let main = rows(&live)["main"];
    assert_eq!(main.own, main.total, "{live}");
    // Past BPF's frames too: recurse at depths 1..=200 of 300.
    let deep = fixture("deep", Build::O2);
    let live = counted(&deep, &["300"], &["--max-depth", "200"]);
    let recorded = reported(&deep, &["300"], &[], &["--max-depth", "200"]);
    assert_eq!(summary_calls(&live), summary_calls(&recorded));
    assert_eq!(summary_calls(&live)["recurse"], 200);
}

#[test]
fn counting_time_filter_keeps_what_the_report_keeps() {
    if !require_bpf() {
        return;
    }
    // phases: early() at once, late() 300 ms later calling slow() (30 ms).
    let phases = fixture("phases", Build::O2);
    let select = [
        "-f", "main", "-f", "early", "-f", "late", "-f", "slow", "-f", "quick",
    ];
    let live = counted(&phases, &[], &[&select[..], &["-t", "10ms"]].concat());
    let recorded = reported(&phases, &[], &select, &["-t", "10ms"]);
    assert_eq!(
        summary_calls(&live),
        summary_calls(&recorded),
        "{live}\n{recorded}"
    );
    let expected = crate::common::counts(&[("main", 1), ("late", 1), ("slow", 1)]);
    assert_eq!(summary_calls(&live), expected, "{live}");
    let (live, recorded) = (rows(&live), rows(&recorded));
    // The hidden calls' time is their callers' own, as in the report.
    assert!(
        live["main"].own > 250e6 && recorded["main"].own > 250e6,
        "{live:?}"
    );
    let (l, r) = (live["slow"].total, recorded["slow"].total);
    assert!(l >= 30e6 && (l - r).abs() < 10e6, "slow: {l} / {r} ns");
}

#[test]
fn counting_function_filters_trace_what_recording_traces() {
    if !require_bpf() {
        return;
    }
    let calls = fixture("calls", Build::O2);
    let (live, _) = same_calls(&calls, &[], &["-f", "b", "-f", "c"], &[]);
    assert_eq!((live["b"].calls, live["c"].calls, live.len()), (6, 6, 2));
    let (live, _) = same_calls(&calls, &[], &["--no-function", "fib"], &[]);
    assert!(
        !live.contains_key("fib") && live["c"].calls == 6,
        "{live:?}"
    );
}

/// Functions --max-rate drops mid-run leave frames whose return is never
/// seen: they end with their caller, as the report ends them, so the
/// recursion's outermost call has its Total and its caller less Self.
#[test]
fn counting_ends_the_open_calls_of_functions_max_rate_drops() {
    if !require_bpf() {
        return;
    }
    let sort = fixture("sort", Build::O2);
    let live = counted(&sort, &["-n", "100000"], &["--max-rate", "2000"]);
    let live = rows(&live);
    let (quicksort, sort_numbers) = (live["quicksort"], live["sort_numbers"]);
    assert!(quicksort.total > 0.9 * sort_numbers.total, "{live:?}");
    assert!(sort_numbers.own < 0.1 * sort_numbers.total, "{live:?}");
}

#[test]
fn counting_times_a_stub_from_its_calls_and_its_jumps() {
    if !require_bpf() {
        return;
    }
    // usleep@plt is entered at main's call and at nap's `jmp`: 20 ms each.
    let (live, recorded) = same_calls(&fixture("jumpstub", Build::O2), &[], &[], &[]);
    for (f, calls, ms) in [("usleep@plt", 3, 60.0), ("nap", 2, 40.0)] {
        assert_eq!(live[f].calls, calls, "{live:?}");
        assert_lasted(&live, &recorded, f, ms);
    }
}

#[test]
fn counting_ends_a_library_call_with_its_callers_exit() {
    if !require_bpf() {
        return;
    }
    // usleep's call returns into nap's epilogue, unprobed: 20 ms each.
    let (live, recorded) = same_calls(&fixture("intoret", Build::O2), &[], &[], &[]);
    for f in ["usleep@plt", "nap"] {
        assert_eq!(live[f].calls, 3, "{live:?}");
        assert_lasted(&live, &recorded, f, 60.0);
    }
}
