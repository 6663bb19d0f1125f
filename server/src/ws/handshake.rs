//! The opening handshake (RFC 6455 §4.2): what makes a request a WebSocket
//! upgrade, and the 101 answer with its `Sec-WebSocket-Accept`.

use base64::Engine as _;
use sha1::{Digest, Sha1};

use crate::http::request::{Method, Request};
use crate::http::response::Response;
use crate::http::status::reason_phrase;
use crate::http::Version;

/// RFC 6455 §1.3: appended to the client's key before hashing.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The answer to an upgrade request: `Ok` the 101 to send, `Err` the
/// refusal (400 for a malformed handshake; 426 with `Upgrade: websocket`
/// for a plain request, or with `Sec-WebSocket-Version: 13` for another
/// version).
pub(crate) fn answer(req: &Request) -> Result<Response, Response> {
    let refuse = |status: u16, message: &str| {
        Response::text(
            status,
            format!("{status} {}: {message}\n", reason_phrase(status)),
        )
    };
    if req.method() != Method::Get {
        return Err(refuse(400, "a WebSocket handshake is a GET"));
    }
    if req.version() != Version::Http11 {
        return Err(refuse(400, "a WebSocket handshake is HTTP/1.1"));
    }
    let upgrade = req.header("upgrade").unwrap_or("");
    if !has_token(upgrade, "websocket") {
        return Err(
            refuse(426, "this resource speaks WebSocket only").header("Upgrade", "websocket")
        );
    }
    if !has_token(req.header("connection").unwrap_or(""), "upgrade") {
        return Err(refuse(400, "Connection must include upgrade"));
    }
    if req.header("sec-websocket-version").map(str::trim) != Some("13") {
        return Err(refuse(426, "only WebSocket version 13 is served")
            .header("Sec-WebSocket-Version", "13"));
    }
    let key = req.header("sec-websocket-key").unwrap_or("").trim();
    let decoded = base64::engine::general_purpose::STANDARD.decode(key);
    if !matches!(decoded, Ok(ref k) if k.len() == 16) {
        return Err(refuse(400, "Sec-WebSocket-Key must be 16 bytes in base64"));
    }
    Ok(Response::new(101)
        .header("Upgrade", "websocket")
        .header("Sec-WebSocket-Accept", accept_key(key)))
}

/// `Sec-WebSocket-Accept` for a client's key.
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Whether a comma-separated field value holds `token` (any case).
fn has_token(value: &str, token: &str) -> bool {
    value
        .split(',')
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_key_of_rfc_6455s_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
