//! Source locations and inlining from DWARF (gimli; addr2line for the line
//! of an address that no function entry describes), read only when
//! something asks: `--list`, a recording's function table, `--srcline`, the
//! JSON report. A module's DWARF is loaded on its first question and walked
//! once (dies.rs), then kept; a module nobody asks about is never read.

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use object::{Object, ObjectSection};

use super::debugfile::{Separate, find_separate};
use super::dies::{Facts, Reader, walk};
use super::elf::ModuleSymbols;
use super::params;
use crate::values::FuncValues;

/// The DWARF of one module, loaded.
struct Loaded {
    dwarf: Arc<gimli::Dwarf<Reader>>,
    context: addr2line::Context<Reader>,
    /// Declarations and inlined copies, walked on the first question.
    facts: Option<Facts>,
    /// The functions' parameters (`-A`/`-R`), indexed on the first question;
    /// `None` inside when the DWARF did not parse.
    params: Option<Option<params::Index>>,
}

impl Loaded {
    /// The declaration of the function at `vaddr`, else the line its entry
    /// address belongs to (code without subprogram entries: assembly).
    fn source(&mut self, vaddr: u64) -> Option<String> {
        if let Some(decl) = self.facts().decls.get(&vaddr) {
            return Some(decl.clone());
        }
        let location = self.context.find_location(vaddr).ok()??;
        Some(format!("{}:{}", location.file?, location.line?))
    }

    fn values(&mut self, vaddr: u64) -> Option<FuncValues> {
        let dwarf = &self.dwarf;
        let index = self.params.get_or_insert_with(|| params::index(dwarf).ok());
        index.as_ref()?.values(dwarf, vaddr)
    }

    fn facts(&mut self) -> &Facts {
        // Source lines are a help, never a reason to fail: DWARF that does
        // not parse tells nothing (addr2line may still read its lines).
        self.facts
            .get_or_insert_with(|| walk(&self.dwarf).unwrap_or_default())
    }
}

/// The cache: per module path, its DWARF or the fact that it has none.
#[derive(Default)]
pub struct DebugInfo {
    modules: HashMap<PathBuf, Option<Loaded>>,
    warnings: Vec<String>,
}

impl DebugInfo {
    pub fn new() -> Self {
        DebugInfo::default()
    }

    /// `path:line` where the function at `vaddr` of `module` is defined.
    pub fn source(&mut self, module: &ModuleSymbols, vaddr: u64) -> Option<String> {
        self.loaded(module)?.source(vaddr)
    }

    /// The arguments and return value of the function at `vaddr`, typed and
    /// placed in their registers, when its DWARF says (`-A`/`-R`); `None`
    /// when the module has no debug info, or not for this function.
    pub fn values(&mut self, module: &ModuleSymbols, vaddr: u64) -> Option<FuncValues> {
        self.loaded(module)?.values(vaddr)
    }

    /// Whether the function at `vaddr` was also inlined somewhere: those
    /// calls run no probe.
    pub fn has_inlined_copies(&mut self, module: &ModuleSymbols, vaddr: u64) -> bool {
        self.loaded(module)
            .is_some_and(|l| l.facts().inlined.contains(&vaddr))
    }

    /// What could not be used (mismatched debug files, unreadable DWARF),
    /// each said once.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    fn loaded(&mut self, module: &ModuleSymbols) -> Option<&mut Loaded> {
        if !self.modules.contains_key(&module.path) {
            let loaded = self.load(module);
            self.modules.insert(module.path.clone(), loaded);
        }
        self.modules.get_mut(&module.path)?.as_mut()
    }

    fn load(&mut self, module: &ModuleSymbols) -> Option<Loaded> {
        let file = dwarf_file(module, &mut self.warnings)?;
        match load_dwarf(&file) {
            Ok((dwarf, context)) => Some(Loaded {
                dwarf,
                context,
                facts: None,
                params: None,
            }),
            Err(why) => {
                self.warnings.push(format!(
                    "cannot read the debug info of {} in {}: {why}",
                    module.path.display(),
                    file.display()
                ));
                None
            }
        }
    }
}

/// The file holding `module`'s DWARF: itself, or its separate debug file.
fn dwarf_file(module: &ModuleSymbols, warnings: &mut Vec<String>) -> Option<PathBuf> {
    if module.debug.own_dwarf {
        return Some(module.path.clone());
    }
    match &module.debug.separate {
        // Searched when the module was read (a stripped binary, for its
        // symbol table); the warnings were given then.
        Separate::Searched(found) => found.clone(),
        Separate::Unsearched => {
            let found = find_separate(&module.path, module.build_id.as_deref(), &module.debug);
            warnings.extend(found.warnings);
            found.path
        }
    }
}

type Parsed = (Arc<gimli::Dwarf<Reader>>, addr2line::Context<Reader>);

fn load_dwarf(path: &Path) -> Result<Parsed, String> {
    let data: Arc<[u8]> = std::fs::read(path).map_err(|e| e.to_string())?.into();
    let file = object::File::parse(&*data).map_err(|e| e.to_string())?;
    let whole = Reader::new(data.clone(), gimli::LittleEndian);
    let section = |id: gimli::SectionId| -> Result<Reader, String> {
        let Some(s) = file.section_by_name(id.name()) else {
            return Ok(Reader::new(Arc::from(&[][..]), gimli::LittleEndian));
        };
        // Uncompressed sections are read in place; compressed ones
        // (SHF_COMPRESSED, as distributions ship them) are inflated.
        match s.uncompressed_data().map_err(|e| e.to_string())? {
            Cow::Borrowed(bytes) => {
                let start = bytes.as_ptr() as usize - data.as_ptr() as usize;
                Ok(whole.range(start..start + bytes.len()))
            }
            Cow::Owned(bytes) => Ok(Reader::new(bytes.into(), gimli::LittleEndian)),
        }
    };
    let dwarf = Arc::new(gimli::Dwarf::load(section)?);
    let context = addr2line::Context::from_arc_dwarf(dwarf.clone()).map_err(|e| e.to_string())?;
    Ok((dwarf, context))
}

/// Sources and inlining notes for a module read elsewhere (tests).
#[cfg(test)]
pub(crate) fn source_of(module: &ModuleSymbols, name: &str) -> Option<String> {
    let sym = module.functions.iter().find(|s| s.name == name)?;
    DebugInfo::new().source(module, sym.vaddr)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::elf::read_module;
    use crate::symbols::testutil::Fixture;

    const INLINED: &str = r#"
static inline int sq(int x) { return x * x; }
__attribute__((noinline)) int outer(int x) { return sq(x) + 1; }
int (*volatile keep)(int) = sq;
int main(int argc, char **argv) { (void)argv; return outer(argc) + keep(argc); }
"#;

    #[test]
    fn sources_come_from_the_line_table_and_inlining_from_the_dies() {
        let fx = Fixture::new();
        let exe = fx.cc("inl", INLINED, &["-O2", "-g"]);
        let module = read_module(&exe).expect("reading");
        let source = source_of(&module, "outer").expect("outer has a line");
        assert!(source.ends_with("inl.c:3"), "{source}");
        let find = |n: &str| module.functions.iter().find(|s| s.name == n).expect(n);
        let mut info = DebugInfo::new();
        assert!(info.has_inlined_copies(&module, find("sq").vaddr));
        assert!(!info.has_inlined_copies(&module, find("outer").vaddr));
        assert!(info.take_warnings().is_empty());
    }

    #[test]
    fn no_debug_info_is_no_source() {
        let fx = Fixture::new();
        let exe = fx.cc("nodebug", INLINED, &["-O2", "-g0"]);
        let module = read_module(&exe).expect("reading");
        assert_eq!(source_of(&module, "outer"), None);
    }
}
