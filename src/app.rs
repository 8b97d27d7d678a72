//! utrace's entry point: parse the command line, then run one mode —
//! live tracing, recording, `--list`, or a report — and exit with the traced
//! command's status. Errors print as one line, `utrace: …`, with the way out.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;

use crate::options::{Format, Mode, ReportOptions, Target, TraceOptions};
use crate::record::Recorder;
use crate::replay::Replay;
use crate::report::summary::Summary;
use crate::session::{self, Counted, Output};
use crate::util::diag::is_broken_pipe;
use crate::util::output;
use crate::{cli, list, plan, report};

/// Runs utrace with the process's arguments.
pub fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        // Bad usage exits 2, as clap does for the errors it reports itself.
        Err(err) if err.is::<cli::UsageError>() => {
            eprintln!("utrace: {err}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("utrace: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<i32> {
    match cli::parse()? {
        Mode::List(trace, output) => {
            let mut plan = plan::build(&trace)?;
            let mut out = output::open(output.as_deref(), None)?;
            list::print(&plan, trace.exit, &mut out.writer)?;
            out.writer.flush()?;
            if let Some(note) = list::inlined_note(&mut plan) {
                eprintln!("utrace: {note}");
            }
            eprintln!("{}", list::closing_line(&plan, out.file.as_deref()));
            Ok(0)
        }
        Mode::Live(trace, report) => live(&trace, &report),
        Mode::Record(trace, data) => {
            let plan = plan::build(&trace)?;
            let recorder = Recorder::new(&data, &plan.run_info(), &plan.probes.table)?;
            Ok(session::run(&trace, plan, Output::Record(recorder))?.exit_code)
        }
        Mode::Report(data, opts) => {
            report::run(&data, &opts)?;
            Ok(0)
        }
    }
}

fn live(trace: &TraceOptions, opts: &ReportOptions) -> Result<i32> {
    let plan = plan::build(trace)?;
    let mut written = None;
    let output = match opts.format {
        // A live summary is counted in BPF: no event leaves the kernel.
        Format::Summary => {
            let out = output::open(opts.output.as_deref(), None)?;
            let summary = Summary::new(out.writer, opts.sort).with_srcline(opts.srcline);
            Output::Count(Box::new(Counted::new(summary, trace.min_duration_ns)?))
        }
        // So is the I/O table: it is made of BPF's counts alone.
        Format::Io | Format::IoPlot => {
            if !trace.io {
                anyhow::bail!(
                    "--format={} shows what --io counts: add --io",
                    if opts.format == Format::Io {
                        "io"
                    } else {
                        "io-plot"
                    }
                );
            }
            let shares_stdout = matches!(trace.target, Target::Command(_));
            let (sink, file) = report::open_sink(opts, shares_stdout)?;
            written = file;
            Output::CountIo(sink)
        }
        _ => {
            let shares_stdout = matches!(trace.target, Target::Command(_));
            let (sink, file) = report::open_sink(opts, shares_stdout)?;
            written = file;
            Output::Calls(Replay::new(sink))
        }
    };
    let exit_code = session::run(trace, plan, output)?.exit_code;
    if let Some(path) = written {
        eprintln!("Wrote {}", path.display());
    }
    Ok(exit_code)
}
