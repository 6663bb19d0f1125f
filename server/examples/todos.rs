//! A JSON CRUD "todos" service: path and query parameters, validated JSON
//! bodies, a logger, CORS, a file read on the pool, an async handler, an
//! answer given later from a timer, graceful Ctrl-C, and its test.
//!
//! Run: `cargo run --release -p phaseloop --example todos`, then
//! `curl -H 'Content-Type: application/json' -d '{"title":"buy pho"}' http://127.0.0.1:3000/todos`,
//! `curl 'http://127.0.0.1:3000/todos?limit=10'`, and Ctrl-C to drain and stop.
//! Test: `cargo test -p phaseloop --example todos`.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::time::Duration;

use phaseloop::core::fs;
use phaseloop::{middleware, App, Error, Json, Query, StatusCode};
use serde::{Deserialize, Serialize};

#[derive(Clone, Serialize, Deserialize, Debug, PartialEq)]
pub struct Todo {
    id: u64,
    title: String,
    done: bool,
}

#[derive(Deserialize)]
struct NewTodo {
    title: String,
}

#[derive(Deserialize)]
struct Update {
    title: Option<String>,
    done: Option<bool>,
}

#[derive(Deserialize)]
struct Page {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// The todos, in memory on the loop.
#[derive(Default, Debug)]
pub struct Todos {
    last_id: Cell<u64>,
    items: RefCell<BTreeMap<u64, Todo>>,
}

fn valid_title(title: &str) -> Result<String, Error> {
    let title = title.trim();
    if title.is_empty() || title.len() > 200 {
        return Err(Error::unprocessable("a title has 1 to 200 characters"));
    }
    Ok(title.to_string())
}

pub fn app() -> App<Todos> {
    App::with_state(Todos::default())
        .wrap(middleware::logger())
        .wrap(middleware::cors(&["*"]))
        .get("/todos", |req, todos| {
            let Query(page): Query<Page> = req.extract()?;
            let items = todos.items.borrow();
            let list = items.values().skip(page.offset.unwrap_or(0));
            let list: Vec<Todo> = list.take(page.limit.unwrap_or(100)).cloned().collect();
            Ok::<_, Error>(Json(list))
        })
        .post("/todos", |req, todos| {
            let Json(new): Json<NewTodo> = req.extract()?;
            let title = valid_title(&new.title)?;
            let id = todos.last_id.get() + 1;
            todos.last_id.set(id);
            let todo = Todo {
                id,
                title,
                done: false,
            };
            todos.items.borrow_mut().insert(id, todo.clone());
            Ok::<_, Error>((StatusCode::CREATED, Json(todo)))
        })
        .body_limit(16 * 1024)
        .get("/todos/:id", |req, todos| {
            let id: u64 = req.param_as("id")?;
            let todo = todos.items.borrow().get(&id).cloned();
            todo.map(Json).ok_or(Error::not_found("no such todo"))
        })
        .patch("/todos/:id", |req, todos| {
            let id: u64 = req.param_as("id")?;
            let Json(update): Json<Update> = req.extract()?;
            let mut items = todos.items.borrow_mut();
            let todo = items.get_mut(&id).ok_or(Error::not_found("no such todo"))?;
            if let Some(title) = update.title {
                todo.title = valid_title(&title)?;
            }
            todo.done = update.done.unwrap_or(todo.done);
            Ok::<_, Error>(Json(todo.clone()))
        })
        .delete("/todos/:id", |req, todos| {
            let id: u64 = req.param_as("id")?;
            let removed = todos.items.borrow_mut().remove(&id);
            removed
                .map(|_| StatusCode::NO_CONTENT)
                .ok_or(Error::not_found("no such todo"))
        })
        // A file read on the thread pool, awaited.
        .get_async("/about", |_req, todos| async move {
            let bytes = fs::read_file(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
                .await
                .map_err(|e| Error::unavailable(e.to_string()))??;
            let count = todos.items.borrow().len();
            Ok::<_, Error>(format!("{count} todos; manifest of {} bytes", bytes.len()))
        })
        // An answer given later, from a timer: the loop-native style.
        .get_with("/todos/:id/reminder", |lp, req, res| {
            lp.set_timeout(Duration::from_millis(20), move |_| {
                let id = req.param("id").unwrap_or_default().into_owned();
                res.reply(&req, format!("remember todo {id}"));
            });
        })
}

/// Serves until Ctrl-C (SIGINT) or SIGTERM, then drains and returns.
fn main() -> std::io::Result<()> {
    phaseloop::serve("127.0.0.1:3000".parse().unwrap(), app())
}

#[cfg(test)]
mod tests {
    use phaseloop::testing::{TestRequest, TestServer};
    use serde_json::json;

    #[test]
    fn crud_errors_and_cors() {
        let server = TestServer::start(super::app);
        let mut c = server.client();
        let created = c.post_json("/todos", &json!({ "title": " buy pho " }));
        assert_eq!(
            (created.status, created.text()),
            (201, r#"{"id":1,"title":"buy pho","done":false}"#)
        );
        let patch = TestRequest::patch("/todos/1").json(&json!({ "done": true }));
        assert_eq!(c.send(patch).json::<serde_json::Value>()["done"], true);
        assert_eq!(
            c.get("/todos?limit=5").text(),
            r#"[{"id":1,"title":"buy pho","done":true}]"#
        );
        let bad = c.send(TestRequest::get("/todos/x").header("Accept", "application/json"));
        assert_eq!(
            (bad.status, bad.text()),
            (
                400,
                r#"{"error":"path parameter 'id' (\"x\"): invalid digit found in string"}"#
            )
        );
        assert_eq!(c.post_json("/todos", &json!({ "title": "" })).status, 422);
        assert_eq!(c.send(TestRequest::post("/todos").body("{}")).status, 415);
        let big = TestRequest::post("/todos")
            .header("Origin", "http://a")
            .json(&"x".repeat(20_000));
        let refused = server.client().send(big);
        assert_eq!(
            (
                refused.status,
                refused.header("access-control-allow-origin")
            ),
            (413, Some("*"))
        );
        assert_eq!(c.get("/todos/1/reminder").text(), "remember todo 1");
        assert!(c.get("/about").text().starts_with("1 todos; manifest of "));
        assert_eq!(c.send(TestRequest::delete("/todos/1")).status, 204);
        assert_eq!(c.get("/todos/1").status, 404);
    }
}
