//! The table: one row per program and configuration, with output equality,
//! program time, calls, ns per call and its ratio to bpftrace's, and how the
//! call counts agree with uftrace's and bpftrace's; then every mismatch.

use crate::common::{self, median, thousands};
use crate::counts::{self, Agreement, Counts};
use crate::modes::Mode;
use crate::{Bench, Cell};

/// How many differing functions a note lists.
const SHOWN: usize = 5;
/// Notes are cut here (C++ names are long).
const NOTE_MAX: usize = 700;

pub fn report(benches: &[Bench], have_utrace: bool, have_bpftrace: bool) {
    let header = [
        "program",
        "run",
        "output",
        "program time",
        "calls counted",
        "ns/call",
        "× bpftrace",
        "counts vs uftrace",
        "counts vs bpftrace",
    ];
    println!("\ncommands ($RUN = target/real/run):");
    for b in benches {
        b.commands.iter().for_each(|c| println!("  {c}"));
    }
    let mut rows = vec![header.iter().map(|s| s.to_string()).collect::<Vec<_>>()];
    let mut notes = Vec::new();
    for b in benches {
        rows.extend(bench_rows(b, &mut notes));
    }
    println!(
        "\nprogram time: the program's own span, median; ns/call = (traced − untraced) / calls \
         made (full traces: --record's count; other rows: their own); × = ratio to bpftrace's \
         ns/call in the same run"
    );
    common::print_table(&rows, true);
    if !have_utrace {
        println!("\nutrace: not available (build it: cargo build --release)");
    }
    if !have_bpftrace {
        println!("\nbpftrace: not installed: no bpftrace column");
    }
    println!("\nnotes:");
    for b in benches {
        if !b.subset.is_empty() {
            let names: Vec<&str> = b.subset.iter().map(|(n, _)| n.as_str()).collect();
            let line = format!(
                "{}: bpftrace's functions (hottest in {}): {}",
                b.prog.name,
                b.subset_from,
                names.join(", ")
            );
            println!("  {}", crate::run::truncate(&line, NOTE_MAX));
        }
        b.notes
            .iter()
            .for_each(|n| println!("  {}: {}", b.prog.name, crate::run::truncate(n, NOTE_MAX)));
    }
    notes
        .iter()
        .for_each(|n| println!("  {}", crate::run::truncate(n, NOTE_MAX)));
}

/// The runs of a cell that left the output intact.
fn good(c: &Cell) -> impl Iterator<Item = &crate::Outcome> {
    c.runs.iter().filter(|o| o.same_output)
}

fn median_span(c: &Cell) -> Option<f64> {
    median(
        &good(c)
            .filter_map(|o| o.span_ns)
            .map(|n| n as f64)
            .collect::<Vec<_>>(),
    )
}

fn median_calls(c: &Cell) -> Option<f64> {
    median(
        &good(c)
            .filter_map(|o| o.counts.as_ref())
            .map(|k| counts::total(k) as f64)
            .collect::<Vec<_>>(),
    )
}

fn find(b: &Bench, pred: impl Fn(Mode) -> bool) -> Option<&Cell> {
    b.cells.iter().find(|c| pred(c.mode))
}

fn count_runs(c: Option<&Cell>) -> Vec<&Counts> {
    c.map_or_else(Vec::new, |c| {
        good(c).filter_map(|o| o.counts.as_ref()).collect()
    })
}

fn bench_rows(b: &Bench, notes: &mut Vec<String>) -> Vec<Vec<String>> {
    let base = b.cells.first().and_then(median_span);
    // Every full trace traps the same calls: the ones --record counts (its
    // ret-sites run where the default one broke the program). The live modes'
    // own counts can be wrong, so they are shown but not divided by.
    let made = find(b, |m| m == Mode::Record)
        .and_then(median_calls)
        .or_else(|| find(b, |m| m == Mode::RetSites).and_then(median_calls));
    let calls_made = |c: &Cell| match c.mode {
        Mode::Live | Mode::Record | Mode::Summary | Mode::RetSites => made,
        _ => median_calls(c),
    };
    let per_call = |c: &Cell| Some((median_span(c)? - base?) / calls_made(c)?);
    let bpf = find(b, |m| m == Mode::Bpftrace);
    let bpf_ns = bpf.and_then(per_call);
    let uftrace = count_runs(find(b, |m| matches!(m, Mode::Uftrace { .. })));
    let bpf_counts = count_runs(bpf);
    let subset: Vec<String> = b.subset.iter().map(|(n, _)| n.clone()).collect();
    let mut rows = Vec::new();
    for c in &b.cells {
        let label = c.mode.label(b.subset.len());
        let ok = good(c).next().is_some();
        let ns = per_call(c).filter(|_| c.mode != Mode::Untraced);
        let mine = count_runs(Some(c));
        let vs =
            |theirs: &[&Counts], only: Option<&[String]>, name: &str, notes: &mut Vec<String>| {
                if mine.is_empty() || theirs.is_empty() || std::ptr::eq(mine[0], theirs[0]) {
                    return "-".to_string();
                }
                let a = counts::compare(&mine, theirs, only);
                explain(&a, (b.prog.name, &label, name), notes);
                a.cell()
            };
        let full = !matches!(c.mode, Mode::Subset | Mode::Bpftrace);
        let uf_only = (!full).then_some(subset.as_slice());
        rows.push(vec![
            b.prog.name.to_string(),
            label.clone(),
            match (c.mode, ok) {
                (Mode::Untraced, true) => "reference".into(),
                (_, true) => "same".into(),
                (_, false) if c.runs.is_empty() => "not run".into(),
                (_, false) => "FAIL".into(),
            },
            median_span(c).map_or("-".into(), |ns| format!("{:.1} ms", ns / 1e6)),
            median_calls(c).map_or("-".into(), |n| thousands(n as u64)),
            ns.map_or("-".into(), |ns| format!("{ns:.0}")),
            match (ns, bpf_ns) {
                (Some(ns), Some(bp)) if c.mode != Mode::Bpftrace && bp > 0.0 => {
                    format!("{:.2}×", ns / bp)
                }
                _ => "-".into(),
            },
            vs(&uftrace, uf_only, "uftrace", notes),
            vs(&bpf_counts, Some(&subset), "bpftrace", notes),
        ]);
        if c.mode == Mode::Bpftrace {
            returns_note(b, c, notes);
        }
        if let (Mode::Subset, Some(bpf), Some(base)) = (c.mode, bpf, base) {
            pairs_note(b, c, bpf, base, notes);
        }
    }
    rows
}

/// The like-for-like pair's ratio run by run (main.rs runs them back to
/// back), beside the ratio of medians in the table: its median and spread.
fn pairs_note(b: &Bench, mine: &Cell, bpf: &Cell, base: f64, notes: &mut Vec<String>) {
    let cost = |o: &crate::Outcome| {
        let calls = counts::total(o.counts.as_ref()?) as f64;
        let ns = (o.span_ns? as f64 - base) / calls;
        (o.same_output && calls > 0.0).then_some(ns)
    };
    let mut ratios: Vec<f64> = mine
        .runs
        .iter()
        .zip(&bpf.runs)
        .filter_map(|(m, t)| Some(cost(m)? / cost(t)?).filter(|r| r.is_finite() && *r > 0.0))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let (Some(mid), Some(lo), Some(hi)) = (median(&ratios), ratios.first(), ratios.last()) else {
        return;
    };
    notes.push(format!(
        "{}: {} vs bpftrace, {} pairs run back to back: {mid:.2}× median, pairs {lo:.2}× … {hi:.2}×",
        b.prog.name,
        mine.mode.label(b.subset.len()),
        ratios.len()
    ));
}

/// Lists what did not match, biggest gaps first.
fn explain(a: &Agreement, (prog, mine, theirs): (&str, &str, &str), notes: &mut Vec<String>) {
    let what = format!("{prog} / {mine} vs {theirs}");
    if !a.differ.is_empty() {
        notes.push(format!(
            "{what}: {} differ: {}",
            a.differ.len(),
            a.differ[..a.differ.len().min(SHOWN)].join("; ")
        ));
    }
    for (list, side) in [(&a.only_here, mine), (&a.only_there, theirs)] {
        if !list.is_empty() {
            notes.push(format!(
                "{what}: {} functions only in {side}: {}{}",
                list.len(),
                list[..list.len().min(SHOWN)].join(", "),
                if list.len() > SHOWN { ", …" } else { "" }
            ));
        }
    }
}

/// bpftrace's uretprobes miss returns that longjmp or exceptions skip, and
/// any beyond the kernel's 64 pending returns per thread.
fn returns_note(b: &Bench, c: &Cell, notes: &mut Vec<String>) {
    let Some(o) = good(c).next() else { return };
    let (Some(entries), Some(returns)) = (&o.counts, &o.returns) else {
        return;
    };
    let short: Vec<String> = entries
        .iter()
        .filter(|(f, n)| returns.get(*f).is_some_and(|r| r != *n))
        .map(|(f, n)| format!("{f} {} of {n}", returns[f]))
        .collect();
    if !short.is_empty() {
        notes.push(format!(
            "{} / bpftrace: uretprobes counted other than the entries (returns of calls): {}",
            b.prog.name,
            short.join("; ")
        ));
    }
}
