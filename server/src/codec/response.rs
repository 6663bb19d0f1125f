//! Response heads to bytes (RFC 9112 §4, §6).

use super::date::DATE_LEN;
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
#[derive(Debug)]
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
    for (name, value) in headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
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
    if head.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if head.http10_keep_alive {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
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
