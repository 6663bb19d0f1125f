//! Middleware composes around handlers, first added runs first, and can
//! answer itself or change the response on its way out.

mod util;

use phaseloop::{middleware, App, Response};
use util::{body_of, TestServer};

fn app() -> App {
    App::new()
        .wrap(middleware::request_id())
        .wrap(
            |lp: &phaseloop_core::Loop,
             req: phaseloop::Request,
             mut res: phaseloop::Responder,
             next: phaseloop::Next| {
                if req.header("authorization") != Some("Bearer ok") {
                    return res.send(Response::json_error(401, "missing or bad token"));
                }
                res.on_send(|r| {
                    *r = std::mem::replace(r, Response::new(200)).header("X-Checked", "yes")
                });
                next.run(lp, req, res)
            },
        )
        .get_with("/secret", |_, _, res| res.text(200, "the secret"))
}

#[test]
fn middleware_chain_runs_in_order() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.response();
    assert!(r.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{r}");
    assert!(
        r.contains("X-Request-Id: 1\r\n"),
        "the outer middleware saw the inner's answer: {r}"
    );
    c.send(b"GET /secret HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ok\r\nX-Request-Id: abc-123\r\n\r\n");
    let r = c.response();
    assert!(
        r.contains("X-Checked: yes\r\n") && r.contains("X-Request-Id: abc-123\r\n"),
        "{r}"
    );
    assert_eq!(body_of(&r), "the secret");
}

#[test]
fn middleware_sees_each_requests_own_route() {
    // Request storage is recycled between requests on a thread: a 404 after
    // a routed request must not show the earlier request's route.
    let server = TestServer::start(|| {
        App::new()
            .wrap(
                |lp: &phaseloop_core::Loop,
                 req: phaseloop::Request,
                 mut res: phaseloop::Responder,
                 next: phaseloop::Next| {
                    let route = req.route().map_or("none".to_string(), |r| r.to_string());
                    res.on_send(move |r| {
                        *r = std::mem::replace(r, Response::new(200)).header("X-Route", route)
                    });
                    next.run(lp, req, res)
                },
            )
            .get_with("/secret", |_, _, res| res.text(200, "the secret"))
            .get_with("/users/:id", |_, _, res| res.text(200, "a user"))
    });
    let mut c = server.connect();
    for (path, route) in [
        ("/secret", "GET /secret"),
        ("/missing", "none"),
        ("/users/7", "GET /users/:id"),
        ("/secret", "GET /secret"),
        ("/secret", "GET /secret"),
    ] {
        c.send(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
        let r = c.response();
        assert!(r.contains(&format!("X-Route: {route}\r\n")), "{path}: {r}");
    }
    // A method no route knows: the server's 501 goes through it too.
    c.send(b"POST /secret HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n");
    let r = c.response();
    assert!(r.starts_with("HTTP/1.1 501 "), "{r}");
    assert!(r.contains("X-Route: none\r\n"), "{r}");
}
