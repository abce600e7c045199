//! The consuming side of sealing: which signers are trusted, which identities
//! decrypt, and the signature check that comes before anything else (SPEC §4).
use crate::bundle::read::Decryptor;
use crate::bundle::BundleSource;
use crate::error::{Error, Result};
use crate::seal::{self, AgeInput, BundleComment, Identity, PublicKey, SignatureInfo};
use std::path::PathBuf;

#[derive(Debug, Clone, Default)]
pub struct TrustOptions {
    /// `-k`: minisign public key files or base64 strings.
    pub keys: Vec<String>,
    /// `-i`: age identity files or SSH private keys.
    pub identities: Vec<PathBuf>,
    /// `--allow-unsigned` (load only).
    pub allow_unsigned: bool,
    /// Whether a passphrase may be asked for on the terminal.
    pub prompt_allowed: bool,
}

/// What the signature check found.
#[derive(Debug, Clone)]
pub enum SignatureStatus {
    /// Signed by a trusted key.
    Trusted(SignatureInfo),
    /// Signed, but no key was given to check it against.
    Unchecked {
        signer: String,
    },
    Unsigned,
}

impl SignatureStatus {
    pub fn describe(&self) -> String {
        match self {
            SignatureStatus::Trusted(i) => format!("signed by trusted key {}", i.key_id),
            SignatureStatus::Unchecked { signer } => format!("signed by key {signer}, not checked (no -k given)"),
            SignatureStatus::Unsigned => "unsigned".into(),
        }
    }
}

/// What a consumer asks of a bundle's signature before its artifact is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// `load`: a trusted signature is required, unless `--allow-unsigned`.
    RequireSignature,
    /// `verify`, `inspect`: a signature is checked against the keys given, if any,
    /// and reported; an unsigned bundle is reported as such.
    Report,
}

/// A bundle whose signature policy has run. Only [`TrustOptions::check`] makes
/// one, and every function that reads a bundle's artifact takes one: no caller
/// of the library can read, decrypt or load content before the signature over
/// `STEM.sha256` (which covers every artifact byte) was checked as asked.
///
/// A located bundle is not enough to load:
/// ```compile_fail
/// # fn f(located: &ferry::bundle::BundleSource, into: &ferry::reference::ImageRef) {
/// ferry::targets::load(located, into, None, &ferry::bundle::NoProgress);
/// # }
/// ```
/// nor can a `Trusted` be made without the check:
/// ```compile_fail
/// # fn f(located: &ferry::bundle::BundleSource) {
/// let trusted = ferry::trust::Trusted { bundle: located, signature: ferry::trust::SignatureStatus::Unsigned };
/// # }
/// ```
/// The check is the way in:
/// ```no_run
/// # fn f(located: &ferry::bundle::BundleSource, into: &ferry::reference::ImageRef) -> ferry::Result<()> {
/// use ferry::trust::{Policy, TrustOptions};
/// let trust = TrustOptions { keys: vec!["ferry.pub".into()], ..Default::default() };
/// let trusted = trust.check(located, Policy::RequireSignature)?;
/// ferry::targets::load(&trusted, into, Some(trust.decryptor()?), &ferry::bundle::NoProgress)?;
/// # Ok(()) }
/// ```
pub struct Trusted<'a> {
    bundle: &'a BundleSource,
    signature: SignatureStatus,
}

impl<'a> Trusted<'a> {
    pub fn bundle(&self) -> &'a BundleSource {
        self.bundle
    }

    pub fn signature(&self) -> &SignatureStatus {
        &self.signature
    }
}

impl std::ops::Deref for Trusted<'_> {
    type Target = BundleSource;
    fn deref(&self) -> &BundleSource {
        self.bundle
    }
}

impl TrustOptions {
    /// Apply the signature policy to `bundle`: the only way to a [`Trusted`].
    pub fn check<'a>(&self, bundle: &'a BundleSource, policy: Policy) -> Result<Trusted<'a>> {
        let signature = self.check_signature(bundle, policy == Policy::RequireSignature)?;
        Ok(Trusted { bundle, signature })
    }

    pub fn public_keys(&self) -> Result<Vec<PublicKey>> {
        self.keys.iter().map(|k| PublicKey::load(k).map_err(Error::from)).collect()
    }

    pub fn load_identities(&self) -> Result<Vec<Identity>> {
        let mut all = Vec::new();
        for path in &self.identities {
            all.extend(seal::load_identities(path)?);
        }
        Ok(all)
    }

    /// Check `STEM.sha256.minisig` first. `require` is true for `load`: an
    /// unsigned bundle or an unchecked signature is refused unless allowed.
    fn check_signature(&self, bundle: &BundleSource, require: bool) -> Result<SignatureStatus> {
        let keys = self.public_keys()?;
        let Some(sig) = &bundle.signature else {
            if !keys.is_empty() {
                return Err(Error::Authenticity(format!(
                    "{} is not signed ({}.sha256.minisig is missing) but a trusted key was given: refused",
                    bundle.describe(),
                    bundle.stem
                )));
            }
            if require && !self.allow_unsigned {
                return Err(Error::Authenticity(format!(
                    "{} is not signed: refusing to load it (give --allow-unsigned to load it anyway)",
                    bundle.describe()
                )));
            }
            return Ok(SignatureStatus::Unsigned);
        };
        if keys.is_empty() {
            let signer = seal::signer_key_id(sig).map(|k| k.to_string()).unwrap_or_else(|_| "?".into());
            if require && !self.allow_unsigned {
                return Err(Error::Authenticity(format!(
                    "{} is signed by key {signer}, but no trusted key was given: pass -k ferry.pub (or --allow-unsigned)",
                    bundle.describe()
                )));
            }
            return Ok(SignatureStatus::Unchecked { signer });
        }
        let info = seal::verify(&bundle.checksum_bytes, sig, &keys)?;
        // A valid signature of another bundle (renamed files) is refused too.
        match BundleComment::parse(&info.trusted_comment) {
            Some(c) if c.stem == bundle.stem => {}
            Some(c) => return Err(Error::integrity(format!("the signature is for bundle {:?}, not {:?}: refused", c.stem, bundle.stem))),
            None => {} // signed with plain minisign: the signature still covers STEM.sha256
        }
        Ok(SignatureStatus::Trusted(info))
    }

    /// A decryptor using the identities (or a passphrase for scrypt bundles).
    pub fn decryptor(&self) -> Result<Decryptor> {
        let identities = self.load_identities()?;
        let prompt = self.prompt_allowed;
        Ok(Box::new(move |reader| {
            let mut input = AgeInput::open(reader)?;
            if input.is_passphrase() {
                input = input.with_max_scrypt_work_factor(seal::limits::max_scrypt_work_factor().map_err(Error::usage)?);
            }
            if identities.is_empty() && !input.is_passphrase() {
                return Err(Error::integrity(format!("the bundle is encrypted to {}: give the matching identity with -i", input.header())));
            }
            Ok(Box::new(input.decrypt_auto(&identities, prompt)?))
        }))
    }
}
