//! Values between Rust and PostgreSQL: parameters go out as [`Value`]s
//! (converted to the parameter's type when the statement's types are
//! known), columns come back in the binary format and are read with
//! [`FromSql`].
//!
//! Types: int2/4/8, float4/8, bool, text/varchar/bpchar/name, bytea, uuid,
//! json/jsonb (as `serde_json::Value` or [`Json<T>`](crate::Json)),
//! timestamptz/timestamp (as `SystemTime`), numeric (as text: `"12.50"`),
//! and NULL as `Option`. A string parameter goes out in the text format,
//! so it fits any type PostgreSQL can read from text (numeric, uuid,
//! timestamptz, ...).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use postgres_protocol::types as wire;
use postgres_protocol::Oid;

use crate::http::Json;

pub use uuid::Uuid;

/// Type OIDs this client converts (from `pg_type`).
pub mod oid {
    #![allow(missing_docs)]
    pub const BOOL: u32 = 16;
    pub const BYTEA: u32 = 17;
    pub const NAME: u32 = 19;
    pub const INT8: u32 = 20;
    pub const INT2: u32 = 21;
    pub const INT4: u32 = 23;
    pub const TEXT: u32 = 25;
    pub const OID: u32 = 26;
    pub const JSON: u32 = 114;
    pub const FLOAT4: u32 = 700;
    pub const FLOAT8: u32 = 701;
    pub const UNKNOWN: u32 = 705;
    pub const BPCHAR: u32 = 1042;
    pub const VARCHAR: u32 = 1043;
    pub const TIMESTAMP: u32 = 1114;
    pub const TIMESTAMPTZ: u32 = 1184;
    pub const NUMERIC: u32 = 1700;
    pub const UUID: u32 = 2950;
    pub const JSONB: u32 = 3802;
}

/// Seconds from the Unix epoch to PostgreSQL's (2000-01-01 UTC).
const PG_EPOCH_UNIX_SECS: u64 = 946_684_800;

/// A parameter's value, owned: it waits in the connection's queue until
/// the statement's parameter types are known.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// bool.
    Bool(bool),
    /// Any integer: int2/int4/int8 (range-checked), float, numeric.
    Int(i64),
    /// float4/float8, numeric.
    Float(f64),
    /// Sent in the text format: text types, or any type read from text.
    Text(String),
    /// bytea.
    Bytes(Vec<u8>),
    /// uuid (or its text form for a text parameter).
    Uuid(Uuid),
    /// timestamptz or timestamp (UTC).
    Time(SystemTime),
    /// json or jsonb.
    Json(serde_json::Value),
}

/// A Rust value usable as a query parameter.
pub trait ToSql {
    /// The value to send.
    fn to_value(&self) -> Value;
}

macro_rules! to_sql {
    ($($t:ty => |$v:ident| $e:expr;)*) => {$(
        impl ToSql for $t {
            fn to_value(&self) -> Value {
                let $v = self;
                $e
            }
        }
    )*};
}

to_sql! {
    bool => |v| Value::Bool(*v);
    i16 => |v| Value::Int(i64::from(*v));
    i32 => |v| Value::Int(i64::from(*v));
    i64 => |v| Value::Int(*v);
    u32 => |v| Value::Int(i64::from(*v));
    f32 => |v| Value::Float(f64::from(*v));
    f64 => |v| Value::Float(*v);
    str => |v| Value::Text(v.to_owned());
    String => |v| Value::Text(v.clone());
    [u8] => |v| Value::Bytes(v.to_vec());
    Vec<u8> => |v| Value::Bytes(v.clone());
    Uuid => |v| Value::Uuid(*v);
    SystemTime => |v| Value::Time(*v);
    serde_json::Value => |v| Value::Json(v.clone());
    Value => |v| v.clone();
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Value {
        (**self).to_value()
    }
}

impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Value {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}

impl<T: serde::Serialize> ToSql for Json<T> {
    fn to_value(&self) -> Value {
        match serde_json::to_value(&self.0) {
            Ok(v) => Value::Json(v),
            // A map with non-string keys, say: sent as JSON null would
            // lose data silently, so it goes as text PostgreSQL refuses.
            Err(e) => Value::Text(format!("unserializable: {e}")),
        }
    }
}

/// Parameter format codes.
pub(crate) const TEXT_FORMAT: i16 = 0;
pub(crate) const BINARY_FORMAT: i16 = 1;

/// Writes `value` for a parameter of type `ty`; returns its format, or
/// `None` for NULL.
pub(crate) fn encode(value: &Value, ty: Oid, out: &mut BytesMut) -> Result<Option<i16>, String> {
    let mismatch = |what: &str| {
        Err(format!(
            "a {what} does not fit a parameter of type {}",
            type_name(ty)
        ))
    };
    let binary = Ok(Some(BINARY_FORMAT));
    let text = Ok(Some(TEXT_FORMAT));
    match value {
        Value::Null => Ok(None),
        Value::Bool(b) => match ty {
            oid::BOOL => {
                wire::bool_to_sql(*b, out);
                binary
            }
            _ => mismatch("bool"),
        },
        Value::Int(i) => match ty {
            oid::INT2 => {
                let v = i16::try_from(*i).map_err(|_| format!("{i} does not fit int2"))?;
                wire::int2_to_sql(v, out);
                binary
            }
            oid::INT4 => {
                let v = i32::try_from(*i).map_err(|_| format!("{i} does not fit int4"))?;
                wire::int4_to_sql(v, out);
                binary
            }
            oid::INT8 => {
                wire::int8_to_sql(*i, out);
                binary
            }
            oid::OID => {
                let v = u32::try_from(*i).map_err(|_| format!("{i} does not fit oid"))?;
                wire::oid_to_sql(v, out);
                binary
            }
            oid::FLOAT4 => {
                wire::float4_to_sql(*i as f32, out);
                binary
            }
            oid::FLOAT8 => {
                wire::float8_to_sql(*i as f64, out);
                binary
            }
            oid::NUMERIC | oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::UNKNOWN => {
                out.put_slice(i.to_string().as_bytes());
                text
            }
            _ => mismatch("integer"),
        },
        Value::Float(f) => match ty {
            oid::FLOAT4 => {
                wire::float4_to_sql(*f as f32, out);
                binary
            }
            oid::FLOAT8 => {
                wire::float8_to_sql(*f, out);
                binary
            }
            oid::NUMERIC if f.is_finite() => {
                out.put_slice(f.to_string().as_bytes());
                text
            }
            _ => mismatch("float"),
        },
        // Text is sent as text: PostgreSQL reads it into whatever type the
        // parameter has (numeric, uuid, timestamptz, json ...) or refuses
        // it with a clear error (22P02) that fails only this query.
        Value::Text(s) => {
            out.put_slice(s.as_bytes());
            text
        }
        Value::Bytes(b) => match ty {
            oid::BYTEA => {
                wire::bytea_to_sql(b, out);
                binary
            }
            _ => mismatch("byte string"),
        },
        Value::Uuid(u) => match ty {
            oid::UUID => {
                wire::uuid_to_sql(*u.as_bytes(), out);
                binary
            }
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::UNKNOWN => {
                out.put_slice(u.hyphenated().to_string().as_bytes());
                text
            }
            _ => mismatch("uuid"),
        },
        Value::Time(t) => match ty {
            oid::TIMESTAMPTZ | oid::TIMESTAMP => {
                wire::timestamp_to_sql(micros_since_pg_epoch(*t)?, out);
                binary
            }
            _ => mismatch("time"),
        },
        Value::Json(v) => match ty {
            oid::JSON | oid::TEXT | oid::VARCHAR | oid::UNKNOWN => {
                let s = serde_json::to_string(v).map_err(|e| e.to_string())?;
                out.put_slice(s.as_bytes());
                text
            }
            oid::JSONB => {
                // jsonb's binary form: a version byte (1), then the text.
                out.put_u8(1);
                serde_json::to_writer(out.writer(), v).map_err(|e| e.to_string())?;
                binary
            }
            _ => mismatch("JSON value"),
        },
    }
}

fn micros_since_pg_epoch(t: SystemTime) -> Result<i64, String> {
    let pg_epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
    let micros = match t.duration_since(pg_epoch) {
        Ok(d) => i64::try_from(d.as_micros()),
        Err(e) => i64::try_from(e.duration().as_micros()).map(|m| -m),
    };
    micros.map_err(|_| "a time out of timestamptz's range".to_owned())
}

/// A short name for a type OID, for messages.
pub fn type_name(ty: Oid) -> String {
    let name = match ty {
        oid::BOOL => "bool",
        oid::BYTEA => "bytea",
        oid::NAME => "name",
        oid::INT8 => "int8",
        oid::INT2 => "int2",
        oid::INT4 => "int4",
        oid::TEXT => "text",
        oid::OID => "oid",
        oid::JSON => "json",
        oid::FLOAT4 => "float4",
        oid::FLOAT8 => "float8",
        oid::UNKNOWN => "unknown",
        oid::BPCHAR => "bpchar",
        oid::VARCHAR => "varchar",
        oid::TIMESTAMP => "timestamp",
        oid::TIMESTAMPTZ => "timestamptz",
        oid::NUMERIC => "numeric",
        oid::UUID => "uuid",
        oid::JSONB => "jsonb",
        other => return format!("oid {other}"),
    };
    name.to_owned()
}

/// A Rust type a column's value can be read as.
pub trait FromSql: Sized {
    /// Reads a binary-format value of type `ty` (`None`: SQL NULL).
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String>;

    /// Reads a text-format value (a simple query's rows). Strings,
    /// numbers and bools read from text; other types say to use `String`.
    fn from_text(ty: Oid, raw: Option<&str>) -> Result<Self, String> {
        let _ = raw;
        Err(format!(
            "a simple query's {} column reads only as String or a number",
            type_name(ty)
        ))
    }
}

fn not_null<T>(raw: Option<T>) -> Result<T, String> {
    raw.ok_or_else(|| "the column is NULL: read it as an Option".to_owned())
}

fn wrong(ty: Oid, rust: &str) -> String {
    format!("a {} column does not read as {rust}", type_name(ty))
}

fn err(e: Box<dyn std::error::Error + Sync + Send>) -> String {
    e.to_string()
}

impl<T: FromSql> FromSql for Option<T> {
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
        match raw {
            None => Ok(None),
            some => T::from_sql(ty, some).map(Some),
        }
    }
    fn from_text(ty: Oid, raw: Option<&str>) -> Result<Self, String> {
        match raw {
            None => Ok(None),
            some => T::from_text(ty, some).map(Some),
        }
    }
}

impl FromSql for bool {
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
        match ty {
            oid::BOOL => wire::bool_from_sql(not_null(raw)?).map_err(err),
            _ => Err(wrong(ty, "bool")),
        }
    }
    fn from_text(_ty: Oid, raw: Option<&str>) -> Result<Self, String> {
        match not_null(raw)? {
            "t" => Ok(true),
            "f" => Ok(false),
            other => Err(format!("{other:?} is not a bool")),
        }
    }
}

/// Integers read from any narrower or equal integer column, range-checked.
macro_rules! from_int {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
                let raw = not_null(raw)?;
                let wide: i64 = match ty {
                    oid::INT2 => wire::int2_from_sql(raw).map_err(err)?.into(),
                    oid::INT4 => wire::int4_from_sql(raw).map_err(err)?.into(),
                    oid::INT8 => wire::int8_from_sql(raw).map_err(err)?,
                    oid::OID => wire::oid_from_sql(raw).map_err(err)?.into(),
                    _ => return Err(wrong(ty, stringify!($t))),
                };
                <$t>::try_from(wide).map_err(|_| format!("{wide} does not fit {}", stringify!($t)))
            }
            fn from_text(_ty: Oid, raw: Option<&str>) -> Result<Self, String> {
                let s = not_null(raw)?;
                s.parse().map_err(|_| format!("{s:?} is not a {}", stringify!($t)))
            }
        }
    )*};
}

from_int!(i16, i32, i64, u32);

impl FromSql for f64 {
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
        let raw = not_null(raw)?;
        match ty {
            oid::FLOAT4 => wire::float4_from_sql(raw).map(f64::from).map_err(err),
            oid::FLOAT8 => wire::float8_from_sql(raw).map_err(err),
            oid::INT2 | oid::INT4 | oid::INT8 => i64::from_sql(ty, Some(raw)).map(|v| v as f64),
            _ => Err(wrong(ty, "f64")),
        }
    }
    fn from_text(_ty: Oid, raw: Option<&str>) -> Result<Self, String> {
        let s = not_null(raw)?;
        s.parse().map_err(|_| format!("{s:?} is not a number"))
    }
}

impl FromSql for f32 {
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
        match ty {
            oid::FLOAT4 => wire::float4_from_sql(not_null(raw)?).map_err(err),
            _ => Err(wrong(ty, "f32")),
        }
    }
    fn from_text(_ty: Oid, raw: Option<&str>) -> Result<Self, String> {
        let s = not_null(raw)?;
        s.parse().map_err(|_| format!("{s:?} is not a number"))
    }
}

impl FromSql for String {
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
        let raw = not_null(raw)?;
        match ty {
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::UNKNOWN | oid::JSON => {
                wire::text_from_sql(raw).map(str::to_owned).map_err(err)
            }
            oid::JSONB => match raw.split_first() {
                Some((1, text)) => wire::text_from_sql(text).map(str::to_owned).map_err(err),
                _ => Err("a jsonb value of an unknown version".to_owned()),
            },
            oid::NUMERIC => numeric_to_text(raw),
            oid::UUID => Uuid::from_sql(ty, Some(raw)).map(|u| u.hyphenated().to_string()),
            _ => Err(wrong(ty, "String")),
        }
    }
    fn from_text(_ty: Oid, raw: Option<&str>) -> Result<Self, String> {
        not_null(raw).map(str::to_owned)
    }
}

impl FromSql for Vec<u8> {
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
        match ty {
            oid::BYTEA => Ok(wire::bytea_from_sql(not_null(raw)?).to_vec()),
            _ => Err(wrong(ty, "Vec<u8>")),
        }
    }
}

impl FromSql for Uuid {
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
        match ty {
            oid::UUID => wire::uuid_from_sql(not_null(raw)?)
                .map(Uuid::from_bytes)
                .map_err(err),
            _ => Err(wrong(ty, "Uuid")),
        }
    }
    fn from_text(_ty: Oid, raw: Option<&str>) -> Result<Self, String> {
        let s = not_null(raw)?;
        Uuid::parse_str(s).map_err(|e| e.to_string())
    }
}

impl FromSql for SystemTime {
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
        match ty {
            oid::TIMESTAMPTZ | oid::TIMESTAMP => {
                let micros = wire::timestamp_from_sql(not_null(raw)?).map_err(err)?;
                if micros == i64::MAX || micros == i64::MIN {
                    return Err("an infinite timestamp has no SystemTime".to_owned());
                }
                let pg_epoch = UNIX_EPOCH + Duration::from_secs(PG_EPOCH_UNIX_SECS);
                let offset = Duration::from_micros(micros.unsigned_abs());
                let t = if micros >= 0 {
                    pg_epoch.checked_add(offset)
                } else {
                    pg_epoch.checked_sub(offset)
                };
                t.ok_or_else(|| "a timestamp out of SystemTime's range".to_owned())
            }
            _ => Err(wrong(ty, "SystemTime")),
        }
    }
}

impl FromSql for serde_json::Value {
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
        let text = match ty {
            oid::JSON | oid::JSONB => String::from_sql(ty, raw)?,
            _ => return Err(wrong(ty, "JSON")),
        };
        serde_json::from_str(&text).map_err(|e| e.to_string())
    }
}

impl<T: serde::de::DeserializeOwned> FromSql for Json<T> {
    fn from_sql(ty: Oid, raw: Option<&[u8]>) -> Result<Self, String> {
        let text = match ty {
            oid::JSON | oid::JSONB => String::from_sql(ty, raw)?,
            _ => return Err(wrong(ty, "Json")),
        };
        serde_json::from_str(&text)
            .map(Json)
            .map_err(|e| e.to_string())
    }
}

/// A column's value as JSON, for mapping a row into a struct by name:
/// numbers, bools and strings as themselves, json/jsonb as their value,
/// numeric as a string (no precision lost), uuid as its hyphenated
/// form, timestamps as RFC 3339 (UTC), bytea as an array of bytes.
pub(crate) fn to_json(ty: Oid, raw: Option<&[u8]>) -> Result<serde_json::Value, String> {
    use serde_json::Value as J;
    let Some(bytes) = raw else {
        return Ok(J::Null);
    };
    let some = Some(bytes);
    Ok(match ty {
        oid::BOOL => J::Bool(bool::from_sql(ty, some)?),
        oid::INT2 | oid::INT4 | oid::INT8 | oid::OID => J::from(i64::from_sql(ty, some)?),
        oid::FLOAT4 | oid::FLOAT8 => J::from(f64::from_sql(ty, some)?),
        oid::JSON | oid::JSONB => serde_json::Value::from_sql(ty, some)?,
        oid::BYTEA => J::from(Vec::<u8>::from_sql(ty, some)?),
        oid::TIMESTAMPTZ | oid::TIMESTAMP => J::String(rfc3339(SystemTime::from_sql(ty, some)?)),
        _ => J::String(String::from_sql(ty, some)?),
    })
}

/// `2026-12-06T08:24:56.123456Z` (microseconds, as PostgreSQL keeps).
pub fn rfc3339(t: SystemTime) -> String {
    let (secs, micros) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
        Err(e) => {
            let d = e.duration();
            let (s, us) = (d.as_secs() as i64, d.subsec_micros());
            if us == 0 {
                (-s, 0)
            } else {
                (-s - 1, 1_000_000 - us)
            }
        }
    };
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = crate::http::civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{micros:06}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// numeric's binary form (base-10000 digits with weight, sign and
/// display scale) as the text PostgreSQL would print.
fn numeric_to_text(raw: &[u8]) -> Result<String, String> {
    let bad = || "a malformed numeric value".to_owned();
    let word = |i: usize| -> Result<u16, String> {
        raw.get(i..i + 2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]))
            .ok_or_else(bad)
    };
    let ndigits = word(0)? as usize;
    let weight = word(2)? as i16 as i32;
    let sign = word(4)?;
    let dscale = word(6)? as usize;
    match sign {
        0x0000 | 0x4000 => {}
        0xC000 => return Ok("NaN".into()),
        0xD000 => return Ok("Infinity".into()),
        0xF000 => return Ok("-Infinity".into()),
        _ => return Err(bad()),
    }
    let mut digits = Vec::with_capacity(ndigits);
    for i in 0..ndigits {
        let d = word(8 + 2 * i)?;
        if d > 9999 {
            return Err(bad());
        }
        digits.push(d);
    }
    if dscale > 16_383 || weight.unsigned_abs() > 131_072 {
        return Err(bad());
    }
    // Digit group k (0-based) stands for 10000^(weight - k).
    let group = |k: i32| -> u16 {
        if k < 0 {
            0
        } else {
            digits.get(k as usize).copied().unwrap_or(0)
        }
    };
    let mut out = String::new();
    if sign == 0x4000 {
        out.push('-');
    }
    if weight < 0 {
        out.push('0');
    } else {
        for k in 0..=weight {
            if k == 0 {
                out.push_str(&group(k).to_string());
            } else {
                out.push_str(&format!("{:04}", group(k)));
            }
        }
    }
    if dscale > 0 {
        out.push('.');
        let mut frac = String::new();
        let mut k = weight + 1;
        while frac.len() < dscale {
            frac.push_str(&format!("{:04}", group(k)));
            k += 1;
        }
        frac.truncate(dscale);
        out.push_str(&frac);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numeric(ndigits: u16, weight: i16, sign: u16, dscale: u16, digits: &[u16]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [ndigits, weight as u16, sign, dscale] {
            v.extend_from_slice(&w.to_be_bytes());
        }
        for d in digits {
            v.extend_from_slice(&d.to_be_bytes());
        }
        v
    }

    #[test]
    fn numeric_prints_as_postgresql_does() {
        assert_eq!(
            numeric_to_text(&numeric(2, 0, 0, 2, &[12, 5000])).unwrap(),
            "12.50"
        );
        assert_eq!(
            numeric_to_text(&numeric(2, 1, 0x4000, 0, &[1, 2345])).unwrap(),
            "-12345"
        );
        assert_eq!(
            numeric_to_text(&numeric(1, -2, 0, 6, &[1200])).unwrap(),
            "0.000012"
        );
        assert_eq!(numeric_to_text(&numeric(0, 0, 0, 0, &[])).unwrap(), "0");
        assert_eq!(
            numeric_to_text(&numeric(1, 2, 0, 0, &[7])).unwrap(),
            "700000000"
        );
        assert!(numeric_to_text(&[0, 5]).is_err());
        assert!(numeric_to_text(&numeric(1, 0, 0, 0, &[10_000])).is_err());
    }

    #[test]
    fn rfc3339_counts_days_and_leap_years() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        let t = UNIX_EPOCH + Duration::from_micros(951_782_400_000_001); // 2000-02-29
        assert_eq!(rfc3339(t), "2000-02-29T00:00:00.000001Z");
        let before = UNIX_EPOCH - Duration::from_micros(1);
        assert_eq!(rfc3339(before), "1969-12-31T23:59:59.999999Z");
    }
}
