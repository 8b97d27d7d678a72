//! Shell completions and the man page, generated from the clap definition
//! itself, so they never drift from `--help`. Shared by the example that
//! tools/gen-completions runs and by the test that checks what it writes.

use std::path::{Path, PathBuf};

use clap_complete::Shell;

/// Writes utrace's completions for bash, zsh, fish and elvish and its man
/// page `utrace.1` into `dir`; returns the files written.
pub fn generate(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish, Shell::Elvish] {
        let mut cmd = utrace::command();
        written.push(clap_complete::generate_to(shell, &mut cmd, "utrace", dir)?);
    }
    let man = dir.join("utrace.1");
    let mut page = Vec::new();
    clap_mangen::Man::new(utrace::command()).render(&mut page)?;
    std::fs::write(&man, page)?;
    written.push(man);
    Ok(written)
}
