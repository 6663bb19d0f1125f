//! Conversions to and from the `http` crate's types (feature `http`), for
//! code that already holds them: a status, a method, a whole response to
//! return from a handler, a request to hand to a library that takes one.

use crate::http::request::{Method, Request};
use crate::http::respond::IntoResponse;
use crate::http::response::{Body, Response};
use crate::http::status::StatusCode;

impl From<StatusCode> for ::http::StatusCode {
    fn from(status: StatusCode) -> ::http::StatusCode {
        ::http::StatusCode::from_u16(status.as_u16())
            .unwrap_or(::http::StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl From<::http::StatusCode> for StatusCode {
    fn from(status: ::http::StatusCode) -> StatusCode {
        StatusCode::from(status.as_u16())
    }
}

/// `OTHER` (a method without a name here) becomes an extension method
/// of that name; use [`Request::to_http`] to keep the one sent.
impl From<Method> for ::http::Method {
    fn from(method: Method) -> ::http::Method {
        ::http::Method::from_bytes(method.as_str().as_bytes()).unwrap_or(::http::Method::GET)
    }
}

impl From<&::http::Method> for Method {
    fn from(method: &::http::Method) -> Method {
        Method::from_bytes(method.as_str().as_bytes())
    }
}

/// An `http::Response` returned from a handler: its status, fields and
/// body (fields the connection writes itself are left out, as with
/// [`Response::append_header`]).
impl<B: Into<Body>> IntoResponse for ::http::Response<B> {
    fn into_response(self) -> Response {
        let (parts, body) = self.into_parts();
        let mut response = Response::new(StatusCode::from(parts.status)).body(body);
        for (name, value) in &parts.headers {
            response.append_header(name.as_str().to_string(), value.as_bytes().to_vec());
        }
        response
    }
}

impl From<::http::HeaderValue> for crate::http::response::HeaderValue {
    fn from(value: ::http::HeaderValue) -> Self {
        crate::http::response::HeaderValue::from(value.as_bytes().to_vec())
    }
}

impl Response {
    /// Adds a header field given as the `http` crate's types (same
    /// rules as [`Response::append_header`]).
    pub fn append_http_header(
        &mut self,
        name: &::http::header::HeaderName,
        value: ::http::HeaderValue,
    ) {
        self.append_header(name.as_str().to_string(), value);
    }
}

impl Request {
    /// Every header field as an `http::HeaderMap` (fields `http` refuses
    /// are left out).
    pub fn header_map(&self) -> ::http::HeaderMap {
        let mut map = ::http::HeaderMap::new();
        for (name, value) in self.headers() {
            if let (Ok(n), Ok(v)) = (
                ::http::header::HeaderName::from_bytes(name.as_bytes()),
                ::http::HeaderValue::from_bytes(value),
            ) {
                map.append(n, v);
            }
        }
        map
    }
}

impl IntoResponse for ::http::StatusCode {
    fn into_response(self) -> Response {
        StatusCode::from(self).into_response()
    }
}

impl From<Response> for ::http::Response<Vec<u8>> {
    fn from(response: Response) -> ::http::Response<Vec<u8>> {
        let mut out = ::http::Response::new(response.body_bytes().to_vec());
        *out.status_mut() = response.status_code().into();
        let headers = out.headers_mut();
        let content_type = response
            .header_value("content-type")
            .map(|v| ("content-type", v));
        for (name, value) in content_type.into_iter().chain(response.headers()) {
            if let (Ok(name), Ok(value)) = (
                ::http::header::HeaderName::from_bytes(name.as_bytes()),
                ::http::HeaderValue::from_bytes(value),
            ) {
                headers.append(name, value);
            }
        }
        out
    }
}

impl Request {
    /// A copy as an `http::Request`: method as sent, target, version,
    /// every field, the body.
    pub fn to_http(&self) -> ::http::Request<Vec<u8>> {
        let mut builder = ::http::Request::builder()
            .method(self.method_str())
            .uri(self.target())
            .version(match self.version() {
                crate::http::Version::Http10 => ::http::Version::HTTP_10,
                crate::http::Version::Http11 => ::http::Version::HTTP_11,
            });
        for (name, value) in self.headers() {
            builder = builder.header(name, value);
        }
        // Every part was validated by the parser, which is stricter than
        // `http`'s builder; should one still be refused, the request is
        // rebuilt from its method and path only.
        builder.body(self.body().to_vec()).unwrap_or_else(|_| {
            let mut fallback = ::http::Request::new(self.body().to_vec());
            *fallback.method_mut() = self.method().into();
            if let Ok(uri) = self.path().parse() {
                *fallback.uri_mut() = uri;
            }
            fallback
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let status: ::http::StatusCode = StatusCode::CREATED.into();
        assert_eq!(status, ::http::StatusCode::CREATED);
        assert_eq!(StatusCode::from(::http::StatusCode::IM_A_TEAPOT), 418);
        assert_eq!(::http::Method::from(Method::Patch), ::http::Method::PATCH);
        let theirs = ::http::Response::builder()
            .status(404)
            .header("X-A", "b")
            .header("Content-Length", "99")
            .body("gone")
            .unwrap();
        let ours = theirs.into_response();
        assert_eq!((ours.status(), ours.body_bytes()), (404, &b"gone"[..]));
        assert_eq!(ours.header_value("x-a"), Some(&b"b"[..]));
        assert_eq!(ours.header_value("content-length"), None);
        let mut r = Response::new(200);
        r.append_http_header(
            &::http::header::CACHE_CONTROL,
            ::http::HeaderValue::from_static("no-store"),
        );
        assert_eq!(r.header_value("cache-control"), Some(&b"no-store"[..]));
        let back: ::http::Response<Vec<u8>> = Response::text(200, "hi").into();
        assert_eq!(back.headers()["content-type"], "text/plain; charset=utf-8");
        assert_eq!(back.body(), b"hi");
    }
}
