//! An append-only, checksummed, fsync'd record log with group commit.
//!
//! Each record is one line: 16 hex digits of FNV-1a 64 over the payload, a
//! space, the payload (JSON, no newline), `\n`. A record counts only if its
//! line is complete and its checksum matches, so a torn write (a crash
//! mid-append) is detected at start-up, never parsed.
//!
//! Appends queue on the loop and go to the pool in batches: while one
//! write-and-fsync is under way, new records wait and then share the next
//! one. The queue is bounded; a full queue is an error the caller turns
//! into 503.
//!
//! # Contract
//! - The file holds exactly the acknowledged records. A batch is written
//!   at the offset where the acknowledged ones end; if the write or its
//!   fsync fails (a full disk, an I/O error, a short write), the file is
//!   cut back to that offset before anyone is answered, so no record is
//!   ever appended after a torn one.
//! - If the file cannot be cut back, the journal is damaged: the next batch
//!   first tries the repair again, and its records are refused
//!   ([`AppendError::Damaged`], 503) for as long as it fails.
//! - Recovery never drops a valid record: lines that are not records are
//!   passed over (a record glued after a torn one is found inside its
//!   line), and only what follows the last valid record is cut.

use std::cell::{Cell, RefCell};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;

use phaseloop_core::{Job, Lane, Loop, PoolError};

/// Records waiting for the next group commit, at most.
pub const MAX_PENDING: usize = 4096;

/// How a batch's bytes reach the file at an offset: `write_all_at` in the
/// server; tests put a failing one in its place.
pub type WriteAt = Arc<dyn Fn(&File, &[u8], u64) -> io::Result<()> + Send + Sync>;

/// Why an append was not acknowledged.
#[derive(Debug)]
pub enum AppendError {
    /// A queue (the journal's or the pool's) is full: retry.
    Busy(&'static str),
    /// The write failed and the journal was put back as it was.
    Failed(io::Error),
    /// A failed write could not be undone: nothing is appended until a
    /// repair succeeds.
    Damaged(io::Error),
}

impl std::fmt::Display for AppendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AppendError::Busy(why) => f.write_str(why),
            AppendError::Failed(e) => write!(f, "write failed: {e}"),
            AppendError::Damaged(e) => write!(f, "journal needs repair: {e}"),
        }
    }
}

type Done = Box<dyn FnOnce(&Loop, Result<(u64, u32), AppendError>)>;

pub struct Journal {
    path: PathBuf,
    /// Where the acknowledged records end.
    len: Cell<u64>,
    pending: RefCell<Vec<(Vec<u8>, Done)>>,
    in_flight: Cell<bool>,
    write_at: WriteAt,
    pub commits: Cell<u64>,
    /// Batches that failed (and were undone, or found the journal damaged).
    pub failures: Cell<u64>,
    /// The last batch could not be undone.
    pub damaged: Cell<bool>,
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

/// A valid record at the end of a line that is not one as a whole: the
/// record a torn write's remains were glued to. Returns where it starts.
fn record_inside(line: &[u8]) -> Option<usize> {
    (1..line.len().saturating_sub(17)).find(|&at| {
        line[at + 16] == b' '
            && line[at..at + 16].iter().all(u8::is_ascii_hexdigit)
            && payload_of(&line[at..]).is_some()
    })
}

/// What reading a journal found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Scanned {
    /// Where the last valid record ends: what follows is a torn tail.
    pub valid_end: u64,
    /// Where reading stopped: the end of the last complete line.
    pub read_end: u64,
    /// The file's length.
    pub file_len: u64,
    /// Complete lines that held no valid record.
    pub skipped: u64,
}

/// Hands every valid record of the journal at `path` from byte `from` on
/// to `each(offset, line length, payload)`, in order, passing over lines
/// that are not records (one line in memory at a time: a journal can hold
/// millions). A missing file reads as empty.
pub fn scan_from(
    path: &Path,
    from: u64,
    mut each: impl FnMut(u64, u32, &[u8]),
) -> io::Result<Scanned> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Ok(Scanned {
                valid_end: from,
                read_end: from,
                ..Scanned::default()
            })
        }
        Err(e) => return Err(e),
    };
    let file_len = file.metadata()?.len();
    let mut reader = io::BufReader::with_capacity(1 << 16, file);
    io::Seek::seek(&mut reader, io::SeekFrom::Start(from))?;
    let mut line = Vec::new();
    let mut found = Scanned {
        valid_end: from,
        read_end: from,
        file_len,
        skipped: 0,
    };
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        // The end, or a tail without its newline (torn, or being written).
        let Some(body) = line.strip_suffix(b"\n") else {
            break;
        };
        let at = found.read_end;
        let start = match payload_of(body) {
            Some(_) => Some(0),
            None => record_inside(body),
        };
        match start {
            Some(start) => {
                each(at + start as u64, (n - start) as u32, &body[start + 17..]);
                found.valid_end = at + n as u64;
                if start > 0 {
                    found.skipped += 1;
                }
            }
            None => found.skipped += 1,
        }
        found.read_end = at + n as u64;
    }
    Ok(found)
}

/// [`scan_from`] the start.
pub fn scan(path: &Path, each: impl FnMut(u64, u32, &[u8])) -> io::Result<Scanned> {
    scan_from(path, 0, each)
}

/// [`scan`], then cuts the file after the last valid record (a torn or
/// corrupt tail from a crash mid-append). Lines between valid records
/// that are not records stay, passed over at every start.
fn recover(path: &Path, each: impl FnMut(u64, u32, &[u8])) -> io::Result<u64> {
    let found = scan(path, each)?;
    if found.skipped > 0 {
        phaseloop_core::report!(
            error,
            {},
            "demo-api: {}: passed over {} damaged lines between records",
            path.display(),
            found.skipped
        );
    }
    if found.valid_end < found.file_len {
        phaseloop_core::report!(
            error,
            {},
            "demo-api: {}: cutting {} bytes of torn or corrupt tail",
            path.display(),
            found.file_len - found.valid_end
        );
        let file = OpenOptions::new().write(true).open(path)?;
        file.set_len(found.valid_end)?;
        file.sync_all()?;
    }
    Ok(found.valid_end)
}

/// What a batch's job did to the file.
enum Written {
    Ok,
    /// Failed; the file is back where the acknowledged records end.
    Undone(io::Error),
    /// Failed, and the file could not be put back (or was found shorter
    /// than the acknowledged records).
    Damaged(io::Error),
}

/// Cuts whatever follows the acknowledged records (`len`): the remains of
/// a failed batch. A file shorter than `len` has lost acknowledged records
/// and is damaged beyond what a cut can mend.
fn cut_back(file: &File, len: u64) -> io::Result<()> {
    let actual = file.metadata()?.len();
    if actual < len {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the journal is {actual} bytes, shorter than its {len} acknowledged"),
        ));
    }
    if actual > len {
        file.set_len(len)?;
        file.sync_data()?;
    }
    Ok(())
}

/// The pool's part of a batch: put the file back to `base` if a failed
/// batch left bytes after it, write the batch there, fsync; on failure,
/// cut back to `base`.
fn write_batch(path: &Path, base: u64, bytes: &[u8], write_at: &WriteAt) -> Written {
    // Not truncated: the acknowledged records stay; only what follows
    // them is cut (`cut_back`).
    let file = match OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
    {
        Ok(f) => f,
        Err(e) => return Written::Undone(e),
    };
    if let Err(e) = cut_back(&file, base) {
        return Written::Damaged(e);
    }
    match write_at(&file, bytes, base).and_then(|()| file.sync_data()) {
        Ok(()) => Written::Ok,
        Err(e) => match cut_back(&file, base) {
            Ok(()) => Written::Undone(e),
            Err(cut) => Written::Damaged(io::Error::new(
                e.kind(),
                format!("{e}; undoing it failed: {cut}"),
            )),
        },
    }
}

impl Journal {
    /// Opens the journal at `path`, handing every record already in it to
    /// `each(offset, line length, payload)` and cutting a torn tail.
    pub fn open(path: PathBuf, each: impl FnMut(u64, u32, &[u8])) -> io::Result<Rc<Journal>> {
        let write_at: WriteAt =
            Arc::new(|file: &File, bytes: &[u8], at: u64| file.write_all_at(bytes, at));
        Self::open_with(path, each, write_at)
    }

    /// [`Journal::open`] with the batch writes done by `write_at`.
    pub fn open_with(
        path: PathBuf,
        each: impl FnMut(u64, u32, &[u8]),
        write_at: WriteAt,
    ) -> io::Result<Rc<Journal>> {
        let len = recover(&path, each)?;
        Ok(Rc::new(Journal {
            path,
            len: Cell::new(len),
            pending: RefCell::new(Vec::new()),
            in_flight: Cell::new(false),
            write_at,
            commits: Cell::new(0),
            failures: Cell::new(0),
            damaged: Cell::new(false),
        }))
    }

    pub fn pending(&self) -> usize {
        self.pending.borrow().len()
    }

    /// Appends `payload`; `done` gets the record's (offset, length) once it
    /// is on stable storage. When the queue is full, `done` gets
    /// [`AppendError::Busy`] at once.
    pub fn append(
        self: &Rc<Self>,
        lp: &Loop,
        payload: &[u8],
        done: impl FnOnce(&Loop, Result<(u64, u32), AppendError>) + 'static,
    ) {
        if self.pending.borrow().len() >= MAX_PENDING {
            return done(lp, Err(AppendError::Busy("journal queue is full")));
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
        let size = bytes.len() as u64;
        let (path, write_at) = (self.path.clone(), self.write_at.clone());
        let journal = self.clone();
        let job = Job::new(Lane::Fs, move || {
            write_batch(&path, base, &bytes, &write_at)
        });
        job.run(lp, move |lp, outcome| {
            journal.in_flight.set(false);
            let written = match outcome {
                Ok(written) => written,
                // Nothing was written.
                Err(PoolError::QueueFull) => {
                    for done in callbacks {
                        done(lp, Err(AppendError::Busy("thread pool queue is full")));
                    }
                    return journal.commit(lp);
                }
                // The job died before or while writing: the next batch
                // cuts whatever it left before writing its own.
                Err(e) => Written::Undone(io::Error::other(e)),
            };
            let error = match written {
                Written::Ok => {
                    journal.commits.set(journal.commits.get() + 1);
                    journal.damaged.set(false);
                    journal.len.set(base + size);
                    None
                }
                Written::Undone(e) => {
                    journal.damaged.set(false);
                    Some((e, false))
                }
                Written::Damaged(e) => {
                    journal.damaged.set(true);
                    Some((e, true))
                }
            };
            if let Some((e, damaged)) = &error {
                journal.failures.set(journal.failures.get() + 1);
                phaseloop_core::report!(
                    error,
                    {},
                    "demo-api: {}: a batch of {} records was not saved ({e}){}",
                    journal.path.display(),
                    callbacks.len(),
                    if *damaged {
                        "; refusing appends until the journal is repaired"
                    } else {
                        ""
                    }
                );
            }
            for (done, span) in callbacks.into_iter().zip(spans) {
                let r = match &error {
                    None => Ok(span),
                    Some((e, false)) => {
                        Err(AppendError::Failed(io::Error::new(e.kind(), e.to_string())))
                    }
                    Some((e, true)) => Err(AppendError::Damaged(io::Error::new(
                        e.kind(),
                        e.to_string(),
                    ))),
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn temp_path(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("phaseloop-journal-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("orders.log")
    }

    /// A writer whose `fail`-th batch (from 1) writes `keep(len)` of its
    /// bytes and then fails with `error`; every other batch is written.
    fn failing_on(fail: usize, keep: fn(usize) -> usize, error: fn() -> io::Error) -> WriteAt {
        let batches = Arc::new(AtomicUsize::new(0));
        Arc::new(move |file: &File, bytes: &[u8], at: u64| {
            if batches.fetch_add(1, Ordering::SeqCst) + 1 == fail {
                file.write_all_at(&bytes[..keep(bytes.len())], at)?;
                return Err(error());
            }
            file.write_all_at(bytes, at)
        })
    }

    type Outcomes = Rc<RefCell<Vec<Result<(u64, u32), String>>>>;

    /// Appends `payloads` one batch each, in order; returns what each got.
    fn append_each(
        journal: &Rc<Journal>,
        payloads: Vec<String>,
    ) -> Vec<Result<(u64, u32), String>> {
        fn next(lp: &Loop, journal: Rc<Journal>, mut rest: Vec<String>, out: Outcomes) {
            if rest.is_empty() {
                return;
            }
            let payload = rest.remove(0);
            let j = journal.clone();
            journal.append(lp, payload.as_bytes(), move |lp, r| {
                out.borrow_mut().push(r.map_err(|e| e.to_string()));
                next(lp, j, rest, out);
            });
        }
        let lp = Loop::builder().block_warnings(false).build().unwrap();
        let out = Rc::new(RefCell::new(Vec::new()));
        let (j, o) = (journal.clone(), out.clone());
        lp.run_main(move |lp| next(lp, j, payloads, o));
        let results = out.borrow().clone();
        results
    }

    fn records_of(path: &Path) -> Vec<(u64, String)> {
        let mut found = Vec::new();
        scan(path, |offset, _, payload| {
            found.push((offset, String::from_utf8(payload.to_vec()).unwrap()))
        })
        .unwrap();
        found
    }

    /// Each fault on the third of six appends: the third is refused, every
    /// other one is acknowledged, and a restart finds exactly those, at the
    /// offsets they were acknowledged at.
    #[test]
    fn a_failed_append_leaves_the_journal_as_it_was() {
        type Fault = (&'static str, fn(usize) -> usize, fn() -> io::Error);
        let faults: [Fault; 4] = [
            (
                "enospc",
                |_| 0,
                || io::Error::from_raw_os_error(libc::ENOSPC),
            ),
            (
                "eio-half",
                |n| n / 2,
                || io::Error::from_raw_os_error(libc::EIO),
            ),
            (
                "short-write",
                |n| n - 1,
                || io::Error::from(io::ErrorKind::WriteZero),
            ),
            // The whole batch written, then the fsync fails.
            ("fsync", |n| n, || io::Error::from_raw_os_error(libc::EIO)),
        ];
        for (name, keep, error) in faults {
            let path = temp_path(name);
            let journal =
                Journal::open_with(path.clone(), |_, _, _| {}, failing_on(3, keep, error)).unwrap();
            let payloads: Vec<String> = (1..=6).map(|i| format!(r#"{{"id":{i}}}"#)).collect();
            let results = append_each(&journal, payloads.clone());
            assert_eq!(results.len(), 6, "{name}");
            assert!(
                results[2]
                    .as_ref()
                    .is_err_and(|e| e.starts_with("write failed")),
                "{name}: {results:?}"
            );
            assert!(!journal.damaged.get(), "{name}");
            let acked: Vec<(u64, String)> = results
                .iter()
                .zip(&payloads)
                .filter_map(|(r, p)| r.as_ref().ok().map(|(offset, _)| (*offset, p.clone())))
                .collect();
            assert_eq!(acked.len(), 5, "{name}");
            assert_eq!(
                records_of(&path),
                acked,
                "{name}: the file holds exactly the acknowledged records"
            );
            // A restart recovers them all and cuts nothing.
            let mut recovered = Vec::new();
            Journal::open(path.clone(), |offset, _, p| {
                recovered.push((offset, String::from_utf8(p.to_vec()).unwrap()))
            })
            .unwrap();
            assert_eq!(recovered, acked, "{name}");
            let _ = std::fs::remove_dir_all(path.parent().unwrap());
        }
    }

    /// A journal that lost acknowledged bytes under it cannot be mended by a
    /// cut: appends are refused as damaged, and nothing is written after
    /// the damage.
    #[test]
    fn a_journal_that_cannot_be_mended_refuses_appends() {
        let path = temp_path("damaged");
        let journal = Journal::open(path.clone(), |_, _, _| {}).unwrap();
        let first = append_each(&journal, vec![r#"{"id":1}"#.into(), r#"{"id":2}"#.into()]);
        assert!(first.iter().all(Result::is_ok));
        let len = std::fs::metadata(&path).unwrap().len();
        // Something outside cuts the file into its second record.
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let later = append_each(&journal, vec![r#"{"id":3}"#.into()]);
        assert!(
            later[0]
                .as_ref()
                .is_err_and(|e| e.starts_with("journal needs repair")),
            "{later:?}"
        );
        assert!(journal.damaged.get());
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            len - 3,
            "nothing appended after the damage"
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }

    /// Recovery keeps every valid record: a torn record glued to the next
    /// one, and a garbage line between records, are passed over; only the
    /// tail after the last valid record is cut.
    #[test]
    fn recovery_never_drops_a_record_after_a_bad_one() {
        let path = temp_path("recovery");
        let mut bytes = encode(br#"{"id":1}"#);
        let torn = encode(br#"{"id":2,"long":"xxxxxxxxxxxxxxxx"}"#);
        bytes.extend_from_slice(&torn[..torn.len() / 2]);
        bytes.extend_from_slice(&encode(br#"{"id":3}"#));
        bytes.extend_from_slice(b"0123456789abcdef {\"id\":4} garbage\n");
        bytes.extend_from_slice(&encode(br#"{"id":5}"#));
        let whole = bytes.len() as u64;
        bytes.extend_from_slice(&torn[..10]);
        std::fs::write(&path, &bytes).unwrap();
        let mut ids = Vec::new();
        let journal = Journal::open(path.clone(), |_, _, p| {
            ids.push(String::from_utf8(p.to_vec()).unwrap())
        })
        .unwrap();
        assert_eq!(ids, [r#"{"id":1}"#, r#"{"id":3}"#, r#"{"id":5}"#]);
        assert_eq!(
            std::fs::metadata(&path).unwrap().len(),
            whole,
            "only the torn tail is cut"
        );
        // Appends go after the last valid record, and a restart finds them.
        assert!(append_each(&journal, vec![r#"{"id":6}"#.into()])[0].is_ok());
        let again: Vec<String> = records_of(&path).into_iter().map(|(_, p)| p).collect();
        assert_eq!(
            again,
            [r#"{"id":1}"#, r#"{"id":3}"#, r#"{"id":5}"#, r#"{"id":6}"#]
        );
        let _ = std::fs::remove_dir_all(path.parent().unwrap());
    }
}
