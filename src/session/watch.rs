//! Code mapped after attach: libraries loaded with dlopen (under
//! `--nest-lib`) and programs a followed child execs.
//!
//! glibc's loader calls `_dl_debug_state()` before and after every change of
//! the link map, and the kernel reports every exec. At either, BPF stops the
//! process (SIGSTOP) and tells us; we read its maps, attach the probes of
//! the new executable and of every newly mapped library `--nest-lib` asks
//! for, and the process resumes (its `Stopped` guard is dropped). That code
//! — constructors included — therefore never runs untraced. Probes belong
//! to the file, so a library dlclose'd and loaded again stays traced.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::bpf::Probes;
use crate::model::FuncTable;
use crate::options::{ExitMode, TraceOptions, ValueRequest};
use crate::plan::Plan;
use crate::plan::{exit_policy, values};
use crate::symbols::{self, DebugInfo, Numbering, ProbeSet, Selector};
use crate::target::Stopped;
use crate::util::diag::warning;

/// The watch for code mapped after attach: what to probe there, and what
/// is probed already.
pub struct CodeWatch {
    selector: Selector,
    exit: ExitMode,
    /// The dynamic loader and `_dl_debug_state`'s file offset in it.
    breakpoint: Option<(PathBuf, u64)>,
    /// Files probed for every followed process (no pid filter).
    everywhere: HashSet<PathBuf>,
    /// Files probed (or rejected) per process, by canonical path.
    seen: HashSet<(u32, PathBuf)>,
    /// Where their separate debug files are looked for (`--debug-dir`), as
    /// for the files read at the start.
    debug_dirs: Vec<PathBuf>,
    /// `-A`/`-R`, read in late code as in the code loaded at the start.
    values: Vec<ValueRequest>,
}

impl CodeWatch {
    /// A watch for code `plan`'s process maps later: needed for `--nest-lib`
    /// (dlopen) and when following forks (exec). `everywhere` is the file
    /// probed with no pid filter, if any.
    pub fn new(
        plan: &Plan,
        opts: &TraceOptions,
        pid: u32,
        everywhere: Option<&Path>,
    ) -> Result<Option<CodeWatch>> {
        let follows = everywhere.is_some();
        // --syscalls-only probes no function: not in what a child execs either.
        if opts.syscalls_only || (opts.filter.nest_libs.is_empty() && !follows) {
            return Ok(None);
        }
        let breakpoint = if opts.filter.nest_libs.is_empty() {
            None
        } else {
            loader_breakpoint(plan)
        };
        let seen = plan
            .modules
            .iter()
            .filter_map(|m| canonical(&m.path))
            .map(|p| (pid, p))
            .collect();
        Ok(Some(CodeWatch {
            selector: Selector::new(&opts.filter)?,
            exit: opts.exit,
            breakpoint,
            everywhere: everywhere.and_then(canonical).into_iter().collect(),
            seen,
            debug_dirs: crate::plan::debug_dirs(&opts.debug_dirs)?,
            values: opts.values.clone(),
        }))
    }

    /// Stops `pid` at the dynamic loader's breakpoint, when there is one.
    pub fn attach(&self, probes: &mut Probes, pid: u32) -> Result<()> {
        match &self.breakpoint {
            Some((ld_so, offset)) => probes.attach_loader(ld_so, *offset, pid),
            None => Ok(()),
        }
    }

    /// `stopped` is held at the breakpoint (or an exec): probes what it
    /// mapped. The caller drops `stopped` afterwards, attached or not.
    pub fn attach_new(
        &mut self,
        stopped: &Stopped,
        probes: &mut Probes,
        table: &mut FuncTable,
        sets: &mut Vec<ProbeSet>,
    ) -> Result<()> {
        let pid = stopped.pid();
        let Ok(maps) = symbols::read_process(pid) else {
            return Ok(()); // gone meanwhile
        };
        // A program a followed child exec'd: traced with the same filters.
        let mut into = LateAttach {
            probes,
            table,
            sets,
        };
        self.attach_file(pid, (&maps.exe, &maps.exe_name), true, &mut into)?;
        for lib in &maps.libs {
            if self.selector.nests(&lib.path, None) {
                self.attach_file(pid, (&lib.path, &lib.name), false, &mut into)?;
            }
        }
        Ok(())
    }

    /// Probes the file at `path` (as the process sees it: /proc/PID/exe,
    /// /proc/PID/root/...), shown by its `name` (its path in the maps).
    fn attach_file(
        &mut self,
        pid: u32,
        (path, name): (&Path, &str),
        exe: bool,
        into: &mut LateAttach,
    ) -> Result<()> {
        let Some(real) = canonical(path) else {
            return Ok(());
        };
        if self.everywhere.contains(&real) || !self.seen.insert((pid, real)) {
            return Ok(());
        }
        let module = match symbols::read_module_with(path, &self.debug_dirs) {
            Ok(m) => m,
            Err(e) => {
                let what = if exe { "the program" } else { "library" };
                warning!("pid {pid}: not tracing {what} {}: {e}", path.display());
                return Ok(());
            }
        };
        let selection = symbols::select(&module, &[], &self.selector);
        // Planned on its own, numbered from zero as the start's plan is;
        // then numbered after what is traced already: ids stay unique.
        let mut set = symbols::probe_set(&selection, Numbering::default());
        if !self.values.is_empty() {
            let modules = std::slice::from_ref(&module);
            let mut debug = DebugInfo::new();
            values::fill_late(&mut set.table, modules, &mut debug, &self.values);
            values::keep_arguments_exact(&mut set, modules);
            values::keep_returns_exact(&mut set, modules);
            for line in debug.take_warnings() {
                warning!("pid {pid}: {line}");
            }
        }
        set.renumber(Numbering::after(into.table));
        // Before the entries: those that read arguments are sleepable.
        into.probes.set_values(&set.table.values)?;
        into.probes
            .attach_all(exit_policy::links(&set, self.exit), |_| Some(pid))
            .with_context(|| format!("attaching {} in pid {pid}", path.display()))?;
        for m in &mut set.table.modules {
            m.path = name.to_string();
        }
        into.table.modules.append(&mut set.table.modules);
        into.table.functions.append(&mut set.table.functions);
        into.table.values.append(&mut set.table.values);
        into.sets.push(set);
        Ok(())
    }
}

/// Where what is attached late goes: the probes, the run's function table,
/// and the probe sets (`--exit=auto` attaches ret sites from them on demand).
struct LateAttach<'a, 'p, 'obj> {
    probes: &'a mut Probes<'obj>,
    table: &'a mut FuncTable,
    sets: &'p mut Vec<ProbeSet>,
}

/// The dynamic loader `plan`'s program runs under and `_dl_debug_state`'s
/// file offset in it.
fn loader_breakpoint(plan: &Plan) -> Option<(PathBuf, u64)> {
    let interp = plan.modules.first()?.link.interpreter.clone()?;
    let ld_so = match plan.pid {
        Some(pid) => PathBuf::from(format!("/proc/{pid}/root{interp}")),
        None => PathBuf::from(&interp),
    };
    let module = symbols::read_module(&ld_so).ok();
    let offset = module.and_then(|m| {
        m.functions
            .iter()
            .find(|s| s.raw_name == "_dl_debug_state")
            .map(|s| s.file_offset)
    });
    if offset.is_none() {
        warning!(
            "{interp} has no _dl_debug_state: libraries loaded later with dlopen are not traced"
        );
    }
    Some((ld_so, offset?))
}

fn canonical(path: &Path) -> Option<PathBuf> {
    std::fs::canonicalize(path).ok()
}
