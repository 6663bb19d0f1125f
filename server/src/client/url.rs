//! The part of a URL an HTTP/1.1 client needs: `http://` or `https://`,
//! `host[:port]`, and the request target.

use super::ClientError;

/// Where a request goes and what its request line and `Host` say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The host as written (a name, an IPv4 address, or an IPv6 address
    /// without its brackets).
    pub host: String,
    pub port: u16,
    /// `https://`: TLS over the connection.
    pub tls: bool,
    /// The `Host` field's value: the authority as written.
    pub authority: String,
    /// Path and query (`/` when the URL has none).
    pub path: String,
}

/// Parses `http[s]://host[:port][/path][?query]`; no user info, no
/// fragment. `https` needs the `tls` feature.
pub(crate) fn parse_url(url: &str) -> Result<Target, ClientError> {
    let invalid = |m: &str| Err(ClientError::InvalidRequest(format!("{m}: {url}")));
    let (rest, tls) = if let Some(rest) = url.strip_prefix("http://") {
        (rest, false)
    } else if let Some(rest) = url.strip_prefix("https://") {
        if cfg!(not(feature = "tls")) {
            return invalid("https needs phaseloop's `tls` feature");
        }
        (rest, true)
    } else {
        return invalid("the URL must start with http:// or https://");
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], &rest[i..]),
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let path = if path.starts_with('?') {
        format!("/{path}")
    } else {
        path.to_owned()
    };
    if path.contains('#') || path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return invalid("the path holds a fragment, a space or a control byte");
    }
    if authority.is_empty() || authority.contains('@') {
        return invalid("no host, or user info in the URL");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some(end) = v6.find(']') else {
            return invalid("an unclosed IPv6 address");
        };
        let port = match &v6[end + 1..] {
            "" => None,
            p => Some(p.strip_prefix(':').unwrap_or("x")),
        };
        (&v6[..end], port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        None if tls => 443,
        None => 80,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => return invalid("a bad port"),
        },
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'_'))
    {
        return invalid("a bad host");
    }
    Ok(Target {
        host: host.to_owned(),
        port,
        tls,
        authority: authority.to_owned(),
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_port_authority_and_target() {
        let t = parse_url("http://127.0.0.1:8080/orders?x=1").unwrap();
        assert_eq!(
            (
                t.host.as_str(),
                t.port,
                t.authority.as_str(),
                t.path.as_str()
            ),
            ("127.0.0.1", 8080, "127.0.0.1:8080", "/orders?x=1")
        );
        let t = parse_url("http://example.org").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str()),
            ("example.org", 80, "/")
        );
        let t = parse_url("http://[::1]:9/a").unwrap();
        assert_eq!(
            (t.host.as_str(), t.port, t.authority.as_str()),
            ("::1", 9, "[::1]:9")
        );
        let t = parse_url("http://h?q").unwrap();
        assert_eq!(t.path, "/?q");
        let t = parse_url("https://example.org/a");
        if cfg!(feature = "tls") {
            let t = t.unwrap();
            assert_eq!(
                (t.port, t.tls, t.authority.as_str()),
                (443, true, "example.org")
            );
            let t = parse_url("https://127.0.0.1:8443").unwrap();
            assert_eq!((t.host.as_str(), t.port, t.tls), ("127.0.0.1", 8443, true));
        } else {
            let e = t.unwrap_err().to_string();
            assert!(e.contains("`tls` feature"), "{e}");
        }
        assert!(!parse_url("http://h/").unwrap().tls);
        for bad in [
            "ftp://x/",
            "https://",
            "https://u@h/",
            "http://",
            "http://u@h/",
            "http://h:0/",
            "http://h:99999/",
            "http://h/a b",
            "http://h/#f",
            "http://[::1/",
            "http://h\r\nX: y/",
        ] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }
}
