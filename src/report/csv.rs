//! `--format=csv`: one row per call and per system call, for awk and
//! pandas: `timestamp_ns,pid,tid,depth,kind,name,linkage_name,duration_ns,
//! result,bytes`. A call's row is written when it ends (its timestamp is its
//! entry, CLOCK_MONOTONIC ns); `result` is empty for a call that returned,
//! else how it ended; for a system call, what it returned as strace shows it,
//! and `bytes` what a read/write-family call moved.

use std::io::Write;

use anyhow::Result;

use crate::model::{Call, End, FuncTable, RunInfo, Sink, SyscallCall};
use crate::syscall;

const HEADER: [&str; 10] = [
    "timestamp_ns",
    "pid",
    "tid",
    "depth",
    "kind",
    "name",
    "linkage_name",
    "duration_ns",
    "result",
    "bytes",
];

pub struct Csv {
    out: csv::Writer<Box<dyn Write>>,
    header_done: bool,
}

impl Csv {
    pub fn new(out: Box<dyn Write>) -> Self {
        Csv {
            out: csv::Writer::from_writer(out),
            header_done: false,
        }
    }

    fn row(&mut self, fields: [&str; 10]) -> Result<()> {
        if !self.header_done {
            self.header_done = true;
            self.out.write_record(HEADER)?;
        }
        self.out.write_record(fields)?;
        Ok(())
    }
}

fn end_name(end: End) -> &'static str {
    match end {
        End::Returned => "",
        End::Unwound => "unwound",
        End::NotSeen => "return not seen",
        End::Open => "still running",
        End::ThreadEnded => "thread ended",
    }
}

impl Sink for Csv {
    fn call(&mut self, call: &Call, table: &FuncTable) -> Result<()> {
        let Call::Leave {
            pid,
            tid,
            func,
            depth,
            entry_ts,
            ts,
            end,
            ..
        } = *call
        else {
            return Ok(());
        };
        let raw = table.function(func).map_or("", |f| f.linkage_name());
        self.row([
            &entry_ts.to_string(),
            &pid.to_string(),
            &tid.to_string(),
            &depth.to_string(),
            "call",
            table.name(func),
            raw,
            &(ts - entry_ts).to_string(),
            end_name(end),
            "",
        ])
    }

    fn syscall(&mut self, call: &SyscallCall, _table: &FuncTable) -> Result<()> {
        let sys = call.sys;
        let name = syscall::name(sys.nr);
        let bytes = sys
            .ret
            .and_then(|r| syscall::bytes(sys.nr, r))
            .map_or(String::new(), |b| b.to_string());
        self.row([
            &call.ts.to_string(),
            &call.pid.to_string(),
            &call.tid.to_string(),
            &call.depth.to_string(),
            "syscall",
            &name,
            &name,
            &call.duration().to_string(),
            &syscall::format_result(sys.nr, sys.ret),
            &bytes,
        ])
    }

    fn finish(&mut self, _table: &FuncTable, _run: &RunInfo) -> Result<()> {
        if !self.header_done {
            self.header_done = true;
            self.out.write_record(HEADER)?;
        }
        self.out.flush()?;
        Ok(())
    }
}
