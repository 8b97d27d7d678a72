//! `--list`: what would be traced, one function per line — module, probe
//! offset, how the kernel runs the probed instruction, and the name — so a
//! user can pick filters and see why a function is expensive to trace.

use std::collections::HashMap;
use std::io::Write;

use anyhow::Result;

use crate::plan::Plan;
use crate::symbols::EntryPath;

pub fn print(plan: &Plan, out: &mut impl Write) -> Result<()> {
    let table = &plan.probes.table;
    writeln!(
        out,
        "{:<24} {:>10}  {:<11}  FUNCTION",
        "MODULE", "OFFSET", "PROBE"
    )?;
    for list in &plan.probes.entries {
        let paths = entry_paths(plan, &list.path);
        for (&offset, &id) in list.offsets.iter().zip(&list.cookies) {
            let module = table.module_of(id as u32);
            let base = module.rsplit('/').next().unwrap_or(module);
            let path = paths.get(&offset).map_or("?", |p| describe(*p));
            writeln!(
                out,
                "{base:<24} {offset:>#10x}  {path:<11}  {}",
                table.name(id as u32)
            )?;
        }
    }
    let (n, m) = (table.functions.len(), table.modules.len());
    eprintln!(
        "utrace: {n} functions in {m} module{}",
        if m == 1 { "" } else { "s" }
    );
    Ok(())
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
