//! The values of single options, parsed and checked: pids, sizes,
//! durations, depths, rates, syscall sets, `-A`/`-R` requests and `-c`'s
//! command line. Each error names the option and what it takes, in one line.

use anyhow::{Context, Result, bail};

use crate::options::{ValueAt, ValueRequest};
use crate::values::spec;

pub(super) fn parse_syscalls(s: &str) -> Result<crate::syscall::Set, String> {
    crate::syscall::Set::parse(s).map_err(|e| e.to_string())
}

/// Splits a command string the way a POSIX shell would (quotes, escapes);
/// the program is then exec'd directly, with no shell in between.
pub(super) fn split_command(cmd: &str) -> Result<Vec<String>> {
    let argv = shlex::split(cmd)
        .with_context(|| format!("cannot split command {cmd:?}: unbalanced quotes"))?;
    if argv.is_empty() {
        bail!("-c was given an empty command");
    }
    Ok(argv)
}

/// `-p`: a process id. Negative numbers reach this (clap would otherwise
/// take `-1` for an option) to be refused in words.
pub(super) fn parse_pid(s: &str) -> Result<u32, String> {
    s.trim()
        .parse()
        .map_err(|_| "-p takes a process id, a number like 4242 (see `ps`)".to_owned())
}

/// `--max-depth`: levels below the outermost call, 0 or more (capped by
/// BPF at its 16-bit depth field, so a huge number means "no limit").
pub(super) fn parse_depth(s: &str) -> Result<u32, String> {
    let levels: u64 = s
        .trim()
        .parse()
        .map_err(|_| "--max-depth takes a number of levels, 0 or more".to_owned())?;
    Ok(u32::try_from(levels).unwrap_or(u32::MAX))
}

/// `--max-rate`: calls a second.
pub(super) fn parse_rate(s: &str) -> Result<u64, String> {
    s.trim()
        .parse()
        .map_err(|_| "--max-rate takes a number of calls a second, like 10000".to_owned())
}

/// "64K", "16M", or bytes; a power of two from 4 KiB to 1 GiB, as the
/// kernel requires of a ring buffer.
pub(super) fn parse_size(s: &str) -> Result<u32, String> {
    let (num, scale) = match s.trim().to_ascii_uppercase() {
        t if t.ends_with('K') => (t[..t.len() - 1].to_string(), 1 << 10),
        t if t.ends_with('M') => (t[..t.len() - 1].to_string(), 1 << 20),
        t if t.ends_with('G') => (t[..t.len() - 1].to_string(), 1 << 30),
        t => (t, 1),
    };
    let not_a_size = || format!("--buffer-size {s:?} is not a size like 64K or 16M");
    let n: u64 = num.parse().map_err(|_| not_a_size())?;
    let bytes = n.saturating_mul(scale);
    if !bytes.is_power_of_two() || !(4096..=1 << 30).contains(&bytes) {
        return Err(format!(
            "--buffer-size {s:?}: the ring buffer size must be a power of two from 4K to 1G"
        ));
    }
    Ok(bytes as u32)
}

/// "10us", "2ms", "1.5s", "500ns", or a bare number of nanoseconds.
pub(super) fn parse_duration(s: &str) -> Result<u64, String> {
    duration_ns("--time-filter", s, 1.0, "10us or 2ms")
}

/// `--since`: seconds from the start of the run ("0.5"), or a duration ("500ms").
pub(super) fn parse_since(s: &str) -> Result<u64, String> {
    duration_ns("--since", s, 1e9, "0.5 (seconds) or 500ms")
}

pub(super) fn parse_until(s: &str) -> Result<u64, String> {
    duration_ns("--until", s, 1e9, "0.5 (seconds) or 500ms")
}

/// A duration for `option` in ns; a bare number is `bare` ns a unit.
fn duration_ns(option: &str, s: &str, bare: f64, like: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.strip_prefix('-')
        .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit() || c == '.'))
    {
        let first = like.split(" or ").next().unwrap_or(like);
        return Err(format!(
            "{option} takes a duration like {first}, not a negative one"
        ));
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("{option} {s:?} is not a duration like {like}"))?;
    let scale = match unit {
        "" => bare,
        "ns" => 1.0,
        "us" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        _ => {
            return Err(format!(
                "{option} {s:?}: unknown unit {unit:?}, use ns, us, ms or s"
            ));
        }
    };
    Ok((value * scale).round() as u64)
}

/// `--tid`: a thread id, as `--report --format=call-graph` shows them.
pub(super) fn parse_tid(s: &str) -> Result<u32, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("--tid takes thread ids like 4242 or 4242,4243, not {s:?}"))
}

/// `-A FUNC[@SPEC]`: SPEC is a register list (values/spec.rs).
pub(super) fn parse_argument(s: &str) -> Result<ValueRequest, String> {
    value_request("-A", ValueAt::Entry, s)
}

/// `-R FUNC[@retval[/FMT]]`.
pub(super) fn parse_retval(s: &str) -> Result<ValueRequest, String> {
    value_request("-R", ValueAt::Return, s)
}

fn value_request(flag: &str, at: ValueAt, s: &str) -> Result<ValueRequest, String> {
    let (pattern, list) = split_request(s);
    if pattern.is_empty() {
        return Err(format!(
            "{flag} '{s}' names no function: give FUNC or FUNC@SPEC, e.g. {flag} 'parse*'"
        ));
    }
    let spec = match (list, at) {
        (None, _) => None,
        (Some(list), ValueAt::Entry) => Some(spec::parse_args(list)),
        (Some(list), ValueAt::Return) => Some(spec::parse_ret(list).map(|r| vec![r])),
    };
    let spec = spec
        .transpose()
        .map_err(|why| format!("{flag} '{s}': {why}"))?;
    Ok(ValueRequest {
        pattern: pattern.to_owned(),
        at,
        spec,
    })
}

/// FUNC and SPEC, split at the last `@`; a name ending in `@plt` (a PLT
/// stub, as utrace names them) is a FUNC without a SPEC.
fn split_request(s: &str) -> (&str, Option<&str>) {
    match s.rsplit_once('@') {
        Some((_, "plt")) | None => (s, None),
        Some((func, list)) => (func, Some(list)),
    }
}
