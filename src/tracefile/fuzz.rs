//! One fuzzing step over the reader, shared by the cargo-fuzz target
//! (fuzz/fuzz_targets/trace_reader.rs) and the bounded mutation test that
//! runs with `cargo test`. The first byte picks how the rest is used, so the
//! fuzzer reaches past the checksums it could not forge:
//!
//! - 0: the bytes are a whole trace file;
//! - 1: they are edits (offset, operation) applied to a valid trace file;
//! - 2: they are a decompressed chunk, fed straight to the chunk decoder.

use std::path::PathBuf;
use std::sync::OnceLock;

use super::chunk::ChunkDecoder;
use super::varint::Cursor;
use super::{TraceReader, TraceWriter};
use crate::model::{Event, EventKind, FuncId, FuncKind, FuncTable, Function, Module, RunInfo};
use crate::values::{Format, FuncValues, Slot, Value, ValueSpec, Values};

/// Reads whatever `data` makes of a trace file; must never panic or hang.
#[doc(hidden)]
pub fn fuzz_one(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 3 {
        0 => read_file(rest),
        1 => read_file(&edited(sample(), rest)),
        _ => {
            let count = Cursor::new(rest).varint().unwrap_or(0).min(u32::MAX.into()) as u32;
            let _ = ChunkDecoder::default().decode(rest, count, &mut Vec::new());
        }
    }
}

fn read_file(bytes: &[u8]) {
    let path = scratch_path();
    if std::fs::write(&path, bytes).is_err() {
        return;
    }
    if let Ok(reader) = TraceReader::open(&path) {
        let mut events = reader.events();
        let n = events.by_ref().count() as u64;
        let status = events.status();
        assert_eq!(status.events, n);
        let _ = status.warnings();
    }
}

fn scratch_path() -> PathBuf {
    let dir = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    let thread =
        format!("{:?}", std::thread::current().id()).replace(|c: char| !c.is_ascii_digit(), "");
    dir.join(format!("utrace-fuzz-{}-{thread}.data", std::process::id()))
}

/// Applies edits to `base`: each is an offset (2 bytes, scaled to the file)
/// and an operation byte.
fn edited(base: &[u8], script: &[u8]) -> Vec<u8> {
    let mut bytes = base.to_vec();
    for edit in script.chunks_exact(3) {
        if bytes.is_empty() {
            break;
        }
        let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) * bytes.len() / 65_536;
        let op = edit[2];
        match op >> 6 {
            0 => bytes[at] ^= 1 << (op & 7),
            1 => bytes[at] = op << 2,
            2 => bytes.truncate(at),
            _ => {
                let len = usize::from(op & 63).min(bytes.len() - at);
                bytes.drain(at..at + len);
            }
        }
    }
    bytes
}

/// A small valid trace: two threads, nesting, recursion, system calls,
/// arguments and return values, several chunks.
fn sample() -> &'static [u8] {
    static SAMPLE: OnceLock<Vec<u8>> = OnceLock::new();
    SAMPLE.get_or_init(|| {
        let path = scratch_path().with_extension("sample");
        let run = RunInfo {
            command: "app".into(),
            pid: 1,
            ..RunInfo::default()
        };
        let mut bytes = Vec::new();
        if let Ok(mut w) = TraceWriter::create(&path, &run, &sample_table()) {
            w.set_chunk_events(64);
            let events = sample_events();
            let end_mono_ns = events.last().map_or(0, |e| e.ts + 1);
            let wrote = events.iter().try_for_each(|e| w.write(e));
            if wrote
                .and_then(|()| w.finish(&RunInfo { end_mono_ns, ..run }))
                .is_ok()
            {
                bytes = std::fs::read(&path).unwrap_or_default();
            }
        }
        let _ = std::fs::remove_file(&path);
        bytes
    })
}

/// Four functions; f1 has `-A`/`-R` specs, so the table's values section is
/// seeded too.
fn sample_table() -> FuncTable {
    let spec = |name: Option<&str>, slot, format| ValueSpec {
        name: name.map(Into::into),
        slot,
        format,
    };
    let f1 = FuncValues {
        args: vec![
            spec(Some("n"), Slot::Reg(0), Format::Signed(4)),
            spec(Some("s"), Slot::Reg(1), Format::Str),
            spec(None, Slot::Stack(8), Format::Hex(8)),
        ],
        ret: Some(spec(
            None,
            Slot::Ret(0),
            Format::Enum {
                size: 4,
                names: vec![(-1, "ERR".into()), (0, "OK".into())],
            },
        )),
    };
    FuncTable {
        modules: vec![Module {
            path: "/bin/app".into(),
            build_id: Some("abcd".into()),
        }],
        functions: (0..4)
            .map(|i| Function {
                module: 0,
                name: format!("f{i}"),
                raw_name: format!("f{i}"),
                addr: i * 16,
                size: 16,
                kind: if i == 3 {
                    FuncKind::Plt
                } else {
                    FuncKind::Function
                },
                library: (i == 3).then(|| "libc.so.6".into()),
                source: None,
            })
            .collect(),
        values: [(FuncId(1), f1)].into(),
    }
}

fn sample_events() -> Vec<Event> {
    let mut out = Vec::new();
    let mut ts = 0;
    for i in 0..100u32 {
        let tid = 1 + i % 2;
        let ev = |kind, func, depth, ts| Event {
            kind,
            pid: 1,
            tid,
            func: FuncId(func),
            depth,
            ts,
            after_loss: false,
            nested: false,
            sys: None,
            values: None,
        };
        for (kind, func, depth) in [
            (EventKind::Entry, 0, 0),
            (EventKind::Entry, 1 + i % 3, 1),
            (EventKind::Exit, 1 + i % 3, 1),
            (EventKind::Exit, 0, 0),
        ] {
            ts += 10 + u64::from(i % 7);
            // f1's arguments and return value, so the values column is seeded.
            if func == 1 {
                let marker = match kind {
                    EventKind::Entry => EventKind::Args,
                    _ => EventKind::Retval,
                };
                out.push(Event {
                    values: Some(sample_values(i, kind == EventKind::Exit)),
                    ..ev(marker, func, depth, ts)
                });
            }
            out.push(ev(kind, func, depth, ts));
        }
        // A system call now and then, so the syscall column is seeded.
        if i % 5 == 0 {
            let sys = crate::model::Syscall {
                nr: 257,
                end_ts: ts + 5,
                ret: Some(-2),
                args: [u64::MAX - 99, 0x7ffd_0000, 0, 0, 0, 0],
                copies: [Some(crate::model::ArgCopy { len: 4, cut: false }), None],
                data: b"/etc".to_vec(),
                io: None,
            };
            out.push(Event {
                sys: Some(Box::new(sys)),
                ..ev(EventKind::Syscall, 0, 1, ts)
            });
        }
    }
    out
}

/// Every kind of value, varied by `i`.
fn sample_values(i: u32, ret: bool) -> Values {
    if ret {
        return [Value::Word(u64::from(i % 2).wrapping_sub(1))].into();
    }
    let text = Value::Text {
        addr: 0x7ffd_0000 + u64::from(i),
        bytes: (!i.is_multiple_of(3)).then(|| b"GET /".to_vec()),
        cut: i.is_multiple_of(2),
    };
    [Value::Word(i.into()), text, Value::Missing].into()
}

#[cfg(test)]
mod tests {
    use super::*;
    /// The fuzz step itself, on seeds of each mode and random bytes.
    #[test]
    fn fuzz_step_never_panics() {
        let mut rng = 0x853c49e6748fea9bu64;
        let mut byte = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng as u8
        };
        fuzz_one(&[]);
        for round in 0..600u32 {
            let len = (round % 97) as usize;
            let mut data: Vec<u8> = (0..len).map(|_| byte()).collect();
            if let Some(first) = data.first_mut() {
                *first = (round % 3) as u8;
            }
            fuzz_one(&data);
        }
        let _ = std::fs::remove_file(scratch_path());
    }
}
