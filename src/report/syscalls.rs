//! What the report formats share about system calls: the strace-style text
//! of one call, and the per (function, syscall) totals the summary and the
//! JSON show (aggregated from events, or taken from BPF's counts).

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;

use crate::model::{FuncId, FuncTable, Syscall, SyscallCall};
use crate::syscall::{self, Copied};
use crate::util::fmt::{human_bytes, human_duration, module_name, thousands};

/// `openat(AT_FDCWD, "/etc/app.conf", O_RDONLY) = 3`
pub fn label(sys: &Syscall) -> String {
    let copied: Vec<Copied> = (0..2)
        .map(|i| match sys.copy(i) {
            Some((bytes, truncated)) => Copied { bytes, truncated },
            None => Copied {
                bytes: &[],
                truncated: false,
            },
        })
        .collect();
    let got = match (sys.copies[0].is_some(), sys.copies[1].is_some()) {
        (false, _) => 0,
        (true, false) => 1,
        (true, true) => 2,
    };
    format!(
        "{}({}) = {}",
        syscall::name(sys.nr),
        syscall::format_args(sys.nr, &sys.args, &copied[..got]),
        syscall::format_result(sys.nr, sys.ret)
    )
}

/// `--io`'s note on a syscall leaf, or `None` when the call caused no I/O:
/// `cache 0/16 pages; block read 64 KiB in 1 request, 790 us`.
pub fn io_note(sys: &Syscall) -> Option<String> {
    let io = sys.io?;
    let mut parts = Vec::new();
    if io.cache_pages > 0 {
        let hits = io.cache_pages.saturating_sub(io.cache_added);
        parts.push(format!("cache {hits}/{} pages", io.cache_pages));
    } else if io.cache_added > 0 {
        parts.push(format!("cache added {} pages", io.cache_added));
    }
    if io.dirtied > 0 {
        parts.push(format!("dirtied {} pages", io.dirtied));
    }
    let mut block = Vec::new();
    if io.read_bytes > 0 {
        block.push(format!("read {}", human_bytes(io.read_bytes)));
    }
    if io.write_bytes > 0 {
        block.push(format!("write {}", human_bytes(io.write_bytes)));
    }
    if !block.is_empty() || io.requests > 0 {
        let mut b = format!("block {}", block.join(", "));
        if io.requests > 0 {
            let s = if io.requests == 1 { "" } else { "s" };
            b.push_str(&format!(
                " in {} request{s}, {}",
                io.requests,
                human_duration(io.device_ns)
            ));
        }
        parts.push(b);
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// The totals of one syscall made from one function (strace -c's columns).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SyscallStats {
    pub calls: u64,
    pub errors: u64,
    pub total_ns: u64,
    pub min_ns: u64,
    pub max_ns: u64,
    /// Results ≥ 0 of the read/write family.
    pub bytes: u64,
}

impl SyscallStats {
    pub fn avg_ns(&self) -> u64 {
        self.total_ns.checked_div(self.calls).unwrap_or(0)
    }

    fn add(&mut self, other: &SyscallStats) {
        if other.calls == 0 {
            return;
        }
        if self.calls == 0 || other.min_ns < self.min_ns {
            self.min_ns = other.min_ns;
        }
        self.calls += other.calls;
        self.errors += other.errors;
        self.total_ns += other.total_ns;
        self.max_ns = self.max_ns.max(other.max_ns);
        self.bytes += other.bytes;
    }
}

/// Per (caller, syscall number): `None` is outside every traced call.
pub type Key = (Option<FuncId>, u32);

#[derive(Default)]
pub struct SyscallTotals {
    by_key: HashMap<Key, SyscallStats>,
}

impl SyscallTotals {
    pub fn add(&mut self, call: &SyscallCall) {
        let sys = call.sys;
        let ns = call.duration();
        let ret = sys.ret.unwrap_or(0);
        let one = SyscallStats {
            calls: 1,
            errors: u64::from(sys.ret.is_some_and(|r| syscall::is_error(sys.nr, r))),
            total_ns: ns,
            min_ns: ns,
            max_ns: ns,
            bytes: syscall::bytes(sys.nr, ret).unwrap_or(0),
        };
        self.by_key
            .entry((call.caller, sys.nr))
            .or_default()
            .add(&one);
    }

    /// Counting mode: the totals BPF kept.
    pub fn insert(&mut self, key: Key, stats: SyscallStats) {
        self.by_key.entry(key).or_default().add(&stats);
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    pub fn calls(&self) -> u64 {
        self.by_key.values().map(|s| s.calls).sum()
    }

    /// Per (caller, syscall), most total time first (then by name).
    pub fn rows(&self, table: &FuncTable) -> Vec<(Key, SyscallStats)> {
        let mut rows: Vec<_> = self.by_key.iter().map(|(k, s)| (*k, *s)).collect();
        rows.sort_by(|a, b| {
            b.1.total_ns
                .cmp(&a.1.total_ns)
                .then_with(|| caller_name(table, a.0.0).cmp(caller_name(table, b.0.0)))
                .then_with(|| a.0.1.cmp(&b.0.1))
        });
        rows
    }

    /// Per syscall over every caller, most total time first.
    pub fn by_syscall(&self) -> Vec<(u32, SyscallStats)> {
        let mut merged: HashMap<u32, SyscallStats> = HashMap::new();
        for ((_, nr), s) in &self.by_key {
            merged.entry(*nr).or_default().add(s);
        }
        let mut rows: Vec<_> = merged.into_iter().collect();
        rows.sort_by(|a, b| b.1.total_ns.cmp(&a.1.total_ns).then(a.0.cmp(&b.0)));
        rows
    }

    /// The summary's two tables: strace -c's per syscall, then which
    /// function made them.
    pub fn write(&self, out: &mut dyn Write, table: &FuncTable) -> Result<()> {
        const W: usize = 11;
        let rule = format!("{:>W$} ", "=".repeat(W - 1));
        writeln!(out, "System calls:")?;
        let numbers = ["Calls", "Errors", "Total", "Avg", "Min", "Max"];
        let head: String = numbers.iter().map(|h| format!("{h:>W$} ")).collect();
        writeln!(out, "{head} Syscall")?;
        writeln!(out, "{} {}", rule.repeat(numbers.len()), "=".repeat(7))?;
        for (nr, s) in self.by_syscall() {
            let mut line = format!("{:>W$} {:>W$} ", thousands(s.calls), thousands(s.errors));
            for ns in [s.total_ns, s.avg_ns(), s.min_ns, s.max_ns] {
                line.push_str(&format!("{:>W$} ", human_duration(ns)));
            }
            writeln!(out, "{line} {}", syscall::name(nr))?;
        }
        // --syscalls-only: no traced function could have made them.
        if table.functions.is_empty() {
            return Ok(());
        }
        writeln!(out)?;
        writeln!(out, "System calls by function:")?;
        let numbers = ["Calls", "Errors", "Total", "Max", "Bytes"];
        let head: String = numbers.iter().map(|h| format!("{h:>W$} ")).collect();
        writeln!(out, "{head} {:<16}  Function", "Syscall")?;
        writeln!(
            out,
            "{} {}  {}",
            rule.repeat(numbers.len()),
            "=".repeat(16),
            "=".repeat(8)
        )?;
        for ((caller, nr), s) in self.rows(table) {
            let mut line = format!("{:>W$} {:>W$} ", thousands(s.calls), thousands(s.errors));
            line.push_str(&format!(
                "{:>W$} {:>W$} {:>W$} ",
                human_duration(s.total_ns),
                human_duration(s.max_ns),
                thousands(s.bytes)
            ));
            let module = caller.map(|f| module_name(table.module_of(f)));
            let function = match module {
                Some(m) => format!("{} ({m})", caller_name(table, caller)),
                None => caller_name(table, caller).to_owned(),
            };
            writeln!(out, "{line} {:<16}  {function}", syscall::name(nr))?;
        }
        Ok(())
    }
}

/// The name a caller shows as: outside every traced call is `-`.
pub fn caller_name(table: &FuncTable, caller: Option<FuncId>) -> &str {
    caller.map_or("-", |f| table.name(f))
}
