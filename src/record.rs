//! The recorder: raw events go straight into the trace file (pairing happens
//! when the file is reported), and one closing line saying what was
//! written and how to look at it. The session shows the progress line.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::model::{Event, FuncTable, RunInfo};
use crate::tracefile::{TraceWriter, Written};
use crate::util::fmt::thousands;

pub struct Recorder {
    /// Boxed: the writer holds a chunk's buffers and a compressor, and the
    /// recorder travels by value inside the session's output choice.
    writer: Box<TraceWriter>,
    path: PathBuf,
    functions: usize,
    modules: usize,
}

impl Recorder {
    /// Creates the trace file and writes its header and function table.
    pub fn new(path: &Path, run: &RunInfo, table: &FuncTable) -> Result<Recorder> {
        Ok(Recorder {
            writer: Box::new(TraceWriter::create(path, run, table)?),
            path: path.to_owned(),
            functions: table.functions.len(),
            modules: table.modules.len(),
        })
    }

    /// The table grew (code loaded during the run): stores it again.
    pub fn table_grew(&mut self, table: &FuncTable) -> Result<()> {
        self.functions = table.functions.len();
        self.modules = table.modules.len();
        self.writer.write_table(table)
    }

    #[inline]
    pub fn event(&mut self, ev: &Event) -> Result<()> {
        self.writer.write(ev)
    }

    /// Call when no event came for a while: writes out what is buffered, so a
    /// crash loses nothing recorded before this point.
    pub fn idle(&mut self) -> Result<()> {
        self.writer.flush_chunk()
    }

    /// Writes the trailer (`run` carries the end time and lost events) and
    /// prints the closing line.
    pub fn finish(self, run: &RunInfo) -> Result<Written> {
        let summary = self.writer.finish(run)?;
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{}",
            closing_line(&self.path, &summary, self.functions, self.modules)
        );
        let _ = writeln!(err, "{}", view_hint(&self.path));
        Ok(summary)
    }
}

/// "Wrote utrace.data: 1,234,567 calls, 0 lost, 48 functions in 3 modules"
pub fn closing_line(path: &Path, summary: &Written, functions: usize, modules: usize) -> String {
    format!(
        "Wrote {}: {} calls, {} lost, {} functions in {} module{}",
        path.display(),
        thousands(summary.calls),
        thousands(summary.lost),
        thousands(functions as u64),
        modules,
        if modules == 1 { "" } else { "s" }
    )
}

fn view_hint(path: &Path) -> String {
    let data = if path == Path::new("utrace.data") {
        String::new()
    } else {
        format!(" -d {}", path.display())
    };
    format!(
        "View it with `utrace --report{data}` (--format=call-graph|json|csv|folded|flame-graph|chrome|strace|io|io-plot for other views)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{EventKind, FuncId};
    use crate::tracefile::TraceReader;

    #[test]
    fn closing_line_reads_like_the_issue() {
        let summary = Written {
            events: 2_469_134,
            calls: 1_234_567,
            lost: 0,
            chunks: 9,
            bytes: 1,
        };
        assert_eq!(
            closing_line(Path::new("utrace.data"), &summary, 48, 3),
            "Wrote utrace.data: 1,234,567 calls, 0 lost, 48 functions in 3 modules"
        );
        assert!(view_hint(Path::new("utrace.data")).starts_with("View it with `utrace --report`"));
        assert!(view_hint(Path::new("/tmp/x.data")).contains("utrace --report -d /tmp/x.data"));
    }

    #[test]
    fn recorded_events_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.data");
        let run = RunInfo {
            command: "./a".into(),
            pid: 9,
            ..RunInfo::default()
        };
        let mut rec = Recorder::new(&path, &run, &FuncTable::default()).unwrap();
        let ev = |kind, ts| Event {
            kind,
            pid: 9,
            tid: 9,
            func: FuncId(0),
            depth: 0,
            ts,
            after_loss: false,
            nested: false,
            sys: None,
            values: None,
        };
        rec.event(&ev(EventKind::Entry, 10)).unwrap();
        rec.idle().unwrap();
        rec.event(&ev(EventKind::Exit, 20)).unwrap();
        let summary = rec
            .finish(&RunInfo {
                end_mono_ns: 30,
                lost_events: 2,
                ..run
            })
            .unwrap();
        assert_eq!(
            (summary.events, summary.calls, summary.lost, summary.chunks),
            (2, 1, 2, 2)
        );
        let reader = TraceReader::open(&path).unwrap();
        assert_eq!(reader.events().count(), 2);
        assert_eq!(reader.run_info().lost_events, 2);
    }
}
