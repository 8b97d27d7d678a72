//! `-A`/`-R` in the trace file (format 5): specs in the table, values in
//! their chunk column, through the writer and the reader and across chunks,
//! format 4 files that still read, and damage that is never a panic.

use std::path::Path;

use super::super::chunk::{CHUNK_EVENTS, ChunkDecoder, ChunkEncoder};
use super::*;
use crate::callstack::CallStacks;
use crate::model::{ArgCopy, Call, Syscall};
use crate::values::{Format, FuncValues, Slot, Value, ValueSpec, Values};

fn spec(name: Option<&str>, slot: Slot, format: Format) -> ValueSpec {
    ValueSpec {
        name: name.map(Into::into),
        slot,
        format,
    }
}

/// The test table with specs using every slot and every format, an enum
/// with names (one negative) and unnamed register arguments.
fn table_with_values() -> FuncTable {
    let color = Format::Enum {
        size: 4,
        names: vec![(-1, "NONE".into()), (0, "RED".into()), (7, "BLUE".into())],
    };
    let main = FuncValues {
        args: vec![
            spec(Some("argc"), Slot::Reg(0), Format::Signed(4)),
            spec(Some("argv"), Slot::Reg(1), Format::Pointer),
        ],
        ret: Some(spec(None, Slot::Ret(0), Format::Signed(4))),
    };
    let numbers = FuncValues {
        args: vec![
            spec(Some("n"), Slot::Reg(5), Format::Unsigned(8)),
            spec(Some("mask"), Slot::Stack(8), Format::Hex(2)),
            spec(Some("ok"), Slot::Stack(16), Format::Bool),
            spec(Some("c"), Slot::Reg(2), Format::Char),
            spec(Some("color"), Slot::Reg(3), color.clone()),
            spec(Some("name"), Slot::Reg(4), Format::Str),
            spec(Some("x"), Slot::Sse(0), Format::Float(8)),
            spec(Some("big"), Slot::Memory, Format::Aggregate),
            spec(
                Some("empty"),
                Slot::Reg(0),
                Format::Enum {
                    size: 1,
                    names: vec![],
                },
            ),
        ],
        ret: Some(spec(None, Slot::Ret(1), color)),
    };
    // Registers the user named: no names, and no return value.
    let compare = FuncValues {
        args: vec![
            spec(None, Slot::Reg(0), Format::Hex(8)),
            spec(None, Slot::Reg(1), Format::Hex(8)),
        ],
        ret: None,
    };
    let fib_ret = FuncValues {
        args: vec![],
        ret: Some(spec(None, Slot::Sse(0), Format::Float(4))),
    };
    FuncTable {
        values: [
            (FuncId(0), main),
            (FuncId(1), numbers),
            (FuncId(2), compare),
            (FuncId(4), fib_ret),
        ]
        .into(),
        ..table()
    }
}

/// Every kind of value, picked by `i`.
fn values_for(i: usize) -> Values {
    let text = |bytes: Option<&[u8]>, cut| Value::Text {
        addr: 0x7ffd_1234_0000 + i as u64,
        bytes: bytes.map(<[u8]>::to_vec),
        cut,
    };
    match i % 5 {
        0 => [Value::Word(i as u64), Value::Word(u64::MAX), Value::Missing].into(),
        1 => [text(Some(b"GET /index.html"), false), Value::Word(0)].into(),
        2 => [text(Some(b"a long one\n\0\xff"), true), text(None, false)].into(),
        3 => [text(Some(b""), false), text(None, true), Value::Missing].into(),
        _ => [].into(),
    }
}

/// `synthetic_events(n)` with arguments before some entries and return
/// values before some exits (as BPF sends them: same thread, depth and
/// time), and a system call now and then.
fn events_with_values(n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    for (i, ev) in synthetic_events(n).into_iter().enumerate() {
        let marker = match ev.kind {
            EventKind::Entry if ev.func != FuncId(3) => Some(EventKind::Args),
            EventKind::Exit if i % 3 != 0 => Some(EventKind::Retval),
            _ => None,
        };
        if i % 97 == 0 && ev.kind == EventKind::Entry {
            out.push(syscall_under(&ev));
        }
        if let Some(kind) = marker {
            out.push(Event {
                kind,
                values: Some(values_for(i)),
                ..ev.clone()
            });
        }
        out.push(ev);
    }
    out
}

fn syscall_under(ev: &Event) -> Event {
    Event {
        kind: EventKind::Syscall,
        depth: ev.depth,
        ts: ev.ts.saturating_sub(1),
        sys: Some(Box::new(Syscall {
            nr: 0,
            end_ts: ev.ts,
            ret: Some(5),
            args: [3, 0x7ffd_0000, 5, 0, 0, 0],
            copies: [Some(ArgCopy { len: 5, cut: false }), None],
            data: b"hello".to_vec(),
            io: None,
        })),
        ..ev.clone()
    }
}

#[test]
fn value_specs_round_trip_in_the_table_and_a_grown_one() {
    let (_d, path) = temp();
    let specs = table_with_values();
    let mut w = TraceWriter::create(&path, &run_info(), &specs).unwrap();
    let events = events_with_values(10);
    events.iter().for_each(|e| w.write(e).unwrap());
    w.finish(&run_info()).unwrap();
    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.format_version(), 5);
    assert_eq!(r.table(), &specs);

    // A table written again after events (dlopen) keeps its specs too.
    let mut grown = table_with_values();
    grown.values.insert(
        FuncId(5),
        FuncValues {
            args: vec![spec(Some("os"), Slot::Reg(0), Format::Pointer)],
            ret: None,
        },
    );
    let mut w = TraceWriter::create(&path, &run_info(), &specs).unwrap();
    events.iter().for_each(|e| w.write(e).unwrap());
    w.write_table(&grown).unwrap();
    w.finish(&run_info()).unwrap();
    assert_eq!(TraceReader::open(&path).unwrap().table(), &grown);
}

/// Values interleaved with entries, exits and system calls on three
/// threads, over a full-size chunk boundary, with an Args marker the last
/// event of the first chunk and its entry the first of the next.
#[test]
fn args_and_retvals_round_trip_across_threads_and_chunks() {
    let (_d, path) = temp();
    let mut events = events_with_values(6_000);
    // Start the trace mid-call (as a chunk may) so that an Args lands last.
    let last = CHUNK_EVENTS - 1;
    let at = (last..events.len())
        .find(|&i| events[i].kind == EventKind::Args && events[i + 1].kind == EventKind::Entry)
        .unwrap();
    events.drain(..at - last);
    assert_eq!(events[last].kind, EventKind::Args);
    assert!(events.len() > CHUNK_EVENTS + 1000);

    let mut w = TraceWriter::create(&path, &run_info(), &table_with_values()).unwrap();
    events.iter().for_each(|e| w.write(e).unwrap());
    let summary = w.finish(&run_info()).unwrap();
    assert_eq!(summary.events, events.len() as u64);
    let (read, status) = read_all(&path).unwrap();
    assert!(status.is_clean(), "{:?}", status.warnings());
    assert_eq!(status.chunks, 2);
    assert_eq!(read.len(), events.len());
    assert!(read == events, "events differ");

    // What `--report` pairs from them: the entry after the boundary gets
    // the arguments held from the chunk before.
    let mut stacks = CallStacks::new();
    let mut with_args = 0;
    let mut with_ret = 0;
    for ev in &read {
        stacks.push(ev, &mut |c| match c {
            Call::Enter { args: Some(_), .. } => with_args += 1,
            Call::Leave { ret: Some(_), .. } => with_ret += 1,
            _ => {}
        });
    }
    let count = |k| events.iter().filter(|e| e.kind == k).count();
    assert_eq!(with_args, count(EventKind::Args));
    assert!(with_ret > 0 && with_ret <= count(EventKind::Retval));
}

/// The markers leave the thread model alone: the entries and exits around
/// them cost what they cost without them.
#[test]
fn value_markers_leave_the_predictions_alone() {
    let plain = synthetic_events(200);
    let with: Vec<Event> = events_with_values(200)
        .into_iter()
        .filter(|e| e.kind != EventKind::Syscall)
        .collect();
    let encode = |events: &[Event]| {
        let mut enc = ChunkEncoder::default();
        events.iter().for_each(|e| enc.push(e));
        let mut raw = Vec::new();
        enc.take(&mut raw);
        raw
    };
    let (plain_raw, with_raw) = (encode(&plain), encode(&with));
    let markers = with.len() - plain.len();
    let mut values = Vec::new();
    for e in with.iter().filter(|e| e.values.is_some()) {
        super::super::values::encode_values(&mut values, e.values.as_deref());
    }
    // Per marker: a flag, a function only for Args, and the entry or exit
    // after it a zero delta (its depth is predicted as it was); plus its
    // record in the values column and a little for the column lengths.
    let extra = with_raw.len() - plain_raw.len() - values.len();
    assert!(
        extra <= markers * 3 + 16,
        "{extra} bytes for {markers} markers"
    );
    let mut out = Vec::new();
    ChunkDecoder::default()
        .decode(&with_raw, with.len() as u32, &mut out)
        .unwrap();
    assert!(out == with);
}

/// A chunk cut anywhere, or with any byte of its values column changed,
/// decodes to an error or to events, never a panic.
#[test]
fn a_damaged_values_column_is_an_error_never_a_panic() {
    let events = events_with_values(15);
    let mut enc = ChunkEncoder::default();
    events.iter().for_each(|e| enc.push(e));
    let mut raw = Vec::new();
    enc.take(&mut raw);
    let n = events.len() as u32;
    let mut dec = ChunkDecoder::default();
    let mut out = Vec::new();
    assert!(dec.decode(&raw, n, &mut out).is_some());
    for cut in 0..raw.len() {
        assert!(
            dec.decode(&raw[..cut], n, &mut out).is_none(),
            "cut at {cut}"
        );
    }
    let mut values = Vec::new();
    for e in events.iter().filter(|e| e.values.is_some()) {
        super::super::values::encode_values(&mut values, e.values.as_deref());
    }
    // The values column is the end of the chunk.
    for at in raw.len() - values.len()..raw.len() {
        for b in [0u8, 1, 2, 6, 14, 0x7f, 0x80, 0xff] {
            let mut bad = raw.clone();
            bad[at] = b;
            let _ = dec.decode(&bad, n, &mut out);
        }
    }
    // A trailing byte, a hostile count, an unknown value kind.
    let mut long = raw.clone();
    long.push(0);
    assert!(dec.decode(&long, n, &mut out).is_none());
    for tail in [&[0xff, 0xff, 0xff, 0xff, 0x0f][..], &[2, 16]] {
        let mut bad = raw[..raw.len() - values.len()].to_vec();
        bad.extend_from_slice(tail);
        assert!(dec.decode(&bad, n, &mut out).is_none());
    }
}

#[test]
fn files_with_values_cut_or_flipped_read_a_prefix_or_fail_clearly() {
    let (_d, path) = temp();
    let events = events_with_values(100);
    let mut w = TraceWriter::create(&path, &run_info(), &table_with_values()).unwrap();
    w.set_chunk_events(128);
    events.iter().for_each(|e| w.write(e).unwrap());
    w.finish(&run_info()).unwrap();
    let full = std::fs::read(&path).unwrap();
    let bad = path.with_extension("bad");
    for at in (0..full.len()).step_by(13) {
        std::fs::write(&bad, &full[..at]).unwrap();
        if let Ok((read, status)) = read_all(&bad) {
            assert!(events.starts_with(&read), "cut at {at}: not a prefix");
            assert!(status.truncated, "cut at {at}");
        }
        let mut flipped = full.clone();
        flipped[at] ^= 0x21;
        std::fs::write(&bad, &flipped).unwrap();
        if let Ok((read, status)) = read_all(&bad) {
            assert!(read == events || !status.is_clean(), "flip at {at}");
        }
    }
}

/// testdata/format4.data was written by the format 4 writer (before
/// values): `table()` and these events, in 64-event chunks.
fn format4_events() -> Vec<Event> {
    let mut events = synthetic_events(30);
    let at = events[1].clone();
    events.insert(
        2,
        Event {
            kind: EventKind::Syscall,
            ts: at.ts + 1,
            depth: 2,
            sys: Some(Box::new(Syscall {
                nr: 257,
                end_ts: at.ts + 9,
                ret: Some(3),
                args: [1, 2, 3, 4, 5, 6],
                copies: [Some(ArgCopy { len: 4, cut: true }), None],
                data: b"/etc".to_vec(),
                io: None,
            })),
            ..at
        },
    );
    let last = events[events.len() - 1].clone();
    events.push(Event {
        kind: EventKind::Gone,
        func: FuncId(0),
        ts: last.ts + 5,
        ..last
    });
    events
}

#[test]
fn a_format_4_file_reads_with_no_values() {
    let (_d, path) = temp();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/tracefile/testdata/format4.data");
    std::fs::copy(&fixture, &path).unwrap();
    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.format_version(), 4);
    assert_eq!(r.table(), &table());
    assert!(r.table().values.is_empty());
    let (read, status) = read_all(&path).unwrap();
    assert!(status.is_clean(), "{:?}", status.warnings());
    assert_eq!(status.chunks, format4_events().len().div_ceil(64) as u64);
    assert_eq!(read, format4_events());
}

/// Long strings fill a chunk's bytes before its events: the writer starts
/// a new chunk early, so no chunk grows past what the reader takes.
#[test]
fn large_values_end_a_chunk_early() {
    let (_d, path) = temp();
    let text = Value::Text {
        addr: 0x1000,
        bytes: Some(vec![b'x'; 64 << 10]),
        cut: true,
    };
    let mut events = Vec::new();
    for ev in synthetic_events(120) {
        if ev.kind == EventKind::Entry {
            let values: Values = [text.clone(), Value::Word(1)].into();
            events.push(Event {
                kind: EventKind::Args,
                values: Some(values),
                ..ev.clone()
            });
        }
        events.push(ev);
    }
    let mut w = TraceWriter::create(&path, &run_info(), &table_with_values()).unwrap();
    events.iter().for_each(|e| w.write(e).unwrap());
    w.finish(&run_info()).unwrap();
    let (read, status) = read_all(&path).unwrap();
    assert!(status.is_clean(), "{:?}", status.warnings());
    assert!(status.chunks >= 3, "{} chunks", status.chunks);
    assert!(read == events);
}
