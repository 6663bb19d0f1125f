//! HTTP/1.1 as pure code: bytes to requests and responses to bytes, and the
//! message types themselves. Nothing here touches a socket or the loop, so
//! every rule is unit-tested with plain byte strings; the connection engine
//! (`engine/`) is the only code that knows about sockets.

pub(crate) mod accept;
mod blocks;
mod chunked;
pub(crate) mod client_role;
#[cfg(feature = "http")]
mod compat;
pub(crate) mod cookie;
mod date;
mod encode;
mod error;
pub(crate) mod extract;
mod fields;
mod head;
pub(crate) mod host;
pub(crate) mod request;
mod request_line;
pub(crate) mod respond;
pub(crate) mod response;
pub(crate) mod spares;
pub(crate) mod status;

pub(crate) use blocks::find_byte;
pub use chunked::ChunkedDecoder;
pub use client_role::{
    encode_request_head, parse_response_head, BadResponse, ParsedResponseHead, ResponseBodyFraming,
};
pub use cookie::{parse_cookies, Cookie, SameSite};
#[cfg(feature = "postgres")]
pub(crate) use date::civil_from_days;
pub use date::{format_imf_fixdate, parse_imf_fixdate, DateCache};
pub use encode::{encode_cached, encode_continue, encode_head, ResponseFraming, ResponseHead};
pub use error::{Error, HttpError};
pub use extract::{Form, FromRequest, Json, Path, Query};
pub use head::{parse_head, BodyFraming, HeadLimits, ParsedHead, Version};
pub use respond::IntoResponse;
pub use status::{reason_phrase, StatusCode};

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

/// [`is_tchar`] as a table, for tokens scanned a byte at a time (methods,
/// field names).
pub(crate) static TCHAR: [bool; 256] = {
    let mut map = [false; 256];
    let mut b = 0;
    while b < 256 {
        map[b] = is_tchar(b as u8);
        b += 1;
    }
    map
};

/// A xorshift generator for the codec's randomized tests: repeatable from
/// its seed, and no dependency.
#[cfg(test)]
pub(crate) fn xorshift(mut seed: u64) -> impl FnMut() -> usize {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed as usize
    }
}
