//! The request line: `method SP request-target SP HTTP-version CRLF`
//! (RFC 9112 §3).
//!
//! Ours rather than httparse's: httparse checks a target as UTF-8 with
//! `str::from_utf8`, about a hundred instructions on every request even
//! when the target is plain ASCII, as nearly every target is. Here the
//! target is checked sixteen bytes at a time, and UTF-8 is validated only
//! when a byte above 0x7F was seen.

use super::blocks::{equal_to, find_class, not_target};
use super::head::Version;
use super::{HttpError, TCHAR};

/// Where the parts of a complete request line lie in the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLine {
    /// The method token.
    pub method: (usize, usize),
    /// The method is GET (most requests: known without a compare later).
    pub is_get: bool,
    /// The request target as sent.
    pub target: (usize, usize),
    /// Where the target's first `?` is, if it has one (found by the scan
    /// that finds the target's end, so the query costs no second search).
    pub query_mark: Option<usize>,
    /// The protocol version.
    pub version: Version,
    /// Bytes up to and including the line's LF.
    pub len: usize,
}

fn bad_line() -> HttpError {
    HttpError::bad_request("invalid request line")
}

/// Parses the request line at the start of `buf`: `Ok(None)` while it is
/// incomplete, `Err` for a line to refuse (400, or 505 for a well-formed
/// version other than 1.0 and 1.1). Leading empty lines must be gone.
#[inline(always)] // into the head's parse, every request's way
pub fn parse_request_line(buf: &[u8]) -> Result<Option<RequestLine>, HttpError> {
    // The method: GET is most requests, one compare.
    let is_get = buf.starts_with(b"GET ");
    let method_end = if is_get {
        3
    } else {
        match buf.iter().position(|b| !TCHAR[usize::from(*b)]) {
            None => return Ok(None),
            Some(0) => return Err(bad_line()),
            Some(end) if buf[end] == b' ' => end,
            Some(_) => return Err(bad_line()),
        }
    };
    let target_start = method_end + 1;
    let Some(scan) = scan_target(&buf[target_start..]) else {
        return Ok(None);
    };
    let target_end = target_start + scan.len;
    match buf[target_end] {
        b' ' if scan.len > 0 => {}
        // RFC 9112 §3.2 / RFC 3986 §3.3-3.4: no place in a target.
        b'"' | b'#' | b'<' | b'>' | b'\\' | b'^' | b'`' | b'{' | b'|' | b'}' => {
            return Err(HttpError::bad_request(
                "invalid character in request target",
            ))
        }
        _ => return Err(bad_line()),
    }
    if scan.non_ascii && std::str::from_utf8(&buf[target_start..target_end]).is_err() {
        return Err(HttpError::bad_request("invalid request target"));
    }
    let version_start = target_end + 1;
    let Some(version) = buf.get(version_start..version_start + 8) else {
        // Wait for the rest only if what came can begin a version.
        let came = &buf[version_start..];
        let fits = came.iter().zip(b"HTTP/0.0").all(|(b, want)| match want {
            b'0' => b.is_ascii_digit(),
            _ => b == want,
        });
        return if fits { Ok(None) } else { Err(bad_line()) };
    };
    // One compare of eight bytes for the two versions we serve.
    let word = u64::from_le_bytes(version.try_into().expect("eight bytes"));
    let version = match version {
        _ if word == u64::from_le_bytes(*b"HTTP/1.1") => Version::Http11,
        _ if word == u64::from_le_bytes(*b"HTTP/1.0") => Version::Http10,
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            return Err(HttpError::new(
                505,
                "only HTTP/1.0 and HTTP/1.1 are supported",
            ))
        }
        _ => return Err(bad_line()),
    };
    let end = version_start + 8;
    match &buf[end..] {
        [b'\r', b'\n', ..] => {}
        [] | [b'\r'] => return Ok(None),
        // RFC 9112 §2.2: we answer no request whose lines end in a bare LF.
        [b'\n', ..] => return Err(HttpError::bad_request("bare LF in request head")),
        _ => return Err(HttpError::bad_request("invalid line ending")),
    }
    Ok(Some(RequestLine {
        method: (0, method_end),
        is_get,
        target: (target_start, target_end),
        query_mark: scan.query_mark.map(|q| target_start + q),
        version,
        len: end + 2,
    }))
}

/// How far a target runs in the bytes it was scanned in.
struct TargetScan {
    /// Bytes before the first byte that cannot be in a target (the SP
    /// that should end it, or an invalid one).
    len: usize,
    /// A byte above 0x7F was seen: the target must then be valid UTF-8.
    non_ascii: bool,
    /// The first `?` before `len`.
    query_mark: Option<usize>,
}

/// Finds the end of a target: the visible ASCII RFC 3986 allows, or bytes
/// above 0x7F (UTF-8, checked by the caller). `None` when `bytes` ends
/// inside the target.
#[inline(always)] // into the request line's parse
fn scan_target(bytes: &[u8]) -> Option<TargetScan> {
    let mut at = 0;
    let mut query_mark = None;
    let mut non_ascii = false;
    loop {
        // A block a step to the next byte outside visible ASCII, or to the
        // first `?` while none was seen.
        let looking_for_mark = query_mark.is_none();
        at = find_class(bytes, at, |block| {
            not_target(block)
                | if looking_for_mark {
                    equal_to(block, b'?')
                } else {
                    0
                }
        })?;
        match bytes[at] {
            b'?' if looking_for_mark => query_mark = Some(at),
            0x80..=0xFF => non_ascii = true,
            _ => {
                return Some(TargetScan {
                    len: at,
                    non_ascii,
                    query_mark,
                })
            }
        }
        at += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(line: &str) -> RequestLine {
        parse_request_line(line.as_bytes())
            .unwrap_or_else(|e| panic!("{line:?}: {e:?}"))
            .unwrap_or_else(|| panic!("{line:?}: incomplete"))
    }

    fn refused(line: &[u8]) -> (u16, String) {
        match parse_request_line(line) {
            Err(e) => (e.status, e.message.to_string()),
            Ok(r) => panic!("{:?} was taken: {r:?}", String::from_utf8_lossy(line)),
        }
    }

    #[test]
    fn parts_are_found() {
        let line = ok("GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(line.method, (0, 3));
        assert!(line.is_get);
        for other in [
            "GETX / HTTP/1.1\r\n",
            "get / HTTP/1.1\r\n",
            "HEAD / HTTP/1.1\r\n",
        ] {
            assert!(!ok(other).is_get, "{other:?}");
        }
        assert_eq!(line.target, (4, 14));
        assert_eq!(line.version, Version::Http11);
        assert_eq!(line.len, 25);
        let line = ok("M-SEARCH * HTTP/1.0\r\n");
        assert_eq!((line.method, line.target), ((0, 8), (9, 10)));
        assert_eq!(line.version, Version::Http10);
        let target = "/api/users/42?fields=name,email&x=%20y";
        let line = ok(&format!("DELETE {target} HTTP/1.1\r\n"));
        assert_eq!(line.target, (7, 7 + target.len()));
        // UTF-8 above 0x7F is taken (httparse takes it too).
        let line = ok("GET /caf\u{e9}/\u{1F600} HTTP/1.1\r\n");
        assert_eq!(line.target, (4, 4 + "/caf\u{e9}/\u{1F600}".len()));
    }

    #[test]
    fn a_target_of_every_length_ends_at_its_space() {
        // The word-wise scan must stop at the right byte whatever the
        // alignment of the space or of a bad byte.
        for len in 1..40 {
            let target = format!("/{}", "a".repeat(len - 1));
            let line = ok(&format!("GET {target} HTTP/1.1\r\n"));
            assert_eq!(line.target, (4, 4 + len), "length {len}");
            for bad in [b'\t', 0x7F, 0x00, b'\r', b'\n'] {
                let mut raw = format!("GET {target}").into_bytes();
                raw[4 + len - 1] = bad;
                raw.extend_from_slice(b" HTTP/1.1\r\n");
                if len > 1 {
                    assert_eq!(refused(&raw).0, 400, "length {len}, byte {bad:#x}");
                }
            }
        }
    }

    #[test]
    fn the_first_question_mark_of_a_target_is_found_wherever_it_is() {
        // Every length and every offset of the first `?`, a second `?`
        // after it, and non-ASCII bytes before it (the byte-wise part of
        // the scan); a `?` after the target is not the target's.
        for len in 1..30 {
            let plain = format!("/{}", "a".repeat(len - 1));
            assert_eq!(
                ok(&format!("GET {plain} HTTP/1.1\r\nX: ?\r\n")).query_mark,
                None
            );
            for mark in 1..len {
                for prefix in ["", "\u{e9}"] {
                    let mut target = format!("{prefix}{plain}");
                    let at = prefix.len() + mark;
                    target.replace_range(at..at + 1, "?");
                    if at + 3 < target.len() {
                        target.replace_range(at + 2..at + 3, "?");
                    }
                    let line = ok(&format!("GET {target} HTTP/1.1\r\n"));
                    assert_eq!(line.query_mark, Some(4 + at), "{target:?}");
                    assert_eq!(line.target, (4, 4 + target.len()), "{target:?}");
                }
            }
        }
    }

    #[test]
    fn incomplete_lines_wait() {
        let full = b"POST /orders HTTP/1.1\r\n";
        for cut in 0..full.len() {
            assert_eq!(
                parse_request_line(&full[..cut]).unwrap(),
                None,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn bad_lines_are_refused() {
        let cases: &[(&[u8], u16, &str)] = &[
            (b"G@T / HTTP/1.1\r\n", 400, "invalid request line"),
            (b" / HTTP/1.1\r\n", 400, "invalid request line"),
            (b"GET  / HTTP/1.1\r\n", 400, "invalid request line"),
            (b"GET /\r\n", 400, "invalid request line"),
            (b"GET / HTTP/1.1 \r\n", 400, "invalid line ending"),
            (b"GET / HTTP/1.1\n", 400, "bare LF in request head"),
            (
                b"GET / HTTP/1.1\nHost: x\r\n",
                400,
                "bare LF in request head",
            ),
            (b"GET / FTP/1.1\r\n", 400, "invalid request line"),
            (b"GET / http/1.1\r\n", 400, "invalid request line"),
            (
                b"GET / HTTP/2.0\r\n",
                505,
                "only HTTP/1.0 and HTTP/1.1 are supported",
            ),
            (
                b"GET / HTTP/1.2\r\n",
                505,
                "only HTTP/1.0 and HTTP/1.1 are supported",
            ),
            (b"GET /a\x7fb HTTP/1.1\r\n", 400, "invalid request line"),
            (b"GET /\xff\xfe HTTP/1.1\r\n", 400, "invalid request target"),
            (b"\x16\x03\x01\x02\x00\x01\x00", 400, "invalid request line"),
        ];
        for (line, status, message) in cases {
            assert_eq!(
                refused(line),
                (*status, message.to_string()),
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    /// Random lines from pieces that exercise every branch, checked against
    /// httparse's parse of the same line: the same verdict and the same
    /// parts, except where we are stricter on purpose (a bare LF).
    #[test]
    fn agrees_with_httparse_on_random_lines() {
        // Each part of a line from choices that are valid first, then not;
        // a pick leans to the first choices, so most lines are nearly valid.
        const PARTS: &[&[&[u8]]] = &[
            &[b"GET", b"POST", b"M-X", b"G@T", b""],
            &[b" ", b"  ", b"\t"],
            &[
                b"/",
                b"/a",
                b"?q=1",
                b"abcdefghijkl",
                b"*",
                b"\xc3\xa9",
                b"\xff",
                b"\x7f",
                b"\t",
            ],
            &[
                b"/",
                b"/a",
                b"?q=1",
                b"",
                b"abcdefghijkl",
                b"\xc3\xa9",
                b"\xff",
                b"\r",
            ],
            &[b" ", b"  ", b""],
            &[
                b"HTTP/1.1",
                b"HTTP/1.0",
                b"HTTP/2.0",
                b"HTTP/1.",
                b"FTP/1.1",
                b"\r\n",
            ],
            &[b"\r\n", b"\n", b" \r\n", b"\r", b"x"],
        ];
        let mut next = crate::http::xorshift(0x9E37_79B9_7F4A_7C15u64);
        let mut agreed = [0u32; 3];
        for _ in 0..100_000 {
            let mut line = Vec::new();
            for choices in PARTS {
                let n = choices.len();
                let pick = (next() % n).min(next() % n);
                line.extend_from_slice(choices[pick]);
            }
            if matches!(line.first(), Some(b'\r' | b'\n')) {
                continue; // the connection strips leading empty lines
            }
            // The line up to its first LF, then an empty field block (our
            // parser reads no further than the line, httparse reads fields).
            match line.iter().position(|b| *b == b'\n') {
                Some(lf) => line.truncate(lf + 1),
                None => line.extend_from_slice(b"\r\n"),
            }
            line.extend_from_slice(b"\r\n");
            // And a cut of it, somewhere.
            let cut = &line[..next() % line.len()];
            for input in [&line[..], cut] {
                let ours = parse_request_line(input);
                let mut slots = [httparse::EMPTY_HEADER; 4];
                let mut theirs = httparse::Request::new(&mut slots);
                let shown = String::from_utf8_lossy(input);
                match theirs.parse(input) {
                    Ok(httparse::Status::Complete(_)) => {
                        let at = |part: &str| part.as_ptr() as usize - input.as_ptr() as usize;
                        let (method, target) = (theirs.method.unwrap(), theirs.path.unwrap());
                        match ours {
                            Ok(Some(l)) => {
                                assert_eq!(l.method, (0, method.len()), "{shown:?}");
                                let t = (at(target), at(target) + target.len());
                                assert_eq!(l.target, t, "{shown:?}");
                                let v = match theirs.version {
                                    Some(1) => Version::Http11,
                                    _ => Version::Http10,
                                };
                                assert_eq!(l.version, v, "{shown:?}");
                                agreed[0] += 1;
                            }
                            Err(e) => assert_eq!(e.message, "bare LF in request head", "{shown:?}"),
                            Ok(None) => panic!("{shown:?}: httparse took it, we wait"),
                        }
                    }
                    Ok(httparse::Status::Partial) => {
                        // httparse may wait for the fields after a line
                        // we have whole; we refuse only a bare LF.
                        match ours {
                            Ok(None) => {}
                            Ok(Some(l)) => assert!(input[..l.len].ends_with(b"\r\n"), "{shown:?}"),
                            Err(e) => assert_eq!(e.message, "bare LF in request head", "{shown:?}"),
                        }
                        agreed[1] += 1;
                    }
                    // httparse refuses `HTTP/2` at once; we wait for
                    // `HTTP/2.0` to answer it 505.
                    Err(httparse::Error::Version) if ours == Ok(None) => {}
                    Err(_) => {
                        assert!(
                            ours.is_err(),
                            "{shown:?}: httparse refused, we said {ours:?}"
                        );
                        agreed[2] += 1;
                    }
                }
            }
        }
        // Every verdict was reached many times.
        assert!(agreed.iter().all(|n| *n > 1000), "{agreed:?}");
    }
}
