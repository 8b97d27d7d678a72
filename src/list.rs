//! `--list`: what would be traced, one function per line — module, probe
//! offset, how the kernel runs the probed instruction, how its end is seen,
//! and the name — so a user can pick filters and see why a function is
//! expensive to trace (a ret-site exit is single-stepped: a second trap).

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;

use crate::options::ExitMode;
use crate::plan::Plan;
use crate::plan::exit_policy::{ExitProbe, exit_probe};
use crate::symbols::EntryPath;
use crate::util::fmt::{module_name, plural};

pub fn print(plan: &Plan, exit: ExitMode, out: &mut impl Write) -> Result<()> {
    let table = &plan.probes.table;
    let head = ("MODULE", "OFFSET", "PROBE", "EXIT");
    writeln!(
        out,
        "{:<24} {:>10}  {:<11}  {:<9}  FUNCTION",
        head.0, head.1, head.2, head.3
    )?;
    for list in &plan.probes.entries {
        let paths = entry_paths(plan, &list.path);
        for (&offset, &id) in list.offsets.iter().zip(&list.ids) {
            let base = module_name(table.module_of(id));
            let path = paths.get(&offset).map_or("?", |p| describe(*p));
            let how = match exit_probe(plan.probes.exit_facts(id), exit) {
                ExitProbe::RetSites => "ret-sites",
                ExitProbe::Untraced => "untraced",
                ExitProbe::Hijack if exit == ExitMode::Uretprobe => "uretprobe",
                ExitProbe::Hijack => "session",
            };
            let name = table.name(id);
            writeln!(
                out,
                "{base:<24} {offset:>#10x}  {path:<11}  {how:<9}  {name}"
            )?;
        }
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
