//! minisign signatures of `STEM.sha256`, compatible with the minisign CLI
//! (Ed25519 over the BLAKE2b-512 prehash, plus a signed trusted comment).
//!
//! The trusted comment names the bundle, its images and its creation time:
//! `ferry bundle STEM images=REF1,REF2 created=2024-05-01T12:00:00Z`.
//! Verifiers should check that STEM matches the bundle they are reading
//! ([`BundleComment::parse`]), so a valid signature of another bundle is refused.

use std::io::Cursor;
use std::time::SystemTime;

use super::error::{Result, SealError};
use super::keys::{KeyId, PublicKey, SecretKey};

/// Longest trusted comment ferry writes (minisign accepts longer ones, but
/// older versions read lines into 1 KiB buffers).
pub const TRUSTED_COMMENT_MAX: usize = 1000;
const STEM_MAX: usize = 255;

/// A verified signature.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SignatureInfo {
    /// Id of the key that made the signature.
    pub key_id: KeyId,
    /// The trusted (signed) comment.
    pub trusted_comment: String,
}

/// What a signature file says, read without any key: nothing here is verified.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UnverifiedSignature {
    /// Id of the key that claims to have made the signature.
    pub key_id: KeyId,
    /// The trusted comment (trustworthy only after [`verify`]).
    pub trusted_comment: String,
    /// The untrusted comment.
    pub untrusted_comment: String,
}

fn one_line(s: &str, what: &str) -> Result<String> {
    let t = s.trim();
    if t.chars().any(|c| c == '\n' || c == '\r') {
        return Err(SealError::Sign { reason: format!("the {what} must be a single line") });
    }
    Ok(t.to_string())
}

/// Signs `data` (the bytes of `STEM.sha256`), returning the `.minisig` file
/// contents. `untrusted_comment` defaults to minisign's own.
pub fn sign(data: &[u8], key: &SecretKey, trusted_comment: &str, untrusted_comment: Option<&str>) -> Result<Vec<u8>> {
    let trusted = one_line(trusted_comment, "trusted comment")?;
    if trusted.len() > 8000 {
        return Err(SealError::Sign { reason: "the trusted comment is too long".into() });
    }
    let untrusted = one_line(untrusted_comment.unwrap_or("signature from minisign secret key"), "untrusted comment")?;
    let sig = minisign::sign(Some(key.public_key().inner()), key.inner(), Cursor::new(data), Some(&trusted), Some(&untrusted))
        .map_err(|e| SealError::Sign { reason: e.to_string() })?;
    Ok(sig.into_string().into_bytes())
}

fn parse_box(minisig: &[u8]) -> Result<minisign::SignatureBox> {
    let text = std::str::from_utf8(minisig).map_err(|_| SealError::MalformedSignature { reason: "the file is not text".into() })?;
    if text.len() > 16 * 1024 {
        return Err(SealError::MalformedSignature { reason: "the file is too large".into() });
    }
    let sb = minisign::SignatureBox::from_string(text).map_err(|e| SealError::MalformedSignature { reason: e.to_string() })?;
    // minisign accepts signatures without a trusted comment signature only in
    // legacy mode; ferry always wants the signed comment.
    sb.trusted_comment().map_err(|e| SealError::MalformedSignature { reason: e.to_string() })?;
    Ok(sb)
}

/// Reads a `.minisig` without any key (for `inspect`). Nothing is verified.
pub fn read_unverified(minisig: &[u8]) -> Result<UnverifiedSignature> {
    let sb = parse_box(minisig)?;
    Ok(UnverifiedSignature {
        key_id: KeyId::from_keynum(sb.keynum()),
        trusted_comment: sb.trusted_comment().unwrap_or_default(),
        untrusted_comment: sb.untrusted_comment().unwrap_or_default(),
    })
}

/// The id of the key that made a `.minisig`, read without any key.
pub fn signer_key_id(minisig: &[u8]) -> Result<KeyId> {
    Ok(KeyId::from_keynum(parse_box(minisig)?.keynum()))
}

/// Verifies `minisig` over `data` against `trusted_keys`.
///
/// Errors: [`SealError::UntrustedSigner`] (made by a key not in the list: names
/// the signer and the trusted ids), [`SealError::BadSignature`] (data or trusted
/// comment modified), [`SealError::MalformedSignature`].
pub fn verify(data: &[u8], minisig: &[u8], trusted_keys: &[PublicKey]) -> Result<SignatureInfo> {
    let sb = parse_box(minisig)?;
    let signer = KeyId::from_keynum(sb.keynum());
    let candidates: Vec<&PublicKey> = trusted_keys.iter().filter(|k| k.key_id() == signer).collect();
    if candidates.is_empty() {
        let mut trusted: Vec<KeyId> = trusted_keys.iter().map(|k| k.key_id()).collect();
        trusted.dedup();
        return Err(SealError::UntrustedSigner { signer, trusted });
    }
    let mut last = String::new();
    for pk in candidates {
        // allow_legacy: signatures of minisign < 0.8 (not prehashed) stay valid.
        match minisign::verify(pk.inner(), &sb, Cursor::new(data), true, false, true) {
            Ok(()) => return Ok(SignatureInfo { key_id: signer, trusted_comment: sb.trusted_comment().unwrap_or_default() }),
            Err(e) => last = e.to_string(),
        }
    }
    let detail = if last.contains("Comment signature") {
        "the trusted comment was modified after signing".to_string()
    } else if last.contains("Signature verification failed") {
        "the signed file does not match the signature (it was modified, or belongs to another bundle)".to_string()
    } else {
        last
    };
    Err(SealError::BadSignature { signer, detail })
}

/// The trusted comment ferry signs:
/// `ferry bundle STEM images=REF1,REF2 created=RFC3339`.
///
/// Always one line of at most [`TRUSTED_COMMENT_MAX`] bytes: whitespace and
/// control characters become `_`, and when the image list does not fit it is
/// cut and ends with `+N` (N images not listed).
pub fn bundle_trusted_comment<S: AsRef<str>>(stem: &str, images: &[S], created: SystemTime) -> String {
    let clean = |s: &str| -> String { s.chars().map(|c| if c.is_whitespace() || c.is_control() || c == ',' { '_' } else { c }).collect() };
    let mut stem = clean(stem);
    if stem.len() > STEM_MAX {
        let mut cut = STEM_MAX;
        while !stem.is_char_boundary(cut) {
            cut -= 1;
        }
        stem.truncate(cut);
    }
    let created = humantime::format_rfc3339_seconds(created).to_string();
    let head = format!("ferry bundle {stem} images=");
    let tail = format!(" created={created}");
    let budget = TRUSTED_COMMENT_MAX - head.len() - tail.len();
    let refs: Vec<String> = images.iter().map(|r| clean(r.as_ref())).collect();
    let mut list = String::new();
    for (i, r) in refs.iter().enumerate() {
        let left = refs.len() - i - 1;
        let sep = if list.is_empty() { "" } else { "," };
        // Room needed for this ref and, if more follow, for a possible ",+N" marker.
        let marker = if left > 0 { format!(",+{left}").len() } else { 0 };
        if list.len() + sep.len() + r.len() + marker <= budget {
            list.push_str(sep);
            list.push_str(r);
        } else {
            let n = refs.len() - i;
            if !list.is_empty() {
                list.push(',');
            }
            list.push_str(&format!("+{n}"));
            break;
        }
    }
    format!("{head}{list}{tail}")
}

/// The fields of a ferry trusted comment.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BundleComment {
    pub stem: String,
    /// Image references listed (possibly not all, see `unlisted_images`).
    pub images: Vec<String>,
    /// Images not listed because the comment would have been too long.
    pub unlisted_images: usize,
    /// Creation time as written (RFC 3339).
    pub created: Option<String>,
}

impl BundleComment {
    /// Parses `ferry bundle STEM key=value...`; `None` if it is not a ferry comment.
    /// Unknown keys are ignored (newer ferry versions may add some).
    pub fn parse(comment: &str) -> Option<BundleComment> {
        let mut words = comment.split(' ');
        if words.next()? != "ferry" || words.next()? != "bundle" {
            return None;
        }
        let stem = words.next()?.to_string();
        if stem.is_empty() {
            return None;
        }
        let mut out = BundleComment { stem, images: Vec::new(), unlisted_images: 0, created: None };
        for w in words {
            if let Some(list) = w.strip_prefix("images=") {
                for item in list.split(',').filter(|s| !s.is_empty()) {
                    match item.strip_prefix('+').and_then(|n| n.parse::<usize>().ok()) {
                        Some(n) => out.unlisted_images = n,
                        None => out.images.push(item.to_string()),
                    }
                }
            } else if let Some(c) = w.strip_prefix("created=") {
                out.created = Some(c.to_string());
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seal::keys::generate;
    use std::time::{Duration, UNIX_EPOCH};

    fn key() -> (tempfile::TempDir, SecretKey) {
        let dir = tempfile::tempdir().unwrap();
        let r = generate(dir.path(), None).unwrap();
        let sk = SecretKey::from_file(&r.secret_key_path, None).unwrap();
        (dir, sk)
    }

    const DATA: &[u8] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef  b.tar.zst\n";

    #[test]
    fn sign_verify_round_trip() {
        let (_d, sk) = key();
        let sig = sign(DATA, &sk, "ferry bundle b images=x created=2024-01-01T00:00:00Z", None).unwrap();
        let text = String::from_utf8(sig.clone()).unwrap();
        assert!(text.starts_with("untrusted comment: "));
        assert!(text.contains("\ntrusted comment: ferry bundle b "));
        let info = verify(DATA, &sig, &[sk.public_key().clone()]).unwrap();
        assert_eq!(info.key_id, sk.key_id());
        assert_eq!(info.trusted_comment, "ferry bundle b images=x created=2024-01-01T00:00:00Z");
        assert_eq!(signer_key_id(&sig).unwrap(), sk.key_id());
        let u = read_unverified(&sig).unwrap();
        assert_eq!(u.trusted_comment, info.trusted_comment);
    }

    #[test]
    fn refusals_have_the_right_variant() {
        let (_d, sk) = key();
        let (_d2, other) = key();
        let sig = sign(DATA, &sk, "ferry bundle b", None).unwrap();

        let e = verify(DATA, &sig, &[other.public_key().clone()]).unwrap_err();
        match &e {
            SealError::UntrustedSigner { signer, trusted } => {
                assert_eq!(*signer, sk.key_id());
                assert_eq!(trusted, &vec![other.key_id()]);
            }
            _ => panic!("{e}"),
        }
        assert!(e.is_integrity_failure());
        let e = verify(DATA, &sig, &[]).unwrap_err();
        assert!(e.to_string().contains("no public key was given"), "{e}");

        let mut edited = DATA.to_vec();
        edited[0] = b'f';
        let e = verify(&edited, &sig, &[sk.public_key().clone()]).unwrap_err();
        assert!(matches!(e, SealError::BadSignature { .. }), "{e}");
        assert!(e.to_string().contains("signed file does not match"), "{e}");

        let text = String::from_utf8(sig.clone()).unwrap().replace("ferry bundle b", "ferry bundle c");
        let e = verify(DATA, text.as_bytes(), &[sk.public_key().clone()]).unwrap_err();
        assert!(matches!(e, SealError::BadSignature { .. }), "{e}");
        assert!(e.to_string().contains("trusted comment was modified"), "{e}");

        for bad in [&b"garbage"[..], b"", b"\xff\xfe", b"untrusted comment: x\nAAAA\ntrusted comment: y\nAAAA\n"] {
            let e = verify(DATA, bad, &[sk.public_key().clone()]).unwrap_err();
            assert!(matches!(e, SealError::MalformedSignature { .. }), "{e}");
            assert!(signer_key_id(bad).is_err());
        }
    }

    #[test]
    fn multiline_comment_refused() {
        let (_d, sk) = key();
        assert!(sign(DATA, &sk, "a\nb", None).is_err());
        assert!(sign(DATA, &sk, "a", Some("x\ny")).is_err());
    }

    #[test]
    fn trusted_comment_format_and_parse() {
        let t = UNIX_EPOCH + Duration::from_secs(1_714_564_800);
        let c = bundle_trusted_comment("nightly", &["alpine:3.19", "docker.io/library/nginx:1.25"], t);
        assert_eq!(c, "ferry bundle nightly images=alpine:3.19,docker.io/library/nginx:1.25 created=2024-05-01T12:00:00Z");
        let p = BundleComment::parse(&c).unwrap();
        assert_eq!(p.stem, "nightly");
        assert_eq!(p.images, ["alpine:3.19", "docker.io/library/nginx:1.25"]);
        assert_eq!(p.unlisted_images, 0);
        assert_eq!(p.created.as_deref(), Some("2024-05-01T12:00:00Z"));
        let c = bundle_trusted_comment("a b\nc", &["x y"], t);
        assert!(c.starts_with("ferry bundle a_b_c images=x_y "), "{c}");
        assert!(BundleComment::parse("timestamp:123 file:x").is_none());
        let none: [&str; 0] = [];
        assert_eq!(BundleComment::parse(&bundle_trusted_comment("s", &none, t)).unwrap().images.len(), 0);
    }

    #[test]
    fn long_image_lists_are_cut_with_a_count() {
        let t = UNIX_EPOCH;
        let images: Vec<String> = (0..200).map(|i| format!("registry.example.com/team/image-{i:03}:v1.2.3")).collect();
        let c = bundle_trusted_comment("big", &images, t);
        assert!(c.len() <= TRUSTED_COMMENT_MAX, "{}", c.len());
        assert!(!c.contains('\n'));
        let p = BundleComment::parse(&c).unwrap();
        assert!(p.images.len() > 5);
        assert_eq!(p.images.len() + p.unlisted_images, 200);
        assert_eq!(p.images[0], images[0]);
        assert!(c.ends_with(" created=1970-01-01T00:00:00Z"));
        // A single enormous reference does not break the limit either.
        let huge = vec!["x".repeat(5000)];
        let c = bundle_trusted_comment(&"s".repeat(600), &huge, t);
        assert!(c.len() <= TRUSTED_COMMENT_MAX);
        assert_eq!(BundleComment::parse(&c).unwrap().unlisted_images, 1);
    }
}
