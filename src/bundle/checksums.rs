//! `STEM.sha256`: GNU coreutils format, one line per artifact file, so that
//! `sha256sum -c STEM.sha256` checks a bundle without ferry.
use crate::error::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumLine {
    pub hex: String,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChecksumFile {
    /// `#` comment lines (sha256sum -c skips them), written first: the parity geometry.
    pub comments: Vec<String>,
    pub lines: Vec<ChecksumLine>,
}

impl ChecksumFile {
    pub fn render(&self) -> String {
        let comments = self.comments.iter().map(|c| format!("{c}\n"));
        comments.chain(self.lines.iter().map(|l| format!("{}  {}\n", l.hex, l.name))).collect()
    }

    /// Parse, refusing anything that could make ferry read outside the bundle.
    pub fn parse(text: &[u8], file: &str) -> Result<ChecksumFile> {
        let bad = |why: String| Error::integrity(format!("{file}: {why}"));
        let text = std::str::from_utf8(text).map_err(|_| bad("not UTF-8 text".into()))?;
        let mut lines = Vec::new();
        let mut comments = Vec::new();
        for (n, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            if line.starts_with('#') {
                comments.push(line.to_string());
                continue;
            }
            let (hex, rest) = line.split_once(' ').ok_or_else(|| bad(format!("line {} is not \"<sha256>  <file>\"", n + 1)))?;
            // "  name" (text mode) or " *name" (binary mode)
            let name =
                rest.strip_prefix(' ').or_else(|| rest.strip_prefix('*')).ok_or_else(|| bad(format!("line {} is malformed", n + 1)))?;
            if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad(format!("line {} has no sha256 checksum", n + 1)));
            }
            // Only names ferry writes: nothing that leaves the directory, nothing that
            // could rewrite a terminal when a message shows it.
            if !super::names::is_plain_name(name) {
                return Err(bad(format!("line {} names \"{}\", which is not a file of this bundle", n + 1, crate::untrusted::shown(name))));
            }
            lines.push(ChecksumLine { hex: hex.to_ascii_lowercase(), name: name.to_string() });
        }
        if lines.is_empty() {
            return Err(bad("lists no files".into()));
        }
        Ok(ChecksumFile { comments, lines })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn round_trip_and_hostile_names() {
        let f =
            ChecksumFile { comments: vec!["# a note".into()], lines: vec![ChecksumLine { hex: "a".repeat(64), name: "x.tar.zst".into() }] };
        assert_eq!(ChecksumFile::parse(f.render().as_bytes(), "x").unwrap(), f);
        let evil = format!("{}  ../etc/passwd\n", "a".repeat(64));
        assert!(ChecksumFile::parse(evil.as_bytes(), "x").is_err());
        for hostile in ["x.tar\u{1b}[2J", "x.ta\rr", "-x.tar", "x tar"] {
            let line = format!("{}  {hostile}\n", "a".repeat(64));
            let e = ChecksumFile::parse(line.as_bytes(), "x").unwrap_err().to_string();
            assert!(!e.contains('\u{1b}') && !e.contains('\r'), "{e}");
        }
        let bin = format!("{} *x.tar\n", "b".repeat(64));
        assert_eq!(ChecksumFile::parse(bin.as_bytes(), "x").unwrap().lines[0].name, "x.tar");
    }
}
