//! age recipients (`-r`, `-R`) and identities (`-i`).
//!
//! Recipients: `age1...` (X25519), `ssh-ed25519 ...`, `ssh-rsa ...`.
//! Identities: files written by `age-keygen` (or `ferry keygen`), and unencrypted
//! OpenSSH/PEM private keys (ed25519, rsa).

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use super::error::{Result, SealError};
use super::secret::read_key_file;

#[derive(Clone)]
enum RecipientInner {
    X25519(age::x25519::Recipient),
    Ssh(age::ssh::Recipient),
}

/// An age recipient: whom a bundle is encrypted to.
#[derive(Clone)]
pub struct Recipient {
    inner: RecipientInner,
    kind: &'static str,
}

/// True for strings that look like secret key material, which must never be
/// echoed into an error message.
fn looks_secret(s: &str) -> bool {
    let u = s.to_ascii_uppercase();
    u.contains("AGE-SECRET-KEY") || u.contains("PRIVATE KEY") || u.contains("AGE-PLUGIN-")
}

fn quoted_for_error(s: &str) -> String {
    if looks_secret(s) {
        "(not shown: it looks like a secret key)".to_string()
    } else if s.chars().count() > 100 {
        let head: String = s.chars().take(40).collect();
        format!("{head:?}...")
    } else {
        format!("{s:?}")
    }
}

/// Parses one recipient; `Err(reason)` never contains the input.
fn parse_recipient(s: &str) -> std::result::Result<Recipient, String> {
    let s = s.trim();
    if looks_secret(s) {
        return Err("this is a secret key (an identity), not a recipient: pass its public key \
                    (the `# public key:` line of the identity file, age1...)"
            .into());
    }
    if s.starts_with("age1") {
        return age::x25519::Recipient::from_str(s)
            .map(|r| Recipient { inner: RecipientInner::X25519(r), kind: "X25519" })
            .map_err(|e| format!("not a valid age1... public key ({e})"));
    }
    if s.starts_with("ssh-") || s.starts_with("ecdsa-") || s.starts_with("sk-") {
        use age::ssh::ParseRecipientKeyError as P;
        return match age::ssh::Recipient::from_str(s) {
            Ok(r) => {
                let kind = if r.to_string().starts_with("ssh-rsa ") { "ssh-rsa" } else { "ssh-ed25519" };
                Ok(Recipient { inner: RecipientInner::Ssh(r), kind })
            }
            Err(P::Unsupported(t)) => {
                Err(format!("SSH key type {t} is not supported by age; use an ssh-ed25519 or ssh-rsa key, or an age1... recipient"))
            }
            Err(P::RsaModulusTooSmall) => Err("the ssh-rsa key is shorter than 2048 bits".into()),
            Err(P::RsaModulusTooLarge) => Err("the ssh-rsa key is longer than age supports".into()),
            Err(P::Ignore) | Err(P::Invalid(_)) => Err("not a valid SSH public key".into()),
        };
    }
    Err("expected an age1... public key, or an ssh-ed25519 / ssh-rsa public key".into())
}

impl Recipient {
    /// Parses `age1...`, `ssh-ed25519 AAAA... [comment]` or `ssh-rsa AAAA... [comment]`.
    pub fn parse(s: &str) -> Result<Recipient> {
        parse_recipient(s).map_err(|reason| SealError::InvalidRecipient { recipient: quoted_for_error(s.trim()), reason })
    }

    /// The age stanza type this recipient produces: `X25519`, `ssh-ed25519` or `ssh-rsa`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    pub(crate) fn as_age(&self) -> &dyn age::Recipient {
        match &self.inner {
            RecipientInner::X25519(r) => r,
            RecipientInner::Ssh(r) => r,
        }
    }
}

impl FromStr for Recipient {
    type Err = SealError;
    fn from_str(s: &str) -> Result<Recipient> {
        Recipient::parse(s)
    }
}

/// The canonical public string (`age1...`, or `ssh-... AAAA...` without comment).
impl fmt::Display for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.inner {
            RecipientInner::X25519(r) => write!(f, "{r}"),
            RecipientInner::Ssh(r) => write!(f, "{r}"),
        }
    }
}

impl fmt::Debug for Recipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Recipient({self})")
    }
}

impl PartialEq for Recipient {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// Reads a recipients file (`-R`): one recipient per line; empty lines and
/// lines starting with `#` are ignored.
pub fn load_recipients_file(path: &Path) -> Result<Vec<Recipient>> {
    let text = read_key_file(path, "read recipients file", false)?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let r =
            parse_recipient(line).map_err(|reason| SealError::InvalidRecipientsFile { path: path.to_path_buf(), line: i + 1, reason })?;
        out.push(r);
    }
    if out.is_empty() {
        return Err(SealError::InvalidRecipientsFile { path: path.to_path_buf(), line: 0, reason: "the file holds no recipient".into() });
    }
    Ok(out)
}

enum IdentityInner {
    X25519(age::x25519::Identity),
    Ssh(age::ssh::Identity),
}

/// An age identity (secret key) able to decrypt. Its `Debug` shows only where
/// it came from and its kind.
pub struct Identity {
    inner: IdentityInner,
    kind: &'static str,
    source: String,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity({} from {})", self.kind, self.source)
    }
}

impl Identity {
    /// `X25519`, `ssh-ed25519` or `ssh-rsa`.
    pub fn kind(&self) -> &'static str {
        self.kind
    }

    /// Where it came from (file name, and line for multi-key files), for messages.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The matching recipient (public key).
    pub fn to_recipient(&self) -> Option<Recipient> {
        match &self.inner {
            IdentityInner::X25519(i) => Some(Recipient { inner: RecipientInner::X25519(i.to_public()), kind: "X25519" }),
            IdentityInner::Ssh(i) => {
                age::ssh::Recipient::try_from(i.clone()).ok().map(|r| Recipient { inner: RecipientInner::Ssh(r), kind: self.kind })
            }
        }
    }

    pub(crate) fn as_age(&self) -> &dyn age::Identity {
        match &self.inner {
            IdentityInner::X25519(i) => i,
            IdentityInner::Ssh(i) => i,
        }
    }
}

/// Loads the identities of an `age-keygen` file or an SSH private key file.
/// Refuses files other users can read (`chmod 600`).
pub fn load_identities(path: &Path) -> Result<Vec<Identity>> {
    let text = read_key_file(path, "read age identity file", true)?;
    parse_identities(&text, path)
}

/// Parses identity file contents; `path` only names the file in messages.
pub fn parse_identities(text: &str, path: &Path) -> Result<Vec<Identity>> {
    let invalid = |reason: String| SealError::InvalidIdentity { path: path.to_path_buf(), reason };
    let name = path.display().to_string();
    let trimmed = text.trim_start();
    if trimmed.starts_with("age-encryption.org/") || trimmed.starts_with("-----BEGIN AGE ENCRYPTED FILE") {
        return Err(invalid(
            "it is a passphrase-encrypted identity file, which ferry does not read; decrypt it with `age -d` to a private file first"
                .into(),
        ));
    }
    if trimmed.starts_with("-----BEGIN") {
        let id = age::ssh::Identity::from_buffer(text.as_bytes(), Some(name.clone()))
            .map_err(|_| invalid("not a valid SSH private key".into()))?;
        return match id {
            age::ssh::Identity::Unencrypted(_) => {
                let kind = match age::ssh::Recipient::try_from(id.clone()) {
                    Ok(r) if r.to_string().starts_with("ssh-rsa ") => "ssh-rsa",
                    Ok(_) => "ssh-ed25519",
                    Err(_) => return Err(invalid("unsupported SSH key".into())),
                };
                Ok(vec![Identity { inner: IdentityInner::Ssh(id), kind, source: name }])
            }
            age::ssh::Identity::Encrypted(_) => Err(invalid(
                "the SSH key is protected by a passphrase, which ferry does not support; \
                 use an age identity (`ferry keygen`, `age-keygen`) or an unencrypted SSH key"
                    .into(),
            )),
            age::ssh::Identity::Unsupported(u) => {
                let what = match u {
                    age::ssh::UnsupportedKey::Type(t) | age::ssh::UnsupportedKey::Hardware(t) => {
                        format!("SSH key type {t} is not supported by age")
                    }
                    _ => "this SSH key format or encryption is not supported".to_string(),
                };
                Err(invalid(format!("{what}; use an ssh-ed25519 or ssh-rsa key, or an age identity")))
            }
        };
    }
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("AGE-PLUGIN-") {
            return Err(invalid(format!("line {}: age plugin identities are not supported", i + 1)));
        }
        if !line.starts_with("AGE-SECRET-KEY-1") {
            return Err(invalid(format!(
                "line {} is not an age identity (AGE-SECRET-KEY-1...) and the file is not an SSH private key",
                i + 1
            )));
        }
        let id = age::x25519::Identity::from_str(line)
            .map_err(|_| invalid(format!("line {}: malformed AGE-SECRET-KEY-1... identity", i + 1)))?;
        out.push(Identity { inner: IdentityInner::X25519(id), kind: "X25519", source: name.clone() });
    }
    if out.is_empty() {
        return Err(invalid("the file holds no identity".into()));
    }
    let n = out.len();
    if n > 1 {
        for (k, id) in out.iter_mut().enumerate() {
            id.source = format!("{name} (key {} of {n})", k + 1);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Test-only key pair made with `ssh-keygen -t ed25519 -N ''`.
    const ED_PUB: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAILe6Xz2dukVmi0T6Hb1uIcED+CkJda3iK0Ttoand/+3m alice@example";
    const ED_PRIV: &str = "-----BEGIN OPENSSH PRIVATE KEY-----
b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW
QyNTUxOQAAACC3ul89nbpFZotE+h29biHBA/gpCXWt4itE7aGp3f/t5gAAAJBW/9sEVv/b
BAAAAAtzc2gtZWQyNTUxOQAAACC3ul89nbpFZotE+h29biHBA/gpCXWt4itE7aGp3f/t5g
AAAECQKcaRUg50Aiqiy3cq8n/zSC9KR2r47zxOygqP5xVHP7e6Xz2dukVmi0T6Hb1uIcED
+CkJda3iK0Ttoand/+3mAAAADWFsaWNlQGV4YW1wbGU=
-----END OPENSSH PRIVATE KEY-----
";

    #[test]
    fn parses_each_recipient_kind() {
        let id = age::x25519::Identity::generate();
        let s = id.to_public().to_string();
        let r = Recipient::parse(&s).unwrap();
        assert_eq!(r.kind(), "X25519");
        assert_eq!(r.to_string(), s);
        let r = Recipient::parse(ED_PUB).unwrap();
        assert_eq!(r.kind(), "ssh-ed25519");
        assert!(!r.to_string().contains("alice@example"));
    }

    #[test]
    fn bad_recipients_are_explained_and_secrets_not_echoed() {
        let e = Recipient::parse("age1notvalid").unwrap_err();
        assert!(matches!(e, SealError::InvalidRecipient { .. }), "{e}");
        assert!(e.to_string().contains("age1notvalid"));
        let secret = age::x25519::Identity::generate();
        use age::secrecy::ExposeSecret;
        let s = secret.to_string();
        let e = Recipient::parse(s.expose_secret()).unwrap_err();
        let m = e.to_string();
        assert!(!m.contains(s.expose_secret()), "{m}");
        assert!(m.contains("secret key"), "{m}");
        let e = Recipient::parse("ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBGi4 x").unwrap_err();
        assert!(matches!(e, SealError::InvalidRecipient { .. }), "{e}");
    }

    #[test]
    fn recipients_file_skips_comments_and_names_bad_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.txt");
        let a = age::x25519::Identity::generate().to_public().to_string();
        std::fs::write(&p, format!("# team\n\n{a}\n  {ED_PUB}\n")).unwrap();
        let rs = load_recipients_file(&p).unwrap();
        assert_eq!(rs.iter().map(|r| r.kind()).collect::<Vec<_>>(), ["X25519", "ssh-ed25519"]);
        std::fs::write(&p, format!("{a}\nbogus\n")).unwrap();
        let e = load_recipients_file(&p).unwrap_err();
        assert!(matches!(e, SealError::InvalidRecipientsFile { line: 2, .. }), "{e}");
        std::fs::write(&p, "# nothing\n").unwrap();
        assert!(load_recipients_file(&p).is_err());
    }

    #[test]
    fn identities_from_age_keygen_text_and_ssh_key() {
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        use age::secrecy::ExposeSecret;
        let text = format!(
            "# created: 2024-01-01T00:00:00Z\n# public key: {}\n{}\n{}\n",
            a.to_public(),
            a.to_string().expose_secret(),
            b.to_string().expose_secret()
        );
        let ids = parse_identities(&text, Path::new("keys.txt")).unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[1].to_recipient().unwrap().to_string(), b.to_public().to_string());
        assert!(ids[1].source().contains("key 2 of 2"));
        assert!(!format!("{:?}", ids[0]).contains("AGE-SECRET"));

        let ids = parse_identities(ED_PRIV, Path::new("id_ed25519")).unwrap();
        assert_eq!(ids[0].kind(), "ssh-ed25519");
        assert_eq!(ids[0].to_recipient().unwrap(), Recipient::parse(ED_PUB).unwrap());
    }

    #[test]
    fn unusable_identity_files_are_refused_without_echo() {
        let e = parse_identities("hello world\n", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("line 1") && !e.to_string().contains("hello"), "{e}");
        let e = parse_identities("age-encryption.org/v1\n-> scrypt x 10\n", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("passphrase-encrypted"), "{e}");
        let e = parse_identities("# only comments\n", Path::new("x")).unwrap_err();
        assert!(e.to_string().contains("no identity"), "{e}");
    }
}
