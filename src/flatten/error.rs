//! The one error type of the flatten module.
//!
//! Every variant that is about a layer entry names the layer (0-based index
//! into the `layers` argument of [`super::flatten_layers`], 0 = lowest) and the
//! entry, as written in the tar stream.

use std::io;

/// Result type of the flatten module.
pub type Result<T, E = FlattenError> = std::result::Result<T, E>;

/// Everything that can go wrong while flattening layers or rewriting a config.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlattenError {
    /// A layer entry whose path is unsafe (`..` component, whiteout of `.` or
    /// `..`, whiteout prefix in a directory name, NUL byte...). Hostile input.
    #[error("layer {layer}: refusing entry {entry:?}: {reason}")]
    UnsafePath { layer: usize, entry: String, reason: String },

    /// A hard link that escapes the root, points at nothing, or points at a
    /// directory. Hostile or corrupt input.
    #[error("layer {layer}: refusing hard link {entry:?} -> {target:?}: {reason}")]
    BadHardlink { layer: usize, entry: String, target: String, reason: String },

    /// A tar feature ferry does not flatten (sparse files, unknown entry types).
    #[error("layer {layer}: entry {entry:?}: {what} is not supported by flatten")]
    Unsupported { layer: usize, entry: String, what: String },

    /// The layer stream could not be read or is not a valid tar stream.
    #[error("layer {layer}: cannot read the layer as a tar stream{}: {source}",
        entry.as_ref().map(|e| format!(" (at entry {e:?})")).unwrap_or_default())]
    Tar {
        layer: usize,
        entry: Option<String>,
        #[source]
        source: io::Error,
    },

    /// Local I/O failed (temporary spool files, the output writer).
    #[error("{action}: {source}")]
    Io {
        action: &'static str,
        #[source]
        source: io::Error,
    },

    /// The image config could not be rewritten.
    #[error("image config: {0}")]
    Config(String),
}

impl FlattenError {
    /// True when the error means the input layers are hostile or corrupt
    /// (as opposed to a local I/O failure or an unsupported feature).
    pub fn is_hostile(&self) -> bool {
        matches!(self, FlattenError::UnsafePath { .. } | FlattenError::BadHardlink { .. })
    }

    pub(crate) fn io(action: &'static str) -> impl FnOnce(io::Error) -> FlattenError {
        move |source| FlattenError::Io { action, source }
    }
}
