//! A lost part rebuilt as a stream: `sum_k w_k * shard_k` over `data` good
//! parts read side by side, a chunk of each at a time (memory: two chunks).
//! Used on the fly by the parts reader (verify, load) and to write parts back
//! (repair, pull).
use super::survey::{survey, Depth};
use super::{check_repairable, code, BadPart, Geometry};
use crate::bundle::checksums::ChecksumLine;
use crate::bundle::{BundleSource, Progress};
use crate::digest::Hasher;
use crate::error::{Error, Result};
use ferry_transports::{PutMode, Transport};
use reed_solomon_erasure::galois_8::mul_slice_xor;
use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::sync::Arc;

const CHUNK: usize = 1 << 20;

/// How to rebuild the bad data parts of a bundle from its good parts.
pub struct RebuildPlan {
    geometry: Geometry,
    names: Vec<String>,
    /// `data` good parts (indexes: data parts, then parity parts).
    available: Vec<usize>,
    /// Data parts to rebuild instead of reading.
    pub bad_data: BTreeSet<usize>,
}

/// For a parity bundle: find its bad parts (once; kept in the bundle for the
/// report), refuse when parity cannot cover them, and plan the rebuild of bad
/// data parts (`None` when every data part is good).
pub fn plan(bundle: &BundleSource, progress: &dyn Progress) -> Result<Option<Arc<RebuildPlan>>> {
    let Some(g) = &bundle.parity else { return Ok(None) };
    let bad = match bundle.bad_parts.get() {
        Some(b) => b.clone(),
        None => {
            let depth = if bundle.transport.local_dir().is_some() { Depth::Hashes } else { Depth::Sizes };
            let b = survey(&*bundle.transport, g, &bundle.checksums.lines, depth, progress)?;
            let _ = bundle.bad_parts.set(b.clone());
            b
        }
    };
    check_repairable(&bundle.describe(), g, &bad)?;
    let plan = RebuildPlan::new(g.clone(), &bundle.checksums.lines, &bad);
    Ok((!plan.bad_data.is_empty()).then(|| Arc::new(plan)))
}

impl RebuildPlan {
    pub fn new(geometry: Geometry, lines: &[ChecksumLine], bad: &[BadPart]) -> RebuildPlan {
        let names: Vec<String> = lines.iter().map(|l| l.name.clone()).collect();
        let bad_index: BTreeSet<usize> = bad.iter().filter_map(|b| names.iter().position(|n| *n == b.name)).collect();
        let available = (0..geometry.parts()).filter(|i| !bad_index.contains(i)).take(geometry.data).collect();
        let bad_data = bad_index.into_iter().filter(|&i| i < geometry.data).collect();
        RebuildPlan { geometry, names, available, bad_data }
    }

    /// Part `target` (data or parity), rebuilt from the good parts at `transport`,
    /// as a stream of its exact size.
    pub fn open(&self, transport: &dyn Transport, target: usize) -> Result<Combiner> {
        let weights = code::weights(self.geometry.data, &self.available, target)
            .ok_or_else(|| Error::integrity(format!("{}: the parity parts cannot rebuild {}", transport.describe(), self.names[target])))?;
        let mut inputs = Vec::new();
        for (&shard, &weight) in self.available.iter().zip(&weights) {
            if weight != 0 {
                let reader = transport.get(&self.names[shard], 0)?;
                inputs.push(Input { reader, left: self.geometry.size_of(shard), weight, name: self.names[shard].clone() });
            }
        }
        Ok(Combiner {
            inputs,
            left: self.geometry.size_of(target),
            row: Vec::new(),
            scratch: vec![0u8; CHUNK],
            pos: 0,
            at: transport.describe(),
        })
    }
}

struct Input {
    reader: Box<dyn Read + Send>,
    /// Bytes of this part not read yet (past them it counts as zeros).
    left: u64,
    weight: u8,
    name: String,
}

/// The rebuilt bytes of one part.
pub struct Combiner {
    inputs: Vec<Input>,
    /// Bytes of the rebuilt part not computed yet.
    left: u64,
    row: Vec<u8>,
    scratch: Vec<u8>,
    pos: usize,
    at: String,
}

impl Combiner {
    fn next_row(&mut self) -> io::Result<()> {
        let len = usize::try_from(self.left).unwrap_or(usize::MAX).min(CHUNK);
        self.row.clear();
        self.row.resize(len, 0);
        self.pos = 0;
        for input in &mut self.inputs {
            let take = usize::try_from(input.left).unwrap_or(usize::MAX).min(len);
            let buf = &mut self.scratch[..take];
            input.reader.read_exact(buf).map_err(|e| {
                if e.kind() == io::ErrorKind::UnexpectedEof {
                    Error::integrity(format!("{}: {} ended early while rebuilding from it", self.at, input.name)).into_io()
                } else {
                    e
                }
            })?;
            input.left -= take as u64;
            // Past its end a shorter part counts as zeros (and the SIMD kernel takes no empty slice).
            if take > 0 {
                mul_slice_xor(input.weight, buf, &mut self.row[..take]);
            }
        }
        self.left -= len as u64;
        Ok(())
    }
}

impl Read for Combiner {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.row.len() {
            if self.left == 0 {
                return Ok(0);
            }
            self.next_row()?;
        }
        let n = buf.len().min(self.row.len() - self.pos);
        buf[..n].copy_from_slice(&self.row[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Write every bad part back at `dest`, rebuilt from the good parts there, each
/// checked against `STEM.sha256` before it is committed.
pub fn rebuild_into(
    dest: &dyn Transport,
    geometry: &Geometry,
    lines: &[ChecksumLine],
    bad: &[BadPart],
    progress: &dyn Progress,
) -> Result<()> {
    let plan = RebuildPlan::new(geometry.clone(), lines, bad);
    for part in bad {
        let index = lines.iter().position(|l| l.name == part.name).expect("a bad part is one of the lines");
        let line = &lines[index];
        let mut source = plan.open(dest, index)?;
        let mut upload = dest.put(&line.name, PutMode::Fresh)?;
        progress.start(&format!("rebuilding {}", line.name), Some(geometry.size_of(index)));
        let mut h = Hasher::new();
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = source.read(&mut buf).map_err(|e| reading_error(dest, &line.name, e))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            upload.write_all(&buf[..n]).map_err(|e| Error::io(format!("writing {} to {}", line.name, dest.describe()), e))?;
            progress.advance(n as u64);
        }
        progress.finish();
        if h.finish().hex() != line.hex {
            drop(upload);
            let _ = dest.delete(&ferry_transports::partial_name(&line.name));
            return Err(Error::integrity(format!(
                "{}: {} rebuilt from the other parts does not match STEM.sha256 (the parts do not belong together)",
                dest.describe(),
                line.name
            )));
        }
        upload.commit()?;
    }
    Ok(())
}

fn reading_error(at: &dyn Transport, name: &str, e: io::Error) -> Error {
    match crate::error::unwrap_io(e) {
        Ok(ours) => ours,
        Err(e) => Error::io(format!("rebuilding {name} at {}", at.describe()), e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry_transports::DirTransport;

    /// Parts longer than a chunk, the last one shorter than a chunk: rows past its end read it as zeros.
    #[test]
    fn rebuilds_every_part_across_many_rows() {
        let dir = tempfile::tempdir().unwrap();
        let g = Geometry::new(3, 2, (CHUNK * 2 + 1000) as u64, 5000).unwrap();
        let sizes: Vec<usize> = (0..3).map(|i| g.size_of(i) as usize).collect();
        let data = code::testing::random_parts(0x9e3779b97f4a7c15, &sizes);
        let mut parts = data.clone();
        parts.extend(code::testing::reference_parity(&data, 2, g.part_size as usize));
        let lines: Vec<ChecksumLine> = parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let name = format!("part{i}");
                std::fs::write(dir.path().join(&name), p).unwrap();
                ChecksumLine { hex: crate::digest::Digest::of_bytes(p).hex().to_string(), name }
            })
            .collect();
        let dest = DirTransport::new(dir.path());
        for lost in [[0usize, 2], [2, 4], [1, 3]] {
            let bad: Vec<BadPart> =
                lost.iter().map(|&i| BadPart { name: lines[i].name.clone(), problem: "missing".into(), parity: i >= 3 }).collect();
            let plan = RebuildPlan::new(g.clone(), &lines, &bad);
            for &i in &lost {
                let mut out = Vec::new();
                plan.open(&dest, i).unwrap().read_to_end(&mut out).unwrap();
                assert!(out == parts[i], "part {i} rebuilt without {lost:?}");
            }
        }
    }
}
