//! `cargo run -p phaseloop-load-tests -- [run.sh options]`: the Rust entry
//! point to the load scenarios; it runs `load-tests/run.sh` (which builds
//! what it needs, installs the Express peer from its lock file, and writes
//! `load-tests/results/<date>/`), passing the options through.

use std::path::Path;
use std::process::Command;

fn main() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("run.sh");
    let status = Command::new("bash")
        .arg(&script)
        .args(std::env::args().skip(1))
        .status();
    match status {
        Ok(s) => std::process::exit(s.code().unwrap_or(1)),
        Err(e) => {
            eprintln!("phaseloop-load-tests: cannot run {}: {e}", script.display());
            std::process::exit(1);
        }
    }
}
