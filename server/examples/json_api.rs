//! A JSON API: typed bodies in, typed bodies out, 400 with a message for
//! malformed JSON, 413 over the route's body limit, route parameters.
//!
//! Run: `cargo run --release -p phaseloop --example json_api`, then
//! `curl -d '{"name":"pho","price_cents":1250}' http://127.0.0.1:3000/dishes`
//! and `curl http://127.0.0.1:3000/dishes/1`.

use std::cell::RefCell;
use std::rc::Rc;

use phaseloop::App;
use serde::{Deserialize, Serialize};

#[derive(Clone, Deserialize, Serialize)]
struct Dish {
    name: String,
    price_cents: u32,
}

/// The app: create and read dishes kept in memory on the loop.
pub fn app() -> App {
    let dishes: Rc<RefCell<Vec<Dish>>> = Rc::default();
    let (read, write) = (dishes.clone(), dishes);
    App::new()
        .post("/dishes", move |_lp, req, res| match req.json::<Dish>() {
            Ok(dish) => {
                let mut all = write.borrow_mut();
                all.push(dish);
                res.json(201, &serde_json::json!({ "id": all.len() }));
            }
            Err(bad_request) => res.send(bad_request),
        })
        .body_limit(1024)
        .get("/dishes/:id", move |_lp, req, res| {
            let dish = req
                .param("id")
                .and_then(|id| id.parse::<usize>().ok())
                .and_then(|id| read.borrow().get(id.wrapping_sub(1)).cloned());
            match dish {
                Some(d) => res.json(200, &d),
                None => res.json_error(404, "no such dish"),
            }
        })
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    phaseloop::serve("127.0.0.1:3000".parse().unwrap(), app())
}
