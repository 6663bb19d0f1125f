//! Tokio-based futures awaited from handlers through the bridge (feature
//! `tokio`): tokio's timers and sockets work, a panic is an error, and a
//! bridged task is aborted when nobody waits for its answer any more.
#![cfg(feature = "tokio")]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use phaseloop::core::tokio_bridge::tokio;
use phaseloop::core::tokio_bridge::{on_tokio, BridgeError};
use phaseloop::testing::TestServer;
use phaseloop::{App, Error, ServerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Set when a bridged task's future is dropped (aborted or done).
struct Dropped(Arc<AtomicBool>);

impl Drop for Dropped {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn bridge_error(e: BridgeError) -> Error {
    Error::internal(e.to_string())
}

static ABORTED: OnceLock<Arc<AtomicBool>> = OnceLock::new();

fn app() -> App {
    App::new()
        .get("/hello", |_, _| "hello from the loop")
        .get_async("/tokio-sleep", |_, _| async {
            let waited = on_tokio(async {
                let start = tokio::time::Instant::now();
                tokio::time::sleep(Duration::from_millis(20)).await;
                start.elapsed()
            })
            .await
            .map_err(bridge_error)?;
            Ok::<_, Error>(format!("slept {}", waited >= Duration::from_millis(20)))
        })
        .get_async("/call-self", |req, _| async move {
            // A tokio socket calling this very server: the loop serves
            // /hello while the handler's future waits on the bridge.
            let port: u16 = req.query_as("port")?.unwrap_or(0);
            let body = on_tokio(async move {
                let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
                s.write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .await?;
                let mut out = String::new();
                s.read_to_string(&mut out).await?;
                Ok::<_, std::io::Error>(out)
            })
            .await
            .map_err(bridge_error)??;
            let tail = body.rsplit("\r\n\r\n").next().unwrap_or("").to_string();
            Ok::<_, Error>(format!("it said: {tail}"))
        })
        .get_async("/panic", |_, _| async {
            let r: Result<u32, _> = on_tokio(async { panic!("in tokio") }).await;
            match r {
                Err(BridgeError::Panicked(m)) => Err(Error::internal(format!("caught: {m}"))),
                other => Ok(format!("unexpected {other:?}")),
            }
        })
        .get_async("/forever", |_, _| async {
            let flag = ABORTED.get_or_init(Default::default).clone();
            let _ = on_tokio(async move {
                let _guard = Dropped(flag);
                tokio::time::sleep(Duration::from_secs(600)).await;
            })
            .await;
            "never"
        })
}

fn get(addr: SocketAddr, path: &str) -> String {
    let mut c = TcpStream::connect(addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    c.read_to_string(&mut out).unwrap();
    out
}

fn wait_for(flag: &AtomicBool, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn tokio_timers_and_sockets_work_from_handlers() {
    let server = TestServer::start(app);
    assert!(get(server.addr(), "/tokio-sleep").ends_with("slept true"));
    let port = server.addr().port();
    let r = get(server.addr(), &format!("/call-self?port={port}"));
    assert!(r.ends_with("it said: hello from the loop"), "{r}");
    let r = get(server.addr(), "/panic");
    assert!(r.starts_with("HTTP/1.1 500"), "{r}");
    assert!(r.ends_with("caught: in tokio\n"), "{r}");
    assert!(get(server.addr(), "/hello").ends_with("hello from the loop"));
}

/// Both cases in one test: the flag is one per process.
#[test]
fn a_bridged_task_is_aborted_when_nobody_waits_for_it() {
    let flag = ABORTED.get_or_init(Default::default).clone();
    // 1. The client resets its connection.
    let server = TestServer::start(app);
    let c = TcpStream::connect(server.addr()).unwrap();
    (&c).write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!flag.load(Ordering::SeqCst), "still running while awaited");
    socket2::SockRef::from(&c)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(c); // RST
    assert!(
        wait_for(&flag, Duration::from_secs(10)),
        "aborted after the reset"
    );

    // 2. The client closes its connection (a FIN, not a reset).
    flag.store(false, Ordering::SeqCst);
    let c = TcpStream::connect(server.addr()).unwrap();
    (&c).write_all(b"GET /forever HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!flag.load(Ordering::SeqCst), "still running while awaited");
    drop(c);
    assert!(
        wait_for(&flag, Duration::from_secs(10)),
        "aborted after the close"
    );

    // 3. A handler timeout answers in the handler's place.
    flag.store(false, Ordering::SeqCst);
    let cfg = ServerConfig {
        handler_timeout: Some(Duration::from_millis(100)),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(app, cfg);
    let r = get(server.addr(), "/forever");
    assert!(r.starts_with("HTTP/1.1 503"), "{r}");
    assert!(
        wait_for(&flag, Duration::from_secs(10)),
        "aborted after the timeout"
    );
}
