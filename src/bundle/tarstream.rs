//! A minimal tar writer for the artifact: regular files only, large copies,
//! no per-entry allocations. (The `tar` crate's `Builder` copies through an
//! 8 KiB buffer; blobs are gigabytes.)
use std::io::{self, Read, Write};

pub const BLOCK: u64 = 512;
/// Bytes copied at a time: small enough that hashing and compressing them
/// finds them still in the L2 cache (zstd itself reads 128 KiB at a time).
const COPY_BUFFER: usize = 256 << 10;

/// A ustar header owned by root, as every entry ferry writes has.
pub fn entry_header(path: &str, size: u64, mode: u32, mtime: u64, kind: tar::EntryType) -> io::Result<tar::Header> {
    let mut h = tar::Header::new_ustar();
    h.set_path(path)?;
    h.set_size(size);
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(mtime);
    h.set_entry_type(kind);
    h.set_cksum();
    Ok(h)
}

pub struct TarWriter<W: Write> {
    out: W,
    mtime: u64,
    buf: Vec<u8>,
}

impl<W: Write> TarWriter<W> {
    pub fn new(out: W, mtime: u64) -> Self {
        TarWriter { out, mtime, buf: vec![0; COPY_BUFFER] }
    }

    fn header(&self, path: &str, size: u64, mode: u32, kind: tar::EntryType) -> io::Result<tar::Header> {
        entry_header(path, size, mode, self.mtime, kind)
    }

    pub fn add_dir(&mut self, path: &str) -> io::Result<()> {
        let h = self.header(path, 0, 0o755, tar::EntryType::Directory)?;
        self.out.write_all(h.as_bytes())
    }

    pub fn add_bytes(&mut self, path: &str, data: &[u8]) -> io::Result<()> {
        self.add_reader(path, data.len() as u64, &mut &data[..])
    }

    /// Write an entry of exactly `size` bytes from `data`; fewer is an error.
    pub fn add_reader(&mut self, path: &str, size: u64, data: &mut dyn Read) -> io::Result<()> {
        let mut buf = std::mem::take(&mut self.buf);
        let copied = self.add_with(path, size, |out| {
            let mut left = size;
            while left > 0 {
                let want = left.min(buf.len() as u64) as usize;
                let n = data.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{path}: source ended {left} bytes early")));
                }
                out.write_all(&buf[..n])?;
                left -= n as u64;
            }
            Ok(())
        });
        self.buf = buf;
        copied
    }

    /// Write an entry of `size` bytes that `write_content` puts into the
    /// output itself (already compressed frames, say).
    pub fn add_with(&mut self, path: &str, size: u64, write_content: impl FnOnce(&mut W) -> io::Result<()>) -> io::Result<()> {
        let h = self.header(path, size, 0o644, tar::EntryType::Regular)?;
        self.out.write_all(h.as_bytes())?;
        write_content(&mut self.out)?;
        let pad = (BLOCK - size % BLOCK) % BLOCK;
        self.out.write_all(&[0u8; 512][..pad as usize])
    }

    /// Write the end-of-archive marker and return the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.write_all(&[0u8; 1024])?;
        Ok(self.out)
    }
}
