//! The selected functions the kernel will not probe (placement.rs: a
//! refused first instruction the probe could not step past), kept with the
//! reason so that `--list` shows them and `-f` naming one says why, instead
//! of the function vanishing from every output.

use anyhow::{Result, bail};

use crate::symbols::{DebugInfo, Selection};
use crate::util::diag::warning;

/// One function that cannot be traced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused {
    /// The module's path as read.
    pub module: String,
    /// File offset of its first byte.
    pub offset: u64,
    pub name: String,
    pub source: Option<String>,
    pub reason: String,
}

/// The refused functions of `selection`, with their sources when asked.
pub fn collect(selection: &Selection<'_>, debug: &mut DebugInfo, sources: bool) -> Vec<Refused> {
    let mut out = Vec::new();
    for selected in &selection.modules {
        for sym in &selected.refused {
            out.push(Refused {
                module: selected.module.path.display().to_string(),
                offset: sym.file_offset,
                name: sym.name.clone(),
                source: sources
                    .then(|| debug.source(selected.module, sym.vaddr))
                    .flatten(),
                reason: sym.refused.clone().unwrap_or_default(),
            });
        }
    }
    out
}

/// With `-f`, each refused function the patterns name is said once; when
/// they name nothing else, that is the error.
pub fn report(refused: &[Refused], named: bool, nothing_else: bool) -> Result<()> {
    if nothing_else && let Some(first) = refused.first() {
        let more = match refused.len() {
            1 => String::new(),
            n => format!(" ({} more like it: see --list)", n - 1),
        };
        bail!("{} cannot be traced: {}{more}", first.name, first.reason);
    }
    if named {
        for r in refused {
            warning!("{} cannot be traced: {}", r.name, r.reason);
        }
    }
    Ok(())
}
