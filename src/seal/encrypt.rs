//! Streaming age encryption and decryption.
//!
//! Encryption wraps any `Write` ([`encrypt_writer`], [`encrypt_writer_passphrase`]);
//! call [`EncryptWriter::finish`] at the end, or the output is truncated (and
//! decryption will say so). Decryption wraps any `Read` ([`decrypt_reader`],
//! [`AgeInput`]). age's STREAM construction authenticates every 64 KiB chunk and
//! marks the last one, so truncated or corrupted input makes `read` fail with an
//! `io::Error` carrying [`SealError::Truncated`] or [`SealError::Corrupt`]
//! (find it with [`SealError::from_io`]); it never yields short output silently.
//! Errors of the underlying reader come out unchanged.
//!
//! Memory stays flat: one 64 KiB chunk plus a read buffer.

use std::fmt;
use std::io::{self, BufReader, Chain, Cursor, Read, Write};

use age::secrecy::{ExposeSecret, SecretString};

use super::age_keys::{Identity, Recipient};
use super::error::{Result, SealError};
use super::header::{read_header, AgeHeaderInfo};
use super::limits::DEFAULT_MAX_SCRYPT_WORK_FACTOR;
use super::secret;

/// Read buffer in front of the encrypted input.
const READ_BUFFER: usize = 256 * 1024;

/// An encrypting writer. Call [`finish`](Self::finish) when done.
pub struct EncryptWriter<W: Write> {
    inner: age::stream::StreamWriter<W>,
}

impl<W: Write> Write for EncryptWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.inner.write(buf)
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> EncryptWriter<W> {
    /// Writes the final chunk and returns the underlying writer (not flushed
    /// beyond what age does: flush or sync it yourself).
    pub fn finish(self) -> io::Result<W> {
        self.inner.finish()
    }
}

impl<W: Write> fmt::Debug for EncryptWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EncryptWriter")
    }
}

/// Encrypts to `recipients` (X25519 and/or SSH keys), writing the age header
/// to `output` at once.
pub fn encrypt_writer<W: Write>(recipients: &[Recipient], output: W) -> Result<EncryptWriter<W>> {
    if recipients.is_empty() {
        return Err(SealError::NoRecipients);
    }
    let enc =
        age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_age())).map_err(|e| SealError::Encrypt { reason: e.to_string() })?;
    let inner = enc.wrap_output(output).map_err(|source| SealError::Stream { action: "cannot write the encrypted output", source })?;
    Ok(EncryptWriter { inner })
}

/// Encrypts with a passphrase (scrypt, work factor tuned to ~1 s on this machine,
/// as `age -p` does).
pub fn encrypt_writer_passphrase<W: Write>(passphrase: &SecretString, output: W) -> Result<EncryptWriter<W>> {
    if passphrase.expose_secret().is_empty() {
        return Err(SealError::EmptySecret { what: "passphrase" });
    }
    let enc = age::Encryptor::with_user_passphrase(SecretString::from(passphrase.expose_secret().to_owned()));
    let inner = enc.wrap_output(output).map_err(|source| SealError::Stream { action: "cannot write the encrypted output", source })?;
    Ok(EncryptWriter { inner })
}

/// Carries an error of the underlying reader through age untouched, so it is not
/// mistaken for a decryption failure.
#[derive(Debug)]
struct Passthrough(io::Error);

impl fmt::Display for Passthrough {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}
impl std::error::Error for Passthrough {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

fn unwrap_passthrough(e: io::Error) -> std::result::Result<io::Error, io::Error> {
    if e.get_ref().is_some_and(|i| i.is::<Passthrough>()) {
        let inner = e.into_inner().expect("checked").downcast::<Passthrough>().expect("checked");
        Ok(inner.0)
    } else {
        Err(e)
    }
}

struct MarkErrors<R>(R);

impl<R: Read> Read for MarkErrors<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(|e| if e.kind() == io::ErrorKind::Interrupted { e } else { io::Error::new(e.kind(), Passthrough(e)) })
    }
}

type Inner<R> = Chain<Cursor<Vec<u8>>, BufReader<MarkErrors<R>>>;

/// A decrypting reader. `read` fails with an `io::Error` carrying a
/// [`SealError`] (`Truncated` or `Corrupt`) when the stream is not intact.
pub struct DecryptReader<R: Read> {
    inner: age::stream::StreamReader<Inner<R>>,
}

impl<R: Read> fmt::Debug for DecryptReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DecryptReader")
    }
}

impl<R: Read> Read for DecryptReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| match unwrap_passthrough(e) {
            Ok(original) => original,
            Err(e) => match e.kind() {
                io::ErrorKind::UnexpectedEof => SealError::Truncated.into(),
                io::ErrorKind::InvalidData => SealError::Corrupt.into(),
                _ => e,
            },
        })
    }
}

/// An age input whose header has been read: see to whom it is encrypted, then
/// decrypt with identities or a passphrase.
pub struct AgeInput<R: Read> {
    info: AgeHeaderInfo,
    raw_header: Vec<u8>,
    rest: BufReader<MarkErrors<R>>,
    /// The highest scrypt work factor (log2) a passphrase may be run through.
    max_work_factor: u8,
}

impl<R: Read> fmt::Debug for AgeInput<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeInput({})", self.info)
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Identities,
    Passphrase { max_work_factor: u8 },
}

fn describe_identities(ids: &[Identity]) -> String {
    let parts: Vec<String> = ids.iter().map(|i| format!("{} from {}", i.kind(), i.source())).collect();
    parts.join("; ")
}

impl<R: Read> AgeInput<R> {
    /// Reads the age header from `input` (no key needed).
    pub fn open(input: R) -> Result<AgeInput<R>> {
        let mut rest = BufReader::with_capacity(READ_BUFFER, MarkErrors(input));
        let (raw_header, info) = read_header(&mut rest).map_err(|e| match e {
            SealError::Stream { action, source } => match unwrap_passthrough(source) {
                Ok(original) => SealError::Stream { action, source: original },
                Err(source) => SealError::Stream { action, source },
            },
            other => other,
        })?;
        Ok(AgeInput { info, raw_header, rest, max_work_factor: DEFAULT_MAX_SCRYPT_WORK_FACTOR })
    }

    /// Accept scrypt work factors up to 2^`log_n` instead of the default
    /// [`DEFAULT_MAX_SCRYPT_WORK_FACTOR`] (see module `limits`).
    pub fn with_max_scrypt_work_factor(mut self, log_n: u8) -> Self {
        self.max_work_factor = log_n;
        self
    }

    /// Refuses a scrypt stanza above the limit before any passphrase is asked
    /// for or run through scrypt.
    fn check_work_factor(&self) -> Result<()> {
        match self.info.scrypt_work_factor {
            Some(required) if required > u32::from(self.max_work_factor) => {
                Err(SealError::ExcessiveWork { required, limit: self.max_work_factor })
            }
            _ => Ok(()),
        }
    }

    /// What the header says about the recipients.
    pub fn header(&self) -> &AgeHeaderInfo {
        &self.info
    }

    /// True if encrypted with a passphrase rather than to recipients.
    pub fn is_passphrase(&self) -> bool {
        self.info.is_passphrase()
    }

    fn decryptor(self) -> Result<(age::Decryptor<Inner<R>>, AgeHeaderInfo)> {
        let AgeInput { info, raw_header, rest, max_work_factor: _ } = self;
        let dec = age::Decryptor::new_buffered(Cursor::new(raw_header).chain(rest))
            .map_err(|e| map_decrypt_error(e, Mode::Identities, &info, &[]))?;
        Ok((dec, info))
    }

    /// Decrypts with identities (`-i`).
    pub fn decrypt(self, identities: &[Identity]) -> Result<DecryptReader<R>> {
        if self.info.is_passphrase() {
            return Err(SealError::PassphraseRequired);
        }
        if identities.is_empty() {
            return Err(SealError::NoIdentity { header: self.info.to_string() });
        }
        let (dec, info) = self.decryptor()?;
        let inner =
            dec.decrypt(identities.iter().map(|i| i.as_age())).map_err(|e| map_decrypt_error(e, Mode::Identities, &info, identities))?;
        Ok(DecryptReader { inner })
    }

    /// Decrypts a passphrase-encrypted input.
    pub fn decrypt_with_passphrase(self, passphrase: &SecretString) -> Result<DecryptReader<R>> {
        if !self.info.is_passphrase() {
            return Err(SealError::NotPassphraseEncrypted { header: self.info.to_string() });
        }
        self.check_work_factor()?;
        let max_work_factor = self.max_work_factor;
        let (dec, info) = self.decryptor()?;
        let mut id = age::scrypt::Identity::new(SecretString::from(passphrase.expose_secret().to_owned()));
        // Checked above already; the age crate's own cap is machine-dependent.
        id.set_max_work_factor(max_work_factor);
        let mode = Mode::Passphrase { max_work_factor };
        let inner = dec.decrypt(std::iter::once(&id as &dyn age::Identity)).map_err(|e| map_decrypt_error(e, mode, &info, &[]))?;
        Ok(DecryptReader { inner })
    }

    /// Decrypts with `identities`, or, if the input is passphrase-encrypted,
    /// with the passphrase from `FERRY_PASSPHRASE` or a terminal prompt (when
    /// `prompt_allowed`).
    pub fn decrypt_auto(self, identities: &[Identity], prompt_allowed: bool) -> Result<DecryptReader<R>> {
        if self.info.is_passphrase() {
            self.check_work_factor()?;
            let pass = secret::passphrase(false, prompt_allowed).map_err(|e| match e {
                SealError::SecretUnavailable { .. } => SealError::PassphraseRequired,
                other => other,
            })?;
            self.decrypt_with_passphrase(&pass)
        } else {
            self.decrypt(identities)
        }
    }
}

fn map_decrypt_error(e: age::DecryptError, mode: Mode, info: &AgeHeaderInfo, ids: &[Identity]) -> SealError {
    use age::DecryptError as D;
    match e {
        D::Io(io) => match unwrap_passthrough(io) {
            Ok(original) => SealError::Stream { action: "cannot read the encrypted data", source: original },
            Err(io) if io.kind() == io::ErrorKind::UnexpectedEof => SealError::Truncated,
            Err(io) => SealError::MalformedHeader { reason: io.to_string() },
        },
        D::InvalidHeader => SealError::MalformedHeader { reason: "a recipient stanza is malformed".into() },
        D::InvalidMac => SealError::MalformedHeader { reason: "the header MAC does not match (the header was modified)".into() },
        D::NoMatchingKeys => SealError::NoMatchingIdentity { tried: describe_identities(ids), header: info.to_string() },
        D::DecryptionFailed if matches!(mode, Mode::Passphrase { .. }) => SealError::WrongPassphrase,
        D::DecryptionFailed => {
            SealError::Decrypt { reason: "the recipient stanza for the given identity does not decrypt (corrupted header)".into() }
        }
        D::ExcessiveWork { required, .. } => SealError::ExcessiveWork {
            required: required.into(),
            limit: match mode {
                Mode::Passphrase { max_work_factor } => max_work_factor,
                Mode::Identities => DEFAULT_MAX_SCRYPT_WORK_FACTOR,
            },
        },
        D::KeyDecryptionFailed => SealError::Decrypt { reason: "the identity itself could not be decrypted".into() },
        // The version line was checked when the header was read: the rest of
        // the header did not parse.
        D::UnknownFormat => SealError::MalformedHeader { reason: "it is not a well-formed age v1 header".into() },
        #[allow(unreachable_patterns)]
        other => SealError::Decrypt { reason: other.to_string() },
    }
}

/// Reads the header of `input` and decrypts it with `identities`.
pub fn decrypt_reader<R: Read>(input: R, identities: &[Identity]) -> Result<DecryptReader<R>> {
    AgeInput::open(input)?.decrypt(identities)
}

/// Reads the header of `input` and decrypts it with `passphrase`.
pub fn decrypt_reader_passphrase<R: Read>(input: R, passphrase: &SecretString) -> Result<DecryptReader<R>> {
    AgeInput::open(input)?.decrypt_with_passphrase(passphrase)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::age_keys::parse_identities;
    use std::path::Path;

    fn identity() -> (Identity, Recipient) {
        let id = age::x25519::Identity::generate();
        let text = format!("{}\n", id.to_string().expose_secret());
        let mut ids = parse_identities(&text, Path::new("test.age")).unwrap();
        let ident = ids.remove(0);
        let r = ident.to_recipient().unwrap();
        (ident, r)
    }

    fn encrypt(data: &[u8], r: &Recipient) -> Vec<u8> {
        let mut w = encrypt_writer(std::slice::from_ref(r), Vec::new()).unwrap();
        w.write_all(data).unwrap();
        w.finish().unwrap()
    }

    fn read_all<R: Read>(mut r: R) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        r.read_to_end(&mut v)?;
        Ok(v)
    }

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 % 251) as u8).collect()
    }

    #[test]
    fn round_trip_sizes_around_chunk_boundaries() {
        let (id, r) = identity();
        for n in [0, 1, 65535, 65536, 65537, 3 * 65536, 200_000] {
            let data = pattern(n);
            let ct = encrypt(&data, &r);
            let pt = read_all(decrypt_reader(&ct[..], std::slice::from_ref(&id)).unwrap()).unwrap();
            assert_eq!(pt, data, "size {n}");
        }
    }

    #[test]
    fn every_truncation_is_an_error() {
        let (id, r) = identity();
        let data = pattern(2 * 65536 + 100);
        let ct = encrypt(&data, &r);
        let header_len = ct.windows(4).position(|w| w == b"--- ").unwrap();
        // Cut at chunk boundaries, inside chunks, inside the nonce and the header.
        let chunk = 65536 + 16;
        let body = header_len + 44 + 16 + 1; // after "--- " + mac + "\n" + nonce (approximately)
        for cut in [ct.len() - 1, ct.len() - 17, body + chunk, body + 2 * chunk - 3, body + 10, header_len + 50, 40, 10] {
            let res = AgeInput::open(&ct[..cut]).and_then(|i| i.decrypt(std::slice::from_ref(&id)));
            match res {
                Err(e) => assert!(e.is_integrity_failure(), "cut {cut}: {e}"),
                Ok(reader) => {
                    let err = read_all(reader).expect_err(&format!("cut {cut} must fail"));
                    let se = SealError::from_io(&err).unwrap_or_else(|| panic!("cut {cut}: {err}"));
                    assert!(matches!(se, SealError::Truncated | SealError::Corrupt), "cut {cut}: {se}");
                }
            }
        }
    }

    #[test]
    fn chunk_boundary_truncation_is_reported_as_truncated() {
        let (id, r) = identity();
        let data = pattern(3 * 65536);
        let ct = encrypt(&data, &r);
        // The payload is 3 full chunks + an empty final chunk? No: age makes the
        // third full chunk the last one. Cutting one whole chunk off leaves two
        // full non-final chunks.
        let cut = ct.len() - (65536 + 16);
        let err = read_all(decrypt_reader(&ct[..cut], std::slice::from_ref(&id)).unwrap()).unwrap_err();
        assert!(matches!(SealError::from_io(&err), Some(SealError::Truncated)), "{err}");
    }

    #[test]
    fn flipped_bit_is_corrupt() {
        let (id, r) = identity();
        let mut ct = encrypt(&pattern(100_000), &r);
        let n = ct.len();
        ct[n - 500] ^= 1;
        let err = read_all(decrypt_reader(&ct[..], std::slice::from_ref(&id)).unwrap()).unwrap_err();
        assert!(matches!(SealError::from_io(&err), Some(SealError::Corrupt)), "{err}");
    }

    #[test]
    fn wrong_identity_no_identity_not_age() {
        let (_, r) = identity();
        let (other, _) = identity();
        let ct = encrypt(b"hello", &r);
        let e = decrypt_reader(&ct[..], std::slice::from_ref(&other)).unwrap_err();
        assert!(matches!(e, SealError::NoMatchingIdentity { .. }), "{e}");
        assert!(e.is_integrity_failure());
        assert!(e.to_string().contains("1 recipient: X25519"), "{e}");
        assert!(e.to_string().contains("test.age"), "{e}");
        let e = decrypt_reader(&ct[..], &[]).unwrap_err();
        assert!(matches!(e, SealError::NoIdentity { .. }), "{e}");
        assert!(!e.is_integrity_failure());
        let e = decrypt_reader(&b"\x28\xb5\x2f\xfdzstd data"[..], &[]).unwrap_err();
        assert!(matches!(e, SealError::NotAge), "{e}");
    }

    #[test]
    fn modified_header_is_refused() {
        let (id, r) = identity();
        let mut ct = encrypt(b"hello", &r);
        // Flip a character of the MAC.
        let p = ct.windows(4).position(|w| w == b"--- ").unwrap() + 5;
        ct[p] = if ct[p] == b'A' { b'B' } else { b'A' };
        let e = decrypt_reader(&ct[..], std::slice::from_ref(&id)).unwrap_err();
        assert!(e.is_integrity_failure(), "{e}");
    }

    #[test]
    fn underlying_read_errors_pass_through() {
        struct Failing<'a>(&'a [u8], usize);
        impl Read for Failing<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.1 >= self.0.len() {
                    return Err(io::Error::new(io::ErrorKind::InvalidData, "disk on fire"));
                }
                let n = buf.len().min(self.0.len() - self.1).min(4096);
                buf[..n].copy_from_slice(&self.0[self.1..self.1 + n]);
                self.1 += n;
                Ok(n)
            }
        }
        let (id, r) = identity();
        let ct = encrypt(&pattern(300_000), &r);
        let reader = decrypt_reader(Failing(&ct[..200_000], 0), std::slice::from_ref(&id)).unwrap();
        let err = read_all(reader).unwrap_err();
        assert!(SealError::from_io(&err).is_none(), "{err}");
        assert_eq!(err.to_string(), "disk on fire");
    }

    #[test]
    fn passphrase_round_trip_and_wrong_passphrase() {
        let pass = SecretString::from("correct horse".to_string());
        let mut w = encrypt_writer_passphrase(&pass, Vec::new()).unwrap();
        w.write_all(b"secret data").unwrap();
        let ct = w.finish().unwrap();
        let input = AgeInput::open(&ct[..]).unwrap();
        assert!(input.is_passphrase());
        assert_eq!(input.header().to_string(), "passphrase (scrypt)");
        let pt = read_all(input.decrypt_with_passphrase(&pass).unwrap()).unwrap();
        assert_eq!(pt, b"secret data");
        let e = decrypt_reader_passphrase(&ct[..], &SecretString::from("nope".to_string())).unwrap_err();
        assert!(matches!(e, SealError::WrongPassphrase), "{e}");
        let (id, _) = identity();
        let e = decrypt_reader(&ct[..], std::slice::from_ref(&id)).unwrap_err();
        assert!(matches!(e, SealError::PassphraseRequired), "{e}");
        assert!(e.to_string().contains("FERRY_PASSPHRASE"));
    }

    /// Encrypted with a passphrase at scrypt work factor 2^`log_n`.
    fn encrypt_with_work_factor(pass: &SecretString, log_n: u8) -> Vec<u8> {
        let mut r = age::scrypt::Recipient::new(pass.clone());
        r.set_work_factor(log_n);
        let enc = age::Encryptor::with_recipients(std::iter::once(&r as &dyn age::Recipient)).unwrap();
        let mut out = Vec::new();
        let mut w = enc.wrap_output(&mut out).unwrap();
        w.write_all(b"secret data").unwrap();
        w.finish().unwrap();
        out
    }

    #[test]
    fn scrypt_work_factor_is_capped_before_scrypt_runs() {
        let pass = SecretString::from("correct horse".to_string());
        let ct = encrypt_with_work_factor(&pass, 12);
        let pt = read_all(decrypt_reader_passphrase(&ct[..], &pass).unwrap()).unwrap();
        assert_eq!(pt, b"secret data");
        // Lowered below the file's factor: refused.
        let e = AgeInput::open(&ct[..]).unwrap().with_max_scrypt_work_factor(11).decrypt_with_passphrase(&pass).unwrap_err();
        assert!(matches!(e, SealError::ExcessiveWork { required: 12, limit: 11 }), "{e}");
        assert!(e.is_integrity_failure());
        // A stanza edited to ask for 2^40 (MAC not recomputed): the cap fires
        // first, at once, and before a passphrase is asked for.
        let edited = String::from_utf8_lossy(&ct[..60]).replacen(" 12\n", " 40\n", 1);
        let ct40 = [edited.as_bytes(), &ct[60..]].concat();
        let start = std::time::Instant::now();
        let e = decrypt_reader_passphrase(&ct40[..], &pass).unwrap_err();
        assert!(matches!(e, SealError::ExcessiveWork { required: 40, limit: 22 }), "{e}");
        let e = AgeInput::open(&ct40[..]).unwrap().decrypt_auto(&[], false).unwrap_err();
        assert!(matches!(e, SealError::ExcessiveWork { required: 40, .. }), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(2));
        assert!(e.hint().unwrap().contains("FERRY_MAX_SCRYPT_WORK_FACTOR"));
    }

    #[test]
    fn no_recipients_refused() {
        assert!(matches!(encrypt_writer(&[], Vec::new()), Err(SealError::NoRecipients)));
    }
}
