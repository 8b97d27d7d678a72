//! One function with code in a module, as the readers fill it in: where it
//! is, where its probe goes, and where it ends (exit_sites.rs).

use super::epilogue::Epilogue;
use super::placement::Placement;

/// A function with code in a module.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Symbol {
    /// Demangled name, as users see and filter it.
    pub name: String,
    /// Name in the symbol table.
    pub raw_name: String,
    /// Raw names of other symbols at the same address (traced once, as `name`).
    pub aliases: Vec<String>,
    /// Link-time virtual address.
    pub vaddr: u64,
    pub size: u64,
    /// File offset of the first byte.
    pub file_offset: u64,
    /// Global or weak binding.
    pub global: bool,
    /// An STT_GNU_IFUNC symbol: its address is the resolver, which runs once
    /// when the symbol is bound, not the implementation callers reach.
    pub ifunc: bool,
    pub placement: Placement,
    /// Why it cannot be probed at all, when it cannot (placement.rs):
    /// `--list` shows it, `-f` naming it says it.
    pub refused: Option<String>,
    /// File offsets of its `ret`s and direct tail jumps, its `.cold` part's
    /// included (exits.rs), sorted: where the stack pointer is back at its
    /// entry value. Empty for a function that never returns, or leaves only
    /// through an indirect jump.
    pub ret_sites: Vec<u64>,
    /// Its `ret`s whose epilogue only emulated branches and direct calls
    /// enter (epilogue.rs): deep recursion's sites may use those instead of
    /// the single-stepped `ret`.
    pub epilogues: Vec<Epilogue>,
    /// Where its calls return (file offsets, sorted), when nothing but the
    /// direct calls of its module reaches it (exit_sites' `only_called`):
    /// its exits, and those of what it tail-jumps to, are seen there,
    /// usually on an emulated instruction, instead of at its single-stepped
    /// `ret`s.
    pub call_returns: Vec<u64>,
    /// As PltStub's: the sites `-R` needs instead, where they differ.
    pub value_returns: Vec<(u64, u64)>,
    /// File offsets of the direct calls to it, with `call_returns`: where
    /// its entry can be probed instead of its own first instruction (an
    /// emulated `call`), with the stack pointer one slot above.
    pub call_sites: Vec<u64>,
    /// Where its direct calls return (file offsets, sorted), for a function
    /// with a direct tail jump: there the call its jump made returns with
    /// it, while its ret sites end its other calls. Not every call, unless
    /// it is only called directly (then they are `call_returns`): a call
    /// through a pointer returns where no probe is.
    pub watch_returns: Vec<u64>,
    /// The ret sites that are jumps out of it (tail calls): (file offset,
    /// target address), sorted; no target for a jump through a pointer
    /// (a register or memory, but no jump table).
    pub tail_calls: Vec<(u64, Option<u64>)>,
    /// Calls nothing and jumps to no other function: nothing can unwind
    /// through it (exits.rs).
    pub leaf: bool,
    /// Its calls nest at most [`SHORT_HEIGHT`](super::exit_sites::SHORT_HEIGHT)
    /// calls deep below it, all direct, to functions of its module or PLT
    /// stubs: a short call, for BPF's hijacks kept above the budget of the
    /// others (bpf's SHORT_BUDGET).
    pub short: bool,
}
