//! `--format=strace` (the live default of `--syscalls-only`): one line per
//! system call as `strace -f -T -o FILE` writes it, the thread first and the
//! time spent in the call last: `4242  read(3, 0x7ffd…, 4096) = 811 <0.000012>`.
//! Calls of functions are not shown in this layout.

use std::io::Write;

use anyhow::Result;

use super::syscalls::label;
use crate::model::{Call, FuncTable, RunInfo, Sink, SyscallCall};

pub struct Strace {
    out: Box<dyn Write>,
}

impl Strace {
    pub fn new(out: Box<dyn Write>) -> Self {
        Strace { out }
    }
}

impl Sink for Strace {
    fn call(&mut self, _call: &Call, _table: &FuncTable) -> Result<()> {
        Ok(())
    }

    fn syscall(&mut self, call: &SyscallCall, _table: &FuncTable) -> Result<()> {
        let text = label(call.sys);
        let line = match call.sys.ret {
            // strace's own mark of a call that never returned.
            None => format!("{:<5} {text}\n", call.tid),
            Some(_) => {
                let ns = call.duration();
                let (s, us) = (ns / 1_000_000_000, ns % 1_000_000_000 / 1_000);
                format!("{:<5} {text} <{s}.{us:06}>\n", call.tid)
            }
        };
        self.out.write_all(line.as_bytes())?;
        Ok(())
    }

    fn idle(&mut self, _now: u64, _table: &FuncTable) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }

    fn finish(&mut self, _table: &FuncTable, _run: &RunInfo) -> Result<()> {
        self.out.flush()?;
        Ok(())
    }
}
