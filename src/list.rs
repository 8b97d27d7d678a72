//! `--list`: what would be traced, one function per line — module, probe
//! offset, how the kernel runs the probed instruction (`at-calls`: a PLT
//! stub probed at each call to it, an emulated `call`; `calls+jmps` and
//! `at-jumps`: at each direct `jmp` to it too, or only), how its end is seen
//! (`returns`: where each call to it returns, in the caller),
//! where it is defined (from debug info, `-` without) and the name — so a
//! user can pick filters and see why a function is expensive to trace (a
//! ret-site exit is single-stepped: a second trap). A closing note names the
//! functions that were also inlined: those calls cannot be seen. A function
//! the kernel will not probe is listed last, PROBE `refused`, with why.

use std::collections::{HashMap, HashSet};
use std::io::Write;

use anyhow::Result;

use crate::model::FuncId;
use crate::options::ExitMode;
use crate::plan::Plan;
use crate::plan::exit_policy::{
    ExitProbe, ends_at_call_returns, entered_at_calls, exit_probe, watched,
};
use crate::symbols::EntryPath;
use crate::util::fmt::{module_name, plural};

pub fn print(plan: &Plan, exit: ExitMode, out: &mut impl Write) -> Result<()> {
    let table = &plan.probes.table;
    let sources: Vec<String> = table
        .functions
        .iter()
        .map(|f| f.short_source().unwrap_or_else(|| "-".into()))
        .collect();
    let width = sources.iter().map(|s| s.chars().count()).max().unwrap_or(0);
    let width = width.max("SOURCE".len());
    let head = ("MODULE", "OFFSET", "PROBE", "EXIT", "SOURCE");
    writeln!(
        out,
        "{:<24} {:>10}  {:<11}  {:<9}  {:<width$}  FUNCTION",
        head.0, head.1, head.2, head.3, head.4
    )?;
    // PLT stubs entered at their calls (an emulated `call`) and jumps.
    let at_calls = entered_at_calls(&plan.probes, exit);
    let ids = |lists: &[crate::symbols::AttachList]| -> HashSet<FuncId> {
        lists.iter().flat_map(|l| l.ids.iter().copied()).collect()
    };
    let (called, jumped) = (
        ids(&plan.probes.call_site_entries),
        ids(&plan.probes.jump_entries),
    );
    // Functions whose exits are seen where their calls return.
    let at_returns = ends_at_call_returns(&plan.probes, exit);
    // Functions whose ret sites end their calls, and the returns of their
    // direct calls the calls their tail jumps make.
    let watched = watched(&plan.probes, exit);
    for list in &plan.probes.entries {
        let paths = entry_paths(plan, &list.path);
        for (&offset, &id) in list.offsets.iter().zip(&list.ids) {
            let base = module_name(table.module_of(id));
            let exit_probe = exit_probe(plan.probes.exit_facts(id), exit);
            let path = match (
                at_calls.contains(&id),
                called.contains(&id),
                jumped.contains(&id),
            ) {
                (true, true, true) => "calls+jmps",
                (true, false, true) => "at-jumps",
                (true, _, _) => "at-calls",
                (false, ..) => paths.get(&offset).map_or("?", |p| describe(*p)),
            };
            let how = match exit_probe {
                ExitProbe::RetSites if at_returns.contains(&id) => "returns",
                ExitProbe::RetSites if watched.contains(&id) => "ret+calls",
                ExitProbe::RetSites => "ret-sites",
                ExitProbe::Untraced => "untraced",
                ExitProbe::Hijack if exit == ExitMode::Uretprobe => "uretprobe",
                ExitProbe::Hijack => "session",
            };
            let name = table.name(id);
            let source = sources.get(id.index()).map_or("-", String::as_str);
            writeln!(
                out,
                "{base:<24} {offset:>#10x}  {path:<11}  {how:<9}  {source:<width$}  {name}"
            )?;
        }
    }
    for r in &plan.refused {
        let base = module_name(&r.module);
        let source = r
            .source
            .as_deref()
            .map_or("-", |s| s.rsplit('/').next().unwrap_or(s));
        let (offset, name, reason) = (r.offset, &r.name, &r.reason);
        writeln!(
            out,
            "{base:<24} {offset:>#10x}  {:<11}  {:<9}  {source:<width$}  {name}  # not traced: {reason}",
            "refused", "-"
        )?;
    }
    Ok(())
}

/// "utrace: 6 functions in 1 module", and the file they were listed in.
pub fn closing_line(plan: &Plan, file: Option<&std::path::Path>) -> String {
    let table = &plan.probes.table;
    let (n, m) = (table.functions.len(), table.modules.len());
    let counts = format!("{n} functions in {m} module{}", plural(m as u64));
    match file {
        Some(path) => format!("Wrote {}: {counts}", path.display()),
        None => format!("utrace: {counts}"),
    }
}

/// "note: also inlined where they are called, …: sq, helper", when a listed
/// function has inlined copies (debug info tells): calls to those run no
/// probe. Reads each module's DWARF once, all of it.
pub fn inlined_note(plan: &mut Plan) -> Option<String> {
    const SHOWN: usize = 8;
    let table = &plan.probes.table;
    let read: Vec<Option<usize>> = (table.modules.iter())
        .map(|t| plan.modules.iter().position(|m| module_matches(m, &t.path)))
        .collect();
    let mut names = Vec::new();
    for f in &table.functions {
        let module = read.get(f.module as usize).copied().flatten();
        let module = module.and_then(|i| plan.modules.get(i));
        if module.is_some_and(|m| plan.debug.has_inlined_copies(m, f.addr)) {
            names.push(f.name.as_str());
        }
    }
    if names.is_empty() {
        return None;
    }
    let more = names.len().saturating_sub(SHOWN);
    let mut list = names[..names.len().min(SHOWN)].join(", ");
    if more > 0 {
        list.push_str(&format!(" and {more} more"));
    }
    Some(format!(
        "note: also inlined where they are called, and calls to those copies cannot be seen: {list}"
    ))
}

/// The table names a module by its real path (plan.rs: /proc/PID/root and
/// /proc/PID/exe resolved); the module was read from either.
fn module_matches(module: &crate::symbols::ModuleSymbols, table_path: &str) -> bool {
    let read = module.path.to_string_lossy();
    read == table_path
        || std::fs::canonicalize(&module.path).is_ok_and(|p| p.to_string_lossy() == table_path)
}

/// Probe file offset → entry path, for the module read from `path`.
fn entry_paths(plan: &Plan, path: &std::path::Path) -> HashMap<u64, EntryPath> {
    let Some(module) = plan.modules.iter().find(|m| m.path == path) else {
        return HashMap::new();
    };
    let functions = module.functions.iter().map(|s| s.placement);
    let stubs = module.plt.stubs.iter().map(|s| s.placement);
    functions
        .chain(stubs)
        .map(|p| (p.probe_file_offset, p.path))
        .collect()
}

/// The cost class users see: optimized (no trap after the first hit),
/// emulated (one trap), single-step (two traps).
pub fn describe(path: EntryPath) -> &'static str {
    match path {
        EntryPath::Optimized => "optimized",
        EntryPath::Emulated => "emulated",
        EntryPath::SingleStep => "single-step",
    }
}
