//! Blob uploads as the verified bytes stream in, sent by one background
//! thread (so reading, decompressing and hashing the bundle overlap with the
//! network): chunks of [`CHUNK`] bytes PATCHed in order, the session's
//! location saved after each (so a later run resumes it), and the final PUT
//! with `?digest=` only once the verifier has checked the blob. A dropped
//! connection is answered by asking the registry how much arrived (`GET` on
//! the session: `Range`) and sending the rest of the chunk from there, at
//! most `retries` times. At most [`QUEUE`] chunks wait for the thread.
use super::client::{backoff, Client};
use super::error::RegistryError;
use crate::digest::Digest;
use crate::error::{Error, Result};
use bytes::Bytes;
use reqwest::Url;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Bytes per PATCH (and the size up to which a blob goes in one PUT).
pub const CHUNK: usize = 8 << 20;

/// Chunks queued for the sending thread (memory: CHUNK × (QUEUE + 2)).
pub const QUEUE: usize = 2;

/// Where upload sessions are remembered between runs:
/// `$XDG_CACHE_HOME/ferry/registry-uploads` (else `~/.cache/...`), one file
/// per registry, repository and blob, holding the session's location.
/// (distribution 2.8 cancels a session whose data outgrew its last
/// acknowledged chunk, as after a connection lost mid-PATCH; such a session
/// is started afresh, and only whole blobs are saved by the rerun.)
pub struct Sessions {
    dir: Option<PathBuf>,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions::new()
    }
}

impl Sessions {
    /// Sessions kept in `dir`.
    pub fn in_dir(dir: PathBuf) -> Sessions {
        Sessions { dir: Some(dir) }
    }

    /// The default place (see [`Sessions`]).
    pub fn new() -> Sessions {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").filter(|v| !v.is_empty()).map(|h| PathBuf::from(h).join(".cache")));
        Sessions { dir: base.map(|b| b.join("ferry/registry-uploads")) }
    }

    fn file(&self, registry: &str, repo: &str, digest: &Digest) -> Option<PathBuf> {
        let key = Digest::of_bytes(format!("{registry}\n{repo}\n{digest}").as_bytes());
        Some(self.dir.as_ref()?.join(key.hex()))
    }

    pub fn load(&self, registry: &str, repo: &str, digest: &Digest) -> Option<Url> {
        let text = std::fs::read_to_string(self.file(registry, repo, digest)?).ok()?;
        Url::parse(text.trim()).ok()
    }

    /// Best effort: a session not remembered only costs a resume.
    pub fn save(&self, registry: &str, repo: &str, digest: &Digest, location: &Url) {
        let Some(file) = self.file(registry, repo, digest) else { return };
        if let Some(dir) = file.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let tmp = file.with_extension("tmp");
        use std::os::unix::fs::OpenOptionsExt;
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut f| f.write_all(location.as_str().as_bytes()));
        if written.is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
    }

    pub fn forget(&self, registry: &str, repo: &str, digest: &Digest) {
        if let Some(f) = self.file(registry, repo, digest) {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// What one upload sent.
#[derive(Debug, Default, Clone, Copy)]
pub struct Sent {
    /// Bytes sent in this run.
    pub bytes: u64,
    /// Bytes a session of an earlier run already held (not sent again).
    pub resumed: u64,
}

/// A blob that went up.
#[derive(Debug, Clone)]
pub struct Uploaded {
    pub repo: String,
    pub digest: Digest,
    pub sent: Sent,
}

/// An open upload session and how far it got.
pub struct ChunkedUpload {
    client: Arc<Client>,
    sessions: Arc<Sessions>,
    repo: String,
    digest: Digest,
    location: Url,
    /// Bytes the registry holds.
    offset: u64,
    retries: u32,
    sent: Sent,
}

impl ChunkedUpload {
    /// Resume the session an earlier run left for this blob, or open one.
    pub fn open(client: &Arc<Client>, sessions: &Arc<Sessions>, repo: &str, digest: &Digest, size: u64, retries: u32) -> Result<Self> {
        let mut resumed = None;
        if let Some(location) = sessions.load(&client.registry, repo, digest) {
            match client.upload_offset(repo, &location) {
                Ok(Some((offset, next))) if offset <= size => resumed = Some((offset, next)),
                Ok(_) => sessions.forget(&client.registry, repo, digest),
                // A session that cannot be asked about is started afresh (distribution 2.8
                // cancels one whose data outgrew its state); a dead registry fails here.
                Err(e) if e.is_retryable() => return Err(e.into()),
                Err(_) => sessions.forget(&client.registry, repo, digest),
            }
        }
        let (offset, location) = match resumed {
            Some(r) => r,
            None => {
                let location = client.start_upload(repo)?;
                sessions.save(&client.registry, repo, digest, &location);
                (0, location)
            }
        };
        Ok(ChunkedUpload {
            client: client.clone(),
            sessions: sessions.clone(),
            repo: repo.to_string(),
            digest: digest.clone(),
            location,
            offset,
            retries,
            sent: Sent { bytes: 0, resumed: offset },
        })
    }

    /// Bytes the registry already holds (the stream passes over them).
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// Send `chunk` at `self.offset`; after a lost connection, ask what arrived and send the rest.
    pub(super) fn send(&mut self, chunk: Bytes) -> Result<(), RegistryError> {
        let start = self.offset;
        let mut attempt = 0;
        loop {
            let done = self.offset - start;
            let rest = chunk.slice(done as usize..);
            if rest.is_empty() {
                return Ok(());
            }
            match self.client.patch_chunk(&self.repo, &self.location, self.offset, rest.clone()) {
                Ok(next) => {
                    self.offset += rest.len() as u64;
                    self.sent.bytes += rest.len() as u64;
                    self.location = next;
                    self.sessions.save(&self.client.registry, &self.repo, &self.digest, &self.location);
                    return Ok(());
                }
                Err(e) if (e.is_retryable() || is_range_error(&e)) && attempt < self.retries => {
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                    self.resync(start, chunk.len() as u64, e)?;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Learn from the registry how much of the chunk at `start` arrived.
    fn resync(&mut self, start: u64, len: u64, cause: RegistryError) -> Result<(), RegistryError> {
        match self.client.upload_offset(&self.repo, &self.location) {
            Ok(Some((offset, next))) if (start..=start + len).contains(&offset) => {
                self.sent.bytes += offset.saturating_sub(self.offset);
                self.offset = offset;
                self.location = next;
                Ok(())
            }
            Ok(Some((offset, _))) => Err(RegistryError::Protocol {
                registry: self.client.registry.clone(),
                context: format!("resuming the upload of {} to {}", self.digest, self.repo),
                detail: format!("the registry holds {offset} bytes, outside the chunk at {start}..{}", start + len),
            }),
            Ok(None) => Err(cause),
            Err(e) => Err(e),
        }
    }

    /// The blob checked out: its last bytes and the digest (the registry checks it too).
    pub(super) fn finish(mut self, last: Bytes) -> Result<Uploaded> {
        let mut attempt = 0;
        loop {
            match self.client.finish_upload(&self.repo, &self.location, &self.digest, last.clone()) {
                Ok(()) => break,
                Err(e) if e.is_retryable() && attempt < self.retries => {
                    std::thread::sleep(backoff(attempt));
                    attempt += 1;
                    // The PUT may have landed before the connection went.
                    if self.client.blob_exists(&self.repo, &self.digest)? {
                        break;
                    }
                }
                Err(e) => {
                    if !e.is_retryable() {
                        // A refused digest: the session is spoiled; a rerun starts afresh.
                        self.sessions.forget(&self.client.registry, &self.repo, &self.digest);
                    }
                    return Err(e.into());
                }
            }
        }
        self.sent.bytes += last.len() as u64;
        self.sessions.forget(&self.client.registry, &self.repo, &self.digest);
        Ok(Uploaded { repo: self.repo, digest: self.digest, sent: self.sent })
    }
}

fn is_range_error(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Status { status: 416, .. })
}

enum Job {
    Start(Box<ChunkedUpload>),
    Chunk(Bytes),
    Finish(Bytes),
    /// A small blob, whole: one POST + PUT.
    Small {
        repo: String,
        digest: Digest,
        bytes: Bytes,
    },
}

/// The sending thread: jobs run in order; the first failure ends it.
pub struct Sender {
    tx: Option<SyncSender<Job>>,
    thread: Option<JoinHandle<Result<Vec<Uploaded>>>>,
}

impl Sender {
    pub fn spawn(client: Arc<Client>) -> Sender {
        let (tx, rx) = sync_channel::<Job>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("ferry-registry-upload".into())
            .spawn(move || {
                let mut current: Option<Box<ChunkedUpload>> = None;
                let mut done = Vec::new();
                for job in rx {
                    match job {
                        Job::Start(upload) => current = Some(upload),
                        Job::Chunk(bytes) => current.as_mut().expect("a chunk belongs to a started upload").send(bytes)?,
                        Job::Finish(last) => done.push(current.take().expect("a finish belongs to a started upload").finish(last)?),
                        Job::Small { repo, digest, bytes } => {
                            let len = bytes.len() as u64;
                            client.upload_blob(&repo, &digest, bytes)?;
                            done.push(Uploaded { repo, digest, sent: Sent { bytes: len, resumed: 0 } });
                        }
                    }
                }
                Ok(done)
            })
            .expect("spawn the upload thread");
        Sender { tx: Some(tx), thread: Some(thread) }
    }

    fn send(&mut self, job: Job) -> Result<()> {
        let sent = self.tx.as_ref().map(|tx| tx.send(job).is_ok()).unwrap_or(false);
        if sent {
            return Ok(());
        }
        // The thread ended: its error is the cause.
        match self.wait() {
            Err(e) => Err(e),
            Ok(_) => Err(Error::usage("the upload thread ended early")),
        }
    }

    pub fn start(&mut self, upload: ChunkedUpload) -> Result<()> {
        self.send(Job::Start(Box::new(upload)))
    }

    pub fn chunk(&mut self, bytes: Bytes) -> Result<()> {
        self.send(Job::Chunk(bytes))
    }

    pub fn finish(&mut self, last: Bytes) -> Result<()> {
        self.send(Job::Finish(last))
    }

    pub fn small(&mut self, repo: &str, digest: &Digest, bytes: Bytes) -> Result<()> {
        self.send(Job::Small { repo: repo.to_string(), digest: digest.clone(), bytes })
    }

    /// Every job done (or the first failure): what went up.
    pub fn wait(&mut self) -> Result<Vec<Uploaded>> {
        self.tx.take();
        match self.thread.take() {
            Some(t) => t.join().unwrap_or_else(|_| Err(Error::usage("the upload thread panicked"))),
            None => Ok(Vec::new()),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.wait();
    }
}

/// The reader's side of a chunked upload: passes over what the registry
/// holds already, cuts the rest into chunks for the [`Sender`].
pub struct ChunkWriter<'s> {
    pub sender: &'s mut Sender,
    /// Bytes still to pass over.
    pub skip: &'s mut u64,
    /// The chunk being filled (what is left of it goes with the final PUT).
    pub buf: &'s mut Vec<u8>,
}

impl Write for ChunkWriter<'_> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        if *self.skip > 0 {
            let skipped = (*self.skip).min(data.len() as u64) as usize;
            *self.skip -= skipped as u64;
            data = &data[skipped..];
        }
        while !data.is_empty() {
            if self.buf.capacity() == 0 {
                self.buf.reserve_exact(CHUNK);
            }
            let take = (CHUNK - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                let chunk = Bytes::from(std::mem::take(self.buf));
                self.sender.chunk(chunk).map_err(Error::into_io)?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
