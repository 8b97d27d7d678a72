//! utrace's entry point: parse the command line, then run one mode —
//! live tracing, recording, `--list`, or a report — and exit with the traced
//! command's status. Errors print as one line, `utrace: …`, with the way out.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use utrace::cli::{self, Format, Mode, ReportOptions, TraceOptions};
use utrace::record::Recorder;
use utrace::report::{self, call_graph::CallGraph, summary::Summary};
use utrace::session::{self, Output};
use utrace::{list, plan};

fn main() -> ExitCode {
    match run() {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(err) if session::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("utrace: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<i32> {
    match cli::parse()? {
        Mode::List(trace) => {
            let plan = plan::build(&trace)?;
            list::print(&plan, trace.exit, &mut std::io::stdout().lock())?;
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
    let out: Box<dyn Write> = match &opts.output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout())),
    };
    let output = match opts.format {
        Format::CallGraph => Output::Calls(Box::new(CallGraph::new(out, opts.layout))),
        // A live summary is counted in BPF: no event leaves the kernel.
        Format::Summary => Output::Count(Box::new(Summary::new(out, opts.sort))),
        format => Output::Calls(report::sink_for(format, opts, out)),
    };
    Ok(session::run(trace, plan, output)?.exit_code)
}
