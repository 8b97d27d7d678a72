//! The blocks around the events: the header (versions, clock, run), the
//! function table (everything a report needs to name what it shows, so the
//! traced binary is never needed again) and the fixed-size trailer.

use std::collections::BTreeMap;

use super::values::{decode_specs, encode_specs};
use super::varint::{Cursor, put, put_str};
use crate::model::{FuncId, FuncKind, FuncTable, Function, IoCounts, IoOwner, Module, RunInfo};

/// The clock every event timestamp is read from.
pub const CLOCK: &str = "CLOCK_MONOTONIC";

/// What the header block holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Header {
    /// Version of the utrace that wrote the file.
    pub utrace_version: String,
    pub clock: String,
    /// Command, pid and start times; end time and lost events come from the trailer.
    pub run: RunInfo,
}

/// The I/O table: per row its owner (0 outside every traced call, 1 the
/// devices' other traffic, 2 + id a function), then its twelve counts.
pub fn encode_io(rows: &[(IoOwner, IoCounts)]) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, rows.len() as u64);
    for (owner, counts) in rows {
        put(
            &mut out,
            match owner {
                IoOwner::Outside => 0,
                IoOwner::Other => 1,
                IoOwner::Function(id) => 2 + u64::from(id.0),
            },
        );
        for v in counts.fields() {
            put(&mut out, v);
        }
    }
    out
}

pub fn decode_io(buf: &[u8]) -> Option<Vec<(IoOwner, IoCounts)>> {
    let mut c = Cursor::new(buf);
    let n = c.count()?;
    let mut rows = Vec::with_capacity(n.min(1 << 16));
    for _ in 0..n {
        let owner = match c.varint()? {
            0 => IoOwner::Outside,
            1 => IoOwner::Other,
            id => IoOwner::Function(FuncId(u32::try_from(id - 2).ok()?)),
        };
        let mut f = [0u64; 12];
        for v in &mut f {
            *v = c.varint()?;
        }
        rows.push((owner, IoCounts::from_fields(f)));
    }
    c.is_empty().then_some(rows)
}

pub fn encode_header(run: &RunInfo) -> Vec<u8> {
    let mut out = Vec::new();
    put_str(&mut out, env!("CARGO_PKG_VERSION"));
    put_str(&mut out, CLOCK);
    put_str(&mut out, &run.command);
    put(&mut out, run.pid.into());
    put(&mut out, run.start_unix_ns);
    put(&mut out, run.start_mono_ns);
    out
}

pub fn decode_header(buf: &[u8]) -> Option<Header> {
    let mut c = Cursor::new(buf);
    let utrace_version = c.str()?;
    let clock = c.str()?;
    let run = RunInfo {
        command: c.str()?,
        pid: c.varint_u32()?,
        start_unix_ns: c.varint()?,
        start_mono_ns: c.varint()?,
        ..RunInfo::default()
    };
    Some(Header {
        utrace_version,
        clock,
        run,
    })
}

const FN_PLT: u8 = 1;
const FN_RAW_IS_NAME: u8 = 2;
/// Format 3: the library a PLT stub binds to follows the raw name.
const FN_LIBRARY: u8 = 4;
/// Format 4: where the function is defined (`file:line`) follows the library.
const FN_SOURCE: u8 = 8;

pub fn encode_table(table: &FuncTable) -> Vec<u8> {
    let mut out = Vec::new();
    put(&mut out, table.modules.len() as u64);
    for m in &table.modules {
        put_str(&mut out, &m.path);
        put_str(&mut out, m.build_id.as_deref().unwrap_or(""));
    }
    put(&mut out, table.functions.len() as u64);
    for f in &table.functions {
        put(&mut out, f.module.into());
        put_str(&mut out, &f.name);
        let mut flags = if f.kind == FuncKind::Plt { FN_PLT } else { 0 };
        if f.raw_name == f.name {
            flags |= FN_RAW_IS_NAME;
        }
        if f.library.is_some() {
            flags |= FN_LIBRARY;
        }
        if f.source.is_some() {
            flags |= FN_SOURCE;
        }
        out.push(flags);
        if flags & FN_RAW_IS_NAME == 0 {
            put_str(&mut out, &f.raw_name);
        }
        for extra in [&f.library, &f.source].into_iter().flatten() {
            put_str(&mut out, extra);
        }
        put(&mut out, f.addr);
        put(&mut out, f.size);
    }
    // Format 5: the `-A`/`-R` specs follow the functions (values.rs).
    encode_specs(&mut out, &table.values);
    out
}

pub fn decode_table(buf: &[u8]) -> Option<FuncTable> {
    let mut c = Cursor::new(buf);
    let n = c.count()?;
    let mut modules = Vec::with_capacity(n);
    for _ in 0..n {
        let path = c.str()?;
        let build_id = Some(c.str()?).filter(|b| !b.is_empty());
        modules.push(Module { path, build_id });
    }
    let n = c.count()?;
    let mut functions = Vec::with_capacity(n);
    for _ in 0..n {
        functions.push(decode_function(&mut c)?);
    }
    // A table that ends after its functions (format 4 and older) has no specs.
    let values = match c.is_empty() {
        true => BTreeMap::new(),
        false => decode_specs(&mut c)?,
    };
    c.is_empty().then_some(FuncTable {
        modules,
        functions,
        values,
    })
}

fn decode_function(c: &mut Cursor) -> Option<Function> {
    let module = c.varint_u32()?;
    let name = c.str()?;
    let flags = c.u8()?;
    if flags & !(FN_PLT | FN_RAW_IS_NAME | FN_LIBRARY | FN_SOURCE) != 0 {
        return None;
    }
    let raw_name = if flags & FN_RAW_IS_NAME != 0 {
        name.clone()
    } else {
        c.str()?
    };
    let mut optional = |flag: u8| match flags & flag {
        0 => Some(None),
        _ => c.str().map(Some),
    };
    let library = optional(FN_LIBRARY)?;
    let source = optional(FN_SOURCE)?;
    Some(Function {
        module,
        name,
        raw_name,
        addr: c.varint()?,
        size: c.varint()?,
        kind: if flags & FN_PLT != 0 {
            FuncKind::Plt
        } else {
            FuncKind::Function
        },
        library,
        source,
    })
}

/// The last frame of a finished file; fixed-size so a reader finds it from
/// the end without reading the events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trailer {
    pub end_mono_ns: u64,
    pub lost_events: u64,
    pub events: u64,
    pub calls: u64,
    pub chunks: u64,
}

pub const TRAILER_PAYLOAD_LEN: usize = 40;

impl Trailer {
    pub fn encode(&self) -> Vec<u8> {
        [
            self.end_mono_ns,
            self.lost_events,
            self.events,
            self.calls,
            self.chunks,
        ]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect()
    }

    pub fn decode(buf: &[u8]) -> Option<Trailer> {
        if buf.len() != TRAILER_PAYLOAD_LEN {
            return None;
        }
        let mut c = Cursor::new(buf);
        Some(Trailer {
            end_mono_ns: c.u64_le()?,
            lost_events: c.u64_le()?,
            events: c.u64_le()?,
            calls: c.u64_le()?,
            chunks: c.u64_le()?,
        })
    }
}
