//! Which syscalls to trace, written as strace's `-e trace=` expression:
//! comma-separated names, numbers and `%class`es, `all`, `none`, a leading
//! `!` negating the whole list (`!read,write` is everything but the two), and
//! `?name` to skip a name this table does not know. strace's `/regex` form is
//! not read. The classes are strace's (see `classes`).

use super::{TABLE_SIZE, classes, number};

/// The classes, as errors list them (and `--help` may).
pub const CLASSES: &str = "%file %net (%network) %desc %process %memory %signal %ipc %stat %lstat \
                       %fstat %%stat %statfs %fstatfs %%statfs %creds %clock %pure";

/// Each class name (after its `%`) and the strace flags that make it.
const CLASS: &[(&str, u32)] = &[
    ("file", classes::TF),
    ("network", classes::TN),
    ("net", classes::TN),
    ("desc", classes::TD),
    ("process", classes::TP),
    ("memory", classes::TM),
    ("signal", classes::TS),
    ("ipc", classes::TI),
    ("stat", classes::TST),
    ("lstat", classes::TLST),
    ("fstat", classes::TFST),
    ("%stat", classes::TSTA),
    ("statfs", classes::TSF),
    ("fstatfs", classes::TFSF),
    ("%statfs", classes::TSFA),
    ("creds", classes::TC),
    ("clock", classes::TCL),
    ("pure", classes::PU),
];

/// strace still reads these classic classes without their `%`.
const BARE_CLASSES: &[&str] = &[
    "file", "network", "desc", "process", "memory", "signal", "ipc",
];

/// Numbers the bitmap holds: every number BPF's per-number arrays can have.
const CAPACITY: u32 = 1024;
const _: () = assert!(TABLE_SIZE <= CAPACITY);

/// A set of syscall numbers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    bits: [u64; CAPACITY as usize / 64],
    /// Whether numbers past the bitmap are in (after `all` or a `!`).
    beyond: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetError {
    #[error("unknown system call \"{0}\" (give names, numbers or classes: {CLASSES})")]
    UnknownName(String),
    #[error("unknown system call class \"{0}\" (the classes: {CLASSES})")]
    UnknownClass(String),
    #[error("empty system call name in \"{0}\"")]
    Empty(String),
}

impl Set {
    /// Reads strace's `-e trace=` expression.
    pub fn parse(spec: &str) -> Result<Set, SetError> {
        let (negate, list) = match spec.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, spec),
        };
        let mut set = Set::none();
        for item in list.split(',').map(str::trim) {
            set.add(item, spec)?;
        }
        if negate {
            set.invert();
        }
        Ok(set)
    }

    /// Every syscall, known or not.
    pub fn all() -> Set {
        Set {
            bits: [u64::MAX; CAPACITY as usize / 64],
            beyond: true,
        }
    }

    /// No syscall.
    pub fn none() -> Set {
        Set {
            bits: [0; CAPACITY as usize / 64],
            beyond: false,
        }
    }

    pub fn contains(&self, nr: u32) -> bool {
        match self.bits.get(nr as usize / 64) {
            Some(word) => word & (1 << (nr % 64)) != 0,
            None => self.beyond,
        }
    }

    /// Whether every number is in: BPF can then skip its per-number lookup.
    pub fn is_all(&self) -> bool {
        *self == Set::all()
    }

    /// The numbers in the set below [`TABLE_SIZE`], ascending (what a BPF
    /// per-number array is filled from).
    pub fn numbers(&self) -> impl Iterator<Item = u32> + '_ {
        (0..TABLE_SIZE).filter(|&nr| self.contains(nr))
    }

    fn insert(&mut self, nr: u32) {
        self.bits[nr as usize / 64] |= 1 << (nr % 64);
    }

    fn invert(&mut self) {
        self.bits.iter_mut().for_each(|word| *word = !*word);
        self.beyond = !self.beyond;
    }

    /// Adds one item of the list `spec`.
    fn add(&mut self, item: &str, spec: &str) -> Result<(), SetError> {
        let (optional, item) = match item.strip_prefix('?') {
            Some(rest) => (true, rest),
            None => (false, item),
        };
        match item {
            "" => return Err(SetError::Empty(spec.to_string())),
            "all" => *self = Set::all(),
            "none" => {}
            _ => match class_flags(item) {
                Some(Ok(flags)) => classes::with_any(flags).for_each(|nr| self.insert(nr)),
                Some(Err(e)) if !optional => return Err(e),
                None => match syscall_number(item) {
                    Some(nr) => self.insert(nr),
                    None if !optional => return Err(SetError::UnknownName(item.to_string())),
                    None => {}
                },
                Some(Err(_)) => {}
            },
        }
        Ok(())
    }
}

/// The flags of a class item (`%file`, or a bare classic name); None when
/// `item` is no class at all.
fn class_flags(item: &str) -> Option<Result<u32, SetError>> {
    let name = match item.strip_prefix('%') {
        Some(name) => name,
        None if BARE_CLASSES.contains(&item) => item,
        None => return None,
    };
    let found = CLASS.iter().find(|(class, _)| *class == name);
    Some(
        found
            .map(|&(_, flags)| flags)
            .ok_or_else(|| SetError::UnknownClass(item.to_string())),
    )
}

/// A name, or a number as strace takes one, below the bitmap's end.
fn syscall_number(item: &str) -> Option<u32> {
    let nr = if item.bytes().all(|b| b.is_ascii_digit()) {
        item.parse().ok()
    } else {
        number(item)
    };
    nr.filter(|&nr| nr < CAPACITY)
}
