//! Static files: `ServeDir` answers a `/*` route from a directory,
//! `ServeFile` one path with one file. Everything touching the disk runs on
//! the pool's fs lane; the loop only routes, compares validators and
//! writes.
//!
//! - the type from the file name (`mime_guess`);
//! - `ETag` (size and modification time) and `Last-Modified`;
//!   `If-None-Match` and `If-Modified-Since` answered `304`;
//! - one `Range` answered `206` (`Content-Range`), one past the end `416`;
//!   several ranges get the whole file;
//! - HEAD (the GET route answers it, without the body);
//! - `..`, hidden names and symbolic links that lead outside the root are
//!   refused (404: nothing there to be seen);
//! - files over 256 KiB are streamed in 64 KiB chunks, each read only
//!   once the client has taken most of the one before (backpressure).

use std::cell::RefCell;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

use phaseloop_core::{Job, Lane, Loop, PoolError};

use crate::api::responder::{BodyWriter, Responder};
use crate::engine::exchange::StreamError;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::{format_imf_fixdate, parse_imf_fixdate, Error};

/// Files up to this size are read whole and sent with a length; larger
/// ones are streamed.
pub(crate) const WHOLE_MAX: u64 = 256 * 1024;
/// The piece a streamed file is read and sent in.
pub(crate) const CHUNK: u64 = 64 * 1024;

/// Answers a `/*` route's requests with files under a directory:
/// `.route_handler(Method::Get, "/static/*", ServeDir::new("public"))`.
/// A directory's `index.html` answers for it.
#[derive(Debug, Clone)]
pub struct ServeDir {
    root: Arc<PathBuf>,
    whole_max: u64,
}

/// Answers every request with one file (`.route_handler(Method::Get,
/// "/favicon.ico", ServeFile::new("public/favicon.ico"))`).
#[derive(Debug, Clone)]
pub struct ServeFile {
    path: Arc<PathBuf>,
}

impl ServeDir {
    /// Files under `root`.
    pub fn new(root: impl Into<PathBuf>) -> ServeDir {
        ServeDir {
            root: Arc::new(root.into()),
            whole_max: WHOLE_MAX,
        }
    }

    /// Streams files (and ranges) larger than `bytes` instead of reading
    /// them whole (default 256 KiB).
    pub fn stream_above(mut self, bytes: u64) -> ServeDir {
        self.whole_max = bytes;
        self
    }

    /// Answers `req` with the file at `relative` (percent-encoded, `/`
    /// separated) under the root: for a handler that picks the path
    /// itself (a route parameter, say).
    pub fn serve(&self, lp: &Loop, req: Request, res: Responder, relative: &str) {
        match self::relative(relative) {
            Some(rel) => answer(lp, req, res, self.root.clone(), rel, self.whole_max),
            None => res.send_error(&req, Error::not_found("no such file")),
        }
    }
}

impl ServeFile {
    /// The file at `path`.
    pub fn new(path: impl Into<PathBuf>) -> ServeFile {
        ServeFile {
            path: Arc::new(path.into()),
        }
    }
}

/// What the pool found for a request: the file, canonical, and its stat.
struct Found {
    path: PathBuf,
    len: u64,
    modified: u64,
    modified_ns: u128,
}

/// The relative path a wildcard names, if it names one safely: its
/// segments percent-decoded, none empty-but-last, `.`, `..`, hidden, or
/// holding a separator or NUL.
fn relative(wildcard: &str) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for raw in wildcard.split('/') {
        if raw.is_empty() {
            continue;
        }
        let seg = crate::http::request::percent_decode(raw, false);
        if seg.starts_with('.') || seg.contains(['/', '\\', '\0']) {
            return None;
        }
        out.push(&*seg);
    }
    // Belt and braces: only plain names may remain.
    out.components()
        .all(|c| matches!(c, Component::Normal(_)))
        .then_some(out)
}

/// On the pool: the file `rel` names under `root` (a directory's
/// `index.html`), if it is there and, symbolic links followed, still
/// under the root.
fn find(root: &Path, rel: &Path) -> std::io::Result<Option<Found>> {
    let root = root.canonicalize()?;
    let mut path = match root.join(rel).canonicalize() {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !path.starts_with(&root) {
        return Ok(None); // a link out of the root
    }
    let mut meta = std::fs::metadata(&path)?;
    if meta.is_dir() {
        path.push("index.html");
        match std::fs::metadata(&path) {
            Ok(m) if m.is_file() => meta = m,
            _ => return Ok(None),
        }
    }
    if !meta.is_file() {
        return Ok(None);
    }
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .unwrap_or_default();
    Ok(Some(Found {
        path,
        len: meta.len(),
        modified: modified.as_secs(),
        modified_ns: modified.as_nanos(),
    }))
}

/// `bytes` of the file from `offset`, on the pool.
fn read_at(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path)?;
    let mut buf = vec![0; len as usize];
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64)? {
            0 => break, // shortened meanwhile
            n => got += n,
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// A request's single byte range over a file of `len` bytes:
/// `Ok(None)` for none (or several: the whole file), `Err(())` when
/// unsatisfiable.
fn range(req: &Request, len: u64) -> Result<Option<(u64, u64)>, ()> {
    let Some(value) = req.header("range") else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None); // another unit: ignored (RFC 9110 §14.2)
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let (first, last) = spec.split_once('-').ok_or(())?;
    let (first, last) = (first.trim(), last.trim());
    let (start, end) = if first.is_empty() {
        let n: u64 = last.parse().map_err(|_| ())?;
        if n == 0 {
            return Err(());
        }
        (len.saturating_sub(n), len.checked_sub(1).ok_or(())?)
    } else {
        let start: u64 = first.parse().map_err(|_| ())?;
        let end = if last.is_empty() {
            len.saturating_sub(1)
        } else {
            last.parse::<u64>()
                .map_err(|_| ())?
                .min(len.saturating_sub(1))
        };
        (start, end)
    };
    if start >= len || start > end {
        return Err(());
    }
    Ok(Some((start, end)))
}

/// Whether the client's cached copy is this one (RFC 9110 §13.1.2, §13.1.3).
fn not_modified(req: &Request, etag: &str, modified: u64) -> bool {
    if let Some(tags) = req.header("if-none-match") {
        return tags.split(',').any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag.trim_start_matches("W/")
        });
    }
    req.header("if-modified-since")
        .and_then(|v| parse_imf_fixdate(v.as_bytes()))
        .is_some_and(|since| modified <= since)
}

fn answer(
    lp: &Loop,
    req: Request,
    res: Responder,
    root: Arc<PathBuf>,
    rel: PathBuf,
    whole_max: u64,
) {
    Job::new(Lane::Fs, move || find(&root, &rel)).run(lp, move |lp, found| match found {
        Err(PoolError::QueueFull) | Ok(Err(_)) | Err(_) => {
            let e = Error::unavailable("the file could not be read; try again");
            res.send_error(&req, e)
        }
        Ok(Ok(None)) => res.send_error(&req, Error::not_found("no such file")),
        Ok(Ok(Some(file))) => send_file(lp, req, res, file, whole_max),
    });
}

fn send_file(lp: &Loop, req: Request, res: Responder, file: Found, whole_max: u64) {
    let etag = format!("W/\"{:x}-{:x}\"", file.len, file.modified_ns);
    let last_modified = String::from_utf8_lossy(&format_imf_fixdate(file.modified)).into_owned();
    let mime = mime_guess::from_path(&file.path).first_or_octet_stream();
    let mut head = Response::new(200);
    let content_type = if mime.type_() == mime_guess::mime::TEXT {
        format!("{}; charset=utf-8", mime.essence_str())
    } else {
        mime.essence_str().to_string()
    };
    head.set_header("Content-Type", content_type);
    head.set_header("ETag", etag.clone());
    head.set_header("Last-Modified", last_modified);
    head.set_header("Accept-Ranges", "bytes");
    if not_modified(&req, &etag, file.modified) {
        head.set_status(304);
        head.remove_header("content-type");
        return res.send(head);
    }
    let (start, end) = match range(&req, file.len) {
        Ok(Some((s, e))) => {
            head.set_status(206);
            head.set_header("Content-Range", format!("bytes {s}-{e}/{}", file.len));
            (s, e + 1)
        }
        Ok(None) => (0, file.len),
        Err(()) => {
            let mut r = res.render_error(&req, Error::new(416, "range not satisfiable"));
            r.set_header("Content-Range", format!("bytes */{}", file.len));
            return res.send(r);
        }
    };
    let len = end - start;
    if len <= whole_max {
        let path = file.path;
        Job::new(Lane::Fs, move || read_at(&path, start, len)).run(
            lp,
            move |_, bytes| match bytes {
                Ok(Ok(bytes)) if bytes.len() as u64 == len => res.send(head.body(bytes)),
                _ => res.send_error(&req, Error::unavailable("the file could not be read")),
            },
        );
    } else {
        let writer = res.stream(head);
        let out = Outgoing {
            path: Arc::new(file.path),
            at: start,
            end,
            writer,
            pending: None,
        };
        pump(lp, out);
    }
}

/// A large file on its way out: never more than one chunk read ahead of
/// what the client has taken.
struct Outgoing {
    path: Arc<PathBuf>,
    at: u64,
    end: u64,
    writer: BodyWriter,
    /// A chunk read but refused by a congested client.
    pending: Option<Vec<u8>>,
}

/// Parks the stream until its client has taken most of what waits.
fn park(out: Outgoing) {
    let parked = Rc::new(RefCell::new(None::<Outgoing>));
    let slot = parked.clone();
    out.writer.on_drain(move |lp| {
        if let Some(out) = slot.borrow_mut().take() {
            pump(lp, out);
        }
    });
    *parked.borrow_mut() = Some(out);
}

/// Streams `[at, end)` of the file a chunk at a time, each read once the
/// client has room for it.
fn pump(lp: &Loop, mut out: Outgoing) {
    if let Some(chunk) = out.pending.take() {
        match out.writer.write(&chunk) {
            Ok(()) => out.at += chunk.len() as u64,
            Err(StreamError::Congested) => {
                out.pending = Some(chunk);
                return park(out);
            }
            Err(StreamError::Closed) => return,
        }
    }
    if out.at >= out.end {
        return out.writer.finish();
    }
    if out.writer.congested() {
        return park(out);
    }
    let (path, at, len) = (out.path.clone(), out.at, CHUNK.min(out.end - out.at));
    Job::new(Lane::Fs, move || read_at(&path, at, len)).run(lp, move |lp, bytes| {
        match bytes {
            // Cut short (an error, or the file shrank): the client sees
            // the body incomplete as the writer is dropped.
            Ok(Ok(bytes)) if !bytes.is_empty() => {
                out.pending = Some(bytes);
                pump(lp, out);
            }
            _ => drop(out),
        }
    });
}

impl crate::api::handler::Handler for ServeDir {
    fn call(&self, lp: &Loop, req: Request, res: Responder) {
        let wildcard = req.wildcard().unwrap_or("").to_string();
        self.serve(lp, req, res, &wildcard);
    }
}

impl crate::api::handler::Handler for ServeFile {
    fn call(&self, lp: &Loop, req: Request, res: Responder) {
        let (dir, name) = match (self.path.parent(), self.path.file_name()) {
            (Some(dir), Some(name)) => (dir.to_path_buf(), PathBuf::from(name)),
            _ => return res.send_error(&req, Error::not_found("no such file")),
        };
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };
        answer(lp, req, res, Arc::new(dir), name, WHOLE_MAX)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths() {
        assert_eq!(relative("a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(relative("a%20b"), Some(PathBuf::from("a b")));
        for bad in [
            "../x",
            "a/../../x",
            "%2e%2e/x",
            ".env",
            "a/.git/config",
            "a%2fb",
            "a%00",
        ] {
            assert_eq!(relative(bad), None, "{bad}");
        }
    }
}
