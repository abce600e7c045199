//! Sealing: minisign signatures of `STEM.sha256` and age encryption of the
//! artifact (SPEC §2, §4).
//!
//! - [`keys`]: minisign key ids, public/secret keys, `ferry keygen` ([`generate`]);
//!   age [`Recipient`]s and [`Identity`]s (module `age_keys`, re-exported).
//! - [`sign`](mod@sign): [`sign()`], [`verify`], [`signer_key_id`], the bundle
//!   trusted comment ([`bundle_trusted_comment`], [`BundleComment`]).
//! - [`encrypt`]: streaming [`encrypt_writer`] / [`decrypt_reader`] and
//!   passphrase variants, [`AgeInput`] to look at the header first.
//! - [`header`]: [`is_age`], [`is_armored_age`], [`describe_recipients`] (no key needed).
//! - [`limits`]: the bounds on an age header (size, stanzas, scrypt work factor).
//! - [`secret`]: passwords and passphrases from `FERRY_KEY_PASSWORD` /
//!   `FERRY_PASSPHRASE` or the terminal; the `chmod 600` check.
//!
//! All failures are [`SealError`]s; [`SealError::is_integrity_failure`] tells
//! the ones that mean "the data is not what was promised" (exit code 3).
//! Decryption failures found while streaming surface as `io::Error`s carrying a
//! `SealError`: recover it with [`SealError::from_io`] or [`SealError::find_in`].

mod age_keys;
mod base64;
pub mod encrypt;
pub mod error;
pub mod header;
pub mod keys;
pub mod limits;
pub mod secret;
pub mod sign;

pub use age::secrecy::{ExposeSecret, SecretString};
pub use encrypt::{
    decrypt_reader, decrypt_reader_passphrase, encrypt_writer, encrypt_writer_passphrase, AgeInput, DecryptReader, EncryptWriter,
};
pub use error::{Result, SealError};
pub use header::{describe_recipients, is_age, is_armored_age, AgeHeaderInfo};
pub use keys::{
    generate, load_identities, load_recipients_file, parse_identities, Identity, KeyId, KeyProtection, KeygenResult, PublicKey, Recipient,
    SecretKey,
};
pub use secret::{key_password, key_password_for, new_key_password, passphrase, KEY_PASSWORD_ENV, PASSPHRASE_ENV};
pub use sign::{bundle_trusted_comment, read_unverified, sign, signer_key_id, verify, BundleComment, SignatureInfo, UnverifiedSignature};
