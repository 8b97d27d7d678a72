//! `-A`/`-R`: which traced functions get values, and where each value is.
//! A request's FUNC glob matches a traced function by the names `-f`
//! matches; its values come from the user's register list, else from the
//! function's DWARF (symbols/params.rs). What cannot be known is said once
//! per request, in one line, never guessed.

use anyhow::{Result, bail};
use globset::{Glob, GlobMatcher};

use std::collections::BTreeSet;

use crate::model::{FuncId, FuncKind, FuncTable, Function};
use crate::options::{ValueAt, ValueRequest};
use crate::symbols::select::recorded_names;
use crate::symbols::{DebugInfo, ModuleSymbols, ProbeSet};
use crate::util::diag::warning;
use crate::values::{FuncValues, Slot, VALUES_MAX};

/// Suffixes of the copies gcc makes with their own calling convention
/// (`foo.isra.0` drops or splits arguments; `.cold` is a jump target).
const CLONES: &[&str] = &[".isra.", ".constprop.", ".part.", ".cold"];

/// What one request matched, for its messages.
#[derive(Default)]
struct Tally {
    matched: usize,
    /// Matched functions without debug info, and the first one's name.
    undescribed: usize,
    example: Option<String>,
}

/// Puts back on its first instruction the entry probe of each function
/// whose arguments are read, when the instructions it was moved past write
/// argument registers (symbols/placement.rs): there they hold what the
/// caller passed. A PLT stub's is put back from its calls.
pub fn keep_arguments_exact(probes: &mut ProbeSet, modules: &[ModuleSymbols]) {
    let table = &probes.table;
    let reading: BTreeSet<FuncId> = (table.values.iter())
        .filter(|(_, v)| !v.args.is_empty())
        .map(|(&id, _)| id)
        .collect();
    // At a call, stack arguments sit a slot lower than at the entry the
    // specs describe: the stub's own entry is probed instead, which sees
    // its jumped calls too.
    let stub_entries = (probes.call_site_entries.iter_mut()).chain(&mut probes.jump_entries);
    for list in stub_entries {
        let (offsets, ids) = (list.offsets.iter().zip(&list.ids))
            .filter(|&(_, i)| !reading.contains(i))
            .unzip();
        (list.offsets, list.ids) = (offsets, ids);
    }
    let read = read_modules(table, modules);
    for &id in &reading {
        let Some(f) = table.function(id).filter(|f| f.kind == FuncKind::Function) else {
            continue;
        };
        let Some(module) = read.get(f.module as usize).copied().flatten() else {
            continue;
        };
        let moved = (module.functions.iter())
            .find(|s| s.vaddr == f.addr)
            .and_then(|s| s.placement.moved);
        let Some(moved) = moved.filter(|m| m.clobbers != 0) else {
            continue;
        };
        for list in probes.entries.iter_mut().filter(|l| l.path == module.path) {
            if let Some(i) = list.ids.iter().position(|&i| i == id) {
                list.offsets[i] = moved.probe_file_offset;
            }
        }
    }
}

/// Puts each call-return site of a function or PLT stub whose return value
/// is read back where that value is still in its registers: the probe was
/// moved past instructions that may overwrite it (symbols' `value_returns`).
pub fn keep_returns_exact(probes: &mut ProbeSet, modules: &[ModuleSymbols]) {
    let table = &probes.table;
    let read = read_modules(table, modules);
    for (&id, _) in table.values.iter().filter(|(_, v)| v.ret.is_some()) {
        let Some(f) = table.function(id) else {
            continue;
        };
        let Some(module) = read.get(f.module as usize).copied().flatten() else {
            continue;
        };
        let moved = match f.kind {
            FuncKind::Plt => (module.plt.stubs.iter())
                .find(|s| s.vaddr == f.addr)
                .map(|s| &s.value_returns),
            _ => (module.functions.iter())
                .find(|s| s.vaddr == f.addr)
                .map(|s| &s.value_returns),
        };
        let Some(moved) = moved.filter(|m| !m.is_empty()) else {
            continue;
        };
        let lists = probes
            .call_returns
            .iter_mut()
            .chain(&mut probes.watch_returns);
        for list in lists.filter(|l| l.path == module.path) {
            for (offset, _) in (list.offsets.iter_mut().zip(&list.ids)).filter(|(_, i)| **i == id) {
                if let Some(&(_, value)) = moved.iter().find(|(site, _)| site == offset) {
                    *offset = value;
                }
            }
        }
    }
}

/// Per module of the table, the one read, found by path once rather than
/// per function.
fn read_modules<'m>(
    table: &FuncTable,
    modules: &'m [ModuleSymbols],
) -> Vec<Option<&'m ModuleSymbols>> {
    (table.modules.iter())
        .map(|t| {
            modules
                .iter()
                .find(|m| m.path.display().to_string() == t.path)
        })
        .collect()
}

/// Fills `table.values` for `requests`. `modules` are the modules read,
/// `debug` their DWARF.
/// `later`: libraries dlopen loads later are traced (`--nest-lib`), and
/// the requests apply there too: one matching nothing yet is a warning.
pub fn fill(
    table: &mut FuncTable,
    modules: &[ModuleSymbols],
    debug: &mut DebugInfo,
    requests: &[ValueRequest],
    later: bool,
) -> Result<()> {
    let filler = fill_quietly(table, modules, debug, requests)?;
    for (request, tally) in requests.iter().zip(&filler.tallies) {
        if tally.matched == 0 && later {
            warning!(
                "{} '{}' matches nothing yet (a library dlopen loads later gets its values \
                 when it loads)",
                request.flag(),
                request.pattern
            );
            continue;
        }
        tally.check(request)?;
    }
    Ok(())
}

/// [`fill`] for code loaded later (`table` holds only its functions): a
/// request that matches none of them is no error there.
pub fn fill_late(
    table: &mut FuncTable,
    modules: &[ModuleSymbols],
    debug: &mut DebugInfo,
    requests: &[ValueRequest],
) {
    // The globs were checked at the start.
    let _ = fill_quietly(table, modules, debug, requests);
}

fn fill_quietly<'r>(
    table: &mut FuncTable,
    modules: &[ModuleSymbols],
    debug: &mut DebugInfo,
    requests: &'r [ValueRequest],
) -> Result<Filler<'r>> {
    let mut filler = Filler {
        requests,
        globs: requests.iter().map(glob).collect::<Result<Vec<_>>>()?,
        tallies: requests.iter().map(|_| Tally::default()).collect(),
        clones: Vec::new(),
        capped: Vec::new(),
    };
    let read = read_modules(table, modules);
    for id in table.ids() {
        let Some(f) = table.function(id) else {
            continue;
        };
        let hits = filler.hits(f);
        if hits.is_empty() {
            continue;
        }
        let module = read.get(f.module as usize).copied().flatten();
        let values = filler.function(f, &hits, |f| match (module, f.kind) {
            (Some(m), FuncKind::Function) => debug.values(m, f.addr),
            _ => None,
        });
        if !values.args.is_empty() || values.ret.is_some() {
            table.values.insert(id, values);
        }
    }
    warn_clones(&filler.clones);
    warn_capped(&filler.capped);
    note_sse(table);
    Ok(filler)
}

/// Floating point travels in SSE registers, which no BPF probe can read:
/// said once, so `<xmm0>` in the output is not taken for a bug.
fn note_sse(table: &FuncTable) {
    let sse = |v: &FuncValues| {
        let mut specs = v.args.iter().chain(&v.ret);
        specs.any(|s| matches!(s.slot, Slot::Sse(_)))
    };
    if let Some((id, _)) = table.values.iter().find(|(_, v)| sse(v)) {
        eprintln!(
            "utrace: floating-point values travel in SSE registers, which a BPF probe cannot \
             read (its pt_regs holds none): they show as <xmm0>, <xmm1>… (e.g. in {})",
            table.name(*id)
        );
    }
}

/// The requests, and what they met on the way, for the messages after.
struct Filler<'r> {
    requests: &'r [ValueRequest],
    globs: Vec<GlobMatcher>,
    tallies: Vec<Tally>,
    clones: Vec<String>,
    /// Functions with more than [`VALUES_MAX`] arguments, and how many.
    capped: Vec<(String, usize)>,
}

impl Filler<'_> {
    /// The requests matching `f`, by index, counted as matched.
    fn hits(&mut self, f: &Function) -> Vec<usize> {
        let names = recorded_names(f);
        let matches = |i: &usize| names.iter().any(|n| self.globs[*i].is_match(n));
        let hits: Vec<usize> = (0..self.requests.len()).filter(matches).collect();
        for &i in &hits {
            self.tallies[i].matched += 1;
        }
        hits
    }

    /// The values of `f`, which `hits` match: per side the last request
    /// given wins; its registers, else what `dwarf` says.
    fn function(
        &mut self,
        f: &Function,
        hits: &[usize],
        dwarf: impl FnOnce(&Function) -> Option<FuncValues>,
    ) -> FuncValues {
        let is_clone = CLONES.iter().any(|c| f.raw_name.contains(c));
        let described = if is_clone { None } else { dwarf(f) };
        let mut values = FuncValues::default();
        let mut clone_missed = false;
        for at in [ValueAt::Entry, ValueAt::Return] {
            let Some(&i) = hits.iter().rev().find(|&&i| self.requests[i].at == at) else {
                continue;
            };
            let chosen = match (&self.requests[i].spec, &described) {
                (Some(spec), _) => spec.clone(),
                (None, Some(dwarf)) => match at {
                    ValueAt::Entry => dwarf.args.clone(),
                    ValueAt::Return => dwarf.ret.iter().cloned().collect(),
                },
                (None, None) => {
                    match is_clone {
                        true => clone_missed = true,
                        false => self.tallies[i].note_undescribed(f),
                    }
                    continue;
                }
            };
            match at {
                ValueAt::Entry => values.args = chosen,
                ValueAt::Return => values.ret = chosen.into_iter().next(),
            }
        }
        if clone_missed {
            self.clones.push(f.name.clone());
        }
        if values.args.len() > VALUES_MAX {
            self.capped.push((f.name.clone(), values.args.len()));
            values.args.truncate(VALUES_MAX);
        }
        values
    }
}

fn glob(request: &ValueRequest) -> Result<GlobMatcher> {
    match Glob::new(&request.pattern) {
        Ok(glob) => Ok(glob.compile_matcher()),
        Err(err) => bail!(
            "{} '{}' is not a valid glob: {}",
            request.flag(),
            request.pattern,
            err.kind()
        ),
    }
}

impl Tally {
    fn note_undescribed(&mut self, f: &Function) {
        self.undescribed += 1;
        self.example.get_or_insert_with(|| f.name.clone());
    }

    /// A request that matched nothing, or only functions without debug
    /// info and no registers to read, is an error; some without, a warning.
    fn check(&self, request: &ValueRequest) -> Result<()> {
        let (flag, pattern) = (request.flag(), &request.pattern);
        if self.matched == 0 {
            bail!(
                "{flag} '{pattern}' matches no traced function (see --list; {flag} applies \
                 to the functions -f selects, and to a library dlopen loads later only with \
                 --nest-lib)"
            );
        }
        let Some(example) = &self.example else {
            return Ok(());
        };
        let registers = match request.at {
            ValueAt::Entry => "arg1,arg2",
            ValueAt::Return => "retval",
        };
        if self.undescribed == self.matched {
            let which = match self.matched {
                1 => format!("{example}, the function it matches, has"),
                n => format!("the {n} functions it matches (e.g. {example}) have"),
            };
            bail!(
                "{flag} '{pattern}': {which} no debug info: name the registers \
                 ({flag} '{example}@{registers}'), or give the debug files with --debug-dir"
            );
        }
        let have = if self.undescribed == 1 { "has" } else { "have" };
        warning!(
            "{flag} '{pattern}': {} of the {} functions it matches {have} no debug info \
             (e.g. {example}: a PLT stub, or a library without debug files): shown without values",
            self.undescribed,
            self.matched
        );
        Ok(())
    }
}

fn warn_clones(clones: &[String]) {
    if let Some(first) = clones.first() {
        warning!(
            "{} matched functions are compiler clones (.isra, .constprop, .part, .cold) that do not \
             follow the calling convention, e.g. {first}: shown without values",
            clones.len()
        );
    }
}

fn warn_capped(capped: &[(String, usize)]) {
    if let Some((name, n)) = capped.first() {
        let more = match capped.len() {
            1 => String::new(),
            k => format!(" ({} more functions like it)", k - 1),
        };
        warning!("{name} has {n} arguments: only the first {VALUES_MAX} are read{more}");
    }
}

/// The ids of `table` with values, for tests.
#[cfg(test)]
fn with_values(table: &FuncTable) -> Vec<(&str, &FuncValues)> {
    let name = |id: &crate::model::FuncId| table.name(*id);
    table.values.iter().map(|(id, v)| (name(id), v)).collect()
}

#[cfg(test)]
mod tests;
