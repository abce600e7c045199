//! Reading the age header without any key: is this age, and to whom is it
//! encrypted (for `inspect`, and for messages when decryption is impossible).
//!
//! Format (c2sp.org/age): `age-encryption.org/v1\n`, then stanzas
//! `-> TYPE ARGS...\n` each followed by base64 body lines of 64 columns ending
//! with a shorter (possibly empty) line, then `--- MAC\n`.

use std::fmt;
use std::io::BufRead;

use super::error::{Result, SealError};

/// The first line of every binary age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
const AGE_PREFIX: &[u8] = b"age-encryption.org/";
/// Upper bound on the header size we accept (real headers are well under 8 KiB
/// even with dozens of recipients).
pub const MAX_HEADER: usize = 1 << 20;

/// True if `header_bytes` (the first bytes of a file; 32 are plenty) start like
/// a binary age file. ASCII-armored age files are not age files for ferry.
pub fn is_age(header_bytes: &[u8]) -> bool {
    header_bytes.starts_with(AGE_PREFIX)
}

/// What an age header says about its recipients.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgeHeaderInfo {
    /// Stanza types in header order (`X25519`, `ssh-ed25519`, `ssh-rsa`,
    /// `scrypt`, or a plugin's), without "grease" stanzas.
    pub stanzas: Vec<String>,
}

impl AgeHeaderInfo {
    /// True if the file is encrypted with a passphrase (one scrypt stanza).
    pub fn is_passphrase(&self) -> bool {
        self.stanzas.iter().any(|s| s == "scrypt")
    }

    /// Number of recipients (stanzas).
    pub fn recipient_count(&self) -> usize {
        self.stanzas.len()
    }
}

/// `passphrase (scrypt)`, `1 recipient: X25519`, or
/// `3 recipients: X25519 (2), ssh-ed25519`.
impl fmt::Display for AgeHeaderInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_passphrase() {
            return write!(f, "passphrase (scrypt)");
        }
        let n = self.stanzas.len();
        write!(f, "{n} recipient{}: ", if n == 1 { "" } else { "s" })?;
        let mut seen: Vec<(&str, usize)> = Vec::new();
        for s in &self.stanzas {
            match seen.iter_mut().find(|(t, _)| *t == s.as_str()) {
                Some((_, c)) => *c += 1,
                None => seen.push((s.as_str(), 1)),
            }
        }
        for (i, (t, c)) in seen.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            if *c > 1 {
                write!(f, "{t} ({c})")?;
            } else {
                write!(f, "{t}")?;
            }
        }
        Ok(())
    }
}

fn malformed(reason: &str) -> SealError {
    SealError::MalformedHeader {
        reason: reason.to_string(),
    }
}

/// Reads one line (with its `\n`) into `raw`, returning it without the `\n`.
fn next_line<R: BufRead>(r: &mut R, raw: &mut Vec<u8>) -> Result<std::ops::Range<usize>> {
    let start = raw.len();
    let limit = (MAX_HEADER - start.min(MAX_HEADER)) as u64 + 1;
    let n = std::io::Read::take(&mut *r, limit)
        .read_until(b'\n', raw)
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::UnexpectedEof => SealError::Truncated,
            _ => SealError::Stream {
                action: "cannot read the age header",
                source,
            },
        })?;
    if raw.len() > MAX_HEADER {
        return Err(malformed("the header is too large"));
    }
    if n == 0 || raw.last() != Some(&b'\n') {
        return Err(SealError::Truncated);
    }
    Ok(start..raw.len() - 1)
}

/// Reads the header from `r` up to and including the `--- MAC` line, returning
/// the raw header bytes (to hand on to the decryptor) and what it says.
/// Leaves `r` positioned at the payload nonce.
pub fn read_header<R: BufRead>(r: &mut R) -> Result<(Vec<u8>, AgeHeaderInfo)> {
    let mut raw = Vec::with_capacity(512);
    // The version line, read with a bound so that non-age data is rejected at once.
    std::io::Read::take(&mut *r, AGE_MAGIC.len() as u64)
        .read_until(b'\n', &mut raw)
        .map_err(|source| SealError::Stream {
            action: "cannot read the age header",
            source,
        })?;
    if raw != AGE_MAGIC {
        if raw.starts_with(AGE_PREFIX) && raw.len() == AGE_MAGIC.len() {
            return Err(malformed(
                "unsupported age format version; a newer ferry may be needed",
            ));
        }
        if AGE_MAGIC.starts_with(&raw) && !raw.is_empty() {
            return Err(SealError::Truncated);
        }
        return Err(SealError::NotAge);
    }
    let mut stanzas = Vec::new();
    let mut line = next_line(r, &mut raw)?;
    loop {
        let text = &raw[line.clone()];
        if text.starts_with(b"--- ") {
            break;
        }
        if !text.starts_with(b"-> ") {
            return Err(malformed("expected a recipient stanza or the MAC line"));
        }
        let tag = text[3..].split(|&b| b == b' ').next().unwrap_or_default();
        if tag.is_empty() || !tag.iter().all(|b| b.is_ascii_graphic()) {
            return Err(malformed("a recipient stanza has no valid type"));
        }
        let tag = String::from_utf8_lossy(tag).into_owned();
        // Body: full 64-column lines, ended by a shorter one.
        loop {
            let body = next_line(r, &mut raw)?;
            let len = body.len();
            if len > 64 {
                return Err(malformed("a stanza body line is longer than 64 columns"));
            }
            if len < 64 {
                break;
            }
        }
        if !tag.ends_with("-grease") {
            stanzas.push(tag);
        }
        line = next_line(r, &mut raw)?;
    }
    if stanzas.is_empty() {
        return Err(malformed("the header has no recipient"));
    }
    Ok((raw, AgeHeaderInfo { stanzas }))
}

/// Describes the recipients of an age header given its first bytes (a few KiB
/// are enough), without any key.
pub fn describe_recipients(header: &[u8]) -> Result<AgeHeaderInfo> {
    let mut r = header;
    read_header(&mut r).map(|(_, info)| info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(s: &[&str]) -> AgeHeaderInfo {
        AgeHeaderInfo {
            stanzas: s.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn display_forms() {
        assert_eq!(info(&["scrypt"]).to_string(), "passphrase (scrypt)");
        assert_eq!(info(&["X25519"]).to_string(), "1 recipient: X25519");
        assert_eq!(
            info(&["X25519", "ssh-ed25519"]).to_string(),
            "2 recipients: X25519, ssh-ed25519"
        );
        assert_eq!(
            info(&["X25519", "ssh-rsa", "X25519"]).to_string(),
            "3 recipients: X25519 (2), ssh-rsa"
        );
    }

    #[test]
    fn parses_header_with_multiline_body_and_grease() {
        let body64 = "A".repeat(64);
        let h = format!(
            "age-encryption.org/v1\n-> X25519 abc\n{body64}\nAAA\n-> x-grease q\n\n-> ssh-ed25519 tag key\nBBBB\n--- mac\nNONCE"
        );
        let mut r = h.as_bytes();
        let (raw, i) = read_header(&mut r).unwrap();
        assert_eq!(i.stanzas, ["X25519", "ssh-ed25519"]);
        assert!(raw.ends_with(b"--- mac\n"));
        assert_eq!(r, b"NONCE");
    }

    #[test]
    fn is_age_and_not_age() {
        assert!(is_age(b"age-encryption.org/v1\n-> X25519"));
        assert!(!is_age(b"\x28\xb5\x2f\xfd"));
        assert!(!is_age(b"-----BEGIN AGE ENCRYPTED FILE-----"));
        assert!(!is_age(b""));
        assert!(matches!(
            describe_recipients(b"\x28\xb5\x2f\xfd rest"),
            Err(SealError::NotAge)
        ));
        assert!(matches!(describe_recipients(b""), Err(SealError::NotAge)));
    }

    #[test]
    fn truncated_and_malformed_headers() {
        assert!(matches!(
            describe_recipients(b"age-encryption.org/v1\n-> X25519 a\n"),
            Err(SealError::Truncated)
        ));
        assert!(matches!(
            describe_recipients(b"age-encryption.org/v1\ngarbage\n--- x\n"),
            Err(SealError::MalformedHeader { .. })
        ));
        assert!(matches!(
            describe_recipients(b"age-encryption.org/v2\n--- x\n"),
            Err(SealError::MalformedHeader { .. })
        ));
        assert!(matches!(
            describe_recipients(b"age-encryption.org/v1\n--- x\n"),
            Err(SealError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn real_headers() {
        use std::io::Write;
        let id = age::x25519::Identity::generate();
        let ssh: age::ssh::Recipient =
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILe6Xz2dukVmi0T6Hb1uIcED+CkJda3iK0Ttoand/+3m"
                .parse()
                .unwrap();
        let pk = id.to_public();
        let enc = age::Encryptor::with_recipients([&pk as &dyn age::Recipient, &ssh].into_iter())
            .unwrap();
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).unwrap();
        w.write_all(b"x").unwrap();
        w.finish().unwrap();
        assert_eq!(
            describe_recipients(&out).unwrap().to_string(),
            "2 recipients: X25519, ssh-ed25519"
        );
        assert!(is_age(&out));
    }
}
