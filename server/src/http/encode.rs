//! Response heads to bytes (RFC 9112 §4, §6).

use std::borrow::Cow;
use std::cell::RefCell;

use super::date::{DateCache, DATE_LEN};
use super::reason_phrase;

/// How a response's body is delimited (RFC 9112 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseFraming {
    /// A fixed body of this many bytes (`Content-Length`).
    Length(u64),
    /// The chunked transfer coding (a streamed body).
    Chunked,
    /// Neither: the body ends when the connection closes (a streamed body
    /// to an HTTP/1.0 client, which knows no chunked coding).
    UntilClose,
}

/// What the connection knows about a response when it writes the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Status code (100..=999).
    pub status: u16,
    /// How the body is delimited.
    pub framing: ResponseFraming,
    /// Send `Connection: close` (the connection ends after this response).
    pub close: bool,
    /// The request was HTTP/1.0 asking to keep the connection: say yes.
    pub http10_keep_alive: bool,
}

impl ResponseHead {
    /// Everything the head is made of as two integers (the cache adds the
    /// content type's two and the static body's address), so a cached
    /// response is matched by integer compares instead of a field-by-field
    /// `==`.
    fn key(&self) -> [u64; 2] {
        let (tag, length) = match self.framing {
            ResponseFraming::Length(n) => (0, n),
            ResponseFraming::Chunked => (1, 0),
            ResponseFraming::UntilClose => (2, 0),
        };
        [
            u64::from(self.status)
                | tag << 16
                | u64::from(self.close) << 18
                | u64::from(self.http10_keep_alive) << 19,
            length,
        ]
    }
}

fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends a `name: value` line per field (the caller checked both).
#[inline(always)]
pub(crate) fn push_field_lines<'f>(
    out: &mut Vec<u8>,
    fields: impl IntoIterator<Item = (&'f str, &'f [u8])>,
) {
    for (name, value) in fields {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
}

/// Appends the status line and fields, through the blank line. `headers`
/// are the handler's fields, already validated (no CR, LF or NUL).
pub fn encode_head<'h>(
    out: &mut Vec<u8>,
    head: &ResponseHead,
    headers: impl IntoIterator<Item = (&'h str, &'h [u8])>,
    date: &[u8; DATE_LEN],
) {
    let s = head.status.clamp(100, 999);
    if s == 200 {
        // The common case in one copy.
        out.extend_from_slice(b"HTTP/1.1 200 OK\r\nDate: ");
    } else {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(&[
            b'0' + (s / 100) as u8,
            b'0' + (s / 10 % 10) as u8,
            b'0' + (s % 10) as u8,
            b' ',
        ]);
        out.extend_from_slice(reason_phrase(s).as_bytes());
        out.extend_from_slice(b"\r\nDate: ");
    }
    out.extend_from_slice(date);
    out.extend_from_slice(b"\r\n");
    push_field_lines(out, headers);
    // RFC 9110 §8.6: no Content-Length on 1xx and 204 responses.
    let bodiless_status = s < 200 || s == 204;
    match head.framing {
        ResponseFraming::Length(n) if !bodiless_status => {
            out.extend_from_slice(b"Content-Length: ");
            push_u64(out, n);
            out.extend_from_slice(b"\r\n");
        }
        ResponseFraming::Length(_) | ResponseFraming::UntilClose => {}
        ResponseFraming::Chunked => out.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
    }
    if s == 101 {
        // RFC 9110 §7.8: Upgrade is a connection option; the answer that
        // switches names it.
        out.extend_from_slice(b"Connection: Upgrade\r\n");
    } else if head.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if head.http10_keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// The last response encoded on this thread by [`encode_cached`], with what
/// it was made from.
struct LastResponse {
    /// [`ResponseHead::key`] of the response kept, then its content type's
    /// address and length, then its static body's address (0: no body
    /// kept; its length is the head's); `NO_RESPONSE` before the first.
    key: [u64; 5],
    /// The second of its `Date`.
    second: u64,
    bytes: Vec<u8>,
}

thread_local! {
    static LAST_RESPONSE: RefCell<LastResponse> = const {
        RefCell::new(LastResponse {
            key: NO_RESPONSE,
            second: u64::MAX,
            bytes: Vec::new(),
        })
    };
}

/// No key of a head has all its bits set (a status fits in 16 bits).
const NO_RESPONSE: [u64; 5] = [u64::MAX; 5];

/// Responses longer than this are not kept (a long type or body).
const CACHED_RESPONSE_MAX: usize = 512;

/// [`encode_head`] for a response whose only field is its content type,
/// followed by `static_body` (whose length the head's framing gives) when
/// there is one: most answers of a route are alike (same status, type, body
/// and date second), so the bytes of the last one are copied when
/// everything they were made from is equal, instead of encoding a dozen
/// pieces again and copying the body apart.
pub fn encode_cached(
    out: &mut Vec<u8>,
    head: &ResponseHead,
    content_type: Option<&Cow<'static, [u8]>>,
    static_body: Option<&'static [u8]>,
    date: &DateCache,
) {
    debug_assert!(
        static_body.is_none_or(|b| head.framing == ResponseFraming::Length(b.len() as u64))
    );
    let uncached =
        |out: &mut Vec<u8>| encode_uncached(out, head, content_type, static_body, date.value());
    // A static type or body is known by its address and length (static
    // memory is never reused for other bytes), so the whole key is five
    // integers. An owned type (rare) is not kept.
    let type_key = match content_type {
        None => [0, 0],
        Some(Cow::Borrowed(bytes)) => [bytes.as_ptr() as u64, bytes.len() as u64],
        Some(Cow::Owned(_)) => return uncached(out),
    };
    // A body's address is never 0; an empty body is no body to copy.
    let body_key = static_body.map_or(0, |b| b.as_ptr() as u64);
    let [flags, length] = head.key();
    let key = [flags, length, type_key[0], type_key[1], body_key];
    let hit = LAST_RESPONSE.try_with(|last| {
        let Ok(mut last) = last.try_borrow_mut() else {
            return false;
        };
        // Word by word with no branch (an array `==` of this size is a
        // call to memcmp).
        let differ =
            (last.key.iter().zip(&key)).fold(last.second ^ date.second(), |d, (a, b)| d | (a ^ b));
        if differ == 0 {
            out.extend_from_slice(&last.bytes);
            return true;
        }
        let start = out.len();
        uncached(out);
        let bytes = &out[start..];
        if bytes.len() <= CACHED_RESPONSE_MAX {
            let last = &mut *last;
            last.key = key;
            last.second = date.second();
            last.bytes.clear();
            last.bytes.extend_from_slice(bytes);
        }
        true
    });
    if hit != Ok(true) {
        uncached(out);
    }
}

/// What [`encode_cached`] does when the cache cannot answer. Out of line:
/// the hit is the path every request of a route takes.
#[inline(never)]
fn encode_uncached(
    out: &mut Vec<u8>,
    head: &ResponseHead,
    content_type: Option<&Cow<'static, [u8]>>,
    static_body: Option<&'static [u8]>,
    date: &[u8; DATE_LEN],
) {
    encode_head(
        out,
        head,
        content_type.map(|v| ("Content-Type", &**v)),
        date,
    );
    out.extend_from_slice(static_body.unwrap_or_default());
}

/// The interim response that tells a client to send the body it held back.
pub fn encode_continue(out: &mut Vec<u8>) {
    out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    const DATE: &[u8; DATE_LEN] = b"Mon, 23 Nov 2026 18:00:00 GMT";

    fn encode(head: ResponseHead, headers: &[(&str, &[u8])]) -> String {
        let mut out = Vec::new();
        encode_head(&mut out, &head, headers.iter().copied(), DATE);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn cached_responses_are_what_encode_makes() {
        let heads = [
            ResponseHead {
                status: 200,
                framing: ResponseFraming::Length(13),
                close: false,
                http10_keep_alive: false,
            },
            ResponseHead {
                status: 200,
                framing: ResponseFraming::Length(14),
                close: false,
                http10_keep_alive: false,
            },
            ResponseHead {
                status: 200,
                framing: ResponseFraming::Length(13),
                close: true,
                http10_keep_alive: false,
            },
            ResponseHead {
                status: 200,
                framing: ResponseFraming::Length(13),
                close: false,
                http10_keep_alive: true,
            },
            ResponseHead {
                status: 404,
                framing: ResponseFraming::Length(13),
                close: false,
                http10_keep_alive: false,
            },
            ResponseHead {
                status: 200,
                framing: ResponseFraming::Chunked,
                close: false,
                http10_keep_alive: false,
            },
            ResponseHead {
                status: 200,
                framing: ResponseFraming::UntilClose,
                close: false,
                http10_keep_alive: false,
            },
            ResponseHead {
                status: 200,
                framing: ResponseFraming::Length(0),
                close: false,
                http10_keep_alive: false,
            },
        ];
        // Static and owned alike, the same bytes from different places.
        let types: [Option<Cow<'static, [u8]>>; 7] = [
            None,
            Some(Cow::Borrowed(b"")),
            Some(Cow::Borrowed(b"text/plain")),
            Some(Cow::Owned(b"text/plain".to_vec())),
            Some(Cow::Borrowed(&b"text/plain; charset=utf-8"[..10])),
            Some(Cow::Borrowed(b"application/json")),
            Some(Cow::Owned(b"application/json".to_vec())),
        ];
        // Bodies of the heads' lengths (13, 14, 0), from different places.
        static HELLO: &[u8] = b"Hello, World!!";
        let bodies: [Option<&'static [u8]>; 4] =
            [None, Some(&HELLO[..13]), Some(&HELLO[1..]), Some(b"")];
        // Two seconds in a row (the cache knows a date by its second).
        let dates = [DateCache::at(1_795_456_800), DateCache::at(1_795_456_801)];
        assert_eq!(dates[0].value(), DATE);
        // Every change of one input after another, twice over: hits and misses.
        for _ in 0..2 {
            for head in &heads {
                let fits = |b: &&Option<&[u8]>| {
                    b.is_none_or(|b| head.framing == ResponseFraming::Length(b.len() as u64))
                };
                for (content_type, body) in types
                    .iter()
                    .flat_map(|t| bodies.iter().filter(fits).map(move |b| (t, *b)))
                {
                    for date in &dates {
                        for _ in 0..2 {
                            let mut want = b"prefix".to_vec();
                            encode_head(
                                &mut want,
                                head,
                                content_type.as_deref().map(|v| ("Content-Type", v)),
                                date.value(),
                            );
                            want.extend_from_slice(body.unwrap_or_default());
                            let mut got = b"prefix".to_vec();
                            encode_cached(&mut got, head, content_type.as_ref(), body, date);
                            assert_eq!(
                                String::from_utf8_lossy(&got),
                                String::from_utf8_lossy(&want)
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn fixed_chunked_close_and_keep_alive() {
        let h = [("Content-Type", &b"text/plain"[..])];
        assert_eq!(
            encode(ResponseHead { status: 200, framing: ResponseFraming::Length(13), close: false, http10_keep_alive: false }, &h),
            "HTTP/1.1 200 OK\r\nDate: Mon, 23 Nov 2026 18:00:00 GMT\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\n"
        );
        assert_eq!(
            encode(ResponseHead { status: 404, framing: ResponseFraming::Chunked, close: true, http10_keep_alive: false }, &[]),
            "HTTP/1.1 404 Not Found\r\nDate: Mon, 23 Nov 2026 18:00:00 GMT\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        );
        assert_eq!(
            encode(ResponseHead { status: 204, framing: ResponseFraming::Length(0), close: false, http10_keep_alive: true }, &[]),
            "HTTP/1.1 204 No Content\r\nDate: Mon, 23 Nov 2026 18:00:00 GMT\r\nConnection: keep-alive\r\n\r\n"
        );
        assert_eq!(
            encode(
                ResponseHead {
                    status: 200,
                    framing: ResponseFraming::Length(0),
                    close: false,
                    http10_keep_alive: false
                },
                &[]
            ),
            "HTTP/1.1 200 OK\r\nDate: Mon, 23 Nov 2026 18:00:00 GMT\r\nContent-Length: 0\r\n\r\n"
        );
    }
}
