//! Cookies: reading the `Cookie` field a client sends (RFC 6265 §5.4) and
//! building the `Set-Cookie` field a response sets (§4.1).

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

/// The `name=value` pairs of a `Cookie` field value, in order. Pairs
/// without `=` are skipped; surrounding double quotes are removed from a
/// value, which is otherwise returned as sent.
pub fn parse_cookies(field: &str) -> impl Iterator<Item = (&str, &str)> {
    field.split(';').filter_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let name = name.trim();
        let value = value.trim();
        let value = value
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .unwrap_or(value);
        (!name.is_empty()).then_some((name, value))
    })
}

/// `SameSite` attribute values (RFC 6265bis §4.1.2.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SameSite {
    /// Sent only with same-site requests.
    Strict,
    /// Also with top-level navigations from other sites.
    Lax,
    /// Always (needs `Secure`).
    None,
}

/// A cookie to set: `Response::set_cookie(&Cookie::new("sid", id).http_only())`.
///
/// A name that is not a token, or a value with bytes a cookie cannot hold
/// (controls, space, `"`, `,`, `;`, `\`), makes the whole field be
/// left out rather than sent broken.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct Cookie {
    name: Cow<'static, str>,
    value: Cow<'static, str>,
    path: Option<Cow<'static, str>>,
    domain: Option<Cow<'static, str>>,
    max_age: Option<Duration>,
    http_only: bool,
    secure: bool,
    same_site: Option<SameSite>,
}

impl Cookie {
    /// A session cookie `name=value`.
    pub fn new(name: impl Into<Cow<'static, str>>, value: impl Into<Cow<'static, str>>) -> Cookie {
        Cookie {
            name: name.into(),
            value: value.into(),
            path: None,
            domain: None,
            max_age: None,
            http_only: false,
            secure: false,
            same_site: None,
        }
    }

    /// A cookie that deletes `name` on the client (empty, `Max-Age=0`).
    pub fn removal(name: impl Into<Cow<'static, str>>) -> Cookie {
        Cookie::new(name, "").max_age(Duration::ZERO)
    }

    /// `Path=`.
    pub fn path(mut self, path: impl Into<Cow<'static, str>>) -> Cookie {
        self.path = Some(path.into());
        self
    }

    /// `Domain=`.
    pub fn domain(mut self, domain: impl Into<Cow<'static, str>>) -> Cookie {
        self.domain = Some(domain.into());
        self
    }

    /// `Max-Age=` in whole seconds.
    pub fn max_age(mut self, age: Duration) -> Cookie {
        self.max_age = Some(age);
        self
    }

    /// `HttpOnly`: scripts cannot read it.
    pub fn http_only(mut self) -> Cookie {
        self.http_only = true;
        self
    }

    /// `Secure`: sent over HTTPS only.
    pub fn secure(mut self) -> Cookie {
        self.secure = true;
        self
    }

    /// `SameSite=`.
    pub fn same_site(mut self, same_site: SameSite) -> Cookie {
        self.same_site = Some(same_site);
        self
    }

    /// Whether name and value can be sent as they are.
    fn valid(&self) -> bool {
        let attribute_ok = |s: &str| !s.bytes().any(|b| b.is_ascii_control() || b == b';');
        !self.name.is_empty()
            && self.name.bytes().all(crate::http::is_tchar)
            && self
                .value
                .bytes()
                .all(|b| matches!(b, 0x21 | 0x23..=0x2B | 0x2D..=0x3A | 0x3C..=0x5B | 0x5D..=0x7E))
            && self.path.as_deref().is_none_or(attribute_ok)
            && self.domain.as_deref().is_none_or(attribute_ok)
    }
}

/// The `Set-Cookie` field value; empty for a cookie that is not valid
/// (which the response then leaves out: an empty value is no field).
impl fmt::Display for Cookie {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.valid() {
            return Ok(());
        }
        write!(f, "{}={}", self.name, self.value)?;
        if let Some(path) = &self.path {
            write!(f, "; Path={path}")?;
        }
        if let Some(domain) = &self.domain {
            write!(f, "; Domain={domain}")?;
        }
        if let Some(age) = self.max_age {
            write!(f, "; Max-Age={}", age.as_secs())?;
        }
        if self.http_only {
            f.write_str("; HttpOnly")?;
        }
        if self.secure {
            f.write_str("; Secure")?;
        }
        match self.same_site {
            Some(SameSite::Strict) => f.write_str("; SameSite=Strict")?,
            Some(SameSite::Lax) => f.write_str("; SameSite=Lax")?,
            Some(SameSite::None) => f.write_str("; SameSite=None")?,
            None => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_and_skips_junk() {
        let got: Vec<_> = parse_cookies(r#"a=1; b="two" ;junk; =x; c="#).collect();
        assert_eq!(got, vec![("a", "1"), ("b", "two"), ("c", "")]);
    }

    #[test]
    fn formats_attributes_and_refuses_unsafe_values() {
        let c = Cookie::new("sid", "abc")
            .path("/")
            .max_age(Duration::from_secs(60))
            .http_only()
            .secure()
            .same_site(SameSite::Lax);
        assert_eq!(
            c.to_string(),
            "sid=abc; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Lax"
        );
        assert_eq!(Cookie::new("a", "x;y").to_string(), "");
        assert_eq!(Cookie::new("a b", "x").to_string(), "");
        assert_eq!(Cookie::new("a", "x").path("/\r\n").to_string(), "");
        assert_eq!(Cookie::removal("a").to_string(), "a=; Max-Age=0");
    }
}
