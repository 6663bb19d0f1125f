//! `GET /files/:name`: static files read through the pool, gzip'd through
//! the pool when the client accepts it and the file is worth compressing.

use std::path::{Path, PathBuf};

use phaseloop::{Request, Responder, Response, ServeDir};
use phaseloop_core::{fs, zlib, Loop};

/// Files smaller than this are sent as they are: gzip would not pay.
const GZIP_MIN_LEN: usize = 1024;
/// Largest file gzip'd (read and compressed whole, in memory).
const GZIP_MAX_LEN: u64 = 1024 * 1024;
/// Files up to this size are read whole; larger ones are streamed.
pub const WHOLE_MAX_LEN: u64 = 64 * 1024;

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

/// `GET /files/:name`: gzip'd on the pool for a client that takes it
/// (files of 1 KiB to 1 MiB), else the library's `ServeDir` (validators,
/// ranges, streaming with backpressure).
pub fn serve(dir: &Path, files: &ServeDir, lp: &Loop, req: Request, res: Responder) {
    let Some(name) = req.param("name").map(|n| n.into_owned()) else {
        return res.json_error(400, "missing file name");
    };
    if !valid_name(&name) {
        return res.json_error(400, "invalid file name");
    }
    if !req.accepts_encoding("gzip") {
        return files.serve(lp, req, res, &name);
    }
    let path = dir.join(&name);
    let files = files.clone();
    fs::stat(path.clone()).run(lp, move |lp, result| match result {
        Ok(Ok(st)) if st.is_file && (GZIP_MIN_LEN as u64..=GZIP_MAX_LEN).contains(&st.len) => {
            gzipped(lp, path, content_type(&name), res)
        }
        _ => files.serve(lp, req, res, &name),
    });
}

/// A file read whole and gzip'd on the pool, answered with Content-Length.
fn gzipped(lp: &Loop, path: PathBuf, ctype: &'static str, res: Responder) {
    fs::read_file(path).run(lp, move |lp, result| {
        let bytes = match result {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return res.json_error(500, &format!("reading the file: {e}")),
            Err(e) => return res.send(crate::pool_error(e)),
        };
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
