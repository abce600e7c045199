//! `ferry keygen -o DIR`: a minisign key pair and an age identity.
use super::Context;
use crate::error::{Error, Result};
use serde::Serialize;
use std::path::PathBuf;

pub struct KeygenOptions {
    pub output: PathBuf,
    /// Leave the secret key without a password (unattended signing).
    pub no_password: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct KeygenReport {
    pub key_id: String,
    pub public_key: String,
    pub public_key_path: PathBuf,
    pub secret_key_path: PathBuf,
    pub password_protected: bool,
    pub age_identity_path: PathBuf,
    pub age_recipient: String,
}

pub fn run(opts: &KeygenOptions, cx: &Context) -> Result<KeygenReport> {
    let password = if opts.no_password { None } else { crate::seal::new_key_password(cx.prompt_allowed)? };
    if !opts.no_password && password.is_none() {
        return Err(Error::usage("no password for the secret key: set FERRY_KEY_PASSWORD, run on a terminal, or pass --no-password"));
    }
    std::fs::create_dir_all(&opts.output).map_err(|e| Error::io(format!("creating {}", opts.output.display()), e))?;
    let k = crate::seal::generate(&opts.output, password.as_ref())?;
    Ok(KeygenReport {
        key_id: k.key_id.to_string(),
        public_key: k.public_key,
        public_key_path: k.public_key_path,
        secret_key_path: k.secret_key_path,
        password_protected: k.password_protected,
        age_identity_path: k.age_identity_path,
        age_recipient: k.age_recipient,
    })
}
