//! Async handlers: the future runs on the loop's promise-job queue, so each
//! `.await` resumes right after the callback that completed it, as in Node.
//!
//! Run: `cargo run --release -p phaseloop --example async_handler`, then
//! `curl http://127.0.0.1:3000/report`.

use std::time::Duration;

use phaseloop::core::{fs, sleep};
use phaseloop::{App, Error};

/// The app: an async route that awaits a timer and a file read.
pub fn app() -> App {
    App::new().get_async("/report", |_req, _| async {
        sleep(Duration::from_millis(10)).await;
        let manifest = fs::read_file(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml")).await;
        let bytes = manifest.map_err(|e| Error::unavailable(e.to_string()))??;
        Ok::<_, Error>(format!(
            "waited 10 ms, then read {} bytes through the pool",
            bytes.len()
        ))
    })
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    phaseloop::serve("127.0.0.1:3000".parse().unwrap(), app())
}
