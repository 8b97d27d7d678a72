//! For `-p PID`: the ELF files a running process has mapped for execution.
//!
//! Paths are returned under /proc/PID/root, so a process in another mount
//! namespace (a container) is read and probed through its own view of the
//! file system; a file deleted since it was mapped is reached through
//! /proc/PID/map_files, which still names its inode.

use std::io::ErrorKind;
use std::path::PathBuf;

use super::SymbolError;

/// One executable file mapping of a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappedFile {
    /// Where to open (and attach to) the file from this process.
    pub path: PathBuf,
    /// The path as the process sees it (as in /proc/PID/maps).
    pub name: String,
    pub inode: u64,
    /// Deleted (or replaced) since it was mapped.
    pub deleted: bool,
}

/// What a process has mapped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessMaps {
    pub pid: u32,
    /// /proc/PID/exe: opens the main executable even if it was replaced.
    pub exe: PathBuf,
    /// The executable's path as the process sees it.
    pub exe_name: String,
    /// The other mapped files with code, in address order, each once.
    pub libs: Vec<MappedFile>,
}

/// One line of /proc/PID/maps that maps a file for execution.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapsEntry {
    pub start: u64,
    pub end: u64,
    pub inode: u64,
    pub name: String,
    pub deleted: bool,
}

/// Reads the executable file mappings of process `pid`.
pub fn read_process(pid: u32) -> Result<ProcessMaps, SymbolError> {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let maps_path = proc_dir.join("maps");
    let text = std::fs::read_to_string(&maps_path).map_err(|err| match err.kind() {
        ErrorKind::NotFound => SymbolError::NoSuchProcess(pid),
        _ => SymbolError::Io {
            path: maps_path.clone(),
            source: err,
        },
    })?;
    let exe = proc_dir.join("exe");
    let exe_name = std::fs::read_link(&exe)
        .map_err(SymbolError::io(&exe))?
        .to_string_lossy()
        .trim_end_matches(" (deleted)")
        .to_string();
    let mut libs: Vec<MappedFile> = Vec::new();
    for entry in parse_maps(&text) {
        if entry.name == exe_name || libs.iter().any(|l| l.name == entry.name) {
            continue;
        }
        let path = if entry.deleted {
            proc_dir.join(format!("map_files/{:x}-{:x}", entry.start, entry.end))
        } else {
            proc_dir
                .join("root")
                .join(entry.name.trim_start_matches('/'))
        };
        libs.push(MappedFile {
            path,
            name: entry.name,
            inode: entry.inode,
            deleted: entry.deleted,
        });
    }
    Ok(ProcessMaps {
        pid,
        exe,
        exe_name,
        libs,
    })
}

/// The executable mappings of files in a /proc/PID/maps text; anonymous
/// and special mappings ([vdso], [heap], ...) are left out.
pub fn parse_maps(text: &str) -> Vec<MapsEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// `start-end perms offset dev inode   path`; the path may hold spaces.
fn parse_line(line: &str) -> Option<MapsEntry> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let _dev = fields.next()?;
    let inode = fields.next()?.parse().ok()?;
    let name = fields.next()?.trim_start();
    if !perms.contains('x') || !name.starts_with('/') || inode == 0 {
        return None;
    }
    let (start, end) = range.split_once('-')?;
    let (name, deleted) = match name.strip_suffix(" (deleted)") {
        Some(name) => (name, true),
        None => (name, false),
    };
    Some(MapsEntry {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        inode,
        name: name.to_string(),
        deleted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55d0c0a00000-55d0c0a01000 r--p 00000000 fd:01 1234                       /usr/bin/demo
55d0c0a01000-55d0c0a02000 r-xp 00001000 fd:01 1234                       /usr/bin/demo
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0                          [heap]
7f1e2a000000-7f1e2a028000 r--p 00000000 fd:01 5678                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e2a028000-7f1e2a19d000 r-xp 00028000 fd:01 5678                       /usr/lib/x86_64-linux-gnu/libc.so.6
7f1e2a300000-7f1e2a301000 r-xp 00001000 fd:01 91                         /opt/my app/libx.so (deleted)
7f1e2a400000-7f1e2a401000 r-xp 00000000 00:00 0                          [vdso]
7f1e2a500000-7f1e2a501000 r-xp 00000000 00:00 0 
";

    #[test]
    fn parses_executable_file_mappings() {
        let entries = parse_maps(MAPS);
        let names: Vec<_> = entries
            .iter()
            .map(|e| (e.name.as_str(), e.deleted))
            .collect();
        assert_eq!(
            names,
            [
                ("/usr/bin/demo", false),
                ("/usr/lib/x86_64-linux-gnu/libc.so.6", false),
                ("/opt/my app/libx.so", true),
            ]
        );
        assert_eq!(entries[1].start, 0x7f1e2a028000);
        assert_eq!(entries[1].inode, 5678);
    }

    #[test]
    fn reads_own_process() {
        let pid = std::process::id();
        let maps = read_process(pid).expect("reading our own maps");
        assert_eq!(maps.exe, PathBuf::from(format!("/proc/{pid}/exe")));
        let exe = std::env::current_exe().expect("current_exe");
        assert_eq!(maps.exe_name, exe.to_string_lossy());
        assert!(maps.libs.iter().all(|l| l.name != maps.exe_name));
        let libc = maps
            .libs
            .iter()
            .find(|l| l.name.ends_with("/libc.so.6"))
            .expect("libc is mapped");
        let root = format!("/proc/{pid}/root/");
        assert!(libc.path.starts_with(&root), "{libc:?}");
        assert!(libc.path.exists());
    }

    #[test]
    fn missing_process_is_no_such_process() {
        // Above the largest pid_max the kernel allows (2^22).
        let pid = 5_000_000;
        assert!(matches!(read_process(pid), Err(SymbolError::NoSuchProcess(p)) if p == pid));
    }
}
