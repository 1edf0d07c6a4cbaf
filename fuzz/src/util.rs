//! Small helpers shared by the targets.

use std::path::Path;

pub use spiderpool_testkit::fixtures::block_on_ready;

/// The input as text, if it is UTF-8 (the text parsers are fed only text: std's UTF-8
/// validation is not what is being fuzzed).
pub fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// A fresh private directory, on tmpfs when there is one (the local store flushes every
/// commit: on tmpfs that costs nothing).
pub fn tempdir() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    let builder = {
        let mut b = tempfile::Builder::new();
        b.prefix("spiderpool-fuzz-");
        b
    };
    if shm.is_dir() {
        if let Ok(dir) = builder.tempdir_in(shm) {
            return dir;
        }
    }
    builder.tempdir().expect("a temporary directory")
}
