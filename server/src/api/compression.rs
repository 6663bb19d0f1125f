//! `Compression`: response bodies gzip'd (and, with the `brotli`
//! feature, brotli'd) on the pool's compression lane, as the client's
//! `Accept-Encoding` and its q-values choose. The loop never compresses:
//! the response waits for the job ([`Responder::on_send_later`]).
//!
//! A response is compressed when it is a 200, 201 or 203 to a request
//! other than HEAD, has a compressible type (text, JSON, JavaScript, XML,
//! SVG), no `Content-Encoding` yet, and a body of at least the threshold
//! (1 KiB by default). Every response of a compressible type says
//! `Vary: Accept-Encoding`. A full pool sends the body as it is. Streams
//! pass by.

use phaseloop_core::{Job, Lane, Loop};

use crate::api::handler::{Middleware, Next};
use crate::api::responder::{Responder, SendOn};
use crate::http::request::{Method, Request};
use crate::http::response::Response;

/// The content codings we can produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    /// gzip (RFC 1952), through flate2.
    Gzip,
    /// brotli (RFC 7932), with the `brotli` feature.
    Brotli,
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip => "gzip",
            Coding::Brotli => "br",
        }
    }

    /// What we offer, preferred first.
    fn offered() -> &'static [Coding] {
        if cfg!(feature = "brotli") {
            &[Coding::Brotli, Coding::Gzip]
        } else {
            &[Coding::Gzip]
        }
    }
}

/// The coding an `Accept-Encoding` value chooses among what we offer:
/// the highest q above 0 (an explicit entry over `*`), ours first on a tie.
pub fn negotiate(accept_encoding: &str) -> Option<Coding> {
    let mut best: Option<(Coding, u32)> = None;
    for coding in Coding::offered() {
        let items = crate::http::accept::weighted(accept_encoding);
        let q = crate::http::accept::weight_of(items, |name| {
            name.eq_ignore_ascii_case(coding.name())
                || (*coding == Coding::Gzip && name.eq_ignore_ascii_case("x-gzip"))
        });
        if q > 0 && best.is_none_or(|(_, b)| q > b) {
            best = Some((*coding, q));
        }
    }
    best.map(|(c, _)| c)
}

fn compressible_type(response: &Response) -> bool {
    let Some(ct) = response.header_value("content-type") else {
        return false;
    };
    let ct = String::from_utf8_lossy(ct).to_ascii_lowercase();
    let essence = ct.split(';').next().unwrap_or("").trim();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/json" | "application/javascript" | "application/xml" | "image/svg+xml"
        )
}

/// Compresses bodies on the pool: `.wrap(Compression::new())`.
#[derive(Debug, Clone)]
#[must_use]
pub struct Compression {
    min_len: usize,
    level: u32,
}

impl Default for Compression {
    fn default() -> Self {
        Compression::new()
    }
}

impl Compression {
    /// Bodies of 1 KiB or more, at level 6 (gzip) / 5 (brotli).
    pub fn new() -> Compression {
        Compression {
            min_len: 1024,
            level: 6,
        }
    }

    /// Compresses bodies of at least `bytes` only.
    pub fn min_len(mut self, bytes: usize) -> Compression {
        self.min_len = bytes;
        self
    }

    /// Compression level, 1 (fast) to 9 (small); brotli's is this less 1.
    pub fn level(mut self, level: u32) -> Compression {
        self.level = level.clamp(1, 9);
        self
    }
}

/// A body compressed with `coding` at `level`, on a pool thread.
fn compress(coding: Coding, level: u32, body: Vec<u8>) -> std::io::Result<Vec<u8>> {
    use std::io::Write;
    match coding {
        Coding::Gzip => {
            let mut enc = flate2::write::GzEncoder::new(
                Vec::with_capacity(body.len() / 3 + 64),
                flate2::Compression::new(level),
            );
            enc.write_all(&body)?;
            enc.finish()
        }
        #[cfg(feature = "brotli")]
        Coding::Brotli => {
            let mut out = Vec::with_capacity(body.len() / 3 + 64);
            {
                let mut enc = brotli::CompressorWriter::new(&mut out, 4096, level - 1, 22);
                enc.write_all(&body)?;
            }
            Ok(out)
        }
        #[cfg(not(feature = "brotli"))]
        Coding::Brotli => Err(std::io::Error::other("brotli is not built in")),
    }
}

impl Middleware for Compression {
    fn call(&self, lp: &Loop, req: Request, mut res: Responder, next: Next) {
        if req.method() == Method::Head {
            return next.run(lp, req, res);
        }
        let coding = req.header("accept-encoding").and_then(negotiate);
        let (min_len, level) = (self.min_len, self.level);
        res.on_send_later(move |mut response: Response, send: SendOn| {
            if !compressible_type(&response) {
                return send.send(response);
            }
            response.append_header("Vary", "Accept-Encoding");
            let worth = matches!(response.status(), 200 | 201 | 203)
                && response.header_value("content-encoding").is_none()
                && response.body_bytes().len() >= min_len;
            let Some(coding) = coding.filter(|_| worth) else {
                return send.send(response);
            };
            let body = response.body_bytes().to_vec();
            let job = Job::new(Lane::Compression, move || compress(coding, level, body));
            let queued = Loop::with_current(|lp| {
                job.run(lp, move |_, compressed| match compressed {
                    Ok(Ok(bytes)) => {
                        response.set_body(bytes);
                        response.set_header("Content-Encoding", coding.name());
                        send.send(response);
                    }
                    // A full pool, a failed job: the body as it is.
                    _ => send.send(response),
                });
            });
            debug_assert!(queued.is_some(), "answers are sent on their loop");
        });
        next.run(lp, req, res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_follows_q_values() {
        let br = if cfg!(feature = "brotli") {
            Some(Coding::Brotli)
        } else {
            Some(Coding::Gzip)
        };
        assert_eq!(negotiate("gzip"), Some(Coding::Gzip));
        assert_eq!(negotiate("gzip, deflate, br"), br);
        assert_eq!(negotiate("gzip;q=0"), None);
        assert_eq!(negotiate("identity"), None);
        assert_eq!(negotiate("br;q=0.5, gzip;q=0.8"), Some(Coding::Gzip));
        assert_eq!(negotiate("*;q=0.1"), br);
        assert_eq!(
            negotiate("*, gzip;q=0"),
            br.filter(|c| *c == Coding::Brotli)
        );
        assert_eq!(negotiate("gzip;q=1.5"), None, "a bad q is no q");
        assert_eq!(negotiate("x-gzip"), Some(Coding::Gzip));
    }
}
