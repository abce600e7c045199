//! Finding a bundle from what the user typed: `DIR/STEM.sha256`, the artifact,
//! a directory holding exactly one bundle, or a remote `LOCATION/STEM`.
use super::checksums::ChecksumFile;
use super::names::{self, stem_of};
use crate::error::{Error, Result};
use ferry_transports::{Location, Transport};
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

pub struct BundleSource {
    pub transport: Arc<dyn Transport>,
    pub stem: String,
    pub checksums: ChecksumFile,
    /// The exact bytes of `STEM.sha256` (what the signature covers).
    pub checksum_bytes: Vec<u8>,
    pub signature: Option<Vec<u8>>,
    /// Parity parts (`save --parity`), as `STEM.sha256` records them.
    pub parity: Option<crate::parity::Geometry>,
    /// Which parts were found missing or damaged, once a reader looked (see [`crate::parity::survey`]).
    pub bad_parts: std::sync::OnceLock<Vec<crate::parity::BadPart>>,
}

impl BundleSource {
    pub fn describe(&self) -> String {
        format!("{}/{}", self.transport.describe().trim_end_matches('/'), self.stem)
    }

    /// Artifact file names in order (one, or numbered parts), parity parts last.
    pub fn artifact_names(&self) -> Vec<&str> {
        self.checksums.lines.iter().map(|l| l.name.as_str()).collect()
    }

    /// The lines of the data parts: what joins into the artifact (no parity parts).
    pub fn data_lines(&self) -> &[super::checksums::ChecksumLine] {
        match &self.parity {
            Some(g) => &self.checksums.lines[..g.data],
            None => &self.checksums.lines,
        }
    }

    /// Parts found missing or damaged and read past (rebuilt from parity), if any.
    pub fn rebuilt_parts(&self) -> Vec<crate::parity::BadPart> {
        self.bad_parts.get().cloned().unwrap_or_default()
    }

    /// Total size of the artifact's files, if the location can tell.
    pub fn artifact_size(&self) -> Option<u64> {
        let mut total = 0u64;
        for line in self.data_lines() {
            // Sizes come from the location: a sum past u64 means "unknown", not a panic.
            total = total.checked_add(self.transport.stat(&line.name).ok()??)?;
        }
        Some(total)
    }

    pub fn is_encrypted_by_name(&self) -> bool {
        self.checksums.lines.first().and_then(|l| names::parse_artifact_name(&l.name)).is_some_and(|a| a.encrypted)
    }
}

pub type TransportOpener<'a> = &'a dyn Fn(&str) -> Result<Box<dyn Transport>>;

/// Locate a bundle. `open` turns a location string into a transport.
pub fn locate(source: &str, open: TransportOpener) -> Result<BundleSource> {
    let (location, stem) = split_source(source)?;
    let transport: Arc<dyn Transport> = Arc::from(open(&location)?);
    let stem = match stem {
        Some(s) => s,
        None => only_stem(&*transport)?,
    };
    read_sidecars(transport, stem)
}

/// `(location, stem)`; the stem is `None` for a local directory to search.
fn split_source(source: &str) -> Result<(String, Option<String>)> {
    if Location::parse(source).is_remote() {
        // What the user typed may hold a password: messages show it redacted.
        let shown = ferry_transports::redact_location(source);
        let trimmed = source.trim_end_matches('/');
        let (loc, last) = trimmed.rsplit_once('/').ok_or_else(|| Error::usage(format!("{shown}: give LOCATION/STEM")))?;
        if loc.ends_with(':') || loc.ends_with("//") || last.contains('@') && !loc.contains("//") {
            return Err(Error::usage(format!("{shown}: give LOCATION/STEM, e.g. sftp://host/drop/mybundle")));
        }
        let stem = stem_of(last).unwrap_or(last).to_string();
        return Ok((format!("{loc}/"), Some(stem)));
    }
    let path = Path::new(source);
    if path.is_dir() {
        return Ok((source.to_string(), None));
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let file = path.file_name().and_then(|f| f.to_str()).ok_or_else(|| Error::usage(format!("{source}: not a bundle")))?;
    let stem = stem_of(file).unwrap_or(file);
    if !path.exists() && !parent.join(names::checksum_name(stem)).exists() {
        return Err(Error::usage(format!("{source}: no such bundle (expected {})", parent.join(names::checksum_name(stem)).display())));
    }
    Ok((parent.display().to_string(), Some(stem.to_string())))
}

/// The one complete bundle in a directory.
fn only_stem(transport: &dyn Transport) -> Result<String> {
    let stems: Vec<String> = transport
        .list()?
        .into_iter()
        .filter_map(|e| e.name.strip_suffix(names::CHECKSUM_SUFFIX).map(str::to_string))
        .filter(|stem| names::check_stem(stem).is_ok())
        .collect();
    match stems.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Error::usage(format!("{}: no complete bundle here (no STEM.sha256 file)", transport.describe()))),
        many => Err(Error::usage(format!(
            "{} holds {} bundles ({}): name one as {}/STEM",
            transport.describe(),
            many.len(),
            many.iter().map(|s| crate::untrusted::shown(s)).collect::<Vec<_>>().join(", "),
            transport.describe()
        ))),
    }
}

fn read_small(transport: &dyn Transport, name: &str) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    transport
        .get(name, 0)?
        .take(1 << 20)
        .read_to_end(&mut buf)
        .map_err(|e| Error::io(format!("reading {name} from {}", transport.describe()), e))?;
    Ok(buf)
}

/// The bundle `stem` at an open location: its `STEM.sha256` and signature read.
pub fn read_sidecars(transport: Arc<dyn Transport>, stem: String) -> Result<BundleSource> {
    let checksum_name = names::checksum_name(&stem);
    let checksum_bytes = match read_small(&*transport, &checksum_name) {
        Ok(b) => b,
        Err(Error::Transport(e)) if e.is_not_found() => {
            return Err(Error::usage(format!(
                "{}: no bundle {stem} ({checksum_name} is missing: the bundle is incomplete or the name is wrong)",
                transport.describe()
            )))
        }
        Err(e) => return Err(e),
    };
    let checksums = ChecksumFile::parse(&checksum_bytes, &checksum_name)?;
    if let Some(bad) = checksums.lines.iter().find(|l| !names::is_part_of(&stem, &l.name)) {
        return Err(Error::integrity(format!("{checksum_name} lists {:?}, which is not an artifact of bundle {stem}", bad.name)));
    }
    let parity = crate::parity::Geometry::from_comments(&checksums.comments, &checksum_name)?;
    check_part_names(&checksums, parity.as_ref(), &stem, &checksum_name)?;
    refuse_special_parts(&*transport, &checksums)?;
    let signature = match transport.stat(&names::signature_name(&stem))? {
        Some(_) => Some(read_small(&*transport, &names::signature_name(&stem))?),
        None => None,
    };
    Ok(BundleSource { transport, stem, checksums, checksum_bytes, signature, parity, bad_parts: Default::default() })
}

/// With parity: the data parts `ARTIFACT.000...` in order, then the parity parts
/// `STEM.parity.000...` in order, as many as the geometry says. Without: no parity part.
fn check_part_names(checksums: &ChecksumFile, parity: Option<&crate::parity::Geometry>, stem: &str, file: &str) -> Result<()> {
    let lines = &checksums.lines;
    let Some(g) = parity else {
        if let Some(l) = lines.iter().find(|l| names::parse_parity_name(&l.name).is_some()) {
            return Err(Error::integrity(format!("{file} lists the parity part {} but no parity line", l.name)));
        }
        return Ok(());
    };
    let bad = |why: String| Error::integrity(format!("{file}: {why}"));
    if lines.len() != g.parts() {
        return Err(bad(format!("lists {} files; its parity line says {} data and {} parity parts", lines.len(), g.data, g.parity)));
    }
    let first = names::parse_artifact_name(&lines[0].name)
        .filter(|a| a.part == Some(0))
        .ok_or_else(|| bad(format!("{} is not a first part", lines[0].name)))?;
    for (i, l) in lines.iter().enumerate() {
        let ok = match i.checked_sub(g.data) {
            None => names::parse_artifact_name(&l.name) == Some(names::ArtifactName { part: Some(i), ..first }),
            Some(j) => names::parse_parity_name(&l.name) == Some((stem, j)),
        };
        if !ok {
            return Err(bad(format!("line {} names {}, not part {i} of the parity layout", i + 1, l.name)));
        }
    }
    Ok(())
}

/// A FIFO, device or socket as an artifact file of a local bundle is refused
/// before anything is read (the directory transport's `stat` says what it is):
/// a FIFO would block the load half way, a device never end. A missing part is
/// left to the reader, which reports it in its place.
fn refuse_special_parts(transport: &dyn Transport, checksums: &ChecksumFile) -> Result<()> {
    if transport.local_dir().is_none() {
        return Ok(());
    }
    for line in &checksums.lines {
        if let Err(e) = transport.stat(&line.name) {
            if e.is_not_regular() {
                return Err(e.into());
            }
        }
    }
    Ok(())
}
