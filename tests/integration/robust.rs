//! Never break the traced program, never lose a call: C++ exceptions, deep
//! recursion, longjmp and signal handlers, each against its untraced run.

use std::process::Command;

use crate::common::{
    Build, Traced, assert_calls, count_calls, counts, fixture, require_bpf, tids, trace,
};

/// The program's stdout and exit code when nothing traces it.
fn untraced(bin: &std::path::Path, args: &[&str]) -> (String, Option<i32>) {
    let out = Command::new(bin)
        .args(args)
        .output()
        .expect("running the fixture");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.code(),
    )
}

/// Traces `bin` and asserts its stdout and exit code are the untraced run's.
fn trace_unharmed(bin: &std::path::Path, args: &[&str], opts: &[&str]) -> Traced {
    let t = trace(bin, args, opts);
    let expected = untraced(bin, args);
    assert_eq!(
        (t.stdout.clone(), t.code),
        expected,
        "{opts:?}: {}",
        t.stderr
    );
    t
}

/// Calls marked as ended by unwinding, per function: a leaf line
/// `f(); /* unwound */` or a closing line `} /* f */ /* unwound */`.
fn unwound(graph: &str) -> std::collections::BTreeMap<String, usize> {
    ended(graph, " /* unwound */")
}

/// Calls closed without a return and without a known reason: marked
/// `/* return not seen */`, per function.
fn not_seen(graph: &str) -> std::collections::BTreeMap<String, usize> {
    ended(graph, " /* return not seen */")
}

/// Calls whose line ends in `marker`, per function.
fn ended(graph: &str, marker: &str) -> std::collections::BTreeMap<String, usize> {
    let mut out = std::collections::BTreeMap::new();
    for line in graph.lines().filter_map(|l| l.strip_suffix(marker)) {
        let body = line.split_once("| ").map_or("", |(_, b)| b.trim());
        let name = match body.strip_prefix("} /* ") {
            Some(close) => close.trim_end_matches(" */"),
            None => body.trim_end_matches(';').trim_end_matches("()"),
        };
        *out.entry(name.to_string()).or_insert(0) += 1;
    }
    out
}

#[test]
fn cxx_exceptions_cross_traced_frames_on_four_threads() {
    if !require_bpf() {
        return;
    }
    for build in [Build::O0, Build::O2] {
        let bin = fixture("throw", build);
        let t = trace(&bin, &[], &[]);
        assert_eq!(
            (t.stdout.clone(), t.code),
            untraced(&bin, &[]),
            "{build:?}: {}",
            t.stderr
        );
        let c = count_calls(&t.graph);
        for (name, n) in [("worker(int)", 4), ("on_rethrow(int)", 16)] {
            assert_eq!(c.get(name), Some(&n), "{build:?} {name}: {c:?}");
        }
        for f in ["f1", "f2", "f3", "f4", "f5"] {
            let calls: usize = c
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{f}(")))
                .map(|(_, v)| v)
                .sum();
            assert_eq!(calls, 32, "{build:?} {f}: {c:?}");
            let ended_by_unwinding: usize = unwound(&t.graph)
                .iter()
                .filter(|(k, _)| k.starts_with(&format!("{f}(")))
                .map(|(_, v)| v)
                .sum();
            assert_eq!(ended_by_unwinding, 16, "{build:?} {f} unwound");
        }
    }
}

#[test]
fn deep_recursion_records_every_level() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("deep", Build::O2);
    let t = trace_unharmed(&bin, &[], &[]);
    assert_eq!(
        count_calls(&t.graph),
        counts(&[
            ("main", 1),
            ("recurse", 10_000),
            ("leaf", 1),
            ("printf@plt", 1)
        ])
    );
    let closes = t
        .graph
        .lines()
        .filter(|l| l.ends_with("} /* recurse */"))
        .count();
    assert_eq!(
        closes, 10_000,
        "every level has a traced callee, so each closes on its own line"
    );
    assert!(unwound(&t.graph).is_empty(), "no level is lost");
    assert!(not_seen(&t.graph).is_empty(), "no level is lost");
    let deepest = t
        .graph
        .lines()
        .map(|l| {
            l.split("| ")
                .nth(1)
                .map_or(0, |f| f.len() - f.trim_start().len())
        })
        .max();
    assert_eq!(
        deepest,
        Some(2 * 10_001),
        "leaf nests under 10,000 recurse levels under main"
    );
}

#[test]
fn longjmp_closes_skipped_frames_and_depth_stays_exact() {
    if !require_bpf() {
        return;
    }
    for exit in ["--exit=ret-sites", "--exit=uretprobe", "--exit=session"] {
        let bin = fixture("jmp", Build::O2);
        let t = trace(&bin, &[], &[exit]);
        assert_eq!(
            (t.stdout.clone(), t.code),
            untraced(&bin, &[]),
            "{exit}: {}",
            t.stderr
        );
        let c = count_calls(&t.graph);
        for (name, n) in [
            ("jump_round", 3),
            ("sigjump_round", 2),
            ("level1", 5),
            ("level2", 5),
            ("level3", 5),
            ("after_jump", 5),
        ] {
            assert_eq!(c.get(name), Some(&n), "{exit} {name}: {c:?}");
        }
        // No longjmp probe in these modes: the frames a jump leaves are
        // found dead when the thread is next seen higher up.
        let u = not_seen(&t.graph);
        for level in ["level1", "level2", "level3"] {
            assert_eq!(
                u.get(level),
                Some(&5),
                "{exit}: every {level} ends by the jump: {u:?}"
            );
        }
        // after_jump() runs one level below its round, exactly where level1
        // ran. (With uretprobes a call at the sp of an abandoned frame looks
        // like a tail call from it, so only ret-site exits restore the depth.)
        if exit == "--exit=ret-sites" {
            assert_eq!(
                indent(&t.graph, "after_jump"),
                indent(&t.graph, "level1"),
                "depth is exact after each jump"
            );
        }
    }
}

/// The indentations `name`'s lines appear at.
fn indent(graph: &str, name: &str) -> std::collections::BTreeSet<usize> {
    graph
        .lines()
        .filter_map(|l| l.split_once("| ").map(|(_, f)| f))
        .filter(|f| f.trim_start().starts_with(name))
        .map(|f| f.len() - f.trim_start().len())
        .collect()
}

#[test]
fn signal_handlers_nest_under_the_interrupted_call_and_balance() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("signal", Build::O2);
    let t = trace_unharmed(&bin, &[], &[]);
    let c = count_calls(&t.graph);
    assert_calls(
        &c,
        &[
            ("sender", 3),
            ("raise@plt", 3),
            ("on_signal", 3),
            ("handled", 3),
            ("leaf", 6),
        ],
    );
    assert!(
        unwound(&t.graph).is_empty() && not_seen(&t.graph).is_empty(),
        "everything balances:\n{}",
        t.graph
    );
    // The handler runs inside raise(): on_signal is nested below raise@plt.
    let lines: Vec<&str> = t.graph.lines().collect();
    let raise = lines
        .iter()
        .position(|l| l.contains("raise@plt() {"))
        .expect("raise@plt opens");
    assert!(
        lines[raise + 1].trim_end().ends_with("on_signal() {"),
        "{}",
        lines[raise + 1]
    );
}

#[test]
fn sixty_four_threads_lose_nothing_at_default_settings() {
    if !require_bpf() {
        return;
    }
    let t = trace(&fixture("threads64", Build::O2), &[], &[]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert!(!t.stderr.contains("lost"), "{}", t.stderr);
    let c = count_calls(&t.graph);
    assert_eq!(c.get("work"), Some(&640_000));
    assert_eq!(c.get("thread_main"), Some(&64));
    assert_eq!(c.get("pthread_barrier_wait@plt"), Some(&64));
}

/// threads64's calls: main, 64 × (thread_main, create, join, barrier wait,
/// 10,000 work), barrier init, 2 calloc, printf — each an entry and an exit.
const THREADS64_EVENTS: u64 = 2 * (1 + 64 * 4 + 640_000 + 1 + 2 + 1);

#[test]
fn an_overrun_ring_buffer_reports_exactly_what_it_lost() {
    if !require_bpf() {
        return;
    }
    let t = trace(
        &fixture("threads64", Build::O2),
        &[],
        &["--buffer-size", "4K"],
    );
    assert_eq!(t.code, Some(0), "the program is unharmed: {}", t.stderr);
    let line = t
        .stderr
        .lines()
        .find(|l| l.starts_with("utrace: lost "))
        .expect("the loss is reported");
    let words: Vec<&str> = line.split_whitespace().collect();
    let (lost, total): (u64, u64) = (words[2].parse().unwrap(), words[4].parse().unwrap());
    assert!(lost > 0);
    assert_eq!(
        total, THREADS64_EVENTS,
        "received + lost (the BPF counters) = every event: {line}"
    );
    // The threads whose stacks have holes are named, live and in a report.
    let named = |stderr: &str| {
        let note = stderr
            .lines()
            .find(|l| l.starts_with("utrace: events were lost on thread"));
        let note = note.unwrap_or_else(|| panic!("the affected threads are named: {stderr}"));
        note.split(':').nth(1).unwrap().split(',').count()
    };
    assert!((1..=65).contains(&named(&t.stderr)));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("lossy.data");
    let bin = fixture("threads64", Build::O2);
    let mut record = crate::common::utrace();
    record
        .args(["--record", "--buffer-size", "4K", "-d"])
        .arg(&data)
        .arg("--")
        .arg(&bin);
    assert!(
        crate::common::run(&mut record, std::time::Duration::from_secs(120))
            .status
            .success()
    );
    let mut report = crate::common::utrace();
    report.args(["--report", "-d"]).arg(&data);
    let out = crate::common::run(&mut report, std::time::Duration::from_secs(60));
    assert!((1..=65).contains(&named(&String::from_utf8_lossy(&out.stderr))));
}

#[test]
fn forked_children_and_grandchildren_are_followed() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("fork", Build::O2);
    let t = trace_unharmed(&bin, &[], &[]);
    let c = count_calls(&t.graph);
    assert_calls(
        &c,
        &[
            ("work", 69),
            ("child_main", 3),
            ("grandchild_main", 1),
            ("fork@plt", 4),
        ],
    );
    // Five processes, each line tagged with its thread (a process's main thread).
    assert_eq!(tids(&t.graph).len(), 5, "{:?}", tids(&t.graph));

    let t = trace(&bin, &[], &["--no-follow"]);
    let c = count_calls(&t.graph);
    assert_eq!(
        c.get("work"),
        Some(&5),
        "only the parent's own calls: {c:?}"
    );
    assert_eq!(c.get("child_main"), None);
}

#[test]
fn dlopened_plugins_are_traced_from_their_first_call_and_after_reloading() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("dlopen", Build::O2);
    let plugin = fixture("plugin", Build::O2);
    let plugin = plugin.to_str().unwrap();
    let t = trace_unharmed(&bin, &[plugin], &["--nest-lib", "plugin*"]);
    let c = count_calls(&t.graph);
    let expected = [
        ("main", 1),
        ("load_and_call", 2),
        ("dlopen@plt", 2),
        ("dlsym@plt", 2),
        ("dlclose@plt", 2),
        ("plugin_entry", 2),
        ("plugin_work", 5),
        ("plugin_helper", 5),
    ];
    for (name, n) in expected {
        assert_eq!(c.get(name), Some(&n), "{name}: {c:?}");
    }
    // plugin_entry nests under load_and_call, after dlsym.
    assert!(t.graph.contains("|     plugin_entry() {"), "{}", t.graph);
}

#[test]
fn a_followed_child_that_execs_is_traced_in_its_new_program() {
    if !require_bpf() {
        return;
    }
    let bin = fixture("fork", Build::O2);
    let program = fixture("exitcode", Build::O2);
    let args = [program.to_str().unwrap(), "0"];
    let t = trace_unharmed(&bin, &args, &[]);
    let c = count_calls(&t.graph);
    // The 4th child runs exitcode's main() and leave() after its execvp().
    assert_calls(
        &c,
        &[
            ("work", 69),
            ("fork@plt", 5),
            ("leave", 1),
            ("execvp@plt", 1),
        ],
    );
    assert_eq!(
        c.get("main"),
        Some(&2),
        "the parent's main and the exec'd program's"
    );
    // Counted in BPF too, numbered after the start, and shown by the name
    // of the file the child runs (not /proc/PID/exe's).
    let counted = trace_unharmed(&bin, &args, &["--format=summary"]);
    let leave: Vec<&str> = (counted.graph.lines())
        .filter(|l| l.split_whitespace().rev().nth(1) == Some("leave"))
        .collect();
    let row: Vec<&str> = leave.iter().flat_map(|l| l.split_whitespace()).collect();
    assert_eq!(
        (row.first().copied(), row.last().copied()),
        (Some("1"), Some("exitcode-O2")),
        "{}",
        counted.graph
    );
}
