//! Parallel blob uploads for `load --into docker://… -j N` (N > 1). The
//! verified stream is sequential, so for uploads to overlap the reader must
//! run ahead of them: each blob to upload is spooled, as it streams, into an
//! unnamed temporary file (`O_TMPFILE` in `$TMPDIR`: no name to follow or
//! leave behind), and N workers upload the spooled blobs, oldest first, each
//! following its file as it grows. A worker sends the same requests the
//! one-at-a-time path does ([`super::upload::Sender`]): one POST + PUT for a
//! blob up to [`CHUNK`], else the session an earlier run left (or a new one),
//! [`CHUNK`]-sized PATCHes as soon as the bytes are spooled, and the final
//! `PUT ?digest=` only once the verifier checked the blob.
//!
//! Bounds: at most [`AHEAD`] bytes are spooled and not yet sent (the reader
//! waits beyond that); sent ranges are punched out of the spool files, so on
//! file systems that punch holes (ext4, xfs, btrfs, tmpfs) the disk used stays
//! within that bound too. At most [`BUFFERS`] chunks are in memory at once,
//! whatever N is.
use super::client::Client;
use super::upload::{ChunkedUpload, Sent, Sessions, Uploaded, CHUNK};
use crate::digest::Digest;
use crate::error::{Error, Result};
use bytes::Bytes;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Most bytes spooled ahead of the uploads (less when the spool's file system has less than twice that free).
pub const AHEAD: u64 = 1 << 30;

/// Chunks held in memory by all workers together (each read from its spool just
/// before its PATCH): at most this many requests send blob bytes at once.
pub const BUFFERS: usize = 4;

/// A blob handed to the pool: where it goes and its spool file.
struct Blob {
    repo: String,
    digest: Digest,
    size: u64,
    file: File,
}

/// How far the reader and the blob's worker got.
#[derive(Default)]
struct Progress {
    /// Bytes the reader spooled.
    written: u64,
    /// Bytes the worker no longer needs (sent, or held by the registry from an earlier run).
    released: u64,
    /// The verifier checked the blob: its worker may finish it.
    verified: bool,
}

impl Progress {
    fn unsent(&self) -> u64 {
        self.written.saturating_sub(self.released)
    }
}

#[derive(Default)]
struct State {
    /// Every blob handed in, by its number; `next` is the first no worker has taken.
    blobs: Vec<(Arc<Blob>, Progress)>,
    next: usize,
    /// Spooled bytes not yet sent, all blobs together.
    unsent: u64,
    /// Chunk buffers made; those free; those sent and maybe still held by the HTTP stack.
    buffers: usize,
    free: Vec<Vec<u8>>,
    lent: Vec<Bytes>,
    uploaded: Vec<Uploaded>,
    /// The first failure: it stops everything.
    failed: Option<Error>,
    stopping: bool,
    /// No more blobs will come: workers end when none is left.
    closed: bool,
}

struct Shared {
    client: Arc<Client>,
    sessions: Arc<Sessions>,
    retries: u32,
    ahead: u64,
    spool_dir: PathBuf,
    state: Mutex<State>,
    changed: Condvar,
}

/// The upload workers and the blobs spooled for them.
pub struct Pool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl Pool {
    pub fn spawn(client: Arc<Client>, sessions: Arc<Sessions>, jobs: usize, retries: u32) -> Pool {
        let spool_dir = std::env::temp_dir();
        let free = crate::disk::free_space(&spool_dir).unwrap_or(u64::MAX);
        let ahead = (free / 2).clamp(2 * CHUNK as u64, AHEAD);
        let shared =
            Arc::new(Shared { client, sessions, retries, ahead, spool_dir, state: Mutex::new(State::default()), changed: Condvar::new() });
        let workers = (0..jobs.max(1))
            .map(|n| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("ferry-registry-upload-{n}"))
                    .spawn(move || shared.work())
                    .expect("spawn an upload worker")
            })
            .collect();
        Pool { shared, workers }
    }

    /// Hand in a blob to upload to `repo`; its bytes follow through [`Pool::writer`].
    pub fn begin(&self, repo: &str, digest: &Digest, size: u64) -> Result<usize> {
        let dir = &self.shared.spool_dir;
        let file = tempfile::tempfile_in(dir).map_err(|e| Error::io(format!("creating a spool file in {}", dir.display()), e))?;
        let mut state = self.shared.lock();
        self.shared.check(&mut state)?;
        let blob = Arc::new(Blob { repo: repo.to_string(), digest: digest.clone(), size, file });
        state.blobs.push((blob, Progress::default()));
        self.shared.changed.notify_all();
        Ok(state.blobs.len() - 1)
    }

    /// Where the verified stream writes blob `id`.
    pub fn writer(&self, id: usize) -> SpoolWriter<'_> {
        SpoolWriter { shared: &self.shared, id }
    }

    /// Blob `id` checked out: its worker may finish the upload.
    pub fn verified(&self, id: usize) -> Result<()> {
        let mut state = self.shared.lock();
        self.shared.check(&mut state)?;
        state.blobs[id].1.verified = true;
        self.shared.changed.notify_all();
        Ok(())
    }

    /// Every blob uploaded (or the first failure): what went up.
    pub fn finish(&mut self) -> Result<Vec<Uploaded>> {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        self.join();
        let mut state = self.shared.lock();
        match state.failed.take() {
            Some(e) => Err(e),
            None if state.stopping => Err(Error::usage("the uploads were stopped")),
            None => Ok(std::mem::take(&mut state.uploaded)),
        }
    }

    /// Stop every worker (between requests). Nothing unverified was finalized;
    /// open sessions stay remembered, so a rerun resumes them.
    pub fn abort(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.changed.notify_all();
        self.join();
    }

    fn join(&mut self) {
        for worker in self.workers.drain(..) {
            let _ = worker.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The verified stream into a blob's spool file; waits while [`AHEAD`] bytes are unsent.
pub struct SpoolWriter<'p> {
    shared: &'p Shared,
    id: usize,
}

impl Write for SpoolWriter<'_> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let shared = self.shared;
        let mut state = shared.lock();
        loop {
            shared.check(&mut state).map_err(Error::into_io)?;
            if state.unsent < shared.ahead {
                break;
            }
            state = shared.wait(state);
        }
        let (blob, progress) = &state.blobs[self.id];
        let (blob, at) = (blob.clone(), progress.written);
        drop(state);
        blob.file
            .write_all_at(data, at)
            .map_err(|e| Error::io(format!("writing a spool file in {}", shared.spool_dir.display()), e).into_io())?;
        let mut state = shared.lock();
        shared.account(&mut state, self.id, |p| p.written += data.len() as u64);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait<'g>(&self, guard: MutexGuard<'g, State>) -> MutexGuard<'g, State> {
        self.changed.wait(guard).unwrap_or_else(|e| e.into_inner())
    }

    /// A worker's failure (taken by the first to see it: the reader, so the run ends with it).
    fn check(&self, state: &mut State) -> Result<()> {
        if let Some(e) = state.failed.take() {
            state.stopping = true;
            return Err(e);
        }
        if state.stopping {
            return Err(Error::usage("the uploads were stopped"));
        }
        Ok(())
    }

    /// Change blob `id`'s progress, keeping the unsent total in step.
    fn account(&self, state: &mut State, id: usize, change: impl FnOnce(&mut Progress)) {
        let progress = &mut state.blobs[id].1;
        let before = progress.unsent();
        change(progress);
        let after = progress.unsent();
        state.unsent = state.unsent - before + after;
        self.changed.notify_all();
    }

    fn work(&self) {
        loop {
            let mut state = self.lock();
            let id = loop {
                if state.stopping || state.failed.is_some() {
                    return;
                }
                if state.next < state.blobs.len() {
                    state.next += 1;
                    break state.next - 1;
                }
                if state.closed {
                    return;
                }
                state = self.wait(state);
            };
            let blob = state.blobs[id].0.clone();
            drop(state);
            let result = self.upload(id, &blob);
            let mut state = self.lock();
            match result {
                Ok(Some(up)) => state.uploaded.push(up),
                Ok(None) => {}
                Err(e) => {
                    if state.failed.is_none() && !state.stopping {
                        state.failed = Some(e);
                    }
                    state.stopping = true;
                }
            }
            self.changed.notify_all();
        }
    }

    /// Wait until blob `id` has `want` bytes spooled or is verified: its byte count
    /// and whether it is verified; `None` when the pool stops.
    fn wait_for(&self, id: usize, want: u64) -> Option<(u64, bool)> {
        let mut state = self.lock();
        loop {
            if state.stopping || state.failed.is_some() {
                return None;
            }
            let p = &state.blobs[id].1;
            if p.written >= want || p.verified {
                return Some((p.written, p.verified));
            }
            state = self.wait(state);
        }
    }

    /// The worker is done with `..upto` of blob `id`: it no longer counts as
    /// unsent, and its disk space is given back (best effort).
    fn release(&self, id: usize, blob: &Blob, upto: u64) {
        let mut state = self.lock();
        let from = state.blobs[id].1.released;
        if upto <= from {
            return;
        }
        self.account(&mut state, id, |p| p.released = upto);
        drop(state);
        use rustix::fs::FallocateFlags;
        let _ = rustix::fs::fallocate(&blob.file, FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE, from, upto - from);
    }

    /// The bytes `at..at+len` of a blob's spool in one of the [`BUFFERS`]
    /// (`None` when the pool stops first); give it back with [`Shared::give_back`].
    fn read_chunk(&self, blob: &Blob, at: u64, len: usize) -> Result<Option<Bytes>> {
        let Some(mut buf) = self.take_buffer() else { return Ok(None) };
        buf.clear();
        buf.reserve_exact(len);
        // Read into the spare capacity (no zeroing): only this worker moves the file's cursor.
        let mut file = &blob.file;
        let read = file.seek(SeekFrom::Start(at)).and_then(|_| file.take(len as u64).read_to_end(&mut buf));
        let short = matches!(read, Ok(n) if n != len);
        if short || read.is_err() {
            self.give_back(Bytes::from(buf));
            let e = read.err().unwrap_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "shorter than what was spooled"));
            return Err(Error::io(format!("reading a spool file in {}", self.spool_dir.display()), e));
        }
        Ok(Some(Bytes::from(buf)))
    }

    /// A chunk buffer: a free one, one the HTTP stack let go of, or a new one
    /// while fewer than [`BUFFERS`] exist (never more: memory stays bounded
    /// whatever N is, and no buffer is freed, so the allocator holds no more).
    fn take_buffer(&self) -> Option<Vec<u8>> {
        let mut state = self.lock();
        loop {
            if state.stopping || state.failed.is_some() {
                return None;
            }
            if let Some(buf) = state.free.pop() {
                return Some(buf);
            }
            if let Some(i) = state.lent.iter().position(Bytes::is_unique) {
                match state.lent.swap_remove(i).try_into_mut() {
                    Ok(buf) => return Some(buf.into()),
                    Err(still) => state.lent.push(still),
                }
            }
            if state.buffers < BUFFERS {
                state.buffers += 1;
                return Some(Vec::with_capacity(CHUNK));
            }
            // A lent buffer comes back without a signal: look again shortly.
            state =
                self.changed.wait_timeout(state, std::time::Duration::from_millis(5)).map(|(g, _)| g).unwrap_or_else(|e| e.into_inner().0);
        }
    }

    /// A chunk sent (or not): its buffer is free again once nothing else holds it.
    fn give_back(&self, chunk: Bytes) {
        let mut state = self.lock();
        match chunk.try_into_mut() {
            Ok(buf) => state.free.push(buf.into()),
            Err(held) => state.lent.push(held),
        }
        self.changed.notify_all();
    }

    /// Upload one blob from its spool: `None` when the pool stopped first.
    fn upload(&self, id: usize, blob: &Blob) -> Result<Option<Uploaded>> {
        let size = blob.size;
        if size <= CHUNK as u64 {
            // Small: one POST + PUT once verified, as the one-at-a-time path does.
            let Some(_) = self.wait_for(id, u64::MAX) else { return Ok(None) };
            let Some(bytes) = self.read_chunk(blob, 0, size as usize)? else { return Ok(None) };
            let sent = self.client.upload_blob(&blob.repo, &blob.digest, bytes.clone());
            self.give_back(bytes);
            sent?;
            self.release(id, blob, size);
            return Ok(Some(Uploaded { repo: blob.repo.clone(), digest: blob.digest.clone(), sent: Sent { bytes: size, resumed: 0 } }));
        }
        let mut upload = ChunkedUpload::open(&self.client, &self.sessions, &blob.repo, &blob.digest, size, self.retries)?;
        let mut at = upload.offset();
        self.release(id, blob, at);
        // Whole chunks as they are spooled; what is left goes with the final PUT (after verification).
        while at + CHUNK as u64 <= size {
            if self.wait_for(id, at + CHUNK as u64).is_none() {
                return Ok(None);
            }
            let Some(chunk) = self.read_chunk(blob, at, CHUNK)? else { return Ok(None) };
            let sent = upload.send(chunk.clone());
            self.give_back(chunk);
            sent?;
            at += CHUNK as u64;
            self.release(id, blob, at);
        }
        let Some((written, verified)) = self.wait_for(id, u64::MAX) else { return Ok(None) };
        debug_assert!(verified && written == size);
        let Some(last) = self.read_chunk(blob, at, (size - at) as usize)? else { return Ok(None) };
        let finished = upload.finish(last.clone());
        self.give_back(last);
        let up = finished?;
        self.release(id, blob, size);
        Ok(Some(up))
    }
}
