//! `--report`: reads a trace file, pairs its events into calls and feeds
//! them to the chosen format's sink. The same sinks aggregate live sessions
//! (`sink_for`). Adding a format means adding one file here.
//!
//! Reports stream: the reader holds one chunk, the pairing one stack per
//! thread, the sinks what they aggregate (functions × threads × depth).

pub mod call_graph;
pub mod chrome;
pub mod flame;
pub mod folded;
pub mod json;
pub mod summary;

#[cfg(test)]
pub(crate) mod testutil;

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::callstack::CallStacks;
use crate::cli::{Format, ReportOptions};
use crate::model::{Call, FuncTable, Sink};
use crate::session::is_broken_pipe;
use crate::tracefile::{ReadStatus, TraceReader};

/// Where `--format=flame-graph` writes without `--output`.
pub const DEFAULT_SVG: &str = "utrace.svg";

/// The sink that renders `format`. `out` should be buffered; every sink
/// flushes it in `finish`.
pub fn sink_for(format: Format, opts: &ReportOptions, out: Box<dyn Write>) -> Box<dyn Sink> {
    match format {
        Format::Summary => Box::new(summary::Summary::new(out, opts.sort)),
        Format::CallGraph => Box::new(call_graph::CallGraph::new(out, opts.layout)),
        Format::Json => Box::new(json::Json::new(out, opts.sort)),
        Format::Folded => Box::new(folded::Folded::new(out, opts.per_thread)),
        Format::FlameGraph => Box::new(flame::Flame::new(out, opts.per_thread)),
        Format::Chrome => Box::new(chrome::Chrome::new(out)),
    }
}

/// `utrace --report`: the report of `data` in `opts.format`, to `opts.output`
/// (or stdout; `utrace.svg` for a flame graph). Damage in the file is
/// reported on stderr; a closed stdout ends the report quietly.
pub fn run(data: &Path, opts: &ReportOptions) -> Result<()> {
    let reader = TraceReader::open(data)?;
    let (out, out_path) = open_output(opts)?;
    let mut sink = sink_for(opts.format, opts, out);
    let status = match replay(&reader, sink.as_mut()) {
        Ok(status) => status,
        Err(e) if is_broken_pipe(&e) => return Ok(()),
        Err(e) => return Err(e),
    };
    for warning in status.warnings() {
        eprintln!("utrace: warning: {}: {warning}", data.display());
    }
    if let Some(path) = out_path {
        eprintln!("Wrote {}", path.display());
    }
    Ok(())
}

/// Feeds every event of `reader` through call pairing into `sink`, closes the
/// calls still open at the trace's end, and finishes the sink.
pub fn replay(reader: &TraceReader, sink: &mut dyn Sink) -> Result<ReadStatus> {
    let mut feed = Feed {
        sink,
        table: reader.table(),
        failed: None,
    };
    let mut stacks = CallStacks::new();
    let mut events = reader.events();
    let mut last_ts = 0;
    for ev in &mut events {
        last_ts = last_ts.max(ev.ts);
        stacks.push(&ev, &mut |c| feed.call(c));
        if feed.failed.is_some() {
            break;
        }
    }
    let status = events.status();
    let mut run = reader.run_info().clone();
    run.end_mono_ns = run.end_mono_ns.max(last_ts);
    if feed.failed.is_none() {
        stacks.finish(run.end_mono_ns, &mut |c| feed.call(c));
    }
    if let Some(e) = feed.failed {
        return Err(e);
    }
    feed.sink.finish(feed.table, &run)?;
    if let Some(note) = stacks.loss_note() {
        eprintln!("{note}");
    }
    Ok(status)
}

/// Hands calls to a sink until it fails, keeping the first error.
struct Feed<'a> {
    sink: &'a mut dyn Sink,
    table: &'a FuncTable,
    failed: Option<anyhow::Error>,
}

impl Feed<'_> {
    #[inline]
    fn call(&mut self, call: &Call) {
        if self.failed.is_none()
            && let Err(e) = self.sink.call(call, self.table)
        {
            self.failed = Some(e);
        }
    }
}

/// The report's destination, and its path when it is a file.
fn open_output(opts: &ReportOptions) -> Result<(Box<dyn Write>, Option<PathBuf>)> {
    let path = match (&opts.output, opts.format) {
        (Some(p), _) if p.as_os_str() != "-" => Some(p.clone()),
        (None, Format::FlameGraph) => Some(PathBuf::from(DEFAULT_SVG)),
        _ => None,
    };
    let out: Box<dyn Write> = match &path {
        Some(p) => {
            let file = File::create(p).with_context(|| format!("creating {}", p.display()))?;
            Box::new(BufWriter::with_capacity(1 << 16, file))
        }
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock())),
    };
    Ok((out, path))
}

/// "1,234,567"
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration scaled to its unit: "850 ns", "12.345 us", "1.234 ms", "2.500 s".
pub fn human_duration(ns: u64) -> String {
    match ns {
        n if n < 1_000 => format!("{n} ns"),
        n if n < 1_000_000 => format!("{:.3} us", n as f64 / 1e3),
        n if n < 1_000_000_000 => format!("{:.3} ms", n as f64 / 1e6),
        n => format!("{:.3} s", n as f64 / 1e9),
    }
}

/// The file name of a module path: what tables show.
pub fn module_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(human_duration(850), "850 ns");
        assert_eq!(human_duration(12_345), "12.345 us");
        assert_eq!(human_duration(1_234_000), "1.234 ms");
        assert_eq!(human_duration(2_500_000_000), "2.500 s");
        assert_eq!(module_name("/usr/lib/libc.so.6"), "libc.so.6");
    }

    #[test]
    fn run_writes_every_format_to_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let data = testutil::trace_file(dir.path(), &testutil::synthetic_events(50));
        for format in [
            Format::Summary,
            Format::CallGraph,
            Format::Json,
            Format::Folded,
            Format::FlameGraph,
            Format::Chrome,
        ] {
            let out = dir.path().join(format!("{format:?}.out"));
            let opts = ReportOptions {
                output: Some(out.clone()),
                ..testutil::options(format)
            };
            run(&data, &opts).unwrap();
            let text = std::fs::read_to_string(&out).unwrap();
            assert!(text.contains("main"), "{format:?}: {text}");
        }
    }

    #[test]
    fn run_reports_a_truncated_file() {
        let dir = tempfile::tempdir().unwrap();
        let data = testutil::trace_file(dir.path(), &testutil::synthetic_events(50));
        let bytes = std::fs::read(&data).unwrap();
        std::fs::write(&data, &bytes[..bytes.len() - 10]).unwrap();
        let out = dir.path().join("summary.txt");
        run(
            &data,
            &ReportOptions {
                output: Some(out.clone()),
                ..testutil::options(Format::Summary)
            },
        )
        .unwrap();
        assert!(
            std::fs::read_to_string(&out)
                .unwrap()
                .contains("sort::numbers")
        );
    }

    #[test]
    fn run_fails_in_one_line_on_bad_input() {
        let dir = tempfile::tempdir().unwrap();
        let err = run(
            &dir.path().join("nope.data"),
            &testutil::options(Format::Summary),
        )
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.ends_with("nope.data: no such file (record one with `utrace --record -c COMMAND`)"),
            "{msg}"
        );
        assert!(!msg.contains('\n'));
    }
}
