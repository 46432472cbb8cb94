//! [`BodyWindow`]: a checkpoint body streamed from its file through one
//! reused buffer, decoded unit by unit as it arrives.
//!
//! Reading a checkpoint whole cost recovery a serial 0.3 s and 158K page
//! faults for a 645 MB file before the first chain was decoded
//! (ARCHITECTURE.md, "Recovery time"). Through the window, the file is read
//! in chunks of `chunk` bytes into one buffer, and the body's checksum is
//! computed over the bytes as they are read. It is checked only at the
//! end, after every chain was handed over: a body that fails it then is
//! damage like any other, and recovery drops what it installed of it
//! (`recovery.rs`, `read_and_install`). The decoder is the same one that
//! decodes a body held in memory ([`codec::decode_body`]), which is fuzzed
//! on bodies whose checksums were repaired, so unchecked bytes cannot
//! make it misbehave.
//!
//! A unit (the time index, a chain's flag, a chain, the tail) that does
//! not decode from what the window holds is retried once more of the body
//! is in it; the window doubles when the unit alone fills it. A unit that
//! still fails with the whole rest of the body in the window is damage. A
//! failed attempt has no effect but allocations it drops: only a decoded
//! unit's result leaves the window, and format 1's single unit of all
//! chains (whose callback would see a chain twice on a retry) is never
//! streamed.

use std::io;

use crate::durability::codec::{BodyUnits, Cursor, DecodeError};
use crate::durability::io::StorageReader;
use crate::types::Family;

/// A checkpoint body read from a file in chunks (see the module docs).
pub(crate) struct BodyWindow<'f> {
    file: &'f dyn StorageReader,
    /// File offset of the body's first byte.
    start: u64,
    /// Bytes of body.
    body_len: u64,
    /// Bytes first read into an empty window.
    chunk: usize,
    /// Body bytes `base..base + end`; `pos..end` not decoded yet.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    base: u64,
    /// The family of the key decoded last (keys share it while it stays).
    family: Option<Family>,
    /// Checksum of the body bytes read so far.
    crc: crc32fast::Hasher,
}

/// Why a streamed body did not decode.
#[derive(Debug)]
pub(crate) enum StreamError {
    /// The bytes are damaged: a unit did not decode, though the whole rest
    /// of the body was in the window.
    Decode(DecodeError),
    /// The file could not be read.
    Io(io::Error),
}

impl From<DecodeError> for StreamError {
    fn from(e: DecodeError) -> StreamError {
        StreamError::Decode(e)
    }
}

impl From<io::Error> for StreamError {
    fn from(e: io::Error) -> StreamError {
        StreamError::Io(e)
    }
}

impl<'f> BodyWindow<'f> {
    /// The `body_len` bytes of `file` from `start` on, read `chunk` bytes
    /// at a time (at least 1).
    pub(crate) fn new(
        file: &'f dyn StorageReader,
        start: u64,
        body_len: u64,
        chunk: usize,
    ) -> BodyWindow<'f> {
        BodyWindow {
            file,
            start,
            body_len,
            chunk: chunk.max(1),
            buf: Vec::new(),
            pos: 0,
            end: 0,
            base: 0,
            family: None,
            crc: crc32fast::Hasher::new(),
        }
    }

    /// True once every body byte was read into the window.
    fn read_all(&self) -> bool {
        self.base + self.end as u64 == self.body_len
    }

    /// Read more of the body: drop the decoded bytes, grow the window if
    /// what is left undecoded fills it, and fill it as far as the body
    /// goes. Only called before the body was read to its end.
    fn refill(&mut self) -> io::Result<()> {
        debug_assert!(!self.read_all());
        self.buf.copy_within(self.pos..self.end, 0);
        self.base += self.pos as u64;
        self.end -= self.pos;
        self.pos = 0;
        // Never past the body: what is left of it from `base` on is more
        // than `end` (not all read), so the window still grows.
        let body_left = usize::try_from(self.body_len - self.base).unwrap_or(usize::MAX);
        if self.end == self.buf.len() {
            let grown = (self.buf.len() * 2).max(self.chunk).min(body_left);
            self.buf.resize(grown, 0);
        }
        let fill = (self.buf.len() - self.end).min(body_left - self.end);
        let into = &mut self.buf[self.end..self.end + fill];
        self.file
            .read_exact_at(self.start + self.base + self.end as u64, into)?;
        self.crc.update(into);
        self.end += fill;
        Ok(())
    }

    /// Read the rest of the body, if any, and return the checksum of all
    /// of it.
    pub(crate) fn read_rest_crc(&mut self) -> io::Result<u32> {
        while !self.read_all() {
            self.pos = self.end;
            self.refill()?;
        }
        Ok(self.crc.clone().finalize())
    }

    fn error_at(&self, offset: usize, reason: &'static str) -> DecodeError {
        let at = self.base as usize + self.pos + offset;
        DecodeError { offset: at, reason }
    }
}

impl BodyUnits for BodyWindow<'_> {
    type Error = StreamError;

    fn unit<T>(
        &mut self,
        mut unit: impl FnMut(&mut Cursor<'_>) -> Result<T, DecodeError>,
    ) -> Result<T, StreamError> {
        loop {
            let mut c = Cursor::resume(&self.buf[self.pos..self.end], self.family.take());
            let decoded = unit(&mut c);
            let (read, family) = c.into_parts();
            // A family is only a hint for the next key (it is compared
            // before it is shared), so a failed attempt's is as good.
            self.family = family;
            match decoded {
                Ok(t) => {
                    self.pos += read;
                    return Ok(t);
                }
                Err(e) if self.read_all() => {
                    return Err(self.error_at(e.offset, e.reason).into());
                }
                Err(_) => self.refill()?,
            }
        }
    }

    fn finish(&mut self) -> Result<(), StreamError> {
        if self.pos != self.end || !self.read_all() {
            return Err(self.error_at(0, "trailing bytes after the payload").into());
        }
        Ok(())
    }

    fn offset(&self) -> usize {
        self.base as usize + self.pos
    }
}
