//! [`https_redirect`]: the plain-HTTP listener beside an HTTPS server,
//! sending every request to the same place over HTTPS.

use crate::api::app::App;
use crate::http::request::Request;
use crate::http::response::Response;
use crate::http::Error;

/// An app that answers every request with `308 Permanent Redirect` to the
/// same host, path and query on `https_port` (308, not 301: a POST stays a
/// POST). Serve it on the plain port beside a server with
/// `ServerConfig::tls`. A request without a host gets 400.
///
/// ```no_run
/// # use phaseloop::{https_redirect, Server, ServerConfig};
/// # let lp = phaseloop::core::Loop::new().unwrap();
/// Server::bind(&lp, "127.0.0.1:8080".parse().unwrap(), https_redirect(8443), ServerConfig::default())?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn https_redirect(https_port: u16) -> App {
    let redirect = move |req: &mut Request, _: &()| -> Result<Response, Error> {
        Ok(Response::new(308)
            .header("Location", location(req, https_port)?)
            .header("Content-Type", "text/plain; charset=utf-8"))
    };
    // Every method the server knows, on every path (a method no route
    // knows is 501, as on any server).
    use crate::http::request::Method::*;
    [Get, Head, Post, Put, Delete, Patch, Options]
        .into_iter()
        .fold(App::new(), |app, method| app.route(method, "/*", redirect))
}

/// `https://host[:port]/path[?query]` for `req`.
fn location(req: &Request, https_port: u16) -> Result<String, Error> {
    let host = req
        .host()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| Error::bad_request("a redirect to HTTPS needs the request's host"))?;
    // The host without its port: `[v6]:p` keeps the brackets.
    let name = match host.strip_prefix('[') {
        Some(rest) => &host[..rest.find(']').map_or(host.len(), |i| i + 2)],
        None => host.split(':').next().unwrap_or(host),
    };
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let query = req.query().map(|q| format!("?{q}")).unwrap_or_default();
    Ok(format!("https://{name}{port}{}{query}", req.path()))
}
