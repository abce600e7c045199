//! Have-lists (SPEC §6): what a consumer already holds, so that a sender can
//! leave it out of a delta bundle. Text, first line `# ferry have v1`, then
//! `sha256:<64 hex>` lines (blobs, for blob-addressed targets such as OCI
//! layouts), `chain sha256:<64 hex>` lines (layer chain IDs, for Docker),
//! `#` comments and blank lines. Nothing else: a have-list comes from another
//! machine, so it is read strictly and within bounds ([`MAX_HAVE_BYTES`],
//! [`MAX_HAVE_LINES`], [`MAX_LINE_BYTES`]) and never held whole in memory.
use crate::digest::Digest;
use crate::error::{Error, Result};
use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;

/// The first line of every have-list this ferry writes and reads.
pub const HEADER: &str = "# ferry have v1";
/// A have-list is at most this many bytes (some 230 000 digest lines).
pub const MAX_HAVE_BYTES: u64 = 16 << 20;
/// ... and at most this many lines, comments and blank lines included.
pub const MAX_HAVE_LINES: u64 = 1 << 20;
/// One line is at most this many bytes (a digest line is 71, a chain line 77).
pub const MAX_LINE_BYTES: u64 = 4096;

const CHAIN_PREFIX: &str = "chain ";

/// What a target holds: blobs by digest, layer stacks by chain ID.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HaveList {
    pub blobs: BTreeSet<Digest>,
    pub chains: BTreeSet<Digest>,
}

impl HaveList {
    pub fn is_empty(&self) -> bool {
        self.blobs.is_empty() && self.chains.is_empty()
    }

    pub fn merge(&mut self, other: HaveList) {
        self.blobs.extend(other.blobs);
        self.chains.extend(other.chains);
    }

    /// Add the chain IDs of a layer stack given by its diff_ids, bottom first.
    pub fn add_chains(&mut self, diff_ids: &[Digest]) {
        self.chains.extend(chain_ids(diff_ids));
    }

    /// Write the list: the header, `comments` (one `#` line each, control
    /// characters replaced so a name cannot start a line of its own), blobs,
    /// then chains, each sorted.
    pub fn write_to(&self, out: &mut dyn Write, comments: &[String]) -> std::io::Result<()> {
        writeln!(out, "{HEADER}")?;
        for comment in comments {
            let clean: String = comment.chars().map(|c| if c.is_control() { '?' } else { c }).collect();
            writeln!(out, "# {clean}")?;
        }
        for blob in &self.blobs {
            writeln!(out, "{blob}")?;
        }
        for chain in &self.chains {
            writeln!(out, "{CHAIN_PREFIX}{chain}")?;
        }
        out.flush()
    }
}

/// The layer chain IDs of a stack (OCI image spec, "ChainID"):
/// chain(0) = diff(0), chain(n) = sha256(chain(n-1) + " " + diff(n)).
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut chains: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chains.last() {
            None => diff_id.clone(),
            Some(parent) => Digest::of_bytes(format!("{parent} {diff_id}").as_bytes()),
        };
        chains.push(next);
    }
    chains
}

/// Read the have-list file at `path` (see [`parse`]).
pub fn read_file(path: &Path) -> Result<HaveList> {
    read_file_hashed(path).map(|(list, _)| list)
}

/// [`read_file`], with the digest of the bytes parsed (hashed as they are read).
pub fn read_file_hashed(path: &Path) -> Result<(HaveList, crate::digest::Digest)> {
    let name = path.display().to_string();
    // Opened without blocking and checked before reading: a FIFO or device planted
    // as a have-list is refused, not read for ever.
    let file = match ferry_transports::local_file::open_regular(path) {
        Ok(Ok(file)) => file,
        Ok(Err(kind)) => return Err(refused(format!("{name}: a have-list must be a regular file (it is {kind})"))),
        Err(e) => return Err(Error::io(format!("opening the have-list {name}"), e)),
    };
    let meta = file.metadata().map_err(|e| Error::io(format!("reading the have-list {name}"), e))?;
    if meta.len() > MAX_HAVE_BYTES {
        return Err(too_large(&name));
    }
    let mut hashing = crate::digest::HashingReader::new(file);
    let list = parse(&mut hashing, &name)?;
    Ok((list, hashing.finish().0))
}

/// Parse a have-list, line by line, refusing anything that is not exactly
/// the format: a refusal names the line (`FILE:LINE: ...`) and is exit 2.
pub fn parse(reader: impl Read, name: &str) -> Result<HaveList> {
    // One byte more than allowed, to tell "at the bound" from "over it".
    let mut input = BufReader::new(reader.take(MAX_HAVE_BYTES + 1));
    let mut list = HaveList::default();
    let mut line = Vec::with_capacity(128);
    let mut number: u64 = 0;
    let mut total: u64 = 0;
    loop {
        line.clear();
        let n = (&mut input)
            .take(MAX_LINE_BYTES + 1)
            .read_until(b'\n', &mut line)
            .map_err(|e| Error::io(format!("reading the have-list {name}"), e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > MAX_HAVE_BYTES {
            return Err(too_large(name));
        }
        number += 1;
        if number > MAX_HAVE_LINES {
            return Err(refused(format!("{name}: more than {MAX_HAVE_LINES} lines: a have-list is at most that long")));
        }
        let at = |why: &str| refused(format!("{name}:{number}: {why}"));
        let text = match line.strip_suffix(b"\n") {
            Some(text) => text,
            None if n as u64 > MAX_LINE_BYTES => return Err(at(&format!("line longer than {MAX_LINE_BYTES} bytes"))),
            None => &line[..],
        };
        let text = std::str::from_utf8(text).map_err(|_| at("not UTF-8 text"))?;
        if text.contains('\r') {
            return Err(at("carriage return in the line (a have-list has Unix line ends)"));
        }
        if number == 1 {
            if text != HEADER {
                return Err(at(&format!("the first line must be \"{HEADER}\", not \"{}\"", excerpt(text))));
            }
            continue;
        }
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        let (set, digest) = match text.strip_prefix(CHAIN_PREFIX) {
            Some(chain) => (&mut list.chains, chain),
            None => (&mut list.blobs, text),
        };
        let digest = Digest::parse(digest).map_err(|_| {
            at(&format!("\"{}\" is not `sha256:<64 lowercase hex>`, `chain sha256:<64 lowercase hex>` or a # comment", excerpt(text)))
        })?;
        set.insert(digest);
    }
    if number == 0 {
        return Err(refused(format!("{name}:1: empty file: a have-list starts with \"{HEADER}\"")));
    }
    Ok(list)
}

/// The start of a hostile line, escaped, for a message.
fn excerpt(text: &str) -> String {
    let head: String = text.chars().take(80).collect();
    let more = if head.len() < text.len() { "..." } else { "" };
    format!("{}{more}", crate::untrusted::shown(&head))
}

fn too_large(name: &str) -> Error {
    refused(format!("{name}: larger than {} MiB: a have-list is at most that large", MAX_HAVE_BYTES >> 20))
}

fn refused(message: String) -> Error {
    Error::usage(message).with_hint("give a have-list written by `ferry have` (see docs/FORMAT.md); nothing was written")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> Digest {
        Digest::from_hex(&c.to_string().repeat(64)).unwrap()
    }

    fn parsed(text: &str) -> Result<HaveList> {
        parse(text.as_bytes(), "have.txt")
    }

    fn refusal(text: &str) -> String {
        let e = parsed(text).expect_err("must be refused");
        assert_eq!(e.kind().exit_code(), 2, "{e}");
        e.to_string()
    }

    #[test]
    fn chain_ids_follow_the_oci_definition() {
        let chains = chain_ids(&[d('a'), d('b'), d('c')]);
        assert_eq!(chains[0], d('a'));
        let second = Digest::of_bytes(format!("{} {}", d('a'), d('b')).as_bytes());
        assert_eq!(chains[1], second);
        assert_eq!(chains[2], Digest::of_bytes(format!("{second} {}", d('c')).as_bytes()));
        assert!(chain_ids(&[]).is_empty());
    }

    #[test]
    fn writes_what_it_reads() {
        let mut list = HaveList::default();
        list.blobs.insert(d('1'));
        list.blobs.insert(d('2'));
        list.add_chains(&[d('3'), d('4')]);
        let mut out = Vec::new();
        list.write_to(&mut out, &["from oci:/x\nsha256:evil".into()]).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("# ferry have v1\n# from oci:/x?sha256:evil\n"), "{text}");
        assert_eq!(parsed(&text).unwrap(), list);
    }

    #[test]
    fn accepts_comments_blank_lines_and_a_missing_final_newline() {
        let text = format!("{HEADER}\n# note\n\n{}\nchain {}", d('a'), d('b'));
        let list = parsed(&text).unwrap();
        assert_eq!(list.blobs.into_iter().collect::<Vec<_>>(), vec![d('a')]);
        assert_eq!(list.chains.into_iter().collect::<Vec<_>>(), vec![d('b')]);
    }

    #[test]
    fn refuses_a_wrong_or_missing_header() {
        assert!(refusal("").contains("have.txt:1: empty file"));
        assert!(refusal(&format!("{}\n", d('a'))).contains("have.txt:1: the first line must be"));
        assert!(refusal("# ferry have v2\n").contains("have.txt:1:"));
    }

    #[test]
    fn refuses_malformed_lines_naming_them() {
        let bad = [
            format!("{}\n", d('a').as_str().to_uppercase()),
            format!("sha512:{}\n", "a".repeat(128)),
            format!("{} \n", d('a')),
            format!(" {}\n", d('a')),
            format!("chain  {}\n", d('a')),
            format!("chain {}\r\n", d('a')),
            format!("sha256:{}\n", "a".repeat(63)),
            "blob sha256:00\n".to_string(),
        ];
        for line in bad {
            let msg = refusal(&format!("{HEADER}\n# fine\n{line}"));
            assert!(msg.starts_with("have.txt:3: "), "{line:?}: {msg}");
        }
        let msg = refusal(&format!("{HEADER}\n\u{1b}[2Jhello\n"));
        assert!(!msg.contains('\u{1b}'), "escape sequences are not echoed: {msg:?}");
    }

    #[test]
    fn refuses_non_utf8_and_overlong_lines() {
        let mut bytes = format!("{HEADER}\n").into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n");
        assert!(parse(&bytes[..], "h").unwrap_err().to_string().starts_with("h:2: not UTF-8"));
        let long = format!("{HEADER}\n#{}\n", "x".repeat(MAX_LINE_BYTES as usize));
        assert!(refusal(&long).starts_with("have.txt:2: line longer than 4096 bytes"));
    }

    #[test]
    fn refuses_too_many_lines_and_too_many_bytes() {
        let lines = format!("{HEADER}\n{}", "\n".repeat(MAX_HAVE_LINES as usize));
        assert!(refusal(&lines).contains("more than 1048576 lines"));
        let comment = format!("#{}\n", "x".repeat(4000));
        let bytes = format!("{HEADER}\n{}", comment.repeat((MAX_HAVE_BYTES / 4000) as usize + 1));
        assert!(refusal(&bytes).contains("larger than 16 MiB"));
    }
}
