//! Diagnostics on stderr: warnings share one prefix, and a closed stdout
//! (`utrace … | head`) is told apart from a real write error.

/// `warning!("…")` prints `utrace: warning: …` on stderr.
macro_rules! warning {
    ($($arg:tt)*) => {
        eprintln!("utrace: warning: {}", format_args!($($arg)*))
    };
}
pub(crate) use warning;

/// Whether `err` is, somewhere in its chain, a write to a closed pipe.
pub fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain()
        .filter_map(|e| e.downcast_ref::<std::io::Error>())
        .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
}
