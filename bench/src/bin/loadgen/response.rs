//! Reading responses off the wire: just enough HTTP/1.1 to find where each
//! response ends (Content-Length, chunked, or connection close) and to check
//! its status and body.

/// One complete response at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct Complete {
    pub status: u16,
    /// Bytes the response occupies in the buffer.
    pub len: usize,
    /// The server will close after it.
    pub close: bool,
    /// The body matched the expected one (true when none is expected).
    pub body_ok: bool,
    /// An interim (1xx) response: not the answer to a request.
    pub interim: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Parse {
    /// More bytes are needed (or, for a close-delimited body, the EOF).
    Incomplete,
    Done(Complete),
    /// The bytes are not an HTTP/1.1 response.
    Invalid(&'static str),
}

fn header<'a>(headers: &'a [httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

/// Walks a chunked body in `buf`; returns (bytes used, decoded body) or None
/// if incomplete.
fn chunked(buf: &[u8], want_body: bool) -> Result<Option<(usize, Vec<u8>)>, &'static str> {
    let mut at = 0;
    let mut body = Vec::new();
    loop {
        let Some(nl) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = &buf[at..at + nl];
        let size_hex = line.split(|b| *b == b';').next().unwrap_or_default();
        let size = std::str::from_utf8(size_hex)
            .ok()
            .and_then(|s| usize::from_str_radix(s.trim(), 16).ok())
            .ok_or("invalid chunk size")?;
        at += nl + 2;
        if size == 0 {
            // Trailers end with an empty line.
            loop {
                let Some(nl) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                at += nl + 2;
                if nl == 0 {
                    return Ok(Some((at, body)));
                }
            }
        }
        if buf.len() < at + size + 2 {
            return Ok(None);
        }
        if want_body {
            body.extend_from_slice(&buf[at..at + size]);
        }
        if &buf[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF");
        }
        at += size + 2;
    }
}

/// Parses the response at the front of `buf`. `eof`: the peer has closed,
/// so a close-delimited body is complete.
pub fn parse(buf: &[u8], head_request: bool, expect_body: Option<&[u8]>, eof: bool) -> Parse {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parse::Incomplete,
        Err(_) => return Parse::Invalid("malformed response head"),
    };
    let status = resp.code.unwrap_or(0);
    let close =
        header(resp.headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case(b"close"));
    if (100..200).contains(&status) {
        return Parse::Done(Complete {
            status,
            len: head_len,
            close: false,
            body_ok: true,
            interim: true,
        });
    }
    let body_check = |body: &[u8]| expect_body.is_none_or(|want| body == want);
    if head_request || status == 204 || status == 304 {
        return Parse::Done(Complete {
            status,
            len: head_len,
            close,
            body_ok: true,
            interim: false,
        });
    }
    let te_chunked = header(resp.headers, "transfer-encoding").is_some_and(|v| {
        v.split(|b| *b == b',')
            .next_back()
            .is_some_and(|c| c.trim_ascii().eq_ignore_ascii_case(b"chunked"))
    });
    if te_chunked {
        return match chunked(&buf[head_len..], expect_body.is_some()) {
            Ok(Some((used, body))) => Parse::Done(Complete {
                status,
                len: head_len + used,
                close,
                body_ok: expect_body.is_none() || body_check(&body),
                interim: false,
            }),
            Ok(None) => Parse::Incomplete,
            Err(e) => Parse::Invalid(e),
        };
    }
    if let Some(cl) = header(resp.headers, "content-length") {
        let Some(len) = std::str::from_utf8(cl)
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
        else {
            return Parse::Invalid("invalid Content-Length");
        };
        if buf.len() < head_len + len {
            return Parse::Incomplete;
        }
        return Parse::Done(Complete {
            status,
            len: head_len + len,
            close,
            body_ok: body_check(&buf[head_len..head_len + len]),
            interim: false,
        });
    }
    // Delimited by the connection's end.
    if !eof {
        return Parse::Incomplete;
    }
    Parse::Done(Complete {
        status,
        len: buf.len(),
        close: true,
        body_ok: body_check(&buf[head_len..]),
        interim: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(status: u16, len: usize, close: bool, body_ok: bool) -> Parse {
        Parse::Done(Complete {
            status,
            len,
            close,
            body_ok,
            interim: false,
        })
    }

    #[test]
    fn framings() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1";
        assert_eq!(
            parse(r, false, Some(b"hello"), false),
            done(200, 43, false, true)
        );
        assert_eq!(
            parse(r, false, Some(b"world"), false),
            done(200, 43, false, false)
        );
        assert_eq!(parse(&r[..40], false, None, false), Parse::Incomplete);
        let c = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(
            parse(c, false, Some(b"abcde"), false),
            done(200, c.len(), true, true)
        );
        assert_eq!(
            parse(&c[..c.len() - 1], false, None, false),
            Parse::Incomplete
        );
        let u = b"HTTP/1.0 200 OK\r\n\r\nuntil close";
        assert_eq!(parse(u, false, None, false), Parse::Incomplete);
        assert_eq!(
            parse(u, false, Some(b"until close"), true),
            done(200, u.len(), true, true)
        );
        let h = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(parse(h, true, None, false), done(200, h.len(), false, true));
        assert!(matches!(
            parse(b"HTTP/1.1 100 Continue\r\n\r\n", false, None, false),
            Parse::Done(Complete { interim: true, .. })
        ));
        assert_eq!(
            parse(b"garbage\r\n\r\n", false, None, false),
            Parse::Invalid("malformed response head")
        );
    }
}
