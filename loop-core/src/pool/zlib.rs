//! Compression jobs (lane [`Lane::Compression`]), like Node's `zlib.gzip`.

use std::io::{self, Read, Write};

use flate2::{read::GzDecoder, write::GzEncoder, Compression};

use super::{Job, Lane};

/// gzip-compresses `data` at `level` (0–9, clamped).
pub fn gzip(data: impl Into<Vec<u8>>, level: u32) -> Job<io::Result<Vec<u8>>> {
    let data = data.into();
    Job::new(Lane::Compression, move || {
        let mut enc = GzEncoder::new(
            Vec::with_capacity(data.len() / 2 + 64),
            Compression::new(level.min(9)),
        );
        enc.write_all(&data)?;
        enc.finish()
    })
}

/// Decompresses gzip `data`, refusing output beyond `max_len` bytes (a small
/// compressed body can expand enormously: never inflate without a bound).
pub fn gunzip(data: impl Into<Vec<u8>>, max_len: usize) -> Job<io::Result<Vec<u8>>> {
    let data = data.into();
    Job::new(Lane::Compression, move || {
        let mut out = Vec::new();
        let limit = max_len as u64 + 1;
        GzDecoder::new(&data[..])
            .take(limit)
            .read_to_end(&mut out)?;
        if out.len() > max_len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "gunzip output exceeds the limit",
            ));
        }
        Ok(out)
    })
}
