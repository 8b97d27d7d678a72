//! `--report`: reads a trace file, pairs its events into calls and feeds
//! them through the replay-time filters (`filter`) to the chosen format's
//! sink. The same sinks aggregate live sessions
//! (`sink_for`). Adding a format means adding one file here.
//!
//! Reports stream: the reader holds one chunk, the pairing one stack per
//! thread, the sinks what they aggregate (functions × threads × depth).

pub mod call_graph;
pub(crate) mod chrome;
pub(crate) mod csv;
pub(crate) mod filter;
pub(crate) mod flame;
pub(crate) mod folded;
pub(crate) mod io;
pub(crate) mod io_plot;
pub(crate) mod json;
pub(crate) mod strace;
pub(crate) mod summary;
pub(crate) mod syscalls;

#[cfg(test)]
pub(crate) mod testutil;

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::model::Sink;
use crate::options::{ColorChoice, Format, ReportOptions};
use crate::replay::Replay;
use crate::tracefile::{ReadStatus, TraceReader};
use crate::util::diag::warning;
use crate::util::output;

/// Where `--format=flame-graph` writes without `--output`.
pub const DEFAULT_SVG: &str = "utrace.svg";

/// The sink that renders `format`. `out` should be buffered; every sink
/// flushes it in `finish`.
pub fn sink_for(format: Format, opts: &ReportOptions, out: Box<dyn Write>) -> Box<dyn Sink> {
    match format {
        Format::Summary => {
            Box::new(summary::Summary::new(out, opts.sort).with_srcline(opts.srcline))
        }
        Format::CallGraph => Box::new(call_graph::CallGraph::new(out, opts.layout)),
        Format::Json => Box::new(json::Json::new(out, opts.sort)),
        Format::Folded => Box::new(folded::Folded::new(out, opts.per_thread)),
        Format::FlameGraph => Box::new(flame::Flame::new(out, opts.per_thread)),
        Format::Chrome => Box::new(chrome::Chrome::new(out)),
        Format::Csv => Box::new(csv::Csv::new(out)),
        Format::Strace => Box::new(strace::Strace::new(out)),
        Format::Io => Box::new(io::IoTable::new(out, opts.output.as_deref())),
        Format::IoPlot => Box::new(io_plot::IoPlot::new(out)),
    }
}

/// The file a machine format goes to without `-o` while a traced command
/// writes to the same stdout (live `-c`): JSON or a flame graph must not be
/// interleaved with the program's own output.
pub fn machine_file(format: Format) -> Option<&'static str> {
    match format {
        Format::Json => Some("utrace.json"),
        Format::Folded => Some("utrace.folded"),
        Format::Chrome => Some("utrace.chrome.json"),
        Format::FlameGraph => Some(DEFAULT_SVG),
        Format::Csv => Some("utrace.csv"),
        Format::Io => None,
        Format::IoPlot => Some("utrace-io.svg"),
        Format::Summary | Format::CallGraph | Format::Strace => None,
    }
}

/// Opens where `opts` says the report goes (`-o`, `-` for stdout, else the
/// default file when there is one: an SVG always, `shares_stdout` the other
/// machine formats too), and its sink.
pub fn open_sink(
    opts: &ReportOptions,
    shares_stdout: bool,
) -> Result<(Box<dyn Sink>, Option<std::path::PathBuf>)> {
    let default = match opts.format {
        Format::FlameGraph => Some(DEFAULT_SVG),
        Format::IoPlot => machine_file(Format::IoPlot),
        format if shares_stdout => machine_file(format),
        _ => None,
    };
    let opened = output::open(opts.output.as_deref(), default.map(Path::new))?;
    let mut opts = opts.clone();
    opts.layout.color = colored(opts.color, opened.file.is_none());
    Ok((sink_for(opts.format, &opts, opened.writer), opened.file))
}

/// `--color`: auto colours a terminal on stdout, unless `NO_COLOR` is set
/// to anything (no-color.org); always and never override it.
fn colored(choice: ColorChoice, to_stdout: bool) -> bool {
    use std::io::IsTerminal;
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => {
            let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
            to_stdout && !no_color && std::io::stdout().is_terminal()
        }
    }
}

/// `utrace --report`: the report of `data` in `opts.format`, to `opts.output`
/// (or stdout; `utrace.svg` for a flame graph). Damage in the file is
/// reported on stderr; a closed stdout ends the report quietly.
pub fn run(data: &Path, opts: &ReportOptions) -> Result<()> {
    let reader = TraceReader::open(data)?;
    filter::check(&opts.calls, reader.table()).with_context(|| data.display().to_string())?;
    let (sink, file) = open_sink(opts, false)?;
    let sink = filter::apply(sink, &opts.calls)?;
    let status = replay_file(&reader, sink)?;
    for warning in status.warnings() {
        warning!("{}: {warning}", data.display());
    }
    if let Some(path) = file {
        eprintln!("Wrote {}", path.display());
    }
    Ok(())
}

/// Replays every event of `reader` into `sink` and finishes it.
pub fn replay_file(reader: &TraceReader, sink: Box<dyn Sink>) -> Result<ReadStatus> {
    let table = reader.table();
    let mut replay = Replay::new(sink);
    let mut events = reader.events();
    while !replay.closed() {
        let Some(ev) = events.next() else { break };
        replay.event(&ev, table)?;
    }
    let status = events.status();
    replay.finish(table, reader.run_info())?;
    Ok(status)
}

#[cfg(test)]
mod tests {
    use super::*;

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
