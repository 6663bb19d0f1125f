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
        res.on_send(move |response| {
            *response =
                std::mem::replace(response, crate::Response::new(200)).header("X-Request-Id", id);
        });
        next.run(lp, req, res)
    }
}
