//! The one way ferry reads a tar: [`archive`] puts a [`BoundedTar`] under
//! `tar::Archive`. The tar crate reads PAX extended headers (`x`, `g`) and
//! GNU long names and links (`L`, `K`) whole into memory, and keeps the
//! whole of a GNU sparse map, whatever size their header claims; a hostile
//! archive could make it allocate gigabytes. `BoundedTar` follows the
//! stream's 512-byte blocks as the tar crate does (header, extension blocks,
//! content, padding; a PAX `size` record overriding the next entry's size)
//! and refuses such entries at their header, before their bytes are read.
//!
//! It also knows where the entries end (the first all-zero header block), so
//! a copy of the stream ([`BoundedTar::copying_to`]) holds exactly the
//! entries the tar crate read, nothing from past the end-of-archive marker.
use std::io::{self, Read, Seek, SeekFrom, Write};

/// Largest PAX header or GNU long name/link ferry reads (the tar crate reads them whole).
pub const MAX_EXTENSION: u64 = 64 << 10;
/// Most extension blocks of a GNU sparse map (each lists 21 chunks); 64 KiB.
pub const MAX_SPARSE_EXTENSION_BLOCKS: u32 = 128;

const BLOCK: usize = 512;
/// Offset of the `isextended` flag in a GNU sparse extension block.
const EXT_IS_EXTENDED: usize = 504;

/// A `tar::Archive` over `inner` whose extension entries are bounded.
pub fn archive<R: Read>(inner: R) -> tar::Archive<BoundedTar<'static, R>> {
    tar::Archive::new(BoundedTar::new(inner))
}

#[derive(Debug)]
enum State {
    /// Filling a header block.
    Header,
    /// Filling the `count`-th extension block of the GNU sparse entry whose
    /// header is at byte `header` and whose data is `data` bytes.
    SparseExtension { count: u32, data: u64, header: u64 },
    /// Content and padding of an entry: `left` bytes, of which the first
    /// `keep` are collected (a PAX header's records).
    Content { left: u64, keep: u64 },
    /// Past the first all-zero header block.
    End,
}

pub struct BoundedTar<'c, R> {
    inner: R,
    state: State,
    /// Bytes of the stream passed so far (read or skipped).
    pos: u64,
    block: tar::Header,
    filled: usize,
    /// The records of the PAX header being read.
    pax: Option<Vec<u8>>,
    /// A PAX header was read and applies to the next entry: its `size`, if it has one.
    pending_pax: Option<Option<u64>>,
    copy: Option<&'c mut dyn Write>,
    end: Option<u64>,
}

impl<'c, R> BoundedTar<'c, R> {
    pub fn new(inner: R) -> Self {
        BoundedTar {
            inner,
            state: State::Header,
            pos: 0,
            block: tar::Header::new_old(),
            filled: 0,
            pax: None,
            pending_pax: None,
            copy: None,
            end: None,
        }
    }

    /// Also write every block of the entries (not the end-of-archive marker
    /// nor anything after it) to `out` as it is read.
    pub fn copying_to(self, out: &'c mut dyn Write) -> Self {
        BoundedTar { copy: Some(out), ..self }
    }

    /// Where the end-of-archive marker starts, once it was read: the entries' length.
    pub fn end_of_entries(&self) -> Option<u64> {
        self.end
    }

    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Follow the block structure over bytes just read.
    fn advance(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::End => return Ok(()),
                State::Header | State::SparseExtension { .. } => {
                    let take = (BLOCK - self.filled).min(bytes.len());
                    self.block.as_mut_bytes()[self.filled..self.filled + take].copy_from_slice(&bytes[..take]);
                    self.filled += take;
                    self.pos += take as u64;
                    bytes = &bytes[take..];
                    if self.filled == BLOCK {
                        self.filled = 0;
                        self.block_done()?;
                    }
                }
                State::Content { left, keep } => {
                    let take = (*left).min(bytes.len() as u64) as usize;
                    let kept = (*keep).min(take as u64) as usize;
                    *left -= take as u64;
                    *keep -= kept as u64;
                    let done = *left == 0;
                    if let Some(pax) = &mut self.pax {
                        pax.extend_from_slice(&bytes[..kept]);
                    }
                    self.write_copy(&bytes[..take])?;
                    self.pos += take as u64;
                    bytes = &bytes[take..];
                    if done {
                        self.content_done();
                    }
                }
            }
        }
        Ok(())
    }

    fn write_copy(&mut self, bytes: &[u8]) -> io::Result<()> {
        match &mut self.copy {
            Some(out) => out.write_all(bytes).map_err(|e| crate::error::Error::io("writing the verified tar", e).into_io()),
            None => Ok(()),
        }
    }

    fn block_done(&mut self) -> io::Result<()> {
        let start = self.pos - BLOCK as u64;
        match self.state {
            State::SparseExtension { count, data, header } => {
                let block = *self.block.as_bytes();
                self.write_copy(&block)?;
                if block[EXT_IS_EXTENDED] == 1 {
                    if count >= MAX_SPARSE_EXTENSION_BLOCKS {
                        return Err(invalid(format!(
                            "the tar entry at byte {header} has a GNU sparse map of more than {MAX_SPARSE_EXTENSION_BLOCKS} extension blocks ({} KiB), more than ferry accepts",
                            MAX_SPARSE_EXTENSION_BLOCKS as usize * BLOCK / 1024
                        )));
                    }
                    self.state = State::SparseExtension { count: count + 1, data, header };
                } else {
                    self.start_content(data, false)?;
                }
                Ok(())
            }
            _ => self.header_done(start),
        }
    }

    /// A header block is complete: decide what follows it, as the tar crate will.
    fn header_done(&mut self, start: u64) -> io::Result<()> {
        let header = &self.block;
        if header.as_bytes().iter().all(|&b| b == 0) {
            self.state = State::End;
            self.end = Some(start);
            return Ok(());
        }
        let bytes = header.as_bytes();
        let sum = bytes[..148].iter().chain(&bytes[156..]).map(|&b| b as u32).sum::<u32>() + 8 * 32;
        if header.cksum()? != sum {
            return Err(invalid("archive header checksum mismatch".into()));
        }
        let kind = header.entry_type();
        let recognized = header.as_gnu().is_some() || header.as_ustar().is_some();
        let extension =
            kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_local_extensions() || kind.is_pax_global_extensions();
        // The tar crate consumes these itself, reading them whole, and they
        // leave a PAX header pending for the entry they describe.
        let consumed = recognized && (kind.is_gnu_longname() || kind.is_gnu_longlink() || kind.is_pax_local_extensions());
        let mut size = header.entry_size()?;
        if !consumed {
            // Whatever comes next is the entry a pending PAX header describes.
            if let Some(Some(pax_size)) = self.pending_pax.take() {
                if !extension {
                    size = pax_size;
                }
            }
        }
        if extension && size > MAX_EXTENSION {
            let what = if kind.is_pax_local_extensions() {
                "a PAX extended header"
            } else if kind.is_pax_global_extensions() {
                "a PAX global header"
            } else if kind.is_gnu_longname() {
                "a GNU long name"
            } else {
                "a GNU long link name"
            };
            return Err(invalid(format!(
                "the tar entry at byte {start} is {what} of {size} bytes, more than the {MAX_EXTENSION} bytes ferry accepts"
            )));
        }
        let sparse_extended = kind.is_gnu_sparse() && header.as_gnu().is_some_and(|g| g.is_extended());
        let is_pax = consumed && kind.is_pax_local_extensions();
        if is_pax && self.pending_pax.is_some() {
            return Err(invalid("two pax extensions entries describing the same member".into()));
        }
        let block = *self.block.as_bytes();
        self.write_copy(&block)?;
        if sparse_extended {
            self.state = State::SparseExtension { count: 1, data: size, header: start };
            Ok(())
        } else {
            self.start_content(size, is_pax)
        }
    }

    fn start_content(&mut self, size: u64, is_pax: bool) -> io::Result<()> {
        let padded =
            size.checked_next_multiple_of(BLOCK as u64).ok_or_else(|| invalid(format!("a tar entry's size ({size}) overflows")))?;
        self.pax = is_pax.then(|| Vec::with_capacity(size as usize));
        self.state = State::Content { left: padded, keep: if is_pax { size } else { 0 } };
        if padded == 0 {
            self.content_done();
        }
        Ok(())
    }

    fn content_done(&mut self) {
        if let Some(records) = self.pax.take() {
            self.pending_pax = Some(pax_size(&records));
        }
        self.state = State::Header;
    }
}

/// The `size` record of PAX records, read as the tar crate reads it (the
/// first `size` record; nothing if a record before it is malformed).
fn pax_size(records: &[u8]) -> Option<u64> {
    for record in tar::PaxExtensions::new(records) {
        let record = record.ok()?;
        if record.key() == Ok("size") {
            return record.value().ok()?.parse().ok();
        }
    }
    None
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg)
}

impl<R: Read> Read for BoundedTar<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.advance(&buf[..n])?;
        Ok(n)
    }
}

/// The tar crate seeks only forward over content it does not read (`entries_with_seek`).
impl<R: Read + Seek> Seek for BoundedTar<'_, R> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let skip = match to {
            SeekFrom::Current(0) => return self.inner.seek(to),
            SeekFrom::Current(n) if n > 0 => n as u64,
            _ => return Err(io::Error::new(io::ErrorKind::Unsupported, "a tar stream is only skipped forward")),
        };
        match &mut self.state {
            State::Content { left, keep: 0 } if skip <= *left && self.copy.is_none() => {
                let at = self.inner.seek(to)?;
                *left -= skip;
                let done = *left == 0;
                self.pos += skip;
                if done {
                    self.content_done();
                }
                Ok(at)
            }
            _ => Err(invalid(format!(
                "the tar reader skipped {skip} bytes at byte {} where the stream's structure does not allow it",
                self.pos
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, kind: tar::EntryType, data: &[u8], size: u64) -> Vec<u8> {
        let mut h = tar::Header::new_ustar();
        h.set_path(name).unwrap();
        h.set_entry_type(kind);
        h.set_size(size);
        h.set_mode(0o644);
        h.set_cksum();
        let mut v = h.as_bytes().to_vec();
        v.extend_from_slice(data);
        v.resize(v.len().next_multiple_of(512), 0);
        v
    }

    fn names(tar: &[u8]) -> io::Result<Vec<String>> {
        let mut a = archive(tar);
        let mut out = Vec::new();
        for e in a.entries()? {
            let mut e = e?;
            let name = String::from_utf8_lossy(&e.path_bytes()).into_owned();
            io::copy(&mut e, &mut io::sink())?;
            out.push(name);
        }
        Ok(out)
    }

    #[test]
    fn follows_pax_sizes_long_names_and_stops_at_the_end_marker() {
        let mut tar = entry("././@PaxHeader", tar::EntryType::XHeader, b"11 size=10\n23 path=renamed-by-pax\n", 34);
        tar.extend(entry("x", tar::EntryType::Regular, b"0123456789", 999)); // PAX size wins
        tar.extend(entry("././@LongLink", tar::EntryType::GNULongName, b"a-long-name\0", 12));
        tar.extend(entry("y", tar::EntryType::Regular, b"yy", 2));
        let entries_len = tar.len();
        tar.extend([0u8; 1024]);
        tar.extend(b"after the end");
        let mut copy = Vec::new();
        {
            let mut a = tar::Archive::new(BoundedTar::new(&tar[..]).copying_to(&mut copy));
            let mut got = Vec::new();
            for e in a.entries().unwrap() {
                let mut e = e.unwrap();
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                got.push((String::from_utf8_lossy(&e.path_bytes()).into_owned(), data));
            }
            assert_eq!(got, vec![("renamed-by-pax".to_string(), b"0123456789".to_vec()), ("a-long-name".to_string(), b"yy".to_vec())]);
            let mut rest = a.into_inner();
            assert_eq!(rest.end_of_entries(), Some(entries_len as u64));
            io::copy(&mut rest, &mut io::sink()).unwrap();
        }
        assert!(copy == tar[..entries_len], "the copy holds the entries and nothing after them");
    }

    #[test]
    fn refuses_oversized_extensions_at_their_header() {
        for (kind, what) in [
            (tar::EntryType::XHeader, "a PAX extended header"),
            (tar::EntryType::XGlobalHeader, "a PAX global header"),
            (tar::EntryType::GNULongName, "a GNU long name"),
            (tar::EntryType::GNULongLink, "a GNU long link name"),
        ] {
            let mut tar = entry("ext", kind, &[], MAX_EXTENSION + 1);
            tar.extend([0u8; 1024]);
            let err = names(&tar).unwrap_err().to_string();
            assert!(err.contains(&format!("is {what} of 65537 bytes, more than the 65536 bytes ferry accepts")), "{err}");
        }
        // At the cap: read as the tar crate reads it.
        let record = {
            let body = "x".repeat(MAX_EXTENSION as usize - 15);
            format!("65536 comment={body}\n")
        };
        assert_eq!(record.len() as u64, MAX_EXTENSION);
        let mut tar = entry("././@PaxHeader", tar::EntryType::XHeader, record.as_bytes(), MAX_EXTENSION);
        tar.extend(entry("f", tar::EntryType::Regular, b"f", 1));
        tar.extend([0u8; 1024]);
        assert_eq!(names(&tar).unwrap(), vec!["f"]);
    }

    #[test]
    fn a_pax_size_applies_to_the_entry_after_a_long_name() {
        // x (size=2000), L, then a file whose header says 1: 2000 bytes of content follow.
        let mut tar = entry("././@PaxHeader", tar::EntryType::XHeader, b"13 size=2000\n", 13);
        tar.extend(entry("././@LongLink", tar::EntryType::GNULongName, b"big\0", 4));
        tar.extend(entry("big", tar::EntryType::Regular, &vec![1u8; 2000], 1));
        tar.extend(entry("tail", tar::EntryType::Regular, b"t", 1));
        tar.extend([0u8; 1024]);
        assert_eq!(names(&tar).unwrap(), vec!["big", "tail"]);
    }

    #[test]
    fn follows_gnu_sparse_extension_blocks() {
        let mut h = tar::Header::new_gnu();
        h.set_path("sparse").unwrap();
        h.set_entry_type(tar::EntryType::GNUSparse);
        h.set_mode(0o644);
        h.set_size(1024);
        {
            let gnu = h.as_gnu_mut().unwrap();
            gnu.sparse[0].set_offset(0);
            gnu.sparse[0].set_length(512);
            gnu.set_is_extended(true);
            gnu.set_real_size(4608);
        }
        h.set_cksum();
        let mut ext = tar::GnuExtSparseHeader::new();
        ext.sparse_mut()[0].set_offset(4096);
        ext.sparse_mut()[0].set_length(512);
        let mut tar = h.as_bytes().to_vec();
        tar.extend_from_slice(ext.as_bytes());
        tar.extend_from_slice(&[9u8; 1024]);
        tar.extend(entry("after", tar::EntryType::Regular, b"a", 1));
        tar.extend([0u8; 1024]);
        assert_eq!(names(&tar).unwrap(), vec!["sparse", "after"]);
    }

    #[test]
    fn skips_content_by_seeking() {
        let mut tar = entry("a", tar::EntryType::Regular, &vec![3u8; 5000], 5000);
        tar.extend(entry("b", tar::EntryType::Regular, b"b", 1));
        tar.extend([0u8; 1024]);
        let mut a = tar::Archive::new(BoundedTar::new(io::Cursor::new(tar)));
        let got: Vec<String> =
            a.entries_with_seek().unwrap().map(|e| String::from_utf8_lossy(&e.unwrap().path_bytes()).into_owned()).collect();
        assert_eq!(got, vec!["a", "b"]);
    }
}
