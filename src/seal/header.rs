//! Reading the age header without any key: is this age, and to whom is it
//! encrypted (for `inspect`, and for messages when decryption is impossible).
//!
//! Format (c2sp.org/age): `age-encryption.org/v1\n`, then stanzas
//! `-> TYPE ARGS...\n` each followed by base64 body lines of 64 columns ending
//! with a shorter (possibly empty) line, then `--- MAC\n`.
//!
//! The header comes from whoever wrote the file: it is read within
//! [`MAX_HEADER_BYTES`] and [`MAX_STANZAS`] (module `limits`), by ferry, before
//! the age crate sees any of it.

use std::fmt;
use std::io::BufRead;

use super::base64;
use super::error::{Result, SealError};
use super::limits::{MAX_HEADER_BYTES, MAX_STANZAS};

/// The first line of every binary age file.
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";
const AGE_PREFIX: &[u8] = b"age-encryption.org/";
/// The first line of an ASCII-armored age file (`age -a`).
const ARMOR_BEGIN: &[u8] = b"-----BEGIN AGE ENCRYPTED FILE-----";

/// Where a truncated header ends, for [`SealError::TruncatedHeader`].
const IN_VERSION_LINE: &str = "in the middle of the header's first line";
const IN_STANZA: &str = "in the middle of a recipient stanza";
const BEFORE_MAC: &str = "before the header's MAC line";
const IN_MAC: &str = "in the middle of the header's MAC line";

/// True if `header_bytes` (the first bytes of a file; 32 are plenty) start like
/// a binary age file. ASCII-armored age files are not age files for ferry.
pub fn is_age(header_bytes: &[u8]) -> bool {
    header_bytes.starts_with(AGE_PREFIX)
}

/// True if `header_bytes` start like an ASCII-armored age file (leading
/// whitespace allowed, as age allows it).
pub fn is_armored_age(header_bytes: &[u8]) -> bool {
    let text = header_bytes.trim_ascii_start();
    text.starts_with(ARMOR_BEGIN)
}

/// What an age header says about its recipients.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AgeHeaderInfo {
    /// Stanza types in header order (`X25519`, `ssh-ed25519`, `ssh-rsa`,
    /// `scrypt`, or a plugin's), without "grease" stanzas.
    pub stanzas: Vec<String>,
    /// The work factor (log2 of N) a scrypt stanza asks for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scrypt_work_factor: Option<u32>,
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
    SealError::MalformedHeader { reason: reason.to_string() }
}

/// A stanza's type as shown in messages (it comes from the file: printable
/// ASCII, but possibly long).
fn shown_type(tag: &str) -> String {
    match tag.char_indices().nth(32) {
        Some((cut, _)) => format!("{}...", &tag[..cut]),
        None => tag.to_string(),
    }
}

/// Reads one line (with its `\n`) into `raw`, returning it without the `\n`.
/// `at` says where the header is cut if the input ends here.
fn next_line<R: BufRead>(r: &mut R, raw: &mut Vec<u8>, at: &'static str) -> Result<std::ops::Range<usize>> {
    let start = raw.len();
    // One byte past the limit, to tell "too long" from "exactly at the limit".
    let room = (MAX_HEADER_BYTES - start.min(MAX_HEADER_BYTES)) as u64 + 1;
    std::io::Read::take(&mut *r, room)
        .read_until(b'\n', raw)
        .map_err(|source| SealError::Stream { action: "cannot read the age header", source })?;
    if raw.len() > MAX_HEADER_BYTES {
        return Err(SealError::HeaderTooLong { limit: MAX_HEADER_BYTES });
    }
    if raw.last() != Some(&b'\n') || raw.len() == start {
        let partial = &raw[start..];
        let at = if partial.starts_with(b"-> ") {
            IN_STANZA
        } else if partial.starts_with(b"--- ") {
            IN_MAC
        } else {
            at
        };
        return Err(SealError::TruncatedHeader { at });
    }
    Ok(start..raw.len() - 1)
}

/// The work factor of a scrypt stanza's arguments (`SALT LOG2N`, decimal
/// without leading zeros).
fn scrypt_work_factor(args: &[&[u8]]) -> Result<u32> {
    let bad = || malformed("the scrypt stanza does not give a valid work factor");
    let [_salt, log_n] = args else { return Err(bad()) };
    if log_n.len() > 9 || log_n.starts_with(b"0") || !log_n.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(log_n).ok().and_then(|n| n.parse().ok()).ok_or_else(bad)
}

/// Reads the header from `r` up to and including the `--- MAC` line, returning
/// the raw header bytes (to hand on to the decryptor) and what it says.
/// Leaves `r` positioned at the payload nonce.
///
/// Reads at most [`MAX_HEADER_BYTES`] and [`MAX_STANZAS`] stanzas, and checks
/// the structure the age crate would otherwise report vaguely (stanza
/// arguments, base64 bodies), so that the crate only ever sees a small,
/// well-formed header.
pub fn read_header<R: BufRead>(r: &mut R) -> Result<(Vec<u8>, AgeHeaderInfo)> {
    let head = r.fill_buf().map_err(|source| SealError::Stream { action: "cannot read the age header", source })?;
    if is_armored_age(head) {
        return Err(SealError::Armored);
    }
    let mut raw = Vec::with_capacity(512);
    // The version line, read with a bound so that non-age data is rejected at once.
    std::io::Read::take(&mut *r, AGE_MAGIC.len() as u64)
        .read_until(b'\n', &mut raw)
        .map_err(|source| SealError::Stream { action: "cannot read the age header", source })?;
    if raw != AGE_MAGIC {
        if raw.starts_with(AGE_PREFIX) && raw.len() == AGE_MAGIC.len() {
            return Err(malformed("unsupported age format version; a newer ferry may be needed"));
        }
        if AGE_MAGIC.starts_with(&raw) && !raw.is_empty() {
            return Err(SealError::TruncatedHeader { at: IN_VERSION_LINE });
        }
        return Err(SealError::NotAge);
    }
    let mut stanzas = Vec::new();
    let mut count = 0;
    let mut scrypt = None;
    let mut line = next_line(r, &mut raw, BEFORE_MAC)?;
    loop {
        let text = &raw[line.clone()];
        if text.starts_with(b"--- ") {
            break;
        }
        if !text.starts_with(b"-> ") {
            return Err(malformed("expected a recipient stanza or the MAC line"));
        }
        count += 1;
        if count > MAX_STANZAS {
            return Err(SealError::TooManyStanzas { limit: MAX_STANZAS });
        }
        let args: Vec<&[u8]> = text[3..].split(|&b| b == b' ').collect();
        if args.iter().any(|a| a.is_empty() || !a.iter().all(u8::is_ascii_graphic)) {
            return Err(malformed(&format!("recipient stanza {count} has an empty or unprintable argument")));
        }
        // Printable ASCII, checked above.
        let tag = String::from_utf8_lossy(args[0]).into_owned();
        if tag == "scrypt" {
            scrypt = Some(scrypt_work_factor(&args[1..])?);
        }
        // Body: full 64-column lines, ended by a shorter one.
        loop {
            let body = next_line(r, &mut raw, IN_STANZA)?;
            let len = body.len();
            if len > 64 {
                return Err(malformed("a stanza body line is longer than 64 columns"));
            }
            if !base64::is_canonical_unpadded(&raw[body]) {
                return Err(malformed(&format!("the body of recipient stanza {count} ({}) is not valid base64", shown_type(&tag))));
            }
            if len < 64 {
                break;
            }
        }
        if !tag.ends_with("-grease") {
            stanzas.push(tag);
        }
        line = next_line(r, &mut raw, BEFORE_MAC)?;
    }
    if stanzas.is_empty() {
        return Err(malformed("the header has no recipient"));
    }
    Ok((raw, AgeHeaderInfo { stanzas, scrypt_work_factor: scrypt }))
}

/// Describes the recipients of an age header given its first bytes (the first
/// [`MAX_HEADER_BYTES`] are enough), without any key.
pub fn describe_recipients(header: &[u8]) -> Result<AgeHeaderInfo> {
    let mut r = header;
    read_header(&mut r).map(|(_, info)| info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(s: &[&str]) -> AgeHeaderInfo {
        AgeHeaderInfo { stanzas: s.iter().map(|s| s.to_string()).collect(), scrypt_work_factor: None }
    }

    #[test]
    fn display_forms() {
        assert_eq!(info(&["scrypt"]).to_string(), "passphrase (scrypt)");
        assert_eq!(info(&["X25519"]).to_string(), "1 recipient: X25519");
        assert_eq!(info(&["X25519", "ssh-ed25519"]).to_string(), "2 recipients: X25519, ssh-ed25519");
        assert_eq!(info(&["X25519", "ssh-rsa", "X25519"]).to_string(), "3 recipients: X25519 (2), ssh-rsa");
    }

    #[test]
    fn parses_header_with_multiline_body_and_grease() {
        let body64 = "A".repeat(64);
        let h =
            format!("age-encryption.org/v1\n-> X25519 abc\n{body64}\nAAA\n-> x-grease q\n\n-> ssh-ed25519 tag key\nBBBB\n--- mac\nNONCE");
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
        assert!(matches!(describe_recipients(b"\x28\xb5\x2f\xfd rest"), Err(SealError::NotAge)));
        assert!(matches!(describe_recipients(b""), Err(SealError::NotAge)));
    }

    #[test]
    fn truncated_and_malformed_headers() {
        assert!(matches!(describe_recipients(b"age-encryption.org/v1\n-> X25519 a\n"), Err(SealError::TruncatedHeader { at: IN_STANZA })));
        assert!(matches!(describe_recipients(b"age-encryption.org/v1\n-> X25519 a"), Err(SealError::TruncatedHeader { at: IN_STANZA })));
        assert!(matches!(
            describe_recipients(b"age-encryption.org/v1\n-> X25519 a\nAAAA\n"),
            Err(SealError::TruncatedHeader { at: BEFORE_MAC })
        ));
        assert!(matches!(
            describe_recipients(b"age-encryption.org/v1\n-> X25519 a\nAAAA\n--- mac"),
            Err(SealError::TruncatedHeader { at: IN_MAC })
        ));
        assert!(matches!(describe_recipients(b"age-encrypt"), Err(SealError::TruncatedHeader { at: IN_VERSION_LINE })));
        assert!(matches!(describe_recipients(b"age-encryption.org/v1\ngarbage\n--- x\n"), Err(SealError::MalformedHeader { .. })));
        assert!(matches!(describe_recipients(b"age-encryption.org/v2\n--- x\n"), Err(SealError::MalformedHeader { .. })));
        assert!(matches!(describe_recipients(b"age-encryption.org/v1\n--- x\n"), Err(SealError::MalformedHeader { .. })));
    }

    #[test]
    fn bounds_on_stanzas_and_size() {
        let stanzas = |n: usize| format!("age-encryption.org/v1\n{}--- mac\n", "-> X25519 a\nAAAA\n".repeat(n));
        assert!(describe_recipients(stanzas(MAX_STANZAS).as_bytes()).is_ok());
        assert!(matches!(describe_recipients(stanzas(MAX_STANZAS + 1).as_bytes()), Err(SealError::TooManyStanzas { limit: MAX_STANZAS })));
        // One long stanza: refused once the header passes the limit, whatever follows.
        let long =
            format!("age-encryption.org/v1\n-> X25519 a\n{}\n--- mac\n", format!("{}\n", "A".repeat(64)).repeat(2 * MAX_HEADER_BYTES / 65));
        assert!(matches!(describe_recipients(long.as_bytes()), Err(SealError::HeaderTooLong { limit: MAX_HEADER_BYTES })));
        // A header exactly at the limit is accepted: full body lines, then a
        // last one of the length left (an argument one longer when that length
        // is not a possible base64 length).
        let exact = |arg: &str| {
            let head = format!("age-encryption.org/v1\n-> X25519 {arg}\n");
            let tail = "\n--- mac\n";
            let room = MAX_HEADER_BYTES - head.len() - tail.len();
            let full = format!("{}\n", "A".repeat(64));
            let last = room % 65;
            (format!("{head}{}{}{tail}", full.repeat(room / 65), "A".repeat(last)), last)
        };
        let (header, last) = exact("a");
        let header = if last % 4 == 1 || last == 64 { exact("aa").0 } else { header };
        assert_eq!(header.len(), MAX_HEADER_BYTES);
        assert!(describe_recipients(header.as_bytes()).is_ok());
    }

    #[test]
    fn stanza_structure_is_checked() {
        let bad_base64 = b"age-encryption.org/v1\n-> X25519 a\nAA.A\n--- mac\n";
        let e = describe_recipients(bad_base64).unwrap_err();
        assert!(e.to_string().contains("the body of recipient stanza 1 (X25519) is not valid base64"), "{e}");
        let empty_arg = b"age-encryption.org/v1\n-> X25519  a\n\n--- mac\n";
        let e = describe_recipients(empty_arg).unwrap_err();
        assert!(e.to_string().contains("empty or unprintable argument"), "{e}");
        let scrypt = |wf: &str| format!("age-encryption.org/v1\n-> scrypt c2FsdA {wf}\nAAAA\n--- mac\n");
        assert_eq!(describe_recipients(scrypt("18").as_bytes()).unwrap().scrypt_work_factor, Some(18));
        assert_eq!(describe_recipients(scrypt("40").as_bytes()).unwrap().scrypt_work_factor, Some(40));
        for bad in ["018", "x", "1e3", "9999999999"] {
            assert!(matches!(describe_recipients(scrypt(bad).as_bytes()), Err(SealError::MalformedHeader { .. })), "{bad}");
        }
    }

    #[test]
    fn armored_is_recognised() {
        assert!(is_armored_age(b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl"));
        assert!(is_armored_age(b"\n  -----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(!is_armored_age(b"age-encryption.org/v1\n"));
        assert!(matches!(describe_recipients(b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n"), Err(SealError::Armored)));
    }

    #[test]
    fn real_headers() {
        use std::io::Write;
        let id = age::x25519::Identity::generate();
        let ssh: age::ssh::Recipient = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILe6Xz2dukVmi0T6Hb1uIcED+CkJda3iK0Ttoand/+3m".parse().unwrap();
        let pk = id.to_public();
        let enc = age::Encryptor::with_recipients([&pk as &dyn age::Recipient, &ssh].into_iter()).unwrap();
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).unwrap();
        w.write_all(b"x").unwrap();
        w.finish().unwrap();
        assert_eq!(describe_recipients(&out).unwrap().to_string(), "2 recipients: X25519, ssh-ed25519");
        assert!(is_age(&out));
    }
}
