//! `-A`/`-R`: which traced functions get values, and where each value is.
//! A request's FUNC glob matches a traced function by the names `-f`
//! matches; its values come from the user's register list, else from the
//! function's DWARF (symbols/params.rs). What cannot be known is said once
//! per request, in one line, never guessed.

use anyhow::{Result, bail};
use globset::{Glob, GlobMatcher};

use crate::model::{FuncKind, FuncTable, Function};
use crate::options::{ValueAt, ValueRequest};
use crate::symbols::select::recorded_names;
use crate::symbols::{DebugInfo, ModuleSymbols};
use crate::util::diag::warning;
use crate::values::{FuncValues, VALUES_MAX};

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

/// Fills `table.values` for `requests`. `modules` are the modules read,
/// `debug` their DWARF.
pub fn fill(
    table: &mut FuncTable,
    modules: &[ModuleSymbols],
    debug: &mut DebugInfo,
    requests: &[ValueRequest],
) -> Result<()> {
    if requests.is_empty() {
        return Ok(());
    }
    let globs = requests.iter().map(glob).collect::<Result<Vec<_>>>()?;
    let mut tallies: Vec<Tally> = requests.iter().map(|_| Tally::default()).collect();
    let mut clones = Vec::new();
    let mut capped = Vec::new();
    for id in table.ids() {
        let Some(f) = table.function(id) else {
            continue;
        };
        let names = recorded_names(f);
        let matches = |i: &usize| names.iter().any(|n| globs[*i].is_match(n));
        let hits: Vec<usize> = (0..requests.len()).filter(matches).collect();
        if hits.is_empty() {
            continue;
        }
        let module = table
            .modules
            .get(f.module as usize)
            .map(|m| m.path.as_str());
        let module = modules
            .iter()
            .find(|m| Some(&*m.path.display().to_string()) == module);
        let is_clone = CLONES.iter().any(|c| f.raw_name.contains(c));
        let described = match (module, f.kind, is_clone) {
            (Some(m), FuncKind::Function, false) => debug.values(m, f.addr),
            _ => None,
        };
        for &i in &hits {
            tallies[i].matched += 1;
        }
        let mut values = FuncValues::default();
        for at in [ValueAt::Entry, ValueAt::Return] {
            // The last request given for a function wins.
            let Some(&i) = hits.iter().rev().find(|&&i| requests[i].at == at) else {
                continue;
            };
            let chosen = match (&requests[i].spec, &described) {
                (Some(spec), _) => Some(spec.clone()),
                (None, Some(dwarf)) => Some(match at {
                    ValueAt::Entry => dwarf.args.clone(),
                    ValueAt::Return => dwarf.ret.iter().cloned().collect(),
                }),
                (None, None) if is_clone => {
                    clones.push(f.name.clone());
                    None
                }
                (None, None) => {
                    tallies[i].note_undescribed(f);
                    None
                }
            };
            match (at, chosen) {
                (ValueAt::Entry, Some(args)) => values.args = args,
                (ValueAt::Return, Some(ret)) => values.ret = ret.into_iter().next(),
                (_, None) => {}
            }
        }
        if values.args.len() > VALUES_MAX {
            capped.push((f.name.clone(), values.args.len()));
            values.args.truncate(VALUES_MAX);
        }
        if !values.args.is_empty() || values.ret.is_some() {
            table.values.insert(id, values);
        }
    }
    for (request, tally) in requests.iter().zip(&tallies) {
        tally.check(request)?;
    }
    warn_clones(&clones);
    warn_capped(&capped);
    Ok(())
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
                "{flag} '{pattern}' matches no traced function \
                 (see --list; {flag} applies to the functions -f selects)"
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
