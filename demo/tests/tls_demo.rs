//! The demo over HTTPS (`--tls-cert`, `--tls-key`) with its plain-HTTP
//! redirect (`--redirect-port`), driven by a real TLS client (rustls)
//! trusting a CA made at test time.

mod demo;
#[path = "../../server/tests/util/tls.rs"]
mod tls_pki;
#[path = "../../server/tests/util/mod.rs"]
mod util;

use demo::Demo;
use tls_pki::TestPki;
use util::{body_of, status_of, temp_dir};

/// Asks with `ask` (a response) until its body holds `wanted`, for up
/// to 10 s.
fn until_body(mut ask: impl FnMut() -> String, wanted: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = ask();
        if body_of(&got).contains(wanted) {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "{got}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Places an order for `customer` over `c`, asserting its 201.
fn place_order<T: std::io::Read + std::io::Write>(c: &mut util::Client<T>, customer: &str) {
    let order = format!(
        r#"{{"restaurant_id":1,"customer":"{customer}","items":[{{"name":"pizza","qty":1}}]}}"#
    );
    c.send(
        format!(
            "POST /api/orders HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{order}",
            order.len()
        )
        .as_bytes(),
    );
    let created = c.response();
    assert_eq!(status_of(&created), "HTTP/1.1 201 Created", "{created}");
}

#[test]
fn the_demo_serves_https_and_redirects_plain_http() {
    let pki = TestPki::new();
    let dir = temp_dir("tls-demo");
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
    // A port free a moment ago for the redirect listener.
    let redirect_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    let port = redirect_port.to_string();
    let demo = Demo::start(
        &dir.join("data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
            "--redirect-port",
            &port,
        ],
    );
    let mut c = pki.client(demo.addr);
    c.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let health = c.response();
    assert_eq!(status_of(&health), "HTTP/1.1 200 OK", "{health}");
    // An order over the same connection.
    place_order(&mut c, "tls");
    // Its notification reaches the embedded restaurant (over its plain
    // loopback listener: the outbox's client speaks plain HTTP).
    until_body(
        || {
            c.send(b"GET /restaurant/orders HTTP/1.1\r\nHost: localhost\r\n\r\n");
            c.response()
        },
        "\"unique\":1",
    );
    c.send(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let metrics = c.response();
    assert!(
        body_of(&metrics).contains("phaseloop_tls_handshakes_total 1\n"),
        "{metrics}"
    );
    // Plain HTTP on the redirect port goes to the same path over HTTPS.
    let mut plain = util::Client::connect(format!("127.0.0.1:{redirect_port}").parse().unwrap());
    plain.send(b"GET /api/users/1?x=1 HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let moved = plain.response();
    assert_eq!(
        status_of(&moved),
        "HTTP/1.1 308 Permanent Redirect",
        "{moved}"
    );
    assert!(
        moved.contains(&format!(
            "Location: https://localhost:{}/api/users/1?x=1\r\n",
            demo.addr.port()
        )),
        "{moved}"
    );
    // And plain HTTP on the HTTPS port is a failed handshake, counted.
    let mut wrong = demo.connect();
    wrong.send(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let _ = wrong.read_to_close();
    until_body(
        || {
            let mut c = pki.client(demo.addr);
            c.send(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
            c.response()
        },
        "phaseloop_tls_handshake_errors_total 1\n",
    );
}

#[test]
fn notifications_travel_over_https_to_a_restaurant_behind_a_private_ca() {
    // The restaurant: a second demo serving HTTPS (its embedded
    // restaurant answers on the same port), certified by the test CA.
    let pki = TestPki::new();
    let dir = temp_dir("tls-notify");
    std::fs::write(dir.join("cert.pem"), &pki.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem"), &pki.key_pem).unwrap();
    std::fs::write(dir.join("ca.pem"), &pki.ca_pem).unwrap();
    let (cert, key, ca) = (
        dir.join("cert.pem"),
        dir.join("key.pem"),
        dir.join("ca.pem"),
    );
    let restaurant = Demo::start(
        &dir.join("restaurant-data"),
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let notify_url = format!("https://localhost:{}/restaurant", restaurant.addr.port());
    // The shop: plain HTTP, notifying the restaurant over HTTPS, trusting
    // the test CA for it.
    let shop = Demo::start(
        &dir.join("shop-data"),
        &[
            "--notify-url",
            &notify_url,
            "--notify-ca",
            ca.to_str().unwrap(),
        ],
    );
    place_order(&mut shop.connect(), "https");
    // It arrives at the restaurant once, over TLS.
    let mut r = pki.client(restaurant.addr);
    until_body(
        || {
            r.send(b"GET /restaurant/orders HTTP/1.1\r\nHost: localhost\r\n\r\n");
            r.response()
        },
        "\"unique\":1",
    );
    r.send(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let metrics = r.response();
    // Ours and the shop's outbox connection: two handshakes.
    assert!(
        body_of(&metrics).contains("phaseloop_tls_handshakes_total 2\n"),
        "{metrics}"
    );
    // A shop without the CA is refused by the restaurant's certificate:
    // its order is saved, its notification waits and retries (never
    // delivered), and the restaurant's count stays at one.
    let stranger = Demo::start(&dir.join("stranger-data"), &["--notify-url", &notify_url]);
    place_order(&mut stranger.connect(), "stranger");
    // At least one refused handshake (the outbox tries again with
    // backoff: more may follow before we look).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let mut r = pki.client(restaurant.addr);
        r.send(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n");
        let metrics = r.response();
        let refused = body_of(&metrics)
            .lines()
            .find_map(|l| l.strip_prefix("phaseloop_tls_handshake_errors_total "))
            .and_then(|n| n.parse::<u64>().ok());
        if refused.is_some_and(|n| n >= 1) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{metrics}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    r.send(b"GET /restaurant/orders HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let orders = r.response();
    assert!(body_of(&orders).contains("\"unique\":1"), "{orders}");
    // The stranger's journal says why its attempt failed (written on the
    // pool after the attempt: waited for).
    until_body(
        || {
            let notes = std::fs::read_to_string(dir.join("stranger-data/notifications.log"))
                .unwrap_or_default();
            format!("HTTP/1.1 200 OK\r\n\r\n{notes}")
        },
        "\"error\":\"TLS: invalid peer certificate: UnknownIssuer\"",
    );
}
