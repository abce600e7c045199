//! Blobs of a registry source, pulled in parallel while the bundle is written
//! in order (issue 16). The bundle writer opens blobs one after another; the
//! blob it is at streams straight from the registry into the bundle, and up to
//! `jobs - 1` workers download the blobs after it into spool files (next to
//! the output), at most [`WINDOW`] bytes ahead, so disk use stays bounded and
//! no layer is ever held in memory. Every blob is hashed as it arrives: bytes
//! that do not match their digest fail the blob (exit 3) before the writer
//! takes them whole.
use super::client::Client;
use super::error::RegistryError;
use crate::digest::{Digest, Hasher};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Most bytes spooled ahead of the writer (one blob larger than this still goes alone).
pub const WINDOW: u64 = 1 << 30;

/// The blobs of one registry repository, in the order the bundle writer takes them.
pub struct Prefetch {
    inner: Arc<Inner>,
    workers: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for Prefetch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prefetch").field("repository", &self.inner.repo).finish()
    }
}

struct Inner {
    client: Arc<Client>,
    repo: String,
    spool_dir: PathBuf,
    workers: usize,
    retries: u32,
    state: Mutex<State>,
    changed: Condvar,
}

enum Slot {
    Waiting,
    Fetching,
    Ready(tempfile::TempPath),
    Failed(Error),
    /// Taken by the writer (or passed over): a later open fetches it again.
    Done,
}

struct State {
    order: Vec<(Digest, u64)>,
    position: HashMap<Digest, usize>,
    slots: Vec<Slot>,
    /// The writer's position (the last blob it opened).
    cursor: usize,
    /// The next blob a worker may start.
    next: usize,
    /// Bytes of blobs being fetched or spooled and not yet taken.
    ahead: u64,
    started: bool,
    cancelled: bool,
}

impl Prefetch {
    pub fn new(client: Arc<Client>, repo: &str, spool_dir: PathBuf, jobs: usize, retries: u32) -> Prefetch {
        let state = State {
            order: Vec::new(),
            position: HashMap::new(),
            slots: Vec::new(),
            cursor: 0,
            next: 0,
            ahead: 0,
            started: false,
            cancelled: false,
        };
        let inner = Inner {
            client,
            repo: repo.to_string(),
            spool_dir,
            workers: jobs.max(1) - 1,
            retries,
            state: Mutex::new(state),
            changed: Condvar::new(),
        };
        Prefetch { inner: Arc::new(inner), workers: Mutex::new(Vec::new()) }
    }

    /// The blobs (digest, size) in the order the writer will ask for them;
    /// before the first [`Prefetch::open`].
    pub fn plan(&self, order: Vec<(Digest, u64)>) {
        let mut state = self.inner.lock();
        state.position = order.iter().enumerate().map(|(i, (d, _))| (d.clone(), i)).collect();
        state.slots = order.iter().map(|_| Slot::Waiting).collect();
        state.order = order;
    }

    /// The blob's bytes, checked against `digest` and `size` as they are read.
    pub fn open(&self, digest: &Digest, size: u64) -> io::Result<Box<dyn Read + Send>> {
        let mut state = self.inner.lock();
        if !state.started {
            state.started = true;
            let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
            for _ in 0..self.inner.workers {
                let inner = self.inner.clone();
                workers.push(std::thread::spawn(move || inner.work()));
            }
        }
        let Some(&p) = state.position.get(digest) else {
            drop(state);
            return self.inner.direct(digest, size);
        };
        state.cursor = state.cursor.max(p);
        // Spooled blobs the writer passed over (left out of a delta) are dropped.
        for i in 0..p {
            if let Slot::Ready(_) = state.slots[i] {
                state.ahead -= state.order[i].1;
                state.slots[i] = Slot::Done;
            }
        }
        if state.next <= p {
            for i in state.next..=p {
                state.slots[i] = Slot::Done;
            }
            state.next = p + 1;
            self.inner.changed.notify_all();
            drop(state);
            return self.inner.direct(digest, size);
        }
        loop {
            match std::mem::replace(&mut state.slots[p], Slot::Done) {
                Slot::Fetching => {
                    state.slots[p] = Slot::Fetching;
                    state = self.inner.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                }
                Slot::Ready(path) => {
                    state.ahead -= size;
                    self.inner.changed.notify_all();
                    drop(state);
                    let file = File::open(&path)?;
                    return Ok(Box::new(Spooled { file, _path: path }));
                }
                Slot::Failed(e) => return Err(e.into_io()),
                Slot::Waiting | Slot::Done => {
                    drop(state);
                    return self.inner.direct(digest, size);
                }
            }
        }
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        self.inner.lock().cancelled = true;
        self.inner.changed.notify_all();
        for worker in self.workers.get_mut().map(std::mem::take).unwrap_or_default() {
            let _ = worker.join();
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn work(&self) {
        let mut state = self.lock();
        loop {
            if state.cancelled {
                return;
            }
            let fits = state.order.get(state.next).is_some_and(|(_, size)| state.ahead == 0 || state.ahead + size <= WINDOW);
            if !fits {
                state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            let i = state.next;
            state.next += 1;
            let (digest, size) = state.order[i].clone();
            state.slots[i] = Slot::Fetching;
            state.ahead += size;
            drop(state);
            let fetched = self.spool(&digest, size);
            state = self.lock();
            state.slots[i] = match fetched {
                Ok(path) if i >= state.cursor && !state.cancelled => Slot::Ready(path),
                Ok(_) => {
                    state.ahead -= size;
                    Slot::Done
                }
                Err(e) => {
                    state.ahead -= size;
                    Slot::Failed(e)
                }
            };
            self.changed.notify_all();
        }
    }

    /// Download a blob into a spool file, again after a dropped connection.
    fn spool(&self, digest: &Digest, size: u64) -> Result<tempfile::TempPath> {
        let mut attempt = 0;
        loop {
            match self.spool_once(digest, size) {
                Err(Error::Registry(e)) if e.is_retryable() && attempt < self.retries => {
                    std::thread::sleep(super::client::backoff(attempt));
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    fn spool_once(&self, digest: &Digest, size: u64) -> Result<tempfile::TempPath> {
        let dir = &self.spool_dir;
        let disk = |e| Error::io(format!("writing a spool file in {}", dir.display()), e);
        let mut spool = tempfile::Builder::new().prefix(".ferry-pull-").tempfile_in(dir).map_err(disk)?;
        let mut stream = self.stream(digest, size)?;
        let mut buf = vec![0u8; 1 << 20];
        loop {
            if self.lock().cancelled {
                return Err(Error::usage("cancelled"));
            }
            let n = match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(format!("reading blob {digest}"), e)),
            };
            spool.as_file_mut().write_all(&buf[..n]).map_err(disk)?;
        }
        Ok(spool.into_temp_path())
    }

    /// The blob straight from the registry into the writer.
    fn direct(&self, digest: &Digest, size: u64) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.stream(digest, size).map_err(Error::into_io)?))
    }

    /// The blob straight from the registry, checked as it arrives.
    fn stream(&self, digest: &Digest, size: u64) -> Result<Checked> {
        let response = self.client.get_blob(&self.repo, digest)?;
        Ok(Checked {
            inner: Box::new(response),
            hasher: Some(Hasher::new()),
            count: 0,
            size,
            digest: digest.clone(),
            registry: self.client.registry.clone(),
            repo: self.repo.clone(),
            client: self.client.clone(),
            retries: self.retries,
        })
    }
}

/// A spool file the writer reads; removed when it is done.
struct Spooled {
    file: File,
    _path: tempfile::TempPath,
}

impl Read for Spooled {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read(buf)
    }
}

/// A blob's bytes from the registry: an error instead of the last bytes when
/// they do not hash to the digest, or when there are more or fewer than promised.
/// A connection lost part way (a reset, a registry restarted, a body cut short)
/// is picked up where it stopped, with `Range`, up to `retries` times in a row
/// with backoff: a 10 GB layer does not start over at 9 GB.
pub struct Checked {
    inner: Box<dyn Read + Send>,
    hasher: Option<Hasher>,
    count: u64,
    size: u64,
    digest: Digest,
    registry: String,
    repo: String,
    client: Arc<Client>,
    retries: u32,
}

impl Read for Checked {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut failures = 0;
        let n = loop {
            let lost = match self.inner.read(buf) {
                Ok(0) if self.count < self.size => format!("the registry sent {} of its {} bytes", self.count, self.size),
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                Err(e) => crate::error::plain_io(&e),
            };
            let context = format!("reading blob {} from {} (at byte {})", self.digest, self.repo, self.count);
            let lost = RegistryError::Network { registry: self.registry.clone(), context, detail: lost };
            if self.hasher.is_none() || failures >= self.retries {
                return Err(Error::Registry(lost).into_io());
            }
            std::thread::sleep(super::client::backoff(failures));
            failures += 1;
            self.resume().map_err(Error::into_io)?;
        };
        self.count += n as u64;
        if self.count > self.size {
            return Err(self.damaged(format!("more than the {} bytes its descriptor says", self.size)).into_io());
        }
        let Some(hasher) = self.hasher.as_mut() else { return Ok(n) };
        hasher.update(&buf[..n]);
        if self.count == self.size {
            let actual = self.hasher.take().expect("checked above").finish();
            if actual != self.digest {
                return Err(self.damaged(format!("bytes that hash to {actual}")).into_io());
            }
        }
        Ok(n)
    }
}

impl Checked {
    /// Ask again for the bytes from `count` on. Failing to reach the registry
    /// is not final here: the next read fails and comes back (bounded above).
    fn resume(&mut self) -> Result<()> {
        let (response, partial) = match self.client.get_blob_from(&self.repo, &self.digest, self.count) {
            Ok(r) => r,
            Err(e) if e.is_retryable() => {
                self.inner = Box::new(io::Cursor::new(Vec::new()));
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        };
        let mut body: Box<dyn Read + Send> = Box::new(response);
        // The whole blob again: the bytes already hashed pass by unread. Cut
        // short while skipping is a lost connection like any other.
        if !partial && io::copy(&mut (&mut body).take(self.count), &mut io::sink()).ok() != Some(self.count) {
            self.inner = Box::new(io::Cursor::new(Vec::new()));
            return Ok(());
        }
        self.inner = body;
        Ok(())
    }

    fn damaged(&self, what: String) -> Error {
        Error::integrity(format!(
            "{}/{}: the registry served blob {} with {what}: nothing was written",
            self.registry, self.repo, self.digest
        ))
        .with_hint("the registry's copy of this blob is damaged: push the image to it again, or save from another registry")
    }
}
