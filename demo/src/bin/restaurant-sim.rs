//! restaurant-sim: a restaurant's order system to deliver notifications
//! to, built on phaseloop. It takes `POST /orders` webhooks and acts on
//! each `Idempotency-Key` once (counting repeats), and misbehaves on
//! demand: answers slowly, fails a share of requests with 500, or refuses
//! connections for a while (its listener closed, then opened again).
//!
//! ```text
//! restaurant-sim --port 4000 [--delay-ms 2000] [--fail-percent 30] [--refuse-ms 10000]
//! curl -XPOST localhost:4000/admin -d '{"fail_percent":100}'   # change at run time
//! curl localhost:4000/stats        # {"received":..,"unique":..,"duplicates":..,"failed_on_purpose":..}
//! ```

// The receiver the demo embeds (its sharing across loops is the demo's).
#[allow(dead_code)]
#[path = "../restaurant.rs"]
mod restaurant;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use clap::Parser;
use phaseloop::{App, Server, ServerConfig};
use phaseloop_core::{Loop, RunMode};
use serde_json::{json, Value};

/// restaurant-sim: receives order webhooks, with faults on demand.
#[derive(Debug, Parser)]
#[command(name = "restaurant-sim", version, about)]
struct Flags {
    /// Port on 127.0.0.1 (0: any free port; the chosen one is printed).
    #[arg(long, default_value_t = 4000)]
    port: u16,
    /// Answer every webhook after this many milliseconds.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Answer this share of webhooks (0-100) with 500.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    fail_percent: u8,
    /// Refuse connections for this many milliseconds from the start.
    #[arg(long, default_value_t = 0)]
    refuse_ms: u64,
}

/// How the simulator behaves now.
struct Behaviour {
    delay: Cell<Duration>,
    fail_percent: Cell<u8>,
    /// Webhooks counted, to fail every n-th of a share evenly.
    seen: Cell<u64>,
    failed_on_purpose: Cell<u64>,
    receiver: RefCell<restaurant::Receiver>,
    server: RefCell<Option<Server>>,
    addr: Cell<SocketAddr>,
}

impl Behaviour {
    /// Whether this webhook is one the share says to fail: spread evenly
    /// (30 % fails 3 of every 10).
    fn fails_now(&self) -> bool {
        let n = self.seen.get();
        self.seen.set(n + 1);
        let p = u64::from(self.fail_percent.get());
        (n % 100) * p / 100 != ((n % 100) + 1) * p / 100
    }
}

fn app(b: Rc<Behaviour>) -> App {
    let (take, stats, admin) = (b.clone(), b.clone(), b);
    App::new()
        .post_with("/orders", move |lp, req, res| {
            let b = take.clone();
            let answer = move |_: &Loop| {
                if b.fails_now() {
                    b.failed_on_purpose.set(b.failed_on_purpose.get() + 1);
                    return res.json_error(500, "the kitchen is on fire (on purpose)");
                }
                let taken = b
                    .receiver
                    .borrow_mut()
                    .take(req.header("idempotency-key"), req.body());
                match taken {
                    Ok(new) => res.json(200, &json!({ "accepted": true, "duplicate": !new })),
                    Err(message) => res.json_error(400, &message),
                }
            };
            let delay = take.delay.get();
            if delay.is_zero() {
                answer(lp);
            } else {
                lp.set_timeout(delay, answer);
            }
        })
        .get_with("/stats", move |_, _, res| {
            let mut summary = stats.receiver.borrow().summary();
            summary["failed_on_purpose"] = json!(stats.failed_on_purpose.get());
            res.json(200, &summary)
        })
        .post_with("/admin", move |lp, req, res| {
            let body: Value = serde_json::from_slice(req.body()).unwrap_or(Value::Null);
            if let Some(ms) = body.get("delay_ms").and_then(Value::as_u64) {
                admin.delay.set(Duration::from_millis(ms));
            }
            if let Some(p) = body.get("fail_percent").and_then(Value::as_u64) {
                admin.fail_percent.set(p.min(100) as u8);
            }
            res.json(200, &json!({ "ok": true }));
            if let Some(ms) = body.get("refuse_ms").and_then(Value::as_u64) {
                let b = admin.clone();
                // After this answer is out: close the listener (and the
                // connections), open it again later.
                lp.set_timeout(Duration::from_millis(20), move |lp| refuse_for(lp, b, ms));
            }
        })
}

/// Closes the server for `ms` milliseconds, then listens again on the same
/// address.
fn refuse_for(lp: &Loop, b: Rc<Behaviour>, ms: u64) {
    let server = b.server.borrow_mut().take();
    let reopen = move |lp: &Loop| {
        lp.set_timeout(Duration::from_millis(ms), move |lp| listen(lp, b));
    };
    match server {
        Some(server) => server.shutdown(lp, Duration::ZERO, reopen),
        None => reopen(lp),
    }
}

fn listen(lp: &Loop, b: Rc<Behaviour>) {
    match Server::bind(lp, b.addr.get(), app(b.clone()), ServerConfig::default()) {
        Ok(server) => {
            b.addr.set(server.local_addr());
            *b.server.borrow_mut() = Some(server);
        }
        Err(e) => {
            eprintln!(
                "restaurant-sim: cannot listen on {}: {e}; trying again",
                b.addr.get()
            );
            lp.set_timeout(Duration::from_millis(100), move |lp| listen(lp, b));
        }
    }
}

fn main() {
    let f = Flags::parse();
    let lp = Loop::new().expect("a loop");
    let b = Rc::new(Behaviour {
        delay: Cell::new(Duration::from_millis(f.delay_ms)),
        fail_percent: Cell::new(f.fail_percent),
        seen: Cell::new(0),
        failed_on_purpose: Cell::new(0),
        receiver: RefCell::new(restaurant::Receiver::default()),
        server: RefCell::new(None),
        addr: Cell::new(SocketAddr::from(([127, 0, 0, 1], f.port))),
    });
    listen(&lp, b.clone());
    // The port is fixed from here on (a refusal reopens the same one).
    println!("restaurant-sim listening on http://{}", b.addr.get());
    if f.refuse_ms > 0 {
        // From inside the loop: the shutdown's end is a callback of it.
        let b = b.clone();
        lp.set_immediate(move |lp| refuse_for(lp, b, f.refuse_ms));
    }
    lp.run(RunMode::Default);
}
