//! File names of a bundle.
use crate::compress::Compression;
use crate::error::{Error, Result};

pub const CHECKSUM_SUFFIX: &str = ".sha256";
pub const SIGNATURE_SUFFIX: &str = ".sha256.minisig";
pub const AGE_SUFFIX: &str = ".age";

/// `STEM.tar[.zst|.gz][.age]`
pub fn artifact_name(stem: &str, compression: Compression, encrypted: bool) -> String {
    format!("{stem}.tar{}{}", compression.extension(), if encrypted { AGE_SUFFIX } else { "" })
}

/// `ARTIFACT.000`, `ARTIFACT.001`, ...
pub fn part_name(artifact: &str, index: usize) -> String {
    format!("{artifact}.{index:03}")
}

/// `STEM.parity.000`, `STEM.parity.001`, ...: not `ARTIFACT.*`, so that
/// `cat ARTIFACT.*` still joins the data parts alone.
pub fn parity_part_name(stem: &str, index: usize) -> String {
    format!("{stem}{PARITY_INFIX}{index:03}")
}

pub const PARITY_INFIX: &str = ".parity.";

/// The inverse of [`parity_part_name`]: `(stem, index)`.
pub fn parse_parity_name(file_name: &str) -> Option<(&str, usize)> {
    let (stem, digits) = file_name.rsplit_once(PARITY_INFIX)?;
    if stem.is_empty() || digits.len() < 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem, digits.parse().ok()?))
}

/// Whether `file_name` is an artifact file, part or parity part of bundle `stem`.
pub fn is_part_of(stem: &str, file_name: &str) -> bool {
    is_artifact_of(stem, file_name) || parse_parity_name(file_name).is_some_and(|(s, _)| s == stem)
}

pub fn checksum_name(stem: &str) -> String {
    format!("{stem}{CHECKSUM_SUFFIX}")
}

pub fn signature_name(stem: &str) -> String {
    format!("{stem}{SIGNATURE_SUFFIX}")
}

/// Whether `name` is a plain file name of the kind bundles use (stems and every
/// file of a bundle): letters, digits and `. _ - + @`, not starting with `.` or `-`.
pub fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name.starts_with('.')
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-+@".contains(c))
}

/// A stem must be a plain file name: it is used on USB keys, FTP and HTTP servers.
pub fn check_stem(stem: &str) -> Result<()> {
    let ok = stem.len() <= 200 && is_plain_name(stem);
    if !ok {
        return Err(Error::usage(format!(
            "invalid bundle name \"{}\": use letters, digits and . _ - + @ (no slashes, not starting with . or -)",
            crate::untrusted::shown(stem)
        )));
    }
    Ok(())
}

/// A stem derived from image names: `busybox_latest`, or `images-N` for many.
pub fn default_stem(image_names: &[String]) -> String {
    let clean = |s: &str| -> String {
        s.rsplit('/')
            .next()
            .unwrap_or(s)
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '_' })
            .collect::<String>()
            .trim_start_matches(['.', '-'])
            .to_string()
    };
    match image_names {
        [one] if !clean(one).is_empty() => clean(one),
        many => format!("images-{}", many.len()),
    }
}

/// An artifact file name taken apart: `STEM.tar[.zst|.gz][.age][.NNN]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactName<'a> {
    pub stem: &'a str,
    pub compression: Compression,
    pub encrypted: bool,
    /// The part's index, for a split artifact.
    pub part: Option<usize>,
}

/// The inverse of [`artifact_name`] and [`part_name`]. Suffixes are read from
/// the end, so a stem may itself hold `.tar`, `.age` or `.gz` (`my.tar.backup`,
/// `notes.age`): every stem [`check_stem`] accepts comes back whole.
pub fn parse_artifact_name(file_name: &str) -> Option<ArtifactName<'_>> {
    let mut rest = file_name;
    let mut part = None;
    if let Some((head, digits)) = rest.rsplit_once('.') {
        if digits.len() >= 3 && digits.bytes().all(|b| b.is_ascii_digit()) {
            part = Some(digits.parse().ok()?);
            rest = head;
        }
    }
    let encrypted = match rest.strip_suffix(AGE_SUFFIX) {
        Some(head) => {
            rest = head;
            true
        }
        None => false,
    };
    let mut compression = Compression::None;
    for c in [Compression::Zstd, Compression::Gzip] {
        if let Some(head) = rest.strip_suffix(c.extension()) {
            compression = c;
            rest = head;
            break;
        }
    }
    let stem = rest.strip_suffix(".tar").filter(|s| !s.is_empty())?;
    Some(ArtifactName { stem, compression, encrypted, part })
}

/// Whether `file_name` is an artifact file (or part) of the bundle `stem`; a
/// longer stem that starts the same (`my` and `my.tar.backup`) is another bundle.
pub fn is_artifact_of(stem: &str, file_name: &str) -> bool {
    parse_artifact_name(file_name).is_some_and(|a| a.stem == stem)
}

/// The stem of a bundle file name, if it is one.
pub fn stem_of(file_name: &str) -> Option<&str> {
    if let Some(stem) = file_name.strip_suffix(SIGNATURE_SUFFIX) {
        return Some(stem);
    }
    if let Some(stem) = file_name.strip_suffix(CHECKSUM_SUFFIX) {
        return Some(stem);
    }
    parse_artifact_name(file_name).map(|a| a.stem).or_else(|| parse_parity_name(file_name).map(|(stem, _)| stem))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn names() {
        assert_eq!(artifact_name("x", Compression::Zstd, true), "x.tar.zst.age");
        assert_eq!(part_name("x.tar.zst", 2), "x.tar.zst.002");
        assert_eq!(default_stem(&["localhost/a/busybox:1.0".into()]), "busybox_1.0");
        assert_eq!(stem_of("x.sha256.minisig"), Some("x"));
        assert_eq!(stem_of("x.tar.gz.000"), Some("x"));
        assert_eq!(stem_of("x.parity.001"), Some("x"));
        assert_eq!(parse_parity_name(&parity_part_name("a.parity.b", 7)), Some(("a.parity.b", 7)));
        assert!(is_part_of("x", "x.parity.000") && !is_part_of("x", "y.parity.000") && parse_parity_name("x.parity.1").is_none());
        assert!(check_stem("../x").is_err());
        assert!(check_stem("ok_1.2-3").is_ok());
    }

    #[test]
    fn stems_with_dots_round_trip() {
        assert_eq!(stem_of("release-1.2.tar.zst"), Some("release-1.2"));
        assert_eq!(stem_of("release-1.2.sha256"), Some("release-1.2"));
        assert_eq!(stem_of("release-1.2.sha256.minisig"), Some("release-1.2"));
        // A stem may hold `.tar` or `.age`: names are read from their end.
        assert!(check_stem("my.tar.backup").is_ok());
        assert_eq!(stem_of("my.tar.backup.tar.zst.age.001"), Some("my.tar.backup"));
        assert_eq!(stem_of("notes.age.tar.gz"), Some("notes.age"));
        assert_eq!(parse_artifact_name("notes.age.tar.gz").map(|a| a.encrypted), Some(false));
        assert!(is_artifact_of("my", "my.tar.zst") && !is_artifact_of("my", "my.tar.backup.tar.zst"));
        // Not artifacts: what `.tar` is not followed by in a bundle.
        for other in ["my.tar.backup", "x.tar.xz", "x.tar.zst.partial", ".tar", "x.tar.zst.01", "x.zst"] {
            assert_eq!(parse_artifact_name(other), None, "{other}");
        }
        assert_eq!(stem_of("my.tar.backup"), None);
    }

    proptest::proptest! {
        /// Every stem check_stem accepts is what stem_of gives back for each of its files.
        #[test]
        fn every_valid_stem_round_trips(stem in "[a-z0-9][a-z0-9._+@-]{0,30}", part in proptest::option::of(0usize..2000), encrypted: bool, c in 0usize..3) {
            proptest::prop_assume!(check_stem(&stem).is_ok());
            let compression = [Compression::None, Compression::Gzip, Compression::Zstd][c];
            let artifact = artifact_name(&stem, compression, encrypted);
            let file = part.map(|i| part_name(&artifact, i)).unwrap_or(artifact);
            proptest::prop_assert_eq!(parse_artifact_name(&file), Some(ArtifactName { stem: &stem, compression, encrypted, part }));
            proptest::prop_assert_eq!(stem_of(&file), Some(stem.as_str()));
            for sidecar in [checksum_name(&stem), signature_name(&stem)] {
                proptest::prop_assert_eq!(stem_of(&sidecar), Some(stem.as_str()));
            }
        }
    }
}
