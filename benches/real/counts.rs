//! Per-function call counts from each tracer, under one naming, and how two
//! sets of counts agree.
//!
//! utrace names a function by its demangled name (PLT stubs as `name@plt`);
//! uftrace (`--demangle=no`) and bpftrace need raw symbol names. The bridge
//! is the address: `utrace --list` gives each traced function's offset and
//! name, `nm` each symbol's address and raw name, so another tracer's raw
//! name becomes utrace's name whatever either demangler prints. Library
//! functions (called through the PLT) are matched by c++filt's demangling
//! plus `@plt`. A name on two addresses (static functions defined twice,
//! clones named alike) is never probed on its own.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

/// Calls per function, keyed by utrace's name.
pub type Counts = BTreeMap<String, u64>;

pub fn total(c: &Counts) -> u64 {
    c.values().sum()
}

/// The executable's text symbols, by address, raw name and utrace's name.
pub struct Symbols {
    addr_of: HashMap<String, u64>,
    name_at: HashMap<u64, String>,
    /// utrace's name → (address, raw name) of every function so named.
    by_name: HashMap<String, Vec<(u64, String)>>,
    /// Raw names on more than one address (local functions of one name in
    /// several files): bpftrace probes only one of them by that name.
    shared_raw: BTreeSet<String>,
}

impl Symbols {
    /// Without utrace, c++filt's names stand in for utrace's.
    pub fn load(bin: &Path, utrace: Option<&Path>) -> Result<Symbols, String> {
        let syms = nm(bin)?;
        let mut s = Symbols {
            addr_of: syms.iter().map(|(a, r)| (r.clone(), *a)).collect(),
            name_at: HashMap::new(),
            by_name: HashMap::new(),
            shared_raw: BTreeSet::new(),
        };
        let mut addrs_of: HashMap<&str, BTreeSet<u64>> = HashMap::new();
        for (a, r) in &syms {
            addrs_of.entry(r).or_default().insert(*a);
        }
        s.shared_raw = addrs_of
            .into_iter()
            .filter(|(_, a)| a.len() > 1)
            .map(|(r, _)| r.to_string())
            .collect();
        match utrace {
            Some(u) => {
                let known: BTreeSet<u64> = syms.iter().map(|(a, _)| *a).collect();
                for (vaddr, name) in listed(u, bin)? {
                    // A leading endbr64 is skipped: the probe sits 4 bytes in.
                    let endbr = vaddr.wrapping_sub(4);
                    let addr = if !known.contains(&vaddr) && known.contains(&endbr) {
                        endbr
                    } else {
                        vaddr
                    };
                    s.name_at.insert(addr, name);
                }
            }
            None => {
                let raw: Vec<String> = syms.iter().map(|(_, r)| r.clone()).collect();
                for ((addr, _), name) in syms.iter().zip(demangle(&raw)?) {
                    s.name_at.entry(*addr).or_insert(name);
                }
            }
        }
        for (addr, raw) in &syms {
            if let Some(name) = s.name_at.get(addr) {
                let all = s.by_name.entry(name.clone()).or_default();
                if !all.iter().any(|(a, _)| a == addr) {
                    all.push((*addr, raw.clone()));
                }
            }
        }
        Ok(s)
    }

    /// The raw name to probe for utrace's `name`: None for PLT stubs, unknown
    /// names, and names on more than one address (either name).
    pub fn probe_name(&self, name: &str) -> Option<&str> {
        match self.by_name.get(name)?.as_slice() {
            [(_, raw)] if !self.shared_raw.contains(raw) => Some(raw),
            _ => None,
        }
    }

    /// utrace's name for a raw name another tracer reported: the executable's
    /// function at that address, else c++filt's name (a function utrace does
    /// not trace, such as a `.cold` part), else a library call through the PLT.
    fn utrace_name(&self, raw: &str, demangled: &str) -> String {
        match self.addr_of.get(raw) {
            Some(addr) => self
                .name_at
                .get(addr)
                .cloned()
                .unwrap_or_else(|| demangled.to_string()),
            None => format!("{demangled}@plt"),
        }
    }
}

/// (address, raw name) of the executable's text symbols.
fn nm(bin: &Path) -> Result<Vec<(u64, String)>, String> {
    let out = Command::new("nm")
        .arg("--defined-only")
        .arg(bin)
        .output()
        .map_err(|e| format!("nm: {e}"))?;
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let addr = u64::from_str_radix(w.next()?, 16).ok()?;
            let kind = w.next()?;
            let name = w.next()?;
            "tTwW".contains(kind).then(|| (addr, name.to_string()))
        })
        .collect())
}

/// (virtual address, name) of each function `utrace --list` would trace in
/// the executable itself (PLT stubs left out).
fn listed(utrace: &Path, bin: &Path) -> Result<Vec<(u64, String)>, String> {
    let out = Command::new(utrace)
        .arg("--list")
        .arg("--")
        .arg(bin)
        .output()
        .map_err(|e| format!("utrace --list: {e}"))?;
    let delta = text_delta(bin)?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    // "MODULE OFFSET PROBE EXIT SOURCE FUNCTION": the name is the last
    // column (it may hold spaces), so count the columns before it from the
    // header rather than assume them.
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    let offset = header.iter().position(|c| *c == "OFFSET");
    let (Some(offset), Some(before)) = (offset, header.len().checked_sub(1)) else {
        return Err(format!("utrace --list: unexpected header {header:?}"));
    };
    Ok(lines
        .filter_map(|l| {
            let (cols, name) = columns(l, before)?;
            let off = u64::from_str_radix(cols.get(offset)?.strip_prefix("0x")?, 16).ok()?;
            (!name.ends_with("@plt")).then(|| (off + delta, name.to_string()))
        })
        .collect())
}

/// The first `n` whitespace-separated columns, and the rest of the line.
fn columns(line: &str, n: usize) -> Option<(Vec<&str>, &str)> {
    let mut rest = line;
    let mut cols = Vec::new();
    for _ in 0..n {
        rest = rest.trim_start();
        let end = rest.find(char::is_whitespace)?;
        cols.push(&rest[..end]);
        rest = &rest[end..];
    }
    Some((cols, rest.trim()))
}

/// vaddr − file offset of the executable segment (`readelf -lW`).
fn text_delta(bin: &Path) -> Result<u64, String> {
    let out = Command::new("readelf")
        .arg("-lW")
        .arg(bin)
        .output()
        .map_err(|e| format!("readelf: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let hex = |s: &str| u64::from_str_radix(s.trim_start_matches("0x"), 16).ok();
    text.lines()
        .filter(|l| l.trim_start().starts_with("LOAD") && l.contains(" R E "))
        .find_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            Some(hex(w.get(2)?)?.wrapping_sub(hex(w.get(1)?)?))
        })
        .ok_or_else(|| format!("readelf: no executable segment in {}", bin.display()))
}

/// c++filt over many names at once (one per line, in order).
pub fn demangle(raw: &[String]) -> Result<Vec<String>, String> {
    let mut child = Command::new("c++filt")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("c++filt: {e}"))?;
    let input = raw.join("\n") + "\n";
    let mut stdin = child.stdin.take().ok_or("c++filt: no stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    let _ = writer.join();
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(String::from)
        .collect();
    if names.len() != raw.len() {
        return Err(format!(
            "c++filt gave {} names for {}",
            names.len(),
            raw.len()
        ));
    }
    Ok(names)
}

/// `utrace --report --format=json`: `functions[].function` / `.calls`.
pub fn utrace_json(text: &str) -> Option<Counts> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let mut counts = Counts::new();
    for f in v.get("functions")?.as_array()? {
        let name = f.get("function")?.as_str()?;
        *counts.entry(name.to_string()).or_default() += f.get("calls")?.as_u64()?;
    }
    Some(counts)
}

/// utrace's summary table: the Calls column and the Function column, found
/// by position from both ends of each row (C++ names hold spaces and may
/// be wider than their column).
pub fn utrace_summary(text: &str) -> Option<Counts> {
    let mut lines = text.lines();
    lines.find(|l| l.trim_start().starts_with("Calls"))?;
    let mut counts = Counts::new();
    for line in lines.skip(1).take_while(|l| !l.trim().is_empty()) {
        // Calls, five "value unit" durations, the name (it may hold spaces
        // and be wider than its column), the module (it holds none).
        let (calls, rest) = columns(line, 11)?;
        let calls: u64 = calls[0].replace(',', "").parse().ok()?;
        let (name, _module) = rest.rsplit_once(char::is_whitespace)?;
        *counts.entry(name.trim().to_string()).or_default() += calls;
    }
    Some(counts)
}

/// `uftrace report -f call --demangle=no`: "CALLS NAME" rows after a header.
pub fn uftrace_report(text: &str, syms: &Symbols) -> Result<Counts, String> {
    let rows: Vec<(u64, String)> = text
        .lines()
        .filter_map(|l| {
            let (calls, name) = l.trim_start().split_once(char::is_whitespace)?;
            Some((calls.parse().ok()?, name.trim().to_string()))
        })
        .filter(|(_, n)| !n.starts_with("linux:")) // kernel events, not calls
        // uftrace reports local functions of one name together: they cannot
        // be matched to one of utrace's rows.
        .filter(|(_, n)| !syms.shared_raw.contains(n))
        .collect();
    let raw: Vec<String> = rows.iter().map(|(_, n)| n.clone()).collect();
    let names = demangle(&raw)?;
    let mut counts = Counts::new();
    for ((calls, raw), demangled) in rows.into_iter().zip(names) {
        *counts
            .entry(syms.utrace_name(&raw, &demangled))
            .or_default() += calls;
    }
    Ok(counts)
}

/// bpftrace `-f json` with `@[probe]` (entries) and `@r[probe]` (returns);
/// probe keys end in `:RAW`, mapped back through `probes` (utrace name, raw).
pub fn bpftrace_json(text: &str, probes: &[(String, String)]) -> Option<(Counts, Counts)> {
    let (mut entries, mut returns) = (Counts::new(), Counts::new());
    for line in text.lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if v.get("type").and_then(|t| t.as_str()) != Some("map") {
            continue;
        }
        for (map, keys) in v.get("data")?.as_object()? {
            let into = if map == "@r" {
                &mut returns
            } else {
                &mut entries
            };
            for (probe, n) in keys.as_object()? {
                let raw = probe.rsplit(':').next()?;
                let (name, _) = probes.iter().find(|(_, r)| r == raw)?;
                into.insert(name.clone(), n.as_u64()?);
            }
        }
    }
    // count() leaves no key for a probe that never fired.
    for (name, _) in probes {
        entries.entry(name.clone()).or_insert(0);
        returns.entry(name.clone()).or_insert(0);
    }
    Some((entries, returns))
}

/// How one tracer's counts agree with a reference's, over several runs each.
#[derive(Default)]
pub struct Agreement {
    pub compared: usize,
    /// Same single value in every run of both.
    pub equal: usize,
    /// Not always the same, but the two ranges over the runs overlap.
    pub vary: usize,
    /// Ranges apart: "name: 12 vs 15", biggest gap first.
    pub differ: Vec<String>,
    pub only_here: Vec<String>,
    pub only_there: Vec<String>,
}

impl Agreement {
    /// "310 of 310 equal", "296 of 310 equal, 8 vary, 6 differ".
    pub fn cell(&self) -> String {
        let mut s = format!("{} of {} equal", self.equal, self.compared);
        if self.vary > 0 {
            s += &format!(", {} vary", self.vary);
        }
        if !self.differ.is_empty() {
            s += &format!(", {} differ", self.differ.len());
        }
        s
    }
}

/// Compares `mine` with `theirs` (runs of each), over `only` or the
/// functions both saw.
pub fn compare(mine: &[&Counts], theirs: &[&Counts], only: Option<&[String]>) -> Agreement {
    let names = |runs: &[&Counts]| -> BTreeSet<String> {
        runs.iter().flat_map(|c| c.keys().cloned()).collect()
    };
    let (here, there) = (names(mine), names(theirs));
    let mut a = Agreement::default();
    let range = |runs: &[&Counts], f: &str| {
        let v: Vec<u64> = runs
            .iter()
            .map(|c| c.get(f).copied().unwrap_or(0))
            .collect();
        (
            v.iter().copied().min().unwrap_or(0),
            v.iter().copied().max().unwrap_or(0),
        )
    };
    // With a fixed list, a function a tracer never reported shows as "absent".
    let shown = |runs: &[&Counts], f: &str, (lo, hi): (u64, u64)| {
        if runs.iter().any(|c| c.contains_key(f)) {
            span(lo, hi)
        } else {
            "absent".to_string()
        }
    };
    let set: Vec<String> = match only {
        Some(list) => list.to_vec(),
        None => {
            a.only_here = here.difference(&there).cloned().collect();
            a.only_there = there.difference(&here).cloned().collect();
            here.intersection(&there).cloned().collect()
        }
    };
    let mut gaps = Vec::new();
    for f in &set {
        let ((lo, hi), (rlo, rhi)) = (range(mine, f), range(theirs, f));
        a.compared += 1;
        if lo == hi && rlo == rhi && lo == rlo {
            a.equal += 1;
        } else if lo <= rhi && rlo <= hi {
            a.vary += 1;
        } else {
            let gap = lo.abs_diff(rhi).min(hi.abs_diff(rlo));
            let (me, them) = (shown(mine, f, (lo, hi)), shown(theirs, f, (rlo, rhi)));
            gaps.push((gap, format!("{f}: {me} vs {them}")));
        }
    }
    gaps.sort_by(|x, y| y.0.cmp(&x.0).then_with(|| x.1.cmp(&y.1)));
    a.differ = gaps.into_iter().map(|(_, s)| s).collect();
    a
}

fn span(lo: u64, hi: u64) -> String {
    if lo == hi {
        lo.to_string()
    } else {
        format!("{lo}..{hi}")
    }
}
