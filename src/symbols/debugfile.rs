//! Where a module's DWARF is: in the file itself, or in a separate debug
//! file that distributions ship in `/usr/lib/debug` (or `--debug-dir`),
//! found the way gdb finds it: by build-id
//! (`DIR/.build-id/ab/cdef….debug`), then by `.gnu_debuglink` (beside the
//! binary, in `.debug/` beside it, then `DIR/<the binary's directory>/`).
//! A candidate whose build-id or CRC does not match is not used: its
//! addresses would name the wrong code. That is said once, as a warning.

use std::path::{Path, PathBuf};

use object::Object;

/// The directory distributions install separate debug files under.
pub const DEFAULT_DEBUG_DIR: &str = "/usr/lib/debug";

/// What reading a module's ELF file told about its debug info.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebugRef {
    /// The file itself has `.debug_info`.
    pub own_dwarf: bool,
    /// `.gnu_debuglink`: the debug file's name and the CRC-32 of its bytes.
    pub link: Option<(String, u32)>,
    /// The directories searched (`--debug-dir`, or [`DEFAULT_DEBUG_DIR`]).
    pub dirs: Vec<PathBuf>,
    pub separate: Separate,
}

/// Whether the separate debug file was looked for yet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Separate {
    /// Not yet: looked for on the first question about source lines.
    #[default]
    Unsearched,
    /// When the module was read (a stripped binary, for its symbol table).
    Searched(Option<PathBuf>),
}

/// The result of a search: the file holding the DWARF, and why candidates
/// that were there could not be used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Found {
    pub path: Option<PathBuf>,
    /// Its bytes, read to check it.
    pub data: Option<Vec<u8>>,
    pub warnings: Vec<String>,
}

impl DebugRef {
    /// Reads the facts from a parsed module.
    pub(crate) fn of<'d>(elf: &impl Object<'d>, dirs: &[PathBuf]) -> DebugRef {
        let link = elf.gnu_debuglink().ok().flatten().and_then(|(name, crc)| {
            let name = std::str::from_utf8(name).ok()?;
            Some((name.to_string(), crc))
        });
        DebugRef {
            own_dwarf: elf.section_by_name(".debug_info").is_some(),
            link,
            dirs: dirs.to_vec(),
            separate: Separate::Unsearched,
        }
    }
}

/// The separate debug file of the module at `path` (with `build_id`, hex),
/// or none. Only called when something needs it: the CRC check of a
/// debuglink candidate reads the whole file.
pub fn find_separate(path: &Path, build_id: Option<&str>, debug: &DebugRef) -> Found {
    let mut found = Found::default();
    let own = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let usable = |candidate: &Path, crc: Option<u32>, found: &mut Found| {
        let same = std::fs::canonicalize(candidate).is_ok_and(|c| c == own);
        if same || !candidate.is_file() {
            return None;
        }
        match check(candidate, &own, build_id, crc) {
            Ok(data) => Some(data),
            Err(why) => {
                found.warnings.push(format!(
                    "not using {} as the debug file of {}: {why}",
                    candidate.display(),
                    own.display()
                ));
                None
            }
        }
    };
    if let Some(id) = build_id.filter(|id| id.len() > 2) {
        for dir in &debug.dirs {
            let candidate = dir.join(format!(".build-id/{}/{}.debug", &id[..2], &id[2..]));
            if let Some(data) = usable(&candidate, None, &mut found) {
                (found.path, found.data) = (Some(candidate), Some(data));
                return found;
            }
        }
    }
    if let Some((name, crc)) = &debug.link {
        for candidate in link_candidates(&own, name, &debug.dirs) {
            if let Some(data) = usable(&candidate, Some(*crc), &mut found) {
                (found.path, found.data) = (Some(candidate), Some(data));
                return found;
            }
        }
    }
    found
}

/// Where gdb looks for a `.gnu_debuglink` name, in its order.
fn link_candidates(binary: &Path, name: &str, dirs: &[PathBuf]) -> Vec<PathBuf> {
    let dir = binary.parent().unwrap_or(Path::new("/"));
    let mut out = vec![dir.join(name), dir.join(".debug").join(name)];
    let relative = dir.strip_prefix("/").unwrap_or(dir);
    out.extend(dirs.iter().map(|d| d.join(relative).join(name)));
    out
}

/// `candidate`'s bytes, when it describes the binary: same build-id (when
/// the binary has one) and, for a debuglink, the CRC the link names.
fn check(
    candidate: &Path,
    binary: &Path,
    build_id: Option<&str>,
    crc: Option<u32>,
) -> Result<Vec<u8>, String> {
    let data = std::fs::read(candidate).map_err(|e| format!("cannot read it: {e}"))?;
    if let Some(want) = crc {
        let got = crc32fast::hash(&data);
        if got != want {
            return Err(format!(
                "its CRC-32 is {got:#010x}, {}'s .gnu_debuglink expects {want:#010x}",
                file_name(binary)
            ));
        }
    }
    let file = object::File::parse(&*data).map_err(|e| format!("not an ELF file ({e})"))?;
    let theirs = file.build_id().ok().flatten().map(super::image::hex);
    match (build_id, theirs) {
        (Some(ours), Some(theirs)) if ours != theirs => Err(format!(
            "its build-id is {theirs}, {}'s is {ours}",
            file_name(binary)
        )),
        _ => Ok(data),
    }
}

fn file_name(path: &Path) -> String {
    super::image::file_name(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::testutil::{CALLS_LIBC, Fixture};

    fn debug_ref(exe: &Path, dirs: &[PathBuf]) -> (DebugRef, Option<String>) {
        let data = std::fs::read(exe).unwrap();
        let file = object::File::parse(&*data).unwrap();
        let id = file
            .build_id()
            .ok()
            .flatten()
            .map(crate::symbols::image::hex);
        (DebugRef::of(&file, dirs), id)
    }

    #[test]
    fn build_id_and_debuglink_are_found_and_mismatches_refused() {
        let fx = Fixture::new();
        let exe = fx.cc("prog", CALLS_LIBC, &["-O0", "-g"]);
        let split = fx.split_debug(&exe, "prog.debug");
        let dir = fx.path("debug");
        // By build-id, from a debug directory.
        let (debug, id) = debug_ref(&split.stripped, std::slice::from_ref(&dir));
        assert!(!debug.own_dwarf);
        assert_eq!(
            debug.link.as_ref().map(|l| l.0.as_str()),
            Some("prog.debug")
        );
        let id = id.expect("build-id");
        let by_id = dir.join(format!(".build-id/{}/{}.debug", &id[..2], &id[2..]));
        std::fs::create_dir_all(by_id.parent().unwrap()).unwrap();
        std::fs::copy(&split.debug, &by_id).unwrap();
        let found = find_separate(&split.stripped, Some(&id), &debug);
        assert_eq!(found.path.as_ref(), Some(&by_id));
        assert_eq!(found.data, Some(std::fs::read(&split.debug).unwrap()));
        assert!(found.warnings.is_empty(), "{:?}", found.warnings);
        std::fs::remove_file(&by_id).unwrap();
        // By debuglink, beside the binary.
        let found = find_separate(&split.stripped, Some(&id), &debug);
        assert_eq!(found.path.as_deref(), Some(split.debug.as_path()));
        // A debug file whose bytes changed: its CRC no longer matches.
        let mut bytes = std::fs::read(&split.debug).unwrap();
        bytes.push(0);
        std::fs::write(&split.debug, &bytes).unwrap();
        let found = find_separate(&split.stripped, Some(&id), &debug);
        assert_eq!(found.path, None);
        assert_eq!(found.warnings.len(), 1, "{:?}", found.warnings);
        assert!(
            found.warnings[0].contains("CRC-32") && found.warnings[0].contains("prog.debug"),
            "{:?}",
            found.warnings
        );
    }
}
