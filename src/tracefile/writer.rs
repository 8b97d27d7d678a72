//! Writes a trace file: header and table first (flushed at once), then each
//! chunk of events as soon as it fills, then the trailer. Memory is one chunk.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::FORMAT_VERSION;
use super::chunk::{CHUNK_BYTES, CHUNK_EVENTS, ChunkEncoder};
use super::frame::{FLAG_ZSTD, FrameHeader, Kind, MAGIC, MAX_PAYLOAD};
use super::meta::{Trailer, encode_header, encode_table};
use crate::model::{Event, EventKind, FuncTable, RunInfo};

/// zstd level: 3 keeps the writer far ahead of the event rate (hundreds of
/// MB/s) and loses little to higher levels on these column-encoded chunks.
const ZSTD_LEVEL: i32 = 3;

/// What a finished recording holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Written {
    pub events: u64,
    /// Entry events, i.e. calls made.
    pub calls: u64,
    pub lost: u64,
    pub chunks: u64,
    /// Size of the file.
    pub bytes: u64,
}

pub struct TraceWriter {
    out: BufWriter<File>,
    path: PathBuf,
    chunk: ChunkEncoder,
    raw: Vec<u8>,
    packed: Vec<u8>,
    zstd: zstd::bulk::Compressor<'static>,
    summary: Written,
    chunk_events: usize,
    finished: bool,
}

impl TraceWriter {
    /// Creates (or truncates) `path` and writes the header and function table.
    pub fn create(path: &Path, run: &RunInfo, table: &FuncTable) -> Result<TraceWriter> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let zstd =
            zstd::bulk::Compressor::new(ZSTD_LEVEL).context("starting the zstd compressor")?;
        let mut w = TraceWriter {
            out: BufWriter::with_capacity(1 << 18, file),
            path: path.to_owned(),
            chunk: ChunkEncoder::default(),
            raw: Vec::new(),
            packed: Vec::new(),
            zstd,
            summary: Written::default(),
            chunk_events: CHUNK_EVENTS,
            finished: false,
        };
        let mut preamble = MAGIC.to_vec();
        preamble.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        preamble.extend_from_slice(&[0, 0]);
        w.put(&preamble)?;
        w.frame(Kind::Header, &encode_header(run), false, 0)?;
        w.write_table(table)?;
        Ok(w)
    }

    /// Writes `table` whole and hands it to the OS: at the start, and again
    /// whenever it grew (code loaded later). The reader uses the last one.
    pub fn write_table(&mut self, table: &FuncTable) -> Result<()> {
        self.flush_chunk()?;
        let table = encode_table(table);
        if table.len() > MAX_PAYLOAD as usize {
            bail!(
                "the function table is too large for a trace file ({} bytes)",
                table.len()
            );
        }
        self.frame(Kind::Table, &table, true, 0)?;
        self.flush()
    }

    /// Buffers one event; a full chunk is compressed and written out.
    pub fn write(&mut self, ev: &Event) -> Result<()> {
        self.chunk.push(ev);
        self.summary.events += 1;
        self.summary.calls += u64::from(ev.kind == EventKind::Entry);
        if self.chunk.len() >= self.chunk_events || self.chunk.bytes() >= CHUNK_BYTES {
            self.flush_chunk()
        } else {
            Ok(())
        }
    }

    /// Smaller chunks, so tests and the fuzzer get many chunks from few events.
    pub(crate) fn set_chunk_events(&mut self, n: usize) {
        self.chunk_events = n.clamp(1, CHUNK_EVENTS);
    }

    /// Writes the events buffered so far as a (short) chunk and hands it to
    /// the OS, so a crash from here on loses none of them. Call when idle.
    pub fn flush_chunk(&mut self) -> Result<()> {
        if self.chunk.is_empty() {
            return Ok(());
        }
        let count = self.chunk.len() as u32;
        let mut raw = std::mem::take(&mut self.raw);
        raw.clear();
        self.chunk.take(&mut raw);
        let res = self
            .frame(Kind::Chunk, &raw, true, count)
            .and_then(|()| self.flush());
        self.raw = raw;
        self.summary.chunks += 1;
        res
    }

    /// Writes the last chunk and the trailer (end time and lost events from
    /// `run`) and syncs the file to disk.
    pub fn finish(mut self, run: &RunInfo) -> Result<Written> {
        self.flush_chunk()?;
        if !run.io.is_empty() {
            self.frame(Kind::Io, &super::meta::encode_io(&run.io), true, 0)?;
        }
        self.summary.lost = run.lost_events;
        let trailer = Trailer {
            end_mono_ns: run.end_mono_ns,
            lost_events: run.lost_events,
            events: self.summary.events,
            calls: self.summary.calls,
            chunks: self.summary.chunks,
        };
        self.frame(Kind::Trailer, &trailer.encode(), false, 0)?;
        self.flush()?;
        self.finished = true;
        self.out
            .get_ref()
            .sync_all()
            .with_context(|| format!("syncing {}", self.path.display()))?;
        Ok(self.summary)
    }

    fn frame(&mut self, kind: Kind, raw: &[u8], compress: bool, count: u32) -> Result<()> {
        let mut payload = raw;
        let mut flags = 0;
        if compress {
            self.packed.clear();
            self.packed
                .reserve(zstd::zstd_safe::compress_bound(raw.len()));
            self.zstd
                .compress_to_buffer(raw, &mut self.packed)
                .context("compressing a chunk")?;
            if self.packed.len() < raw.len() {
                payload = &self.packed;
                flags = FLAG_ZSTD;
            }
        }
        let header = FrameHeader::new(kind, flags, payload, raw.len(), count).encode();
        let len = (header.len() + payload.len()) as u64;
        let res = self
            .out
            .write_all(&header)
            .and_then(|()| self.out.write_all(payload));
        res.with_context(|| format!("writing {}", self.path.display()))?;
        self.summary.bytes += len;
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> Result<()> {
        self.out
            .write_all(bytes)
            .with_context(|| format!("writing {}", self.path.display()))?;
        self.summary.bytes += bytes.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

impl Drop for TraceWriter {
    /// Dropped without `finish` (an error or panic upstream): keep what was
    /// buffered. The file then reads as truncated, with every event in it.
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.flush_chunk();
        }
    }
}
