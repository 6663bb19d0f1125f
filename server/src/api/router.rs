//! Routes: a method and a path pattern (`/api/users/:id`, `/files/*`) to a
//! handler. Matching runs when a request head arrives, so a route's own body
//! limit applies before its body is read.

use std::rc::Rc;

use crate::api::handler::Handler;
use crate::api::path_table::PathTable;
use crate::engine::service::{BodyRules, Target};
use crate::http::request::{Method, Param};

#[derive(Debug, Clone)]
enum Segment {
    Static(Box<[u8]>),
    Param(Rc<str>),
    /// Holds its parameter name (`*`) so matching allocates nothing.
    Wildcard(Rc<str>),
}

pub(crate) struct Route {
    pub method: Method,
    segments: Vec<Segment>,
    pub pattern: Rc<str>,
    pub handler: Rc<dyn Handler>,
    /// The route's own rules for receiving a body (limit, rate, time).
    pub body: BodyRules,
}

/// Number of `Method` variants (the exact-route table's width).
const METHODS: usize = 8;

/// An ordered list of routes; the first match wins.
#[derive(Default)]
pub(crate) struct Router {
    pub routes: Vec<Route>,
    /// Routes without parameters, by exact method and path: most requests
    /// resolve here without walking the list.
    exact: PathTable<[Option<u32>; METHODS]>,
}

fn parse_pattern(pattern: &str) -> Vec<Segment> {
    assert!(
        pattern.starts_with('/'),
        "route pattern {pattern:?} must start with '/'"
    );
    let mut segments = Vec::new();
    let parts: Vec<&str> = pattern[1..].split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if *part == "*" {
            assert!(
                i == parts.len() - 1,
                "'*' must be the last segment of {pattern:?}"
            );
            segments.push(Segment::Wildcard("*".into()));
        } else if let Some(name) = part.strip_prefix(':') {
            assert!(!name.is_empty(), "empty parameter name in {pattern:?}");
            segments.push(Segment::Param(name.into()));
        } else {
            segments.push(Segment::Static(part.as_bytes().into()));
        }
    }
    segments
}

impl Router {
    pub fn add(&mut self, method: Method, pattern: &str, handler: Rc<dyn Handler>) {
        let segments = parse_pattern(pattern);
        let is_static = segments.iter().all(|s| matches!(s, Segment::Static(_)));
        if is_static && method != Method::Other {
            // The first route added for a path wins, as in the scan.
            let slot = &mut self.exact.entry(pattern.as_bytes())[method as usize];
            if slot.is_none() {
                *slot = Some(self.routes.len() as u32);
            }
        }
        self.routes.push(Route {
            method,
            segments,
            pattern: format!("{} {}", method.as_str(), pattern).into(),
            handler,
            body: BodyRules::default(),
        });
    }

    fn matches(route: &Route, path: &[u8], params: &mut Vec<Param>) -> bool {
        params.clear();
        // Every pattern starts with `/`; a path that does not (asterisk-form,
        // `OPTIONS *`) matches none.
        let Some(mut rest) = path.strip_prefix(b"/") else {
            return false;
        };
        let mut offset = 1;
        let mut segs = route.segments.iter().peekable();
        while let Some(seg) = segs.next() {
            if let Segment::Wildcard(name) = seg {
                params.push((name.clone(), offset, path.len()));
                return true;
            }
            let (part, tail) = match rest.iter().position(|b| *b == b'/') {
                Some(i) => (&rest[..i], Some(&rest[i + 1..])),
                None => (rest, None),
            };
            match seg {
                Segment::Static(s) => {
                    if **s != *part {
                        return false;
                    }
                }
                Segment::Param(name) => {
                    if part.is_empty() {
                        return false;
                    }
                    params.push((name.clone(), offset, offset + part.len()));
                }
                Segment::Wildcard(_) => unreachable!(),
            }
            match tail {
                Some(t) => {
                    if segs.peek().is_none() {
                        return false; // the path has more segments
                    }
                    offset += part.len() + 1;
                    rest = t;
                }
                None => {
                    // The path ends: only a trailing wildcard may remain.
                    return match segs.next() {
                        None => true,
                        Some(Segment::Wildcard(name)) => {
                            params.push((name.clone(), path.len(), path.len()));
                            segs.next().is_none()
                        }
                        Some(_) => false,
                    };
                }
            }
        }
        false
    }

    /// Resolves a request. `path` is bytes: the hot path never needs it
    /// as text. A matched route's parameters are left in `params` (the
    /// request's own vector: no allocation once it has grown).
    #[inline(always)] // into the connection's parse, every request's way
    pub fn resolve(
        &self,
        method: Method,
        method_token: &[u8],
        path: &[u8],
        params: &mut Vec<Param>,
    ) -> Target {
        params.clear();
        if let Some(index) = self
            .exact
            .get(path)
            .and_then(|by_method| by_method[method as usize])
        {
            return Target::Route { index };
        }
        let mut other_methods = false;
        let mut head_fallback = None;
        for (index, route) in self.routes.iter().enumerate() {
            if !Self::matches(route, path, params) {
                continue;
            }
            if route.method == method
                && (method != Method::Other || method_token == route.method.as_str().as_bytes())
            {
                return Target::Route {
                    index: index as u32,
                };
            }
            if method == Method::Head && route.method == Method::Get && head_fallback.is_none() {
                head_fallback = Some(index);
            }
            other_methods = true;
        }
        if let Some(index) = head_fallback {
            // Match again to leave that route's parameters in `params`.
            Self::matches(&self.routes[index], path, params);
            return Target::Route {
                index: index as u32,
            };
        }
        params.clear();
        if other_methods {
            Target::MethodNotAllowed
        } else {
            Target::NotFound
        }
    }

    /// The `Allow` value of a 405 for `path`: the methods its routes take,
    /// HEAD with GET. Built only when such an answer is made.
    /// Whether any route answers `method` (HEAD counts where GET does).
    pub fn knows_method(&self, method: Method) -> bool {
        let method = if method == Method::Head {
            Method::Get
        } else {
            method
        };
        method != Method::Other && self.routes.iter().any(|r| r.method == method)
    }

    /// Every method some route answers, for `OPTIONS *`: with HEAD where
    /// GET is, and OPTIONS itself.
    pub fn all_methods(&self) -> String {
        let mut all: Vec<&'static str> = Vec::new();
        for route in &self.routes {
            let m = route.method.as_str();
            if !all.contains(&m) {
                all.push(m);
            }
        }
        if all.contains(&"GET") && !all.contains(&"HEAD") {
            all.push("HEAD");
        }
        if !all.contains(&"OPTIONS") {
            all.push("OPTIONS");
        }
        all.join(", ")
    }

    pub fn allow(&self, path: &[u8]) -> String {
        let mut params = Vec::new();
        let mut allow: Vec<&'static str> = Vec::new();
        for route in &self.routes {
            let m = route.method.as_str();
            if Self::matches(route, path, &mut params) && !allow.contains(&m) {
                allow.push(m);
            }
        }
        if allow.contains(&"GET") && !allow.contains(&"HEAD") {
            allow.push("HEAD");
        }
        allow.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn router() -> Router {
        let mut r = Router::default();
        let h: Rc<dyn Handler> =
            Rc::new(|_: &phaseloop_core::Loop, _: crate::Request, _: crate::Responder| {});
        r.add(Method::Get, "/", h.clone());
        r.add(Method::Get, "/api/users/:id", h.clone());
        r.add(Method::Post, "/api/orders", h.clone());
        r.add(Method::Get, "/api/orders/:id", h.clone());
        r.add(Method::Get, "/files/*", h.clone());
        r.add(Method::Get, "/a/:x/b/:y", h);
        r
    }

    fn resolve(r: &Router, m: Method, path: &str) -> Target {
        r.resolve(m, m.as_str().as_bytes(), path.as_bytes(), &mut Vec::new())
    }

    fn found(r: &Router, m: Method, path: &str) -> (usize, Vec<(String, String)>) {
        let mut params = Vec::new();
        match r.resolve(m, m.as_str().as_bytes(), path.as_bytes(), &mut params) {
            Target::Route { index } => (
                index as usize,
                params
                    .into_iter()
                    .map(|(n, s, e)| (n.to_string(), path[s..e].to_string()))
                    .collect(),
            ),
            _ => panic!("{path} not found"),
        }
    }

    #[test]
    fn matches_static_params_and_wildcards() {
        let r = router();
        assert_eq!(found(&r, Method::Get, "/"), (0, vec![]));
        assert_eq!(
            found(&r, Method::Get, "/api/users/42"),
            (1, vec![("id".into(), "42".into())])
        );
        assert_eq!(
            found(&r, Method::Get, "/files/a/b.txt"),
            (4, vec![("*".into(), "a/b.txt".into())])
        );
        assert_eq!(
            found(&r, Method::Get, "/files/"),
            (4, vec![("*".into(), "".into())])
        );
        assert_eq!(
            found(&r, Method::Get, "/files"),
            (4, vec![("*".into(), "".into())])
        );
        assert_eq!(
            found(&r, Method::Get, "/a/1/b/2"),
            (5, vec![("x".into(), "1".into()), ("y".into(), "2".into())])
        );
        assert_eq!(
            found(&r, Method::Head, "/api/users/7"),
            (1, vec![("id".into(), "7".into())]),
            "HEAD falls back to GET, with its parameters"
        );
    }

    #[test]
    fn exact_paths_of_every_length_find_their_own_route() {
        // Lengths 1 to 40; pairs that differ only in the middle (one hash
        // for both); and near misses that must find nothing.
        let mut r = Router::default();
        let h: Rc<dyn Handler> =
            Rc::new(|_: &phaseloop_core::Loop, _: crate::Request, _: crate::Responder| {});
        let mut paths = Vec::new();
        for len in 1..=40 {
            let base: String = "/abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGH"[..len].into();
            paths.push(base.clone());
            if len >= 18 {
                let mut middle = base.into_bytes();
                middle[len / 2] = b'-';
                paths.push(String::from_utf8(middle).unwrap());
            }
        }
        for p in &paths {
            r.add(Method::Get, p, h.clone());
        }
        for (index, p) in paths.iter().enumerate() {
            assert_eq!(found(&r, Method::Get, p).0, index, "{p}");
            assert!(matches!(
                resolve(&r, Method::Get, &format!("{p}~")),
                Target::NotFound
            ));
        }
    }

    #[test]
    fn not_found_and_method_not_allowed() {
        let r = router();
        for p in [
            "/api/users",
            "/api/users/",
            "/api/users/1/x",
            "/nope",
            "/api/ordersx",
        ] {
            assert!(
                matches!(resolve(&r, Method::Get, p), Target::NotFound),
                "{p}"
            );
        }
        assert_eq!(
            resolve(&r, Method::Delete, "/api/orders"),
            Target::MethodNotAllowed
        );
        assert_eq!(r.allow(b"/api/orders"), "POST");
        assert_eq!(
            resolve(&r, Method::Post, "/api/users/1"),
            Target::MethodNotAllowed
        );
        assert_eq!(r.allow(b"/api/users/1"), "GET, HEAD");
    }
}
