//! `GET /files/:name`: static files read through the pool, gzip'd through
//! the pool when the client accepts it and the file is worth compressing.

use std::path::{Path, PathBuf};

use phaseloop::{Request, Responder, Response};
use phaseloop_core::{fs, zlib, Loop};

/// Files smaller than this are sent as they are: gzip would not pay.
const GZIP_MIN_LEN: usize = 1024;
/// Largest file served (the pool reads it whole).
const MAX_FILE_LEN: usize = 8 * 1024 * 1024;

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
    let Some(name) = req.param_decoded("name").map(|n| n.into_owned()) else {
        return res.json_error(400, "missing file name");
    };
    if !valid_name(&name) {
        return res.json_error(400, "invalid file name");
    }
    let gzip_ok = req.accepts_encoding("gzip");
    let path = dir.join(&name);
    let submitted = fs::read_file(path).submit(lp, move |lp, result| {
        let bytes = match result {
            Ok(Ok(b)) if b.len() <= MAX_FILE_LEN => b,
            Ok(Ok(_)) => return res.json_error(413, "file too large to serve"),
            Ok(Err(e))
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::IsADirectory
                ) =>
            {
                return res.json_error(404, "File not found")
            }
            Ok(Err(e)) => return res.json_error(500, &format!("reading the file: {e}")),
            Err(e) => {
                return res
                    .send(Response::json_error(503, &e.to_string()).header("Retry-After", "1"))
            }
        };
        let ctype = content_type(&name);
        if !gzip_ok || bytes.len() < GZIP_MIN_LEN {
            return res.send(
                Response::new(200)
                    .header("Content-Type", ctype)
                    .header("Vary", "Accept-Encoding")
                    .body(bytes),
            );
        }
        let fallback = bytes.clone();
        let slot = std::rc::Rc::new(std::cell::RefCell::new(Some(res)));
        let on_done = slot.clone();
        let gz = zlib::gzip(bytes, 6).submit(lp, move |_, result| {
            let Some(res) = on_done.borrow_mut().take() else {
                return;
            };
            match result {
                Ok(Ok(gz)) => res.send(
                    Response::new(200)
                        .header("Content-Type", ctype)
                        .header("Content-Encoding", "gzip")
                        .header("Vary", "Accept-Encoding")
                        .body(gz),
                ),
                _ => res.send(
                    Response::new(200)
                        .header("Content-Type", ctype)
                        .body(fallback),
                ),
            }
        });
        if gz.is_err() {
            if let Some(res) = slot.borrow_mut().take() {
                res.send(crate::busy("server busy, retry"));
            }
        }
    });
    if let Err(e) = submitted {
        // `res` was inside the refused callback and has answered 500; log why.
        eprintln!("demo-api: file read refused: {e}");
    }
}
