//! The HTTP/1.1 codec: pure functions from bytes to requests and from
//! responses to bytes. Nothing here touches a socket or the loop, so every
//! rule is unit-tested with plain byte strings; `connection.rs` is the only
//! code that knows about sockets.

mod chunked;
mod date;
mod error;
mod head;
mod request_line;
mod response;
mod status;

pub use chunked::ChunkedDecoder;
pub use date::DateCache;
pub use error::HttpError;
pub use head::{parse_head, BodyFraming, HeadLimits, ParsedHead, Version};
pub use response::{
    encode_continue, encode_head, encode_head_cached, ResponseFraming, ResponseHead,
};
pub use status::reason_phrase;

/// `tchar` (RFC 9110 §5.6.2): the bytes a token (a method, a field name)
/// may hold.
pub(crate) const fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}
