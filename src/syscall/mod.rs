//! Placeholder of the syscall naming and decoding library, replaced by the
//! full one (names, strace's classes, argument decoding) when it lands.
#![allow(dead_code)]

use std::borrow::Cow;

use syscalls::Sysno;

pub const TABLE_SIZE: u32 = 1024;

pub fn name(nr: u32) -> Cow<'static, str> {
    match Sysno::new(nr as usize) {
        Some(s) => Cow::Borrowed(s.name()),
        None => Cow::Owned(format!("syscall_{nr}")),
    }
}

pub fn number(name: &str) -> Option<u32> {
    name.parse::<Sysno>().ok().map(|s| s.id() as u32)
}

#[derive(Debug, thiserror::Error)]
#[error("unknown system call {0:?} in --syscalls")]
pub struct SetError(String);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Set {
    on: Vec<bool>,
}

impl Set {
    pub fn parse(spec: &str) -> Result<Set, SetError> {
        if spec == "all" {
            return Ok(Set::all());
        }
        let mut on = vec![false; TABLE_SIZE as usize];
        for part in spec.split(',') {
            let nr = number(part).ok_or_else(|| SetError(part.into()))?;
            on[nr as usize] = true;
        }
        Ok(Set { on })
    }
    pub fn all() -> Set {
        Set {
            on: vec![true; TABLE_SIZE as usize],
        }
    }
    pub fn contains(&self, nr: u32) -> bool {
        self.on.get(nr as usize).copied().unwrap_or(false)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Copy {
    None,
    Str { arg: u8 },
    Bytes { arg: u8, len_arg: u8 },
    Fixed { arg: u8, len: u16 },
}

pub fn copies(nr: u32) -> [Copy; 2] {
    match name(nr).as_ref() {
        "open" | "execve" | "unlink" | "stat" | "access" => [Copy::Str { arg: 0 }, Copy::None],
        "openat" => [Copy::Str { arg: 1 }, Copy::None],
        _ => [Copy::None, Copy::None],
    }
}

pub struct Copied<'a> {
    pub bytes: &'a [u8],
    pub truncated: bool,
}

pub fn format_args(nr: u32, args: &[u64; 6], copied: &[Copied<'_>]) -> String {
    let _ = nr;
    let mut out: Vec<String> = args.iter().map(|a| format!("{a:#x}")).collect();
    if let Some(c) = copied.first() {
        out.insert(0, format!("{:?}", String::from_utf8_lossy(c.bytes)));
    }
    out.join(", ")
}

pub fn format_result(nr: u32, ret: Option<i64>) -> String {
    match ret {
        None => "?".into(),
        Some(r) if is_error(nr, r) => format!("-{}", errno_name(-r as i32)),
        Some(r) => r.to_string(),
    }
}

pub fn is_error(_nr: u32, ret: i64) -> bool {
    (-4095..=-1).contains(&ret)
}

pub fn bytes(nr: u32, ret: i64) -> Option<u64> {
    let moves = matches!(name(nr).as_ref(), "read" | "write" | "pread64" | "pwrite64");
    (moves && ret >= 0).then_some(ret as u64)
}

pub fn errno_name(errno: i32) -> String {
    format!("{:?}", nix::errno::Errno::from_raw(errno))
}
