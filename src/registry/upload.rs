//! One blob's chunked upload as its verified bytes stream in: chunks of
//! [`CHUNK`] bytes PATCHed in order, the session's location saved after each
//! (so a later run resumes it), and the final PUT with `?digest=` only once
//! the verifier has checked the blob. A dropped connection is answered by
//! asking the registry how much arrived (`GET` on the session: `Range`) and
//! sending the rest of the chunk from there, at most `retries` times.
use super::client::{backoff, Client};
use super::error::RegistryError;
use crate::digest::Digest;
use crate::error::{Error, Result};
use bytes::Bytes;
use reqwest::Url;
use std::io::{self, Write};
use std::path::PathBuf;

/// Bytes per PATCH (and the size up to which a blob goes in one PUT).
pub const CHUNK: usize = 16 << 20;

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

pub struct ChunkedUpload<'a> {
    client: &'a Client,
    sessions: &'a Sessions,
    repo: String,
    digest: Digest,
    location: Url,
    /// Bytes the registry holds.
    offset: u64,
    /// Bytes of the stream still to pass over (the registry has them from an earlier run).
    skip: u64,
    buf: Vec<u8>,
    retries: u32,
    pub sent: Sent,
}

impl<'a> ChunkedUpload<'a> {
    /// Resume the session an earlier run left for this blob, or open one.
    pub fn open(client: &'a Client, sessions: &'a Sessions, repo: &str, digest: &Digest, size: u64, retries: u32) -> Result<Self> {
        let mut resumed = None;
        if let Some(location) = sessions.load(&client.registry, repo, digest) {
            match client.upload_offset(repo, &location) {
                Ok(Some((offset, next))) if offset <= size => resumed = Some((offset, next)),
                Ok(_) => sessions.forget(&client.registry, repo, digest),
                // A session that cannot be asked about is started afresh (the registry's answer
                // to a stale one differs between implementations); a dead registry fails below.
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
            client,
            sessions,
            repo: repo.to_string(),
            digest: digest.clone(),
            location,
            offset,
            skip: offset,
            buf: Vec::with_capacity(CHUNK),
            retries,
            sent: Sent { bytes: 0, resumed: offset },
        })
    }

    /// Send `chunk` at `self.offset`; after a lost connection, ask what arrived and send the rest.
    fn send(&mut self, chunk: Bytes) -> Result<(), RegistryError> {
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
    pub fn finish(mut self) -> Result<Sent> {
        let last = Bytes::from(std::mem::take(&mut self.buf));
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
        Ok(self.sent)
    }
}

fn is_range_error(e: &RegistryError) -> bool {
    matches!(e, RegistryError::Status { status: 416, .. })
}

impl Write for ChunkedUpload<'_> {
    fn write(&mut self, mut data: &[u8]) -> io::Result<usize> {
        let n = data.len();
        if self.skip > 0 {
            let skipped = (self.skip as usize).min(data.len());
            self.skip -= skipped as u64;
            data = &data[skipped..];
        }
        while !data.is_empty() {
            let room = CHUNK - self.buf.len();
            let take = room.min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == CHUNK {
                let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK)));
                self.send(chunk).map_err(|e| Error::from(e).into_io())?;
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
