//! For `-c`: the shared libraries a program will load, found before it runs
//! the way the dynamic loader (glibc ld.so) finds them, so their functions
//! can be probed before the first instruction executes.
//!
//! Search order for a DT_NEEDED name without a slash, as in ld.so(8): the
//! DT_RPATH of the requesting object and of the objects that loaded it (only
//! when the requester has no DT_RUNPATH; an object with DT_RUNPATH has its
//! DT_RPATH ignored), LD_LIBRARY_PATH, the requester's DT_RUNPATH, the
//! ld.so.conf directories (what ld.so.cache indexes), then the default
//! directories. Libraries load breadth-first, each once.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use globset::GlobBuilder;

use super::SymbolError;
use super::link::{LinkInfo, read_link_info};

/// The trusted directories, searched last.
const DEFAULT_DIRS: [&str; 6] = [
    "/lib/x86_64-linux-gnu",
    "/usr/lib/x86_64-linux-gnu",
    "/lib64",
    "/usr/lib64",
    "/lib",
    "/usr/lib",
];

/// Where libraries are searched besides each object's own paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchConfig {
    /// LD_LIBRARY_PATH, split.
    pub ld_library_path: Vec<PathBuf>,
    /// Directories from ld.so.conf and its includes.
    pub conf_dirs: Vec<PathBuf>,
    pub default_dirs: Vec<PathBuf>,
}

impl SearchConfig {
    /// The configuration a program started now would see: LD_LIBRARY_PATH
    /// from our environment (the child inherits it) and /etc/ld.so.conf.
    pub fn from_system() -> Self {
        let lib_path = std::env::var("LD_LIBRARY_PATH").unwrap_or_default();
        SearchConfig {
            ld_library_path: split_library_path(&lib_path),
            conf_dirs: read_ld_so_conf(Path::new("/etc/ld.so.conf")),
            default_dirs: DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
        }
    }
}

/// LD_LIBRARY_PATH entries; `:` and `;` separate, an empty entry is the
/// current directory.
pub fn split_library_path(value: &str) -> Vec<PathBuf> {
    if value.is_empty() {
        return Vec::new();
    }
    value
        .split([':', ';'])
        .map(|d| PathBuf::from(if d.is_empty() { "." } else { d }))
        .collect()
}

/// Directories listed in an ld.so.conf file, following `include` globs
/// (relative ones are relative to the including file's directory). Missing
/// files give nothing: a system without ld.so.conf still has defaults.
pub fn read_ld_so_conf(path: &Path) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    read_conf_into(path, &mut dirs, 0);
    dirs
}

fn read_conf_into(path: &Path, dirs: &mut Vec<PathBuf>, depth: u32) {
    // Includes may loop; ldconfig does not guard against it, we do.
    let Ok(text) = std::fs::read_to_string(path) else {
        return;
    };
    if depth > 8 {
        return;
    }
    let base = path.parent().unwrap_or(Path::new("/"));
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        if let Some(pattern) = line.strip_prefix("include") {
            for file in expand_include(base, pattern.trim()) {
                read_conf_into(&file, dirs, depth + 1);
            }
        } else if !line.is_empty() && !line.starts_with("hwcap") {
            let split = line.split([':', ',', ' ', '\t']).filter(|d| !d.is_empty());
            dirs.extend(split.map(PathBuf::from));
        }
    }
}

/// The files an `include` glob names, sorted as glob(3) returns them.
fn expand_include(base: &Path, pattern: &str) -> Vec<PathBuf> {
    let full = base.join(pattern);
    let (Some(dir), Some(file_glob)) = (full.parent(), full.file_name()) else {
        return Vec::new();
    };
    let Ok(glob) = GlobBuilder::new(&file_glob.to_string_lossy())
        .literal_separator(true)
        .build()
    else {
        return Vec::new();
    };
    let matcher = glob.compile_matcher();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| matcher.is_match(e.file_name()))
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// A DT_NEEDED entry no search found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingLib {
    pub name: String,
    pub needed_by: PathBuf,
}

/// Libraries in load order, each once, as canonical paths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResolvedLibs {
    pub paths: Vec<PathBuf>,
    /// Needed libraries not found (the program would fail to start).
    pub missing: Vec<MissingLib>,
}

/// An object whose DT_NEEDED entries are still to be searched.
struct Pending {
    path: PathBuf,
    link: LinkInfo,
    /// RPATH directories of the objects that loaded this one, expanded.
    inherited_rpath: Vec<PathBuf>,
}

/// Resolves the DT_NEEDED entries of `exe`, transitively.
pub fn resolve_needed(exe: &Path, config: &SearchConfig) -> Result<ResolvedLibs, SymbolError> {
    let link = read_link_info(exe)?;
    let mut resolved = ResolvedLibs::default();
    let mut loaded_names: BTreeSet<String> = BTreeSet::new();
    let mut loaded_paths: BTreeSet<PathBuf> = BTreeSet::new();
    let mut queue = VecDeque::from([Pending {
        path: canonical(exe),
        link,
        inherited_rpath: Vec::new(),
    }]);
    while let Some(object) = queue.pop_front() {
        let rpath = rpath_chain(&object);
        for name in &object.link.needed {
            if loaded_names.contains(name) {
                continue;
            }
            let Some((path, link)) = search(name, &object, &rpath, config) else {
                resolved.missing.push(MissingLib {
                    name: name.clone(),
                    needed_by: object.path.clone(),
                });
                continue;
            };
            loaded_names.insert(name.clone());
            loaded_names.extend(link.soname.clone());
            if !loaded_paths.insert(path.clone()) {
                continue;
            }
            resolved.paths.push(path.clone());
            queue.push_back(Pending {
                path,
                link,
                inherited_rpath: rpath.clone(),
            });
        }
    }
    Ok(resolved)
}

/// The RPATH directories that apply to `object`'s own dependencies: none if
/// it has a RUNPATH, else its own RPATH followed by its loaders'.
fn rpath_chain(object: &Pending) -> Vec<PathBuf> {
    if !object.link.runpath.is_empty() {
        return Vec::new();
    }
    let own = expand_dirs(&object.link.rpath, &object.path);
    own.into_iter()
        .chain(object.inherited_rpath.iter().cloned())
        .collect()
}

fn search(
    name: &str,
    object: &Pending,
    rpath: &[PathBuf],
    config: &SearchConfig,
) -> Option<(PathBuf, LinkInfo)> {
    if name.contains('/') {
        let path = expand_origin(name, &object.path);
        return try_candidate(Path::new(&path));
    }
    let runpath = expand_dirs(&object.link.runpath, &object.path);
    rpath
        .iter()
        .chain(&config.ld_library_path)
        .chain(&runpath)
        .chain(&config.conf_dirs)
        .chain(&config.default_dirs)
        .find_map(|dir| try_candidate(&dir.join(name)))
}

/// A usable library at `path`: an x86-64 ELF file. Anything else (missing,
/// 32-bit, another machine) makes the loader, and us, keep searching.
fn try_candidate(path: &Path) -> Option<(PathBuf, LinkInfo)> {
    let link = read_link_info(path).ok()?;
    Some((canonical(path), link))
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn expand_dirs(dirs: &[String], origin_of: &Path) -> Vec<PathBuf> {
    dirs.iter()
        .map(|d| PathBuf::from(expand_origin(d, origin_of)))
        .collect()
}

/// `$ORIGIN` / `${ORIGIN}`: the directory of the object that holds the path.
fn expand_origin(dir: &str, object: &Path) -> String {
    let origin = object.parent().unwrap_or(Path::new("/")).to_string_lossy();
    dir.replace("${ORIGIN}", &origin)
        .replace("$ORIGIN", &origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::symbols::testutil::{CALLS_LIBC, Fixture};

    const LIB: &str = "int lib_fn(int x) { return x + 1; }";
    const USES_LIB: &str =
        "int lib_fn(int);\nint main(int argc, char **argv) { (void)argv; return lib_fn(argc); }";

    fn defaults_only() -> SearchConfig {
        SearchConfig {
            default_dirs: DEFAULT_DIRS.iter().map(PathBuf::from).collect(),
            ..SearchConfig::default()
        }
    }

    fn file_names(libs: &ResolvedLibs) -> Vec<String> {
        libs.paths
            .iter()
            .map(|p| crate::symbols::image::file_name(p))
            .collect()
    }

    /// Builds `<dir>/<name>` as a shared library from `src` with `flags`.
    fn shared(fx: &Fixture, dir: &str, name: &str, src: &str, flags: &[&str]) -> PathBuf {
        std::fs::create_dir_all(fx.path(dir)).expect("mkdir");
        let all = [&["-shared", "-fPIC"], flags].concat();
        let built = fx.cc(name, src, &all);
        let dest = fx.path(dir).join(name);
        std::fs::rename(&built, &dest).expect("moving the library");
        dest
    }

    #[test]
    fn resolves_libc_like_the_loader() {
        let fx = Fixture::new();
        let exe = fx.cc("pie", CALLS_LIBC, &["-O0"]);
        let libs = resolve_needed(&exe, &SearchConfig::from_system()).expect("resolving");
        assert_eq!(file_names(&libs), ["libc.so.6", "ld-linux-x86-64.so.2"]);
        assert!(libs.missing.is_empty());
        assert!(
            libs.paths
                .iter()
                .all(|p| p.is_absolute() && *p == canonical(p))
        );
    }

    #[test]
    fn runpath_applies_to_its_own_object_only() {
        let fx = Fixture::new();
        shared(&fx, "lib", "libinner.so", LIB, &[]);
        let dir = fx.path("lib").display().to_string();
        let outer_src = "int lib_fn(int);\nint outer_fn(int x) { return lib_fn(x); }";
        shared(
            &fx,
            "lib",
            "libouter.so",
            outer_src,
            &["-L", &dir, "-linner"],
        );
        let exe_src =
            "int outer_fn(int);\nint main(int c, char **v) { (void)v; return outer_fn(c); }";
        // -rpath-link only helps ld find libinner now; it records nothing.
        let rpath_link = format!("-Wl,-rpath-link,{dir}");
        let link = ["-L", &dir, "-louter", "-Wl,-rpath,$ORIGIN/lib", &rpath_link];

        let exe = fx.cc("runpath", exe_src, &link);
        let libs = resolve_needed(&exe, &defaults_only()).expect("resolving");
        assert_eq!(
            file_names(&libs),
            ["libouter.so", "libc.so.6", "ld-linux-x86-64.so.2"]
        );
        let missing = MissingLib {
            name: "libinner.so".into(),
            needed_by: canonical(&fx.path("lib/libouter.so")),
        };
        assert_eq!(libs.missing, [missing]);

        // An RPATH (old dtags) is inherited by the libraries it loads.
        let exe = fx.cc(
            "rpath",
            exe_src,
            &[&link[..], &["-Wl,--disable-new-dtags"]].concat(),
        );
        let libs = resolve_needed(&exe, &defaults_only()).expect("resolving");
        let names = file_names(&libs);
        assert_eq!(
            names,
            [
                "libouter.so",
                "libc.so.6",
                "libinner.so",
                "ld-linux-x86-64.so.2"
            ]
        );
        assert!(libs.missing.is_empty());
        assert_eq!(libs.paths[0], canonical(&fx.path("lib/libouter.so")));
    }

    #[test]
    fn search_order_and_wrong_machine_candidates() {
        let fx = Fixture::new();
        let in_a = shared(&fx, "a", "libdemo.so", LIB, &[]);
        let in_b = shared(&fx, "b", "libdemo.so", LIB, &[]);
        let (a, b) = (fx.path("a"), fx.path("b"));
        let runpath_b = format!("-Wl,-rpath,{}", b.display());
        let exe = fx.cc(
            "uses",
            USES_LIB,
            &["-L", &a.display().to_string(), "-ldemo", &runpath_b],
        );

        // RUNPATH comes after LD_LIBRARY_PATH.
        let config = SearchConfig {
            ld_library_path: vec![a.clone()],
            ..defaults_only()
        };
        assert_eq!(
            resolve_needed(&exe, &config).expect("resolving").paths[0],
            canonical(&in_a)
        );
        assert_eq!(
            resolve_needed(&exe, &defaults_only())
                .expect("resolving")
                .paths[0],
            canonical(&in_b)
        );

        // A library for another machine is passed over, as ld.so does.
        let mut data = std::fs::read(&in_a).expect("reading");
        data[18..20].copy_from_slice(&183u16.to_le_bytes());
        std::fs::write(&in_a, data).expect("writing");
        assert_eq!(
            resolve_needed(&exe, &config).expect("resolving").paths[0],
            canonical(&in_b)
        );

        // ld.so.conf directories come after RUNPATH and before the defaults.
        let exe = fx.cc(
            "plain",
            USES_LIB,
            &["-L", &b.display().to_string(), "-ldemo"],
        );
        assert_eq!(
            resolve_needed(&exe, &defaults_only())
                .expect("resolving")
                .missing
                .len(),
            1
        );
        let config = SearchConfig {
            conf_dirs: vec![b.clone()],
            ..defaults_only()
        };
        assert_eq!(
            resolve_needed(&exe, &config).expect("resolving").paths[0],
            canonical(&in_b)
        );
    }

    #[test]
    fn reads_ld_so_conf_with_includes() {
        let fx = Fixture::new();
        std::fs::create_dir_all(fx.path("conf.d")).expect("mkdir");
        std::fs::write(
            fx.path("ld.so.conf"),
            "include conf.d/*.conf\n/opt/a # local\nhwcap 0 x\n\n",
        )
        .expect("write");
        std::fs::write(fx.path("conf.d/b.conf"), "/opt/b:/opt/c\n# comment\n").expect("write");
        std::fs::write(fx.path("conf.d/a.conf"), "/opt/x\n").expect("write");
        std::fs::write(fx.path("conf.d/skip.txt"), "/opt/no\n").expect("write");
        let dirs = read_ld_so_conf(&fx.path("ld.so.conf"));
        let expected: Vec<PathBuf> = ["/opt/x", "/opt/b", "/opt/c", "/opt/a"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(dirs, expected);
        assert!(read_ld_so_conf(&fx.path("missing.conf")).is_empty());
    }

    #[test]
    fn splits_ld_library_path() {
        assert!(split_library_path("").is_empty());
        let dirs = split_library_path("/a::/b;/c");
        let expected: Vec<PathBuf> = ["/a", ".", "/b", "/c"].iter().map(PathBuf::from).collect();
        assert_eq!(dirs, expected);
    }

    #[test]
    fn expands_origin() {
        let object = Path::new("/opt/app/bin/tool");
        assert_eq!(
            expand_origin("$ORIGIN/../lib", object),
            "/opt/app/bin/../lib"
        );
        assert_eq!(expand_origin("${ORIGIN}/x", object), "/opt/app/bin/x");
    }
}
