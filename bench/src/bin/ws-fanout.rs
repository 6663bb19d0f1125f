//! The WebSocket side of the protocol benchmarks: a server whose `/ws`
//! keeps every socket, and whose `/broadcast` sends one message (framed
//! once) to all of them and answers how long the sends took on the loop.
//! `load-tests/ws_fanout.py` opens the sockets, measures the server's
//! memory per socket, and checks every socket got the message.
//!
//! Usage: ws-fanout PORT

use std::cell::RefCell;
use std::time::Instant;

use phaseloop::ws::{PreparedMessage, WebSocket, WsConfig};
use phaseloop::{App, ServerConfig};

thread_local! {
    static SOCKETS: RefCell<Vec<WebSocket>> = const { RefCell::new(Vec::new()) };
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3400);
    let app = App::new()
        .get_with("/ws", |_, req, res| {
            let cfg = WsConfig {
                idle_timeout: None,
                ..WsConfig::default()
            };
            res.websocket(&req, cfg, |_, ws| SOCKETS.with(|s| s.borrow_mut().push(ws)));
        })
        .get("/broadcast", |_req, _| {
            let message = PreparedMessage::text("{\"order\":42,\"step\":\"notified\"}");
            let start = Instant::now();
            let (mut sent, mut refused) = (0u64, 0u64);
            SOCKETS.with(|s| {
                for ws in s.borrow().iter() {
                    match ws.send_prepared(&message) {
                        Ok(()) => sent += 1,
                        Err(_) => refused += 1,
                    }
                }
            });
            let ns = start.elapsed().as_nanos() as u64;
            format!("{{\"sent\":{sent},\"refused\":{refused},\"ns\":{ns}}}")
        });
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    println!("ws-fanout listening on http://{addr}");
    phaseloop::serve_with(addr, app, ServerConfig::default())
}
