//! Live tracing with -c: exact counts and call graphs for every build of the
//! fixtures, threads, library calls through the PLT, demangling, filters.

use crate::common::{
    Build, assert_text_eq, calls_counts, count_calls, counts, fixture, normalise, require_bpf,
    tids, trace,
};

#[test]
fn calls_counts_are_exact_in_every_build() {
    if !require_bpf() {
        return;
    }
    for build in Build::C {
        let bin = fixture("calls", build);
        for exit in ["--exit=ret-sites", "--exit=uretprobe", "--exit=session"] {
            let t = trace(&bin, &[], &[exit]);
            assert_eq!(t.code, Some(0), "{build:?} {exit}: {}", t.stderr);
            let untouched = "the program's own output is untouched";
            assert_eq!(t.stdout, "fib(10)=55 sum=33\n", "{build:?}: {untouched}");
            let graph = &t.graph;
            assert_eq!(
                count_calls(graph),
                calls_counts(),
                "{build:?} {exit}\n{graph}"
            );
        }
    }
}

#[test]
fn calls_graph_is_exact() {
    if !require_bpf() {
        return;
    }
    let t = trace(&fixture("calls", Build::O2), &[], &["--no-function", "fib"]);
    let round = r#"            [     1] |   a() {
            [     1] |     b() {
      <dur> [     1] |       c();
      <dur> [     1] |     } /* b */
            [     1] |     b() {
      <dur> [     1] |       c();
      <dur> [     1] |     } /* b */
      <dur> [     1] |   } /* a */
"#;
    let expected = format!(
        "# DURATION     TID     FUNCTION\n            [     1] | main() {{\n{round}{round}{round}      <dur> [     1] |   printf@plt();\n      <dur> [     1] | }} /* main */\n"
    );
    assert_text_eq(&expected, &normalise(&t.graph));
}

#[test]
fn recursion_nests_exactly() {
    if !require_bpf() {
        return;
    }
    let t = trace(&fixture("calls", Build::O2), &[], &["-f", "fib"]);
    let graph = normalise(&t.graph);
    // fib(10) nests 10 deep: the deepest line is indented 9 levels below the root.
    let deepest = graph
        .lines()
        .map(|l| {
            l.split("| ")
                .nth(1)
                .map_or(0, |f| f.len() - f.trim_start().len())
        })
        .max();
    assert_eq!(deepest, Some(18), "{graph}");
    assert_eq!(count_calls(&t.graph), counts(&[("fib", 177)]));
}

#[test]
fn every_thread_is_traced() {
    if !require_bpf() {
        return;
    }
    for build in [Build::O0, Build::O2] {
        let t = trace(&fixture("threads", build), &["100"], &[]);
        assert_eq!(t.code, Some(0), "{}", t.stderr);
        let c = count_calls(&t.graph);
        for (name, n) in [
            ("thread_main", 4),
            ("work", 400),
            ("start_threads", 1),
            ("join_threads", 1),
            ("report", 1),
        ] {
            assert_eq!(c.get(name), Some(&n), "{build:?} {name}: {c:?}");
        }
        assert_eq!(c.get("pthread_create@plt"), Some(&4));
        assert_eq!(c.get("pthread_join@plt"), Some(&4));
        // Five threads: main and the four workers, each line tagged with its TID.
        assert_eq!(tids(&t.graph).len(), 5, "{:?}", tids(&t.graph));
    }
}

#[test]
fn library_calls_are_traced_through_the_plt() {
    if !require_bpf() {
        return;
    }
    let expected = counts(&[
        ("main", 1),
        ("alloc_all", 1),
        ("free_all", 1),
        ("measure", 1),
        ("say", 1),
        ("shout", 1),
        ("malloc@plt", 7),
        ("free@plt", 7),
        ("strlen@plt", 3),
        ("printf@plt", 4),
        ("puts@plt", 2),
    ]);
    for build in [Build::O0, Build::O2, Build::NoPie, Build::Cet] {
        let t = trace(&fixture("libcalls", build), &[], &[]);
        assert_eq!(t.code, Some(0), "{}", t.stderr);
        assert_eq!(count_calls(&t.graph), expected, "{build:?}");
    }
    // --lib keeps the program's own functions and only the library calls into matching libraries.
    let t = trace(
        &fixture("libcalls", Build::O2),
        &[],
        &["--lib", "libc.so*", "-f", "*@plt"],
    );
    assert_eq!(
        count_calls(&t.graph),
        counts(&[
            ("malloc@plt", 7),
            ("free@plt", 7),
            ("strlen@plt", 3),
            ("printf@plt", 4),
            ("puts@plt", 2)
        ])
    );
    let t = trace(
        &fixture("libcalls", Build::O2),
        &[],
        &["--lib", "libfoo.so*"],
    );
    assert!(
        count_calls(&t.graph).keys().all(|k| !k.ends_with("@plt")),
        "{}",
        t.graph
    );
    let t = trace(
        &fixture("libcalls", Build::O2),
        &[],
        &["--no-lib", "libc.so*"],
    );
    let c = count_calls(&t.graph);
    assert!(
        c.keys().all(|k| !k.ends_with("@plt")),
        "--no-lib drops libc calls: {c:?}"
    );
    assert_eq!(c.get("main"), Some(&1));
}

#[test]
fn cxx_names_are_demangled_and_overloads_distinct() {
    if !require_bpf() {
        return;
    }
    let t = trace(
        &fixture("cxx", Build::O2),
        &[],
        &[
            "-f", "geo::*", "-f", "ns::*", "-f", "*twice*", "-f", "*scale*",
        ],
    );
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    let c = count_calls(&t.graph);
    let names: Vec<&String> = c.keys().collect();
    assert!(names.iter().any(|n| n.contains("twice<int>")), "{names:?}");
    assert!(
        names.iter().any(|n| n.contains("twice<double>")),
        "{names:?}"
    );
    let twice_int: usize = c
        .iter()
        .filter(|(k, _)| k.contains("twice<int>"))
        .map(|(_, v)| v)
        .sum();
    let twice_double: usize = c
        .iter()
        .filter(|(k, _)| k.contains("twice<double>"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!((twice_int, twice_double), (2, 3), "{c:?}");
    let scale_int: usize = c
        .iter()
        .filter(|(k, _)| k.contains("scale(int)"))
        .map(|(_, v)| v)
        .sum();
    let scale_double: usize = c
        .iter()
        .filter(|(k, _)| k.contains("scale(double)"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!((scale_int, scale_double), (1, 4), "{c:?}");
}

#[test]
fn rust_names_are_demangled_in_both_manglings() {
    if !require_bpf() {
        return;
    }
    for build in [Build::V0, Build::Legacy] {
        let t = trace(
            &fixture("rust", build),
            &[],
            &["-f", "rust::*", "-f", "*Square*"],
        );
        assert_eq!(t.code, Some(0), "{}", t.stderr);
        let c = count_calls(&t.graph);
        assert_eq!(c.get("rust::add"), Some(&5), "{build:?}: {c:?}");
        assert_eq!(c.get("rust::main"), Some(&1), "{build:?}: {c:?}");
    }
}

#[test]
fn max_depth_is_applied_in_bpf() {
    if !require_bpf() {
        return;
    }
    let t = trace(
        &fixture("calls", Build::O2),
        &[],
        &["--max-depth", "1", "--no-function", "fib"],
    );
    assert_eq!(
        count_calls(&t.graph),
        counts(&[("main", 1), ("a", 3), ("printf@plt", 1)]),
        "{}",
        t.graph
    );
}

#[test]
fn time_filter_keeps_only_long_calls_and_their_callers() {
    if !require_bpf() {
        return;
    }
    let t = trace(
        &fixture("threads", Build::O2),
        &["20000"],
        &["--time-filter", "1ms"],
    );
    let c = count_calls(&t.graph);
    // main runs for milliseconds (it joins threads that make 80,000 traced
    // calls), so it stays.
    assert_eq!(c.get("main"), Some(&1), "{c:?}");
    // Every call shown lasted at least 1 ms (entries of calls still open have no duration).
    for line in t.graph.lines().skip(1) {
        let Some((value, unit)) = line
            .split_whitespace()
            .next()
            .zip(line.split_whitespace().nth(1))
        else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        let ns = value
            * if unit == "ms" {
                1e6
            } else if unit == "s" {
                1e9
            } else {
                1e3
            };
        assert!(ns >= 1e6, "a call shorter than 1ms was sent: {line}");
    }
}

#[test]
fn the_command_keeps_the_priority_it_was_started_with() {
    if !require_bpf() {
        return;
    }
    // utrace raises its own threads' priority to drain the ring buffer in
    // time; the command it starts runs at the nice value it would have had.
    let nice = std::path::Path::new("/usr/bin/nice");
    let untraced = std::process::Command::new(nice).output().unwrap();
    let t = trace(nice, &[], &[]);
    assert_eq!(t.code, Some(0), "{}", t.stderr);
    assert_eq!(
        t.stdout,
        String::from_utf8_lossy(&untraced.stdout),
        "{}",
        t.stderr
    );
}

#[test]
fn exit_status_is_the_programs() {
    if !require_bpf() {
        return;
    }
    let t = trace(&fixture("exitcode", Build::O2), &["7"], &[]);
    assert_eq!(t.code, Some(7), "{}", t.stderr);
    // atoi() is inlined into a strtol() call at -O2.
    assert_eq!(
        count_calls(&t.graph),
        counts(&[("main", 1), ("leave", 1), ("strtol@plt", 1)])
    );
}
