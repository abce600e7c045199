//! Platforms (`OS/ARCH[/VARIANT]`) and `--platform` selection.
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// One `--platform` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlatformSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl PlatformSpec {
    pub fn parse(s: &str) -> Result<PlatformSpec> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => {
                Ok(PlatformSpec { os: os.to_string(), architecture: arch.to_string(), variant: None })
            }
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(PlatformSpec { os: os.to_string(), architecture: arch.to_string(), variant: Some(variant.to_string()) })
            }
            _ => Err(Error::usage(format!("invalid platform {s:?}: use OS/ARCH[/VARIANT], e.g. linux/arm64"))),
        }
    }

    /// The machine ferry runs on, as Docker names it.
    pub fn host() -> PlatformSpec {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            other => other,
        };
        PlatformSpec { os: "linux".into(), architecture: arch.into(), variant: None }
    }

    pub fn matches(&self, p: &Platform) -> bool {
        self.os == p.os && self.architecture == p.architecture && (self.variant.is_none() || self.variant == p.variant)
    }
}

/// The platforms to keep; empty means all.
#[derive(Debug, Clone, Default)]
pub struct PlatformFilter(pub Vec<PlatformSpec>);

impl PlatformFilter {
    pub fn parse(values: &[String]) -> Result<PlatformFilter> {
        values.iter().map(|v| PlatformSpec::parse(v)).collect::<Result<_>>().map(PlatformFilter)
    }

    pub fn is_all(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an index entry with this platform is kept. Entries without a
    /// platform are kept only when keeping everything.
    pub fn keeps(&self, p: Option<&Platform>) -> bool {
        match p {
            _ if self.is_all() => true,
            Some(p) => self.0.iter().any(|s| s.matches(p)),
            None => false,
        }
    }

    /// The platform `docker load` should get from a multi-platform image.
    pub fn preferred(&self) -> PlatformSpec {
        self.0.first().cloned().unwrap_or_else(PlatformSpec::host)
    }
}
