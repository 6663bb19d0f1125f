//! Accept-style field values (RFC 9110 §12.4.2): comma-separated items,
//! each with `;`-parameters, one of which may be its weight `q`.

/// The items of `value` with their weights in thousandths (1000 without
/// a `q`); an item whose `q` is malformed is left out.
pub fn weighted(value: &str) -> impl Iterator<Item = (&str, u32)> {
    value.split(',').filter_map(|item| {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let q = parts
            .map(str::trim)
            .find_map(|p| p.strip_prefix("q=").or_else(|| p.strip_prefix("Q=")))
            .map_or(Some(1000), parse_q)?;
        (!name.is_empty()).then_some((name, q))
    })
}

/// The weight the items give what `is_named` picks out: the highest of
/// those named, else that of `*`, else 0 (not acceptable).
pub fn weight_of<'a>(
    items: impl IntoIterator<Item = (&'a str, u32)>,
    is_named: impl Fn(&str) -> bool,
) -> u32 {
    let (mut named, mut star) = (None::<u32>, None::<u32>);
    for (name, q) in items {
        if is_named(name) {
            named = Some(named.map_or(q, |n| n.max(q)));
        } else if name == "*" {
            star = Some(q);
        }
    }
    named.or(star).unwrap_or(0)
}

/// A q-value in thousandths (`0.8` is 800); `None` when malformed.
fn parse_q(q: &str) -> Option<u32> {
    let (whole, frac) = q.split_once('.').unwrap_or((q, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0;
    for (i, b) in frac.bytes().enumerate() {
        thousandths += u32::from(b - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_and_stars() {
        let items: Vec<_> = weighted("gzip;q=0.8, br, x;q=2, *;q=0.1, y;q=0.05").collect();
        assert_eq!(items, [("gzip", 800), ("br", 1000), ("*", 100), ("y", 50)]);
        let w = |v: &str, n: &str| weight_of(weighted(v), |x| x.eq_ignore_ascii_case(n));
        assert_eq!(w("gzip;q=0, *", "gzip"), 0, "named beats the star");
        assert_eq!(w("*;q=0.3", "gzip"), 300);
        assert_eq!(w("br", "gzip"), 0);
        assert_eq!(w("GZIP;Q=1.0", "gzip"), 1000);
    }
}
