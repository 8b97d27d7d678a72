//! From a target to what gets probed: which ELF files (the executable, and
//! with `--nest-lib` its libraries), which of their functions the filters
//! select, and the function table whose ids are the BPF attach cookies.
//! `exit_policy` decides how each function's end is seen; `values` which
//! functions show arguments and return values (`-A`/`-R`).

pub(crate) mod exit_policy;
pub(crate) mod refused;
pub(crate) mod values;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::model::{FuncKind, FuncTable, RunInfo};
use crate::options::{ExitMode, Target, TraceOptions};
use crate::symbols::{
    self, DebugInfo, HelperList, ModuleSymbols, Numbering, ProbeSet, SearchConfig, Selector, libc,
};
use crate::target;
use crate::util::clock::{mono_now_ns, unix_now_ns};
use crate::util::diag::warning;

/// Everything the probe stage and the consumers need about one run.
pub struct Plan {
    /// The program: what `-c` execs, or /proc/PID/exe for `-p`.
    pub exe: PathBuf,
    /// The command line as the user gave it, or `pid N`.
    pub command: String,
    /// The process attached to with `-p`.
    pub pid: Option<u32>,
    /// Every module read, the executable first.
    pub modules: Vec<ModuleSymbols>,
    pub probes: ProbeSet,
    /// `--exit=auto`: the unwinder and longjmp, in the executable and the
    /// libraries that hold them.
    pub helpers: Vec<HelperList>,
    /// The modules' DWARF, loaded when first asked (`--list` asks more).
    pub debug: DebugInfo,
    /// Selected functions the kernel will not probe, with the reason.
    pub refused: Vec<refused::Refused>,
}

impl Plan {
    /// The header of a trace file recorded from this plan.
    pub fn run_info(&self) -> RunInfo {
        RunInfo {
            command: self.command.clone(),
            pid: self.pid.unwrap_or_default(),
            start_unix_ns: unix_now_ns(),
            start_mono_ns: mono_now_ns(),
            ..RunInfo::default()
        }
    }
}

pub fn build(opts: &TraceOptions) -> Result<Plan> {
    let (exe, command, pid, lib_paths) = match &opts.target {
        Target::Command(argv) => {
            let exe = target::resolve_command(&argv[0])?;
            // --exit=auto probes the unwinder and longjmp in the libraries;
            // what is not an ELF file is said by reading it below.
            let wants_libs = !opts.syscalls_only
                && (!opts.filter.nest_libs.is_empty() || opts.exit == ExitMode::Auto);
            let libs = if wants_libs && symbols::is_elf(&exe) {
                needed_libraries(&exe)?
            } else {
                Vec::new()
            };
            (
                exe,
                shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" ")),
                None,
                libs,
            )
        }
        Target::Pid(pid) => {
            target::check_pid(*pid)?;
            let maps = symbols::read_process(*pid)?;
            let libs = maps.libs.iter().map(|l| l.path.clone()).collect();
            (maps.exe, format!("pid {pid}"), Some(*pid), libs)
        }
    };
    if opts.syscalls_only {
        // Nothing to resolve: a script or a stripped program traces as well.
        return Ok(Plan {
            exe,
            command,
            pid,
            modules: Vec::new(),
            probes: ProbeSet::default(),
            helpers: Vec::new(),
            debug: DebugInfo::new(),
            refused: Vec::new(),
        });
    }
    let selector = Selector::new(&opts.filter)?;
    let dirs = debug_dirs(&opts.debug_dirs)?;
    let main = symbols::read_module_with(&exe, &dirs).map_err(|e| explain_symbol_error(e, &exe))?;
    for warning in &main.warnings {
        warning!("{warning}");
    }
    let mut modules = vec![main];
    for path in lib_paths.iter().filter(|p| selector.nests(p, None)) {
        match symbols::read_module_with(path, &dirs) {
            Ok(m) => modules.push(m),
            Err(e) => warning!("skipping {}: {e}", path.display()),
        }
    }
    let (main, libs) = modules.split_first().context("no modules")?;
    let selection = symbols::select(main, libs, &selector);
    let unmatched = selector.unmatched(&modules.iter().collect::<Vec<_>>(), &lib_paths);
    let missed: Vec<String> = unmatched
        .iter()
        .map(|u| format!("{} '{}'", u.option, u.pattern))
        .collect();
    let mut debug = DebugInfo::new();
    let refused = refused::collect(&selection, &mut debug, opts.sources);
    let named = !opts.filter.functions.is_empty();
    refused::report(&refused, named, selection.is_empty())?;
    if selection.is_empty() {
        if missed.is_empty() {
            bail!(
                "nothing to trace in {}: every function was filtered out (see the candidates with --list)",
                exe.display()
            );
        }
        bail!(
            "no function matches {}: see the candidates with --list",
            missed.join(", ")
        );
    }
    for u in &unmatched {
        let later = if u.option == "--nest-lib" {
            " yet (a library dlopen loads later is traced when it loads)"
        } else {
            ""
        };
        warning!("{} '{}' matches nothing{later}", u.option, u.pattern);
    }
    let mut probes = symbols::probe_set_with(
        &selection,
        Numbering::default(),
        &mut |m, addr| debug.source(m, addr),
        opts.sources,
    );
    for warning in debug.take_warnings() {
        warning!("{warning}");
    }
    warn_no_plt(main, &selection);
    let helpers = match opts.exit {
        ExitMode::Auto => helper_lists(&modules, &lib_paths),
        _ => Vec::new(),
    };
    let later = !opts.filter.nest_libs.is_empty();
    values::fill(&mut probes.table, &modules, &mut debug, &opts.values, later)?;
    values::keep_arguments_exact(&mut probes, &modules);
    values::keep_returns_exact(&mut probes, &modules);
    for warning in debug.take_warnings() {
        warning!("{warning}");
    }
    for module in &mut probes.table.modules {
        module.path = real_path(&module.path, pid);
    }
    name_stub_libraries(&mut probes.table, || match lib_paths.is_empty() {
        // -c without --nest-lib has not looked for the libraries yet.
        true => symbols::resolve_needed(&exe, &SearchConfig::from_system())
            .map(|r| r.paths)
            .unwrap_or_default(),
        false => lib_paths.clone(),
    });
    Ok(Plan {
        exe,
        command,
        pid,
        helpers,
        modules,
        probes,
        debug,
        refused,
    })
}

/// `--debug-dir`, checked: a directory that does not exist is a typo the
/// user should hear about, not a silent miss.
pub(crate) fn debug_dirs(given: &[PathBuf]) -> Result<Vec<PathBuf>> {
    if given.is_empty() {
        return Ok(vec![PathBuf::from(symbols::DEFAULT_DEBUG_DIR)]);
    }
    if let Some(dir) = given.iter().find(|d| !d.is_dir()) {
        bail!("--debug-dir {}: no such directory", dir.display());
    }
    Ok(given.to_vec())
}

/// The helper probes of the executable and of the libraries that can hold
/// helpers (the unwinder, the C++ runtime, libc), each read once.
fn helper_lists(modules: &[ModuleSymbols], libs: &[PathBuf]) -> Vec<HelperList> {
    let holds = |p: &Path| {
        p.file_name()
            .is_some_and(|n| libc::may_hold_helpers(&n.to_string_lossy()))
    };
    let mut lists: Vec<HelperList> = modules
        .iter()
        .enumerate()
        .filter(|(i, m)| *i == 0 || holds(&m.path))
        .map(|(_, m)| symbols::helper_list(m))
        .collect();
    let unread = libs
        .iter()
        .filter(|p| holds(p) && !modules.iter().any(|m| &m.path == *p));
    for path in unread {
        // The helpers are all exported: a debug file's full table (libc6-dbg
        // is 4 MB) would add nothing but the time to read it.
        match symbols::read_module_with(path, &[]) {
            Ok(m) => lists.push(symbols::helper_list(&m)),
            Err(e) => warning!("{e}: exceptions and longjmp there are not followed"),
        }
    }
    lists.retain(|h| !h.offsets.is_empty());
    lists
}

/// Gives each PLT stub whose import names no library (unversioned, in a
/// module needing several) the library the loader would bind it to: the
/// first of `libs` (load order) that exports it. Read only when needed.
fn name_stub_libraries(table: &mut FuncTable, libs: impl FnOnce() -> Vec<PathBuf>) {
    let import = |f: &crate::model::Function| {
        let unknown = f.kind == FuncKind::Plt && f.library.is_none();
        unknown.then(|| {
            f.raw_name
                .strip_suffix("@plt")
                .unwrap_or(&f.raw_name)
                .to_owned()
        })
    };
    let imports: BTreeSet<String> = table.functions.iter().filter_map(import).collect();
    if imports.is_empty() {
        return;
    }
    let found = symbols::defining_libraries(&libs(), &imports);
    for f in &mut table.functions {
        if let Some(name) = import(f) {
            f.library = found.get(&name).cloned();
        }
    }
}

fn needed_libraries(exe: &Path) -> Result<Vec<PathBuf>> {
    let resolved = symbols::resolve_needed(exe, &SearchConfig::from_system())
        .with_context(|| format!("finding the libraries {} loads", exe.display()))?;
    for missing in &resolved.missing {
        warning!(
            "{} needs {}, which was not found: its functions cannot be traced",
            missing.needed_by.display(),
            missing.name
        );
    }
    Ok(resolved.paths)
}

/// Library calls made through the GOT (`-fno-plt`) have no stub to probe.
fn warn_no_plt(main: &ModuleSymbols, selection: &symbols::Selection) {
    let traced_plt = selection.modules.first().is_some_and(|m| !m.plt.is_empty());
    if main.plt.bypassed() && (traced_plt || main.plt.stubs.is_empty()) {
        warning!(
            "{} calls library functions through the GOT (-fno-plt): those calls are not visible; \
             trace inside the libraries with --nest-lib",
            main.path.display()
        );
    }
}

/// Names a module the way its process sees it: /proc/PID/root/usr/lib/x → /usr/lib/x.
fn real_path(path: &str, pid: Option<u32>) -> String {
    let Some(pid) = pid else {
        return path.to_string();
    };
    if path == format!("/proc/{pid}/exe")
        && let Ok(target) = std::fs::read_link(path)
    {
        return target.display().to_string();
    }
    let prefix = format!("/proc/{pid}/root");
    path.strip_prefix(&prefix)
        .filter(|rest| rest.starts_with('/'))
        .unwrap_or(path)
        .to_string()
}

/// Adds the way out to the symbol errors a user can hit with `-c`/`-p`.
fn explain_symbol_error(err: symbols::SymbolError, exe: &Path) -> anyhow::Error {
    use symbols::SymbolError::*;
    match err {
        NotElf(_) => anyhow::anyhow!(
            "{} is not an ELF executable (a script? trace its interpreter, e.g. utrace -- python3 script.py)",
            exe.display()
        ),
        Stripped(_) => anyhow::anyhow!(
            "{} is stripped: it has no function symbols to trace (rebuild without -s, or install its debug symbols)",
            exe.display()
        ),
        other => anyhow::Error::new(other),
    }
}
