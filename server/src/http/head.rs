//! Request heads: the request line and header fields (RFC 9112 §2–§6).
//!
//! The request line is ours (`request_line.rs`); plain field lines are
//! scanned by us (`fields.rs`), any others parsed by httparse. This module
//! adds what a server must decide from the fields: framing of the body,
//! persistence of the connection, `Expect: 100-continue`, and every
//! rejection RFC 9112 asks for.

use super::fields::scan_plain_fields;
use super::host::{authority_of, valid_host};
use super::request_line::parse_request_line;
use super::HttpError;

/// Limits on a request head.
#[derive(Debug, Clone, Copy)]
pub struct HeadLimits {
    /// Longest request line (method, target, version) in bytes: 414 beyond.
    pub max_request_line: usize,
    /// Largest head (request line plus fields) in bytes: 431 beyond.
    pub max_head_bytes: usize,
    /// Most header fields: 431 beyond.
    pub max_headers: usize,
}

/// Most header fields httparse may fill in one parse; `HeadLimits::max_headers`
/// may only be lower.
pub const HEADER_SLOTS: usize = 128;

/// Header slots filled for every request. More (up to the limit) are
/// filled only for a request that needs them, which is then parsed again:
/// a browser sends 10 to 20 fields, a program fewer, and each slot filled
/// costs every request two instructions.
const INLINE_HEADER_SLOTS: usize = 24;

/// The protocol version of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// HTTP/1.0: connections close unless the client asks for keep-alive.
    Http10,
    /// HTTP/1.1: connections persist unless a side says `close`.
    Http11,
}

/// How the request's body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body.
    None,
    /// Exactly this many bytes.
    Length(u64),
    /// The chunked transfer coding.
    Chunked,
}

/// Byte ranges into the buffer the head was parsed from.
pub type Span = (u32, u32);

/// A parsed request head. Names and values are spans into the parsed buffer
/// so the connection can keep them without copying each one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedHead {
    /// Bytes the head occupies, final CRLF included.
    pub len: usize,
    /// The method token.
    pub method: Span,
    /// The method is GET.
    pub is_get: bool,
    /// The request target as sent.
    pub target: Span,
    /// Where the target's first `?` is, if it has one.
    pub query_mark: Option<u32>,
    /// Protocol version.
    pub version: Version,
    /// Number of header fields (the request scans its head bytes for them:
    /// most handlers read none, so no index is built per request).
    pub header_count: usize,
    /// How the body is delimited.
    pub framing: BodyFraming,
    /// Whether the connection may serve another request after this one.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue`.
    pub expect_continue: bool,
    /// An HTTP/1.1 request with `Connection: upgrade`: nothing after it is
    /// read until it is answered (its answer may switch protocols).
    pub upgrade: bool,
}

/// `name` (a field name, or an item of a field value) equals `lower`
/// (lowercase letters and `-`, at least 4 bytes) ignoring ASCII case, a word
/// at a time: every request compares its field names with these. Setting
/// bit 5 of a byte maps only `A`..=`Z` onto lowercase letters and only CR
/// onto `-`, and neither names nor values hold a CR, so the comparison is
/// exact.
fn name_is(name: &[u8], lower: &[u8]) -> bool {
    const LOWER64: u64 = 0x2020_2020_2020_2020;
    const LOWER32: u32 = 0x2020_2020;
    let n = name.len();
    debug_assert!(lower.len() >= 4 && lower.iter().all(|b| b & 0x20 != 0));
    if n != lower.len() {
        return false;
    }
    let word = |b: &[u8], at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("8"));
    let half = |b: &[u8], at: usize| u32::from_le_bytes(b[at..at + 4].try_into().expect("4"));
    if n >= 8 {
        // Whole words, then the last eight bytes (overlapping if need be).
        let mut at = 0;
        while at + 8 < n {
            if word(name, at) | LOWER64 != word(lower, at) {
                return false;
            }
            at += 8;
        }
        word(name, n - 8) | LOWER64 == word(lower, n - 8)
    } else {
        half(name, 0) | LOWER32 == half(lower, 0)
            && half(name, n - 4) | LOWER32 == half(lower, n - 4)
    }
}

/// What the server decides from the header fields, gathered one field at
/// a time in the order received.
#[derive(Default)]
struct FieldFacts<'a> {
    content_length: Option<u64>,
    transfer_encoding: bool,
    chunked: bool,
    host_count: usize,
    /// The last Host field's value, judged once the scan is done: its check
    /// inside the scan made the scan's one function heavier for every
    /// field (measured: 51 instructions a request for a 20 instruction
    /// check).
    host: &'a [u8],
    conn_close: bool,
    conn_keep_alive: bool,
    /// `Connection: upgrade`: the client asks to switch protocols.
    conn_upgrade: bool,
    expect_continue: bool,
    /// Every field line ended in CRLF (only httparse's parse can say
    /// otherwise: it takes a bare LF).
    field_lines_ok: bool,
    /// The first field that makes the request one to refuse; later fields
    /// are not looked at.
    error: Option<HttpError>,
}

impl<'a> crate::http::fields::OnField<'a> for &mut FieldFacts<'a> {
    #[inline(always)] // see `scan_plain_fields`
    fn field(&mut self, name: &'a [u8], value: &'a [u8]) {
        self.take(name, value);
    }
}

impl<'a> FieldFacts<'a> {
    fn new() -> FieldFacts<'a> {
        FieldFacts {
            field_lines_ok: true,
            ..FieldFacts::default()
        }
    }

    /// Takes one field into account. Inline up to the length test: most
    /// fields are none of the five judged, and Host (in every request) is
    /// only counted.
    #[inline(always)] // see `scan_plain_fields`
    fn take(&mut self, name: &[u8], value: &'a [u8]) {
        match name.len() {
            4 if name_is(name, b"host") => {
                self.host_count += 1;
                self.host = value;
            }
            6 | 10 | 14 | 17 => self.take_judged(name, value),
            _ => {}
        }
    }

    #[inline(never)]
    fn take_judged(&mut self, name: &[u8], value: &[u8]) {
        if self.error.is_none() {
            if let Err(e) = self.judge(name, value) {
                self.error = Some(e);
            }
        }
    }

    fn judge(&mut self, name: &[u8], value: &[u8]) -> Result<(), HttpError> {
        // Dispatch on length first: most fields are none of these five.
        match name.len() {
            14 if name_is(name, b"content-length") => {
                // RFC 9112 §6.3 (5): an invalid Content-Length is unrecoverable.
                let n = parse_content_length(value)?;
                match self.content_length {
                    Some(prev) if prev != n => {
                        return Err(HttpError::bad_request("conflicting Content-Length fields"))
                    }
                    _ => self.content_length = Some(n),
                }
            }
            17 if name_is(name, b"transfer-encoding") => {
                self.transfer_encoding = true;
                // RFC 9112 §6.3 (4): chunked must be the final coding, once.
                for coding in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    if coding.is_empty() {
                        continue;
                    }
                    if self.chunked {
                        return Err(HttpError::bad_request(
                            "chunked must be the final transfer coding",
                        ));
                    }
                    if coding.eq_ignore_ascii_case(b"chunked") {
                        self.chunked = true;
                    } else {
                        // RFC 9112 §6.1: an unknown transfer coding we cannot decode.
                        return Err(HttpError::new(501, "unsupported transfer coding"));
                    }
                }
            }
            10 if name_is(name, b"connection") => {
                // One pass over the options; the two we act on compare a
                // word at a time (a value holds no CR: `name_is` is exact).
                for option in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
                    match option.len() {
                        5 => self.conn_close |= name_is(option, b"close"),
                        10 => self.conn_keep_alive |= name_is(option, b"keep-alive"),
                        7 => self.conn_upgrade |= name_is(option, b"upgrade"),
                        _ => {}
                    }
                }
            }
            6 if name_is(name, b"expect") => {
                if value.trim_ascii().eq_ignore_ascii_case(b"100-continue") {
                    self.expect_continue = true;
                } else {
                    return Err(HttpError::new(417, "unsupported expectation"));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

/// The fields of a head that is not plain (or not complete), parsed by
/// httparse: `Ok(Some((len, count)))` when complete, `Ok(None)` when more
/// bytes are needed. Kept out of line: its slots are filled in on every
/// call, which the plain scan must not pay for.
#[inline(never)]
fn fields_by_httparse<'a>(
    fields_buf: &'a [u8],
    max: usize,
    facts: &mut FieldFacts<'a>,
) -> Result<Option<(usize, usize)>, HttpError> {
    // httparse's slots must be initialised (it has no uninitialised
    // variant for fields alone).
    let mut inline = [httparse::EMPTY_HEADER; INLINE_HEADER_SLOTS];
    let mut all: [httparse::Header<'_>; HEADER_SLOTS];
    let parsed =
        match httparse::parse_headers(fields_buf, &mut inline[..max.min(INLINE_HEADER_SLOTS)]) {
            Err(httparse::Error::TooManyHeaders) if max > INLINE_HEADER_SLOTS => {
                all = [httparse::EMPTY_HEADER; HEADER_SLOTS];
                httparse::parse_headers(fields_buf, &mut all[..max])
            }
            other => other,
        };
    let (len, headers) = match parsed {
        Ok(httparse::Status::Complete(done)) => done,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(HttpError::new(431, "too many header fields"))
        }
        Err(httparse::Error::HeaderName) => {
            return Err(HttpError::bad_request(
                "invalid header field name (or obs-fold)",
            ))
        }
        Err(httparse::Error::HeaderValue) => {
            return Err(HttpError::bad_request("invalid header field value"))
        }
        Err(httparse::Error::NewLine) => return Err(HttpError::bad_request("invalid line ending")),
        Err(_) => return Err(HttpError::bad_request("malformed request")),
    };
    // RFC 9112 §2.2: a bare LF is not a line terminator we accept in a
    // request we answer (httparse tolerates it). httparse refuses a bare CR
    // anywhere, so a bare LF can only end a line: check the ends of the
    // field lines here and the head's in parse_head.
    let base = fields_buf.as_ptr() as usize;
    for h in headers.iter() {
        let value_end = h.value.as_ptr() as usize - base + h.value.len();
        let rest = &fields_buf[value_end..len];
        // Nearly always the value ends right at the CR.
        if rest.first() != Some(&b'\r') {
            let after_space = rest.iter().position(|b| *b != b' ' && *b != b'\t');
            facts.field_lines_ok &= after_space.is_some_and(|i| rest[i] == b'\r');
        }
        facts.take(h.name.as_bytes(), h.value);
    }
    Ok(Some((len, headers.len())))
}

/// Parses a request head from the start of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed (and the limits still allow
/// them), `Ok(Some(head))` when complete, `Err` for a request to refuse.
// Inline into the connection's one call, every request's way (it was
// inlined there until that call sat in a generic function).
#[inline(always)]
pub fn parse_head(buf: &[u8], limits: &HeadLimits) -> Result<Option<ParsedHead>, HttpError> {
    parse_head_with(buf, limits, FieldParser::PlainScanFirst)
}

/// Who parses the field lines.
#[derive(Clone, Copy, PartialEq, Eq)]
enum FieldParser {
    /// The plain scan, httparse when it gives up (the server's way).
    PlainScanFirst,
    /// httparse alone: what tests hold the plain scan to.
    #[cfg(test)]
    HttparseOnly,
}

#[inline(always)]
fn parse_head_with(
    buf: &[u8],
    limits: &HeadLimits,
    parser: FieldParser,
) -> Result<Option<ParsedHead>, HttpError> {
    // RFC 9112 §2.2: a server SHOULD ignore at least one empty line received
    // before the request line; the connection strips those before calling.
    // Only a buffer longer than the limit can hold a request line over it.
    if buf.len() > limits.max_request_line && !buf[..=limits.max_request_line].contains(&b'\n') {
        return Err(HttpError::new(414, "request line too long"));
    }

    // An incomplete head waits for more bytes while the limit allows them.
    let incomplete = || {
        if buf.len() > limits.max_head_bytes {
            Err(HttpError::new(431, "request header block too large"))
        } else {
            Ok(None)
        }
    };
    let Some(line) = parse_request_line(buf)? else {
        return incomplete();
    };

    // The fields: plain ones scanned here, anything else by httparse.
    let max = limits.max_headers.min(HEADER_SLOTS);
    let fields_buf = &buf[line.len..];
    let mut facts = FieldFacts::new();
    let scanned = if parser == FieldParser::PlainScanFirst {
        scan_plain_fields(fields_buf, max, &mut facts)
    } else {
        None
    };
    let (fields_len, header_count) = match scanned {
        Some(done) => done,
        None => {
            facts = FieldFacts::new();
            match fields_by_httparse(fields_buf, max, &mut facts)? {
                Some(done) => done,
                None => return incomplete(),
            }
        }
    };
    let len = line.len + fields_len;
    if len > limits.max_head_bytes {
        return Err(HttpError::new(431, "request header block too large"));
    }
    let version = line.version;
    let method = &buf[line.method.0..line.method.1];
    let target = &buf[line.target.0..line.target.1];
    if !valid_target(method, target) {
        return Err(HttpError::bad_request("invalid request target"));
    }
    if let Some(e) = facts.error {
        return Err(e);
    }
    // The request line ended in CRLF (parse_request_line saw to it), so
    // the head is longer than the two bytes looked at here.
    if !facts.field_lines_ok || buf[len - 2] != b'\r' {
        return Err(HttpError::bad_request("bare LF in request head"));
    }
    let FieldFacts {
        content_length,
        transfer_encoding,
        chunked,
        host_count,
        host,
        conn_close,
        conn_keep_alive,
        conn_upgrade,
        expect_continue,
        ..
    } = facts;

    // RFC 9112 §3.2: a 1.1 request without exactly one Host is refused.
    if version == Version::Http11 && host_count != 1 {
        return Err(HttpError::bad_request(if host_count == 0 {
            "missing Host header"
        } else {
            "multiple Host headers"
        }));
    }
    if host_count > 1 {
        return Err(HttpError::bad_request("multiple Host headers"));
    }
    // RFC 9112 §3.2: a Host field with an invalid value is refused too.
    if host_count == 1 && !valid_host(host) {
        return Err(HttpError::bad_request("invalid Host header"));
    }

    let framing = if transfer_encoding {
        // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 is faulty framing.
        if version == Version::Http10 {
            return Err(HttpError::bad_request(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        // RFC 9112 §6.3 (3): both headers present is a smuggling attempt.
        if content_length.is_some() {
            return Err(HttpError::bad_request(
                "both Content-Length and Transfer-Encoding",
            ));
        }
        if !chunked {
            return Err(HttpError::bad_request(
                "chunked must be the final transfer coding",
            ));
        }
        BodyFraming::Chunked
    } else {
        match content_length {
            None | Some(0) => BodyFraming::None,
            Some(n) => BodyFraming::Length(n),
        }
    };

    let keep_alive = match version {
        Version::Http11 => !conn_close,
        Version::Http10 => conn_keep_alive && !conn_close,
    };

    Ok(Some(ParsedHead {
        len,
        method: (line.method.0 as u32, line.method.1 as u32),
        is_get: line.is_get,
        target: (line.target.0 as u32, line.target.1 as u32),
        query_mark: line.query_mark.map(|q| q as u32),
        version,
        header_count,
        framing,
        keep_alive,
        expect_continue: expect_continue && version == Version::Http11,
        upgrade: conn_upgrade && version == Version::Http11,
    }))
}

/// RFC 9112 §3.2: origin-form (`/path?q`), absolute-form (`http://h/p`), or
/// asterisk-form for OPTIONS. Authority-form (CONNECT) we do not serve.
/// An absolute-form target needs a host (RFC 9110 §4.2.1: a recipient MUST
/// reject an `http` URI with an empty host) that is a valid `uri-host [ ":"
/// port ]`, without `userinfo@` (RFC 9110 §4.2.4).
#[inline(always)]
fn valid_target(method: &[u8], target: &[u8]) -> bool {
    match target {
        [b'/', ..] => true,
        b"*" => method == b"OPTIONS",
        _ => valid_absolute_form(target),
    }
}

#[cold]
fn valid_absolute_form(target: &[u8]) -> bool {
    authority_of(target).is_some_and(|a| !a.is_empty() && valid_host(a))
}

/// RFC 9110 §8.6: `Content-Length = 1*DIGIT`; a list of identical values
/// (`5, 5`) may be accepted as one.
pub(super) fn parse_content_length(value: &[u8]) -> Result<u64, HttpError> {
    let mut result: Option<u64> = None;
    for part in value.split(|b| *b == b',') {
        let digits = part.trim_ascii();
        if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
            return Err(HttpError::bad_request("invalid Content-Length"));
        }
        let n = digits
            .iter()
            .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
        match result {
            Some(prev) if prev != n => {
                return Err(HttpError::bad_request("conflicting Content-Length fields"))
            }
            _ => result = Some(n),
        }
    }
    result.ok_or(HttpError::bad_request("invalid Content-Length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_agrees_with_eq_ignore_ascii_case_on_every_byte_but_cr() {
        let bytes: Vec<u8> = (0u8..=255).filter(|b| *b != b'\r').collect();
        for lower in [
            &b"host"[..],
            b"expect",
            b"connection",
            b"content-length",
            b"transfer-encoding",
            b"close",
            b"keep-alive",
        ] {
            for case in [lower.to_vec(), lower.to_ascii_uppercase()] {
                assert!(name_is(&case, lower));
                // One byte changed to every token byte, at every position.
                for at in 0..case.len() {
                    for &b in &bytes {
                        let mut name = case.clone();
                        name[at] = b;
                        assert_eq!(
                            name_is(&name, lower),
                            name.eq_ignore_ascii_case(lower),
                            "{}",
                            String::from_utf8_lossy(&name)
                        );
                    }
                }
                assert!(!name_is(&case[1..], lower));
            }
        }
    }

    const LIMITS: HeadLimits = HeadLimits {
        max_request_line: 64,
        max_head_bytes: 256,
        max_headers: 8,
    };

    fn ok(raw: &str) -> ParsedHead {
        parse_head(raw.as_bytes(), &LIMITS)
            .unwrap_or_else(|e| panic!("{raw:?}: {e}"))
            .unwrap_or_else(|| panic!("{raw:?}: incomplete"))
    }

    fn err(raw: &str, status: u16, message: &str) {
        match parse_head(raw.as_bytes(), &LIMITS) {
            Err(e) => {
                assert_eq!((e.status, e.message), (status, message), "{raw:?}");
            }
            Ok(r) => panic!("{raw:?}: expected {status} {message}, got {r:?}"),
        }
    }

    fn partial(raw: &str) {
        assert_eq!(parse_head(raw.as_bytes(), &LIMITS), Ok(None), "{raw:?}");
    }

    #[test]
    fn fields_beyond_the_stack_slots_are_parsed_up_to_the_limit() {
        let limits = HeadLimits {
            max_request_line: 64,
            max_head_bytes: 4096,
            max_headers: 50,
        };
        let head = |n: usize| {
            let mut raw = String::from("GET / HTTP/1.1\r\nHost: x\r\n");
            for i in 1..n {
                raw.push_str(&format!("X-{i}: v\r\n"));
            }
            // The last field decides: this one must be seen past the spill.
            raw.push_str("Connection: close\r\n\r\n");
            raw
        };
        for n in [
            INLINE_HEADER_SLOTS - 1,
            INLINE_HEADER_SLOTS,
            INLINE_HEADER_SLOTS + 1,
            49,
        ] {
            let parsed = parse_head(head(n).as_bytes(), &limits).unwrap().unwrap();
            assert_eq!(parsed.header_count, n + 1, "{n} fields");
            assert!(!parsed.keep_alive, "{n} fields: the last one was lost");
        }
        let refused = parse_head(head(50).as_bytes(), &limits).unwrap_err();
        assert_eq!(
            (refused.status, refused.message),
            (431, "too many header fields")
        );
    }

    /// Mutated heads (bytes replaced, inserted, dropped, cut) never panic
    /// the parser, and what it takes lies inside the buffer.
    #[test]
    fn mutated_heads_are_taken_or_refused_without_panicking() {
        const HEADS: &[&[u8]] = &[
            b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n",
            b"POST /orders HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
            b"PUT http://h/p HTTP/1.0\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
            b"OPTIONS * HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\nF: 6\r\n\r\n",
        ];
        const BYTES: &[u8] = b" \t\r\n:/?*,0aZ\x7f\x80\xff";
        // Tight limits, and limits that let a head spill past the stack
        // slots (the last head has 26 fields).
        let tight = HeadLimits {
            max_request_line: 48,
            max_head_bytes: 160,
            max_headers: 5,
        };
        let roomy = HeadLimits {
            max_request_line: 64,
            max_head_bytes: 1024,
            max_headers: 30,
        };
        let many = format!(
            "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
            "X-F: v\r\n".repeat(25)
        );
        let mut next = crate::http::xorshift(0xD1B5_4A32_D192_ED03u64);
        let mut verdicts = [0u32; 3];
        let mut spilled = 0;
        for _ in 0..50_000 {
            let pick = next() % (HEADS.len() + 1);
            let mut head = HEADS.get(pick).map_or(many.as_bytes(), |h| *h).to_vec();
            let limits = if next() % 2 == 0 { &tight } else { &roomy };
            for _ in 0..(next() % 4 + 1) {
                if head.len() < 2 {
                    break;
                }
                let at = next() % head.len();
                match next() % 4 {
                    0 => head[at] = BYTES[next() % BYTES.len()],
                    1 => head.insert(at, BYTES[next() % BYTES.len()]),
                    2 => drop(head.remove(at)),
                    _ => head.truncate(at.max(1)),
                }
            }
            match parse_head(&head, limits) {
                Ok(Some(h)) => {
                    assert!(h.len <= head.len() && h.len <= limits.max_head_bytes);
                    for (from, to) in [h.method, h.target] {
                        assert!(from < to && to as usize <= h.len, "{head:?}");
                    }
                    assert!(h.header_count <= limits.max_headers);
                    spilled += u32::from(h.header_count > INLINE_HEADER_SLOTS);
                    verdicts[0] += 1;
                }
                Ok(None) => verdicts[1] += 1,
                Err(e) => {
                    assert!((400..=505).contains(&e.status), "{e:?}");
                    verdicts[2] += 1;
                }
            }
        }
        assert!(verdicts.iter().all(|n| *n > 1000), "{verdicts:?}");
        assert!(spilled > 100, "{spilled} heads past the stack slots");
    }

    /// The plain scan decides exactly as httparse would: on random heads
    /// (fields of every kind, good and bad bytes, every line ending, cut
    /// anywhere) the server's parse and an httparse-only parse give the
    /// same head, the same wait or the same refusal.
    #[test]
    fn the_plain_scan_agrees_with_httparse_on_random_heads() {
        const NAMES: &[&[u8]] = &[
            b"Content-Length",
            b"CONTENT-LENGTH",
            b"Transfer-Encoding",
            b"Connection",
            b"Expect",
            b"X-Request-Id",
            b"Accept-Encoding",
            b"a",
            b"!#$%&'*+-.^_`|~09azAZ",
            b"User-Agent",
            b"Accept",
            b"Host",
            b"host",
            b"Ho st",
            b"Host ",
            b"",
            b"X\x7fY",
            b"\xc3\xa9",
        ];
        const VALUES: &[&[u8]] = &[
            b"x",
            b"127.0.0.1:3000",
            b"5",
            b"5, 5",
            b"5, 6",
            b"-1",
            b"chunked",
            b"gzip, chunked",
            b"chunked, gzip",
            b"close",
            b"keep-alive, Upgrade",
            b"100-continue",
            b"200-ok",
            b"",
            b" \t",
            b"a\tb",
            b"caf\xc3\xa9 \xff",
            b"a\x01b",
            b"a\x7f",
            b"x\x00y",
            b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36",
        ];
        const SEPARATORS: &[&[u8]] = &[b": ", b":", b":\t ", b" : ", b";"];
        const LINE_ENDS: &[&[u8]] = &[b"\r\n", b"\r\n", b"\r\n", b"  \r\n", b"\n", b"\r", b"\r\n "];
        let mut next = crate::http::xorshift(0x2545_F491_4F6C_DD1Du64);
        let mut scanned = 0;
        let mut verdicts = [0u32; 3];
        for _ in 0..100_000 {
            let mut head = b"GET / HTTP/1.1\r\n".to_vec();
            if next() % 4 != 0 {
                head.extend_from_slice(b"Host: x\r\n");
            }
            for _ in 0..next() % 8 {
                // Mostly well-formed lines, now and then an odd piece.
                let odd = |n: usize, common: usize| if n % 4 == 0 { n / 4 } else { n % common };
                head.extend_from_slice(NAMES[odd(next(), 10) % NAMES.len()]);
                head.extend_from_slice(SEPARATORS[odd(next(), 3) % SEPARATORS.len()]);
                head.extend_from_slice(VALUES[next() % VALUES.len()]);
                head.extend_from_slice(LINE_ENDS[odd(next(), 4) % LINE_ENDS.len()]);
            }
            head.extend_from_slice(if next() % 8 == 0 { b"\n" } else { b"\r\n" });
            if next() % 4 == 0 {
                head.truncate(next() % head.len() + 1);
            }
            let limits = HeadLimits {
                max_request_line: 64,
                max_head_bytes: [64, 256, 4096][next() % 3],
                max_headers: [1, 3, 8, 100][next() % 4],
            };
            let ours = parse_head(&head, &limits);
            let theirs = parse_head_with(&head, &limits, FieldParser::HttparseOnly);
            assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(&head));
            let fields = head.get(16..).unwrap_or_default();
            scanned += usize::from(
                scan_plain_fields(fields, limits.max_headers, |_: &[u8], _: &[u8]| {}).is_some(),
            );
            verdicts[match ours {
                Ok(Some(_)) => 0,
                Ok(None) => 1,
                Err(_) => 2,
            }] += 1;
        }
        assert!(verdicts.iter().all(|n| *n > 5000), "{verdicts:?}");
        assert!(scanned > 10_000, "only {scanned} heads were plain");
    }

    #[test]
    fn complete_heads() {
        let h = ok("GET /a?b=1 HTTP/1.1\r\nHost: x\r\n\r\n");
        assert_eq!(h.framing, BodyFraming::None);
        assert!(h.keep_alive);
        assert_eq!(h.version, Version::Http11);
        assert_eq!(h.len, 32);
        assert_eq!(h.target, (4, 10));

        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n").framing,
            BodyFraming::Length(5)
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n")
                .framing,
            BodyFraming::Length(5)
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n\r\n").framing,
            BodyFraming::Length(5)
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n").framing,
            BodyFraming::Chunked
        );
        assert_eq!(
            ok("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: CHUNKED\r\n\r\n").framing,
            BodyFraming::Chunked
        );
        assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, Close\r\n\r\n").keep_alive);
        assert!(!ok("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(ok("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").keep_alive);
        assert!(
            ok("POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
                .expect_continue
        );
        assert_eq!(ok("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n").target, (8, 9));
        ok("GET http://x/y HTTP/1.1\r\nHost: x\r\n\r\n");
    }

    #[test]
    fn partial_heads() {
        partial("GET / HTTP/1.1\r\nHost: x\r\n");
        partial("GET / HTTP/1.1\r\n");
        partial("GE");
        partial("");
    }

    #[test]
    fn rejections() {
        // RFC 9112 §6.3 and RFC 9110 §8.6: Content-Length.
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            400,
            "conflicting Content-Length fields",
        );
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 6\r\n\r\n",
            400,
            "conflicting Content-Length fields",
        );
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +5\r\n\r\n",
            400,
            "invalid Content-Length",
        );
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
            400,
            "invalid Content-Length",
        );
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n",
            400,
            "invalid Content-Length",
        );
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \r\n\r\n",
            400,
            "invalid Content-Length",
        );
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n",
            400,
            "invalid Content-Length",
        );
        // RFC 9112 §6.1 and §6.3: Transfer-Encoding.
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "both Content-Length and Transfer-Encoding",
        );
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, chunked\r\n\r\n",
            400,
            "chunked must be the final transfer coding",
        );
        err("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "chunked must be the final transfer coding");
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
            "unsupported transfer coding",
        );
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
            "unsupported transfer coding",
        );
        err(
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            400,
            "Transfer-Encoding in an HTTP/1.0 request",
        );
        // RFC 9112 §5.2: obs-fold; §5.1: a field line needs a colon.
        err(
            "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n  folded\r\n\r\n",
            400,
            "invalid header field name (or obs-fold)",
        );
        err(
            "GET / HTTP/1.1\r\nHost: x\r\nNoColon\r\n\r\n",
            400,
            "invalid header field name (or obs-fold)",
        );
        err(
            "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n",
            400,
            "invalid header field name (or obs-fold)",
        );
        // RFC 9112 §2.2: bare LF.
        err(
            "GET / HTTP/1.1\nHost: x\r\n\r\n",
            400,
            "bare LF in request head",
        );
        err(
            "GET / HTTP/1.1\r\nHost: x\n\r\n",
            400,
            "bare LF in request head",
        );
        err(
            "GET / HTTP/1.1\r\nHost: x \t \n\r\n",
            400,
            "bare LF in request head",
        );
        assert_eq!(ok("GET / HTTP/1.1\r\nHost: x \t \r\n\r\n").header_count, 1);
        // RFC 9112 §3.2: Host.
        err("GET / HTTP/1.1\r\n\r\n", 400, "missing Host header");
        err(
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
            400,
            "multiple Host headers",
        );
        // RFC 9112 §3: request line and target.
        err(
            "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "invalid request line",
        );
        err(
            "GET x HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "invalid request target",
        );
        err(
            "GET * HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "invalid request target",
        );
        err(
            "CONNECT x:443 HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
            "invalid request target",
        );
        // Versions and limits.
        err(
            "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
            505,
            "only HTTP/1.0 and HTTP/1.1 are supported",
        );
        err(
            "GET / HTTP/1.2\r\nHost: x\r\n\r\n",
            505,
            "only HTTP/1.0 and HTTP/1.1 are supported",
        );
        err(
            &format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(80)),
            414,
            "request line too long",
        );
        err(
            &format!("GET /{}", "a".repeat(80)),
            414,
            "request line too long",
        );
        err(
            &format!(
                "GET / HTTP/1.1\r\nHost: x\r\nX: {}\r\n\r\n",
                "v".repeat(300)
            ),
            431,
            "request header block too large",
        );
        err(
            &format!("GET / HTTP/1.1\r\nHost: x\r\nX: {}", "v".repeat(300)),
            431,
            "request header block too large",
        );
        err("GET / HTTP/1.1\r\nHost: x\r\na: 1\r\nb: 1\r\nc: 1\r\nd: 1\r\ne: 1\r\nf: 1\r\ng: 1\r\nh: 1\r\n\r\n", 431, "too many header fields");
        err(
            "POST / HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\n\r\n",
            417,
            "unsupported expectation",
        );
    }
}
