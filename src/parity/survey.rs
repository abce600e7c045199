//! Which parts of a parity bundle are missing or damaged, before its artifact
//! is read: a part found damaged only at its end (its checksum) would have
//! passed its bytes downstream already. In a local directory every part is
//! hashed (a first read of the bundle); elsewhere only sizes are checked, and
//! a part damaged on the server is found when it is read (exit 3; `ferry pull`
//! fetches the bundle and rebuilds it).
use super::{BadPart, Geometry};
use crate::bundle::checksums::ChecksumLine;
use crate::bundle::Progress;
use crate::digest::Hasher;
use crate::error::{Error, Result};
use ferry_transports::Transport;
use std::io::Read;

/// Whether the survey reads every part (hashes) or only asks for sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    Sizes,
    Hashes,
}

pub fn survey(
    transport: &dyn Transport,
    geometry: &Geometry,
    lines: &[ChecksumLine],
    depth: Depth,
    progress: &dyn Progress,
) -> Result<Vec<BadPart>> {
    let mut bad = Vec::new();
    if depth == Depth::Hashes {
        let total = (0..geometry.parts()).map(|i| geometry.size_of(i)).sum();
        progress.start("checking the parts", Some(total));
    }
    for (i, line) in lines.iter().enumerate() {
        let parity = i >= geometry.data;
        let expected = geometry.size_of(i);
        let problem = match transport.stat(&line.name)? {
            None => Some("missing".to_string()),
            Some(size) if size != expected => Some(format!("{size} bytes, expected {expected}")),
            Some(_) if depth == Depth::Hashes && hash(transport, &line.name, progress)? != line.hex => Some("damaged".to_string()),
            Some(_) => None,
        };
        if let Some(problem) = problem {
            bad.push(BadPart { name: line.name.clone(), problem, parity });
        }
    }
    if depth == Depth::Hashes {
        progress.finish();
    }
    Ok(bad)
}

fn hash(transport: &dyn Transport, name: &str, progress: &dyn Progress) -> Result<String> {
    let mut reader = transport.get(name, 0)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = reader.read(&mut buf).map_err(|e| Error::io(format!("reading {name} from {}", transport.describe()), e))?;
        if n == 0 {
            return Ok(h.finish().hex().to_string());
        }
        h.update(&buf[..n]);
        progress.advance(n as u64);
    }
}
