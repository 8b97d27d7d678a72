//! Entry probes off a single-stepped first instruction: moved onto the
//! emulated one a few instructions on (symbols/placement.rs), or for a PLT
//! stub whose exits are seen after its calls, at the calls themselves
//! (symbols/exit_sites.rs). Where they go, that every call is still seen
//! once, in order, and that arguments are still read where the caller left
//! them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::common::{Build, assert_text_eq, fixture, normalise, require_bpf, run, trace, utrace};

/// File offset of the first jump (conditional or not) of `function`, by
/// objdump (a PIE's text is mapped at its file offset).
fn first_jump(bin: &Path, function: &str) -> String {
    let out = Command::new("objdump")
        .args(["-d", "--no-show-raw-insn"])
        .arg(bin)
        .output()
        .expect("objdump");
    let text = String::from_utf8_lossy(&out.stdout);
    let head = format!("<{function}>:");
    let body = text
        .split(head.as_str())
        .nth(1)
        .expect("function in objdump");
    let line = body
        .lines()
        .find(|l| l.split('\t').nth(1).is_some_and(|m| m.starts_with('j')))
        .expect("a jump");
    format!("0x{}", line.trim().split(':').next().unwrap())
}

/// `utrace --list` of `bin`, and a function's row of it split in columns
/// (MODULE OFFSET PROBE EXIT SOURCE FUNCTION).
fn listed(bin: &Path) -> String {
    let out = run(
        utrace().args(["--list", "--"]).arg(bin),
        Duration::from_secs(60),
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn row<'a>(list: &'a str, function: &str) -> Vec<&'a str> {
    let row = list.lines().find(|l| l.ends_with(&format!(" {function}")));
    let row = row.unwrap_or_else(|| panic!("{function} listed:\n{list}"));
    row.split_whitespace().collect()
}

#[test]
fn a_single_stepped_entry_is_probed_at_its_first_jump_and_counted_once() {
    let bin = fixture("moved", Build::O2);
    let list = listed(&bin);
    for function in ["sum_pos", "scale", "bump", "hop"] {
        let cols = row(&list, function);
        let jump = first_jump(&bin, function);
        assert_eq!(cols[1..3], [jump.as_str(), "emulated"], "{list}");
    }
    if !require_bpf() {
        return;
    }
    let t = trace(&bin, &[], &[]);
    assert_eq!(t.stdout, "moved ok=89\n");
    let expected = "\
# DURATION     TID     FUNCTION
            [     1] | main() {
            [     1] |   run() {
      <dur> [     1] |     sum_pos();
      <dur> [     1] |     scale();
      <dur> [     1] |     hop();
      <dur> [     1] |     sum_pos();
      <dur> [     1] |     scale();
      <dur> [     1] |     hop();
      <dur> [     1] |     sum_pos();
      <dur> [     1] |     scale();
      <dur> [     1] |     hop();
      <dur> [     1] |     bump();
      <dur> [     1] |   } /* run */
      <dur> [     1] |   printf@plt();
      <dur> [     1] | } /* main */
";
    assert_text_eq(&normalise(&t.graph), expected);
}

#[test]
fn arguments_are_read_before_the_instructions_the_probe_moved_past() {
    if !require_bpf() {
        return;
    }
    // bump's `shl $3,%rsi` comes before its jcc: probed there, y would
    // read 16. Its probe stays on the first instruction.
    let bin = fixture("moved", Build::O2);
    let opts = [
        "-f",
        "bump",
        "-f",
        "scale",
        "-A",
        "bump@arg1/d,arg2/d",
        "-R",
        "bump@retval/d",
        "-A",
        "scale",
    ];
    let t = trace(&bin, &[], &opts);
    let expected = "\
# DURATION     TID     FUNCTION
      <dur> [     1] | scale(x=0, by=7, cap=1);
      <dur> [     1] | scale(x=1, by=7, cap=1);
      <dur> [     1] | scale(x=2, by=7, cap=1);
      <dur> [     1] | bump(-1, 2) = 15;
";
    assert_text_eq(&normalise(&t.graph), expected);
}

#[test]
fn a_plt_stub_of_a_cxx_module_is_entered_at_its_calls_in_order() {
    let bin = fixture("pltcalls", Build::O2);
    let list = listed(&bin);
    for stub in ["getpid@plt", "getppid@plt", "strlen@plt"] {
        assert_eq!(row(&list, stub)[2..4], ["at-calls", "ret-sites"], "{list}");
    }
    if !require_bpf() {
        return;
    }
    // getppid's call is also getpid's call return: getpid ends first.
    let t = trace(&bin, &[], &[]);
    assert_eq!(t.stdout, "pltcalls ok=1 n=15\n", "{}", t.stderr);
    let twice = [
        "            [     1] |   twice() {",
        "      <dur> [     1] |     getpid@plt();",
        "      <dur> [     1] |     getppid@plt();",
        "      <dur> [     1] |     strlen@plt();",
        "      <dur> [     1] |   } /* twice() */",
    ];
    let expected = crate::common::looped_main(&twice, 3);
    assert_text_eq(&normalise(&t.graph), &expected);
}

#[test]
fn a_plt_stub_of_a_c_module_is_entered_at_its_calls_and_jumps() {
    // The kernel single-steps a stub's `jmp *slot` (~15 µs a call here) and
    // emulates a `call` or a `jmp`. libcalls' shout ends in `jmp puts@plt`:
    // that call of puts is hijacked where it jumps, the other ends where it
    // returns.
    let bin = fixture("libcalls", Build::O2);
    let list = listed(&bin);
    for stub in ["malloc@plt", "free@plt", "strlen@plt", "printf@plt"] {
        assert_eq!(row(&list, stub)[2..4], ["at-calls", "ret-sites"], "{list}");
    }
    assert_eq!(
        row(&list, "puts@plt")[2..4],
        ["calls+jmps", "session"],
        "{list}"
    );
    if !require_bpf() {
        return;
    }
    let t = trace(&bin, &[], &["-f", "measure", "-f", "shout", "-f", "*@plt"]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    let leaves = |indent: &str, name: &str, n| {
        format!("      <dur> [     1] | {indent}{name}();\n").repeat(n)
    };
    let expected = [
        "# DURATION     TID     FUNCTION\n".to_string(),
        leaves("", "malloc@plt", 7),
        leaves("", "free@plt", 7),
        "            [     1] | measure() {\n".to_string(),
        leaves("  ", "strlen@plt", 3),
        "      <dur> [     1] | } /* measure */\n".to_string(),
        leaves("", "printf@plt", 4),
        "            [     1] | shout() {\n".to_string(),
        leaves("  ", "puts@plt", 2),
        "      <dur> [     1] | } /* shout */\n".to_string(),
    ]
    .concat();
    assert_text_eq(&normalise(&t.graph), &expected);
}

/// Asserts `graph` shows `n` calls of usleep@plt, each of the fixture's
/// 20 ms sleeps (up to 20 ms more, for the tracing).
#[track_caller]
fn assert_sleeps(graph: &str, n: usize) {
    let sleeps: Vec<u64> = (graph.lines())
        .filter(|l| l.ends_with("usleep@plt();"))
        .map(|l| crate::common::duration_of(l) / 1_000_000)
        .collect();
    assert_eq!(sleeps.len(), n, "{graph}");
    assert!(sleeps.iter().all(|ms| (20..40).contains(ms)), "{graph}");
}

#[test]
fn a_plt_stub_jumped_to_is_timed_from_its_jumps_with_or_without_the_jumper() {
    let bin = fixture("jumpstub", Build::O2);
    let list = listed(&bin);
    assert_eq!(
        row(&list, "usleep@plt")[2..4],
        ["calls+jmps", "session"],
        "{list}"
    );
    if !require_bpf() {
        return;
    }
    let t = trace(&bin, &[], &["-f", "main", "-f", "nap", "-f", "usleep*"]);
    assert_eq!(t.stdout, "naps=2\n", "{}", t.stderr);
    let expected = "\
# DURATION     TID     FUNCTION
            [     1] | main() {
      <dur> [     1] |   usleep@plt();
            [     1] |   nap() {
      <dur> [     1] |     usleep@plt();
      <dur> [     1] |   } /* nap */
            [     1] |   nap() {
      <dur> [     1] |     usleep@plt();
      <dur> [     1] |   } /* nap */
      <dur> [     1] | } /* main */
";
    assert_text_eq(&normalise(&t.graph), expected);
    // Each sleep lasts 20 ms, wherever it was entered, and with nap not
    // traced the jumped calls are still hijacked where they jump.
    for opts in [
        &["-f", "main", "-f", "nap", "-f", "usleep*"][..],
        &["-f", "usleep*"],
    ] {
        let t = trace(&bin, &[], opts);
        assert_sleeps(&t.graph, 3);
    }
}

#[test]
fn a_library_call_returning_into_its_callers_epilogue_ends_with_it() {
    // nap's call to usleep returns onto `mov $1,%eax; add $8,%rsp; ret`,
    // which would be single-stepped: nap's exit ends both. Without nap
    // traced, or with usleep's return value read, the return is probed.
    let bin = fixture("intoret", Build::O2);
    if !require_bpf() {
        return;
    }
    let nap = [
        "            [     1] |   nap() {",
        "      <dur> [     1] |     usleep@plt();",
        "      <dur> [     1] |   } /* nap */",
    ];
    for exit in ["--exit=auto", "--exit=ret-sites"] {
        let t = trace(&bin, &[], &[exit]);
        assert_eq!(t.stdout, "naps=3\n", "{}", t.stderr);
        let expected = crate::common::looped_main(&nap, 3);
        assert_text_eq(&normalise(&t.graph), &expected);
        assert_sleeps(&t.graph, 3);
    }
    let t = trace(&bin, &[], &["-f", "usleep*"]);
    assert_eq!(t.graph.matches("usleep@plt();").count(), 3, "{}", t.graph);
    let t = trace(&bin, &[], &["-R", "usleep@plt@retval/d"]);
    let nap = nap.map(|l| l.replace("usleep@plt();", "usleep@plt() = 0;"));
    let nap: Vec<&str> = nap.iter().map(String::as_str).collect();
    let expected = crate::common::looped_main(&nap, 3);
    assert_text_eq(&normalise(&t.graph), &expected);
}

#[test]
fn a_library_call_its_caller_ended_keeps_its_end_once_max_rate_drops_the_caller() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("ratedcaller", Build::O2);
    let t = trace(
        &bin,
        &[],
        &["--max-rate", "50", "-f", "nap", "-f", "usleep*"],
    );
    assert_eq!(t.stdout, "n=2010\n", "{}", t.stderr);
    assert!(
        t.stderr.contains("over --max-rate 50/s: nap"),
        "{}",
        t.stderr
    );
    assert!(!t.graph.contains("not seen"), "{}", t.graph);
    assert_sleeps(&t.graph, 10);
}
