//! The artifact as one or more part files: written with splitting and
//! checksumming as bytes stream, read back across parts without joining them.
use super::checksums::ChecksumLine;
use super::names::part_name;
use crate::digest::{BackgroundHasher, Digest, Hasher};
use crate::error::{Error, Result};
use ferry_transports::{PutMode, Transport, Upload};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

/// A finished part.
#[derive(Debug, Clone)]
pub struct PartRecord {
    pub name: String,
    pub size: u64,
    pub digest: Digest,
}

struct OpenPart {
    name: String,
    upload: Box<dyn Upload>,
    /// The part's SHA-256, on its own thread (it overlaps writing).
    hasher: BackgroundHasher,
    written: u64,
}

struct PartState {
    transport: Arc<dyn Transport>,
    artifact: String,
    split: Option<u64>,
    current: Option<OpenPart>,
    done: Vec<PartRecord>,
    /// `--parity`: accumulates the parity parts as the data parts stream.
    parity: Option<crate::parity::encode::ParityWriter>,
}

impl PartState {
    fn next_name(&self) -> String {
        match self.split {
            Some(_) => part_name(&self.artifact, self.done.len()),
            None => self.artifact.clone(),
        }
    }

    fn commit_current(&mut self) -> Result<()> {
        if let Some(part) = self.current.take() {
            part.upload.commit()?;
            self.done.push(PartRecord { name: part.name, size: part.written, digest: part.hasher.finish() });
        }
        Ok(())
    }
}

/// Writes the artifact into parts under temporary names, committing each when full.
#[derive(Clone)]
pub struct PartWriter(Arc<Mutex<PartState>>);

impl PartWriter {
    pub fn new(transport: Arc<dyn Transport>, artifact: String, split: Option<u64>) -> Self {
        PartWriter(Arc::new(Mutex::new(PartState { transport, artifact, split, current: None, done: Vec::new(), parity: None })))
    }

    /// Also write `parity` parity parts for bundle `stem` (with `split` only).
    pub fn with_parity(self, stem: &str, parity: usize) -> Result<Self> {
        {
            let mut state = self.0.lock().unwrap();
            let writer = crate::parity::encode::ParityWriter::start(&*state.transport, stem, parity)?;
            state.parity = Some(writer);
        }
        Ok(self)
    }

    /// After [`PartWriter::finish`]: publish the parity parts, if any, with the geometry
    /// of the data parts written. Fewer data parts than parity parts is refused.
    pub fn finish_parity(&self) -> Result<Option<(crate::parity::Geometry, Vec<PartRecord>)>> {
        let mut state = self.0.lock().unwrap();
        let Some(writer) = state.parity.take() else { return Ok(None) };
        let (data, first, last) = (state.done.len(), state.done[0].size, state.done[state.done.len() - 1].size);
        let parity = writer.parity();
        if parity > data {
            writer.abort();
            return Err(Error::usage(format!(
                "--parity {parity} is more than the {data} data part(s) the artifact made: choose a smaller --split or fewer parity parts"
            )));
        }
        let geometry = crate::parity::Geometry::new(data, parity, first, last)?;
        let transport = state.transport.clone();
        Ok(Some((geometry, writer.finish(&*transport, first)?)))
    }

    /// Commit the last part and return every part's record.
    pub fn finish(&self) -> Result<Vec<PartRecord>> {
        let mut state = self.0.lock().unwrap();
        state.commit_current()?;
        Ok(state.done.clone())
    }

    /// After a failure: remove what was written (best effort).
    pub fn abort(&self) {
        let mut state = self.0.lock().unwrap();
        if let Some(part) = state.current.take() {
            drop(part.upload);
            let _ = state.transport.delete(&ferry_transports::partial_name(&part.name));
        }
        for part in std::mem::take(&mut state.done) {
            let _ = state.transport.delete(&part.name);
        }
        if let Some(parity) = state.parity.take() {
            parity.abort();
        }
    }
}

impl Write for PartWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.0.lock().unwrap();
        if state.current.is_none() {
            if let Some(parity) = &state.parity {
                let most = crate::parity::code::MAX_PARTS - parity.parity();
                if state.done.len() == most {
                    return Err(Error::usage(format!(
                        "with --parity {} the artifact may have at most {most} data parts: choose a larger --split",
                        parity.parity()
                    ))
                    .into_io());
                }
            }
            let name = state.next_name();
            let upload = state.transport.put(&name, PutMode::Fresh).map_err(|e| Error::from(e).into_io())?;
            state.current = Some(OpenPart { name, upload, hasher: BackgroundHasher::new()?, written: 0 });
        }
        let limit = state.split.unwrap_or(u64::MAX);
        let index = state.done.len();
        let PartState { current, parity, .. } = &mut *state;
        let part = current.as_mut().expect("opened above");
        let room = limit - part.written;
        let n = (buf.len() as u64).min(room) as usize;
        part.upload.write_all(&buf[..n])?;
        part.hasher.update(&buf[..n]);
        if let Some(parity) = parity {
            parity.write(index, part.written, &buf[..n])?;
        }
        part.written += n as u64;
        if part.written == limit {
            state.commit_current().map_err(Error::into_io)?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.0.lock().unwrap().current.as_mut() {
            Some(p) => p.upload.flush(),
            None => Ok(()),
        }
    }
}

/// Reads the artifact's parts in order as one stream, checking each part
/// against `STEM.sha256` when it ends. A mismatch is an error of the stream.
pub struct PartsReader {
    transport: Arc<dyn Transport>,
    parts: Vec<ChecksumLine>,
    next: usize,
    current: Option<(Box<dyn BufRead + Send>, Hasher, usize)>,
    /// Read each part on its own thread (checksum-only verification: reading
    /// overlaps hashing).
    read_ahead: bool,
    /// The first checksum mismatch found, kept for [`PartsReader::drain_and_check`].
    mismatch: Option<String>,
    /// Data parts to rebuild from parity instead of reading them.
    rebuild: Option<Arc<crate::parity::rebuild::RebuildPlan>>,
    /// Total bytes read so far.
    pub bytes: u64,
}

/// Small: reads of the pipeline's large buffers go straight to the part's reader.
const PART_BUFFER: usize = 64 << 10;

impl PartsReader {
    pub fn new(transport: Arc<dyn Transport>, parts: Vec<ChecksumLine>) -> Self {
        PartsReader { transport, parts, next: 0, current: None, read_ahead: false, mismatch: None, rebuild: None, bytes: 0 }
    }

    /// Rebuild the plan's bad data parts from parity as they come.
    pub fn with_rebuild(mut self, plan: Option<Arc<crate::parity::rebuild::RebuildPlan>>) -> Self {
        self.rebuild = plan;
        self
    }

    /// Read every part on a thread of its own, in large buffers.
    pub fn with_read_ahead(mut self) -> Self {
        self.read_ahead = true;
        self
    }

    /// Read what is left, checking the checksums of the remaining parts. Used
    /// after a failure downstream, to report a damaged part as the cause, and
    /// for checksum-only verification. Hashes straight from the reader's buffers.
    pub fn drain_and_check(&mut self) -> Result<()> {
        if let Some(m) = &self.mismatch {
            return Err(Error::integrity(m.clone()));
        }
        let ctx = |e| Error::io("reading the bundle", e);
        loop {
            if self.current.is_none() && !self.open_next().map_err(ctx)? {
                return Ok(());
            }
            let (reader, hasher, _) = self.current.as_mut().expect("opened above");
            let chunk = match reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ctx(e)),
            };
            let n = chunk.len();
            if n > 0 {
                hasher.update(chunk);
                reader.consume(n);
                self.bytes += n as u64;
            } else {
                self.end_part().map_err(ctx)?;
            }
        }
    }

    /// The current part ended: check it against `STEM.sha256`.
    fn end_part(&mut self) -> io::Result<()> {
        let (_, hasher, idx) = self.current.take().expect("present");
        let line = &self.parts[idx];
        if hasher.finish().hex() != line.hex {
            let msg = format!(
                "{}: checksum mismatch in {} (the file is damaged, truncated or was replaced)",
                self.transport.describe(),
                line.name
            );
            self.mismatch.get_or_insert_with(|| msg.clone());
            return Err(Error::integrity(msg).into_io());
        }
        Ok(())
    }

    fn open_next(&mut self) -> io::Result<bool> {
        let Some(line) = self.parts.get(self.next) else { return Ok(false) };
        let rebuild = self.rebuild.as_ref().filter(|p| p.bad_data.contains(&self.next));
        let reader = match rebuild {
            Some(plan) => plan.open(&*self.transport, self.next).map(|c| Box::new(c) as Box<dyn Read + Send>).map_err(Error::into_io),
            None => self.get_part(line),
        }?;
        let reader: Box<dyn BufRead + Send> = if self.read_ahead {
            Box::new(super::pipeline::ReadAhead::spawn("ferry-read-part", reader)?)
        } else {
            Box::new(BufReader::with_capacity(PART_BUFFER, reader))
        };
        self.current = Some((reader, Hasher::new(), self.next));
        self.next += 1;
        Ok(true)
    }

    fn get_part(&self, line: &ChecksumLine) -> io::Result<Box<dyn Read + Send>> {
        self.transport.get(&line.name, 0).map_err(|e| {
            if e.is_not_found() {
                Error::integrity(format!("{}: part {} is missing", self.transport.describe(), line.name)).into_io()
            } else {
                Error::from(e).into_io()
            }
        })
    }
}

impl Read for PartsReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.current.is_none() && !self.open_next()? {
                return Ok(0);
            }
            let (reader, hasher, idx) = self.current.as_mut().expect("opened above");
            let n = match reader.read(buf) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(read_failure(&*self.transport, &self.parts[*idx].name, e)),
            };
            if n > 0 {
                hasher.update(&buf[..n]);
                self.bytes += n as u64;
                return Ok(n);
            }
            self.end_part()?;
        }
    }
}

/// A read of a part failed (the server went away or went silent): a transport
/// failure (exit 4), unless ferry's own error travelled inside it.
fn read_failure(transport: &dyn Transport, name: &str, e: io::Error) -> io::Error {
    match crate::error::unwrap_io(e) {
        Ok(ours) => ours.into_io(),
        Err(e) if e.raw_os_error().is_some() && transport.local_dir().is_some() => e,
        Err(e) => Error::Transport(ferry_transports::TransportError::io(transport.describe(), format!("reading {name}"), e)).into_io(),
    }
}
