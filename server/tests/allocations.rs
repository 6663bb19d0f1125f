//! Hot-path discipline: once a connection is warm, serving a request costs
//! the server's loop thread no heap allocation. A counting allocator tallies
//! allocations per thread; the count is read on the loop thread before and
//! after 1,536 pipelined requests (text, with route parameters, and JSON).

mod util;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::mpsc;

use phaseloop::App;
use util::TestServer;

struct CountingAllocator;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counter is a `const`-initialised thread-local `Cell` (no allocation, no
// destructor), reached with `try_with` so thread teardown cannot fail.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as ours.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        // SAFETY: same contract as ours.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[derive(serde::Serialize)]
struct Message {
    message: &'static str,
}

fn app() -> App {
    App::new()
        .get_with("/plaintext", |_, _, res| res.text(200, "Hello, World!"))
        .get_with("/json", |_, _, res| {
            // Serialised into a recycled buffer.
            res.json(
                200,
                &Message {
                    message: "Hello, World!",
                },
            )
        })
        .get_with("/users/:id", |_, req, res| {
            // Reading a parameter and a header allocates nothing either.
            let ok = req.param("id").is_some() && req.header("host").is_some();
            res.text(if ok { 200 } else { 400 }, "user")
        })
}

/// Allocations made so far on the server's loop thread.
fn loop_allocations(server: &TestServer) -> u64 {
    let (tx, rx) = mpsc::channel();
    server.on_loop(move |_, _| {
        tx.send(ALLOCATIONS.with(Cell::get)).unwrap();
    });
    rx.recv().unwrap()
}

/// Sends `batches` batches of 16 pipelined requests and reads every answer.
fn serve(c: &mut util::Client, batches: usize, request: &str) {
    let batch = request.repeat(16);
    for _ in 0..batches {
        c.send(batch.as_bytes());
        for _ in 0..16 {
            let r = c.response();
            assert!(r.starts_with("HTTP/1.1 200 OK\r\n"), "{r}");
        }
    }
}

#[test]
fn a_warm_connection_serves_requests_without_allocating() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    let plain = "GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n";
    let user = "GET /users/42 HTTP/1.1\r\nHost: x\r\n\r\n";
    let json = "GET /json HTTP/1.1\r\nHost: x\r\n\r\n";
    // Warm up: buffers, recycled requests and bodies, the routes' counters.
    for request in [plain, user, json] {
        serve(&mut c, 4, request);
    }

    let before = loop_allocations(&server);
    for request in [plain, user, json] {
        serve(&mut c, 32, request);
    }
    let after = loop_allocations(&server);

    // 1,536 requests. The few allowed are the loop's own (the posted
    // callback that reads the count); one per request would be over a
    // thousand, one per batch 96.
    let made = after - before;
    assert!(
        made < 16,
        "{made} allocations on the loop thread for 1,536 requests"
    );
}
