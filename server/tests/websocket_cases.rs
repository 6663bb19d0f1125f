//! The Autobahn fuzzing-client's case sections (1 framing, 2 pings,
//! 3 reserved bits, 4 opcodes, 5 fragmentation, 6 UTF-8, 7 closing, 9
//! sizes) as a table, against the echo route over real sockets: each case
//! sends its frames and expects the echo, the pongs, or the close code a
//! server must send. Autobahn itself (Python 2, or a Docker Hub image)
//! cannot run here; this is its case list, written from the
//! specification, each case judged strictly (no "non-strict" pass).

mod util;
#[path = "util/ws.rs"]
mod ws_client;

use phaseloop::ws::{Message, WsConfig};
use phaseloop::App;
use util::TestServer;
use ws_client::{frame, Ws};

fn app() -> App {
    App::new().get_with("/echo", |_, req, res| {
        let cfg = WsConfig {
            max_message: 16 * 1024 * 1024,
            write_high_water: 32 * 1024 * 1024,
            idle_timeout: None,
            ..WsConfig::default()
        };
        res.websocket(&req, cfg, |_, ws| {
            ws.on_message(|_, ws, msg: Message| {
                let _ = ws.send(&msg);
            });
        })
    })
}

/// What a case must get back.
enum Expect {
    /// These frames (first byte, payload), then the connection stays open:
    /// a clean close from the client is answered with 1000.
    Frames(Vec<(u8, Vec<u8>)>),
    /// A close frame with this code (after any frames listed), then the end.
    Close(Vec<(u8, Vec<u8>)>, u16),
}

fn text(s: &[u8]) -> (u8, Vec<u8>) {
    (0x81, s.to_vec())
}

fn cases() -> Vec<(String, Vec<u8>, Expect)> {
    let mut c: Vec<(String, Vec<u8>, Expect)> = Vec::new();
    // 1.x: text and binary of every length form.
    for n in [0usize, 125, 126, 127, 128, 65535, 65536] {
        let t = vec![b'*'; n];
        c.push((
            format!("1.1 text {n}"),
            frame(0x81, &t, true),
            Expect::Frames(vec![(0x81, t.clone())]),
        ));
        let b = vec![0xfeu8; n];
        c.push((
            format!("1.2 binary {n}"),
            frame(0x82, &b, true),
            Expect::Frames(vec![(0x82, b)]),
        ));
    }
    // 2.x: pings.
    c.push((
        "2.1 empty ping".into(),
        frame(0x89, b"", true),
        Expect::Frames(vec![(0x8A, vec![])]),
    ));
    c.push((
        "2.2 ping text".into(),
        frame(0x89, b"Hello, world!", true),
        Expect::Frames(vec![(0x8A, b"Hello, world!".to_vec())]),
    ));
    c.push((
        "2.3 ping binary".into(),
        frame(0x89, &[0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff], true),
        Expect::Frames(vec![(0x8A, vec![0, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0, 0xff])]),
    ));
    c.push((
        "2.4 ping 125".into(),
        frame(0x89, &[0xfe; 125], true),
        Expect::Frames(vec![(0x8A, vec![0xfe; 125])]),
    ));
    c.push((
        "2.5 ping 126".into(),
        frame(0x89, &[0xfe; 126], true),
        Expect::Close(vec![], 1002),
    ));
    c.push((
        "2.6 ping in pieces".into(),
        frame(0x89, b"Hello-World!", true),
        Expect::Frames(vec![(0x8A, b"Hello-World!".to_vec())]),
    ));
    c.push((
        "2.7 unsolicited pong".into(),
        [frame(0x8A, b"", true), frame(0x81, b"x", true)].concat(),
        Expect::Frames(vec![text(b"x")]),
    ));
    c.push((
        "2.8 unsolicited pong with payload".into(),
        [frame(0x8A, b"unsolicited", true), frame(0x81, b"x", true)].concat(),
        Expect::Frames(vec![text(b"x")]),
    ));
    c.push((
        "2.10 ten pings".into(),
        (0..10)
            .flat_map(|i| frame(0x89, format!("p{i}").as_bytes(), true))
            .collect(),
        Expect::Frames(
            (0..10)
                .map(|i| (0x8A, format!("p{i}").into_bytes()))
                .collect(),
        ),
    ));
    // 3.x: reserved bits.
    for (i, b0) in [0xC1u8, 0xA1, 0xE1, 0x91, 0xD1, 0xB1, 0xF1]
        .into_iter()
        .enumerate()
    {
        c.push((
            format!("3.{} RSV {:#x}", i + 1, b0 & 0x70),
            frame(b0, b"x", true),
            Expect::Close(vec![], 1002),
        ));
    }
    c.push((
        "3.x RSV after a valid frame".into(),
        [frame(0x81, b"ok", true), frame(0xC1, b"x", true)].concat(),
        Expect::Close(vec![text(b"ok")], 1002),
    ));
    // 4.x: reserved opcodes.
    for op in [3u8, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF] {
        c.push((
            format!("4 opcode {op}"),
            [frame(0x81, b"ok", true), frame(0x80 | op, b"x", true)].concat(),
            Expect::Close(vec![text(b"ok")], 1002),
        ));
    }
    // 5.x: fragmentation.
    c.push((
        "5.1 fragmented ping".into(),
        [frame(0x09, b"a", true), frame(0x80, b"b", true)].concat(),
        Expect::Close(vec![], 1002),
    ));
    c.push((
        "5.2 fragmented pong".into(),
        [frame(0x0A, b"a", true), frame(0x80, b"b", true)].concat(),
        Expect::Close(vec![], 1002),
    ));
    c.push((
        "5.3 text in two".into(),
        [frame(0x01, b"frag", true), frame(0x80, b"ment", true)].concat(),
        Expect::Frames(vec![text(b"fragment")]),
    ));
    c.push((
        "5.6 ping between fragments".into(),
        [
            frame(0x01, b"frag", true),
            frame(0x89, b"p", true),
            frame(0x80, b"ment", true),
        ]
        .concat(),
        Expect::Frames(vec![(0x8A, b"p".to_vec()), text(b"fragment")]),
    ));
    c.push((
        "5.9 continuation first".into(),
        frame(0x80, b"x", true),
        Expect::Close(vec![], 1002),
    ));
    c.push((
        "5.10 non-final continuation first".into(),
        frame(0x00, b"x", true),
        Expect::Close(vec![], 1002),
    ));
    c.push((
        "5.15 text inside a fragmented text".into(),
        [frame(0x01, b"a", true), frame(0x81, b"b", true)].concat(),
        Expect::Close(vec![], 1002),
    ));
    c.push((
        "5.17 fragments of one byte".into(),
        [
            frame(0x01, b"a", true),
            frame(0x00, b"b", true),
            frame(0x00, b"c", true),
            frame(0x80, b"d", true),
        ]
        .concat(),
        Expect::Frames(vec![text(b"abcd")]),
    ));
    c.push((
        "5.20 empty fragments".into(),
        [
            frame(0x01, b"", true),
            frame(0x00, b"", true),
            frame(0x80, b"", true),
        ]
        .concat(),
        Expect::Frames(vec![text(b"")]),
    ));
    // 6.x: UTF-8.
    let valid: [&[u8]; 6] = [
        b"",
        "κόσμε".as_bytes(),
        "\u{10FFFF}".as_bytes(),
        "\u{FFFD}".as_bytes(),
        &[0xef, 0xbb, 0xbf],
        "Hello-µ@ßöäüàá-UTF-8!!".as_bytes(),
    ];
    for (i, v) in valid.iter().enumerate() {
        c.push((
            format!("6.v{i} valid UTF-8"),
            frame(0x81, v, true),
            Expect::Frames(vec![text(v)]),
        ));
    }
    let invalid: [&[u8]; 10] = [
        &[
            0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5, 0xed, 0xa0, 0x80,
            0x65, 0x64, 0x69, 0x74, 0x65, 0x64,
        ],
        &[0x80],
        &[0xbf],
        &[0xc0, 0xaf],
        &[0xe0, 0x80, 0xaf],
        &[0xf8, 0x88, 0x80, 0x80, 0xaf],
        &[0xed, 0xa0, 0x80],
        &[0xf4, 0x90, 0x80, 0x80],
        &[0xfe],
        &[0xce, 0xba, 0xe1],
    ];
    for (i, v) in invalid.iter().enumerate() {
        c.push((
            format!("6.i{i} invalid UTF-8"),
            frame(0x81, v, true),
            Expect::Close(vec![], 1007),
        ));
        // Split across fragments at every byte (Autobahn 6.2-6.4).
        let mut split = Vec::new();
        for (j, b) in v.iter().enumerate() {
            let first = j == 0;
            let last = j == v.len() - 1;
            let b0 = if first { 0x01 } else { 0x00 } | if last { 0x80 } else { 0 };
            split.extend(frame(b0, &[*b], true));
        }
        c.push((
            format!("6.f{i} invalid UTF-8 byte by byte"),
            split,
            Expect::Close(vec![], 1007),
        ));
    }
    // Valid UTF-8 cut at every byte into fragments.
    let k = "κόσμε".as_bytes();
    let split: Vec<u8> = k
        .iter()
        .enumerate()
        .flat_map(|(j, b)| {
            let b0 = if j == 0 { 0x01 } else { 0x00 } | if j == k.len() - 1 { 0x80 } else { 0 };
            frame(b0, &[*b], true)
        })
        .collect();
    c.push((
        "6.2 valid UTF-8 byte by byte".into(),
        split,
        Expect::Frames(vec![text(k)]),
    ));
    // 7.x: closing.
    c.push((
        "7.1.1 close after echo".into(),
        [
            frame(0x81, b"Hello", true),
            frame(0x88, &[0x03, 0xE8], true),
        ]
        .concat(),
        Expect::Close(vec![text(b"Hello")], 1000),
    ));
    c.push((
        "7.1.3 data after close is ignored".into(),
        [frame(0x88, &[0x03, 0xE8], true), frame(0x81, b"late", true)].concat(),
        Expect::Close(vec![], 1000),
    ));
    c.push((
        "7.3.2 close of one byte".into(),
        frame(0x88, &[0x03], true),
        Expect::Close(vec![], 1002),
    ));
    c.push((
        "7.3.3 close with code only".into(),
        frame(0x88, &[0x03, 0xE8], true),
        Expect::Close(vec![], 1000),
    ));
    c.push((
        "7.3.4 close with reason".into(),
        frame(0x88, &[0x03, 0xE8, b'o', b'k'], true),
        Expect::Close(vec![], 1000),
    ));
    c.push((
        "7.3.6 close reason not UTF-8".into(),
        frame(0x88, &[0x03, 0xE8, 0xff], true),
        Expect::Close(vec![], 1007),
    ));
    for code in [
        1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ] {
        c.push((
            format!("7.7 valid code {code}"),
            frame(0x88, &code.to_be_bytes(), true),
            Expect::Close(vec![], code),
        ));
    }
    for code in [
        0u16, 999, 1004, 1005, 1006, 1012, 1013, 1014, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ] {
        c.push((
            format!("7.9 invalid code {code}"),
            frame(0x88, &code.to_be_bytes(), true),
            Expect::Close(vec![], 1002),
        ));
    }
    // 9.x: sizes.
    for n in [64 * 1024, 256 * 1024, 1024 * 1024, 4 * 1024 * 1024] {
        let t = vec![b'*'; n];
        c.push((
            format!("9.1 text {n}"),
            frame(0x81, &t, true),
            Expect::Frames(vec![text(&t)]),
        ));
    }
    let pieces: Vec<u8> = (0..64)
        .flat_map(|i| {
            let b0 = if i == 0 { 0x02 } else { 0x00 } | if i == 63 { 0x80 } else { 0 };
            frame(b0, &[i as u8; 1024], true)
        })
        .collect();
    c.push((
        "9.3 binary in 64 fragments".into(),
        pieces,
        Expect::Frames(vec![(
            0x82,
            (0..64).flat_map(|i| vec![i as u8; 1024]).collect(),
        )]),
    ));
    c
}

#[test]
fn autobahn_case_sections_pass() {
    let server = TestServer::start(app);
    let all = cases();
    let mut failed = Vec::new();
    for (name, bytes, expect) in &all {
        let mut ws = Ws::open(&server, "/echo");
        ws.send(bytes);
        let ok = match expect {
            Expect::Frames(frames) => {
                let got: Vec<(u8, Vec<u8>)> = frames.iter().map(|_| ws.recv()).collect();
                // Then a clean close is answered with 1000 and the end.
                ws.send(&frame(0x88, &[0x03, 0xE8], true));
                let closed = ws.recv();
                got == *frames
                    && closed.0 == 0x88
                    && closed.1.starts_with(&[0x03, 0xE8])
                    && !ws.fill()
            }
            Expect::Close(frames, code) => {
                let got: Vec<(u8, Vec<u8>)> = frames.iter().map(|_| ws.recv()).collect();
                let close = ws.recv();
                got == *frames
                    && close.0 == 0x88
                    && close.1.len() >= 2
                    && u16::from_be_bytes([close.1[0], close.1[1]]) == *code
                    && !ws.fill()
            }
        };
        if !ok {
            failed.push(name.clone());
        }
    }
    println!("{} of {} cases pass", all.len() - failed.len(), all.len());
    assert!(failed.is_empty(), "failed: {failed:?}");
}
