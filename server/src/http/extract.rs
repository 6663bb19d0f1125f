//! Typed input: what a handler takes out of a request with
//! [`Request::extract`] (`let Json(todo): Json<NewTodo> = req.extract()?;`).
//! Each extractor checks what it needs and answers a clear error when the
//! request does not have it: 415 for the wrong content type, 400 naming
//! what did not parse.

use serde::de::DeserializeOwned;

use crate::http::error::Error;
use crate::http::request::{percent_decode, Request};
use crate::http::status::StatusCode;

/// Something a request can be turned into (or refused with an [`Error`]).
pub trait FromRequest: Sized {
    /// Takes `Self` out of `req` (a body extractor may take the body).
    fn from_request(req: &mut Request) -> Result<Self, Error>;
}

/// A JSON body (in) or a JSON response (out).
///
/// In: the request must say `Content-Type: application/json` (or
/// `application/…+json`): 415 otherwise; a body that does not parse as `T`
/// gets 400 with serde's reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// The query string parsed as `T` (`?page=2&tag=a`); 400 naming the
/// problem when it does not fit. No query parses as an empty one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Query<T>(pub T);

/// An `application/x-www-form-urlencoded` body parsed as `T`; 415 for
/// another content type, 400 when it does not fit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Form<T>(pub T);

/// The route's parameters, percent-decoded, as `T`: a struct with a field
/// per parameter, or, for a route with one parameter, that parameter's
/// type (`Path<u64>` for `/todos/:id`). A value that does not parse gets
/// 400 naming the parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Path<T>(pub T);

/// `Ok` when the request's content type is `want` (`type/subtype`,
/// parameters ignored, case-insensitive; for JSON, any `application/…+json`
/// too), else the 415 that says what was expected.
fn require_content_type(req: &Request, want: &str) -> Result<(), Error> {
    let essence = req
        .header("content-type")
        .map_or("", |v| v.split(';').next().unwrap_or("").trim());
    let json_suffix = want == "application/json"
        && essence.len() > 5
        && essence[..12.min(essence.len())].eq_ignore_ascii_case("application/")
        && essence[essence.len() - 5..].eq_ignore_ascii_case("+json");
    if essence.eq_ignore_ascii_case(want) || json_suffix {
        return Ok(());
    }
    Err(Error::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!("expected a body with Content-Type: {want}"),
    ))
}

impl<T: DeserializeOwned> FromRequest for Json<T> {
    fn from_request(req: &mut Request) -> Result<Self, Error> {
        require_content_type(req, "application/json")?;
        if req.body().is_empty() {
            return Err(Error::bad_request(
                "the request body is empty; JSON expected",
            ));
        }
        Ok(Json(serde_json::from_slice(req.body())?))
    }
}

impl<T: DeserializeOwned> FromRequest for Query<T> {
    fn from_request(req: &mut Request) -> Result<Self, Error> {
        serde_urlencoded::from_str(req.query().unwrap_or(""))
            .map(Query)
            .map_err(|e| Error::bad_request(format!("invalid query: {e}")))
    }
}

impl<T: DeserializeOwned> FromRequest for Form<T> {
    fn from_request(req: &mut Request) -> Result<Self, Error> {
        require_content_type(req, "application/x-www-form-urlencoded")?;
        serde_urlencoded::from_bytes(req.body())
            .map(Form)
            .map_err(|e| Error::bad_request(format!("invalid form: {e}")))
    }
}

impl<T: DeserializeOwned> FromRequest for Path<T> {
    fn from_request(req: &mut Request) -> Result<Self, Error> {
        // The decoded parameters, encoded again as a form: serde_urlencoded
        // then parses each value as its field's type.
        let params: Vec<(String, String)> = req
            .param_names()
            .map(|name| {
                let value = req.param(&name).unwrap_or_default().into_owned();
                (name.to_string(), value)
            })
            .collect();
        let encoded = serde_urlencoded::to_string(&params)
            .map_err(|e| Error::internal(format!("path parameters: {e}")))?;
        match serde_urlencoded::from_str::<T>(&encoded) {
            Ok(value) => Ok(Path(value)),
            Err(as_struct) => {
                // One parameter: it may be the value itself.
                if let [(name, value)] = params.as_slice() {
                    return match serde_urlencoded::from_str::<Vec<(String, T)>>(&encoded) {
                        Ok(mut one) if one.len() == 1 => Ok(Path(one.remove(0).1)),
                        Ok(_) => Err(Error::bad_request(format!(
                            "path parameter '{name}' is missing"
                        ))),
                        Err(e) => Err(Error::bad_request(format!(
                            "path parameter '{name}' ({value:?}): {e}"
                        ))),
                    };
                }
                Err(Error::bad_request(format!("path parameters: {as_struct}")))
            }
        }
    }
}

impl Request {
    /// Takes typed input out of the request: [`Json`], [`Query`],
    /// [`Form`], [`Path`], or any [`FromRequest`] of your own.
    pub fn extract<T: FromRequest>(&mut self) -> Result<T, Error> {
        T::from_request(self)
    }

    /// The body parsed as JSON (see [`Json`]: the content type is checked).
    pub fn json<T: DeserializeOwned>(&mut self) -> Result<T, Error> {
        Json::from_request(self).map(|Json(value)| value)
    }

    /// The route parameter `name`, percent-decoded and parsed as `T`; a
    /// missing or unparsable one gets 400 naming it.
    pub fn param_as<T>(&self, name: &str) -> Result<T, Error>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        let raw = self
            .param(name)
            .ok_or_else(|| Error::bad_request(format!("path parameter '{name}' is missing")))?;
        raw.parse()
            .map_err(|e| Error::bad_request(format!("path parameter '{name}' ({raw:?}): {e}")))
    }

    /// The query parameter `name`, percent-decoded and parsed as `T`:
    /// `Ok(None)` when absent, 400 naming it when it does not parse.
    pub fn query_as<T>(&self, name: &str) -> Result<Option<T>, Error>
    where
        T: std::str::FromStr,
        T::Err: std::fmt::Display,
    {
        match self.query_param(name) {
            None => Ok(None),
            Some(raw) => raw.parse().map(Some).map_err(|e| {
                Error::bad_request(format!("query parameter '{name}' ({raw:?}): {e}"))
            }),
        }
    }

    /// The cookie called `name` the client sent, if any.
    pub fn cookie(&self, name: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("cookie"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(crate::http::cookie::parse_cookies)
            .find(|(n, _)| *n == name)
            .map(|(_, v)| percent_decode(v, false))
    }

    /// True if the client accepts a JSON answer: its `Accept` names
    /// `application/json` or a `+json` type (not with `q=0`).
    pub fn accepts_json(&self) -> bool {
        let items = self
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case("accept"))
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .flat_map(crate::http::accept::weighted);
        // Named only: `*/*` is anything, not a wish for JSON.
        let json = |media: &str| {
            media.eq_ignore_ascii_case("application/json")
                || (media.len() > 5 && media[media.len() - 5..].eq_ignore_ascii_case("+json"))
        };
        items.filter(|(media, _)| json(media)).any(|(_, q)| q > 0)
    }
}
