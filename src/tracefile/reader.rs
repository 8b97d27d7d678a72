//! Reads a trace file: header, table and trailer at open, then the events as
//! a stream, one chunk in memory at a time. Damage after the table is never
//! an error: bad chunks are skipped and counted, a cut end is reported as
//! truncation, and whatever is intact is delivered.

use std::fs::File;
use std::io::{self, ErrorKind};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::chunk::ChunkDecoder;
use super::frame::{FLAG_ZSTD, FrameHeader, HEADER_LEN, Kind, MAGIC, PREAMBLE_LEN, SYNC};
use super::meta::{Header, TRAILER_PAYLOAD_LEN, Trailer, decode_header, decode_table};
use super::{FORMAT_VERSION, TraceFileError};
use crate::model::{Event, FuncTable, RunInfo};

/// Chunks claiming more than this are damaged (the writer puts 65,536 in
/// one, of at most `CHUNK_BYTES` and one event); bounds what one chunk can
/// make the reader allocate.
const MAX_CHUNK_EVENTS: u32 = 1 << 20;
const MAX_CHUNK_RAW: u32 = 32 << 20;
const TRAILER_FRAME_LEN: u64 = (HEADER_LEN + TRAILER_PAYLOAD_LEN) as u64;

pub struct TraceReader {
    path: PathBuf,
    file: File,
    header: Header,
    table: FuncTable,
    run: RunInfo,
    trailer: Option<Trailer>,
    format_version: u16,
    data_start: u64,
    /// Where the events end: the trailer's offset, or the end of the file.
    data_end: u64,
}

impl TraceReader {
    pub fn open(path: &Path) -> Result<TraceReader, TraceFileError> {
        let io_err = |source| TraceFileError::Io {
            path: path.to_owned(),
            source,
        };
        let (file, len) = open_file(path)?;
        let mut input = Input::new(&file, 0, len);
        let format_version = read_preamble(&mut input, path)?;
        let corrupt = |what: &str| TraceFileError::Corrupt {
            path: path.to_owned(),
            what: what.to_owned(),
        };
        let header = match read_meta_frame(&mut input, Kind::Header).map_err(io_err)? {
            Some(raw) => {
                decode_header(&raw).ok_or_else(|| corrupt("its header does not decode"))?
            }
            None => {
                return Err(corrupt(
                    "its header is cut short or damaged; nothing can be reported",
                ));
            }
        };
        let table = match read_meta_frame(&mut input, Kind::Table).map_err(io_err)? {
            Some(raw) => {
                decode_table(&raw).ok_or_else(|| corrupt("its function table does not decode"))?
            }
            None => {
                return Err(corrupt(
                    "its function table is cut short or damaged; nothing can be reported",
                ));
            }
        };
        let data_start = input.pos;
        let trailer = read_trailer(&file, data_start, len).map_err(io_err)?;
        let data_end = if trailer.is_some() {
            len - TRAILER_FRAME_LEN
        } else {
            len
        };
        let (latest, io) = latest_meta(&file, data_start, data_end).map_err(io_err)?;
        let table = latest.unwrap_or(table);
        let mut run = header.run.clone();
        run.io = io;
        if let Some(t) = &trailer {
            run.end_mono_ns = t.end_mono_ns;
            run.lost_events = t.lost_events;
        }
        Ok(TraceReader {
            path: path.to_owned(),
            file,
            header,
            table,
            run,
            trailer,
            format_version,
            data_start,
            data_end,
        })
    }

    /// Command, pid, start and (when the trailer survived) end time and lost events.
    pub fn run_info(&self) -> &RunInfo {
        &self.run
    }

    pub fn table(&self) -> &FuncTable {
        &self.table
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// `None` when the recording did not finish (the file is truncated).
    pub fn trailer(&self) -> Option<&Trailer> {
        self.trailer.as_ref()
    }

    pub fn format_version(&self) -> u16 {
        self.format_version
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The events, in the order they were recorded. Can be called again to
    /// read them again.
    pub fn events(&self) -> Events<'_> {
        Events {
            input: Input::new(&self.file, self.data_start, self.data_end),
            expected: self.trailer.map(|t| t.events),
            decoder: ChunkDecoder::default(),
            zstd: zstd::bulk::Decompressor::new().ok(),
            raw: Vec::new(),
            buf: Vec::new(),
            next: 0,
            status: ReadStatus {
                truncated: self.trailer.is_none(),
                ..ReadStatus::default()
            },
            done: false,
        }
    }
}

/// The file and its length, or why it is no trace file at all.
fn open_file(path: &Path) -> Result<(File, u64), TraceFileError> {
    let io_err = |source| TraceFileError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => TraceFileError::Missing {
            path: path.to_owned(),
        },
        _ => io_err(e),
    })?;
    if meta.is_dir() {
        return Err(TraceFileError::IsADirectory {
            path: path.to_owned(),
        });
    }
    let file = File::open(path).map_err(io_err)?;
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Err(TraceFileError::Empty {
            path: path.to_owned(),
        });
    }
    Ok((file, len))
}

fn read_preamble(input: &mut Input, path: &Path) -> Result<u16, TraceFileError> {
    let bytes = input
        .fill(PREAMBLE_LEN)
        .map_err(|source| TraceFileError::Io {
            path: path.to_owned(),
            source,
        })?;
    if bytes.len() < MAGIC.len() || bytes[..MAGIC.len()] != MAGIC {
        return Err(TraceFileError::NotATraceFile {
            path: path.to_owned(),
        });
    }
    if bytes.len() < PREAMBLE_LEN {
        let what = "it ends right after its magic number".to_owned();
        return Err(TraceFileError::Corrupt {
            path: path.to_owned(),
            what,
        });
    }
    let version = u16::from_le_bytes([bytes[8], bytes[9]]);
    input.consume(PREAMBLE_LEN);
    match version {
        0 => Err(TraceFileError::Corrupt {
            path: path.to_owned(),
            what: "its format version is 0".to_owned(),
        }),
        v if v > FORMAT_VERSION => Err(TraceFileError::NewerVersion {
            path: path.to_owned(),
            found: v,
            supported: FORMAT_VERSION,
        }),
        v => Ok(v),
    }
}

/// The decompressed payload of the next frame if it is an intact `kind` frame.
fn read_meta_frame(input: &mut Input, kind: Kind) -> io::Result<Option<Vec<u8>>> {
    let Some(header) = input.frame_header()? else {
        return Ok(None);
    };
    if header.kind != kind {
        return Ok(None);
    }
    let Some(payload) = input.payload(&header)? else {
        return Ok(None);
    };
    let raw = if !header.payload_ok(payload) {
        None
    } else if header.flags & FLAG_ZSTD == 0 {
        Some(payload.to_vec())
    } else {
        let raw = zstd::bulk::decompress(payload, header.raw_len as usize).ok();
        raw.filter(|raw| raw.len() == header.raw_len as usize)
    };
    input.consume(header.payload_len as usize);
    Ok(raw)
}

/// The last intact function table among the events, if any: a program that
/// loaded code while it was recorded (dlopen, exec) gets the grown table
/// appended, with the ids it had. And the I/O table, if the run has one.
/// Only frame headers are read on the way.
fn latest_meta(file: &File, start: u64, end: u64) -> io::Result<(Option<FuncTable>, IoTable)> {
    let mut latest = None;
    let mut io = Vec::new();
    let mut pos = start;
    let mut head = [0u8; HEADER_LEN];
    while pos + HEADER_LEN as u64 <= end {
        file.read_exact_at(&mut head, pos)?;
        let Some(header) = FrameHeader::parse(&head) else {
            // Damage: go on from the next frame, as the event reader does.
            let mut input = Input::new(file, pos, end);
            input.resync()?;
            pos = input.pos;
            continue;
        };
        if header.kind == Kind::Table {
            let mut input = Input::new(file, pos, end);
            if let Some(table) = read_meta_frame(&mut input, Kind::Table)?
                .as_deref()
                .and_then(decode_table)
            {
                latest = Some(table);
            }
        }
        if header.kind == Kind::Io {
            let mut input = Input::new(file, pos, end);
            if let Some(rows) = read_meta_frame(&mut input, Kind::Io)?
                .as_deref()
                .and_then(super::meta::decode_io)
            {
                io = rows;
            }
        }
        pos += HEADER_LEN as u64 + u64::from(header.payload_len);
    }
    Ok((latest, io))
}

type IoTable = Vec<(crate::model::IoOwner, crate::model::IoCounts)>;

fn read_trailer(file: &File, data_start: u64, len: u64) -> io::Result<Option<Trailer>> {
    if len < data_start + TRAILER_FRAME_LEN {
        return Ok(None);
    }
    let mut input = Input::new(file, len - TRAILER_FRAME_LEN, len);
    let Some(header) = input.frame_header()? else {
        return Ok(None);
    };
    if header.kind != Kind::Trailer {
        return Ok(None);
    }
    Ok(input
        .payload(&header)?
        .filter(|p| header.payload_ok(p))
        .and_then(Trailer::decode))
}

/// What reading the events met besides events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReadStatus {
    /// Intact chunks read.
    pub chunks: u64,
    /// Events delivered.
    pub events: u64,
    /// Chunks that failed their checksum or did not decode.
    pub skipped_chunks: u64,
    /// Events those chunks held, as far as their headers tell.
    pub skipped_events: u64,
    /// Bytes passed over to find the next intact frame.
    pub skipped_bytes: u64,
    /// The recording did not finish: no trailer, or the last chunk is cut.
    pub truncated: bool,
    /// Events in a chunk cut short by the end of the file.
    pub cut_events: u64,
    /// The trailer's event count, when there is a trailer.
    pub expected_events: Option<u64>,
    /// An I/O error that ended reading early.
    pub io_error: Option<String>,
}

impl ReadStatus {
    pub fn is_clean(&self) -> bool {
        self.warnings().is_empty()
    }

    /// One line per problem, for stderr.
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        if self.truncated {
            let cut = match self.cut_events {
                0 => String::new(),
                n => format!("; its last chunk of {n} events is cut short"),
            };
            w.push(format!("the trace is truncated (the recording did not finish{cut}): reporting what is there"));
        }
        if self.skipped_chunks > 0 || self.skipped_bytes > 0 {
            w.push(format!(
                "skipped {} damaged chunk(s) holding {} events and {} unreadable bytes",
                self.skipped_chunks, self.skipped_events, self.skipped_bytes
            ));
        }
        if let Some(expected) = self.expected_events {
            let accounted = self.events + self.skipped_events + self.cut_events;
            if accounted != expected && self.io_error.is_none() {
                w.push(format!(
                    "the trailer counts {expected} events but {accounted} were found"
                ));
            }
        }
        if let Some(e) = &self.io_error {
            w.push(format!("reading stopped early: {e}"));
        }
        w
    }
}

/// The stream of events. Iterate, then look at [`Events::status`].
pub struct Events<'a> {
    input: Input<'a>,
    expected: Option<u64>,
    decoder: ChunkDecoder,
    zstd: Option<zstd::bulk::Decompressor<'static>>,
    raw: Vec<u8>,
    buf: Vec<Event>,
    next: usize,
    status: ReadStatus,
    done: bool,
}

impl Events<'_> {
    /// What was read, skipped and found missing so far (complete once the
    /// iterator returned `None`).
    pub fn status(&self) -> ReadStatus {
        let mut status = self.status.clone();
        status.expected_events = self.expected.filter(|_| self.done);
        status
    }

    /// Loads the next intact chunk into `buf`; false at the end.
    fn next_chunk(&mut self) -> bool {
        while !self.done {
            match self.step() {
                Ok(true) => return true,
                Ok(false) => {}
                Err(e) => {
                    self.status.io_error = Some(e.to_string());
                    self.done = true;
                }
            }
        }
        false
    }

    /// Reads one frame (or resynchronises past damage); true if it loaded events.
    fn step(&mut self) -> io::Result<bool> {
        if self.input.remaining() == 0 {
            self.done = true;
            return Ok(false);
        }
        let Some(header) = self.input.frame_header()? else {
            let rem = self.input.remaining();
            if rem >= HEADER_LEN as u64 {
                self.status.skipped_bytes += self.input.resync()?;
            } else if self.expected.is_some() {
                self.status.skipped_bytes += rem;
                self.done = true;
            } else {
                // A frame header cut short: the recording died writing it.
                self.status.truncated = true;
                self.done = true;
            }
            return Ok(false);
        };
        let Some(payload) = self.input.payload(&header)? else {
            // An intact header whose payload runs past the end: a cut chunk.
            self.status.truncated = true;
            self.status.cut_events = u64::from(header.count);
            self.done = true;
            return Ok(false);
        };
        if matches!(header.kind, Kind::Table | Kind::Io) {
            // A grown table, the I/O table: read at open (latest_meta).
            self.input.consume(header.payload_len as usize);
            return Ok(false);
        }
        if header.kind != Kind::Chunk {
            self.input.consume(header.payload_len as usize);
            self.status.skipped_bytes += HEADER_LEN as u64 + u64::from(header.payload_len);
            return Ok(false);
        }
        let ok = header.payload_ok(payload)
            && header.count <= MAX_CHUNK_EVENTS
            && header.raw_len <= MAX_CHUNK_RAW
            && decode_chunk(
                &header,
                payload,
                &mut self.zstd,
                &mut self.raw,
                &mut self.decoder,
                &mut self.buf,
            );
        self.input.consume(header.payload_len as usize);
        if !ok {
            self.status.skipped_chunks += 1;
            self.status.skipped_events += u64::from(header.count);
            return Ok(false);
        }
        self.status.chunks += 1;
        self.status.events += self.buf.len() as u64;
        self.next = 0;
        Ok(true)
    }
}

fn decode_chunk(
    header: &FrameHeader,
    payload: &[u8],
    zstd: &mut Option<zstd::bulk::Decompressor<'static>>,
    raw: &mut Vec<u8>,
    decoder: &mut ChunkDecoder,
    out: &mut Vec<Event>,
) -> bool {
    let raw: &[u8] = if header.flags & FLAG_ZSTD != 0 {
        let Some(z) = zstd else { return false };
        raw.clear();
        raw.reserve(header.raw_len as usize);
        match z.decompress_to_buffer(payload, raw) {
            Ok(n) if n == header.raw_len as usize => raw,
            _ => return false,
        }
    } else {
        payload
    };
    decoder.decode(raw, header.count, out).is_some()
}

impl Iterator for Events<'_> {
    type Item = Event;

    #[inline]
    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(ev) = self.buf.get_mut(self.next) {
                self.next += 1;
                // Each event is read once: a payload moves out.
                let sys = ev.sys.take();
                let values = ev.values.take();
                return Some(Event { sys, values, ..*ev });
            }
            self.buf.clear();
            if !self.next_chunk() {
                return None;
            }
        }
    }
}

/// A window on `file[pos..end]` read with pread: bytes are looked at before
/// they are consumed, so a damaged frame can be stepped over byte by byte.
struct Input<'a> {
    file: &'a File,
    buf: Vec<u8>,
    /// `buf[lo..hi]` holds the file bytes from `pos`.
    lo: usize,
    hi: usize,
    pos: u64,
    end: u64,
}

impl<'a> Input<'a> {
    fn new(file: &'a File, pos: u64, end: u64) -> Self {
        Input {
            file,
            buf: Vec::new(),
            lo: 0,
            hi: 0,
            pos,
            end,
        }
    }

    fn remaining(&self) -> u64 {
        self.end.saturating_sub(self.pos)
    }

    /// Up to `n` bytes from `pos` (fewer only at the end).
    fn fill(&mut self, n: usize) -> io::Result<&[u8]> {
        let want = n.min(usize::try_from(self.remaining()).unwrap_or(usize::MAX));
        if self.hi - self.lo < want {
            self.buf.copy_within(self.lo..self.hi, 0);
            self.hi -= self.lo;
            self.lo = 0;
            let size = want.max(1 << 16);
            if self.buf.len() < size {
                self.buf.resize(size, 0);
            }
            while self.hi < want {
                let at = self.pos + self.hi as u64;
                let room = (self.buf.len() - self.hi)
                    .min(usize::try_from(self.end - at).unwrap_or(usize::MAX));
                match self
                    .file
                    .read_at(&mut self.buf[self.hi..self.hi + room], at)
                {
                    Ok(0) => break,
                    Ok(k) => self.hi += k,
                    Err(e) if e.kind() == ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        let avail = (self.hi - self.lo).min(want);
        Ok(&self.buf[self.lo..self.lo + avail])
    }

    fn consume(&mut self, n: usize) {
        let n = n.min(self.hi - self.lo);
        self.lo += n;
        self.pos += n as u64;
    }

    /// Reads and consumes an intact frame header; consumes nothing if there is none.
    fn frame_header(&mut self) -> io::Result<Option<FrameHeader>> {
        let bytes = self.fill(HEADER_LEN)?;
        let Ok(h) = <&[u8; HEADER_LEN]>::try_from(bytes) else {
            return Ok(None);
        };
        let header = FrameHeader::parse(h);
        if header.is_some() {
            self.consume(HEADER_LEN);
        }
        Ok(header)
    }

    /// The frame's payload, not yet consumed; `None` if the file ends first.
    fn payload(&mut self, header: &FrameHeader) -> io::Result<Option<&[u8]>> {
        let n = header.payload_len as usize;
        let bytes = self.fill(n)?;
        Ok((bytes.len() == n).then_some(bytes))
    }

    /// Skips to the next sync marker after `pos` (or to the end); returns the
    /// bytes skipped.
    fn resync(&mut self) -> io::Result<u64> {
        let start = self.pos;
        self.fill(1)?; // consume() only moves over buffered bytes
        self.consume(1);
        loop {
            let window = self.fill(1 << 16)?;
            if window.len() < SYNC.len() {
                let n = window.len();
                self.consume(n);
                return Ok(self.pos - start);
            }
            match window.windows(SYNC.len()).position(|w| w == SYNC) {
                Some(i) => {
                    self.consume(i);
                    return Ok(self.pos - start);
                }
                None => {
                    let n = window.len() - (SYNC.len() - 1);
                    self.consume(n);
                }
            }
        }
    }
}
