//! Plain field lines, scanned without httparse (RFC 9112 §5).
//!
//! Nearly every request's fields are plain: token names, a colon, values of
//! visible bytes, spaces and tabs, CRLF after each line and after the last.
//! httparse's general parser costs about 200 instructions for a single
//! `Host` field (its set-up, and the 24 slots it must be given filled in);
//! with this scan, `parse_head` of such a head went from 668 instructions
//! to 425 (`parser-micro --only`), and a leading Host taken by one compare
//! saves about 95 more. It takes only fields httparse takes in
//! the same way (same names, same values, same length): anything else
//! (obs-fold, a bare LF or CR, a bad byte, too many fields, a head cut
//! short) makes it give up, and httparse parses the head and decides.
//! `head.rs`'s tests hold it to that on random and mutated heads.

use super::blocks::{controls, find_byte, find_class};
use super::TCHAR;

/// Scans the field lines at the start of `buf` (the bytes after the
/// request line), calling `field(name, value)` for each. `Some((len,
/// count))` when they are all plain and end in an empty line (`len`
/// includes its CRLF); `None` when httparse must decide. `field` may then
/// have been called for some of them.
/// What [`scan_plain_fields`] tells each field to: a closure, or a type
/// whose method is inlined (a closure's call is LLVM's to inline or not).
/// The name and value borrow the scanned bytes (`'a`), so a value can be
/// kept to judge after the scan.
pub trait OnField<'a> {
    /// One field line's name and value.
    fn field(&mut self, name: &'a [u8], value: &'a [u8]);
}

impl<'a, F: FnMut(&'a [u8], &'a [u8])> OnField<'a> for F {
    #[inline(always)]
    fn field(&mut self, name: &'a [u8], value: &'a [u8]) {
        self(name, value)
    }
}

// Inlined always, with what it calls per field (`find_value_end`,
// `FieldFacts::take`): the parse is one function on every request's way,
// and left to LLVM's budget these calls were inlined or not by the size of
// unrelated code (measured: 1,226 or 1,264 instructions a request).
#[inline(always)]
pub fn scan_plain_fields<'a>(
    buf: &'a [u8],
    max_fields: usize,
    mut field: impl OnField<'a>,
) -> Option<(usize, usize)> {
    let mut rest = buf;
    let mut count = 0;
    // Host is in every request, and first in nearly all: its name and
    // colon are known by one compare, without the search for the colon and
    // the name's check (before the loop, which stays as small as it was).
    if max_fields > 0 && starts_with_host(rest) {
        let (value, next) = field_value(&rest[5..])?;
        field.field(&rest[..4], value);
        count = 1;
        rest = next;
    }
    loop {
        // A line starts: the empty line that ends the head, or a name.
        match rest {
            [b'\r', b'\n', ..] => return Some((buf.len() - rest.len() + 2, count)),
            [first, ..] if TCHAR[usize::from(*first)] => {}
            _ => return None,
        }
        if count == max_fields {
            return None; // httparse says 431
        }
        let (name, after_name) = rest.split_at(find_byte(rest, b':')?);
        if !is_token(name) {
            return None;
        }
        let (value, next) = field_value(&after_name[1..])?;
        field.field(name, value);
        count += 1;
        rest = next;
    }
}

/// The value of a field line from just after its colon, trimmed, and the
/// bytes after the line's CRLF. `None` when httparse must decide.
#[inline(always)]
fn field_value(after_colon: &[u8]) -> Option<(&[u8], &[u8])> {
    // Nearly always one space before the value.
    let from_value = match after_colon {
        [b' ', value @ ..] if value.first().is_some_and(|b| !matches!(b, b' ' | b'\t')) => value,
        _ => {
            let spaces = after_colon
                .iter()
                .position(|b| !matches!(b, b' ' | b'\t'))?;
            &after_colon[spaces..]
        }
    };
    let cr = find_value_end(from_value)?;
    let [b'\r', b'\n', next @ ..] = &from_value[cr..] else {
        return None;
    };
    // httparse leaves trailing spaces and tabs out of the value.
    let mut value = &from_value[..cr];
    while let [trimmed @ .., b' ' | b'\t'] = value {
        value = trimmed;
    }
    Some((value, next))
}

/// `line` starts with `Host:`, the name in any case. Only the four letters
/// are lowered (`| 0x20` maps no other byte to them); the colon must be
/// exact. A line shorter than a word is left to the general way.
fn starts_with_host(line: &[u8]) -> bool {
    let Some(first) = line.get(..8) else {
        return false;
    };
    let x = u64::from_le_bytes(first.try_into().expect("eight bytes"));
    (x | 0x2020_2020) & 0xFF_FFFF_FFFF == u64::from_le_bytes(*b"host:\0\0\0")
}

/// Every byte of `name` is a `tchar`, looked up without a branch per byte:
/// a name is found by its colon (a block a step), then judged whole.
fn is_token(name: &[u8]) -> bool {
    name.iter().fold(true, |ok, b| ok & TCHAR[usize::from(*b)])
}

/// The offset of the CR that ends a field value in `bytes`: every byte
/// before it a space, a tab, visible, or above 0x7F (obs-text). `None` at
/// any other control byte, or when `bytes` ends first.
#[inline(always)] // see `scan_plain_fields`
fn find_value_end(bytes: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        // A block a step to the next byte below 0x20 or DEL.
        at = find_class(bytes, at, controls)?;
        match bytes[at] {
            b'\r' => return Some(at),
            b'\t' => at += 1,
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(buf: &[u8], max: usize) -> Option<(usize, Vec<(String, String)>)> {
        let mut seen = Vec::new();
        let (len, count) = scan_plain_fields(buf, max, |n: &[u8], v: &[u8]| {
            seen.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        })?;
        assert_eq!(count, seen.len());
        Some((len, seen))
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn plain_fields_are_taken_with_their_values_trimmed() {
        let buf = b"Host: 127.0.0.1:3000\r\nX-A:\t v  \t\r\nEmpty:\r\nSp: \r\n\r\nbody";
        assert_eq!(
            scan(buf, 8),
            Some((
                buf.len() - 4,
                pairs(&[
                    ("Host", "127.0.0.1:3000"),
                    ("X-A", "v"),
                    ("Empty", ""),
                    ("Sp", "")
                ])
            ))
        );
        assert_eq!(scan(b"\r\n", 8), Some((2, Vec::new())));
        // Tabs inside a value, obs-text, values of every length around a word.
        assert_eq!(
            scan(b"A: x\ty\tz\r\nB: caf\xc3\xa9\r\n\r\n", 8).map(|(_, f)| f[0].1.clone()),
            Some("x\ty\tz".to_string())
        );
        for n in 0..40 {
            let value = "v".repeat(n);
            let buf = format!("Name: {value}\r\n\r\n");
            assert_eq!(
                scan(buf.as_bytes(), 8),
                Some((buf.len(), pairs(&[("Name", &value)])))
            );
        }
    }

    #[test]
    fn host_is_taken_in_any_case_and_lookalikes_go_the_general_way() {
        for (buf, name, value) in [
            (&b"Host: a\r\n\r\n"[..], "Host", "a"),
            (b"hOsT:a\r\n\r\n", "hOsT", "a"),
            (b"HOST:\t a \r\n\r\n", "HOST", "a"),
            (b"Hosts: a\r\n\r\n", "Hosts", "a"),
            (b"Hos: a\r\n\r\n", "Hos", "a"),
            (b"Host-X: a\r\n\r\n", "Host-X", "a"),
            // Short of a word: the general way.
            (b"Host:\r\n\r\n", "Host", ""),
        ] {
            assert_eq!(
                scan(buf, 8),
                Some((buf.len(), pairs(&[(name, value)]))),
                "{:?}",
                String::from_utf8_lossy(buf)
            );
        }
        // Bytes that `| 0x20` would lower onto a letter of the name, or
        // onto the colon, are not the name: the general way refuses them.
        for buf in [
            &b"Hos\x14: a\r\n\r\n"[..],
            b"Host\x1a a\r\n\r\n",
            b"\x08ost: a\r\n\r\n",
        ] {
            assert_eq!(scan(buf, 8), None, "{:?}", String::from_utf8_lossy(buf));
        }
    }

    #[test]
    fn anything_unusual_is_left_to_httparse() {
        for buf in [
            &b"Host: x\r\n"[..],              // no end yet
            b"Host: x\r\n\r",                 // cut inside the end
            b"Host: x",                       // cut inside a value
            b"Host",                          // cut inside a name
            b"Host: x\n\r\n",                 // bare LF
            b"Host: x\r\n\n",                 // bare LF ends the head
            b"Host: x\ry\r\n\r\n",            // bare CR
            b"Host: x\r\n y\r\n\r\n",         // obs-fold
            b"Ho st: x\r\n\r\n",              // space in a name
            b"Host : x\r\n\r\n",              // space before the colon
            b": x\r\n\r\n",                   // empty name
            b"Host: \x01\r\n\r\n",            // control byte
            b"Host: a\x7fb\r\n\r\n",          // DEL
            b"Host: abcdefgh\x00ijk\r\n\r\n", // NUL after a whole word
        ] {
            assert_eq!(scan(buf, 8), None, "{:?}", String::from_utf8_lossy(buf));
        }
        // More fields than allowed: httparse refuses with 431.
        assert_eq!(scan(b"A: 1\r\nB: 2\r\n\r\n", 1), None);
        assert!(scan(b"A: 1\r\nB: 2\r\n\r\n", 2).is_some());
    }

    #[test]
    fn a_bad_byte_is_seen_at_every_offset() {
        for len in 0..24 {
            for bad in [0u8, 0x0b, b'\n', 0x1f, 0x7f] {
                let mut buf = format!("V: {}\r\n\r\n", "a".repeat(len)).into_bytes();
                for at in 3..3 + len {
                    let saved = buf[at];
                    buf[at] = bad;
                    assert_eq!(scan(&buf, 8), None, "len {len}, {bad:#x} at {at}");
                    buf[at] = saved;
                }
                assert!(scan(&buf, 8).is_some());
            }
        }
    }
}
