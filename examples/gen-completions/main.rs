//! `cargo run --example gen-completions -- DIR`: shell completions and the
//! man page into DIR (tools/gen-completions runs it; nothing installs them).

mod generate;

use std::process::ExitCode;

fn main() -> ExitCode {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: gen-completions DIR (writes the completions and utrace.1 there)");
        return ExitCode::from(2);
    };
    match generate::generate(dir.as_ref()) {
        Ok(files) => {
            files.iter().for_each(|f| println!("Wrote {}", f.display()));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!(
                "gen-completions: writing into {}: {err}",
                dir.to_string_lossy()
            );
            ExitCode::FAILURE
        }
    }
}
