//! `ferry save`: open every image source, merge them (blobs once), write the bundle.
use crate::bundle::{names, write_bundle, Progress, SaveOptions, SaveReport};
use crate::error::{Error, Result};
use crate::image::SourceOptions;
use crate::reference::ImageRef;
use ferry_transports::{Location, Transport};
use std::sync::Arc;

/// The directory a local output names, for spooling next to the output.
pub fn spool_dir_for(output: &str) -> Option<std::path::PathBuf> {
    match Location::parse(output) {
        Location::Dir(p) => Some(p),
        _ => None,
    }
}

pub fn save(
    images: &[ImageRef],
    output: Arc<dyn Transport>,
    stem: Option<String>,
    source: &SourceOptions,
    make_options: impl FnOnce(String) -> SaveOptions,
    bases: &[crate::delta::Base],
    progress: &dyn Progress,
) -> Result<SaveReport> {
    if let Some(dir) = &source.spool_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let mut set = crate::sources::collect_images(images, source, progress)?;
    let stem = stem.unwrap_or_else(|| names::default_stem(&set.images.iter().map(|i| i.display_name()).collect::<Vec<_>>()));
    names::check_stem(&stem)?;
    let mut options = make_options(stem);
    if options.flattened {
        // `--flatten`: the flattened layers are spooled next to the output (else in the temp dir).
        let tmp = source.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
        set = crate::flatten::image::flatten_image_set(set, &tmp, progress)?.0;
    }
    if !bases.is_empty() {
        options.delta = Some(crate::delta::plan(&set, bases)?);
    }
    write_bundle(&set, output, options, progress)
}

/// `--sign`, `-r`, `-R`, `--passphrase`: how the bundle is sealed.
#[derive(Debug, Clone, Default)]
pub struct SealOptions {
    pub sign_key: Option<std::path::PathBuf>,
    pub recipients: Vec<String>,
    pub recipient_files: Vec<std::path::PathBuf>,
    pub passphrase: bool,
    pub prompt_allowed: bool,
}

/// age encryption at the end of the compression chain.
struct AgeLayer(crate::seal::EncryptWriter<crate::bundle::parts::PartWriter>);
impl std::io::Write for AgeLayer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
impl crate::compress::FinishWrite for AgeLayer {
    fn finish_box(self: Box<Self>) -> std::io::Result<()> {
        let mut parts = self.0.finish()?;
        std::io::Write::flush(&mut parts)
    }
}

impl SealOptions {
    /// Load keys and ask for secrets now, before any long work starts.
    pub fn prepare(&self) -> Result<(Option<crate::bundle::write::Encryptor>, Option<crate::bundle::write::Signer>)> {
        use crate::seal::{self, Recipient};
        let mut recipients: Vec<Recipient> =
            self.recipients.iter().map(|r| r.parse::<Recipient>().map_err(Error::from)).collect::<Result<_>>()?;
        for f in &self.recipient_files {
            recipients.extend(seal::load_recipients_file(f)?);
        }
        if self.passphrase && !recipients.is_empty() {
            return Err(Error::usage("--passphrase cannot be combined with -r/-R (age allows one or the other)"));
        }
        let encryptor: Option<crate::bundle::write::Encryptor> = if self.passphrase {
            let pass = seal::passphrase(true, self.prompt_allowed)?;
            Some(Box::new(move |parts| Ok(Box::new(AgeLayer(seal::encrypt_writer_passphrase(&pass, parts)?)) as _)))
        } else if !recipients.is_empty() {
            Some(Box::new(move |parts| Ok(Box::new(AgeLayer(seal::encrypt_writer(&recipients, parts)?)) as _)))
        } else {
            None
        };
        let signer: Option<crate::bundle::write::Signer> = match &self.sign_key {
            Some(path) => {
                let key = seal::SecretKey::from_file_interactive(path, self.prompt_allowed)?;
                Some(Box::new(move |data: &[u8], summary: &crate::bundle::write::BundleSummary| {
                    let created = humantime::parse_rfc3339(&summary.created).unwrap_or_else(|_| std::time::SystemTime::now());
                    let comment = seal::bundle_trusted_comment(&summary.stem, &summary.images, created);
                    Ok(seal::sign(data, &key, &comment, None)?)
                }))
            }
            None => None,
        };
        Ok((encryptor, signer))
    }
}
