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

/// This process's request-id prefix.
fn id_prefix() -> String {
    let id = middleware::new_request_id();
    id.split('-').next().unwrap().to_string()
}

#[test]
fn middleware_chain_runs_in_order() {
    let server = TestServer::start(app);
    let mut c = server.connect();
    c.send(b"GET /secret HTTP/1.1\r\nHost: x\r\n\r\n");
    let r = c.response();
    assert!(r.starts_with("HTTP/1.1 401 Unauthorized\r\n"), "{r}");
    assert!(
        r.contains(&format!("X-Request-Id: {}-", id_prefix())),
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

mod library_middleware {
    use std::collections::HashSet;
    use std::time::Duration;

    use phaseloop::middleware::{self, Cors, RateLimit};
    use phaseloop::testing::{InProcess, TestRequest, TestServer};
    use phaseloop::App;

    fn cors_app() -> App {
        App::new()
            .wrap(
                Cors::new()
                    .allow_origins(["https://app.example"])
                    .allow_methods(["GET", "POST"])
                    .allow_headers(["content-type", "x-token"])
                    .expose_headers(["X-Total"])
                    .allow_credentials(true)
                    .max_age(Duration::from_secs(60)),
            )
            .get("/", |_, _| "hi")
            .post("/small", |_, _| "ok")
            .body_limit(4)
    }

    #[test]
    fn cors_preflights_simple_requests_and_refusals() {
        let server = TestServer::start(cors_app);
        let mut c = server.client();
        let pre = TestRequest::new("OPTIONS", "/")
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "Content-Type, X-Token");
        let r = c.send(pre);
        assert_eq!(r.status, 204);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.example")
        );
        assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
        assert_eq!(
            r.header("access-control-allow-headers"),
            Some("content-type, x-token")
        );
        assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
        assert_eq!(r.header("access-control-max-age"), Some("60"));
        // A method or a header not allowed: no CORS fields, the browser refuses.
        let bad = TestRequest::new("OPTIONS", "/")
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "DELETE");
        assert_eq!(c.send(bad).header("access-control-allow-origin"), None);
        let bad = TestRequest::new("OPTIONS", "/")
            .header("Origin", "https://app.example")
            .header("Access-Control-Request-Method", "GET")
            .header("Access-Control-Request-Headers", "x-secret");
        assert_eq!(c.send(bad).header("access-control-allow-origin"), None);
        // A simple request, and another origin.
        let r = c.send(TestRequest::get("/").header("Origin", "https://app.example"));
        assert_eq!(r.header("access-control-expose-headers"), Some("X-Total"));
        assert_eq!(r.header("vary"), Some("Origin"));
        let r = c.send(TestRequest::get("/").header("Origin", "https://evil.example"));
        assert_eq!(
            (r.text(), r.header("access-control-allow-origin")),
            ("hi", None)
        );
        // The server's own 413 carries them too.
        let big = TestRequest::post("/small")
            .header("Origin", "https://app.example")
            .body("12345");
        let r = server.client().send(big);
        assert_eq!(r.status, 413);
        assert_eq!(
            r.header("access-control-allow-origin"),
            Some("https://app.example")
        );
    }

    #[test]
    fn any_origin_is_a_star_without_credentials() {
        let server = TestServer::start(|| {
            App::new()
                .wrap(middleware::cors(&["*"]))
                .get("/", |_, _| "x")
        });
        let r = server
            .client()
            .send(TestRequest::get("/").header("Origin", "http://a"));
        assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    }

    #[test]
    fn request_ids_are_kept_or_made_unique() {
        let server = TestServer::start(|| {
            App::new()
                .wrap(middleware::request_id())
                .get("/", |_, _| "x")
        });
        let mut c = server.client();
        let r = c.send(TestRequest::get("/").header("X-Request-Id", "abc-123"));
        assert_eq!(r.header("x-request-id"), Some("abc-123"));
        let r = c.send(TestRequest::get("/").header("X-Request-Id", "has space"));
        assert_ne!(r.header("x-request-id"), Some("has space"));
        let ids: HashSet<String> = (0..50)
            .map(|_| c.get("/").header("x-request-id").unwrap().to_string())
            .collect();
        assert_eq!(ids.len(), 50);
        // The prefix is this process's: another process's differs.
        let mine = middleware::new_request_id();
        let prefix = mine.split('-').next().unwrap();
        assert!(ids.iter().all(|id| id.starts_with(prefix)));
        assert_eq!(prefix.len(), 16);
    }

    #[test]
    fn rate_limits_answer_429_with_retry_after_and_stay_bounded() {
        let server = TestServer::start(|| {
            App::new()
                .wrap(
                    // One token per 50 s: none comes back during the test,
                    // however slow the machine.
                    RateLimit::new(0.02, 2)
                        .key(|req| req.header("x-key").map(String::from))
                        .max_clients(100),
                )
                .get("/", |_, _| "ok")
        });
        let mut c = server.client();
        let as_key = |k: &str| TestRequest::get("/").header("X-Key", k);
        assert_eq!(c.send(as_key("a")).status, 200);
        assert_eq!(c.send(as_key("a")).status, 200);
        let r = c.send(as_key("a").header("Accept", "application/json"));
        assert_eq!(r.status, 429);
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(
            (1..=50).contains(&retry),
            "a token comes back within 50 s: {retry}"
        );
        assert_eq!(r.text(), r#"{"error":"too many requests; slow down"}"#);
        assert_eq!(
            c.send(as_key("b")).status,
            200,
            "another client's own bucket"
        );
        // Without a key: by address.
        assert_eq!(c.get("/").status, 200);
    }

    #[test]
    fn a_rate_limit_forgets_the_least_recently_seen_first() {
        // In process: the limiter stays on this thread, where it is read.
        let limit = RateLimit::new(0.001, 1)
            .key(|req| req.header("x-key").map(String::from))
            .max_clients(100);
        let probe = limit.clone();
        let mut app = InProcess::new(App::new().wrap(limit).get("/", |_, _| "ok"));
        let as_key = |k: &str| TestRequest::get("/").header("X-Key", k);
        assert_eq!(app.call(as_key("kept")).status, 200);
        for i in 0..1000 {
            assert_eq!(app.call(as_key(&i.to_string())).status, 200);
            if i % 50 == 0 {
                // Seen again and again: never the least recently seen.
                assert_eq!(app.call(as_key("kept")).status, 429);
            }
            assert!(probe.tracked_clients() <= 100);
        }
        assert_eq!(probe.tracked_clients(), 100);
        // Its empty bucket was remembered: still limited.
        assert_eq!(app.call(as_key("kept")).status, 429);
        // A key forgotten long ago starts afresh.
        assert_eq!(app.call(as_key("3")).status, 200);
    }
}
