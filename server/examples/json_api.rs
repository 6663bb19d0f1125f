//! A JSON API: typed bodies in, typed bodies out, 400 with a message for
//! malformed JSON, 415 without a JSON content type, 413 over the route's
//! body limit, typed route parameters, state without `Rc` clones.
//!
//! Run: `cargo run --release -p phaseloop --example json_api`, then
//! `curl -H 'Content-Type: application/json' -d '{"name":"pho","price_cents":1250}' http://127.0.0.1:3000/dishes`
//! and `curl http://127.0.0.1:3000/dishes/1`.

use std::cell::RefCell;

use phaseloop::{App, Error, Json, StatusCode};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Deserialize, Serialize)]
struct Dish {
    name: String,
    price_cents: u32,
}

/// The dishes, kept in memory on the loop.
#[derive(Default, Debug)]
pub struct Menu(RefCell<Vec<Dish>>);

/// The app: create and read dishes.
pub fn app() -> App<Menu> {
    App::with_state(Menu::default())
        .post("/dishes", |req, menu| {
            let Json(dish): Json<Dish> = req.extract()?;
            let mut all = menu.0.borrow_mut();
            all.push(dish);
            Ok::<_, Error>((
                StatusCode::CREATED,
                Json(serde_json::json!({ "id": all.len() })),
            ))
        })
        .body_limit(1024)
        .get("/dishes/:id", |req, menu| {
            let id: usize = req.param_as("id")?;
            let dish = menu.0.borrow().get(id.wrapping_sub(1)).cloned();
            dish.map(Json).ok_or(Error::not_found("no such dish"))
        })
}

#[allow(dead_code)]
fn main() -> std::io::Result<()> {
    phaseloop::serve("127.0.0.1:3000".parse().unwrap(), app())
}
