//! Opening what a mode writes to. One meaning of `-o` everywhere: a path is
//! a file (created or truncated), `-` is stdout, and no `-o` is stdout
//! unless the format has a default file (an SVG is not for a terminal).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// An opened output, and the file's path when it is one (for "Wrote …").
pub struct Opened {
    pub writer: Box<dyn Write>,
    pub file: Option<PathBuf>,
}

/// Opens `output` (`-o`), or `default_file` when no `-o` was given, or stdout.
pub fn open(output: Option<&Path>, default_file: Option<&Path>) -> Result<Opened> {
    let file = match output {
        Some(p) if p.as_os_str() == "-" => None,
        Some(p) => Some(p.to_path_buf()),
        None => default_file.map(Path::to_path_buf),
    };
    let writer: Box<dyn Write> = match &file {
        Some(p) => {
            let f = File::create(p).with_context(|| format!("creating {}", p.display()))?;
            Box::new(BufWriter::with_capacity(1 << 16, f))
        }
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout())),
    };
    Ok(Opened { writer, file })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dash_is_stdout_and_a_path_is_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let svg = dir.path().join("default.svg");
        assert_eq!(open(Some(Path::new("-")), Some(&svg)).unwrap().file, None);
        assert_eq!(open(None, None).unwrap().file, None);
        let named = dir.path().join("out.txt");
        let mut opened = open(Some(&named), Some(&svg)).unwrap();
        opened.writer.write_all(b"x").unwrap();
        drop(opened);
        assert_eq!(std::fs::read(&named).unwrap(), b"x");
        assert!(!svg.exists(), "-o wins over the default file");
        assert_eq!(open(None, Some(&svg)).unwrap().file, Some(svg.clone()));
        assert!(svg.exists());
    }
}
