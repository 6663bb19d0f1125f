//! The HTTP/1.1 codec: pure functions from bytes to requests and from
//! responses to bytes. Nothing here touches a socket or the loop, so every
//! rule is unit-tested with plain byte strings; `connection.rs` is the only
//! code that knows about sockets.

mod chunked;
mod date;
mod error;
mod fields;
mod head;
mod request_line;
mod response;
mod status;

pub use chunked::ChunkedDecoder;
pub use date::DateCache;
pub use error::HttpError;
pub use head::{parse_head, BodyFraming, HeadLimits, ParsedHead, Version};
pub use response::{encode_cached, encode_continue, encode_head, ResponseFraming, ResponseHead};
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

/// Every byte 0x01, for the codec's eight-bytes-a-step scans: `ONES * b`
/// is `b` in every byte.
pub(crate) const ONES: u64 = 0x0101_0101_0101_0101;
/// Every byte's high bit, where those scans report the bytes they find.
pub(crate) const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The high bit of the lowest zero byte of `x` (higher raised bits may be
/// false alarms from a borrow; the lowest never is, so only it is used).
pub(crate) fn zero_bytes(x: u64) -> u64 {
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The first `byte` in `hay`, eight bytes a step: targets and field lines
/// are searched on every request, and a byte-by-byte scan costs several
/// instructions a byte.
pub(crate) fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    let mut words = hay.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let x =
            u64::from_le_bytes(word.try_into().expect("eight bytes")) ^ (ONES * u64::from(byte));
        let zero = zero_bytes(x);
        if zero != 0 {
            return Some(at + zero.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|b| *b == byte)
        .map(|i| at + i)
}

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
