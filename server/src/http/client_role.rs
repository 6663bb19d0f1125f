//! HTTP/1.1 in the client role: a request's head encoded, a response's
//! head parsed and its body's framing decided (RFC 9112 §6.3). Strict as
//! the server side is: a response that a careful peer would not send (a
//! bad status line, conflicting lengths, Content-Length beside
//! Transfer-Encoding, a field line without a colon) is an error, never a
//! guess. Pure code, tested with byte strings.

use std::borrow::Cow;
use std::fmt;

use super::encode::push_field_lines;
use super::head::parse_content_length;

/// Why a response was refused: a readable reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadResponse(pub Cow<'static, str>);

impl fmt::Display for BadResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad<T>(reason: impl Into<Cow<'static, str>>) -> Result<T, BadResponse> {
    Err(BadResponse(reason.into()))
}

/// How a response's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResponseBodyFraming {
    /// No body: a response to HEAD, a 1xx, 204 or 304.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
    /// Everything until the server closes the connection.
    UntilClose,
}

/// A parsed response head: its status, its fields (owned: they outlive
/// the read buffer), its length in bytes and what follows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedResponseHead {
    /// Bytes the head occupies, final CRLF included.
    pub len: usize,
    /// The status code.
    pub status: u16,
    /// The header fields in order, names as sent.
    pub fields: Vec<(String, Vec<u8>)>,
    /// How the body is delimited.
    pub framing: ResponseBodyFraming,
    /// The connection may carry another request after this response.
    pub keep_alive: bool,
}

/// Most header fields a response may have.
pub const MAX_RESPONSE_FIELDS: usize = 100;

/// Parses a response head from `buf`: `Ok(None)` while it is incomplete,
/// an error for a malformed one or one larger than `max_head` bytes.
/// `head_request`: the request was HEAD (its response has no body
/// whatever its fields say).
pub fn parse_response_head(
    buf: &[u8],
    head_request: bool,
    max_head: usize,
) -> Result<Option<ParsedResponseHead>, BadResponse> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    let mut response = httparse::Response::new(&mut slots);
    let len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            if buf.len() > max_head {
                return bad("response head too large");
            }
            return Ok(None);
        }
        Err(httparse::Error::TooManyHeaders) => return bad("too many response header fields"),
        Err(e) => return bad(format!("malformed response head: {e}")),
    };
    if len > max_head {
        return bad("response head too large");
    }
    // httparse takes a bare LF as a line end; RFC 9112 §2.2 lets a
    // recipient, but a strict one does not (as our server side).
    if buf[..len]
        .windows(2)
        .filter(|w| w[1] == b'\n')
        .any(|w| w[0] != b'\r')
        || buf[0] == b'\n'
    {
        return bad("bare LF in response head");
    }
    let status = response.code.unwrap_or(0);
    if !(100..=599).contains(&status) {
        return bad("response status out of range");
    }
    let http10 = response.version == Some(0);
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding = false;
    let mut chunked_last = false;
    let mut close = false;
    let mut keep_alive_asked = false;
    let mut fields = Vec::with_capacity(response.headers.len());
    for h in response.headers.iter() {
        let name = h.name;
        let value = h.value;
        if name.eq_ignore_ascii_case("content-length") {
            let Ok(n) = parse_content_length(value) else {
                return bad("invalid Content-Length in response");
            };
            if content_length.is_some_and(|prev| prev != n) {
                return bad("conflicting Content-Length fields in response");
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = true;
            for coding in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                if !coding.is_empty() {
                    chunked_last = coding.eq_ignore_ascii_case(b"chunked");
                }
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive_asked |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        }
        fields.push((name.to_owned(), value.to_vec()));
    }
    let bodiless = head_request || status < 200 || status == 204 || status == 304;
    let framing = if bodiless {
        ResponseBodyFraming::None
    } else if transfer_encoding {
        // RFC 9112 §6.1: a sender must not send both; a response with both
        // may be an attempt at smuggling. Refused.
        if content_length.is_some() {
            return bad("response has both Content-Length and Transfer-Encoding");
        }
        // §6.3 (4): chunked not last means the body runs to the close.
        if chunked_last {
            ResponseBodyFraming::Chunked
        } else {
            ResponseBodyFraming::UntilClose
        }
    } else if let Some(n) = content_length {
        ResponseBodyFraming::Length(n)
    } else {
        ResponseBodyFraming::UntilClose
    };
    let keep_alive =
        !close && (!http10 || keep_alive_asked) && framing != ResponseBodyFraming::UntilClose;
    Ok(Some(ParsedResponseHead {
        len,
        status,
        fields,
        framing,
        keep_alive,
    }))
}

/// Appends a request head to `out`: the request line, `Host`, the given
/// fields, and the body's framing (`Content-Length` for a known length,
/// none for a bodiless GET/HEAD/DELETE/OPTIONS; the caller's fields may
/// not hold framing of their own).
pub fn encode_request_head(
    out: &mut Vec<u8>,
    method: &str,
    target: &str,
    host: &str,
    fields: &[(String, Vec<u8>)],
    body_len: Option<u64>,
) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(host.as_bytes());
    out.extend_from_slice(b"\r\n");
    push_field_lines(out, fields.iter().map(|(n, v)| (n.as_str(), v.as_slice())));
    if let Some(n) = body_len {
        out.extend_from_slice(b"Content-Length: ");
        out.extend_from_slice(n.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Option<ParsedResponseHead>, BadResponse> {
        parse_response_head(s.as_bytes(), false, 8192)
    }

    #[test]
    fn framing_follows_rfc_9112_section_6_3() {
        let h = parse("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.status, h.framing, h.keep_alive),
            (200, ResponseBodyFraming::Length(5), true)
        );
        assert_eq!(h.len, 38);
        let h = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, ResponseBodyFraming::Chunked);
        let h = parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.framing, h.keep_alive),
            (ResponseBodyFraming::UntilClose, false)
        );
        let h = parse("HTTP/1.1 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!(
            (h.framing, h.keep_alive),
            (ResponseBodyFraming::UntilClose, false)
        );
        for status in ["204 No Content", "304 Not Modified", "100 Continue"] {
            let h = parse(&format!("HTTP/1.1 {status}\r\nContent-Length: 9\r\n\r\n"))
                .unwrap()
                .unwrap();
            assert_eq!(h.framing, ResponseBodyFraming::None, "{status}");
        }
        let h = parse_response_head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true, 8192)
            .unwrap()
            .unwrap();
        assert_eq!(h.framing, ResponseBodyFraming::None);
    }

    #[test]
    fn persistence_follows_the_version_and_connection() {
        let h = parse("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = parse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!h.keep_alive);
        let h = parse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(h.keep_alive);
    }

    #[test]
    fn bad_responses_are_errors_not_guesses() {
        for bad in [
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
            "HTTP/1.1 2000 OK\r\n\r\n",
            "HTTP/2.0 200 OK\r\n\r\n",
            "garbage\r\n\r\n",
            "HTTP/1.1 200 OK\r\nNo-Colon\r\n\r\n",
            "HTTP/1.1 200 OK\nContent-Length: 0\n\n",
            "HTTP/1.1 099 Odd\r\n\r\n",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        // A head still arriving is not an error until it passes the limit.
        assert_eq!(parse("HTTP/1.1 200 OK\r\nX: y").unwrap(), None);
        let long = format!("HTTP/1.1 200 OK\r\nX: {}", "y".repeat(9000));
        assert!(parse(&long).is_err());
    }

    #[test]
    fn a_request_head_is_encoded_with_host_and_length() {
        let mut out = Vec::new();
        encode_request_head(
            &mut out,
            "POST",
            "/orders?x=1",
            "127.0.0.1:8080",
            &[("Idempotency-Key".to_owned(), b"42".to_vec())],
            Some(3),
        );
        assert_eq!(
            out,
            b"POST /orders?x=1 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nIdempotency-Key: 42\r\nContent-Length: 3\r\n\r\n"
        );
    }
}
