//! Pass 2 output: a deterministic POSIX (ustar + PAX) tar writer that hashes
//! and counts what it writes.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};

use tar::{EntryType, Header};

use crate::digest::HashingWriter;

use super::layer::Meta;

const BLOCK: u64 = 512;
const MAX_OCTAL_7: u64 = 0o7777777;
const MAX_OCTAL_11: u64 = 0o77777777777;
/// The fixed name of PAX extended headers (their name is not significant).
const PAX_HEADER_NAME: &[u8] = b"././@PaxHeader";

/// What [`TarOut::finish`] reports.
pub(crate) struct Written {
    pub entries: u64,
    pub content_bytes: u64,
    pub sha256_hex: String,
    pub size: u64,
}

/// The data of a regular file entry: `len` bytes at `offset` in `file`.
pub(crate) struct Data<'a> {
    pub file: &'a mut File,
    pub offset: u64,
}

pub(crate) struct TarOut<W: Write> {
    w: BufWriter<HashingWriter<W>>,
    entries: u64,
    content_bytes: u64,
    buf: Vec<u8>,
}

impl<W: Write> TarOut<W> {
    pub(crate) fn new(out: W) -> Self {
        TarOut { w: BufWriter::with_capacity(256 * 1024, HashingWriter::new(out)), entries: 0, content_bytes: 0, buf: vec![0; 128 * 1024] }
    }

    /// Write one entry. `path` is the tar path without trailing slash; `link`
    /// is the symlink target or hard link target; `data` is given for regular
    /// files (with `meta.size` bytes).
    pub(crate) fn entry(&mut self, path: &[u8], ty: EntryType, meta: &Meta, link: Option<&[u8]>, data: Option<Data<'_>>) -> io::Result<()> {
        let size = if data.is_some() { meta.size } else { 0 };
        let mut pax = meta.pax.clone();
        let mut h = Header::new_ustar();
        h.set_entry_type(ty);
        h.set_mode(meta.mode & 0o7777);

        let mut name = path.to_vec();
        if ty == EntryType::Directory {
            name.push(b'/');
        }
        {
            let u = h.as_ustar_mut().expect("ustar header");
            match split_ustar_name(&name) {
                Some((prefix, base)) => {
                    u.prefix[..prefix.len()].copy_from_slice(prefix);
                    u.name[..base.len()].copy_from_slice(base);
                }
                None => {
                    pax.insert(b"path".to_vec(), name.clone());
                    let cut = &name[..name.len().min(100)];
                    u.name[..cut.len()].copy_from_slice(cut);
                }
            }
            if let Some(link) = link {
                if link.len() > 100 {
                    pax.insert(b"linkpath".to_vec(), link.to_vec());
                }
                let cut = &link[..link.len().min(100)];
                u.linkname[..cut.len()].copy_from_slice(cut);
            }
            for (field, value, key) in [(&mut u.uname, &meta.uname, &b"uname"[..]), (&mut u.gname, &meta.gname, &b"gname"[..])] {
                // Keep room for the terminating NUL.
                if value.len() > 31 {
                    pax.insert(key.to_vec(), value.clone());
                }
                let cut = &value[..value.len().min(31)];
                field[..cut.len()].copy_from_slice(cut);
            }
        }
        for (value, key) in [(meta.uid, &b"uid"[..]), (meta.gid, &b"gid"[..])] {
            if value > MAX_OCTAL_7 {
                pax.insert(key.to_vec(), value.to_string().into_bytes());
            }
        }
        h.set_uid(meta.uid.min(MAX_OCTAL_7));
        h.set_gid(meta.gid.min(MAX_OCTAL_7));
        if meta.mtime > MAX_OCTAL_11 {
            pax.entry(b"mtime".to_vec()).or_insert_with(|| meta.mtime.to_string().into_bytes());
        }
        h.set_mtime(meta.mtime.min(MAX_OCTAL_11));
        if size > MAX_OCTAL_11 {
            pax.insert(b"size".to_vec(), size.to_string().into_bytes());
        }
        h.set_size(size);
        h.set_device_major(meta.dev_major)?;
        h.set_device_minor(meta.dev_minor)?;
        h.set_cksum();

        if !pax.is_empty() {
            self.pax_header(&pax)?;
        }
        self.w.write_all(h.as_bytes())?;
        if let Some(Data { file, offset }) = data {
            file.seek(SeekFrom::Start(offset))?;
            let mut left = size;
            while left > 0 {
                let want = left.min(self.buf.len() as u64) as usize;
                let n = file.read(&mut self.buf[..want])?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "temporary spool file is shorter than the layer said"));
                }
                self.w.write_all(&self.buf[..n])?;
                left -= n as u64;
            }
            self.pad(size)?;
            self.content_bytes += size;
        }
        self.entries += 1;
        Ok(())
    }

    fn pad(&mut self, len: u64) -> io::Result<()> {
        let rem = (len % BLOCK) as usize;
        if rem != 0 {
            self.w.write_all(&[0u8; BLOCK as usize][..BLOCK as usize - rem])?;
        }
        Ok(())
    }

    fn pax_header(&mut self, records: &BTreeMap<Vec<u8>, Vec<u8>>) -> io::Result<()> {
        let mut body = Vec::new();
        for (k, v) in records {
            body.extend_from_slice(&pax_record(k, v));
        }
        let mut h = Header::new_ustar();
        h.set_entry_type(EntryType::XHeader);
        h.as_ustar_mut().expect("ustar header").name[..PAX_HEADER_NAME.len()].copy_from_slice(PAX_HEADER_NAME);
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        h.set_size(body.len() as u64);
        h.set_device_major(0)?;
        h.set_device_minor(0)?;
        h.set_cksum();
        self.w.write_all(h.as_bytes())?;
        self.w.write_all(&body)?;
        self.pad(body.len() as u64)
    }

    /// Write the end-of-archive marker and flush.
    pub(crate) fn finish(mut self) -> io::Result<Written> {
        self.w.write_all(&[0u8; 2 * BLOCK as usize])?;
        self.w.flush()?;
        let (digest, size, _) = self.w.into_inner().map_err(|e| e.into_error())?.finish();
        Ok(Written { entries: self.entries, content_bytes: self.content_bytes, sha256_hex: digest.hex().to_string(), size })
    }
}

/// Split a path into ustar `(prefix, name)` fields, if it fits.
fn split_ustar_name(p: &[u8]) -> Option<(&[u8], &[u8])> {
    if p.len() <= 100 {
        return Some((&p[..0], p));
    }
    // The longest prefix that fits gives the shortest name.
    let top = p.len().saturating_sub(1).min(155);
    let i = (0..=top).rev().find(|&i| p[i] == b'/')?;
    let base = &p[i + 1..];
    if base.is_empty() || base.len() > 100 {
        return None;
    }
    Some((&p[..i], base))
}

/// One PAX record: `"<len> <key>=<value>\n"`, where `len` counts itself.
pub(crate) fn pax_record(key: &[u8], value: &[u8]) -> Vec<u8> {
    let rest = key.len() + value.len() + 3; // ' ', '=', '\n'
    let mut len = rest + 1;
    while len != rest + len.to_string().len() {
        len = rest + len.to_string().len();
    }
    let mut r = Vec::with_capacity(len);
    r.extend_from_slice(len.to_string().as_bytes());
    r.push(b' ');
    r.extend_from_slice(key);
    r.push(b'=');
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pax_record_length_counts_itself() {
        assert_eq!(pax_record(b"path", b"abc"), b"12 path=abc\n".to_vec());
        // 9 + 91 = 100 -> crosses into three digits
        let v = vec![b'x'; 91];
        let r = pax_record(b"path", &v);
        let len: usize = std::str::from_utf8(&r[..r.iter().position(|&b| b == b' ').unwrap()]).unwrap().parse().unwrap();
        assert_eq!(len, r.len());
        for n in 0..300 {
            let v = vec![b'y'; n];
            let r = pax_record(b"k", &v);
            let sp = r.iter().position(|&b| b == b' ').unwrap();
            let len: usize = std::str::from_utf8(&r[..sp]).unwrap().parse().unwrap();
            assert_eq!(len, r.len(), "value length {n}");
        }
    }

    #[test]
    fn ustar_split() {
        assert_eq!(split_ustar_name(b"a/b"), Some((&b""[..], &b"a/b"[..])));
        let long = [vec![b'd'; 150], b"/".to_vec(), vec![b'f'; 50]].concat();
        assert_eq!(split_ustar_name(&long), Some((&long[..150], &long[151..])));
        let too_long = [vec![b'd'; 160], b"/".to_vec(), vec![b'f'; 50]].concat();
        assert_eq!(split_ustar_name(&too_long), None);
        let dir = [vec![b'd'; 120], b"/".to_vec()].concat();
        assert_eq!(split_ustar_name(&dir), None);
    }
}
