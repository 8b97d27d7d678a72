//! `--format=io`: the I/O below each function, layer by layer, from the
//! counts BPF kept over the run (`--io`): bytes at the syscall, the page
//! cache's hits, misses and dirtied pages, block bytes and requests with
//! their device time, writeback of the pages the function dirtied (then or
//! later, by a kernel thread) and writeback it forced (fsync), and the
//! amplification: device bytes per syscall byte, read and write apart. To a
//! file named `*.csv`, the same columns as CSV.

use std::io::Write;
use std::path::Path;

use anyhow::Result;

use crate::model::{Call, FuncTable, IoCounts, IoOwner, RunInfo, Sink, SyscallCall};
use crate::util::fmt::{human_bytes, human_duration, thousands};

pub const COLUMNS: [&str; 16] = [
    "function",
    "syscall_read_bytes",
    "syscall_write_bytes",
    "cache_hit_pages",
    "cache_miss_pages",
    "dirtied_pages",
    "block_read_bytes",
    "block_write_bytes",
    "block_requests",
    "writeback_bytes",
    "forced_writeback_bytes",
    "avg_device_ns",
    "max_device_ns",
    "read_amp",
    "write_amp",
    "module",
];

pub struct IoTable {
    out: Box<dyn Write>,
    csv: bool,
}

impl IoTable {
    pub fn new(out: Box<dyn Write>, path: Option<&Path>) -> Self {
        let csv = path.is_some_and(|p| p.extension().is_some_and(|e| e == "csv"));
        IoTable { out, csv }
    }
}

/// The name a row shows: the function, `-` outside every traced call,
/// `(other traffic)` for what the program did not cause.
pub fn owner_name(table: &FuncTable, owner: IoOwner) -> &str {
    match owner {
        IoOwner::Function(id) => table.name(id),
        IoOwner::Outside => "-",
        IoOwner::Other => "(other traffic)",
    }
}

/// Rows with anything in them, the program's first (most device bytes
/// first), the devices' other traffic last.
pub fn rows(run: &RunInfo) -> Vec<(IoOwner, IoCounts)> {
    let mut rows: Vec<_> = run
        .io
        .iter()
        .filter(|(_, c)| c.fields().iter().any(|&v| v > 0))
        .copied()
        .collect();
    let device = |c: &IoCounts| c.block_read_bytes + c.block_write_bytes + c.writeback_bytes;
    rows.sort_by(|a, b| {
        (a.0 == IoOwner::Other)
            .cmp(&(b.0 == IoOwner::Other))
            .then(device(&b.1).cmp(&device(&a.1)))
            .then(a.0.cmp(&b.0))
    });
    rows
}

fn amp(v: Option<f64>) -> String {
    v.map_or("-".into(), |a| format!("{a:.2}"))
}

impl IoTable {
    fn write_csv(&mut self, table: &FuncTable, run: &RunInfo) -> Result<()> {
        let mut w = csv::Writer::from_writer(&mut self.out);
        w.write_record(COLUMNS)?;
        for (owner, c) in rows(run) {
            let mut rec = vec![owner_name(table, owner).to_string()];
            let f = c.fields();
            rec.extend(f[..10].iter().map(u64::to_string));
            rec.push(c.avg_device_ns().to_string());
            rec.push(c.max_device_ns.to_string());
            rec.push(amp(c.read_amp()));
            rec.push(amp(c.write_amp()));
            let module = match owner {
                IoOwner::Function(id) => table.module_of(id),
                _ => "",
            };
            rec.push(module.to_string());
            w.write_record(&rec)?;
        }
        w.flush()?;
        Ok(())
    }

    fn write_table(&mut self, table: &FuncTable, run: &RunInfo) -> Result<()> {
        let heads = [
            "Read",
            "Write",
            "Hit",
            "Miss",
            "Dirtied",
            "Blk read",
            "Blk write",
            "Reqs",
            "Writeback",
            "Forced",
            "Avg dev",
            "Max dev",
            "R_AMP",
            "W_AMP",
        ];
        let rows = rows(run);
        let width = rows
            .iter()
            .map(|(o, _)| owner_name(table, *o).chars().count())
            .max()
            .unwrap_or(0)
            .clamp(8, 60);
        let head: String = heads.iter().map(|h| format!("{h:>10} ")).collect();
        writeln!(self.out, "{head} Function")?;
        let rule: String = heads
            .iter()
            .map(|_| format!("{:>10} ", "=".repeat(9)))
            .collect();
        writeln!(self.out, "{rule} {}", "=".repeat(width))?;
        for (owner, c) in &rows {
            let cells = [
                human_bytes(c.syscall_read_bytes),
                human_bytes(c.syscall_write_bytes),
                thousands(c.cache_hit_pages),
                thousands(c.cache_miss_pages),
                thousands(c.dirtied_pages),
                human_bytes(c.block_read_bytes),
                human_bytes(c.block_write_bytes),
                thousands(c.block_requests),
                human_bytes(c.writeback_bytes),
                human_bytes(c.forced_writeback_bytes),
                human_duration(c.avg_device_ns()),
                human_duration(c.max_device_ns),
                amp(c.read_amp()),
                amp(c.write_amp()),
            ];
            let line: String = cells.iter().map(|v| format!("{v:>10} ")).collect();
            writeln!(self.out, "{line} {}", owner_name(table, *owner))?;
        }
        if rows.is_empty() {
            writeln!(self.out, "(no I/O was traced: record with --io)")?;
        }
        Ok(())
    }
}

impl Sink for IoTable {
    fn call(&mut self, _call: &Call, _table: &FuncTable) -> Result<()> {
        Ok(())
    }

    fn syscall(&mut self, _sys: &SyscallCall, _table: &FuncTable) -> Result<()> {
        Ok(())
    }

    fn finish(&mut self, table: &FuncTable, run: &RunInfo) -> Result<()> {
        if self.csv {
            self.write_csv(table, run)?;
        } else {
            self.write_table(table, run)?;
        }
        self.out.flush()?;
        Ok(())
    }
}
