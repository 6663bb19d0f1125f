//! `GET /files/:name`: static files read through the pool, gzip'd through
//! the pool when the client accepts it and the file is worth compressing.

use std::path::{Path, PathBuf};

use std::cell::RefCell;
use std::rc::Rc;

use phaseloop::{BodyWriter, Request, Responder, Response, StreamError};
use phaseloop_core::{fs, zlib, Job, Lane, Loop, PoolError};

/// Files smaller than this are sent as they are: gzip would not pay.
const GZIP_MIN_LEN: usize = 1024;
/// Largest file gzip'd (read and compressed whole, in memory).
const GZIP_MAX_LEN: u64 = 1024 * 1024;
/// Files up to this size are read whole; larger ones are streamed.
const WHOLE_MAX_LEN: usize = 64 * 1024;
/// Bytes read per step of a streamed file.
const CHUNK: u64 = 64 * 1024;

/// Writes the sample public files on first run.
pub fn init_public(data_dir: &Path) -> std::io::Result<PathBuf> {
    let dir = data_dir.join("public");
    if !dir.exists() {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("index.html"),
            "<!doctype html>\n<title>phaseloop demo</title>\n<h1>Served by phaseloop</h1>\n",
        )?;
        let mut big = String::new();
        for i in 0..2000 {
            big.push_str(&format!("line {i}: the event loop runs timers, pending, idle, prepare, poll, check, close.\n"));
        }
        std::fs::write(dir.join("loop.txt"), big)?;
        std::fs::write(dir.join("data.json"), "{\"phases\":[\"timers\",\"pending\",\"idle\",\"prepare\",\"poll\",\"check\",\"close\"]}\n")?;
    }
    Ok(dir)
}

/// A safe file name: letters, digits, `.`, `_`, `-`; no leading dot (so no
/// `..` and no hidden files). Everything else is refused before any path is
/// built.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "html" | "htm" => "text/html; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "json" => "application/json",
        "css" => "text/css",
        "js" => "text/javascript",
        "png" => "image/png",
        "svg" => "image/svg+xml",
        _ => "application/octet-stream",
    }
}

pub fn serve(dir: &Path, lp: &Loop, req: Request, res: Responder) {
    let Some(name) = req.param("name").map(|n| n.into_owned()) else {
        return res.json_error(400, "missing file name");
    };
    if !valid_name(&name) {
        return res.json_error(400, "invalid file name");
    }
    let gzip_ok = req.accepts_encoding("gzip");
    let path = dir.join(&name);
    fs::stat(path.clone()).run(lp, move |lp, result| {
        let len = match result {
            Ok(Ok(st)) if st.is_file => st.len,
            Ok(Ok(_)) => return res.json_error(404, "File not found"),
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::NotFound => {
                return res.json_error(404, "File not found")
            }
            Ok(Err(e)) => return res.json_error(500, &format!("reading the file: {e}")),
            Err(e) => return res.send(crate::pool_error(e)),
        };
        let ctype = content_type(&name);
        let gzip = gzip_ok && (GZIP_MIN_LEN as u64..=GZIP_MAX_LEN).contains(&len);
        if len as usize > WHOLE_MAX_LEN && !gzip {
            let writer = res.stream(Response::new(200).header("Content-Type", ctype));
            pump(
                lp,
                FileStream {
                    path,
                    offset: 0,
                    len,
                    writer,
                    pending: None,
                },
            );
        } else {
            whole(lp, path, ctype, gzip, res);
        }
    });
}

/// A file read whole (small, or to be gzip'd), answered with Content-Length.
fn whole(lp: &Loop, path: PathBuf, ctype: &'static str, gzip: bool, res: Responder) {
    fs::read_file(path).run(lp, move |lp, result| {
        let bytes = match result {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return res.json_error(500, &format!("reading the file: {e}")),
            Err(e) => return res.send(crate::pool_error(e)),
        };
        if !gzip {
            return res.send(
                Response::new(200)
                    .header("Content-Type", ctype)
                    .header("Vary", "Accept-Encoding")
                    .body(bytes),
            );
        }
        zlib::gzip(bytes, 6).run(lp, move |_, result| match result {
            Ok(Ok(gz)) => res.send(
                Response::new(200)
                    .header("Content-Type", ctype)
                    .header("Content-Encoding", "gzip")
                    .header("Vary", "Accept-Encoding")
                    .body(gz),
            ),
            Ok(Err(e)) => res.json_error(500, &format!("compression failed: {e}")),
            Err(e) => res.send(crate::pool_error(e)),
        });
    });
}

/// A large file on its way out, a chunk at a time: never more than one
/// chunk read ahead of what the client has taken.
struct FileStream {
    path: PathBuf,
    offset: u64,
    len: u64,
    writer: BodyWriter,
    /// A chunk read but refused by a congested client.
    pending: Option<Vec<u8>>,
}

/// Parks the stream until its client has taken most of what is waiting.
fn resume_on_drain(s: FileStream) {
    let parked = Rc::new(RefCell::new(None::<FileStream>));
    let p = parked.clone();
    s.writer.on_drain(move |lp| {
        if let Some(s) = p.borrow_mut().take() {
            pump(lp, s);
        }
    });
    *parked.borrow_mut() = Some(s);
}

fn pump(lp: &Loop, mut s: FileStream) {
    if let Some(chunk) = s.pending.take() {
        match s.writer.write(&chunk) {
            Ok(()) => s.offset += chunk.len() as u64,
            Err(StreamError::Congested) => {
                s.pending = Some(chunk);
                return resume_on_drain(s);
            }
            Err(StreamError::Closed) => return,
        }
    }
    if s.offset >= s.len {
        return s.writer.finish();
    }
    if s.writer.congested() {
        // Read nothing ahead of a client that has not taken the last chunk.
        return resume_on_drain(s);
    }
    let (path, offset, n) = (
        s.path.clone(),
        s.offset,
        CHUNK.min(s.len - s.offset) as usize,
    );
    let job = Job::new(Lane::Fs, move || -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; n];
        let got = std::fs::File::open(path)?.read_at(&mut buf, offset)?;
        buf.truncate(got);
        Ok(buf)
    });
    job.run(lp, move |lp, result| match result {
        Ok(Ok(bytes)) if !bytes.is_empty() => {
            s.pending = Some(bytes);
            pump(lp, s);
        }
        // The pool is full: try again shortly.
        Err(PoolError::QueueFull) => {
            lp.set_timeout(std::time::Duration::from_millis(10), move |lp| pump(lp, s));
        }
        // The file shrank or failed: the body ends cut short (dropping the
        // writer), so the client can tell.
        _ => drop(s),
    });
}
