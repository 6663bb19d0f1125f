//! File-system jobs (lane [`Lane::Fs`]), like Node's `fs` callbacks.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::time::SystemTime;

use super::{Job, Lane};

/// Reads a whole file.
pub fn read_file(path: impl Into<PathBuf>) -> Job<io::Result<Vec<u8>>> {
    let path = path.into();
    Job::new(Lane::Fs, move || fs::read(path))
}

/// Creates or truncates a file and writes `data` to it.
pub fn write_file(path: impl Into<PathBuf>, data: impl Into<Vec<u8>>) -> Job<io::Result<()>> {
    let (path, data) = (path.into(), data.into());
    Job::new(Lane::Fs, move || fs::write(path, data))
}

/// Appends `data` to a file (creating it) and waits for `fsync`: when the
/// result is `Ok`, the bytes are on stable storage. This is what a server
/// must await before it acknowledges a write to a client.
pub fn append_durable(path: impl Into<PathBuf>, data: impl Into<Vec<u8>>) -> Job<io::Result<()>> {
    let (path, data) = (path.into(), data.into());
    Job::new(Lane::Fs, move || {
        let mut file = OpenOptions::new().create(true).append(true).open(path)?;
        file.write_all(&data)?;
        file.sync_data()
    })
}

/// What [`stat`] reports about a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStat {
    /// Size in bytes.
    pub len: u64,
    /// A regular file.
    pub is_file: bool,
    /// A directory.
    pub is_dir: bool,
    /// Last modification time, where the platform records it.
    pub modified: Option<SystemTime>,
}

/// Stats a path (following symbolic links).
pub fn stat(path: impl Into<PathBuf>) -> Job<io::Result<FileStat>> {
    let path = path.into();
    Job::new(Lane::Fs, move || {
        let m = fs::metadata(path)?;
        Ok(FileStat {
            len: m.len(),
            is_file: m.is_file(),
            is_dir: m.is_dir(),
            modified: m.modified().ok(),
        })
    })
}

/// Lists a directory's entry names, sorted.
pub fn read_dir(path: impl Into<PathBuf>) -> Job<io::Result<Vec<String>>> {
    let path = path.into();
    Job::new(Lane::Fs, move || {
        let mut names = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<io::Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    })
}
