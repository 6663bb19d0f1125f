//! Answering later, Node style: the handler returns at once and the
//! response is sent from a timer, a thread-pool job, or an immediate.
//!
//! Run: `cargo run --release -p phaseloop --example deferred`, then
//! `curl http://127.0.0.1:3000/timer`, `/hash?password=pw`, `/immediate`.

use std::time::Duration;

use phaseloop::core::crypto;
use phaseloop::{App, Response};

/// The app: one route per way of answering later.
pub fn app() -> App {
    App::new()
        .get_with("/timer", |lp, _req, res| {
            lp.set_timeout(Duration::from_millis(50), move |_| {
                res.text(200, "answered from a timer")
            });
        })
        .get_with("/hash", |lp, req, res| {
            let password = req.query_param("password").unwrap_or_default().into_owned();
            // The callback runs in the loop's poll phase when the pool is done.
            crypto::pbkdf2_sha512(password, "example-salt", 1000, 16).run(lp, move |_, key| {
                match key {
                    Ok(key) => res.text(
                        200,
                        key.iter().map(|b| format!("{b:02x}")).collect::<String>(),
                    ),
                    // The pool's queue was full: tell the client to come back.
                    Err(e) => res
                        .send(Response::json_error(503, &e.to_string()).header("Retry-After", "1")),
                }
            });
        })
        .get_with("/immediate", |lp, _req, res| {
            lp.set_immediate(move |_| res.text(200, "answered from the check phase"));
        })
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    phaseloop::serve("127.0.0.1:3000".parse().unwrap(), app())
}
