//! A request as a handler sees it: owned, so it can travel into a timer
//! callback, a pool job's callback or an `async` block.

use std::borrow::Cow;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;

use crate::http::spares::{Spares, SPARE_BUFFER_MAX};
use crate::http::{find_byte, ParsedHead, Version};

type Span = (u32, u32);

/// A route parameter: its name and where its value is in the path
/// (start, end), filled by the router.
pub(crate) type Param = (Rc<str>, usize, usize);

/// The request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// GET
    Get,
    /// HEAD (answered like GET, without the body)
    Head,
    /// POST
    Post,
    /// PUT
    Put,
    /// DELETE
    Delete,
    /// PATCH
    Patch,
    /// OPTIONS
    Options,
    /// Any other token (see [`Request::method_str`]).
    Other,
}

impl Method {
    pub(crate) fn from_bytes(m: &[u8]) -> Method {
        match m {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"PATCH" => Method::Patch,
            b"OPTIONS" => Method::Options,
            _ => Method::Other,
        }
    }

    /// The method's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Options => "OPTIONS",
            Method::Other => "OTHER",
        }
    }
}

/// An HTTP request with its whole body.
///
/// A pointer to pooled storage: a request is moved several times between
/// the parser and a handler, and a recycled allocation (head bytes included)
/// costs neither a `malloc` nor a large copy per request.
pub struct Request {
    /// Always `Some` until the request is dropped.
    parts: Option<Box<Parts>>,
}

struct Parts {
    head: Vec<u8>,
    method: Method,
    method_span: Span,
    path: Span,
    query: Option<Span>,
    version: Version,
    /// Route parameters: name and (start, end) offsets in `path()`.
    params: Vec<Param>,
    body: Vec<u8>,
    route: Option<Rc<str>>,
    peer: Option<SocketAddr>,
}

/// Recycled request storage per thread (each loop is one thread).
const SPARE_PARTS: usize = 256;

thread_local! {
    static SPARES: Spares<Box<Parts>> = const { Spares::new(SPARE_PARTS) };
}

/// Where the path starts in a target that does not start with one:
/// absolute-form (RFC 9112 §3.2.2) after the authority; `*` has none.
#[cold]
fn path_offset(raw: &[u8]) -> u32 {
    if raw == b"*" {
        return 0;
    }
    let after_scheme = raw
        .windows(3)
        .position(|w| w == b"://")
        .map_or(0, |i| i + 3);
    raw[after_scheme..]
        .iter()
        .position(|b| *b == b'/' || *b == b'?')
        .map_or(raw.len(), |i| i + after_scheme) as u32
}

/// The path's bytes in `head`: what routing matches and what
/// [`Request::path`] shows.
fn path_of(head: &[u8], path: Span) -> &[u8] {
    &head[path.0 as usize..path.1 as usize]
}

/// Points `parts`' path at a `/` added after the head's bytes.
#[cold]
fn with_slash_path(parts: &mut Parts) {
    let at = parts.head.len() as u32;
    parts.head.push(b'/');
    parts.path = (at, at + 1);
}

impl Drop for Request {
    // Inline, so the compiler sees `parts` is `None` afterwards and drops
    // no field: a call per request to find nothing to drop otherwise.
    #[inline]
    fn drop(&mut self) {
        if let Some(parts) = self.parts.take() {
            recycle(parts);
        }
    }
}

/// Gives a dropped request's storage back to this thread's spares.
#[inline(never)]
fn recycle(mut parts: Box<Parts>) {
    if parts.head.capacity() > SPARE_BUFFER_MAX {
        parts.head = Vec::new();
    }
    if parts.body.capacity() > SPARE_BUFFER_MAX {
        parts.body = Vec::new();
    }
    parts.params.clear();
    // `route` is kept: the next request these parts carry most likely goes
    // to the same route, and then keeps it without a count change (see
    // `set_route`).
    let _ = SPARES.try_with(|spares| spares.give(parts));
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method_str())
            .field("path", &self.path())
            .field("body_len", &self.p().body.len())
            .finish_non_exhaustive()
    }
}

impl Request {
    /// Builds a request from a parsed head and a copy of its bytes.
    #[inline(always)] // into its one caller, the connection's parse
    pub(crate) fn from_head(
        head_bytes: &[u8],
        parsed: ParsedHead,
        peer: Option<SocketAddr>,
    ) -> Request {
        let target = parsed.target;
        // Origin-form (`/path`), nearly every target, known by its first byte.
        let start = if head_bytes.get(target.0 as usize) == Some(&b'/') {
            target.0
        } else {
            target.0 + path_offset(&head_bytes[target.0 as usize..target.1 as usize])
        };
        // The parser found the target's first `?`; in absolute-form the
        // path starts after the authority, and so does its query.
        let mark = match parsed.query_mark {
            Some(q) if q >= start => Some(q),
            Some(_) => find_byte(&head_bytes[start as usize..target.1 as usize], b'?')
                .map(|q| start + q as u32),
            None => None,
        };
        let (path, query) = match mark {
            Some(q) => ((start, q), Some((q + 1, target.1))),
            None => ((start, target.1), None),
        };
        let method = if parsed.is_get {
            Method::Get
        } else {
            Method::from_bytes(&head_bytes[parsed.method.0 as usize..parsed.method.1 as usize])
        };
        let spare = SPARES.try_with(Spares::take).ok().flatten();
        let mut parts = match spare {
            Some(mut parts) => {
                parts.head.clear();
                parts.head.extend_from_slice(head_bytes);
                parts.body.clear();
                parts.method = method;
                parts.method_span = parsed.method;
                parts.path = path;
                parts.query = query;
                parts.version = parsed.version;
                parts.peer = peer;
                parts
            }
            None => Box::new(Parts {
                head: head_bytes.to_vec(),
                method,
                method_span: parsed.method,
                path,
                query,
                version: parsed.version,
                params: Vec::new(),
                body: Vec::new(),
                route: None,
                peer,
            }),
        };
        if path.0 == path.1 {
            // Absolute-form without a path: its path is `/` (RFC 9112
            // §3.2.2), kept after the head's empty line (which ends what
            // the field scan reads), so a path is always a plain slice.
            with_slash_path(&mut parts);
        }
        Request { parts: Some(parts) }
    }

    /// A request standing in for one whose head was refused before it
    /// parsed (too large, malformed, cut short, too slow), so the app's
    /// middleware sees it: the method and origin-form target of its
    /// request line when they are well-formed (else `-` and `/`), and its
    /// `Origin` and `Accept` fields when well-formed (for CORS and the
    /// error's format). No other field, no body.
    #[cold]
    pub(crate) fn stand_in(buffered: &[u8], peer: Option<SocketAddr>) -> Request {
        /// The longest target kept (a 414's is longer: it becomes `/`).
        const MAX_TARGET: usize = 2048;
        /// The longest `Origin` or `Accept` value kept.
        const MAX_FIELD: usize = 512;
        let text = &buffered[..buffered.len().min(64 * 1024)];
        let mut lines = text.split(|b| *b == b'\n');
        let line = lines.next().unwrap_or_default();
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut words = line.split(|b| *b == b' ');
        let method = words
            .next()
            .filter(|m| {
                !m.is_empty() && m.len() <= 32 && m.iter().all(|b| crate::http::TCHAR[*b as usize])
            })
            .unwrap_or(b"-");
        let target = words
            .next()
            .filter(|t| {
                t.first() == Some(&b'/')
                    && t.len() <= MAX_TARGET
                    && t.iter().all(|b| b.is_ascii_graphic())
            })
            .unwrap_or(b"/");
        let mut head = Vec::with_capacity(64 + method.len() + target.len());
        head.extend_from_slice(method);
        head.push(b' ');
        let target_at = head.len() as u32;
        head.extend_from_slice(target);
        head.extend_from_slice(b" HTTP/1.1\r\n");
        // Only lines before the head's end, and only whole ones.
        for line in lines.take_while(|l| *l != b"\r" && !l.is_empty()) {
            let Some(line) = line.strip_suffix(b"\r") else {
                break;
            };
            let Some(colon) = line.iter().position(|b| *b == b':') else {
                continue;
            };
            let name = &line[..colon];
            let value = line[colon + 1..].trim_ascii();
            let wanted =
                name.eq_ignore_ascii_case(b"origin") || name.eq_ignore_ascii_case(b"accept");
            if wanted
                && value.len() <= MAX_FIELD
                && value.iter().all(|b| b.is_ascii_graphic() || *b == b' ')
            {
                head.extend_from_slice(name);
                head.extend_from_slice(b": ");
                head.extend_from_slice(value);
                head.extend_from_slice(b"\r\n");
            }
        }
        head.extend_from_slice(b"\r\n");
        let target_end = target_at + target.len() as u32;
        let (path, query) = match find_byte(target, b'?') {
            Some(q) => (
                (target_at, target_at + q as u32),
                Some((target_at + q as u32 + 1, target_end)),
            ),
            None => ((target_at, target_end), None),
        };
        Request {
            parts: Some(Box::new(Parts {
                method: Method::from_bytes(method),
                method_span: (0, method.len() as u32),
                path,
                query,
                version: Version::Http11,
                params: Vec::new(),
                body: Vec::new(),
                route: None,
                peer,
                head,
            })),
        }
    }

    fn p(&self) -> &Parts {
        self.parts
            .as_deref()
            .expect("a request has parts until dropped")
    }

    fn p_mut(&mut self) -> &mut Parts {
        self.parts
            .as_deref_mut()
            .expect("a request has parts until dropped")
    }

    /// The body as it is being read (the connection appends to it).
    pub(crate) fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.p_mut().body
    }

    /// Records the pattern of the route the request matched (`None`: it
    /// matched none). Recycled parts usually hold that very pattern still.
    pub(crate) fn set_route(&mut self, pattern: Option<&Rc<str>>) {
        let route = &mut self.p_mut().route;
        let same = match (&*route, pattern) {
            (Some(held), Some(new)) => Rc::ptr_eq(held, new),
            (None, None) => true,
            _ => false,
        };
        if !same {
            *route = pattern.cloned();
        }
    }

    fn slice(&self, s: Span) -> &[u8] {
        &self.p().head[s.0 as usize..s.1 as usize]
    }

    fn str(&self, s: Span) -> &str {
        // httparse admits only visible ASCII (and obs-text in values) in the
        // request line; paths and methods are therefore UTF-8.
        std::str::from_utf8(self.slice(s)).unwrap_or("")
    }

    /// What routing reads (method, its token, the path) and the vector it
    /// leaves the route's parameters in, as offsets into the path.
    pub(crate) fn routing_parts(&mut self) -> (Method, &[u8], &[u8], &mut Vec<Param>) {
        let p = self
            .parts
            .as_deref_mut()
            .expect("a request has parts until dropped");
        // The token matters only for a method we have no name for.
        let token = match p.method {
            Method::Other => &p.head[p.method_span.0 as usize..p.method_span.1 as usize],
            _ => &[],
        };
        (p.method, token, path_of(&p.head, p.path), &mut p.params)
    }

    /// The pattern of the route this request matched (`GET /api/users/:id`),
    /// or `None` for a 404/405.
    pub fn route(&self) -> Option<&Rc<str>> {
        self.p().route.as_ref()
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.p().method
    }

    /// The method as sent (for methods outside [`Method`]).
    pub fn method_str(&self) -> &str {
        self.str(self.p().method_span)
    }

    /// The path, undecoded (`/api/users/42`); `"/"` for an absolute-form
    /// target without one.
    pub fn path(&self) -> &str {
        let p = self.p();
        std::str::from_utf8(path_of(&p.head, p.path)).unwrap_or("/")
    }

    /// The request target as sent (`/p?q`, `http://h/p`, `*`).
    pub fn target(&self) -> &str {
        // The head's first line is `method SP target SP version`: the
        // parser checked it.
        let line = self.p().head.split(|b| *b == b'\r').next().unwrap_or(b"");
        let target = line.split(|b| *b == b' ').nth(1).unwrap_or(b"");
        std::str::from_utf8(target).unwrap_or("")
    }

    /// The host the request is for (RFC 9112 §3.2.2): an absolute-form
    /// target's authority, else the Host field (absent from some HTTP/1.0
    /// requests).
    pub fn host(&self) -> Option<&str> {
        match crate::http::host::authority_of(self.target().as_bytes()) {
            Some(authority) => std::str::from_utf8(authority).ok(),
            None => self.header("host"),
        }
    }

    /// The query string after `?`, undecoded.
    pub fn query(&self) -> Option<&str> {
        self.p().query.map(|q| self.str(q))
    }

    /// The first query parameter called `name`, percent-decoded (`+` is a
    /// space, as in HTML forms).
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query()?.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k, true) == name).then(|| percent_decode(v, true))
        })
    }

    /// The protocol version.
    pub fn version(&self) -> Version {
        self.p().version
    }

    /// The header fields, found by scanning the head's lines: the parser
    /// validated them (every line ends in CRLF, every field line has a
    /// colon, no obs-fold), so splitting is enough.
    fn fields(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.p()
            .head
            .split(|b| *b == b'\n')
            .skip(1) // the request line
            .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
            .take_while(|line| !line.is_empty())
            .filter_map(|line| {
                let colon = line.iter().position(|b| *b == b':')?;
                Some((&line[..colon], line[colon + 1..].trim_ascii()))
            })
    }

    /// The first header field called `name` (case-insensitive), raw bytes.
    pub fn header_bytes(&self, name: &str) -> Option<&[u8]> {
        self.fields()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }

    /// The `Last-Event-ID` a reconnecting Server-Sent Events client sent:
    /// the id of the last event it got.
    pub fn last_event_id(&self) -> Option<&str> {
        self.header("last-event-id")
    }

    /// The first header field called `name`, if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// Every header field as (name, value) in the order received.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> {
        // Field names are tokens (ASCII): the parser checked.
        self.fields()
            .map(|(n, v)| (std::str::from_utf8(n).unwrap_or(""), v))
    }

    /// A route parameter (`:id` in `/api/users/:id`), percent-decoded
    /// (`/todos/%31` gives `"1"`; borrowed when there is nothing to decode).
    pub fn param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.param_raw(name).map(|p| percent_decode(p, false))
    }

    /// A route parameter as it appears in the path, undecoded.
    pub fn param_raw(&self, name: &str) -> Option<&str> {
        let (_, start, end) = self.p().params.iter().find(|(n, ..)| &**n == name)?;
        self.path().get(*start..*end)
    }

    /// The names of the route's parameters, in pattern order.
    pub fn param_names(&self) -> impl Iterator<Item = Rc<str>> + '_ {
        self.p().params.iter().map(|(n, ..)| n.clone())
    }

    /// The trailing wildcard of a `/*` route, undecoded, without its slash.
    pub fn wildcard(&self) -> Option<&str> {
        self.param_raw("*")
    }

    /// The whole request body.
    pub fn body(&self) -> &[u8] {
        &self.p().body
    }

    /// Takes the body out of the request as `Bytes`, without a copy.
    pub fn take_body_bytes(&mut self) -> bytes::Bytes {
        bytes::Bytes::from(self.take_body())
    }

    /// Takes the body out of the request.
    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.p_mut().body)
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.p().peer
    }

    /// True if the client accepts `coding` (e.g. "gzip") per Accept-Encoding.
    pub fn accepts_encoding(&self, coding: &str) -> bool {
        let items = self
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("accept-encoding"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(crate::http::accept::weighted);
        crate::http::accept::weight_of(items, |name| name.eq_ignore_ascii_case(coding)) > 0
    }
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set); invalid
/// escapes are kept as they are, invalid UTF-8 is replaced.
pub fn percent_decode(s: &str, plus: bool) -> Cow<'_, str> {
    if !s.bytes().any(|b| b == b'%' || (plus && b == b'+')) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                        continue;
                    }
                    _ => out.push(b'%'),
                }
            }
            b'+' if plus => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(head: &[u8]) -> Request {
        let limits = crate::http::HeadLimits {
            max_request_line: 1024,
            max_head_bytes: 8192,
            max_headers: 32,
        };
        let parsed = crate::http::parse_head(head, &limits).unwrap().unwrap();
        Request::from_head(&head[..parsed.len], parsed, None)
    }

    #[test]
    fn recycled_storage_keeps_nothing_of_the_previous_request() {
        let mut first = request(b"POST /users/42?x=1 HTTP/1.1\r\nHost: a\r\nX-Old: yes\r\n\r\n");
        let (_, _, _, params) = first.routing_parts();
        params.push(("id".into(), 7, 9));
        let pattern: Rc<str> = "POST /users/:id".into();
        first.set_route(Some(&pattern));
        first.body_mut().extend_from_slice(b"old body");
        assert_eq!(first.param_raw("id"), Some("42"));
        drop(first); // its storage goes to this thread's spares

        let mut second = request(b"GET /b HTTP/1.1\r\nHost: b\r\n\r\n");
        // The route is dispatch's to set, on every request.
        second.set_route(None);
        assert_eq!(second.method(), Method::Get);
        assert_eq!(second.path(), "/b");
        assert_eq!(second.query(), None);
        assert_eq!(second.param_raw("id"), None);
        assert!(second.route().is_none());
        assert!(second.body().is_empty());
        assert_eq!(second.header("host"), Some("b"));
        assert_eq!(second.header("x-old"), None);
    }

    #[test]
    fn a_recycled_route_is_kept_only_when_it_is_the_same_pattern() {
        let a: Rc<str> = "GET /a".into();
        let b: Rc<str> = "GET /a".into(); // equal text, another route
        let mut first = request(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
        first.set_route(Some(&a));
        drop(first);
        let mut second = request(b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n");
        second.set_route(Some(&b));
        assert!(Rc::ptr_eq(second.route().unwrap(), &b));
        second.set_route(Some(&a));
        assert!(Rc::ptr_eq(second.route().unwrap(), &a));
        second.set_route(None);
        assert!(second.route().is_none());
    }

    #[test]
    fn a_stand_in_keeps_a_well_formed_line_and_origin_and_accept_only() {
        let req = Request::stand_in(
            b"HEAD /a?b=1 HTTP/1.1\r\nHost: x\r\nOrigin: http://o\r\nAccept: application/json\r\nX-Huge: aaaa",
            None,
        );
        assert_eq!(req.method(), Method::Head);
        assert_eq!((req.path(), req.query()), ("/a", Some("b=1")));
        assert_eq!(req.header("origin"), Some("http://o"));
        assert_eq!(req.header("accept"), Some("application/json"));
        assert_eq!(req.header("host"), None);
        let junk = Request::stand_in(b"\x01\x02 \xff", None);
        assert_eq!((junk.method_str(), junk.path()), ("-", "/"));
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(9000));
        assert_eq!(Request::stand_in(long.as_bytes(), None).path(), "/");
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b", false), "a b");
        assert_eq!(percent_decode("a+b", true), "a b");
        assert_eq!(percent_decode("a+b", false), "a+b");
        assert_eq!(percent_decode("100%", false), "100%");
        assert_eq!(percent_decode("%zz%4", false), "%zz%4");
        assert_eq!(percent_decode("%e2%9c%93", false), "✓");
        assert_eq!(percent_decode("%ff", false), "\u{fffd}");
    }
}
