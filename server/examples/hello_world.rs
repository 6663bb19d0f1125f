//! The smallest phaseloop server.
//!
//! Run: `cargo run --release -p phaseloop --example hello_world`, then
//! `curl http://127.0.0.1:3000/`. Set `PORT` to choose another port.

use phaseloop::App;

/// The app: one route.
pub fn app() -> App {
    App::new().get("/", |_req, _| "Hello, World!")
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    let port = std::env::var("PORT").unwrap_or_else(|_| "3000".into());
    let addr = format!("127.0.0.1:{port}").parse().expect("a valid port");
    println!("listening on http://{addr}");
    phaseloop::serve(addr, app())
}
