//! Parity accumulated while the data parts are written, in one pass: RS
//! encoding is linear, so each data part's bytes are multiplied by their
//! coefficients and XORed into the parity parts at the same offset as they
//! stream (`parity_j ^= c(j, i) * chunk`). The parity parts themselves hold
//! the running sums: files next to the output for a local directory (then
//! renamed into place), anonymous temporary files for a remote location
//! (uploaded after the last data part). Memory: a few chunks.
use super::code::coefficient;
use crate::bundle::names::parity_part_name;
use crate::bundle::parts::PartRecord;
use crate::digest::Hasher;
use crate::error::{Error, Result};
use ferry_transports::{partial_name, PutMode, Transport};
use reed_solomon_erasure::galois_8::{mul_slice, mul_slice_xor};
use std::fs::File;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

/// Bytes of a data part handed to the parity thread at once.
const CHUNK: usize = 1 << 20;

struct Chunk {
    part: usize,
    offset: u64,
    data: Vec<u8>,
}

/// One parity part being accumulated.
struct Accumulator {
    name: String,
    file: File,
    /// Where it lives inside the output directory (`None`: an anonymous temporary file).
    path: Option<PathBuf>,
}

pub struct ParityWriter {
    names: Vec<String>,
    paths: Vec<Option<PathBuf>>,
    tx: Option<SyncSender<Chunk>>,
    recycled: Receiver<Vec<u8>>,
    worker: Option<JoinHandle<io::Result<Vec<Accumulator>>>>,
    pending: Chunk,
}

impl ParityWriter {
    /// Create the `parity` accumulators of bundle `stem` for `transport`.
    pub fn start(transport: &dyn Transport, stem: &str, parity: usize) -> Result<ParityWriter> {
        let mut accumulators = Vec::with_capacity(parity);
        for j in 0..parity {
            let name = parity_part_name(stem, j);
            let (file, path) = match transport.local_dir() {
                Some(dir) => {
                    let path = dir.join(partial_name(&name));
                    let _ = std::fs::remove_file(&path);
                    let file = File::options()
                        .read(true)
                        .write(true)
                        .create_new(true)
                        .open(&path)
                        .map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
                    (file, Some(path))
                }
                None => (tempfile::tempfile().map_err(|e| Error::io("creating a temporary parity file", e))?, None),
            };
            accumulators.push(Accumulator { name, file, path });
        }
        let names = accumulators.iter().map(|a| a.name.clone()).collect();
        let paths = accumulators.iter().map(|a| a.path.clone()).collect();
        let (tx, rx) = sync_channel::<Chunk>(4);
        let (recycle_tx, recycled) = sync_channel::<Vec<u8>>(6);
        let worker = std::thread::Builder::new()
            .name("ferry-parity".into())
            .spawn(move || accumulate(accumulators, rx, recycle_tx))
            .map_err(|e| Error::io("starting the parity thread", e))?;
        Ok(ParityWriter {
            names,
            paths,
            tx: Some(tx),
            recycled,
            worker: Some(worker),
            pending: Chunk { part: 0, offset: 0, data: Vec::with_capacity(CHUNK) },
        })
    }

    /// `data` was written to data part `part` at `offset`.
    pub fn write(&mut self, part: usize, mut offset: u64, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let p = &self.pending;
            if !p.data.is_empty() && (p.part != part || p.offset + p.data.len() as u64 != offset) {
                self.send()?;
            }
            if self.pending.data.is_empty() {
                self.pending.part = part;
                self.pending.offset = offset;
            }
            let room = CHUNK - self.pending.data.len();
            let n = room.min(data.len());
            self.pending.data.extend_from_slice(&data[..n]);
            data = &data[n..];
            offset += n as u64;
            if self.pending.data.len() == CHUNK {
                self.send()?;
            }
        }
        Ok(())
    }

    fn send(&mut self) -> io::Result<()> {
        let mut next = self.recycled.try_recv().unwrap_or_else(|_| Vec::with_capacity(CHUNK));
        next.clear();
        let chunk = std::mem::replace(&mut self.pending, Chunk { part: 0, offset: 0, data: next });
        let tx = self.tx.as_ref().expect("not finished");
        if tx.send(chunk).is_err() {
            // The worker stopped on an error: it says which.
            return Err(match self.join() {
                Err(e) => e,
                Ok(_) => io::Error::other("the parity thread stopped"),
            });
        }
        Ok(())
    }

    fn join(&mut self) -> io::Result<Vec<Accumulator>> {
        self.tx = None;
        match self.worker.take() {
            Some(w) => w.join().unwrap_or_else(|_| Err(io::Error::other("the parity thread panicked"))),
            None => Err(io::Error::other("the parity thread already stopped")),
        }
    }

    /// After the last data part: publish the parity parts, each `part_size` bytes.
    pub fn finish(mut self, transport: &dyn Transport, part_size: u64) -> Result<Vec<PartRecord>> {
        let ctx = |e| Error::io("computing the parity parts", e);
        if !self.pending.data.is_empty() {
            self.send().map_err(ctx)?;
        }
        let accumulators = self.join().map_err(ctx)?;
        let mut records = Vec::new();
        for mut acc in accumulators {
            let len = acc.file.metadata().map_err(ctx)?.len();
            if len != part_size {
                return Err(Error::io(format!("computing {}", acc.name), io::Error::other(format!("{len} bytes, expected {part_size}"))));
            }
            acc.file.rewind().map_err(ctx)?;
            let digest = match &acc.path {
                Some(path) => {
                    let digest = hash(&mut acc.file).map_err(ctx)?;
                    drop(acc.file);
                    transport.adopt(path, &acc.name)?;
                    digest
                }
                None => upload(transport, &acc.name, &mut acc.file)?,
            };
            records.push(PartRecord { name: acc.name, size: part_size, digest });
        }
        self.paths.clear();
        Ok(records)
    }

    /// How many parity parts this writes.
    pub fn parity(&self) -> usize {
        self.names.len()
    }

    /// Remove what was written (best effort; nothing has a final name before [`ParityWriter::finish`]).
    pub fn abort(mut self) {
        let _ = self.join();
        for path in self.paths.iter().flatten() {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn accumulate(mut parts: Vec<Accumulator>, rx: Receiver<Chunk>, recycle: SyncSender<Vec<u8>>) -> io::Result<Vec<Accumulator>> {
    let mut row = vec![0u8; CHUNK];
    for chunk in rx {
        let n = chunk.data.len();
        for (j, acc) in parts.iter_mut().enumerate() {
            let c = coefficient(j, chunk.part);
            let row = &mut row[..n];
            if chunk.part == 0 {
                mul_slice(c, &chunk.data, row);
            } else {
                acc.file.read_exact_at(row, chunk.offset)?;
                mul_slice_xor(c, &chunk.data, row);
            }
            acc.file.write_all_at(row, chunk.offset)?;
        }
        let _ = recycle.try_send(chunk.data);
    }
    Ok(parts)
}

fn hash(file: &mut File) -> io::Result<crate::digest::Digest> {
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// A remote location: send the finished parity part, hashing it on the way.
fn upload(transport: &dyn Transport, name: &str, file: &mut File) -> Result<crate::digest::Digest> {
    let mut upload = transport.put(name, PutMode::Fresh)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(format!("reading the parity of {name}"), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        upload.write_all(&buf[..n]).map_err(|e| Error::io(format!("writing {name} to {}", transport.describe()), e))?;
    }
    upload.commit()?;
    Ok(h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_transports::DirTransport;

    /// Writes larger than a chunk, in uneven pieces, into parts longer than a chunk.
    #[test]
    fn parity_matches_the_code_for_large_writes() {
        let dir = tempfile::tempdir().unwrap();
        let dest = DirTransport::new(dir.path());
        let part = CHUNK * 2 + 777;
        let sizes = [part, part, 4242];
        let data = super::super::code::testing::random_parts(0x2545f4914f6cdd1d, &sizes);
        let mut writer = ParityWriter::start(&dest, "t", 2).unwrap();
        for (i, d) in data.iter().enumerate() {
            let (a, b) = d.split_at(d.len().min(CHUNK + CHUNK / 2));
            writer.write(i, 0, a).unwrap();
            writer.write(i, a.len() as u64, b).unwrap();
        }
        let records = writer.finish(&dest, part as u64).unwrap();
        let parity = super::super::code::testing::reference_parity(&data, 2, part);
        for (record, expected) in records.iter().zip(parity) {
            let got = std::fs::read(dir.path().join(&record.name)).unwrap();
            assert!(got == expected, "parity part {}", record.name);
            assert_eq!(record.digest, crate::digest::Digest::of_bytes(&expected));
        }
    }
}
