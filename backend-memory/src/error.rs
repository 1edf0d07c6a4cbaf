//! Errors of the local file store.

use std::path::PathBuf;

/// What can go wrong with the local store's files. Converted into
/// [`spiderpool_core::Error`] at the [`Store`](spiderpool_core::store::Store) boundary:
/// a lock timeout becomes `Busy` (the wait already happened: not retried), everything else
/// `Storage`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory operation failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The store file does not decode: never overwritten, never reset.
    #[error("{}: corrupt store file, left untouched: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        reason: String,
    },
    /// The store file was written by a format this version does not know.
    #[error("{}: unknown store format {found:?} (this version reads {expected:?}), left untouched", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
        /// The format found.
        found: String,
        /// The format expected.
        expected: String,
    },
    /// Another process held the lock longer than the timeout.
    #[error("{}: lock held by another process for more than {millis} ms", path.display())]
    LockTimeout {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        millis: u128,
    },
    /// The store location exists and is not a directory (a file, a device).
    #[error("{}: the store location is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// The store directory is writable by other users: anyone could forge allocations.
    #[error("{}: store directory is writable by group or others (mode {mode:o}); make it 0700", path.display())]
    InsecureDirectory {
        /// The directory.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
}

impl From<Error> for spiderpool_core::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::LockTimeout { path, millis } => spiderpool_core::Error::Busy {
                store: path.display().to_string(),
                waited_ms: millis,
            },
            Error::Io { ref path, .. }
            | Error::Corrupt { ref path, .. }
            | Error::UnknownFormat { ref path, .. }
            | Error::NotADirectory { ref path }
            | Error::InsecureDirectory { ref path, .. } => {
                // `store PATH: REASON`: the message without its own leading path.
                let store = path.display().to_string();
                let text = e.to_string();
                let reason = text
                    .strip_prefix(&format!("{store}: "))
                    .unwrap_or(&text)
                    .to_string();
                spiderpool_core::Error::Storage { store, reason }
            }
        }
    }
}
