//! Rows: a statement's columns and one `DataRow`'s values, read by column
//! index or name, or mapped into a struct by column name.

use std::ops::Range;
use std::rc::Rc;

use bytes::Bytes;
use postgres_protocol::Oid;

use super::types::{self, FromSql};
use super::PgError;

/// A result column: its name and type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column {
    /// The column's name (or alias).
    pub name: String,
    /// Its type's OID ([`oid`](super::oid)).
    pub type_oid: Oid,
}

/// Picks a column: by position (`0`) or by name (`"id"`).
pub trait ColumnIndex {
    /// The position among `columns`, if any.
    fn position(&self, columns: &[Column]) -> Option<usize>;
    /// How to name it in an error.
    fn describe(&self) -> String;
}

impl ColumnIndex for usize {
    fn position(&self, columns: &[Column]) -> Option<usize> {
        (*self < columns.len()).then_some(*self)
    }
    fn describe(&self) -> String {
        format!("column {self}")
    }
}

impl ColumnIndex for &str {
    fn position(&self, columns: &[Column]) -> Option<usize> {
        columns.iter().position(|c| c.name == *self)
    }
    fn describe(&self) -> String {
        format!("column {self:?}")
    }
}

/// One row of a result.
#[derive(Debug, Clone)]
pub struct Row {
    columns: Rc<[Column]>,
    data: Bytes,
    ranges: Vec<Option<Range<usize>>>,
    /// A simple query's row: its values are text.
    text: bool,
}

impl Row {
    pub(crate) fn new(
        columns: Rc<[Column]>,
        data: Bytes,
        ranges: Vec<Option<Range<usize>>>,
        text: bool,
    ) -> Result<Row, PgError> {
        if ranges.len() != columns.len() {
            return Err(PgError::Protocol(format!(
                "a row of {} values for {} columns",
                ranges.len(),
                columns.len()
            )));
        }
        Ok(Row {
            columns,
            data,
            ranges,
            text,
        })
    }

    /// The columns, in order.
    pub fn columns(&self) -> &[Column] {
        &self.columns
    }

    /// How many values the row has.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// The row has no columns (`SELECT` of nothing).
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// The raw value of column `i` (binary format; text for a simple
    /// query's row), `None` for NULL.
    pub fn raw(&self, i: usize) -> Option<&[u8]> {
        self.ranges
            .get(i)
            .and_then(|r| r.clone())
            .map(|r| &self.data[r])
    }

    /// Column `index` (a position or a name) as `T`; a missing column, a
    /// NULL read as a non-`Option`, or a type that does not fit is a
    /// [`PgError::Conversion`] naming the column.
    pub fn get<T: FromSql>(&self, index: impl ColumnIndex) -> Result<T, PgError> {
        let Some(i) = index.position(&self.columns) else {
            return Err(PgError::Conversion(format!("no {}", index.describe())));
        };
        let ty = self.columns[i].type_oid;
        let got = if self.text {
            match self.raw(i).map(std::str::from_utf8) {
                Some(Err(_)) => Err("a text value that is not UTF-8".to_owned()),
                Some(Ok(s)) => T::from_text(ty, Some(s)),
                None => T::from_text(ty, None),
            }
        } else {
            T::from_sql(ty, self.raw(i))
        };
        got.map_err(|m| PgError::Conversion(format!("{}: {m}", index.describe())))
    }

    /// The row as a JSON object, column name to value (see how each type
    /// maps in [`types`](super::types)).
    pub fn to_json(&self) -> Result<serde_json::Map<String, serde_json::Value>, PgError> {
        let mut map = serde_json::Map::with_capacity(self.columns.len());
        for (i, column) in self.columns.iter().enumerate() {
            let value = if self.text {
                match self.raw(i) {
                    None => serde_json::Value::Null,
                    Some(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
                }
            } else {
                types::to_json(column.type_oid, self.raw(i))
                    .map_err(|m| PgError::Conversion(format!("column {:?}: {m}", column.name)))?
            };
            map.insert(column.name.clone(), value);
        }
        Ok(map)
    }

    /// The row mapped into `T` by column name (`#[derive(Deserialize)]`;
    /// a field the row lacks is an error unless it is an `Option` or has
    /// `#[serde(default)]`).
    pub fn deserialize<T: serde::de::DeserializeOwned>(&self) -> Result<T, PgError> {
        serde_json::from_value(serde_json::Value::Object(self.to_json()?))
            .map_err(|e| PgError::Conversion(format!("the row does not map: {e}")))
    }
}
