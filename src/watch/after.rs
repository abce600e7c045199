//! `--after keep|delete|move:DIR`: what becomes of a loaded bundle at the location.
use crate::bundle::{names, BundleSource};
use crate::error::{Error, Result};
use ferry_transports::Transport;
use serde::Serialize;

/// What happens to a bundle at the location once it is loaded (`--after`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    Keep,
    Delete,
    /// Into this folder, relative to the location.
    Move(String),
}

impl After {
    pub fn parse(s: &str) -> Result<After> {
        match s {
            "keep" => Ok(After::Keep),
            "delete" => Ok(After::Delete),
            _ => match s.strip_prefix("move:") {
                Some(dir) if ferry_transports::subdir_parts(dir).is_ok() => Ok(After::Move(dir.trim_end_matches('/').to_string())),
                Some(dir) => Err(Error::usage(format!(
                    "--after move:{dir}: the folder must be a relative path inside the location (no leading /, no ..)"
                ))),
                None => Err(Error::usage(format!("--after {s}: expected keep, delete or move:DIR"))),
            },
        }
    }
}

/// Apply `after` to `source` at `transport`: artifact files and the signature first,
/// `STEM.sha256` last (the order a bundle is published in). Returns what was done
/// (`None` for `keep`).
pub fn apply(after: &After, transport: &dyn Transport, source: &BundleSource) -> Result<Option<String>> {
    if *after == After::Keep {
        return Ok(None);
    }
    let mut files: Vec<String> = source.artifact_names().iter().map(|s| s.to_string()).collect();
    if source.signature.is_some() {
        files.push(names::signature_name(&source.stem));
    }
    files.push(names::checksum_name(&source.stem));
    for name in &files {
        let done = match after {
            After::Move(dir) => transport.move_to(name, dir),
            _ => transport.delete(name),
        };
        match done {
            // Already gone: an earlier run got this far before it stopped.
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(e.into()),
            Ok(()) => {}
        }
    }
    Ok(Some(match after {
        After::Move(dir) => format!("moved to {dir}"),
        _ => "deleted".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    #[test]
    fn after_parses_keep_delete_and_folders_inside_the_location() {
        assert_eq!(After::parse("keep").unwrap(), After::Keep);
        assert_eq!(After::parse("delete").unwrap(), After::Delete);
        assert_eq!(After::parse("move:done/2026/").unwrap(), After::Move("done/2026".into()));
        for bad in ["move:", "move:/abs", "move:../up", "move:a/../b", "moved", ""] {
            assert_eq!(After::parse(bad).unwrap_err().kind(), ErrorKind::Usage, "{bad}");
        }
    }
}
