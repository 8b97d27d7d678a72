//! What utrace knows about the C runtime, libc and the unwinder, in one
//! place: which imports unwind frames, never return or return twice, and
//! which functions are the runtime's own start-up code rather than the
//! program's. The symbol readers and the exit policy ask here.

/// Imports through which an unwinder may walk the caller's frames by their
/// return addresses: C++ exceptions, Rust panics, forced unwinding
/// (pthread_exit, cancellation). An unwinder that meets a hijacked return
/// address finds no unwind info for it and aborts the program. longjmp is
/// not among them: it restores a saved stack pointer without reading return
/// addresses, and the kernel drops the return instances of the frames it
/// leaves.
const UNWINDING_IMPORTS: [&str; 8] = [
    "__cxa_throw",
    "__cxa_rethrow",
    "__cxa_begin_catch",
    "_Unwind_RaiseException",
    "_Unwind_Resume",
    "_Unwind_ForcedUnwind",
    "pthread_exit",
    "pthread_cancel",
];

/// Whether calling `import` may unwind through the caller.
pub fn may_unwind(import: &str) -> bool {
    UNWINDING_IMPORTS.contains(&import)
        || import.starts_with("_ZSt")
        || import.starts_with("_Unwind_")
}

/// Whether a module that needs library `needed` can be unwound through:
/// the C++ runtime and the unwinder itself.
pub fn unwinds_frames(needed: &str) -> bool {
    needed.starts_with("libstdc++") || needed.starts_with("libgcc_s")
}

/// Imports that never return: the instruction after a call to one is
/// usually an exception landing pad or another path's code, which the
/// unwinder or a jump reaches with the stack pointer a stub return would
/// have; a site there would end whichever call happens to sit one slot
/// below (one the exception unwound) as returned.
const NORETURN_IMPORTS: [&str; 22] = [
    "__cxa_throw",
    "__cxa_rethrow",
    "_Unwind_Resume",
    "__cxa_bad_cast",
    "__cxa_bad_typeid",
    "__cxa_throw_bad_array_new_length",
    "__cxa_call_terminate",
    "_ZSt9terminatev",
    "abort",
    "exit",
    "_exit",
    "_Exit",
    "quick_exit",
    "__stack_chk_fail",
    "__assert_fail",
    "__assert_perror_fail",
    "__fortify_fail",
    "__chk_fail",
    "longjmp",
    "siglongjmp",
    "__longjmp_chk",
    "pthread_exit",
];

/// Whether a call to `import` never comes back.
pub fn never_returns(import: &str) -> bool {
    // libstdc++'s std::__throw_bad_alloc() and friends.
    NORETURN_IMPORTS.contains(&import)
        || (import.starts_with("_ZSt") && import.contains("__throw_"))
}

/// Library functions no unwinder can pass through while they run: C
/// functions that call back into nothing, are no cancellation point, and
/// throw nothing, and C++'s noexcept `operator delete`s. A hijacked return
/// of a call to one is safe even in code that can unwind.
const NEVER_UNWOUND: [&str; 30] = [
    "memcpy",
    "memmove",
    "memset",
    "memcmp",
    "memchr",
    "strlen",
    "strnlen",
    "strcmp",
    "strncmp",
    "strcpy",
    "strncpy",
    "strcat",
    "strchr",
    "strrchr",
    "strstr",
    "strcoll",
    "malloc",
    "calloc",
    "realloc",
    "free",
    "_ZdlPv",
    "_ZdlPvm",
    "_ZdaPv",
    "_ZdaPvm",
    "_ZdlPvSt11align_val_t",
    "_ZdlPvmSt11align_val_t",
    "_ZdaPvSt11align_val_t",
    "_ZdaPvmSt11align_val_t",
    "__ctype_b_loc",
    "__errno_location",
];

/// Whether no unwinder can walk through a call to `import` ([`NEVER_UNWOUND`]).
fn never_unwound(import: &str) -> bool {
    NEVER_UNWOUND.contains(&import)
}

/// glibc's libraries, as a versioned import names the one it binds to.
const GLIBC_LIBRARIES: [&str; 5] = [
    "libc.so.6",
    "libm.so.6",
    "libpthread.so.0",
    "libdl.so.2",
    "librt.so.1",
];

/// glibc functions that run code of the caller's while they run (callbacks,
/// signal handlers, constructors and destructors, the program itself) or
/// unwind by themselves: an exception or a panic can pass through them.
const RUNS_CALLERS_CODE: [&str; 47] = [
    "qsort",
    "qsort_r",
    "bsearch",
    "lfind",
    "lsearch",
    "tsearch",
    "tfind",
    "tdelete",
    "twalk",
    "twalk_r",
    "tdestroy",
    "ftw",
    "ftw64",
    "nftw",
    "nftw64",
    "scandir",
    "scandir64",
    "scandirat",
    "glob",
    "glob64",
    "fts_open",
    "fts64_open",
    "fts_read",
    "fts64_read",
    "pthread_once",
    "call_once",
    "dl_iterate_phdr",
    "dlopen",
    "dlmopen",
    "dlclose",
    "exit",
    "quick_exit",
    "__cxa_finalize",
    "__libc_start_main",
    "raise",
    "kill",
    "tgkill",
    "pthread_kill",
    "sigqueue",
    "pthread_exit",
    "pthread_cancel",
    "setcontext",
    "swapcontext",
    "makecontext",
    "fopencookie",
    "register_printf_function",
    "register_printf_specifier",
];

/// Whether nothing thrown (a C++ exception, a Rust panic) can pass through
/// a call to `import`, bound to `library`: [`never_unwound`], or a function
/// of glibc's that runs none of the caller's code ([`RUNS_CALLERS_CODE`]).
/// Cancellation (pthread_cancel) still unwinds through a glibc cancellation
/// point, but stops at a hijacked return as at the end of the stack: the
/// thread ends all the same, without the destructors above the call.
pub fn throws_nothing(import: &str, library: Option<&str>) -> bool {
    let glibc = library.is_some_and(|l| GLIBC_LIBRARIES.contains(&l));
    never_unwound(import) || (glibc && !RUNS_CALLERS_CODE.contains(&import))
}

/// Functions that return twice (or into a copied stack) save the return
/// address a uretprobe has replaced: a longjmp back then lands in the
/// trampoline and the kernel kills the program (SIGILL).
const RETURNS_TWICE: [&str; 7] = [
    "setjmp",
    "_setjmp",
    "__sigsetjmp",
    "sigsetjmp",
    "savectx",
    "vfork",
    "getcontext",
];

/// Whether the function (or PLT stub, `name@plt`) with raw name `raw` returns twice.
pub fn returns_twice(raw: &str) -> bool {
    RETURNS_TWICE.contains(&raw.strip_suffix("@plt").unwrap_or(raw))
}

/// The C runtime's start-up and tear-down code: not the program's, and
/// `_start` is entered by a jump from the kernel with argc where a return
/// address would be.
const RUNTIME_FUNCTIONS: [&str; 10] = [
    "_start",
    "_init",
    "_fini",
    "frame_dummy",
    "register_tm_clones",
    "deregister_tm_clones",
    "__do_global_dtors_aux",
    "_dl_relocate_static_pie",
    "__libc_csu_init",
    "__libc_csu_fini",
];

/// Whether `raw` names the runtime's own code (never selected).
pub fn is_runtime_function(raw: &str) -> bool {
    RUNTIME_FUNCTIONS.contains(&raw) || raw.starts_with("__x86.get_pc_thunk")
}

/// Imports only the C runtime's own code calls (the program never does).
const RUNTIME_IMPORTS: [&str; 3] = ["__cxa_finalize", "__libc_start_main", "__gmon_start__"];

/// Whether `import` is called only by the runtime (its stub is never selected).
pub fn is_runtime_import(import: &str) -> bool {
    RUNTIME_IMPORTS.contains(&import)
}

/// Whether `import` is called through the GOT by the C start-up code
/// (Scrt1.o) of every PIE: not a call the program makes, so no sign of -fno-plt.
pub fn is_startup_import(import: &str) -> bool {
    import == "__libc_start_main"
}

/// What a probe on the unwinder or on longjmp tells BPF: frames an
/// exception or a longjmp leaves end there and then, not at the thread's
/// next event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Helper {
    /// An unwinder starts walking the stack.
    UnwindStart,
    /// An exception was caught: the frames below the catcher are gone.
    Catch,
    /// A panic was taken back or an exception object freed (Rust's
    /// catch_unwind, or after a C++ catch): the frames below that call are
    /// gone.
    Freed,
    /// longjmp: the frames it leaves end now.
    Longjmp,
}

/// The helper probe an entry of the function `raw` gets, if any.
pub fn helper_of(raw: &str) -> Option<Helper> {
    match raw {
        "_Unwind_RaiseException" | "_Unwind_ForcedUnwind" | "_Unwind_Resume_or_Rethrow" => {
            Some(Helper::UnwindStart)
        }
        // C++ catches call __cxa_begin_catch. Rust's catch_unwind calls
        // std::panicking::catch_unwind::cleanup (`try::cleanup` in older
        // std) from the catching frame, which takes the panic back with
        // __rust_panic_cleanup (v0-mangled in the `__rustc` crate by recent
        // compilers, unmangled by older ones); a foreign exception is freed
        // with _Unwind_DeleteException.
        "__cxa_begin_catch" => Some(Helper::Catch),
        _ if rust_v0(
            raw,
            &["9panicking12catch_unwind7cleanup", "9panicking3try7cleanup"],
        ) =>
        {
            Some(Helper::Catch)
        }
        "_Unwind_DeleteException" | "__rust_panic_cleanup" => Some(Helper::Freed),
        _ if rust_v0(raw, &["7___rustc20___rust_panic_cleanup"]) => Some(Helper::Freed),
        "longjmp" | "_longjmp" | "siglongjmp" | "__longjmp_chk" | "__libc_siglongjmp"
        | "__libc_longjmp" => Some(Helper::Longjmp),
        _ => None,
    }
}

/// Whether `raw` is a Rust v0 symbol whose path ends in one of `tails`
/// (its crate's hash differs from build to build).
fn rust_v0(raw: &str, tails: &[&str]) -> bool {
    raw.starts_with("_R") && tails.iter().any(|t| raw.ends_with(t))
}

/// Whether a library file name can hold helper functions: the unwinder
/// (libgcc_s), the C++ runtime and libc. The executable is always looked at
/// (a static libgcc).
pub fn may_hold_helpers(file_name: &str) -> bool {
    ["libc.so", "libgcc_s.so", "libstdc++.so"]
        .iter()
        .any(|p| file_name.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_functions_that_run_no_callers_code_throw_nothing() {
        assert!(throws_nothing("usleep", Some("libc.so.6")));
        assert!(throws_nothing("free", None));
        assert!(!throws_nothing("qsort", Some("libc.so.6")));
        assert!(!throws_nothing("usleep", None));
        assert!(!throws_nothing(
            "_ZNSt6vectorIiE9push_backEi",
            Some("libstdc++.so.6")
        ));
    }

    #[test]
    fn rust_catches_are_found_in_both_manglings() {
        let v0 = "_RNvNvNtCsjrHSEGnQ3l9_3std9panicking12catch_unwind7cleanup";
        assert_eq!(helper_of(v0), Some(Helper::Catch));
        let taken = "_RNvCsfLfy6EI15iL_7___rustc20___rust_panic_cleanup";
        assert_eq!(helper_of(taken), Some(Helper::Freed));
        assert_eq!(helper_of("__rust_panic_cleanup"), Some(Helper::Freed));
        assert_eq!(helper_of("_RNvCs1_5other7cleanup"), None);
    }
}
