//! What a document is — an index, a manifest, a config — decided in one
//! place, from what its descriptor says *and* from its content, refusing a
//! mismatch (a "manifest" whose bytes are an index, a config that is a
//! manifest...). Used alike by the source readers and `save`, the bundle
//! verifier (and so every load target) and flatten.
use super::media_types as mt;
use super::Descriptor;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// What a blob is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Index,
    Manifest,
    Config,
    Layer,
    /// A document ferry does not interpret (an artifact): carried as it is.
    Other,
}

impl Kind {
    fn with_article(self) -> &'static str {
        match self {
            Kind::Index => "an index",
            Kind::Manifest => "a manifest",
            Kind::Config => "a config",
            Kind::Layer => "a layer",
            Kind::Other => "another document",
        }
    }
}

/// What a descriptor says a blob is, before its bytes are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    Index,
    Manifest,
    /// Listed by an index without a media type: the content decides.
    Document,
    /// A manifest's `config`.
    Config,
    /// A manifest's `layers`.
    Layer,
    /// Listed by an index with a media type ferry does not interpret.
    Other,
}

impl Claim {
    /// A descriptor listed by an index (index.json or a nested index).
    pub fn of_index_entry(d: &Descriptor) -> Claim {
        if mt::is_index(&d.media_type) {
            Claim::Index
        } else if mt::is_manifest(&d.media_type) {
            Claim::Manifest
        } else if d.media_type.is_empty() {
            Claim::Document
        } else {
            Claim::Other
        }
    }

    /// Whether the blob is a JSON document whose content must be classified.
    pub fn is_document(self) -> bool {
        matches!(self, Claim::Index | Claim::Manifest | Claim::Document | Claim::Config)
    }

    /// What a blob is when two descriptors describe it, if both can be right:
    /// the more specific claim. (The OCI empty blob `{}` is often a config
    /// and a layer at once; an artifact type says nothing.)
    pub fn merge(self, other: Claim) -> Option<Claim> {
        use Claim::*;
        match (self, other) {
            (a, b) if a == b => Some(a),
            (Other, x) | (x, Other) => Some(x),
            (Document, x @ (Index | Manifest | Config)) | (x @ (Index | Manifest | Config), Document) => Some(x),
            (Config, Layer) | (Layer, Config) => Some(Config),
            _ => None,
        }
    }

    /// The claim a blob's verified kind settles (for descriptors that come after it).
    pub fn settled(kind: Kind) -> Claim {
        match kind {
            Kind::Index => Claim::Index,
            Kind::Manifest => Claim::Manifest,
            Kind::Config => Claim::Config,
            Kind::Layer => Claim::Layer,
            Kind::Other => Claim::Other,
        }
    }

    pub fn with_article(self) -> &'static str {
        match self {
            Claim::Index => "an index",
            Claim::Manifest => "a manifest",
            Claim::Document => "a document",
            Claim::Config => "a config",
            Claim::Layer => "a layer",
            Claim::Other => "an artifact",
        }
    }
}

/// Why a document was not accepted as what its descriptor says.
#[derive(Debug)]
pub enum Refused {
    NotJson(serde_json::Error),
    Mismatch { claimed: Claim, content: Content },
}

/// What a document's content looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    Is(Kind),
    /// Both an index and a manifest (or its own `mediaType` says one and its shape the other).
    Ambiguous,
}

impl fmt::Display for Refused {
    /// Follows the document's name: "blob sha256:… is described as …".
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refused::NotJson(e) => write!(f, "is not valid JSON: {e}"),
            Refused::Mismatch { claimed, content } => {
                let content = match content {
                    Content::Is(kind) => kind.with_article(),
                    Content::Ambiguous => "both an index and a manifest",
                };
                write!(f, "is described as {} but its content is {content}", claimed.with_article())
            }
        }
    }
}

/// Decide what the blob a descriptor `claim`s to be is, from its `bytes`.
/// Layers and artifacts are not looked into.
pub fn classify(claim: Claim, bytes: &[u8]) -> Result<Kind, Refused> {
    match claim {
        Claim::Layer => return Ok(Kind::Layer),
        Claim::Other => return Ok(Kind::Other),
        _ => {}
    }
    let content = content_of(bytes).map_err(Refused::NotJson)?;
    let mismatch = || Refused::Mismatch { claimed: claim, content };
    match (claim, content) {
        (Claim::Index, Content::Is(Kind::Index)) => Ok(Kind::Index),
        (Claim::Manifest, Content::Is(Kind::Manifest)) => Ok(Kind::Manifest),
        (Claim::Document, Content::Is(kind)) => Ok(kind),
        (Claim::Config, Content::Is(Kind::Other)) => Ok(Kind::Config),
        _ => Err(mismatch()),
    }
}

/// What `bytes` are by their shape and their own `mediaType`: an index lists
/// `manifests`, a manifest has a `config` descriptor (a Docker image config
/// has a `config` too, but it is no descriptor: it has no `digest`).
fn content_of(bytes: &[u8]) -> Result<Content, serde_json::Error> {
    let shape: Shape = serde_json::from_slice(bytes)?;
    let by_shape = match (shape.manifests.is_some(), shape.config.is_some_and(|c| c.is_descriptor)) {
        (true, false) => Content::Is(Kind::Index),
        (false, true) => Content::Is(Kind::Manifest),
        (true, true) => Content::Ambiguous,
        (false, false) => Content::Is(Kind::Other),
    };
    Ok(match shape.media_type.as_deref() {
        Some(t) if mt::is_index(t) && by_shape != Content::Is(Kind::Index) => Content::Ambiguous,
        Some(t) if mt::is_manifest(t) && by_shape != Content::Is(Kind::Manifest) => Content::Ambiguous,
        _ => by_shape,
    })
}

/// The fields that tell documents apart; everything else is skipped without
/// being kept (serde_json skips values iteratively, whatever their depth).
#[derive(Deserialize)]
struct Shape {
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<IgnoredAny>,
    #[serde(default)]
    config: Option<ConfigField>,
}

/// A `config` field: whether it is a descriptor (an object with a `digest`).
struct ConfigField {
    is_descriptor: bool,
}

impl<'de> Deserialize<'de> for ConfigField {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ConfigField;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ConfigField, A::Error> {
                let mut is_descriptor = false;
                while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                    is_descriptor |= key == "digest";
                    map.next_value::<IgnoredAny>()?;
                }
                Ok(ConfigField { is_descriptor })
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<ConfigField, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(ConfigField { is_descriptor: false })
            }
            fn visit_bool<E>(self, _: bool) -> Result<ConfigField, E> {
                Ok(ConfigField { is_descriptor: false })
            }
            fn visit_i64<E>(self, _: i64) -> Result<ConfigField, E> {
                Ok(ConfigField { is_descriptor: false })
            }
            fn visit_u64<E>(self, _: u64) -> Result<ConfigField, E> {
                Ok(ConfigField { is_descriptor: false })
            }
            fn visit_f64<E>(self, _: f64) -> Result<ConfigField, E> {
                Ok(ConfigField { is_descriptor: false })
            }
            fn visit_str<E>(self, _: &str) -> Result<ConfigField, E> {
                Ok(ConfigField { is_descriptor: false })
            }
            fn visit_unit<E>(self) -> Result<ConfigField, E> {
                Ok(ConfigField { is_descriptor: false })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INDEX: &[u8] = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}"#;
    const MANIFEST: &[u8] = br#"{"schemaVersion":2,"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:00","size":2},"layers":[]}"#;
    const DOCKER_CONFIG: &[u8] =
        br#"{"architecture":"amd64","config":{"Env":["PATH=/bin"],"Cmd":null},"rootfs":{"type":"layers","diff_ids":[]}}"#;

    fn refused(claim: Claim, bytes: &[u8]) -> String {
        classify(claim, bytes).unwrap_err().to_string()
    }

    #[test]
    fn descriptor_and_content_must_agree() {
        assert_eq!(classify(Claim::Index, INDEX).unwrap(), Kind::Index);
        assert_eq!(classify(Claim::Manifest, MANIFEST).unwrap(), Kind::Manifest);
        assert_eq!(classify(Claim::Config, DOCKER_CONFIG).unwrap(), Kind::Config);
        assert_eq!(classify(Claim::Config, b"{}").unwrap(), Kind::Config);
        assert_eq!(classify(Claim::Document, INDEX).unwrap(), Kind::Index);
        assert_eq!(classify(Claim::Document, MANIFEST).unwrap(), Kind::Manifest);
        assert_eq!(classify(Claim::Document, DOCKER_CONFIG).unwrap(), Kind::Other);
        assert_eq!(classify(Claim::Layer, b"\x1f\x8b not json").unwrap(), Kind::Layer);
        assert_eq!(classify(Claim::Other, b"anything").unwrap(), Kind::Other);

        assert_eq!(refused(Claim::Manifest, INDEX), "is described as a manifest but its content is an index");
        assert_eq!(refused(Claim::Index, MANIFEST), "is described as an index but its content is a manifest");
        assert_eq!(refused(Claim::Config, MANIFEST), "is described as a config but its content is a manifest");
        assert_eq!(refused(Claim::Config, INDEX), "is described as a config but its content is an index");
        assert_eq!(refused(Claim::Index, DOCKER_CONFIG), "is described as an index but its content is another document");
        // Its own mediaType says index, its shape says manifest.
        let lying = br#"{"mediaType":"application/vnd.oci.image.index.v1+json","config":{"digest":"sha256:00","size":1}}"#;
        assert_eq!(refused(Claim::Index, lying), "is described as an index but its content is both an index and a manifest");
        assert!(refused(Claim::Manifest, b"not json").starts_with("is not valid JSON: "));
    }

    #[test]
    fn claims_of_two_descriptors_merge_when_both_can_be_right() {
        assert_eq!(Claim::Config.merge(Claim::Layer), Some(Claim::Config));
        assert_eq!(Claim::Layer.merge(Claim::Config), Some(Claim::Config));
        assert_eq!(Claim::Document.merge(Claim::Manifest), Some(Claim::Manifest));
        assert_eq!(Claim::Other.merge(Claim::Index), Some(Claim::Index));
        assert_eq!(Claim::Manifest.merge(Claim::Index), None);
        assert_eq!(Claim::Manifest.merge(Claim::Config), None);
        assert_eq!(Claim::Index.merge(Claim::Layer), None);
    }

    #[test]
    fn deep_documents_are_errors_not_stack_overflows() {
        // Skipped fields are skipped iteratively; typed parsing keeps serde_json's
        // recursion limit (no `unbounded_depth`).
        let mut deep = format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"sha256:{:064x}","size":1,"x":"#, 1).into_bytes();
        deep.extend(std::iter::repeat_n(b'[', 100_000));
        assert_eq!(
            classify(Claim::Index, &deep).unwrap_err().to_string().split(" at ").next().unwrap(),
            "is not valid JSON: EOF while parsing a list"
        );
        let e = serde_json::from_slice::<super::super::Index>(&deep).unwrap_err();
        assert!(e.to_string().starts_with("recursion limit exceeded"), "{e}");
        let e = serde_json::from_slice::<serde_json::Value>(&[b'['; 100_000]).unwrap_err();
        assert!(e.to_string().starts_with("recursion limit exceeded"), "{e}");
    }
}
