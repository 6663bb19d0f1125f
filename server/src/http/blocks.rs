//! Byte classes found sixteen bytes a step.
//!
//! The codec's scans (a target's end, a field value's end, a name's colon)
//! run on every request; one SSE2 compare classes sixteen bytes, where a
//! word trick classes eight in about twice the instructions and a loop one.
//! Each function answers a bit per byte of a block (bit `i` for byte `i`).
//! SSE2 is part of every x86_64 CPU; elsewhere the same answers come from a
//! plain loop (also what the tests hold the SSE2 answers to).

/// Bytes per block.
pub(crate) const BLOCK: usize = 16;

/// Sixteen bytes of a buffer.
pub(crate) type Block = [u8; BLOCK];

/// The offset of the first byte at or after `at` whose bit `class` sets,
/// a block a step; `None` when no byte of the rest is of the class.
///
/// The loop steps a whole block at a time, so each load's address is known
/// before the block before it is judged. What is left after the whole
/// blocks is judged as the last block of `bytes` (overlapping bytes already
/// judged, whose bits are shifted out), or, in a slice shorter than a
/// block, as a copy padded with bits masked out.
#[inline(always)]
pub(crate) fn find_class(
    bytes: &[u8],
    mut at: usize,
    class: impl Fn(&Block) -> u32,
) -> Option<usize> {
    while let Some(block) = bytes.get(at..at + BLOCK) {
        let bits = class(block.try_into().expect("a block"));
        if bits != 0 {
            return Some(at + bits.trailing_zeros() as usize);
        }
        at += BLOCK;
    }
    if at >= bytes.len() {
        return None;
    }
    let bits = if let Some(start) = bytes.len().checked_sub(BLOCK) {
        class(bytes[start..].try_into().expect("a block")) >> (at - start)
    } else {
        let rest = &bytes[at..];
        let mut block = [0; BLOCK];
        block[..rest.len()].copy_from_slice(rest);
        class(&block) & ((1 << rest.len()) - 1)
    };
    (bits != 0).then(|| at + bits.trailing_zeros() as usize)
}

/// The first `byte` in `hay`, a block a step.
pub(crate) fn find_byte(hay: &[u8], byte: u8) -> Option<usize> {
    find_class(hay, 0, |block| equal_to(block, byte))
}

#[cfg(target_arch = "x86_64")]
pub(crate) use sse2::{controls, equal_to, not_target};

#[cfg(not(target_arch = "x86_64"))]
pub(crate) use plain::{controls, equal_to, not_target};

#[cfg(target_arch = "x86_64")]
mod sse2 {
    use std::arch::x86_64::{
        __m128i, _mm_and_si128, _mm_andnot_si128, _mm_cmpeq_epi8, _mm_cmpgt_epi8, _mm_cmplt_epi8,
        _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };

    use super::Block;

    // Each public function is one `unsafe` call of a `target_feature`
    // function: SSE2 is in the x86_64 baseline, so every CPU this code
    // runs on has it, and the call is inlined like any other.

    /// Bytes below 0x20 and DEL (what a field value stops at: its CR, a
    /// tab to look at, or a byte to refuse).
    #[inline(always)]
    pub(crate) fn controls(block: &Block) -> u32 {
        // SAFETY: SSE2 is present on every x86_64 CPU.
        unsafe { controls_sse2(block) }
    }

    /// Bytes equal to `byte`.
    #[inline(always)]
    pub(crate) fn equal_to(block: &Block, byte: u8) -> u32 {
        // SAFETY: SSE2 is present on every x86_64 CPU.
        unsafe { equal_to_sse2(block, byte) }
    }

    /// Bytes that end a request target's plain ASCII: bytes outside
    /// `0x21..=0x7E` (controls, space, DEL, and bytes above 0x7F), and the visible ones RFC 3986 has no place
    /// for (`"` `#` `<` `>` `\` `^` `` ` `` `{` `|` `}`).
    #[inline(always)]
    pub(crate) fn not_target(block: &Block) -> u32 {
        // SAFETY: SSE2 is present on every x86_64 CPU.
        unsafe { not_target_sse2(block) }
    }

    #[target_feature(enable = "sse2")]
    fn not_target_sse2(block: &Block) -> u32 {
        let x = load(block);
        let set = |b: u8| _mm_set1_epi8(b as i8);
        // Signed compares: 0x80..=0xFF are negative, so "below 0x21" takes
        // them with the controls and the space; "above 0x7A" is `{|}~` and
        // DEL, `~` (allowed) taken out below.
        let outside = _mm_or_si128(_mm_cmplt_epi8(x, set(0x21)), _mm_cmpgt_epi8(x, set(0x7A)));
        // `"` and `#`: 0x22 and 0x23 are the bytes whose top seven bits are 0x22.
        let quote_hash = _mm_cmpeq_epi8(_mm_and_si128(x, set(0xFE)), set(0x22));
        // `<` `>` `\` `^` (and `|` `~`, and controls already taken): the
        // bytes whose low five bits are 0x1C or 0x1E.
        let angle_back_caret = _mm_cmpeq_epi8(_mm_and_si128(x, set(0x1D)), set(0x1C));
        let backtick = _mm_cmpeq_epi8(x, set(b'`'));
        let tilde = _mm_cmpeq_epi8(x, set(b'~'));
        let bad = _mm_or_si128(
            _mm_or_si128(outside, quote_hash),
            _mm_or_si128(angle_back_caret, backtick),
        );
        _mm_movemask_epi8(_mm_andnot_si128(tilde, bad)) as u32
    }

    #[target_feature(enable = "sse2")]
    fn load(block: &Block) -> __m128i {
        // SAFETY: reads the sixteen bytes of `block`, which this load may
        // do from any address (it needs no alignment).
        unsafe { _mm_loadu_si128(block.as_ptr().cast()) }
    }

    #[target_feature(enable = "sse2")]
    fn controls_sse2(block: &Block) -> u32 {
        let x = load(block);
        // Unsigned: a byte is at most 0x1F when the smaller of it and 0x1F
        // is itself.
        let control = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1F)), x);
        let del = _mm_cmpeq_epi8(x, _mm_set1_epi8(0x7F));
        _mm_movemask_epi8(_mm_or_si128(control, del)) as u32
    }

    #[target_feature(enable = "sse2")]
    fn equal_to_sse2(block: &Block, byte: u8) -> u32 {
        let x = load(block);
        _mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(byte as i8))) as u32
    }
}

/// The same answers a byte at a time.
#[cfg(any(test, not(target_arch = "x86_64")))]
mod plain {
    use super::Block;

    fn bits(block: &Block, class: impl Fn(u8) -> bool) -> u32 {
        block
            .iter()
            .enumerate()
            .fold(0, |bits, (i, &b)| bits | u32::from(class(b)) << i)
    }

    /// Bytes below 0x20 and DEL.
    pub(crate) fn controls(block: &Block) -> u32 {
        bits(block, |b| b < 0x20 || b == 0x7F)
    }

    /// Bytes equal to `byte`.
    pub(crate) fn equal_to(block: &Block, byte: u8) -> u32 {
        bits(block, |b| b == byte)
    }

    /// Bytes outside `0x21..=0x7E`, and `"#<>\\^`{|}`.
    pub(crate) fn not_target(block: &Block) -> u32 {
        bits(block, |b| {
            !(0x21..=0x7E).contains(&b) || b"\"#<>\\^`{|}".contains(&b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_in_every_place_is_classed_as_the_plain_loop_does() {
        for b in 0..=255u8 {
            for place in 0..BLOCK {
                let mut block = [b'a'; BLOCK];
                block[place] = b;
                assert_eq!(controls(&block), plain::controls(&block), "{b:#x}");
                assert_eq!(not_target(&block), plain::not_target(&block), "{b:#x}");
                for byte in [b, b'?', b':', 0, 0xFF] {
                    assert_eq!(
                        equal_to(&block, byte),
                        plain::equal_to(&block, byte),
                        "{b:#x} {byte:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn find_byte_finds_the_first_as_a_scan_does() {
        // Every length through two and a half blocks (whole blocks, the
        // overlapping last one, and slices shorter than a block), the byte
        // at every position, alone and twice, among bytes near it, found
        // from every start.
        for len in 0..=40 {
            for at in 0..=len {
                for from in 0..=len {
                    let mut hay = vec![b'a'; len];
                    if at < len {
                        hay[at] = b'?';
                    }
                    let want = hay[from..]
                        .iter()
                        .position(|b| *b == b'?')
                        .map(|i| from + i);
                    assert_eq!(find_class(&hay, from, |b| equal_to(b, b'?')), want);
                }
                for filler in [b'a', b'?' ^ 1, b'?' - 1, 0x80 | b'?', 0, 0xff] {
                    let mut hay = vec![filler; len];
                    if at < len {
                        hay[at] = b'?';
                        if at + 3 < len {
                            hay[at + 3] = b'?';
                        }
                    }
                    let want = hay.iter().position(|b| *b == b'?');
                    assert_eq!(find_byte(&hay, b'?'), want, "{hay:?}");
                }
            }
        }
    }
}
