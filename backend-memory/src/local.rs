//! The local file store: one directory, shared by every plugin process on the host.
//!
//! Files in the directory:
//! - `store.json`: every object with its revision, and a format tag;
//! - `store.lock`: held exclusively (`flock`) around every read–decide–write;
//! - `.store.json.tmp`: the next version while it is being written.
//!
//! A write goes to the temporary file, which is flushed to disk, renamed over `store.json`,
//! and the directory is flushed too, so a crash leaves either the old or the new file, never
//! a torn one. Files are created `0600`, the directory `0700`, and a directory writable by
//! others is refused. A file that does not decode, or of an unknown format, is an error that
//! names it; it is never overwritten.

use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::{json, Value};
use spiderpool_core::model::{object_from_value, Object};
use spiderpool_core::store::{Key, Revision, Store, Stored, Write};

use crate::objects::Objects;
use crate::Error;

const FORMAT: &str = "spiderpool-rs/local-store/v1";
const DATA: &str = "store.json";
const LOCK: &str = "store.lock";
const TEMP: &str = ".store.json.tmp";

/// The local file store. See the module docs for the on-disk layout and guarantees.
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
    lock_timeout: Duration,
}

impl LocalStore {
    /// Opens (creating if needed, mode 0700) the store directory `dir`.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = dir.into();
        let io = |source| Error::Io {
            path: dir.clone(),
            source,
        };
        if !dir.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&dir)
                .map_err(io)?;
        }
        let mode = fs::metadata(&dir).map_err(io)?.permissions().mode();
        if mode & 0o022 != 0 {
            return Err(Error::InsecureDirectory {
                path: dir,
                mode: mode & 0o7777,
            });
        }
        Ok(LocalStore {
            dir,
            lock_timeout: Duration::from_secs(10),
        })
    }

    /// Sets how long an operation waits for another process's lock before giving up with a
    /// retryable error (default 10 s).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Runs `f` on the stored objects under the exclusive lock; writes them back if `f`
    /// changed them.
    fn with_objects<T>(
        &self,
        f: impl FnOnce(&mut Objects) -> Result<T, spiderpool_core::Error>,
    ) -> Result<T, spiderpool_core::Error> {
        let _lock = self.lock()?;
        let mut objects = self.load()?;
        let before = objects.revision;
        let out = f(&mut objects)?;
        if objects.revision != before {
            self.save(&objects)?;
        }
        Ok(out)
    }

    fn lock(&self) -> Result<File, Error> {
        let path = self.dir.join(LOCK);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        let start = Instant::now();
        let mut pause = Duration::from_micros(200);
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(file),
                Err(fs::TryLockError::WouldBlock) => {}
                Err(fs::TryLockError::Error(source)) => return Err(Error::Io { path, source }),
            }
            if start.elapsed() >= self.lock_timeout {
                return Err(Error::LockTimeout {
                    path,
                    millis: self.lock_timeout.as_millis(),
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        }
    }

    fn load(&self) -> Result<Objects, Error> {
        let path = self.dir.join(DATA);
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Objects::default()),
            Err(source) => return Err(Error::Io { path, source }),
        };
        let corrupt = |reason: String| Error::Corrupt {
            path: path.clone(),
            reason,
        };
        let doc: Value = serde_json::from_str(&text).map_err(|e| corrupt(e.to_string()))?;
        let format = doc
            .get("format")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if format != FORMAT {
            return Err(Error::UnknownFormat {
                path,
                found: format.to_string(),
                expected: FORMAT.to_string(),
            });
        }
        let revision = doc
            .get("revision")
            .and_then(Value::as_u64)
            .ok_or_else(|| corrupt("missing revision".into()))?;
        let items = doc
            .get("objects")
            .and_then(Value::as_array)
            .ok_or_else(|| corrupt("missing objects".into()))?;
        let mut objects = Objects {
            revision,
            ..Objects::default()
        };
        for (i, item) in items.iter().enumerate() {
            let rev = item
                .get("revision")
                .and_then(Value::as_u64)
                .ok_or_else(|| corrupt(format!("objects[{i}]: missing revision")))?;
            let value = item
                .get("object")
                .cloned()
                .ok_or_else(|| corrupt(format!("objects[{i}]: missing object")))?;
            let object = object_from_value(&format!("objects[{i}]"), value)
                .map_err(|e| corrupt(e.to_string()))?;
            if rev > revision {
                return Err(corrupt(format!(
                    "objects[{i}]: revision {rev} beyond the store revision {revision}"
                )));
            }
            if objects
                .objects
                .insert(Key::of(&object), (object, rev))
                .is_some()
            {
                return Err(corrupt(format!("objects[{i}]: duplicate key")));
            }
        }
        Ok(objects)
    }

    fn save(&self, objects: &Objects) -> Result<(), Error> {
        let items: Vec<Value> = objects
            .objects
            .values()
            .map(|(o, r)| json!({"revision": r, "object": o.to_value()}))
            .collect();
        let doc = json!({"format": FORMAT, "revision": objects.revision, "objects": items});
        let tmp = self.dir.join(TEMP);
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| Error::Io { path, source }
        };
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        let bytes = serde_json::to_vec(&doc).map_err(|e| Error::Corrupt {
            path: tmp.clone(),
            reason: e.to_string(),
        })?;
        file.write_all(&bytes).map_err(io(&tmp))?;
        file.sync_all().map_err(io(&tmp))?;
        drop(file);
        let data = self.dir.join(DATA);
        fs::rename(&tmp, &data).map_err(io(&data))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io(&self.dir))?;
        Ok(())
    }
}

#[async_trait]
impl Store for LocalStore {
    async fn get(&self, key: &Key) -> Result<Option<Stored>, spiderpool_core::Error> {
        self.with_objects(|o| Ok(o.get(key)))
    }

    async fn list(&self, kind: &str) -> Result<Vec<Stored>, spiderpool_core::Error> {
        self.with_objects(|o| Ok(o.list(kind)))
    }

    async fn create(&self, object: Object) -> Result<Revision, spiderpool_core::Error> {
        self.with_objects(|o| {
            o.one(Write::Create(object))?;
            Ok(Revision(o.revision.to_string()))
        })
    }

    async fn update(
        &self,
        object: Object,
        expected: &Revision,
    ) -> Result<Revision, spiderpool_core::Error> {
        self.with_objects(|o| {
            o.one(Write::Update {
                object,
                expected: expected.clone(),
            })?;
            Ok(Revision(o.revision.to_string()))
        })
    }

    async fn delete(&self, key: &Key, expected: &Revision) -> Result<(), spiderpool_core::Error> {
        self.with_objects(|o| {
            o.one(Write::Delete {
                key: key.clone(),
                expected: expected.clone(),
            })
            .map(|_| ())
        })
    }

    fn is_atomic(&self) -> bool {
        true
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<(), spiderpool_core::Error> {
        self.with_objects(|o| o.all(writes).map(|_| ()))
    }
}
