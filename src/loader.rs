//! Libraries loaded at run time (dlopen) under `--nest-lib`.
//!
//! glibc's loader calls `_dl_debug_state()` before and after every change of
//! the link map. A probe there stops the process (BPF sends SIGSTOP) and
//! tells us; we read its maps, attach the probes of every newly mapped
//! library `--nest-lib` asks for, and send SIGCONT. The library's code —
//! constructors included — therefore never runs untraced. Probes belong to
//! the file, so a library dlclose'd and loaded again stays traced.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::cli::TraceOptions;
use crate::model::FuncTable;
use crate::plan::Plan;
use crate::probe::{ExitMode, Probes};
use crate::symbols::{self, ProbePlan, Selector};

pub struct Loader {
    selector: Selector,
    exit: ExitMode,
    /// The dynamic loader and `_dl_debug_state`'s file offset in it.
    ld_so: PathBuf,
    breakpoint: u64,
    /// Libraries already probed (or rejected), by canonical path.
    seen: HashSet<PathBuf>,
}

impl Loader {
    /// A loader watch for `plan`, when `--nest-lib` is given and the program
    /// has a dynamic loader with the breakpoint.
    pub fn new(plan: &Plan, opts: &TraceOptions) -> Result<Option<Loader>> {
        if opts.filter.nest_libs.is_empty() {
            return Ok(None);
        }
        let Some(interp) = plan
            .modules
            .first()
            .and_then(|m| m.link.interpreter.clone())
        else {
            return Ok(None);
        };
        let ld_so = match plan.pid {
            Some(pid) => PathBuf::from(format!("/proc/{pid}/root{interp}")),
            None => PathBuf::from(&interp),
        };
        let Some(breakpoint) = debug_state_offset(&ld_so) else {
            eprintln!(
                "utrace: warning: {interp} has no _dl_debug_state: libraries loaded later with dlopen are not traced"
            );
            return Ok(None);
        };
        let seen = plan
            .modules
            .iter()
            .filter_map(|m| canonical(&m.path))
            .collect();
        Ok(Some(Loader {
            selector: Selector::new(&opts.filter)?,
            exit: opts.exit,
            ld_so,
            breakpoint,
            seen,
        }))
    }

    pub fn attach(&self, probes: &mut Probes, pid: u32) -> Result<()> {
        probes.attach_loader(&self.ld_so, self.breakpoint, pid)
    }

    /// Process `pid` is stopped at the breakpoint: probe what it mapped, let it go.
    pub fn resume(&mut self, pid: u32, probes: &mut Probes, table: &mut FuncTable) -> Result<()> {
        let attached = self.attach_new(pid, probes, table);
        // Resume even when attaching failed: never leave the program stopped.
        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGCONT);
        attached
    }

    fn attach_new(&mut self, pid: u32, probes: &mut Probes, table: &mut FuncTable) -> Result<()> {
        let maps = match symbols::read_process(pid) {
            Ok(maps) => maps,
            Err(_) => return Ok(()), // gone meanwhile
        };
        for lib in &maps.libs {
            let Some(real) = canonical(&lib.path) else {
                continue;
            };
            if !self.seen.insert(real) || !self.selector.nests(&lib.path, None) {
                continue;
            }
            let module = match symbols::read_module(&lib.path) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("utrace: warning: skipping {}: {e}", lib.path.display());
                    continue;
                }
            };
            let selection = symbols::select(&module, &[], &self.selector);
            let mut plan = symbols::build_plan(&selection);
            rebase(&mut plan, table);
            probes
                .attach_plan(&plan, self.exit, |_| Some(pid))
                .with_context(|| format!("attaching {} after dlopen", lib.path.display()))?;
            table.modules.extend(plan.table.modules);
            table.functions.extend(plan.table.functions);
        }
        Ok(())
    }
}

/// Renumbers a plan built on its own so its ids follow `table`'s.
fn rebase(plan: &mut ProbePlan, table: &FuncTable) {
    let (funcs, modules) = (table.functions.len() as u64, table.modules.len() as u32);
    for f in &mut plan.table.functions {
        f.module += modules;
    }
    let lists = plan
        .entries
        .iter_mut()
        .chain(&mut plan.returns)
        .chain(&mut plan.ret_sites);
    for list in lists.chain(&mut plan.call_returns) {
        list.cookies.iter_mut().for_each(|c| *c += funcs);
    }
}

fn debug_state_offset(ld_so: &Path) -> Option<u64> {
    let module = symbols::read_module(ld_so).ok()?;
    let sym = module
        .functions
        .iter()
        .find(|s| s.raw_name == "_dl_debug_state")?;
    Some(sym.file_offset)
}

fn canonical(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}
