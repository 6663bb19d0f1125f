//! A raw WebSocket client for the socket tests: masked frames written by
//! hand, server frames read back exactly.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::util::{find, redact_date, TestServer};

pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

pub fn handshake(path: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
}

pub const ACCEPTED: &str = "HTTP/1.1 101 Switching Protocols\r\nDate: <date>\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nConnection: Upgrade\r\n\r\n";

/// A client frame (masked unless told otherwise).
pub fn frame(b0: u8, payload: &[u8], masked: bool) -> Vec<u8> {
    frame_with_mask(b0, payload, masked.then_some([0x37, 0xfa, 0x21, 0x3d]))
}

/// A client frame masked with `mask`, or unmasked.
pub fn frame_with_mask(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![b0];
    let m = if mask.is_some() { 0x80 } else { 0 };
    let n = payload.len();
    if n < 126 {
        out.push(m | n as u8);
    } else if n <= 0xFFFF {
        out.push(m | 126);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else {
        out.push(m | 127);
        out.extend_from_slice(&(n as u64).to_be_bytes());
    }
    if let Some(mask) = mask {
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    } else {
        out.extend_from_slice(payload);
    }
    out
}

pub struct Ws {
    pub s: TcpStream,
    pub buf: Vec<u8>,
}

impl Ws {
    pub fn open(server: &TestServer, path: &str) -> Ws {
        Self::open_with(server.addr, path, &[])
    }

    /// Opens `path`, with `after` sent in the same write as the handshake.
    pub fn open_with(addr: SocketAddr, path: &str, after: &[u8]) -> Ws {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut first = handshake(path).into_bytes();
        first.extend_from_slice(after);
        s.write_all(&first).unwrap();
        let mut ws = Ws { s, buf: Vec::new() };
        let head = ws.read_head();
        assert_eq!(redact_date(&head), ACCEPTED);
        ws
    }

    pub fn read_head(&mut self) -> String {
        loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..i + 4).collect();
                return String::from_utf8(head).unwrap();
            }
            assert!(self.fill(), "closed before the head");
        }
    }

    pub fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 64 * 1024];
        match self.s.read(&mut chunk) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// The next server frame: (first byte, payload). Server frames are
    /// never masked.
    pub fn recv(&mut self) -> (u8, Vec<u8>) {
        loop {
            if self.buf.len() >= 2 {
                assert_eq!(self.buf[1] & 0x80, 0, "a server frame is not masked");
                let (len, at) = match self.buf[1] & 0x7f {
                    126 if self.buf.len() >= 4 => {
                        (u16::from_be_bytes([self.buf[2], self.buf[3]]) as usize, 4)
                    }
                    127 if self.buf.len() >= 10 => (
                        u64::from_be_bytes(self.buf[2..10].try_into().unwrap()) as usize,
                        10,
                    ),
                    126 | 127 => (usize::MAX, 0),
                    n => (n as usize, 2),
                };
                if len != usize::MAX && self.buf.len() >= at + len {
                    let b0 = self.buf[0];
                    let payload = self.buf[at..at + len].to_vec();
                    self.buf.drain(..at + len);
                    return (b0, payload);
                }
            }
            assert!(
                self.fill(),
                "closed while waiting for a frame; have {:?}",
                self.buf
            );
        }
    }

    /// Reads the server's close frame and then the end of the connection.
    pub fn expect_close(&mut self, code: u16) {
        let (b0, payload) = self.recv();
        assert_eq!(b0, 0x88, "a close frame; payload {payload:?}");
        assert_eq!(
            u16::from_be_bytes([payload[0], payload[1]]),
            code,
            "{:?}",
            String::from_utf8_lossy(&payload[2..])
        );
        assert!(
            !self.fill() && self.buf.is_empty(),
            "the server closes after its close frame"
        );
    }
}
