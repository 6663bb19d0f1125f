//! Ready-made middleware.

use std::cell::Cell;
use std::rc::Rc;
use std::time::Instant;

use phaseloop_core::Loop;

use crate::api::handler::{Middleware, Next};
use crate::api::responder::Responder;
use crate::http::request::Request;

/// Logs one line per request to stderr when the response is sent:
/// method, path, status, time from dispatch to response.
pub fn logger() -> impl Middleware {
    |lp: &Loop, req: Request, mut res: Responder, next: Next| {
        let start = Instant::now();
        let line = format!("{} {}", req.method_str(), req.path());
        res.on_send(move |response| {
            phaseloop_core::log_line!(
                "{line} {} {:.3} ms",
                response.status(),
                start.elapsed().as_secs_f64() * 1e3
            );
        });
        next.run(lp, req, res)
    }
}

/// Adds `X-Request-Id` to every response: the client's own if it sent one
/// (up to 128 visible characters), else a per-server counter.
pub fn request_id() -> impl Middleware {
    let counter = Rc::new(Cell::new(0u64));
    move |lp: &Loop, req: Request, mut res: Responder, next: Next| {
        let id = match req.header("x-request-id") {
            Some(v)
                if !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                v.to_string()
            }
            _ => {
                counter.set(counter.get() + 1);
                counter.get().to_string()
            }
        };
        res.on_send(move |response| response.set_header("X-Request-Id", id));
        next.run(lp, req, res)
    }
}

/// Methods a CORS preflight is told the app allows.
const CORS_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Cross-origin resource sharing (the Fetch standard's CORS protocol) for
/// requests from `origins` (`["https://app.example"]`, or `["*"]` for
/// any). A request from an allowed origin gets
/// `Access-Control-Allow-Origin` on its response, whatever answers it (the
/// server's own refusals too, so a browser sees a 413 as a 413); a
/// preflight (`OPTIONS` with `Access-Control-Request-Method`) is answered
/// `204` here with the methods and the headers asked for, cached 10
/// minutes. Other origins get no CORS fields: the browser refuses them.
pub fn cors(origins: &[&str]) -> impl Middleware {
    let any = origins.contains(&"*");
    let origins: Vec<String> = origins.iter().map(|o| o.to_ascii_lowercase()).collect();
    move |lp: &Loop, req: Request, mut res: Responder, next: Next| {
        let allowed = match req.header("origin") {
            Some(origin) if any || origins.iter().any(|o| o.eq_ignore_ascii_case(origin)) => {
                Some(if any {
                    "*".to_string()
                } else {
                    origin.to_string()
                })
            }
            _ => None,
        };
        let Some(allow) = allowed else {
            return next.run(lp, req, res);
        };
        let preflight = req.method() == crate::http::request::Method::Options
            && req.header("access-control-request-method").is_some();
        if preflight {
            let mut response = crate::Response::new(204)
                .header("Access-Control-Allow-Origin", allow)
                .header("Access-Control-Allow-Methods", CORS_METHODS)
                .header("Access-Control-Max-Age", "600")
                .header("Vary", "Origin");
            if let Some(asked) = req.header("access-control-request-headers") {
                response.set_header("Access-Control-Allow-Headers", asked.to_string());
            }
            return res.send(response);
        }
        res.on_send(move |response| {
            response.set_header("Access-Control-Allow-Origin", allow);
            response.append_header("Vary", "Origin");
        });
        next.run(lp, req, res)
    }
}
