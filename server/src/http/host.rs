//! The Host field and an absolute-form target's authority, checked against
//! RFC 9112 §3.2 and RFC 3986 §3.2.2: `uri-host [ ":" port ]`.

use std::cell::Cell;

/// Bytes of a `reg-name` or `IPv4address`: unreserved, pct-encoded (its
/// `%`; the two hex digits are unreserved) and sub-delims.
static REG_NAME: [bool; 256] = {
    let mut map = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        map[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    map
};

/// `uri-host [ ":" port ]`, or empty (RFC 9112 §3.2 lets a Host field be
/// empty when the target has no authority). Refused: a path, a query, a
/// `userinfo@`, a list (`a, b` holds a space), anything else outside the
/// grammar. An IP-literal (`[...]`) is checked for its brackets and
/// characters, not parsed as an IPv6 address.
///
/// A Host is in every request and a server sees very few distinct ones:
/// the last value this thread found valid is remembered (up to 16 bytes),
/// so nearly every check is two compares of eight bytes.
#[inline(always)] // into the parse, once its fields are scanned
pub(crate) fn valid_host(value: &[u8]) -> bool {
    let Some(key) = Key::of(value) else {
        return check_host(value);
    };
    if LAST_VALID.with(Cell::get) == Some(key) {
        return true;
    }
    let ok = check_host(value);
    if ok {
        LAST_VALID.with(|last| last.set(Some(key)));
    }
    ok
}

thread_local! {
    /// The last Host value (up to 16 bytes) this thread found valid.
    static LAST_VALID: Cell<Option<Key>> = const { Cell::new(None) };
}

/// A value of up to 16 bytes as its first and last eight (they overlap
/// below 16) and its length: equal keys, equal values.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Key {
    first: u64,
    last: u64,
    len: u8,
}

impl Key {
    #[inline]
    fn of(value: &[u8]) -> Option<Key> {
        let len = value.len();
        let (first, last) = match len {
            8..=16 => (
                u64::from_le_bytes(value[..8].try_into().ok()?),
                u64::from_le_bytes(value[len - 8..].try_into().ok()?),
            ),
            0..=7 => {
                let word = value
                    .iter()
                    .rev()
                    .fold(0u64, |w, &b| (w << 8) | u64::from(b));
                (word, 0)
            }
            _ => return None,
        };
        Some(Key {
            first,
            last,
            len: len as u8,
        })
    }
}

/// The grammar itself, a byte at a time.
#[cold]
fn check_host(value: &[u8]) -> bool {
    let (host, port) = match value {
        [b'[', rest @ ..] => {
            let Some(close) = rest.iter().position(|&b| b == b']') else {
                return false;
            };
            let literal = &rest[..close];
            let literal_ok = !literal.is_empty()
                && literal
                    .iter()
                    .all(|&b| b == b':' || b == b'.' || REG_NAME[usize::from(b)]);
            if !literal_ok {
                return false;
            }
            match &rest[close + 1..] {
                [] => return true,
                [b':', port @ ..] => (&[][..], port),
                _ => return false,
            }
        }
        _ => match value.iter().position(|&b| b == b':') {
            Some(colon) => (&value[..colon], &value[colon + 1..]),
            None => (value, &[][..]),
        },
    };
    host.iter().all(|&b| REG_NAME[usize::from(b)]) && port.iter().all(u8::is_ascii_digit)
}

/// The authority of an absolute-form target (`http://authority/path`), if
/// `target` is one.
pub(crate) fn authority_of(target: &[u8]) -> Option<&[u8]> {
    let scheme_len = if target.len() >= 7 && target[..7].eq_ignore_ascii_case(b"http://") {
        7
    } else if target.len() >= 8 && target[..8].eq_ignore_ascii_case(b"https://") {
        8
    } else {
        return None;
    };
    let rest = &target[scheme_len..];
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    Some(&rest[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_the_grammar_allows() {
        for ok in [
            "",
            "x",
            "example.com",
            "example.com:8080",
            "127.0.0.1",
            "127.0.0.1:3000",
            "[::1]",
            "[::1]:443",
            "[fe80::1%25eth0]",
            "xn--bcher-kva.example",
            "a_b.c~d",
            "host:",
            "sub.delims!$&'()*+,;=",
        ] {
            assert!(valid_host(ok.as_bytes()), "{ok:?} refused");
        }
    }

    #[test]
    fn hosts_the_grammar_refuses() {
        for bad in [
            "h:p/path",
            "user@h",
            "a, b",
            "h:80x",
            "h:8:8",
            "[::1",
            "[]",
            "[::1]x",
            "h/",
            "h?q",
            "h#f",
            "h b",
            "h\tb",
            "h\"",
            "h<",
            "caf\u{e9}",
            "a\\b",
            "h{",
            "h|",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad:?} taken");
        }
    }

    #[test]
    fn absolute_form_authorities() {
        assert_eq!(authority_of(b"http://h:1/p?q"), Some(&b"h:1"[..]));
        assert_eq!(authority_of(b"HTTPS://h"), Some(&b"h"[..]));
        assert_eq!(authority_of(b"http://"), Some(&b""[..]));
        assert_eq!(authority_of(b"http://?x"), Some(&b""[..]));
        assert_eq!(authority_of(b"/p"), None);
        assert_eq!(authority_of(b"ftp://h/"), None);
    }
}

#[cfg(test)]
mod cache_tests {
    use super::*;

    /// The remembered value never lets another through: values that share
    /// their first and last eight bytes, or differ only in length, are
    /// judged on their own.
    #[test]
    fn the_remembered_host_admits_only_itself() {
        assert!(valid_host(b"abcdefgh12345678"));
        assert!(!valid_host(b"abcdefg/12345678"));
        assert!(valid_host(b"example.com:80"));
        assert!(!valid_host(b"example.com:8/"));
        assert!(valid_host(b"ab"));
        assert!(!valid_host(b"a@"));
        assert!(!valid_host(b"ab\0"));
        assert!(valid_host(b"ab"));
        assert!(!valid_host(b"a b"));
    }
}
