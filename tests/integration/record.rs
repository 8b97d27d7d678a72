//! --record then --report: exact counts from the file, the call-graph report
//! equal to the live output, and reports that never need the binary.

use std::path::Path;
use std::time::Duration;

use crate::common::{
    Build, assert_text_eq, calls_counts, copy_program, counts, fixture, normalise, ns_of,
    require_bpf, run, summary_calls, trace, utrace,
};

/// Records `bin` into `data` with utrace options `opts`; returns utrace's stderr.
pub(crate) fn record(opts: &[&str], bin: &Path, args: &[&str], data: &Path) -> String {
    let out = run(
        utrace()
            .arg("--record")
            .args(opts)
            .arg("-d")
            .arg(data)
            .arg("--")
            .arg(bin)
            .args(args),
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

pub(crate) fn report(data: &Path, args: &[&str]) -> String {
    let out = run(
        utrace().arg("--report").arg("-d").arg(data).args(args),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Calls per function from the JSON report.
pub(crate) fn json_calls(json: &str) -> std::collections::BTreeMap<String, usize> {
    let v: serde_json::Value = serde_json::from_str(json).expect("the JSON report parses");
    v["functions"]
        .as_array()
        .expect("functions array")
        .iter()
        .map(|f| {
            (
                f["function"].as_str().unwrap().to_string(),
                f["calls"].as_u64().unwrap() as usize,
            )
        })
        .collect()
}

#[test]
fn recorded_counts_are_exact_and_the_file_is_self_contained() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // A private copy of the binary, deleted before reporting.
    let bin = dir.path().join("calls");
    copy_program(&fixture("calls", Build::O2), &bin);
    let data = dir.path().join("calls.data");
    let stderr = record(&[], &bin, &[], &data);
    assert!(
        stderr
            .lines()
            .any(|l| l.ends_with("calls.data: 194 calls, 0 lost, 6 functions in 1 module")),
        "closing line: {stderr}"
    );
    std::fs::remove_file(&bin).unwrap();
    let json = report(&data, &["--format=json"]);
    let expected = calls_counts();
    assert_eq!(json_calls(&json), expected);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["lost_events"], 0);
    assert_eq!(v["threads"], 1);
    assert_eq!(v["events"], 2 * 194);
}

/// Code loaded during the recording (dlopen, under --nest-lib) keeps its
/// names: the file gets the grown function table.
#[test]
fn functions_loaded_while_recording_keep_their_names() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dlopen.data");
    let plugin = fixture("plugin", Build::O2);
    let stderr = record(
        &["--nest-lib", "plugin*"],
        &fixture("dlopen", Build::O2),
        &[plugin.to_str().unwrap()],
        &data,
    );
    assert!(
        stderr
            .lines()
            .any(|l| l.ends_with("dlopen.data: 22 calls, 0 lost, 12 functions in 2 modules")),
        "closing line: {stderr}"
    );
    let out = run(
        utrace()
            .args(["--report", "--format=json", "-d"])
            .arg(&data),
        Duration::from_secs(60),
    );
    assert_eq!(String::from_utf8_lossy(&out.stderr), "", "no warning");
    assert_eq!(
        json_calls(&String::from_utf8_lossy(&out.stdout)),
        counts(&[
            ("main", 1),
            ("load_and_call", 2),
            ("dlopen@plt", 2),
            ("dlsym@plt", 2),
            ("dlclose@plt", 2),
            ("printf@plt", 1),
            ("plugin_entry", 2),
            ("plugin_work", 5),
            ("plugin_helper", 5),
        ])
    );
}

#[test]
fn call_graph_report_equals_the_live_output() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("calls.data");
    let bin = fixture("calls", Build::O2);
    record(&[], &bin, &[], &data);
    let replayed = report(&data, &["--format=call-graph"]);
    let live = trace(&bin, &[], &[]).graph;
    assert_text_eq(&normalise(&live), &normalise(&replayed));
}

#[test]
fn threads_are_recorded_exactly() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("threads.data");
    record(&[], &fixture("threads", Build::O2), &["100"], &data);
    let c = json_calls(&report(&data, &["--format=json"]));
    assert_eq!(c.get("work"), Some(&400));
    assert_eq!(c.get("thread_main"), Some(&4));
    let v: serde_json::Value = serde_json::from_str(&report(&data, &["--format=json"])).unwrap();
    assert_eq!(v["threads"], 5);
}

#[test]
fn every_format_reads_a_real_recording() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sort.data");
    let bin = fixture("sort", Build::O2);
    record(&[], &bin, &["-n", "100"], &data);
    let summary = report(&data, &[]);
    let row = summary
        .lines()
        .find(|l| l.trim_end().ends_with(" compare  sort-O2") || l.contains(" compare "))
        .expect("compare row");
    assert!(
        row.split_whitespace().next() == Some("635"),
        "compare is called 635 times for -n 100: {row}"
    );
    let folded = report(&data, &["--format=folded"]);
    assert!(
        folded
            .lines()
            .any(|l| l.starts_with("main;sort_numbers;quicksort;partition;compare ")),
        "{folded}"
    );
    let svg = dir.path().join("flame.svg");
    report(
        &data,
        &["--format=flame-graph", "-o", svg.to_str().unwrap()],
    );
    let svg = std::fs::read_to_string(svg).unwrap();
    assert!(
        svg.starts_with("<?xml") && svg.contains("compare"),
        "flame graph SVG"
    );
    // The root frame is labelled with the command, in its title and its text.
    let command = format!("{} -n 100", bin.display());
    let root = svg
        .split("<g>")
        .find(|g| g.contains(" ns, 100%)</title>"))
        .expect("a root frame");
    assert!(root.starts_with(&format!("<title>{command} (")), "{root}");
    assert!(root.ends_with(&format!(">{command}</text></g>")), "{root}");
    let chrome: serde_json::Value =
        serde_json::from_str(&report(&data, &["--format=chrome"])).unwrap();
    let x_events = chrome["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X")
        .count();
    let calls: usize = json_calls(&report(&data, &["--format=json"]))
        .values()
        .sum();
    assert_eq!(x_events, calls, "one complete event per call");
}

/// The JSON report's row of `function`.
fn json_row(json: &str, function: &str) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_str(json).expect("the JSON report parses");
    let rows = v["functions"].as_array().expect("functions array");
    let row = rows.iter().find(|f| f["function"] == function);
    row.unwrap_or_else(|| panic!("no {function} in {json}"))
        .clone()
}

/// Avg is the mean of every call's own duration, the nested calls of a
/// recursion included (Total counts only the outermost ones): the chrome
/// report of the same recording, which has every call's duration to the
/// nanosecond, gives exactly the same mean, min and max.
#[test]
fn avg_is_the_mean_of_every_call_even_in_recursion() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("calls.data");
    record(&[], &fixture("calls", Build::O2), &[], &data);
    let fib = json_row(&report(&data, &["--format=json"]), "fib");
    let chrome: serde_json::Value =
        serde_json::from_str(&report(&data, &["--format=chrome"])).unwrap();
    let durations: Vec<u64> = chrome["traceEvents"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["ph"] == "X" && e["name"] == "fib")
        .map(|e| (e["dur"].as_f64().unwrap() * 1000.0).round() as u64)
        .collect();
    assert_eq!(durations.len(), 177);
    let sum: u64 = durations.iter().sum();
    let (min, max) = (durations.iter().min(), durations.iter().max());
    assert_eq!(fib["calls"], 177);
    assert_eq!(fib["avg_ns"], sum / 177, "{fib}");
    assert_eq!(fib["min_ns"].as_u64().as_ref(), min, "{fib}");
    assert_eq!(fib["max_ns"].as_u64().as_ref(), max, "{fib}");
    // The outermost call is the longest and holds all the others.
    assert_eq!(fib["total_ns"], fib["max_ns"], "{fib}");
}

#[test]
fn avg_counted_in_bpf_is_the_mean_call_between_min_and_max() {
    if !require_bpf() {
        return;
    }
    let out = run(
        utrace()
            .args(["--format=summary", "-f", "fib", "--"])
            .arg(fixture("calls", Build::O2)),
        Duration::from_secs(60),
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let row = text
        .lines()
        .find(|l| l.contains(" fib "))
        .unwrap_or_else(|| panic!("no fib row: {text}"));
    // Calls, then Total, Self, Avg, Min, Max as "<value> <unit>".
    let f: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(f[0], "177", "{row}");
    let [total, _self, avg, min, max] =
        [1, 3, 5, 7, 9].map(|i| ns_of(&format!("{} {}", f[i], f[i + 1])));
    assert!(min <= avg && avg <= max, "min ≤ avg ≤ max: {row}");
    // Nested calls count in the mean, not in Total: fib(10)'s calls nest
    // several deep, so avg × calls is several times Total (it was Total).
    assert!(avg * 177.0 > 2.0 * total, "{row}");
}

#[test]
fn bad_trace_files_get_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let not_trace = dir.path().join("notes.txt");
    std::fs::write(&not_trace, "hello").unwrap();
    let empty = dir.path().join("empty.data");
    std::fs::write(&empty, "").unwrap();
    for (path, says) in [
        (dir.path().join("missing.data"), "no such file"),
        (not_trace, "not a utrace"),
        (empty, "empty"),
        (dir.path().to_path_buf(), "directory"),
    ] {
        let out = run(
            utrace().arg("--report").arg("-d").arg(&path),
            Duration::from_secs(30),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{path:?}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.to_lowercase().contains(says), "{path:?}: {stderr}");
    }
}

#[test]
fn live_summary_is_counted_in_bpf_with_exact_counts() {
    if !require_bpf() {
        return;
    }
    let out = run(
        utrace()
            .args(["--format=summary", "--"])
            .arg(fixture("calls", Build::O2)),
        Duration::from_secs(60),
    );
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let table = text.split_once("# DURATION").map_or(&*text, |(t, _)| t);
    let table = &table[table.find("      Calls").expect("summary header")..];
    let expected = calls_counts();
    assert_eq!(summary_calls(table), expected, "{text}");
    assert!(
        text.contains("194 calls counted in BPF (no events streamed), 0 lost"),
        "{text}"
    );
}

/// Live with -c and no -o, a machine format goes to its default file, named
/// on stderr, and stdout is the program's alone: JSON interleaved with the
/// program's output would be neither.
#[test]
fn live_machine_formats_keep_off_the_programs_stdout() {
    if !require_bpf() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = utrace();
    cmd.current_dir(dir.path())
        .args(["--format=json", "--"])
        .arg(fixture("calls", Build::O2));
    let out = run(&mut cmd, Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "fib(10)=55 sum=33\n");
    assert!(stderr.lines().any(|l| l == "Wrote utrace.json"), "{stderr}");
    let json = std::fs::read_to_string(dir.path().join("utrace.json")).unwrap();
    assert_eq!(json_calls(&json), calls_counts());
}
