//! WebSocket frames (RFC 6455 §5): a client frame's header read from
//! bytes, a server frame's header written, masking, and the close codes a
//! peer may send. Pure: no sockets, no loop.

/// Frame opcodes (RFC 6455 §5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Opcode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl Opcode {
    fn from_bits(bits: u8) -> Option<Opcode> {
        Some(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    /// Close, ping and pong: never fragmented, at most 125 bytes.
    pub fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A client frame's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub fin: bool,
    pub opcode: Opcode,
    pub mask: [u8; 4],
    /// Bytes of header (2 to 14).
    pub header_len: usize,
    pub payload_len: u64,
}

/// Why a peer's frame is refused: the close code to send and a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Violation {
    pub code: u16,
    pub reason: &'static str,
}

/// Protocol error (1002).
pub(crate) const fn protocol(reason: &'static str) -> Violation {
    Violation { code: 1002, reason }
}

/// Close codes.
pub(crate) const GOING_AWAY: u16 = 1001;
pub(crate) const INVALID_PAYLOAD: u16 = 1007;
pub(crate) const TOO_BIG: u16 = 1009;
/// "No status received": what a close frame without a code means to us
/// (never sent on the wire).
pub(crate) const NO_STATUS: u16 = 1005;

/// Reads a client frame's header from the front of `buf`: `Ok(None)` until
/// the whole header is there. A server refuses unmasked client frames,
/// reserved bits (no extension is negotiated), unknown opcodes, and
/// control frames that are fragmented or longer than 125 bytes.
pub(crate) fn parse_header(buf: &[u8]) -> Result<Option<Header>, Violation> {
    let [b0, b1, ..] = *buf else {
        return Ok(None);
    };
    if b0 & 0x70 != 0 {
        return Err(protocol("reserved bits set without an extension"));
    }
    let opcode = Opcode::from_bits(b0 & 0x0F).ok_or(protocol("unknown opcode"))?;
    let fin = b0 & 0x80 != 0;
    if b1 & 0x80 == 0 {
        return Err(protocol("client frames must be masked"));
    }
    let (len, at) = match b1 & 0x7F {
        126 => {
            let Some(b) = buf.get(2..4) else {
                return Ok(None);
            };
            let n = u16::from_be_bytes([b[0], b[1]]) as u64;
            if n < 126 {
                return Err(protocol("length not in its shortest form"));
            }
            (n, 4)
        }
        127 => {
            let Some(b) = buf.get(2..10) else {
                return Ok(None);
            };
            let n = u64::from_be_bytes(b.try_into().expect("8 bytes"));
            if n >> 63 != 0 {
                return Err(protocol("length with its top bit set"));
            }
            if n <= 0xFFFF {
                return Err(protocol("length not in its shortest form"));
            }
            (n, 10)
        }
        n => (n as u64, 2),
    };
    if opcode.is_control() && (!fin || len > 125) {
        return Err(protocol(
            "control frames are single frames of at most 125 bytes",
        ));
    }
    let Some(mask) = buf.get(at..at + 4) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        opcode,
        mask: mask.try_into().expect("4 bytes"),
        header_len: at + 4,
        payload_len: len,
    }))
}

/// Unmasks (or masks) `data` in place; `offset` is where `data` starts in
/// its frame's payload. Eight bytes a step.
pub(crate) fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut m = [0u8; 4];
    for (i, b) in m.iter_mut().enumerate() {
        *b = mask[(offset + i) % 4];
    }
    let wide = u64::from_ne_bytes([m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3]]);
    let mut chunks = data.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = u64::from_ne_bytes((&*c).try_into().expect("8 bytes")) ^ wide;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= m[i % 4];
    }
}

/// Bytes of a server frame carrying `len` bytes of payload.
pub(crate) fn encoded_len(len: usize) -> usize {
    let header = match len {
        0..=125 => 2,
        126..=0xFFFF => 4,
        _ => 10,
    };
    header + len
}

/// Appends a server frame (unmasked, final) carrying `payload`.
pub(crate) fn encode(out: &mut Vec<u8>, opcode: Opcode, payload: &[u8]) {
    out.push(0x80 | opcode.bits());
    let n = payload.len();
    if n < 126 {
        out.push(n as u8);
    } else if n <= 0xFFFF {
        out.push(126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    out.extend_from_slice(payload);
}

/// Appends a close frame with `code` and `reason` (cut to fit 125 bytes at
/// a character boundary).
pub(crate) fn encode_close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; 125];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    encode(out, Opcode::Close, &payload[..2 + end]);
}

/// A close frame's payload from a peer: its code (`NO_STATUS` when empty)
/// and reason, or the violation it is.
pub(crate) fn parse_close(payload: &[u8]) -> Result<(u16, &str), Violation> {
    match payload {
        [] => Ok((NO_STATUS, "")),
        [_] => Err(protocol("a close payload of one byte")),
        [a, b, reason @ ..] => {
            let code = u16::from_be_bytes([*a, *b]);
            // RFC 6455 §7.4: the codes an endpoint may send.
            let valid = matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999);
            if !valid {
                return Err(protocol("a close code no endpoint may send"));
            }
            let reason = std::str::from_utf8(reason).map_err(|_| Violation {
                code: INVALID_PAYLOAD,
                reason: "a close reason that is not UTF-8",
            })?;
            Ok((code, reason))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(b0: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![b0];
        let n = payload.len();
        if n < 126 {
            out.push(0x80 | n as u8);
        } else if n <= 0xFFFF {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        } else {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
        out.extend_from_slice(&mask);
        let mut p = payload.to_vec();
        apply_mask(&mut p, mask, 0);
        out.extend_from_slice(&p);
        out
    }

    #[test]
    fn headers_of_each_length_form_are_read_and_payloads_unmasked() {
        for n in [0usize, 5, 125, 126, 65_535, 65_536] {
            let payload: Vec<u8> = (0..n).map(|i| i as u8).collect();
            let frame = masked(0x82, &payload);
            // Incomplete until the whole header is there.
            for cut in 0..frame.len().min(14) {
                let h = parse_header(&frame[..cut]).unwrap();
                assert!(h.is_none() || h.unwrap().header_len <= cut);
            }
            let h = parse_header(&frame).unwrap().unwrap();
            assert_eq!(
                (h.fin, h.opcode, h.payload_len),
                (true, Opcode::Binary, n as u64)
            );
            let mut body = frame[h.header_len..].to_vec();
            apply_mask(&mut body, h.mask, 0);
            assert_eq!(body, payload);
        }
        // Unmasking in two pieces at an odd offset is the same.
        let mut a: Vec<u8> = (0..37).collect();
        let mut b = a.clone();
        apply_mask(&mut a, [9, 8, 7, 6], 0);
        let (x, y) = b.split_at_mut(13);
        apply_mask(x, [9, 8, 7, 6], 0);
        apply_mask(y, [9, 8, 7, 6], 13);
        assert_eq!(a, b);
    }

    #[test]
    fn what_a_server_refuses() {
        let refused = |bytes: &[u8]| parse_header(bytes).unwrap_err().code;
        assert_eq!(refused(&[0x81, 0x05]), 1002, "unmasked");
        assert_eq!(refused(&[0xC1, 0x80]), 1002, "RSV1");
        assert_eq!(refused(&[0x83, 0x80]), 1002, "opcode 3");
        assert_eq!(refused(&[0x09, 0x80]), 1002, "fragmented ping");
        assert_eq!(refused(&[0x89, 0xFE, 0x00, 0x7E]), 1002, "126-byte ping");
        assert_eq!(refused(&[0x82, 0xFE, 0x00, 0x05]), 1002, "long form of 5");
        assert_eq!(parse_close(&[0x03]).unwrap_err().code, 1002);
        assert_eq!(parse_close(&[0x03, 0xED]).unwrap_err().code, 1002, "1005");
        assert_eq!(parse_close(&[0x03, 0xE8, 0xFF]).unwrap_err().code, 1007);
        assert_eq!(
            parse_close(&[0x03, 0xE8, b'o', b'k']).unwrap(),
            (1000, "ok")
        );
        assert_eq!(parse_close(&[0x0F, 0xA0]).unwrap().0, 4000);
        assert_eq!(parse_close(&[]).unwrap().0, NO_STATUS);
    }

    #[test]
    fn server_frames_and_close_reasons_are_encoded_shortest() {
        let mut out = Vec::new();
        encode(&mut out, Opcode::Text, b"hi");
        assert_eq!(out, b"\x81\x02hi");
        out.clear();
        encode(&mut out, Opcode::Binary, &[0; 300]);
        assert_eq!(&out[..4], &[0x82, 126, 0x01, 0x2C]);
        for n in [0, 125, 126, 0xFFFF, 0x10000] {
            out.clear();
            encode(&mut out, Opcode::Binary, &vec![0; n]);
            assert_eq!(out.len(), encoded_len(n), "{n}");
        }
        out.clear();
        let long = "é".repeat(100); // 200 bytes: cut at a character
        encode_close(&mut out, 1001, &long);
        assert_eq!(out[1] as usize, out.len() - 2);
        assert!(out.len() - 2 <= 125);
        assert!(std::str::from_utf8(&out[4..]).is_ok());
    }
}
