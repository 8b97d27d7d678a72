//! Exits the default mode gets right on real program shapes: recursion no
//! static check sees, far past the kernel's 64 pending returns, and calls
//! that never return because their thread ends. Each against its exact tree.

use std::path::Path;
use std::time::Duration;

use crate::common::{
    Build, Traced, count_calls, counts, fixture, normalise, require_bpf, run, trace, utrace,
};

/// The indentation depth of each call line's body (two spaces a level).
fn max_depth(graph: &str) -> usize {
    graph
        .lines()
        .filter_map(|l| l.split_once("| ").map(|(_, b)| b))
        .map(|b| (b.len() - b.trim_start().len()) / 2)
        .max()
        .unwrap_or(0)
}

#[test]
fn mutual_and_pointer_recursion_10000_deep_is_exact() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("mutual", Build::O2);
    let t = trace(&bin, &[], &[]);
    assert_eq!(t.stdout, "mutual=10000 via=5000\n", "{}", t.stderr);
    assert_eq!(
        count_calls(&t.graph),
        counts(&[
            ("main", 1),
            ("ping", 5000),
            ("pong", 5000),
            ("via", 5000),
            ("printf@plt", 1)
        ]),
        "{}",
        t.stderr
    );
    // Every call returned where it returned: no frame closed by guesswork.
    assert!(!t.graph.contains("/* unwound */"), "{}", t.stderr);
    assert!(!t.graph.contains("no return"), "{}", t.graph);
    // ping(9999) is 10,000 calls deep under main.
    assert_eq!(max_depth(&t.graph), 10_000);
    let last = t.graph.lines().last().unwrap_or_default();
    assert!(last.ends_with("| } /* main */"), "{last}");
}

#[test]
fn deep_recursion_reports_the_tree_it_showed_live() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("mutual", Build::O2);
    let live = trace(&bin, &[], &[]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mutual.data");
    let out = run(
        utrace()
            .args(["--record", "-d"])
            .arg(&data)
            .arg("--")
            .arg(&bin),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = run(
        utrace()
            .args(["--report", "--format=call-graph", "-d"])
            .arg(&data),
        Duration::from_secs(60),
    );
    let reported = String::from_utf8_lossy(&report.stdout);
    assert_eq!(normalise(&reported), normalise(&live.graph));
}

/// Traces fixture `name` (-O2) with the defaults; asserts its stdout and exit
/// code are `output` and that each function of `calls` ran exactly so often.
fn traced_as_expected(name: &str, output: (&str, Option<i32>), calls: &[(&str, usize)]) -> Traced {
    let t = trace(&fixture(name, Build::O2), &[], &[]);
    assert_eq!((t.stdout.as_str(), t.code), output, "{}", t.stderr);
    let counted = count_calls(&t.graph);
    for &(function, n) in calls {
        assert_eq!(counted.get(function), Some(&n), "{function}: {}", t.graph);
    }
    t
}

/// `utrace --list OPTS -- BIN`: its text, and its rows (function, probe,
/// exit).
fn listed(bin: &Path, opts: &[&str]) -> (String, Vec<(String, String, String)>) {
    let out = run(
        utrace().arg("--list").args(opts).arg("--").arg(bin),
        Duration::from_secs(60),
    );
    let list = String::from_utf8_lossy(&out.stdout).into_owned();
    let rows = crate::common::list_rows(&list);
    (list, rows)
}

/// `bin` recorded with `opts`: its call-graph report, normalised, is
/// `expected` (the live graph's tree).
fn assert_recorded_as(bin: &Path, opts: &[&str], expected: &str) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("trace.data");
    crate::record::record(opts, bin, &[], &data);
    let reported = crate::record::report(&data, &["--format=call-graph"]);
    crate::common::assert_text_eq(expected, &normalise(&reported));
}

/// The calls of `graph` whose line ends in `marker`, by name, sorted.
fn marked(graph: &str, marker: &str) -> Vec<String> {
    let mut calls: Vec<String> = graph
        .lines()
        .filter(|l| l.ends_with(marker))
        .filter_map(|l| l.split_once("| ").map(|(_, b)| b.trim()))
        .map(|b| {
            let b = b.strip_suffix(marker).unwrap_or(b).trim_end();
            let b = b.strip_prefix("} /* ").unwrap_or(b);
            let b = b.trim_end_matches(" */").trim_end_matches(';');
            b.strip_suffix("()").unwrap_or(b).to_string()
        })
        .collect();
    calls.sort();
    calls
}

/// The duration in ns of the first line of `graph` that `line` ends.
fn duration_ns(graph: &str, line: &str) -> u64 {
    let l = graph
        .lines()
        .find(|l| l.ends_with(line))
        .unwrap_or_else(|| panic!("no line ending {line:?} in\n{graph}"));
    crate::common::duration_of(l)
}

#[test]
fn calls_that_never_return_end_with_their_thread_marked() {
    if !require_bpf() {
        return;
    }
    let calls = [
        ("main", 1),
        ("run", 1),
        ("worker", 1),
        ("quit", 1),
        ("finish", 1),
    ];
    let t = traced_as_expected("ends", ("bye\n", Some(3)), &calls);
    let ended = marked(&t.graph, " /* no return: thread ended */");
    let expected = [
        "exit@plt",
        "finish",
        "main",
        "pthread_exit@plt",
        "quit",
        "run",
        "worker",
    ];
    assert_eq!(ended, expected, "{}", t.graph);
    // They end when their thread did, not at the end of the trace: finish
    // lasts no longer than exit takes, run its 100 ms sleep and a little.
    let finish = duration_ns(&t.graph, "} /* finish */ /* no return: thread ended */");
    let run = duration_ns(&t.graph, "} /* run */ /* no return: thread ended */");
    assert!(
        finish < 50_000_000,
        "finish lasted {finish} ns:\n{}",
        t.graph
    );
    assert!(
        (100_000_000..150_000_000).contains(&run),
        "run lasted {run} ns"
    );
}

#[test]
fn an_exception_through_a_pointer_tail_call_is_not_aborted() {
    if !require_bpf() {
        return;
    }
    let calls = [
        ("main", 1),
        ("Calc::eval(int) const", 3),
        ("Calc::parse(int) const", 3),
    ];
    let t = traced_as_expected("ptrtail", ("ok=1 errors=2\n", Some(0)), &calls);
    let returned = [
        "            [     1] |   Calc::eval(int) const {",
        "      <dur> [     1] |     Calc::parse(int) const;",
        "      <dur> [     1] |   } /* Calc::eval(int) const */",
    ]
    .join("\n");
    assert!(normalise(&t.graph).contains(&returned), "{}", t.graph);
    // eval leaves only by `jmp *`, which chains it on parse's call: the
    // parse that returns ends it, the two that throw unwind it with them.
    let unwound = marked(&t.graph, " /* unwound */");
    let expected = [
        "Calc::eval(int) const",
        "Calc::eval(int) const",
        "Calc::parse(int) const",
        "Calc::parse(int) const",
        "__cxa_throw@plt",
        "__cxa_throw@plt",
    ];
    assert_eq!(unwound, expected, "{}", t.graph);
}

#[test]
fn longjmp_code_keeps_its_returns_hijacked_and_setjmp_at_its_ret_sites() {
    if !require_bpf() {
        return;
    }
    // longjmp reads no return address (the kernel drops the return
    // instances of the frames it leaves): only what returns twice needs
    // ret sites, and an unwinder-free module needs nothing else.
    let bin = fixture("jmp", Build::O2);
    let (list, exits) = listed(&bin, &[]);
    let exit_of = |f: &str| {
        exits
            .iter()
            .find(|(name, _, _)| name == f)
            .map(|(_, _, e)| e.as_str())
            .unwrap_or_else(|| panic!("{f} not in\n{list}"))
    };
    for f in ["main", "jump_round", "level3", "longjmp@plt"] {
        assert_eq!(exit_of(f), "session", "{f}:\n{list}");
    }
    // Only ever called, and single-stepped at their own first instruction:
    // entered at their calls and ended where those return, by cost alone.
    for f in ["level1", "level2"] {
        assert_eq!(exit_of(f), "returns", "{f}:\n{list}");
    }
    for f in ["_setjmp@plt", "__sigsetjmp@plt"] {
        assert_eq!(exit_of(f), "ret-sites", "{f}:\n{list}");
    }
}

#[test]
fn results_come_before_the_detach() {
    if !require_bpf() {
        return;
    }
    // stdout and stderr into one pipe, in the order they were written: the
    // kernel may take seconds to take probes down, and the user reads the
    // results meanwhile.
    let bin = fixture("calls", Build::O2);
    for format in ["call-graph", "summary"] {
        let utrace = env!("CARGO_BIN_EXE_utrace");
        let script = format!("{utrace} --format={format} -- {} 2>&1", bin.display());
        let out = run(
            std::process::Command::new("sh").args(["-c", &script]),
            Duration::from_secs(60),
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let last = text.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("utrace: detached "),
            "{format}: the last line is {last:?}:\n{text}"
        );
        let main = text
            .lines()
            .position(|l| l.ends_with("} /* main */") || l.contains(" main "));
        assert!(
            main.is_some(),
            "{format}: no results before the detach:\n{text}"
        );
    }
}

#[test]
fn a_time_filter_past_bpfs_frames_says_what_it_left_out() {
    if !require_bpf() {
        return;
    }
    // mutual: ping/pong 10,000 deep and via 5,000 deep under main (depth 0).
    // BPF keeps 1,024 frames, so the calls at depth 1,024 and below have
    // no entry time to filter on: 8,977 + 3,977 of them, said, not dropped
    // silently.
    let bin = fixture("mutual", Build::O2);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("mutual.data");
    let stderr = crate::record::record(&["-t", "1ms"], &bin, &[], &data);
    assert!(
        stderr.contains(
            "utrace: 12954 calls nested deeper than 1024 frames left out: BPF cannot apply \
             --time-filter that deep (record without it and filter with --report --time-filter)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains(", 12,954 lost,"), "{stderr}");
}

#[test]
fn ret_sites_attached_for_deep_recursion_go_when_it_ends_and_come_back() {
    if !require_bpf() {
        return;
    }
    // down recurses 200 deep, shallow runs 1,000 times, the program sleeps,
    // and both happen again: down's ret sites are attached for the deep
    // calls, taken away while the program sleeps, attached again.
    let bin = fixture("redeep", Build::O2);
    let calls = [
        ("main", 1),
        ("down", 402),
        ("bottom", 2),
        ("phase", 2),
        ("shallow", 2000),
        ("usleep@plt", 1),
        ("printf@plt", 1),
    ];
    for opts in [&[][..], &["--format=summary"]] {
        let t = trace(&bin, &[], opts);
        assert_eq!(t.stdout, "redeep=1402\n", "{}", t.stderr);
        let line = "utrace: calls nested deeper than the kernel's 64 pending returns: \
                    ret sites attached on demand 2 times, taken away again ";
        assert!(t.stderr.contains(line), "{opts:?}: {}", t.stderr);
        if opts.is_empty() {
            assert_eq!(count_calls(&t.graph), counts(&calls), "{}", t.stderr);
            // Each call ended at its own return, the deep ones at ret sites.
            assert!(!t.graph.contains("/* unwound */"), "{}", t.graph);
            // main, phase, down 201 deep, bottom.
            assert_eq!(max_depth(&t.graph), 203);
        } else {
            assert_eq!(
                crate::common::summary_calls(&t.graph),
                counts(&calls),
                "{}",
                t.graph
            );
        }
    }
}

/// The normalised call graph of `main() { down() {…} printf@plt(); }` with
/// `down` nested `levels` deep, each level's own calls (`calls`, given the
/// indentation of that level's body) before the next level.
fn deep_tree(levels: usize, calls: impl Fn(&str) -> String) -> String {
    let (open, done) = ("            [     1] | ", "      <dur> [     1] | ");
    let mut tree = format!("# DURATION     TID     FUNCTION\n{open}main() {{\n");
    for level in 1..=levels {
        let pad = "  ".repeat(level);
        tree += &format!("{open}{pad}down() {{\n{}", calls(&format!("{pad}  ")));
    }
    for level in (1..=levels).rev() {
        tree += &format!("{done}{}}} /* down */\n", "  ".repeat(level));
    }
    tree + &format!("{done}  printf@plt();\n{done}}} /* main */\n")
}

/// The normalised call graph of `main() { f1() { f2() { … fN(); … }
/// printf@plt(); }`, `name(level)` naming each level's function (after
/// `strtol@plt()`, which reads the depth, when it is `given`).
fn nested_tree(levels: usize, name: impl Fn(usize) -> &'static str, given: bool) -> String {
    let (open, done) = ("            [     1] | ", "      <dur> [     1] | ");
    let mut tree = format!("# DURATION     TID     FUNCTION\n{open}main() {{\n");
    if given {
        tree += &format!("{done}  strtol@plt();\n");
    }
    for level in 1..levels {
        tree += &format!("{open}{}{}() {{\n", "  ".repeat(level), name(level));
    }
    tree += &format!("{done}{}{}();\n", "  ".repeat(levels), name(levels));
    for level in (1..levels).rev() {
        tree += &format!("{done}{}}} /* {} */\n", "  ".repeat(level), name(level));
    }
    tree + &format!("{done}  printf@plt();\n{done}}} /* main */\n")
}

/// relay, hop, relay…: intocall.c's levels.
fn relay_or_hop(level: usize) -> &'static str {
    if level % 2 == 1 { "relay" } else { "hop" }
}

/// Traces `bin` live with `opts`, then records and reports it, then counts
/// it in BPF: the program's `stdout` and the tree `expected` both ways,
/// the `calls` counted. Returns utrace's stderr of the live run.
fn assert_exact_live_recorded_counted(
    bin: &Path,
    opts: &[&str],
    (stdout, expected): (&str, &str),
    calls: &[(&str, usize)],
) -> String {
    let live = trace(bin, &[], opts);
    assert_eq!(live.stdout, stdout, "{}", live.stderr);
    crate::common::assert_text_eq(expected, &normalise(&live.graph));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("trace.data");
    crate::record::record(opts, bin, &[], &data);
    let reported = crate::record::report(&data, &["--format=call-graph"]);
    crate::common::assert_text_eq(expected, &normalise(&reported));
    let counted = trace(bin, &[], &[opts, &["--format=summary"]].concat());
    let summary = crate::common::summary_calls(&counted.graph);
    assert_eq!(summary, counts(calls), "{}", counted.graph);
    live.stderr
}

#[test]
fn deep_frames_end_at_the_branch_into_their_epilogue_live_recorded_and_counted() {
    if !require_bpf() {
        return;
    }
    // eval recurses 200 deep and returns through a `je` into `pop; pop;
    // pop; ret` or a `jne` falling through into it, no call before them:
    // past the hijacks its frames end at those branches (emulated), which
    // stand in for the `ret` (single-stepped).
    let bin = fixture("epilogue", Build::O2);
    let expected = nested_tree(201, |_| "eval", false);
    let calls = [("main", 1), ("eval", 201), ("printf@plt", 1)];
    let out = ("epilogue depth=200 sum=200\n", expected.as_str());
    let stderr = assert_exact_live_recorded_counted(&bin, &[], out, &calls);
    let line = "utrace: calls nested deeper than the kernel's 64 pending returns: \
                ret sites attached on demand once";
    assert!(stderr.contains(line), "{stderr}");
}

#[test]
fn a_frame_that_returns_right_after_its_call_ends_with_the_callee() {
    if !require_bpf() {
        return;
    }
    // relay's `call hop; add $8,%rsp; ret`: past the hijacks its frames
    // chain to hop's at the call and end with them; with --max-rate BPF
    // attaches relay's `ret` instead (a muted hop's probes go).
    let bin = fixture("intocall", Build::O2);
    let expected = nested_tree(401, relay_or_hop, false);
    let calls = [("main", 1), ("relay", 201), ("hop", 200), ("printf@plt", 1)];
    let out = ("intocall depth=200 hops=200\n", expected.as_str());
    for opts in [&[][..], &["--max-rate", "100000000"]] {
        assert_exact_live_recorded_counted(&bin, opts, out, &calls);
    }
}

#[test]
fn frames_deeper_than_bpf_keeps_end_at_their_ret_when_they_cannot_chain() {
    if !require_bpf() {
        return;
    }
    // 3,000 relays and 3,000 hops: from frame 1,024 on, relay's calls
    // cannot chain it (BPF keeps no frame to mark) and its `ret` is
    // attached instead. Every frame ends at its own return all the same.
    let bin = fixture("intocall", Build::O2);
    let t = trace(&bin, &["3000"], &[]);
    assert_eq!(t.stdout, "intocall depth=3000 hops=3000\n", "{}", t.stderr);
    crate::common::assert_text_eq(&nested_tree(6001, relay_or_hop, true), &normalise(&t.graph));
    let counted = trace(&bin, &["3000"], &["--format=summary"]);
    let calls = [
        ("main", 1),
        ("strtol@plt", 1),
        ("relay", 3001),
        ("hop", 3000),
        ("printf@plt", 1),
    ];
    let summary = crate::common::summary_calls(&counted.graph);
    assert_eq!(summary, counts(&calls), "{}", counted.graph);
}

#[test]
fn leaves_at_the_bottom_of_deep_recursion_keep_their_hijacks() {
    if !require_bpf() {
        return;
    }
    // down recurses 200 deep and calls leaf at every level. leaf calls
    // through a pointer, so symbols cannot prove it short, but it has never
    // had a traced call under it: below the 60 hijacks down holds, it takes
    // one of the three kept for short calls, and only down needs ret sites.
    let bin = fixture("deepleaf", Build::O2);
    let expected = deep_tree(201, |pad| format!("      <dur> [     1] | {pad}leaf();\n"));
    let calls = [("main", 1), ("down", 201), ("leaf", 201), ("printf@plt", 1)];
    let line = "utrace: calls nested deeper than the kernel's 64 pending returns: \
                ret sites attached on demand once";
    for opts in [&[][..], &["--format=summary"]] {
        let t = trace(&bin, &[], opts);
        assert_eq!(t.stdout, "deepleaf=20301\n", "{}", t.stderr);
        assert!(t.stderr.contains(line), "{opts:?}: {}", t.stderr);
        if opts.is_empty() {
            crate::common::assert_text_eq(&expected, &normalise(&t.graph));
        } else {
            let counted = crate::common::summary_calls(&t.graph);
            assert_eq!(counted, counts(&calls), "{}", t.graph);
        }
    }
}

#[test]
fn a_tail_jump_past_the_hijacks_keeps_its_frame_open_until_the_callee_returns() {
    if !require_bpf() {
        return;
    }
    // shrink, only ever called directly, ends where its calls return and
    // leaves by `jmp inner`. Past the 60 hijacks down holds, its exits are
    // attached on demand: with them its tail jump, or inner's entry at the
    // same stack slot would end it as not seen (Lua's luaD_shrinkstack).
    let bin = fixture("deeptail", Build::O2);
    let expected = deep_tree(201, |pad| {
        let (open, done) = ("            [     1] | ", "      <dur> [     1] | ");
        format!("{open}{pad}shrink() {{\n{done}{pad}  inner();\n{done}{pad}}} /* shrink */\n")
    });
    let t = trace(&bin, &[], &[]);
    assert_eq!(t.stdout, "deeptail=40401\n", "{}", t.stderr);
    crate::common::assert_text_eq(&expected, &normalise(&t.graph));
    let counted = crate::common::summary_calls(&trace(&bin, &[], &["--format=summary"]).graph);
    let calls = [
        ("main", 1),
        ("down", 201),
        ("shrink", 201),
        ("inner", 201),
        ("printf@plt", 1),
    ];
    assert_eq!(counted, counts(&calls));
}

#[test]
fn a_tail_call_through_a_pointer_into_untraced_code_ends_at_the_jump() {
    if !require_bpf() {
        return;
    }
    // viaptr is `jmp *op(%rip)` into libc's labs, in a module that unwinds
    // (ret-site exits): a jump through a pointer chains, as its target may
    // be traced. This one is not: the frame ends at the jump, and what main
    // calls next at the same slot, after or viaptr again from the same call
    // site, nor the exception check() throws there, is no part of it.
    let bin = fixture("ptrjump", Build::O2);
    let opts = ["-f", "main", "-f", "viaptr*", "-f", "after*"];
    let (open, done) = ("            [     1] | ", "      <dur> [     1] | ");
    let mut expected = format!("# DURATION     TID     FUNCTION\n{open}main() {{\n");
    expected += &format!("{done}  viaptr(long);\n{done}  after(long);\n").repeat(3);
    expected += &format!("{done}  viaptr(long);\n").repeat(2);
    expected += &format!("{done}}} /* main */\n");
    let t = trace(&bin, &[], &opts);
    assert_eq!(t.stdout, "ptrjump s=26\n", "{}", t.stderr);
    crate::common::assert_text_eq(&expected, &normalise(&t.graph));
    assert_recorded_as(&bin, &opts, &expected);
    let counted = trace(&bin, &[], &[&opts[..], &["--format=summary"]].concat());
    let calls = [("main", 1), ("viaptr(long)", 5), ("after(long)", 3)];
    assert_eq!(crate::common::summary_calls(&counted.graph), counts(&calls));
}

#[test]
fn a_function_tail_calling_itself_through_a_pointer_chains_its_frames() {
    if !require_bpf() {
        return;
    }
    // countdown's `jmp *%rax` lands on its own entry at the same slot, as a
    // call from the same call site would: BPF knows where the jump went, so
    // no frame ends at a jump, and all eight end at the one return.
    let bin = fixture("selftail", Build::O2);
    let opts = ["-f", "main", "-f", "countdown*"];
    let (open, done) = ("            [     1] | ", "      <dur> [     1] | ");
    let mut expected = format!("# DURATION     TID     FUNCTION\n{open}main() {{\n");
    for level in 1..8 {
        expected += &format!("{open}{:w$}countdown(long) {{\n", "", w = 2 * level);
    }
    expected += &format!("{done}{:16}countdown(long);\n", "");
    for level in (1..8).rev() {
        expected += &format!("{done}{:w$}}} /* countdown(long) */\n", "", w = 2 * level);
    }
    expected += &format!("{done}}} /* main */\n");
    let expected = expected.as_str();
    let t = trace(&bin, &[], &opts);
    assert_eq!(t.stdout, "selftail 0\n", "{}", t.stderr);
    crate::common::assert_text_eq(expected, &normalise(&t.graph));
    // Each lasts the 20 ms sleep at the bottom.
    for line in t
        .graph
        .lines()
        .filter(|l| l.contains("countdown(long)") && !l.ends_with('{'))
    {
        let ns = duration_ns(line, "");
        assert!(
            (20_000_000..60_000_000).contains(&ns),
            "{line}: {}",
            t.graph
        );
    }
    assert_recorded_as(&bin, &opts, expected);
    let counted = trace(&bin, &[], &[&opts[..], &["--format=summary"]].concat());
    let calls = [("main", 1), ("countdown(long)", 8)];
    assert_eq!(crate::common::summary_calls(&counted.graph), counts(&calls));
}

#[test]
fn a_cxx_tail_call_into_free_ends_at_its_own_return() {
    if !require_bpf() {
        return;
    }
    // release() is `jmp free@plt` in a module that unwinds (ret-site
    // exits): free's return lands in main, where no probe after a call to
    // free is. Nothing unwinds through free, so its return stays hijacked,
    // and release's tail jump chains on it: release ends when free returns.
    let bin = fixture("tailfree", Build::O2);
    let t = trace(&bin, &[], &[]);
    assert_eq!(t.stdout, "tailfree ok=1\n", "{}", t.stderr);
    let round = [
        "            [     1] |   make() {",
        "      <dur> [     1] |     malloc@plt();",
        "      <dur> [     1] |   } /* make() */",
        "            [     1] |   release(char*) {",
        "      <dur> [     1] |     free@plt();",
        "      <dur> [     1] |   } /* release(char*) */",
    ];
    let expected = crate::common::looped_main(&round, 3);
    crate::common::assert_text_eq(&normalise(&t.graph), &expected);
}

#[test]
fn cxx_tail_calls_end_where_their_call_returns() {
    if !require_bpf() {
        return;
    }
    // A module that unwinds sees its exits at ret sites. A tail jump to a
    // traced function keeps the jumping frame open until that call returns,
    // three frames deep on one slot for three(), and usleep's return (a
    // stub jumped to, which nothing thrown passes through) stays hijacked.
    let bin = fixture("tailcalls", Build::O2);
    let t = trace(&bin, &[], &[]);
    assert_eq!(t.stdout, "tailcalls ok=1\n", "{}", t.stderr);
    let expected = "\
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   outerf() {
            [     1] |     inner() {
      <dur> [     1] |       usleep@plt();
      <dur> [     1] |     } /* inner() */
            [     1] |     inner() {
      <dur> [     1] |       usleep@plt();
      <dur> [     1] |     } /* inner() */
      <dur> [     1] |   } /* outerf() */
            [     1] |   three() {
            [     1] |     two() {
            [     1] |       inner() {
      <dur> [     1] |         usleep@plt();
      <dur> [     1] |       } /* inner() */
      <dur> [     1] |     } /* two() */
      <dur> [     1] |   } /* three() */
      <dur> [     1] |   printf@plt();
      <dur> [     1] | } /* main */
";
    crate::common::assert_text_eq(expected, &normalise(&t.graph));
    // Each frame lasts as long as the sleep under it: 50 ms for inner and
    // the three that chain on one slot, 100 ms for outerf.
    let ms = |line: &str| duration_ns(&t.graph, line) / 1_000_000;
    for line in ["} /* two() */", "} /* three() */"] {
        assert!((50..80).contains(&ms(line)), "{line}: {}", t.graph);
    }
    assert!((100..150).contains(&ms("} /* outerf() */")), "{}", t.graph);
    // Recorded, the report shows the same tree.
    assert_recorded_as(&bin, &[], expected);
}

#[test]
fn a_tail_jump_into_a_library_ends_where_the_direct_call_returns() {
    if !require_bpf() {
        return;
    }
    // sort2 is `jmp qsort@plt` and its address is taken: its exits are its
    // ret sites, and qsort's return (not hijacked: it runs our comparator)
    // lands in sort2's caller. Called directly, that return is probed, so
    // qsort nests in sort2 and both last the 20 ms sleep under them. Through
    // the pointer, neither return is seen: both are marked, and done(), the
    // next call at that stack slot, is main's, not theirs.
    let bin = fixture("watchtail", Build::O2);
    let (list, rows) = listed(&bin, &[]);
    let sort2 = rows.iter().find(|(name, _, _)| name == "sort2(int*)");
    assert_eq!(sort2.map(|r| r.2.as_str()), Some("ret+calls"), "{list}");
    let t = trace(&bin, &[], &[]);
    assert_eq!(t.stdout, "watchtail 1 2 3 4 5 6\n", "{}", t.stderr);
    let sorted = |end_qsort: &str, end_sort2: &str| {
        [
            "            [     1] |   sort2(int*) {".to_string(),
            "            [     1] |     qsort@plt() {".to_string(),
            "            [     1] |       by_value() {".to_string(),
            "      <dur> [     1] |         usleep@plt();".to_string(),
            "      <dur> [     1] |       } /* by_value */".to_string(),
            format!("      <dur> [     1] |     }} /* qsort@plt */{end_qsort}"),
            format!("      <dur> [     1] |   }} /* sort2(int*) */{end_sort2}"),
        ]
    };
    let unseen = " /* return not seen */";
    let expected: String = ["# DURATION     TID     FUNCTION".to_string()]
        .into_iter()
        .chain(["            [     1] | main() {".to_string()])
        .chain(sorted("", ""))
        .chain(sorted("", ""))
        .chain(sorted(unseen, unseen))
        .chain([
            "      <dur> [     1] |   done();".to_string(),
            "      <dur> [     1] |   printf@plt();".to_string(),
            "      <dur> [     1] | } /* main */".to_string(),
        ])
        .map(|l| l + "\n")
        .collect();
    crate::common::assert_text_eq(&expected, &normalise(&t.graph));
    let exact: Vec<u64> = (t.graph.lines())
        .filter(|l| l.ends_with("} /* sort2(int*) */") || l.ends_with("} /* qsort@plt */"))
        .map(|l| duration_ns(l, l) / 1_000_000)
        .collect();
    assert_eq!(exact.len(), 4, "{}", t.graph);
    assert!(
        exact.iter().all(|ms| (20..50).contains(ms)),
        "{exact:?}: {}",
        t.graph
    );
    assert_recorded_as(&bin, &[], &expected);
    let counted = trace(&bin, &[], &["--format=summary"]);
    let calls = [
        ("main", 1),
        ("sort2(int*)", 3),
        ("qsort@plt", 3),
        ("by_value", 3),
        ("usleep@plt", 3),
        ("done()", 1),
        ("printf@plt", 1),
    ];
    assert_eq!(crate::common::summary_calls(&counted.graph), counts(&calls));
}

#[test]
fn five_tail_calls_on_one_slot_end_at_one_call_return_site() {
    if !require_bpf() {
        return;
    }
    // hop1, ended where its call returns, jumps to hop2 ... hop5, which
    // jumps to qsort: six frames on one slot, every one open until main's
    // call returns, each lasting the 20 ms sleep at the bottom. Then hop2 to
    // hop5 called directly, each its own chain.
    let bin = fixture("longtail", Build::O2);
    let t = trace(&bin, &[], &[]);
    assert_eq!(t.stdout, "longtail 5\n", "{}", t.stderr);
    let (open, done) = ("            [     1] | ", "      <dur> [     1] | ");
    let mut expected = format!("# DURATION     TID     FUNCTION\n{open}main() {{\n");
    for first in 1..=5 {
        let hops: Vec<String> = (first..=5).map(|k| format!("hop{k}")).collect();
        let frames: Vec<&str> = (hops.iter().map(String::as_str))
            .chain(["qsort@plt", "by_value"])
            .collect();
        for (level, name) in frames.iter().enumerate() {
            expected += &format!("{open}{:w$}{name}() {{\n", "", w = 2 * level + 2);
        }
        expected += &format!("{done}{:w$}usleep@plt();\n", "", w = 2 * frames.len() + 2);
        for (level, name) in frames.iter().enumerate().rev() {
            expected += &format!("{done}{:w$}}} /* {name} */\n", "", w = 2 * level + 2);
        }
    }
    expected += &format!("{done}  printf@plt();\n{done}}} /* main */\n");
    crate::common::assert_text_eq(&expected, &normalise(&t.graph));
    for line in (t.graph.lines()).filter(|l| l.contains("} /* hop") || l.contains("} /* qsort")) {
        let ms = duration_ns(line, "") / 1_000_000;
        assert!((20..50).contains(&ms), "{line}: {}", t.graph);
    }
    assert_recorded_as(&bin, &[], &expected);
    let counted = trace(&bin, &[], &["--format=summary"]);
    let calls = [
        ("main", 1),
        ("hop1", 1),
        ("hop2", 2),
        ("hop3", 3),
        ("hop4", 4),
        ("hop5", 5),
        ("qsort@plt", 5),
        ("by_value", 5),
        ("usleep@plt", 5),
        ("printf@plt", 1),
    ];
    assert_eq!(crate::common::summary_calls(&counted.graph), counts(&calls));
}

#[test]
fn rust_panics_caught_by_catch_unwind_end_the_frames_they_unwind() {
    if !require_bpf() {
        return;
    }
    // Every panic ends deeper and risky as unwound when catch_unwind takes
    // it back, after the 10 ms they slept before the panic (the first panic
    // of a process is slow to unwind, more so on a busy machine), and
    // guarded returns as usual; the next panic is told apart from the last.
    let bin = fixture("panics", Build::V0);
    let opts = ["-f", "panics::*"];
    let t = trace(&bin, &[], &opts);
    assert_eq!(t.stdout, "caught=2 sum=14\n", "{}", t.stderr);
    let panicked = [
        "            [     1] |   panics::guarded() {",
        "            [     1] |     panics::risky() {",
        "      <dur> [     1] |       panics::deeper(); /* unwound */",
        "      <dur> [     1] |     } /* panics::risky */ /* unwound */",
        "      <dur> [     1] |   } /* panics::guarded */",
    ];
    let returned = [
        "            [     1] |   panics::guarded() {",
        "            [     1] |     panics::risky() {",
        "      <dur> [     1] |       panics::deeper();",
        "      <dur> [     1] |     } /* panics::risky */",
        "      <dur> [     1] |   } /* panics::guarded */",
    ];
    let round: Vec<&str> = panicked.iter().chain(&returned).copied().collect();
    let body: Vec<&str> = round
        .iter()
        .cycle()
        .take(2 * round.len())
        .copied()
        .collect();
    let expected: String = [
        "# DURATION     TID     FUNCTION",
        "            [     1] | panics::main() {",
    ]
    .iter()
    .chain(&body)
    .chain(&["      <dur> [     1] | } /* panics::main */"])
    .map(|l| format!("{l}\n"))
    .collect();
    crate::common::assert_text_eq(&expected, &normalise(&t.graph));
    let unwound: Vec<u64> = t
        .graph
        .lines()
        .filter(|l| l.ends_with("} /* panics::risky */ /* unwound */"))
        .map(|l| duration_ns(l, l))
        .collect();
    assert_eq!(unwound.len(), 2, "{}", t.graph);
    for ns in unwound {
        assert!(
            (10_000_000..500_000_000).contains(&ns),
            "risky lasted {ns} ns:\n{}",
            t.graph
        );
    }
    assert_recorded_as(&bin, &opts, &expected);
}

#[test]
fn a_conditional_tail_call_ends_its_frame_only_when_taken() {
    if !require_bpf() {
        return;
    }
    // cond_tail's `jne leaf` is a ret site: not taken, cond_tail goes on
    // to call other(); taken, it chains on leaf's call.
    let bin = fixture("condtail", Build::O2);
    let t = trace(&bin, &[], &["--exit=ret-sites"]);
    assert_eq!(t.stdout, "condtail sum=9\n", "{}", t.stderr);
    let expected = "\
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   cond_tail() {
      <dur> [     1] |     other();
      <dur> [     1] |   } /* cond_tail */
            [     1] |   cond_tail() {
      <dur> [     1] |     leaf();
      <dur> [     1] |   } /* cond_tail */
      <dur> [     1] |   printf@plt();
      <dur> [     1] | } /* main */
";
    crate::common::assert_text_eq(expected, &normalise(&t.graph));
}

#[test]
fn frames_an_exception_leaves_after_their_cleanups_end_when_it_leaves_them() {
    if !require_bpf() {
        return;
    }
    // iseof and next run a destructor (5 ms) in their cleanups before the
    // unwinder leaves them: each ends after its cleanup, not at the throw.
    let bin = fixture("cleanup", Build::O2);
    let opts = [
        "-f",
        "main",
        "-f",
        "next*",
        "-f",
        "iseof*",
        "-f",
        "thrower*",
        "-f",
        "Tok::~Tok*",
        "-f",
        "_Unwind_Resume@plt",
    ];
    let t = trace(&bin, &[], &opts);
    assert_eq!(t.stdout, "caught=1\n", "{}", t.stderr);
    let expected = "\
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   next(int) {
            [     1] |     iseof(int) {
      <dur> [     1] |       thrower(int); /* unwound */
      <dur> [     1] |       Tok::~Tok();
      <dur> [     1] |       _Unwind_Resume@plt(); /* unwound */
      <dur> [     1] |     } /* iseof(int) */ /* unwound */
      <dur> [     1] |     Tok::~Tok();
      <dur> [     1] |     _Unwind_Resume@plt(); /* unwound */
      <dur> [     1] |   } /* next(int) */ /* unwound */
      <dur> [     1] | } /* main */
";
    crate::common::assert_text_eq(expected, &normalise(&t.graph));
    let ms = |line: &str| duration_ns(&t.graph, line) / 1_000_000;
    assert!(ms("thrower(int); /* unwound */") < 5, "{}", t.graph);
    assert!(ms("} /* iseof(int) */ /* unwound */") >= 5, "{}", t.graph);
    assert!(ms("} /* next(int) */ /* unwound */") >= 10, "{}", t.graph);
}

/// libstdc++'s std::string, as symbols spell it.
const STRING: &str =
    "std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >";

#[test]
fn functions_only_called_directly_end_where_their_calls_return() {
    if !require_bpf() {
        return;
    }
    // C++: no hijack for what calls out. twice and down are reached only by
    // direct calls, so their ends are seen after each call; pointed, called
    // through a pointer, at its `ret`s. The leaf, whose first instruction
    // would be single-stepped, is entered at its calls too. handoff, ~Box
    // and rename leave by tail jumps: what they jump to nests in them and
    // ends where they do (_M_assign's own return has no probe).
    let bin = fixture("returns", Build::O2);
    let opts = [
        "-f",
        "main",
        "-f",
        "leafy*",
        "-f",
        "twice*",
        "-f",
        "down*",
        "-f",
        "pointed*",
        "-f",
        "handoff*",
        "-f",
        "tailee*",
        "-f",
        "Box::~Box*",
        "-f",
        "operator delete*",
        "-f",
        "rename*",
        "-f",
        "*_M_assign*",
    ];
    let (list, exits) = listed(&bin, &opts);
    let expected = [
        ("main", "emulated", "ret-sites"),
        ("leafy(int)", "at-calls", "returns"),
        ("twice(int)", "emulated", "returns"),
        ("pointed(int)", "single-step", "ret-sites"),
        ("down(int)", "emulated", "returns"),
        ("tailee(int)", "single-step", "session"),
        ("handoff(int)", "at-calls", "returns"),
        ("rename(std::string const&)", "at-calls", "returns"),
        ("Box::~Box()", "emulated", "returns"),
        (
            "std::string::_M_assign(std::string const&)@plt",
            "at-jumps",
            "ret-sites",
        ),
        (
            "operator delete(void*, unsigned long)@plt",
            "at-jumps",
            "session",
        ),
    ]
    .map(|(f, p, e)| (f.to_string(), p.to_string(), e.to_string()));
    let short = |(f, p, e): (String, String, String)| (f.replace(STRING, "std::string"), p, e);
    let exits: Vec<_> = exits.into_iter().map(short).collect();
    assert_eq!(exits, expected, "{list}");
    let t = trace(&bin, &[], &opts);
    assert_eq!(t.stdout, "s=75 name=40\n", "{}", t.stderr);
    let expected = "\
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   twice(int) {
      <dur> [     1] |     leafy(int);
      <dur> [     1] |     leafy(int);
      <dur> [     1] |   } /* twice(int) */
            [     1] |   down(int) {
            [     1] |     down(int) {
            [     1] |       down(int) {
      <dur> [     1] |         down(int);
            [     1] |         twice(int) {
      <dur> [     1] |           leafy(int);
      <dur> [     1] |           leafy(int);
      <dur> [     1] |         } /* twice(int) */
      <dur> [     1] |       } /* down(int) */
            [     1] |       twice(int) {
      <dur> [     1] |         leafy(int);
      <dur> [     1] |         leafy(int);
      <dur> [     1] |       } /* twice(int) */
      <dur> [     1] |     } /* down(int) */
            [     1] |     twice(int) {
      <dur> [     1] |       leafy(int);
      <dur> [     1] |       leafy(int);
      <dur> [     1] |     } /* twice(int) */
      <dur> [     1] |   } /* down(int) */
            [     1] |   pointed(int) {
            [     1] |     twice(int) {
      <dur> [     1] |       leafy(int);
      <dur> [     1] |       leafy(int);
      <dur> [     1] |     } /* twice(int) */
      <dur> [     1] |   } /* pointed(int) */
            [     1] |   handoff(int) {
      <dur> [     1] |     tailee(int);
      <dur> [     1] |   } /* handoff(int) */
            [     1] |   Box::~Box() {
      <dur> [     1] |     operator delete(void*, unsigned long)@plt;
      <dur> [     1] |   } /* Box::~Box() */
            [     1] |   rename(std::string const&) {
      <dur> [     1] |     std::string::_M_assign(std::string const&)@plt;
      <dur> [     1] |   } /* rename(std::string const&) */
      <dur> [     1] | } /* main */
";
    let graph = normalise(&t.graph).replace(STRING, "std::string");
    crate::common::assert_text_eq(expected, &graph);
}

#[test]
fn an_exception_landing_on_a_call_return_site_ends_the_frame_it_leaves() {
    if !require_bpf() {
        return;
    }
    // parse(1)'s exception lands on the return site of the free() call
    // before it (its cleanup's start): no free() returns there, and parse
    // is left by the exception.
    let bin = fixture("padcall", Build::O2);
    let opts = [
        "-f",
        "main",
        "-f",
        "parse*",
        "-f",
        "check*",
        "-f",
        "free@plt",
        "-f",
        "_Unwind_Resume@plt",
    ];
    let t = trace(&bin, &[], &opts);
    assert_eq!(t.stdout, "n=200\n", "{}", t.stderr);
    let expected = "\
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   parse(int) {
      <dur> [     1] |     check(int);
      <dur> [     1] |     check(int); /* unwound */
      <dur> [     1] |     free@plt();
      <dur> [     1] |     free@plt();
      <dur> [     1] |     _Unwind_Resume@plt(); /* unwound */
      <dur> [     1] |   } /* parse(int) */ /* unwound */
            [     1] |   parse(int) {
      <dur> [     1] |     check(int); /* unwound */
      <dur> [     1] |     free@plt();
      <dur> [     1] |     _Unwind_Resume@plt(); /* unwound */
      <dur> [     1] |   } /* parse(int) */ /* unwound */
      <dur> [     1] | } /* main */
";
    crate::common::assert_text_eq(expected, &normalise(&t.graph));
}
