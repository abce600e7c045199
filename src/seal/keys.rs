//! minisign keys: key ids, loading public and secret keys, and `ferry keygen`.
//!
//! Files are those of the minisign CLI: a secret key written by `minisign -G`
//! (password-protected, or unprotected with `-W`) loads here, and a key written
//! by [`generate`] works with `minisign -S -s ferry.key`.
//!
//! Age recipients and identities live in [`super::age_keys`] and are re-exported
//! here so that `seal::keys::*` covers every kind of key.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use age::secrecy::{ExposeSecret, SecretString};

use super::base64;
use super::error::{Result, SealError};
use super::secret::{self, read_key_file};

pub use super::age_keys::{load_identities, load_recipients_file, parse_identities, Identity, Recipient};

/// File names written by [`generate`].
pub const SECRET_KEY_FILE: &str = "ferry.key";
/// minisign public key file written by [`generate`].
pub const PUBLIC_KEY_FILE: &str = "ferry.pub";
/// age identity file written by [`generate`].
pub const AGE_IDENTITY_FILE: &str = "ferry.age";

const SECRET_KEY_BYTES: usize = 158; // sig alg, kdf alg, chk alg, salt, ops, mem, keynum, sk, chk
const PUBLIC_KEY_BYTES: usize = 42; // sig alg, keynum, pk
const KDF_NONE: [u8; 2] = [0, 0];
const KDF_SCRYPT: [u8; 2] = *b"Sc";
const SECRET_KEY_COMMENT: &str = "minisign encrypted secret key";

/// A minisign key id: 8 bytes, shown as minisign shows them (16 upper-case hex
/// digits of the little-endian number), e.g. `BC399CCC65F00E8C`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub u64);

impl KeyId {
    pub(crate) fn from_keynum(keynum: &[u8]) -> KeyId {
        let mut b = [0u8; 8];
        b.copy_from_slice(&keynum[..8]);
        KeyId(u64::from_le_bytes(b))
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // No zero padding: minisign writes `%" PRIX64`, e.g. B04969BF774F973.
        write!(f, "{:X}", self.0)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

impl FromStr for KeyId {
    type Err = SealError;
    fn from_str(s: &str) -> Result<KeyId> {
        let s = s.trim();
        if s.is_empty() || s.len() > 16 {
            return Err(SealError::InvalidKey {
                what: format!("{s:?}"),
                kind: "key id",
                reason: "a key id has 1 to 16 hexadecimal digits".into(),
            });
        }
        u64::from_str_radix(s, 16).map(KeyId).map_err(|_| SealError::InvalidKey {
            what: format!("{s:?}"),
            kind: "key id",
            reason: "a key id has 1 to 16 hexadecimal digits".into(),
        })
    }
}

impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A minisign public key (trusted to verify signatures).
#[derive(Clone)]
pub struct PublicKey {
    inner: minisign::PublicKey,
    id: KeyId,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.id)
    }
}

impl PartialEq for PublicKey {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id && self.inner == other.inner
    }
}
impl Eq for PublicKey {}

impl PublicKey {
    /// Parses the base64 string minisign prints (`RW...`, 56 characters).
    pub fn from_base64(s: &str) -> Result<PublicKey> {
        Self::parse_base64(s.trim(), "the public key string")
    }

    fn parse_base64(s: &str, what: &str) -> Result<PublicKey> {
        let invalid = |reason: &str| SealError::InvalidKey { what: what.to_string(), kind: "public key", reason: reason.to_string() };
        let bytes = base64::decode(s).ok_or_else(|| invalid("not base64"))?;
        if bytes.len() != PUBLIC_KEY_BYTES {
            return Err(invalid("wrong length (expected the 56-character RW... string)"));
        }
        if &bytes[..2] != b"Ed" {
            return Err(invalid("not an Ed25519 minisign key"));
        }
        let inner = minisign::PublicKey::from_bytes(&bytes).map_err(|e| invalid(&e.to_string()))?;
        Ok(PublicKey { id: KeyId::from_keynum(inner.keynum()), inner })
    }

    /// Reads a public key file as `minisign -G` or `ferry keygen` writes it
    /// (an `untrusted comment:` line, then the base64 key).
    pub fn from_file(path: &Path) -> Result<PublicKey> {
        let text = read_key_file(path, "read minisign public key", false)?;
        Self::parse_file_text(&text, &path.display().to_string())
    }

    fn parse_file_text(text: &str, what: &str) -> Result<PublicKey> {
        let line = text
            .lines()
            .map(str::trim)
            .find(|l| !l.is_empty() && !l.starts_with("untrusted comment:"))
            .ok_or_else(|| SealError::InvalidKey { what: what.to_string(), kind: "public key", reason: "no key line found".into() })?;
        Self::parse_base64(line, what)
    }

    /// What `-k` accepts: a public key file path, or the bare base64 string.
    pub fn load(arg: &str) -> Result<PublicKey> {
        let path = Path::new(arg);
        if path.exists() {
            return Self::from_file(path);
        }
        let t = arg.trim();
        if t.len() == 56 && t.starts_with("RW") {
            return Self::from_base64(t);
        }
        let what = if arg.len() <= 80 { format!("{arg:?}") } else { "the -k argument".to_string() };
        Err(SealError::InvalidKey {
            what,
            kind: "public key",
            reason: "it is neither an existing file nor a public key string (RW..., as `minisign -G` prints it)".into(),
        })
    }

    /// The key id, as minisign prints it.
    pub fn key_id(&self) -> KeyId {
        self.id
    }

    /// The base64 string (`RW...`).
    pub fn to_base64(&self) -> String {
        self.inner.to_base64()
    }

    /// The public key file contents, exactly as `minisign -G` writes them.
    pub fn to_file_contents(&self) -> String {
        format!("untrusted comment: minisign public key {}\n{}\n", self.id, self.to_base64())
    }

    pub(crate) fn inner(&self) -> &minisign::PublicKey {
        &self.inner
    }
}

/// A decrypted minisign secret key, ready to sign. Its `Debug` shows only the key id.
pub struct SecretKey {
    inner: minisign::SecretKey,
    public: PublicKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretKey({})", self.public.id)
    }
}

/// Whether a minisign secret key file needs a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyProtection {
    /// Unprotected (`minisign -G -W`, or `ferry keygen` without password).
    None,
    /// scrypt-protected: a password is needed.
    Password,
}

struct ParsedSecret {
    bytes: Vec<u8>,
    b64: String,
}

fn parse_secret_text(text: &str, path: &Path) -> Result<ParsedSecret> {
    let invalid = |reason: &str| SealError::InvalidKey { what: path.display().to_string(), kind: "secret key", reason: reason.to_string() };
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    match lines.next() {
        Some(l) if l.starts_with("untrusted comment:") => {}
        Some(_) => return Err(invalid("the first line must be an `untrusted comment:` line")),
        None => return Err(invalid("the file is empty")),
    }
    let b64 = lines.next().ok_or_else(|| invalid("the key line is missing"))?;
    let bytes = base64::decode(b64).ok_or_else(|| invalid("the key line is not base64"))?;
    if bytes.len() != SECRET_KEY_BYTES {
        return Err(invalid("the key has the wrong length"));
    }
    if &bytes[..2] != b"Ed" {
        return Err(invalid("not an Ed25519 minisign key"));
    }
    Ok(ParsedSecret { bytes, b64: b64.to_string() })
}

fn protection_of(p: &ParsedSecret, path: &Path) -> Result<KeyProtection> {
    match [p.bytes[2], p.bytes[3]] {
        KDF_NONE => Ok(KeyProtection::None),
        KDF_SCRYPT => Ok(KeyProtection::Password),
        _ => Err(SealError::InvalidKey {
            what: path.display().to_string(),
            kind: "secret key",
            reason: "unknown key encryption algorithm".into(),
        }),
    }
}

impl SecretKey {
    /// Whether the secret key file at `path` needs a password (also checks that
    /// the file is private).
    pub fn protection(path: &Path) -> Result<KeyProtection> {
        let text = read_key_file(path, "read minisign secret key", true)?;
        protection_of(&parse_secret_text(&text, path)?, path)
    }

    /// Loads a secret key file. `password` is needed only for protected keys
    /// (it is ignored for unprotected ones).
    pub fn from_file(path: &Path, password: Option<&SecretString>) -> Result<SecretKey> {
        let text = read_key_file(path, "read minisign secret key", true)?;
        Self::from_text(&text, path, password)
    }

    /// Loads a secret key file, asking for its password (env `FERRY_KEY_PASSWORD`,
    /// else the terminal when `prompt_allowed`) only when the key is protected.
    pub fn from_file_interactive(path: &Path, prompt_allowed: bool) -> Result<SecretKey> {
        let text = read_key_file(path, "read minisign secret key", true)?;
        let parsed = parse_secret_text(&text, path)?;
        match protection_of(&parsed, path)? {
            KeyProtection::None => Self::from_parsed(parsed, path, None),
            KeyProtection::Password => {
                let pw = secret::key_password_for(path, prompt_allowed).map_err(|e| match e {
                    SealError::SecretUnavailable { .. } => SealError::KeyPasswordRequired { path: path.to_path_buf() },
                    other => other,
                })?;
                Self::from_parsed(parsed, path, Some(&pw))
            }
        }
    }

    /// Parses secret key file contents; `path` only names the key in errors.
    pub fn from_text(text: &str, path: &Path, password: Option<&SecretString>) -> Result<SecretKey> {
        Self::from_parsed(parse_secret_text(text, path)?, path, password)
    }

    fn from_parsed(p: ParsedSecret, path: &Path, password: Option<&SecretString>) -> Result<SecretKey> {
        let invalid = |reason: String| SealError::InvalidKey { what: path.display().to_string(), kind: "secret key", reason };
        let sk = match protection_of(&p, path)? {
            KeyProtection::None => {
                // minisign's own unprotected keys carry no checksum: check that the
                // key signs for its own public key instead.
                minisign::SecretKey::from_bytes(&p.bytes).map_err(|e| invalid(e.to_string()))?
            }
            KeyProtection::Password => {
                let pw = password.ok_or_else(|| SealError::KeyPasswordRequired { path: path.to_path_buf() })?;
                let boxed = minisign::SecretKeyBox::from_string(&format!("untrusted comment: {SECRET_KEY_COMMENT}\n{}\n", p.b64))
                    .map_err(|e| invalid(e.to_string()))?;
                minisign::SecretKey::from_box(boxed, Some(pw.expose_secret().to_string())).map_err(|e| {
                    if e.to_string().contains("Wrong password") {
                        SealError::WrongKeyPassword { path: path.to_path_buf() }
                    } else {
                        invalid(e.to_string())
                    }
                })?
            }
        };
        let pk = minisign::PublicKey::from_secret_key(&sk).map_err(|e| invalid(e.to_string()))?;
        // Self-test: a corrupted key (or a wrong password on a key without
        // checksum) cannot produce a signature its own public key accepts.
        minisign::sign(Some(&pk), &sk, &b"ferry key self-test"[..], Some("self-test"), None)
            .map_err(|_| invalid("the key is corrupted (it does not match its own public key)".into()))?;
        let id = KeyId::from_keynum(pk.keynum());
        Ok(SecretKey { inner: sk, public: PublicKey { inner: pk, id } })
    }

    /// The key id, as minisign prints it.
    pub fn key_id(&self) -> KeyId {
        self.public.id
    }

    /// The matching public key.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub(crate) fn inner(&self) -> &minisign::SecretKey {
        &self.inner
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeygenResult {
    /// minisign key id, as minisign prints it.
    pub key_id: KeyId,
    /// minisign public key as a base64 string (what `-k` also accepts).
    pub public_key: String,
    /// The age recipient (`age1...`) matching `ferry.age`.
    pub age_recipient: String,
    pub secret_key_path: PathBuf,
    pub public_key_path: PathBuf,
    pub age_identity_path: PathBuf,
    /// Whether `ferry.key` is password-protected.
    pub password_protected: bool,
}

/// Writes `ferry.key` (minisign secret key, password-protected unless `password`
/// is `None`, mode 0600), `ferry.pub` (minisign public key) and `ferry.age`
/// (age X25519 identity as `age-keygen` writes it, mode 0600) into `dir`
/// (created if missing). Refuses to overwrite any existing file.
pub fn generate(dir: &Path, password: Option<&SecretString>) -> Result<KeygenResult> {
    if let Some(pw) = password {
        if pw.expose_secret().is_empty() {
            return Err(SealError::EmptySecret { what: "minisign key password" });
        }
    }
    let sk_path = dir.join(SECRET_KEY_FILE);
    let pk_path = dir.join(PUBLIC_KEY_FILE);
    let age_path = dir.join(AGE_IDENTITY_FILE);
    for p in [&sk_path, &pk_path, &age_path] {
        if fs::symlink_metadata(p).is_ok() {
            return Err(SealError::KeyFileExists { path: p.clone() });
        }
    }
    fs::create_dir_all(dir).map_err(|source| SealError::Io { action: "create key directory", path: dir.to_path_buf(), source })?;

    let gen_err = |e: minisign::PError| SealError::Sign { reason: format!("key generation failed: {e}") };
    let kp = match password {
        Some(pw) => minisign::KeyPair::generate_encrypted_keypair(Some(pw.expose_secret().to_string())),
        None => minisign::KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(gen_err)?;
    let id = KeyId::from_keynum(kp.pk.keynum());
    let public = PublicKey { inner: kp.pk.clone(), id };
    let sk_text = SecretString::from(kp.sk.to_box(Some(SECRET_KEY_COMMENT)).map_err(gen_err)?.into_string());

    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = humantime::format_rfc3339_seconds(std::time::SystemTime::now());
    let age_text =
        SecretString::from(format!("# created: {created}\n# public key: {recipient}\n{}\n", identity.to_string().expose_secret()));

    let mut written: Vec<&Path> = Vec::new();
    let result = (|| {
        write_new(&sk_path, sk_text.expose_secret().as_bytes(), 0o600)?;
        written.push(&sk_path);
        write_new(&age_path, age_text.expose_secret().as_bytes(), 0o600)?;
        written.push(&age_path);
        write_new(&pk_path, public.to_file_contents().as_bytes(), 0o644)?;
        written.push(&pk_path);
        Ok(())
    })();
    if let Err(e) = result {
        for p in written {
            let _ = fs::remove_file(p);
        }
        return Err(e);
    }
    Ok(KeygenResult {
        key_id: id,
        public_key: public.to_base64(),
        age_recipient: recipient,
        secret_key_path: sk_path,
        public_key_path: pk_path,
        age_identity_path: age_path,
        password_protected: password.is_some(),
    })
}

/// Creates `path` (never overwriting) with `mode`, writes and syncs `data`.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    let io = |source| SealError::Io { action: "write", path: path.to_path_buf(), source };
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut f = opts.open(path).map_err(|source| {
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            SealError::KeyFileExists { path: path.to_path_buf() }
        } else {
            io(source)
        }
    })?;
    // The umask may have removed bits but never adds any; set the exact mode.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(mode)).map_err(io)?;
    }
    f.write_all(data).map_err(io)?;
    f.sync_all().map_err(io)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> SecretString {
        SecretString::from(s.to_string())
    }

    #[test]
    fn key_id_formats_like_minisign() {
        // keynum bytes 8c0ef065cc9c39bc are shown by minisign as BC399CCC65F00E8C.
        let id = KeyId::from_keynum(&[0x8c, 0x0e, 0xf0, 0x65, 0xcc, 0x9c, 0x39, 0xbc]);
        assert_eq!(id.to_string(), "BC399CCC65F00E8C");
        assert_eq!("bc399ccc65f00e8c".parse::<KeyId>().unwrap(), id);
        assert!("xyz".parse::<KeyId>().is_err());
        // minisign 0.11 wrote this key's id without its leading zero.
        let id = KeyId(0x0B04_969B_F774_F973);
        assert_eq!(id.to_string(), "B04969BF774F973");
        assert_eq!("B04969BF774F973".parse::<KeyId>().unwrap(), id);
    }

    #[test]
    fn loads_minisign_cli_unprotected_key_without_checksum() {
        // Written by `minisign -G -W` (0.11): note the all-zero checksum.
        let text = "untrusted comment: minisign encrypted secret key\nRWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAjA7wZcycObxEjQ5V8eHHJhXFgEkRAZRoJEfo6Pij8QeRyB4hOpzP7kmTF1Cc0EwV+kGv0OAyXRzhK++f+Mn1Xx2H3FStQz8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
        let sk = SecretKey::from_text(text, Path::new("a.key"), None).unwrap();
        assert_eq!(sk.key_id().to_string(), "BC399CCC65F00E8C");
        let pk = PublicKey::from_base64("RWSMDvBlzJw5vEmTF1Cc0EwV+kGv0OAyXRzhK++f+Mn1Xx2H3FStQz8A").unwrap();
        assert_eq!(&pk, sk.public_key());
        assert!(format!("{sk:?}").contains("BC399CCC65F00E8C"));
        assert!(!format!("{sk:?}").contains("RWQ"));
    }

    #[test]
    fn corrupted_unprotected_key_is_refused() {
        let good = "RWQAAEIyAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAjA7wZcycObxEjQ5V8eHHJhXFgEkRAZRoJEfo6Pij8QeRyB4hOpzP7kmTF1Cc0EwV+kGv0OAyXRzhK++f+Mn1Xx2H3FStQz8AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let bad = good.replacen("jA7wZcycObxEjQ5V", "jA7wZcycObxEjQ5W", 1);
        let e = SecretKey::from_text(&format!("untrusted comment: x\n{bad}\n"), Path::new("a.key"), None).unwrap_err();
        assert!(matches!(e, SealError::InvalidKey { .. }), "{e}");
    }

    #[test]
    fn generate_writes_three_private_files_and_refuses_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let r = generate(dir.path(), Some(&pw("hunter2"))).unwrap();
        // Shown as the minisign CLI does: hexadecimal, no leading zeros (1-16 digits).
        let id = r.key_id.to_string();
        assert!((1..=16).contains(&id.len()) && id.chars().all(|c| c.is_ascii_hexdigit()), "{id}");
        assert!(r.age_recipient.starts_with("age1"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&r.secret_key_path), 0o600);
            assert_eq!(mode(&r.age_identity_path), 0o600);
            assert_eq!(mode(&r.public_key_path), 0o644);
        }
        let age_text = fs::read_to_string(&r.age_identity_path).unwrap();
        let lines: Vec<&str> = age_text.lines().collect();
        assert!(lines[0].starts_with("# created: ") && lines[0].ends_with('Z'), "{age_text}");
        assert_eq!(lines[1], format!("# public key: {}", r.age_recipient));
        assert!(lines[2].starts_with("AGE-SECRET-KEY-1"));

        let pub_text = fs::read_to_string(&r.public_key_path).unwrap();
        assert_eq!(pub_text, format!("untrusted comment: minisign public key {}\n{}\n", r.key_id, r.public_key));
        let pk = PublicKey::load(r.public_key_path.to_str().unwrap()).unwrap();
        assert_eq!(pk.key_id(), r.key_id);
        assert_eq!(PublicKey::load(&r.public_key).unwrap(), pk);

        assert_eq!(SecretKey::protection(&r.secret_key_path).unwrap(), KeyProtection::Password);
        let e = SecretKey::from_file(&r.secret_key_path, None).unwrap_err();
        assert!(matches!(e, SealError::KeyPasswordRequired { .. }), "{e}");
        let e = SecretKey::from_file(&r.secret_key_path, Some(&pw("wrong"))).unwrap_err();
        assert!(matches!(e, SealError::WrongKeyPassword { .. }), "{e}");
        assert!(!e.to_string().contains("wrong\""));
        let sk = SecretKey::from_file(&r.secret_key_path, Some(&pw("hunter2"))).unwrap();
        assert_eq!(sk.key_id(), r.key_id);
        assert_eq!(sk.public_key(), &pk);

        let ids = load_identities(&r.age_identity_path).unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(ids[0].to_recipient().unwrap().to_string(), r.age_recipient);

        let e = generate(dir.path(), None).unwrap_err();
        assert!(matches!(e, SealError::KeyFileExists { .. }), "{e}");
        assert!(e.to_string().contains("ferry.key"));
    }

    #[test]
    fn generate_without_password_is_unprotected() {
        let dir = tempfile::tempdir().unwrap();
        let r = generate(&dir.path().join("sub"), None).unwrap();
        assert_eq!(SecretKey::protection(&r.secret_key_path).unwrap(), KeyProtection::None);
        let sk = SecretKey::from_file_interactive(&r.secret_key_path, false).unwrap();
        assert_eq!(sk.key_id(), r.key_id);
        assert!(generate(dir.path(), Some(&pw(""))).is_err());
    }

    #[test]
    fn public_key_argument_errors() {
        let e = PublicKey::load("not-a-key").unwrap_err();
        assert!(e.to_string().contains("neither an existing file"), "{e}");
        let e = PublicKey::from_base64("RWSMDvBlzJw5vEmTF1Cc0EwV+kGv0OAyXRzhK++f+Mn1Xx2H3FStQz8").unwrap_err();
        assert!(matches!(e, SealError::InvalidKey { .. }));
    }
}
