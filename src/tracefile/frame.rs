//! Framing: every block of the file after the preamble is a frame with a
//! fixed 28-byte header, checksummed on its own, followed by its payload,
//! checksummed separately. A reader that meets a damaged header scans forward
//! for the next sync marker; one that meets a damaged payload skips exactly
//! that frame, knowing from the intact header how many events it loses.

/// File preamble: magic (8 bytes; the high bit and the newline catch text-mode
/// mangling), format version (u16 LE), two reserved bytes.
pub const MAGIC: [u8; 8] = *b"\x89utrace\n";
pub const PREAMBLE_LEN: usize = 12;

/// Starts every frame, so a reader can resynchronise after damage.
pub const SYNC: [u8; 4] = [0xF3, b'U', b'T', 0x1E];
pub const HEADER_LEN: usize = 28;

/// Largest payload a frame may claim (stored or raw): bounds what a reader
/// allocates for a hostile or damaged length.
pub const MAX_PAYLOAD: u32 = 256 << 20;

pub const FLAG_ZSTD: u8 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Run information: versions, clock, command, pid, start times.
    Header,
    /// Modules and functions.
    Table,
    /// A chunk of events.
    Chunk,
    /// Lost events, end time, counts: written last.
    Trailer,
    /// `--io`: the I/O table counted in BPF, just before the trailer (format 4).
    Io,
}

impl Kind {
    fn byte(self) -> u8 {
        match self {
            Kind::Header => b'H',
            Kind::Table => b'T',
            Kind::Chunk => b'C',
            Kind::Trailer => b'E',
            Kind::Io => b'I',
        }
    }

    fn from_byte(b: u8) -> Option<Kind> {
        Some(match b {
            b'H' => Kind::Header,
            b'T' => Kind::Table,
            b'C' => Kind::Chunk,
            b'E' => Kind::Trailer,
            b'I' => Kind::Io,
            _ => return None,
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHeader {
    pub kind: Kind,
    pub flags: u8,
    /// Bytes stored after the header.
    pub payload_len: u32,
    /// Bytes after decompression (= payload_len when stored raw).
    pub raw_len: u32,
    /// Events in a chunk; 0 for other kinds.
    pub count: u32,
    pub payload_crc: u32,
}

impl FrameHeader {
    pub fn new(kind: Kind, flags: u8, payload: &[u8], raw_len: usize, count: u32) -> Self {
        FrameHeader {
            kind,
            flags,
            payload_len: payload.len() as u32,
            raw_len: raw_len as u32,
            count,
            payload_crc: crc32fast::hash(payload),
        }
    }

    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut h = [0u8; HEADER_LEN];
        h[0..4].copy_from_slice(&SYNC);
        h[4] = self.kind.byte();
        h[5] = self.flags;
        h[8..12].copy_from_slice(&self.payload_len.to_le_bytes());
        h[12..16].copy_from_slice(&self.raw_len.to_le_bytes());
        h[16..20].copy_from_slice(&self.count.to_le_bytes());
        h[20..24].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32fast::hash(&h[..24]);
        h[24..28].copy_from_slice(&crc.to_le_bytes());
        h
    }

    /// The header in `h`, or `None` when it is not an intact frame header.
    pub fn parse(h: &[u8; HEADER_LEN]) -> Option<FrameHeader> {
        let u32_at = |i: usize| u32::from_le_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        if h[0..4] != SYNC || crc32fast::hash(&h[..24]) != u32_at(24) {
            return None;
        }
        let header = FrameHeader {
            kind: Kind::from_byte(h[4])?,
            flags: h[5],
            payload_len: u32_at(8),
            raw_len: u32_at(12),
            count: u32_at(16),
            payload_crc: u32_at(20),
        };
        let sane = header.payload_len <= MAX_PAYLOAD
            && header.raw_len <= MAX_PAYLOAD
            && (header.flags & FLAG_ZSTD != 0 || header.raw_len == header.payload_len);
        sane.then_some(header)
    }

    pub fn payload_ok(&self, payload: &[u8]) -> bool {
        crc32fast::hash(payload) == self.payload_crc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_and_rejects_any_flipped_bit() {
        let h = FrameHeader::new(Kind::Chunk, FLAG_ZSTD, b"payload", 100, 42);
        let bytes = h.encode();
        assert_eq!(FrameHeader::parse(&bytes), Some(h));
        for i in 0..HEADER_LEN * 8 {
            let mut b = bytes;
            b[i / 8] ^= 1 << (i % 8);
            assert_eq!(FrameHeader::parse(&b), None, "bit {i}");
        }
    }
}
