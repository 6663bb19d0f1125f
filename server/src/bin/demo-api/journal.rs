//! An append-only, checksummed, fsync'd record log with group commit.
//!
//! Each record is one line: 16 hex digits of FNV-1a 64 over the payload, a
//! space, the payload (JSON, no newline), `\n`. A record counts only if its
//! line is complete and its checksum matches, so a torn write at the tail
//! (a crash mid-append) is detected at start-up and cut off, never parsed.
//!
//! Appends queue on the loop and go to the pool in batches: while one
//! write-and-fsync is under way, new records wait and then share the next
//! one. The queue is bounded; a full queue is an error the caller turns
//! into 503.

use std::cell::{Cell, RefCell};
use std::fs::OpenOptions;
use std::io::{self, BufRead, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use phaseloop_core::{Job, Lane, Loop, PoolError};

/// Records waiting for the next group commit, at most.
pub const MAX_PENDING: usize = 4096;

type Done = Box<dyn FnOnce(&Loop, io::Result<(u64, u32)>)>;

pub struct Journal {
    path: PathBuf,
    len: Cell<u64>,
    pending: RefCell<Vec<(Vec<u8>, Done)>>,
    in_flight: Cell<bool>,
    pub commits: Cell<u64>,
}

/// FNV-1a, 64 bits: enough to tell a torn or garbled line from a whole one.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn encode(payload: &[u8]) -> Vec<u8> {
    let mut line = format!("{:016x} ", checksum(payload)).into_bytes();
    line.extend_from_slice(payload);
    line.push(b'\n');
    line
}

/// The payload of a record line (without its `\n`) if the line is whole
/// and its checksum matches.
fn payload_of(line: &[u8]) -> Option<&[u8]> {
    let valid = line.len() > 17
        && line[16] == b' '
        && std::str::from_utf8(&line[..16])
            .ok()
            .and_then(|h| u64::from_str_radix(h, 16).ok())
            == Some(checksum(&line[17..]));
    valid.then(|| &line[17..])
}

/// Reads the journal at `path` a line at a time (one line in memory: a
/// journal can hold millions of records), handing each line that ends in
/// `\n` to `each(offset, length, line without its \n)` while it returns
/// true. Returns (where reading stopped, file length).
fn each_line(path: &Path, mut each: impl FnMut(u64, u32, &[u8]) -> bool) -> io::Result<(u64, u64)> {
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((0, 0)),
        Err(e) => return Err(e),
    };
    let file_len = file.metadata()?.len();
    let mut reader = io::BufReader::with_capacity(1 << 16, file);
    let mut line = Vec::new();
    let mut at = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        // The end, or a tail without its newline.
        let Some(body) = line.strip_suffix(b"\n") else {
            break;
        };
        if !each(at, n as u32, body) {
            break;
        }
        at += n as u64;
    }
    Ok((at, file_len))
}

/// Hands every whole, valid record of the journal at `path` to
/// `each(offset, line length, payload)`, in order, stopping at the first
/// line that is not one. Returns (bytes of valid records, file length).
pub fn scan(path: &Path, mut each: impl FnMut(u64, u32, &[u8])) -> io::Result<(u64, u64)> {
    each_line(path, |at, n, line| match payload_of(line) {
        Some(payload) => {
            each(at, n, payload);
            true
        }
        None => false,
    })
}

/// The payload of the first valid record `wanted` accepts (it sees each
/// line's payload part before its checksum is worked out: a look-up in a
/// journal of millions pays the checksum only for candidates). Lines that
/// are not valid records are passed over: another process may be appending.
pub fn find(path: &Path, wanted: impl Fn(&[u8]) -> bool) -> io::Result<Option<Vec<u8>>> {
    let mut found = None;
    each_line(path, |_, _, line| {
        if line.get(17..).is_some_and(&wanted) {
            found = payload_of(line).map(<[u8]>::to_vec);
        }
        found.is_none()
    })?;
    Ok(found)
}

/// [`scan`], then cuts the file after the last valid record (a torn or
/// corrupt tail from a crash mid-append).
fn recover(path: &Path, each: impl FnMut(u64, u32, &[u8])) -> io::Result<()> {
    let (valid, file_len) = scan(path, each)?;
    if valid < file_len {
        eprintln!(
            "demo-api: {}: ignoring {} bytes of torn or corrupt tail",
            path.display(),
            file_len - valid
        );
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(valid)?;
        file.sync_all()?;
    }
    Ok(())
}

impl Journal {
    /// Opens the journal at `path`, handing every record already in it to
    /// `each(offset, line length, payload)` and cutting a torn tail.
    pub fn open(path: PathBuf, each: impl FnMut(u64, u32, &[u8])) -> io::Result<Rc<Journal>> {
        recover(&path, each)?;
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Ok(Rc::new(Journal {
            path,
            len: Cell::new(len),
            pending: RefCell::new(Vec::new()),
            in_flight: Cell::new(false),
            commits: Cell::new(0),
        }))
    }

    pub fn pending(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Appends `payload`; `done` gets the record's (offset, length) once it
    /// is on stable storage. When the queue is full, `done` gets a
    /// `WouldBlock` error at once.
    pub fn append(
        self: &Rc<Self>,
        lp: &Loop,
        payload: &[u8],
        done: impl FnOnce(&Loop, io::Result<(u64, u32)>) + 'static,
    ) {
        if self.pending.borrow().len() >= MAX_PENDING {
            return done(
                lp,
                Err(io::Error::new(
                    io::ErrorKind::WouldBlock,
                    "journal queue is full",
                )),
            );
        }
        self.pending
            .borrow_mut()
            .push((encode(payload), Box::new(done)));
        if !self.in_flight.get() {
            self.commit(lp);
        }
    }

    fn commit(self: &Rc<Self>, lp: &Loop) {
        let batch = std::mem::take(&mut *self.pending.borrow_mut());
        if batch.is_empty() {
            return;
        }
        self.in_flight.set(true);
        let base = self.len.get();
        let mut bytes = Vec::with_capacity(batch.iter().map(|(l, _)| l.len()).sum());
        let mut spans = Vec::with_capacity(batch.len());
        let mut callbacks = Vec::with_capacity(batch.len());
        for (line, done) in batch {
            spans.push((base + bytes.len() as u64, line.len() as u32));
            bytes.extend_from_slice(&line);
            callbacks.push(done);
        }
        let path = self.path.clone();
        let journal = self.clone();
        let job = Job::new(Lane::Fs, move || {
            let write = || -> io::Result<()> {
                let mut file = OpenOptions::new().create(true).append(true).open(&path)?;
                file.write_all(&bytes)?;
                file.sync_data()
            };
            let result = write();
            let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(base);
            (result, len)
        });
        job.run(lp, move |lp, outcome| {
            journal.in_flight.set(false);
            let (result, len) = match outcome {
                Ok(written) => {
                    journal.commits.set(journal.commits.get() + 1);
                    written
                }
                // Nothing was written; the HTTP layer answers 503.
                Err(PoolError::QueueFull) => (
                    Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "thread pool queue is full",
                    )),
                    journal.len.get(),
                ),
                Err(e) => (Err(io::Error::other(e)), journal.len.get()),
            };
            journal.len.set(len);
            for (done, span) in callbacks.into_iter().zip(spans) {
                let r = match &result {
                    Ok(()) => Ok(span),
                    Err(e) => Err(io::Error::new(e.kind(), e.to_string())),
                };
                done(lp, r);
            }
            journal.commit(lp);
        });
    }
}

/// Reads one record's payload from the journal at `path` through the pool.
pub fn read_record(
    lp: &Loop,
    path: PathBuf,
    offset: u64,
    len: u32,
    done: impl FnOnce(&Loop, io::Result<Vec<u8>>) + 'static,
) {
    Job::new(Lane::Fs, move || -> io::Result<Vec<u8>> {
        let file = std::fs::File::open(path)?;
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, offset)?;
        if buf.len() < 18
            || buf.last() != Some(&b'\n')
            || u64::from_str_radix(std::str::from_utf8(&buf[..16]).unwrap_or(""), 16).ok()
                != Some(checksum(&buf[17..buf.len() - 1]))
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "record checksum mismatch",
            ));
        }
        buf.truncate(buf.len() - 1);
        buf.drain(..17);
        Ok(buf)
    })
    .run(lp, move |lp, r| match r {
        Ok(read) => done(lp, read),
        Err(PoolError::QueueFull) => done(
            lp,
            Err(io::Error::new(
                io::ErrorKind::WouldBlock,
                "thread pool queue is full",
            )),
        ),
        Err(e) => done(lp, Err(io::Error::other(e))),
    });
}
