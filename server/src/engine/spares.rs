//! The spares of a server's loop: buffers and exchanges that idle
//! connections gave back, lent to the next connection with work. So an
//! idle connection holds neither, and a busy one does not allocate them
//! per request. Bounded: past [`SPARES_MAX`] of a kind, what is given back
//! is freed.

use crate::engine::exchange::Exchange;
use crate::engine::read_buffer::READ_BUFFER_SIZE;

/// Spares kept of each kind; beyond this they are freed.
const SPARES_MAX: usize = 256;
/// Write buffers that grew past this are freed rather than kept.
const KEPT_CAPACITY_MAX: usize = 64 * 1024;
/// A new write buffer's capacity: one read's worth of responses.
const WRITE_BUFFER_CAPACITY: usize = 8 * 1024;

/// The spare buffers and exchanges of one server on one loop.
pub(crate) struct Spares {
    write: Vec<Vec<u8>>,
    read: Vec<Vec<u8>>,
    /// Boxed: a connection holds its exchange by a pointer, and a spare
    /// changes hands without moving its few hundred bytes.
    #[allow(clippy::vec_box)]
    exchanges: Vec<Box<Exchange>>,
}

impl Spares {
    pub fn new() -> Self {
        Spares {
            write: Vec::new(),
            read: Vec::new(),
            exchanges: Vec::new(),
        }
    }

    /// A write buffer: empty, with capacity.
    pub fn take(&mut self) -> Vec<u8> {
        self.write
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(WRITE_BUFFER_CAPACITY))
    }

    pub fn give(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() == 0
            || buf.capacity() > KEPT_CAPACITY_MAX
            || self.write.len() >= SPARES_MAX
        {
            return;
        }
        buf.clear();
        self.write.push(buf);
    }

    /// A read buffer: initialised storage (see `ReadBuffer`), kept as is
    /// between uses so it is never zeroed twice.
    pub fn take_read(&mut self) -> Vec<u8> {
        self.read.pop().unwrap_or_default()
    }

    pub fn give_read(&mut self, buf: Vec<u8>) {
        if buf.len() == READ_BUFFER_SIZE && self.read.len() < SPARES_MAX {
            self.read.push(buf);
        }
    }

    /// An exchange as [`Exchange::sleep`] leaves one (or a new one).
    #[inline(always)]
    pub fn take_exchange(&mut self) -> Box<Exchange> {
        self.exchanges.pop().unwrap_or_else(new_exchange)
    }

    /// Keeps an emptied exchange ([`Exchange::sleep`]) for the next
    /// connection that wakes.
    #[inline(always)]
    pub fn give_exchange(&mut self, ex: Box<Exchange>) {
        if self.exchanges.len() < SPARES_MAX {
            self.exchanges.push(ex);
        } else {
            drop_exchange(ex);
        }
    }
}

/// A new exchange, when the spares have none. Out of line: rare.
#[cold]
#[inline(never)]
fn new_exchange() -> Box<Exchange> {
    Box::new(Exchange::new())
}

/// Frees an exchange the spares have no room for. Out of line: rare, and
/// its drop code would otherwise sit in every caller.
#[cold]
#[inline(never)]
fn drop_exchange(ex: Box<Exchange>) {
    drop(ex);
}
