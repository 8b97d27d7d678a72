//! Writer → reader round trips, and every way a file can be cut, flipped or
//! wrong: a partial read or a clear error, never a panic.

use std::path::{Path, PathBuf};

use super::*;
use crate::model::{Event, EventKind, FuncId, FuncKind, FuncTable, Function, Module, RunInfo};

mod values;

pub(crate) fn table() -> FuncTable {
    let f = |module, name: &str, raw: &str, addr, kind| Function {
        module,
        name: name.into(),
        raw_name: raw.into(),
        addr,
        size: 0x40,
        kind,
        library: (kind == FuncKind::Plt).then(|| "libc.so.6".into()),
        source: None,
    };
    FuncTable {
        modules: vec![
            Module {
                path: "/opt/sort".into(),
                build_id: Some("ab12".into()),
            },
            Module {
                path: "/lib/libc.so.6".into(),
                build_id: None,
            },
        ],
        functions: vec![
            f(0, "main", "main", 0x1000, FuncKind::Function),
            f(
                0,
                "sort::numbers",
                "_ZN4sort7numbersE",
                0x1100,
                FuncKind::Function,
            ),
            f(0, "compare", "compare", 0x1200, FuncKind::Function),
            f(0, "qsort@plt", "qsort", 0x400, FuncKind::Plt),
            Function {
                source: Some("/src/fib.c:7".into()),
                ..f(0, "fib", "fib", 0x1300, FuncKind::Function)
            },
            f(
                1,
                "operator<<(std::ostream&, \"x\")",
                "_ZlsRSo",
                0x2000,
                FuncKind::Function,
            ),
        ],
        values: Default::default(),
    }
}

pub(crate) fn run_info() -> RunInfo {
    RunInfo {
        command: "./sort -n 5000".into(),
        pid: 4242,
        start_unix_ns: 1_700_000_000_000_000_000,
        start_mono_ns: 1_000,
        end_mono_ns: 0,
        lost_events: 0,
        io: Vec::new(),
    }
}

/// A deterministic trace: `n` calls of main → numbers → compare×k on a
/// few threads, interleaved, with jittery timestamps.
pub(crate) fn synthetic_events(n: usize) -> Vec<Event> {
    let mut out = Vec::new();
    let mut ts = 1_000u64;
    let mut rng = 0x9e3779b97f4a7c15u64;
    let mut jitter = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % 200
    };
    for i in 0..n {
        let tid = 4242 + (i % 3) as u32;
        let mut e = |kind, func, depth| {
            ts += 50 + jitter();
            out.push(Event {
                kind,
                pid: 4242,
                tid,
                func: FuncId(func),
                depth,
                ts,
                after_loss: false,
                nested: false,
                sys: None,
                values: None,
            });
        };
        use EventKind::*;
        e(Entry, 0, 0);
        e(Entry, 1, 1);
        for _ in 0..(i % 4) {
            e(Entry, 2, 2);
            e(Exit, 2, 2);
        }
        e(Entry, 3, 2);
        e(Exit, 3, 2);
        e(Exit, 1, 1);
        e(Exit, 0, 0);
    }
    out
}

pub(crate) fn write_trace(path: &Path, events: &[Event], finish: bool) -> Written {
    let mut w = TraceWriter::create(path, &run_info(), &table()).unwrap();
    w.set_chunk_events(2_048);
    for e in events {
        w.write(e).unwrap();
    }
    if finish {
        let end = RunInfo {
            end_mono_ns: events.last().map_or(0, |e| e.ts + 1),
            lost_events: 3,
            ..run_info()
        };
        w.finish(&end).unwrap()
    } else {
        w.flush_chunk().unwrap();
        std::mem::forget(w);
        Written::default()
    }
}

fn read_all(path: &Path) -> Result<(Vec<Event>, ReadStatus), TraceFileError> {
    let r = TraceReader::open(path)?;
    let mut events = r.events();
    let all: Vec<Event> = events.by_ref().collect();
    Ok((all, events.status()))
}

fn temp() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("utrace.data");
    (dir, path)
}

#[test]
fn round_trip_is_exact() {
    let (_d, path) = temp();
    let events = synthetic_events(50_000);
    let summary = write_trace(&path, &events, true);
    assert_eq!(summary.events, events.len() as u64);
    assert_eq!(
        summary.calls,
        events.iter().filter(|e| e.kind == EventKind::Entry).count() as u64
    );
    assert_eq!(summary.lost, 3);
    assert_eq!(summary.bytes, std::fs::metadata(&path).unwrap().len());
    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.table(), &table());
    assert_eq!(r.run_info().command, "./sort -n 5000");
    assert_eq!(r.run_info().pid, 4242);
    assert_eq!(r.run_info().lost_events, 3);
    assert_eq!(r.run_info().end_mono_ns, events.last().unwrap().ts + 1);
    assert_eq!(r.header().clock, CLOCK);
    assert_eq!(r.header().utrace_version, env!("CARGO_PKG_VERSION"));
    let (read, status) = read_all(&path).unwrap();
    assert_eq!(read, events);
    assert!(status.is_clean(), "{:?}", status.warnings());
    assert!(status.chunks > 1);
}

/// A table that grew mid-recording (dlopen) is stored again after the events
/// so far; the reader names every function from the last one, even when a
/// damaged frame header lies between.
#[test]
fn a_grown_table_names_the_functions_loaded_later() {
    let (_d, path) = temp();
    let events = synthetic_events(5_000);
    let mut grown = table();
    grown.modules.push(Module {
        path: "/opt/plugin.so".into(),
        build_id: None,
    });
    grown.functions.push(Function {
        module: 2,
        name: "plugin_entry".into(),
        raw_name: "plugin_entry".into(),
        addr: 0x3000,
        size: 0x10,
        kind: FuncKind::Function,
        library: None,
        source: None,
    });
    let mut w = TraceWriter::create(&path, &run_info(), &table()).unwrap();
    w.set_chunk_events(1_000);
    let (before, after) = events.split_at(2_500);
    before.iter().for_each(|e| w.write(e).unwrap());
    w.write_table(&grown).unwrap();
    after.iter().for_each(|e| w.write(e).unwrap());
    w.finish(&run_info()).unwrap();

    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.table(), &grown);
    let (read, status) = read_all(&path).unwrap();
    assert_eq!(read, events);
    assert!(status.is_clean(), "{:?}", status.warnings());

    let mut bytes = std::fs::read(&path).unwrap();
    let first_chunk = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == frame::SYNC)
        .map(|(i, _)| i)
        .nth(2)
        .unwrap();
    bytes[first_chunk + 10] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    assert_eq!(TraceReader::open(&path).unwrap().table(), &grown);
}

#[test]
fn empty_recording_reads_as_no_events() {
    let (_d, path) = temp();
    write_trace(&path, &[], true);
    let (read, status) = read_all(&path).unwrap();
    assert!(read.is_empty());
    assert!(status.is_clean());
}

#[test]
fn compact_on_a_typical_trace() {
    let (_d, path) = temp();
    let events = synthetic_events(100_000);
    let mut w = TraceWriter::create(&path, &run_info(), &table()).unwrap();
    for e in &events {
        w.write(e).unwrap();
    }
    let summary = w.finish(&run_info()).unwrap();
    let per_event = summary.bytes as f64 / summary.events as f64;
    assert!(per_event < 2.5, "{per_event:.2} bytes/event");
}

#[test]
fn unfinished_recording_keeps_every_written_chunk() {
    let (_d, path) = temp();
    let events = synthetic_events(5_000);
    write_trace(&path, &events, false);
    let r = TraceReader::open(&path).unwrap();
    assert!(r.trailer().is_none());
    let (read, status) = read_all(&path).unwrap();
    assert_eq!(read, events);
    assert!(status.truncated);
}

#[test]
fn dropped_writer_flushes_what_it_buffered() {
    let (_d, path) = temp();
    let events = synthetic_events(10);
    {
        let mut w = TraceWriter::create(&path, &run_info(), &table()).unwrap();
        for e in &events {
            w.write(e).unwrap();
        }
    }
    let (read, status) = read_all(&path).unwrap();
    assert_eq!(read, events);
    assert!(status.truncated);
}

#[test]
fn cut_at_every_offset_reads_a_prefix_or_fails_clearly() {
    let (_d, path) = temp();
    let events = synthetic_events(1_000);
    write_trace(&path, &events, true);
    let full = std::fs::read(&path).unwrap();
    let cut_path = path.with_extension("cut");
    // Every offset in the first 400 bytes (preamble, header, table), then a
    // spread over the chunks and the trailer.
    let offsets = (0..400)
        .chain((400..full.len()).step_by(23))
        .chain(full.len() - 70..full.len());
    for at in offsets {
        std::fs::write(&cut_path, &full[..at]).unwrap();
        match read_all(&cut_path) {
            Ok((read, status)) => {
                assert!(events.starts_with(&read), "cut at {at}: not a prefix");
                assert!(status.truncated, "cut at {at}: truncation not reported");
            }
            Err(e) => assert!(
                matches!(
                    e,
                    TraceFileError::Empty { .. }
                        | TraceFileError::NotATraceFile { .. }
                        | TraceFileError::Corrupt { .. }
                ),
                "cut at {at}: {e}"
            ),
        }
    }
}

#[test]
fn flipped_bytes_skip_damage_and_keep_the_rest() {
    let (_d, path) = temp();
    let events = synthetic_events(1_000);
    write_trace(&path, &events, true);
    let full = std::fs::read(&path).unwrap();
    let bad = path.with_extension("bad");
    let mut damaged_reads = 0;
    for at in (0..400).chain((400..full.len()).step_by(17)) {
        let mut bytes = full.clone();
        bytes[at] ^= 0x5a;
        std::fs::write(&bad, &bytes).unwrap();
        match read_all(&bad) {
            Ok((read, status)) => {
                // Whatever comes out is real: every event read is in the original.
                assert!(read.len() <= events.len());
                if read != events {
                    damaged_reads += 1;
                    assert!(!status.is_clean(), "flip at {at}: damage not reported");
                }
            }
            Err(e) => assert!(
                matches!(
                    e,
                    TraceFileError::NotATraceFile { .. }
                        | TraceFileError::Corrupt { .. }
                        | TraceFileError::NewerVersion { .. }
                ),
                "flip at {at}: {e}"
            ),
        }
    }
    assert!(damaged_reads > 0);
}

#[test]
fn a_damaged_chunk_is_skipped_and_counted() {
    let (_d, path) = temp();
    let events = synthetic_events(5_000);
    write_trace(&path, &events, true);
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte in the middle of the file: inside some chunk's payload.
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let (read, status) = read_all(&path).unwrap();
    assert_eq!(status.skipped_chunks, 1);
    assert_eq!(
        read.len() as u64 + status.skipped_events,
        events.len() as u64
    );
    assert!(!status.truncated);
    assert!(
        status.warnings()[0].contains("skipped 1 damaged chunk"),
        "{:?}",
        status.warnings()
    );
}

#[test]
fn a_damaged_frame_header_resynchronises_on_the_next_chunk() {
    let (_d, path) = temp();
    let events = synthetic_events(5_000);
    write_trace(&path, &events, true);
    let mut bytes = std::fs::read(&path).unwrap();
    // The second chunk frame's sync marker.
    let starts: Vec<usize> = bytes
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == frame::SYNC)
        .map(|(i, _)| i)
        .collect();
    let second_chunk = starts[3];
    bytes[second_chunk + 10] ^= 1;
    std::fs::write(&path, &bytes).unwrap();
    let (read, status) = read_all(&path).unwrap();
    assert!(status.skipped_bytes > 0);
    assert!(read.len() < events.len() && read.len() > events.len() / 2);
    assert!(
        status
            .warnings()
            .iter()
            .any(|w| w.contains("trailer counts")),
        "{:?}",
        status.warnings()
    );
}

#[test]
fn bad_inputs_give_their_errors() {
    let (dir, path) = temp();
    let err = |p: &Path| TraceReader::open(p).err().expect("must fail");
    assert!(matches!(err(&path), TraceFileError::Missing { .. }));
    assert!(matches!(
        err(dir.path()),
        TraceFileError::IsADirectory { .. }
    ));
    std::fs::write(&path, b"").unwrap();
    assert!(matches!(err(&path), TraceFileError::Empty { .. }));
    std::fs::write(&path, b"hello, world, this is plain text\n").unwrap();
    assert!(matches!(err(&path), TraceFileError::NotATraceFile { .. }));
    std::fs::write(&path, b"\x89ut").unwrap();
    assert!(matches!(err(&path), TraceFileError::NotATraceFile { .. }));
    write_trace(&path, &synthetic_events(3), true);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8] = 9;
    std::fs::write(&path, &bytes).unwrap();
    match err(&path) {
        TraceFileError::NewerVersion {
            found: 9,
            supported: FORMAT_VERSION,
            ..
        } => {}
        e => panic!("{e}"),
    }
}

#[test]
fn plt_libraries_and_sources_round_trip_and_version_2_files_still_read() {
    let (_d, path) = temp();
    write_trace(&path, &synthetic_events(10), true);
    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.format_version(), FORMAT_VERSION);
    assert_eq!(
        r.table().functions[4].source.as_deref(),
        Some("/src/fib.c:7")
    );
    let qsort = &r.table().functions[3];
    assert_eq!(qsort.library.as_deref(), Some("libc.so.6"));
    assert_eq!(r.table(), &table());
    // A version 2 file is a version 4 file in which no function has a
    // library or a source.
    let mut v2 = table();
    v2.functions
        .iter_mut()
        .for_each(|f| (f.library, f.source) = (None, None));
    let mut w = TraceWriter::create(&path, &run_info(), &v2).unwrap();
    w.write(&synthetic_events(1)[0]).unwrap();
    w.finish(&run_info()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[8..10].copy_from_slice(&2u16.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let r = TraceReader::open(&path).unwrap();
    assert_eq!((r.format_version(), r.table()), (2, &v2));
}

#[test]
fn errors_are_one_clear_line() {
    let (dir, path) = temp();
    let msg = TraceReader::open(&path).err().unwrap().to_string();
    assert!(msg.contains("utrace.data: no such file"), "{msg}");
    let msg = TraceReader::open(dir.path()).err().unwrap().to_string();
    assert!(msg.ends_with("is a directory, not a trace file"), "{msg}");
    std::fs::write(&path, b"\x89utrace\n\x07\x00\x00\x00").unwrap();
    let msg = TraceReader::open(&path).err().unwrap().to_string();
    assert!(
        msg.contains(&format!(
            "format version 7, newer than this utrace reads (up to {FORMAT_VERSION})"
        )),
        "{msg}"
    );
    assert!(!msg.contains('\n'));
}

/// A bounded mutation fuzzer over the reader that runs with `cargo test`
/// (the cargo-fuzz target in fuzz/ explores further): random cuts, flips,
/// splices and stomps on a valid file must never panic or hang.
#[test]
fn mutated_files_never_panic() {
    let (_d, path) = temp();
    let events = synthetic_events(500);
    write_trace(&path, &events, true);
    let seed_file = std::fs::read(&path).unwrap();
    let bad = path.with_extension("mut");
    let mut rng = 0x2545f4914f6cdd1du64;
    let mut next = move |n: usize| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        (rng % n.max(1) as u64) as usize
    };
    let rounds = if cfg!(debug_assertions) {
        1_000
    } else {
        10_000
    };
    for _ in 0..rounds {
        let mut bytes = seed_file.clone();
        for _ in 0..1 + next(4) {
            let at = next(bytes.len());
            match next(5) {
                0 => bytes.truncate(at),
                1 => bytes[at] ^= 1 << next(8),
                2 => {
                    let len = next(64).min(bytes.len() - at);
                    bytes[at..at + len].fill(next(256) as u8);
                }
                3 => {
                    let from = next(bytes.len());
                    let len = next(512).min(bytes.len() - from);
                    let piece = bytes[from..from + len].to_vec();
                    bytes.splice(at..at, piece);
                }
                _ => {
                    let len = next(256).min(bytes.len() - at);
                    bytes.drain(at..at + len);
                }
            }
            if bytes.is_empty() {
                break;
            }
        }
        std::fs::write(&bad, &bytes).unwrap();
        if let Ok(r) = TraceReader::open(&bad) {
            let n = r.events().count();
            assert!(n <= events.len() * 2);
        }
    }
}

#[test]
fn system_calls_round_trip_with_their_arguments_and_copies() {
    use crate::model::{ArgCopy, Syscall};
    let (_d, path) = temp();
    let mut events = synthetic_events(6);
    let sys = |ts: u64, ret: Option<i64>, copies: [Option<ArgCopy>; 2], data: &[u8]| Event {
        kind: EventKind::Syscall,
        pid: 4242,
        tid: 4242,
        func: FuncId(1),
        depth: 2,
        ts,
        after_loss: false,
        nested: false,
        values: None,
        sys: Some(Box::new(Syscall {
            nr: 257,
            end_ts: ts + 811,
            ret,
            args: [u64::MAX - 99, 0x7ffd_1234_5678, 0o644, 0, 0, u64::MAX],
            copies,
            data: data.to_vec(),
            io: (ret == Some(-2)).then_some(crate::model::SyscallIo {
                cache_pages: 16,
                cache_added: 3,
                dirtied: 1,
                requests: 2,
                read_bytes: 65536,
                write_bytes: 4096,
                device_ns: 790_000,
            }),
        })),
    };
    let path_copy = Some(ArgCopy { len: 8, cut: true });
    let second = Some(ArgCopy { len: 2, cut: false });
    events.insert(
        2,
        sys(
            events[1].ts + 1,
            Some(-2),
            [path_copy, second],
            b"/etc/abcde",
        ),
    );
    events.insert(4, sys(events[3].ts + 1, None, [None, None], b""));
    write_trace(&path, &events, true);
    let (read, status) = read_all(&path).unwrap();
    assert_eq!(
        (status.events, status.skipped_events),
        (events.len() as u64, 0)
    );
    assert_eq!(read, events);
}

#[test]
fn the_io_table_round_trips_in_its_own_frame() {
    use crate::model::{IoCounts, IoOwner};
    let (_d, path) = temp();
    let counts = |k: u64| IoCounts::from_fields(std::array::from_fn(|i| k * 100 + i as u64));
    let io = vec![
        (IoOwner::Function(FuncId(3)), counts(1)),
        (IoOwner::Outside, counts(2)),
        (IoOwner::Other, counts(3)),
    ];
    let written = synthetic_events(20);
    let mut w = TraceWriter::create(&path, &run_info(), &table()).unwrap();
    for ev in &written {
        w.write(ev).unwrap();
    }
    let run = RunInfo {
        io: io.clone(),
        ..run_info()
    };
    w.finish(&run).unwrap();
    let r = TraceReader::open(&path).unwrap();
    assert_eq!(r.run_info().io, io);
    let (events, status) = read_all(&path).unwrap();
    assert_eq!((events, status.skipped_bytes), (written, 0));
}
