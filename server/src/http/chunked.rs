//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally: bytes
//! may arrive one at a time and the decoder never needs them again.

use super::{HttpError, TCHAR};

/// Longest chunk-size line (size, extensions, CRLF) we accept.
const MAX_SIZE_LINE: usize = 1024;
/// Most trailer bytes we read (and ignore) after the last chunk.
const MAX_TRAILER_BYTES: usize = 16 * 1024;

/// Where in `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS
/// chunk-ext-val ] )` the decoder is (RFC 9112 §7.1.1; BWS is spaces and
/// tabs; a name is a token, a value a token or a quoted-string).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// Whitespace after the size or an extension: a `;` must follow.
    BeforeSemicolon,
    /// After `;`: whitespace, then a name.
    NameStart,
    /// In a name: the line may end, or `=` or `;` come.
    Name,
    /// Whitespace after a name: `=` or `;` (or the line's end) come.
    AfterName,
    /// After `=`: whitespace, then a value.
    ValueStart,
    /// In a token value.
    Token,
    /// In a quoted-string value.
    Quoted,
    /// After a backslash in a quoted-string.
    QuotedPair,
    /// After a closing quote: the line may end, or whitespace or `;` come.
    AfterQuoted,
}

impl Ext {
    /// The line may end here (an extension, or none, is complete).
    fn may_end(self) -> bool {
        matches!(
            self,
            Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterQuoted
        )
    }

    /// Where byte `b` leads; `None` if the grammar has no place for it.
    fn next(self, b: u8) -> Option<Ext> {
        let space = b == b' ' || b == b'\t';
        let token = TCHAR[usize::from(b)];
        Some(match self {
            Ext::BeforeSemicolon if space => Ext::BeforeSemicolon,
            Ext::BeforeSemicolon if b == b';' => Ext::NameStart,
            Ext::NameStart if space => Ext::NameStart,
            Ext::NameStart | Ext::Name if token => Ext::Name,
            Ext::Name | Ext::AfterName if space => Ext::AfterName,
            Ext::Name | Ext::AfterName if b == b'=' => Ext::ValueStart,
            Ext::Name | Ext::AfterName | Ext::Token | Ext::AfterQuoted if b == b';' => {
                Ext::NameStart
            }
            Ext::ValueStart if space => Ext::ValueStart,
            Ext::ValueStart if b == b'"' => Ext::Quoted,
            Ext::ValueStart | Ext::Token if token => Ext::Token,
            Ext::Token | Ext::AfterQuoted if space => Ext::BeforeSemicolon,
            // qdtext: HTAB, SP, visible but `"` and `\`, obs-text.
            Ext::Quoted if b == b'"' => Ext::AfterQuoted,
            Ext::Quoted if b == b'\\' => Ext::QuotedPair,
            Ext::Quoted if space || (0x21..=0x7E).contains(&b) || b >= 0x80 => Ext::Quoted,
            // quoted-pair: HTAB, SP, visible, obs-text.
            Ext::QuotedPair if space || (0x21..=0x7E).contains(&b) || b >= 0x80 => Ext::Quoted,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk size.
    Size {
        value: u64,
        digits: u8,
        line: usize,
    },
    /// Inside the chunk extensions (RFC 9112 §7.1.1), at `at`.
    Extension {
        value: u64,
        line: usize,
        at: Ext,
    },
    /// Saw CR after the size line; LF must follow.
    SizeLf {
        value: u64,
    },
    /// Chunk data left to copy.
    Data {
        remaining: u64,
    },
    /// CRLF after chunk data.
    DataCr,
    DataLf,
    /// Trailer section: at the start of a line.
    TrailerLineStart {
        total: usize,
    },
    /// In a trailer line's field name.
    TrailerName {
        total: usize,
    },
    /// In a trailer line's field value (after its colon).
    TrailerValue {
        total: usize,
    },
    TrailerLf {
        total: usize,
        empty: bool,
    },
    Done,
}

/// Decodes a chunked body into a buffer, enforcing a size limit.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    decoded: u64,
}

impl Default for ChunkedDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ChunkedDecoder {
    /// A decoder at the start of a body.
    pub fn new() -> Self {
        ChunkedDecoder {
            state: State::Size {
                value: 0,
                digits: 0,
                line: 0,
            },
            decoded: 0,
        }
    }

    /// True once the last chunk and the trailers have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes as much of `input` as possible, appending data to `out`.
    /// Returns the bytes consumed (everything unless the body ended inside
    /// `input`: the rest belongs to the next request). A body growing past
    /// `max_body` is refused with 413.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_body: u64,
    ) -> Result<usize, HttpError> {
        let bad = |m| Err(HttpError::bad_request(m));
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            self.state = match self.state {
                State::Done => return Ok(i),
                State::Size {
                    value,
                    digits,
                    line,
                } => {
                    if line >= MAX_SIZE_LINE {
                        return bad("chunk size line too long");
                    }
                    match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            if digits == 16 {
                                return bad("chunk size too large");
                            }
                            let d = (b as char).to_digit(16).expect("hex digit") as u64;
                            State::Size {
                                value: (value << 4) | d,
                                digits: digits + 1,
                                line: line + 1,
                            }
                        }
                        b';' if digits > 0 => State::Extension {
                            value,
                            line: line + 1,
                            at: Ext::NameStart,
                        },
                        b' ' | b'\t' if digits > 0 => State::Extension {
                            value,
                            line: line + 1,
                            at: Ext::BeforeSemicolon,
                        },
                        b'\r' if digits > 0 => State::SizeLf { value },
                        _ => return bad("invalid chunk size"),
                    }
                }
                State::Extension { value, line, at } => {
                    if line >= MAX_SIZE_LINE {
                        return bad("chunk size line too long");
                    }
                    if b == b'\r' && at.may_end() {
                        State::SizeLf { value }
                    } else if b == b'\n' {
                        return bad("bare LF in chunk size line");
                    } else {
                        match at.next(b) {
                            Some(at) => State::Extension {
                                value,
                                line: line + 1,
                                at,
                            },
                            None => return bad("invalid chunk extension"),
                        }
                    }
                }
                State::SizeLf { value } => {
                    if b != b'\n' {
                        return bad("invalid chunk size line ending");
                    }
                    if value == 0 {
                        State::TrailerLineStart { total: 0 }
                    } else {
                        if self.decoded.saturating_add(value) > max_body {
                            return Err(HttpError::new(413, "request body too large"));
                        }
                        State::Data { remaining: value }
                    }
                }
                State::Data { remaining } => {
                    let take = (remaining as usize).min(input.len() - i);
                    out.extend_from_slice(&input[i..i + take]);
                    self.decoded += take as u64;
                    i += take;
                    let left = remaining - take as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
                    };
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return bad("chunk data not followed by CRLF");
                    }
                    State::DataLf
                }
                State::DataLf => {
                    if b != b'\n' {
                        return bad("chunk data not followed by CRLF");
                    }
                    State::Size {
                        value: 0,
                        digits: 0,
                        line: 0,
                    }
                }
                // RFC 9112 §7.1.2: trailer fields are field lines (§5):
                // a token, a colon, a value of visible bytes, spaces, tabs
                // or obs-text.
                State::TrailerLineStart { total } => match b {
                    b'\r' => State::TrailerLf { total, empty: true },
                    b'\n' => return bad("bare LF in trailer section"),
                    _ if TCHAR[usize::from(b)] => State::TrailerName { total: total + 1 },
                    _ => return bad("invalid trailer field"),
                },
                State::TrailerName { total } => {
                    if total >= MAX_TRAILER_BYTES {
                        return Err(HttpError::new(431, "trailer section too large"));
                    }
                    match b {
                        b':' => State::TrailerValue { total: total + 1 },
                        _ if TCHAR[usize::from(b)] => State::TrailerName { total: total + 1 },
                        _ => return bad("invalid trailer field"),
                    }
                }
                State::TrailerValue { total } => {
                    if total >= MAX_TRAILER_BYTES {
                        return Err(HttpError::new(431, "trailer section too large"));
                    }
                    match b {
                        b'\r' => State::TrailerLf {
                            total,
                            empty: false,
                        },
                        b'\n' => return bad("bare LF in trailer section"),
                        b'\t' | b' '..=b'~' | 0x80..=0xFF => {
                            State::TrailerValue { total: total + 1 }
                        }
                        _ => return bad("invalid trailer field"),
                    }
                }
                State::TrailerLf { total, empty } => {
                    if b != b'\n' {
                        return bad("invalid trailer line ending");
                    }
                    if empty {
                        State::Done
                    } else {
                        State::TrailerLineStart { total: total + 2 }
                    }
                }
            };
            i += 1;
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], limit: u64) -> Result<(Vec<u8>, usize), HttpError> {
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        let n = d.decode(input, &mut out, limit)?;
        assert!(
            d.is_done(),
            "not done after {:?}",
            String::from_utf8_lossy(input)
        );
        Ok((out, n))
    }

    fn err(input: &str, status: u16, message: &str) {
        let mut d = ChunkedDecoder::new();
        let e = d
            .decode(input.as_bytes(), &mut Vec::new(), 100)
            .unwrap_err();
        assert_eq!((e.status, e.message), (status, message), "{input:?}");
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        assert_eq!(
            decode_all(b"5\r\nhello\r\n0\r\n\r\n", 100).unwrap(),
            (b"hello".to_vec(), 15)
        );
        assert_eq!(
            decode_all(
                b"3;name=v\r\nabc\r\nA\r\n0123456789\r\n0\r\nX-T: 1\r\n\r\nNEXT",
                100
            )
            .unwrap(),
            (b"abc0123456789".to_vec(), 43)
        );
        assert_eq!(decode_all(b"0\r\n\r\n", 100).unwrap(), (vec![], 5));
        // Every form the extension grammar allows, whitespace included.
        for ext in [
            ";a",
            ";a=b",
            " ;a",
            "\t; a = b ;c",
            ";a=\"quoted; \\\" value\"",
            ";a=\"\" ;b",
            ";a;b=1;c=\"x\"",
        ] {
            let body = format!("3{ext}\r\nabc\r\n0\r\n\r\n");
            assert_eq!(
                decode_all(body.as_bytes(), 100).unwrap().0,
                b"abc",
                "{body:?}"
            );
        }
        let body = b"0\r\nX-T:\r\nY:  v \t\xe9\r\n\r\n";
        assert!(
            decode_all(body, 100).is_ok(),
            "empty and padded trailer values"
        );
    }

    #[test]
    fn decodes_one_byte_at_a_time() {
        let input = b"4\r\nwiki\r\n5\r\npedia\r\n0\r\nTrailer: x\r\n\r\n";
        let mut d = ChunkedDecoder::new();
        let mut out = Vec::new();
        for b in input.iter() {
            assert_eq!(d.decode(std::slice::from_ref(b), &mut out, 100).unwrap(), 1);
        }
        assert!(d.is_done());
        assert_eq!(out, b"wikipedia");
    }

    #[test]
    fn rejections() {
        err("x\r\n", 400, "invalid chunk size");
        err("\r\n", 400, "invalid chunk size");
        err("-1\r\n", 400, "invalid chunk size");
        err("11111111111111111\r\n", 400, "chunk size too large");
        err("5\nhello", 400, "invalid chunk size");
        err("5\rXhello", 400, "invalid chunk size line ending");
        err("5\r\nhelloXX", 400, "chunk data not followed by CRLF");
        err("5;ext\n", 400, "bare LF in chunk size line");
        err("0\r\nX: y\n", 400, "bare LF in trailer section");
        err("65\r\n", 413, "request body too large");
        // RFC 9112 §7.1.1: chunk-ext = *( BWS ";" BWS name [ BWS "=" BWS value ] ).
        err("5;\r\n", 400, "invalid chunk extension");
        err("5 \r\n", 400, "invalid chunk extension");
        err("5;bad[=x\r\n", 400, "invalid chunk extension");
        err("5;a\0b\r\n", 400, "invalid chunk extension");
        err("5;a=\r\n", 400, "invalid chunk extension");
        err("5;a=\"x\r\n", 400, "invalid chunk extension");
        err("5;a=\"\0\"\r\n", 400, "invalid chunk extension");
        err("5;a=b c\r\n", 400, "invalid chunk extension");
        // RFC 9112 §7.1.2: a trailer line is a field line.
        err("0\r\nno colon\r\n\r\n", 400, "invalid trailer field");
        err("0\r\n: no name\r\n\r\n", 400, "invalid trailer field");
        err("0\r\nX-T: a\0b\r\n\r\n", 400, "invalid trailer field");
        err("0\r\nX T: v\r\n\r\n", 400, "invalid trailer field");
        err(
            "32\r\n01234567890123456789012345678901234567890123456789\r\n33\r\n",
            413,
            "request body too large",
        );
    }
}
