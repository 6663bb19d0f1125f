//! Crypto jobs (lane [`Lane::Crypto`]), like Node's `crypto.pbkdf2` and
//! `crypto.randomBytes`.

use std::io;

use super::{Job, Lane};

/// Most output bytes one job may ask for: bounds the memory a request can
/// make the pool allocate.
pub const MAX_OUTPUT_LEN: usize = 1 << 20;

/// PBKDF2-HMAC-SHA512 of `password` and `salt` with `iterations` rounds,
/// `len` output bytes (at most [`MAX_OUTPUT_LEN`]; zero iterations count as one).
pub fn pbkdf2_sha512(
    password: impl Into<Vec<u8>>,
    salt: impl Into<Vec<u8>>,
    iterations: u32,
    len: usize,
) -> Job<Vec<u8>> {
    let (password, salt) = (password.into(), salt.into());
    let len = len.min(MAX_OUTPUT_LEN);
    Job::new(Lane::Crypto, move || {
        let mut out = vec![0u8; len];
        pbkdf2::pbkdf2_hmac::<sha2::Sha512>(&password, &salt, iterations.max(1), &mut out);
        out
    })
}

/// `len` bytes (at most [`MAX_OUTPUT_LEN`]) from the kernel's CSPRNG.
pub fn random_bytes(len: usize) -> Job<io::Result<Vec<u8>>> {
    let len = len.min(MAX_OUTPUT_LEN);
    Job::new(Lane::Crypto, move || {
        let mut out = vec![0u8; len];
        fill_random(&mut out)?;
        Ok(out)
    })
}

/// Fills `buf` from `getrandom(2)`, retrying short reads and EINTR.
pub fn fill_random(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // SAFETY: the pointer and length describe `rest`, a live mutable slice.
        let n = unsafe { libc::getrandom(rest.as_mut_ptr().cast(), rest.len(), 0) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        filled += n as usize;
    }
    Ok(())
}
