//! A connection's input buffer: bytes received and not yet parsed.
//!
//! The storage is initialised once (when first allocated) and reused as is:
//! reads go straight into its free tail, parsing advances a start offset,
//! and the unparsed rest moves to the front only when the tail runs short.
//! So a pipelined batch costs no per-request `memmove` and a read costs no
//! `memset`.

use std::io::{self, Read};

/// Size of a fresh buffer: one read takes up to this much.
pub const READ_BUFFER_SIZE: usize = 8 * 1024;

/// Input bytes at `buf[start..end]`; `buf.len()` is its full, initialised size.
#[derive(Debug, Default)]
pub struct ReadBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl ReadBuffer {
    /// The unparsed bytes.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// The unparsed bytes, to change in place (a WebSocket unmasks them).
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.start..self.end]
    }

    /// Number of unparsed bytes.
    pub fn len(&self) -> usize {
        self.end - self.start
    }

    /// No unparsed bytes.
    pub fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// Marks `n` bytes as parsed.
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
    }

    /// Drops all unparsed bytes.
    pub fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    /// Memory held.
    pub fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// True when storage is attached.
    pub fn has_storage(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Attaches storage (an initialised buffer from the spares).
    pub fn attach(&mut self, storage: Vec<u8>) {
        debug_assert!(self.buf.is_empty());
        self.buf = storage;
        if self.buf.is_empty() {
            self.buf.resize(READ_BUFFER_SIZE, 0);
        }
        self.start = 0;
        self.end = 0;
    }

    /// Detaches the storage if nothing is buffered (to return it to the spares).
    pub fn detach_if_empty(&mut self) -> Option<Vec<u8>> {
        if self.is_empty() && !self.buf.is_empty() {
            self.start = 0;
            self.end = 0;
            Some(std::mem::take(&mut self.buf))
        } else {
            None
        }
    }

    /// Reads once from `src` into the free tail, first making room: moves
    /// the unparsed bytes to the front, or grows the storage (at most to
    /// `max` bytes; the parser's limits refuse a request long before).
    /// Returns the bytes read and whether they filled the room offered (if
    /// not, a socket had no more to give at that moment).
    pub fn read_from(&mut self, src: &mut impl Read, max: usize) -> io::Result<(usize, bool)> {
        if self.buf.len() - self.end < READ_BUFFER_SIZE / 4 {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            }
            if self.buf.len() - self.end < READ_BUFFER_SIZE / 4 && self.buf.len() < max {
                let grown = (self.buf.len() * 2).min(max.max(READ_BUFFER_SIZE));
                self.buf.resize(grown, 0);
            }
        }
        if self.end == self.buf.len() {
            return Err(io::Error::new(
                io::ErrorKind::OutOfMemory,
                "input buffer limit reached",
            ));
        }
        let room = self.buf.len() - self.end;
        let n = src.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok((n, n == room))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_consumes_compacts_and_grows() {
        let mut b = ReadBuffer::default();
        b.attach(Vec::new());
        let mut src: &[u8] = &[7u8; 20_000];
        let (n, filled) = b.read_from(&mut src, 64 * 1024).unwrap();
        assert_eq!(n, READ_BUFFER_SIZE);
        assert!(filled);
        b.consume(100);
        assert_eq!(b.len(), READ_BUFFER_SIZE - 100);
        // Full tail: compacts, then grows, then reads.
        let (n, _) = b.read_from(&mut src, 64 * 1024).unwrap();
        assert!(n > 0);
        assert_eq!(b.len(), READ_BUFFER_SIZE - 100 + n);
        // The source runs dry: a short read says so.
        let mut last: &[u8] = &[1u8; 10];
        let (n, filled) = b.read_from(&mut last, 64 * 1024).unwrap();
        assert_eq!((n, filled), (10, false));
        b.consume(b.len());
        assert!(b.is_empty());
        assert!(b.detach_if_empty().is_some());
        assert!(!b.has_storage());
    }
}
