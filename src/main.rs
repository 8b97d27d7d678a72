//! The utrace binary: everything is in the library (`utrace::main`).

fn main() -> std::process::ExitCode {
    utrace::main()
}
