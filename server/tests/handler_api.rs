//! The handler API over real sockets (and in process): returned values
//! and `?`, typed input, state and its sharing across loops, errors
//! rendered once and seen by middleware (the server's own refusals too),
//! the fallback, nested groups, every method's route kinds, cookies.

use std::cell::Cell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use phaseloop::testing::{InProcess, TestClient, TestRequest, TestServer};
use phaseloop::{
    App, Cluster, Cookie, Error, Form, Json, Method, Next, Path, Query, Request, Responder,
    Response, ServerConfig, StatusCode,
};
use phaseloop_core::Loop;
use serde::Deserialize;

/// Counts every request it sees and marks every response it sends.
fn marker(seen: Rc<Cell<u32>>) -> impl phaseloop::Middleware {
    move |lp: &Loop, req: Request, mut res: Responder, next: Next| {
        seen.set(seen.get() + 1);
        res.on_send(|r| r.set_header("X-Seen", "yes"));
        next.run(lp, req, res)
    }
}

#[test]
fn returned_values_and_question_marks() {
    let server = TestServer::start(|| {
        App::new()
            .get("/text", |_, _| "plain")
            .get("/status", |_, _| StatusCode::ACCEPTED)
            .get("/pair", |_, _| (201, Json(vec![1, 2])))
            .get("/none", |_, _| None::<&'static str>)
            .get("/unit", |_, _| ())
            .get("/bytes", |_, _| vec![1u8, 2, 3])
            .get("/fail", |req, _| -> Result<&'static str, Error> {
                let n: u32 = req.query_as("n")?.unwrap_or(0);
                if n > 3 {
                    return Err(Error::conflict(format!("{n} is too many")));
                }
                Ok("few")
            })
    });
    let mut c = server.client();
    let r = c.get("/text");
    assert_eq!((r.status, r.text()), (200, "plain"));
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(c.get("/status").status, 202);
    let r = c.get("/pair");
    assert_eq!((r.status, r.text()), (201, "[1,2]"));
    assert_eq!(c.get("/none").status, 404);
    assert_eq!(c.get("/unit").status, 204);
    assert_eq!(c.get("/bytes").body, vec![1, 2, 3]);
    assert_eq!(c.get("/fail?n=2").text(), "few");
    let r = c.get("/fail?n=9");
    assert_eq!((r.status, r.text()), (409, "409 Conflict: 9 is too many\n"));
    let r = c.send(TestRequest::get("/fail?n=x").header("Accept", "application/json"));
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json::<serde_json::Value>()["error"],
        "query parameter 'n' (\"x\"): invalid digit found in string"
    );
}

#[derive(Deserialize, Debug, PartialEq)]
struct Search {
    q: String,
    page: Option<u32>,
}

#[derive(Deserialize)]
struct Ids {
    user: u64,
    item: String,
}

#[test]
fn typed_input_and_its_errors() {
    let server = TestServer::start(|| {
        App::new()
            .get("/search", |req, _| {
                let Query(s): Query<Search> = req.extract()?;
                Ok::<_, Error>(format!("{}:{:?}", s.q, s.page))
            })
            .post("/login", |req, _| {
                let Form(form): Form<HashMap<String, String>> = req.extract()?;
                Ok::<_, Error>(form["name"].clone())
            })
            .get("/users/:user/items/:item", |req, _| {
                let Path(ids): Path<Ids> = req.extract()?;
                Ok::<_, Error>(format!("{} {}", ids.user, ids.item))
            })
            .get("/n/:n", |req, _| {
                let Path(n): Path<u8> = req.extract()?;
                Ok::<_, Error>(format!("{n}"))
            })
            .post("/json", |req, _| {
                let Json(v): Json<Vec<u32>> = req.extract()?;
                Ok::<_, Error>(Json(v.len()))
            })
    });
    let mut c = server.client();
    assert_eq!(c.get("/search?q=pho%20bo&page=2").text(), "pho bo:Some(2)");
    assert_eq!(c.get("/search?q=x").text(), "x:None");
    let r = c.get("/search?page=2");
    assert_eq!(
        (r.status, r.text()),
        (400, "400 Bad Request: invalid query: missing field `q`\n")
    );
    let login = TestRequest::post("/login").form(&[("name", "ada lovelace")]);
    assert_eq!(c.send(login).text(), "ada lovelace");
    let wrong = TestRequest::post("/login").json(&[("name", "x")]);
    assert_eq!(c.send(wrong).status, 415);
    // Parameters are percent-decoded before they are typed.
    assert_eq!(c.get("/users/%34%32/items/a%2Fb").text(), "42 a/b");
    let r = c.get("/n/300");
    assert_eq!(r.status, 400);
    assert!(
        r.text().contains("path parameter 'n' (\"300\")"),
        "{}",
        r.text()
    );
    assert_eq!(
        c.send(TestRequest::post("/json").json(&[1, 2, 3])).text(),
        "3"
    );
    let plus_json = TestRequest::post("/json")
        .header("Content-Type", "application/vnd.api+json")
        .body("[1]");
    assert_eq!(c.send(plus_json).text(), "1");
    let r = c.send(
        TestRequest::post("/json")
            .header("Content-Type", "application/json")
            .body("[1,"),
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text().starts_with("400 Bad Request: invalid JSON: EOF"),
        "{}",
        r.text()
    );
    let r = c.send(
        TestRequest::post("/json")
            .header("Content-Type", "text/plain")
            .body("[1]"),
    );
    assert_eq!(r.status, 415);
}

#[test]
fn state_is_handed_to_every_kind_of_handler() {
    #[derive(Default)]
    struct Counter(Cell<u32>);
    let server = TestServer::start(|| {
        let app = App::with_state(Counter::default());
        let shared = app.state();
        app.post("/hit", |_, c| {
            c.0.set(c.0.get() + 1);
            format!("{}", c.0.get())
        })
        .put_async("/hit", |_, c| async move {
            c.0.set(c.0.get() + 10);
            format!("{}", c.0.get())
        })
        .patch_with("/hit", move |_, _, res| {
            shared.0.set(shared.0.get() + 100);
            res.text(200, format!("{}", shared.0.get()))
        })
        .delete_async("/hit", |_, c| async move { format!("{}", c.0.get()) })
        .patch_async("/other", |_, _| async { "patched" })
        .post_async("/other", |_, _| async {
            Err::<(), _>(Error::unavailable("later"))
        })
    });
    let mut c = server.client();
    assert_eq!(c.send(TestRequest::post("/hit")).text(), "1");
    assert_eq!(c.send(TestRequest::put("/hit")).text(), "11");
    assert_eq!(c.send(TestRequest::patch("/hit")).text(), "111");
    assert_eq!(c.send(TestRequest::delete("/hit")).text(), "111");
    assert_eq!(c.send(TestRequest::patch("/other")).text(), "patched");
    let r = c.send(TestRequest::post("/other").header("Accept", "application/json"));
    assert_eq!((r.status, r.text()), (503, r#"{"error":"later"}"#));
}

#[test]
fn a_cluster_refuses_state_that_would_split_by_accident() {
    let addr = "127.0.0.1:0".parse().unwrap();
    let split = Cluster::start(addr, 2, ServerConfig::default(), |_, _| {
        App::with_state(Cell::new(0u64))
    });
    let e = split.expect_err("one state per loop, not asked for");
    assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
    assert!(e.to_string().contains("App::with_shared_state"), "{e}");
    let two_arcs = Cluster::start(addr, 2, ServerConfig::default(), |_, _| {
        App::with_shared_state(Arc::new(AtomicU64::new(0)))
    });
    assert!(two_arcs
        .expect_err("an Arc per loop")
        .to_string()
        .contains("outside"));
    // Said on purpose: fine.
    Cluster::start(addr, 2, ServerConfig::default(), |_, _| {
        App::with_state_per_loop(|| Cell::new(0u64))
    })
    .expect("per loop, as asked");

    // One Arc for all loops: ids never repeat, whichever loop serves.
    let ids = Arc::new(AtomicU64::new(0));
    let cluster = Cluster::start(addr, 2, ServerConfig::default(), move |_, _| {
        App::with_shared_state(ids.clone()).post("/ids", |_, ids| {
            format!("{}", ids.fetch_add(1, Ordering::SeqCst) + 1)
        })
    })
    .unwrap();
    let mut seen: Vec<u64> = (0..20)
        .map(|_| {
            let mut c = TestClient::connect(cluster.local_addr()).unwrap();
            c.send(TestRequest::post("/ids")).text().parse().unwrap()
        })
        .collect();
    seen.sort();
    assert_eq!(seen, (1..=20).collect::<Vec<_>>());
    cluster.shutdown(Duration::from_secs(5));
}

#[test]
fn every_error_goes_through_middleware_and_the_renderer() {
    thread_local!(static SEEN: Rc<Cell<u32>> = Rc::default());
    let cfg = ServerConfig {
        max_head_bytes: 1024,
        max_request_line: 256,
        header_timeout: Duration::from_millis(200),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(
        || {
            App::new()
                .wrap(marker(SEEN.with(Rc::clone)))
                .on_error(|e| {
                    Response::text(
                        e.status,
                        format!("custom {} [{}]", e.status.as_u16(), e.message),
                    )
                    .header("X-Rendered", if e.wants_json { "json" } else { "text" })
                })
                .post("/small", |_, _| "ok")
                .body_limit(8)
                .get("/panic", |_, _| -> &'static str { panic!("on purpose") })
                .get("/err", |_, _| Err::<(), _>(Error::bad_request("mine")))
                .get("/seen", |_, _| format!("{}", SEEN.with(|s| s.get())))
        },
        cfg,
    );
    let check = |bytes: &[u8], status: u16, body: &str| {
        let mut c = server.client();
        let r = c.raw(bytes);
        let shown = String::from_utf8_lossy(&bytes[..bytes.len().min(80)]).into_owned();
        assert_eq!((r.status, r.text()), (status, body), "{shown}");
        assert_eq!(r.header("x-seen"), Some("yes"), "middleware saw {status}");
        assert_eq!(r.header("x-rendered"), Some("text"));
    };
    check(
        b"GET /missing HTTP/1.1\r\nHost: x\r\n\r\n",
        404,
        "custom 404 [no route for /missing]",
    );
    check(
        b"GET /small HTTP/1.1\r\nHost: x\r\n\r\n",
        405,
        "custom 405 [GET is not allowed on /small]",
    );
    check(
        b"POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\n123456789",
        413,
        "custom 413 [request body too large]",
    );
    let long = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(300));
    check(long.as_bytes(), 414, "custom 414 [request line too long]");
    let big = format!(
        "GET / HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(2000)
    );
    check(
        big.as_bytes(),
        431,
        "custom 431 [request header block too large]",
    );
    check(
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Field: 1\r\n\r\n",
        400,
        "custom 400 [invalid header field name (or obs-fold)]",
    );
    // A head that never completes: 408 once the header timeout passes.
    check(
        b"GET / HTTP/1.1\r\nHost: x\r\n",
        408,
        "custom 408 [request not received in time]",
    );
    check(
        b"GET /panic HTTP/1.1\r\nHost: x\r\n\r\n",
        500,
        "custom 500 [the handler panicked]",
    );
    check(
        b"GET /err HTTP/1.1\r\nHost: x\r\n\r\n",
        400,
        "custom 400 [mine]",
    );
    let seen: u32 = server.get("/seen").text().parse().unwrap();
    assert_eq!(
        seen, 10,
        "every request, refused or not, went through the middleware"
    );
}

#[test]
fn default_errors_are_json_for_clients_that_accept_it() {
    let server = TestServer::start(|| {
        App::new()
            .get("/", |_, _| "root")
            .post("/small", |_, _| "ok")
            .body_limit(4)
    });
    let mut c = server.client();
    let r = c.send(TestRequest::get("/nope").header("Accept", "text/html, application/json;q=0.9"));
    assert_eq!(
        (r.status, r.text()),
        (404, r#"{"error":"no route for /nope"}"#)
    );
    assert_eq!(r.header("content-type"), Some("application/json"));
    let refused = TestRequest::post("/small")
        .header("Accept", "application/json")
        .body("12345");
    let r = server.client().send(refused);
    assert_eq!(
        (r.status, r.text()),
        (413, r#"{"error":"request body too large"}"#)
    );
    let r = c.send(TestRequest::get("/nope").header("Accept", "application/json;q=0"));
    assert_eq!(r.text(), "404 Not Found: no route for /nope\n");
}

#[test]
fn the_fallback_answers_what_no_route_does() {
    let server = TestServer::start(|| {
        App::new()
            .get("/a", |_, _| "a")
            .post("/b", |_, _| "b")
            .fallback(|req, _| (404, format!("nothing at {}", req.path())))
    });
    let mut c = server.client();
    assert_eq!(c.get("/a").text(), "a");
    let r = c.get("/b/c");
    assert_eq!((r.status, r.text()), (404, "nothing at /b/c"));
    // A known path with another method is still 405, with Allow.
    let r = c.send(TestRequest::post("/a"));
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
}

#[test]
fn nested_groups_have_their_own_middleware_and_limits() {
    let server = TestServer::start(|| {
        let app = App::new().get("/", |_, _| "root");
        let api = app
            .group()
            .wrap(|lp: &Loop, req: Request, mut res: Responder, next: Next| {
                res.on_send(|r| r.set_header("X-Api", "1"));
                next.run(lp, req, res)
            })
            .default_body_limit(4)
            .get("/", |_, _| "api root")
            .post("/echo", |req, _| req.take_body())
            .post("/big", |req, _| format!("{}", req.body().len()))
            .body_limit(100);
        app.nest("/api", api)
            .post("/echo", |req, _| req.take_body())
    });
    let mut c = server.client();
    let r = c.get("/");
    assert_eq!((r.text(), r.header("x-api")), ("root", None));
    let r = c.get("/api");
    assert_eq!((r.text(), r.header("x-api")), ("api root", Some("1")));
    assert_eq!(
        c.send(TestRequest::post("/api/echo").body("1234")).text(),
        "1234"
    );
    assert_eq!(
        c.send(TestRequest::post("/api/big").body("x".repeat(50)))
            .text(),
        "50"
    );
    assert_eq!(
        c.send(TestRequest::post("/echo").body("123456")).text(),
        "123456"
    );
    let r = server
        .client()
        .send(TestRequest::post("/api/echo").body("12345"));
    assert_eq!(r.status, 413, "the group's limit");
}

#[test]
fn cookies_in_and_out() {
    let server = TestServer::start(|| {
        App::new().get("/visit", |req, _| {
            let visits: u32 = req
                .cookie("visits")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let mut r = Response::text(200, format!("visit {}", visits + 1));
            r.set_cookie(
                &Cookie::new("visits", (visits + 1).to_string())
                    .path("/")
                    .http_only(),
            );
            r.set_cookie(&Cookie::new("bad", "a;b"));
            r
        })
    });
    let mut c = server.client();
    let r = c.get("/visit");
    assert_eq!(r.text(), "visit 1");
    assert_eq!(r.header("set-cookie"), Some("visits=1; Path=/; HttpOnly"));
    assert_eq!(
        r.headers.iter().filter(|(n, _)| n == "Set-Cookie").count(),
        1
    );
    let again = TestRequest::get("/visit").header("Cookie", "theme=dark; visits=4");
    assert_eq!(c.send(again).text(), "visit 5");
}

#[test]
fn in_process_dispatch_runs_routing_middleware_and_the_loop() {
    let seen = Rc::new(Cell::new(0));
    let app = App::new()
        .wrap(marker(seen.clone()))
        .on_error(|e| Response::text(e.status, format!("E{}", e.status.as_u16())))
        .get("/sync", |_, _| "sync")
        .get_async("/async", |_, _| async {
            phaseloop_core::sleep(Duration::from_millis(5)).await;
            "async"
        })
        .get_with("/timer", |lp, _, res| {
            lp.set_timeout(Duration::from_millis(5), move |_| res.text(200, "timer"));
        })
        .post("/small", |_, _| "ok")
        .body_limit(2)
        .route(Method::Get, "/params/:a", |req, _| {
            req.param("a").unwrap_or_default().into_owned()
        });
    let mut app = InProcess::new(app);
    for (path, body) in [
        ("/sync", "sync"),
        ("/async", "async"),
        ("/timer", "timer"),
        ("/params/x%20y", "x y"),
    ] {
        let r = app.call(TestRequest::get(path));
        assert_eq!(
            (r.status, r.text(), r.header("x-seen")),
            (200, body, Some("yes")),
            "{path}"
        );
    }
    let r = app.call(TestRequest::get("/missing"));
    assert_eq!((r.status, r.text()), (404, "E404"));
    let r = app.call(TestRequest::post("/small").body("123"));
    assert_eq!(
        (r.status, r.text(), r.header("x-seen")),
        (413, "E413", Some("yes"))
    );
    assert_eq!(seen.get(), 6);
}

#[test]
fn a_handler_timeout_is_answered_through_middleware_and_the_renderer() {
    thread_local!(static HELD: std::cell::RefCell<Vec<Responder>> = Default::default());
    thread_local!(static PATHS: std::cell::RefCell<Vec<String>> = Default::default());
    let cfg = ServerConfig {
        handler_timeout: Some(Duration::from_millis(50)),
        ..ServerConfig::default()
    };
    let server = TestServer::with_config(
        || {
            App::new()
                .wrap(|lp: &Loop, req: Request, mut res: Responder, next: Next| {
                    let line = format!("{} {}", req.method_str(), req.path());
                    res.on_send(move |r| {
                        // `try_with`: the held responder answers 500 as the thread ends.
                        let _ = PATHS
                            .try_with(|p| p.borrow_mut().push(format!("{line} {}", r.status())));
                        r.set_header("X-Seen", "yes");
                    });
                    next.run(lp, req, res)
                })
                .on_error(|e| Response::text(e.status, format!("late: {}", e.message)))
                .get_with("/never/:id", |_, _, res| {
                    HELD.with(|h| h.borrow_mut().push(res))
                })
                .get("/log", |_, _| PATHS.with(|p| p.borrow().join("\n")))
        },
        cfg,
    );
    let r = server.get("/never/7");
    assert_eq!(
        (r.status, r.text(), r.header("x-seen")),
        (
            503,
            "late: the handler did not answer within 50 ms",
            Some("yes")
        )
    );
    // The handler's own hooks never ran (it still holds its responder);
    // the 503's pass saw the route's pattern.
    assert_eq!(server.get("/log").text(), "GET /never/:id 503");
}

#[test]
fn borrowed_text_bodies_closure_middleware_and_pool_errors() {
    let server = TestServer::start(|| {
        App::new()
            .wrap_fn(|lp, req, mut res, next| {
                res.on_send(|r| r.set_header("X-Wrapped", "fn"));
                next.run(lp, req, res)
            })
            .get_with("/hello/:name", |_, req, res| {
                res.text(200, req.param("name").unwrap_or_default())
            })
            .get_async("/file", |req, _| async move {
                let name = req.query_param("name").unwrap_or_default().into_owned();
                let bytes = phaseloop_core::fs::read_file(name).await??;
                Ok::<_, Error>(format!("{} bytes", bytes.len()))
            })
    });
    let mut c = server.client();
    let r = c.get("/hello/ada%20l");
    assert_eq!((r.text(), r.header("x-wrapped")), ("ada l", Some("fn")));
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let size = std::fs::metadata(manifest).unwrap().len();
    assert_eq!(
        c.get(&format!("/file?name={manifest}")).text(),
        format!("{size} bytes")
    );
    let r = c.get("/file?name=/nonexistent/file");
    assert_eq!(
        (r.status, r.text()),
        (500, "500 Internal Server Error: internal error\n")
    );
}

#[test]
fn the_dashboard_is_open_only_to_whom_it_is_meant_for() {
    use phaseloop::DashboardAccess;
    let server = TestServer::start(|| {
        App::new()
            .dashboard("/_loop", DashboardAccess::Token("s3cret".into()))
            .get("/", |_, _| "home")
    });
    let mut c = server.client();
    assert_eq!(c.get("/_loop/stats.json").status, 403);
    assert_eq!(c.get("/_loop/").status, 403);
    let r = c.get("/_loop/stats.json?token=s3cret");
    assert_eq!(r.status, 200);
    let feed: serde_json::Value = r.json();
    assert!(feed["ticks"].as_u64().unwrap() > 0);
    // The connection asking is being served: reading, not idle.
    let server_figures = &feed["server"];
    let state = |k: &str| server_figures[k].as_u64().unwrap();
    assert_eq!(
        state("idle") + state("reading") + state("writing"),
        state("open")
    );
    assert!(state("reading") >= 1, "{feed}");
    assert_eq!(
        feed["routes"].as_array().unwrap().len(),
        5,
        "four and unmatched: {feed}"
    );
    let bearer = TestRequest::get("/_loop").header("Authorization", "Bearer s3cret");
    let page = c.send(bearer);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(page.text().contains("<canvas id=\"delay\""));
    // Loopback only: a client from loopback is let in, one with no address
    // (in process) is not.
    let server = TestServer::start(|| App::new().dashboard("/_loop", DashboardAccess::Loopback));
    assert_eq!(server.get("/_loop/stats.json").status, 200);
    let mut app = InProcess::new(App::new().dashboard("/_loop", DashboardAccess::Loopback));
    assert_eq!(app.call(TestRequest::get("/_loop/stats.json")).status, 403);
}
