//! `save containerd:NAME`: a namespace's image records and content store seen
//! as an OCI image layout, so the layout reader selects, follows and checks
//! them as it does a directory. index.json is made from the image records
//! (names as `io.containerd.image.name`); blobs are streamed from the content
//! service when the bundle writer reads them.
use super::client::{Containerd, Endpoint};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::files::SourceFiles;
use crate::image::media_types::{ANN_CONTAINERD_NAME, ANN_REF_NAME};
use crate::image::{BlobSource, OpenBlob};
use crate::reference::ImageName;
use std::io::{self, Read};
use std::sync::Arc;

pub struct ContainerdFiles {
    ctd: Arc<Containerd>,
    index: Arc<Vec<u8>>,
}

impl ContainerdFiles {
    pub fn open(endpoint: &Endpoint, namespace: &str) -> Result<ContainerdFiles> {
        let ctd = Containerd::connect(endpoint, namespace)?;
        let manifests: Vec<serde_json::Value> = ctd
            .images()?
            .into_iter()
            .filter_map(|image| {
                let target = image.target?;
                let tag = ImageName::parse(&image.name).map(|n| n.tag);
                let mut annotations = serde_json::Map::new();
                annotations.insert(ANN_CONTAINERD_NAME.into(), image.name.clone().into());
                if let Some(tag) = tag {
                    annotations.insert(ANN_REF_NAME.into(), tag.into());
                }
                Some(serde_json::json!({
                    "mediaType": target.media_type, "digest": target.digest, "size": target.size, "annotations": annotations,
                }))
            })
            .collect();
        let index = serde_json::json!({"schemaVersion": 2, "manifests": manifests});
        Ok(ContainerdFiles { ctd: Arc::new(ctd), index: Arc::new(serde_json::to_vec(&index).expect("json serializes")) })
    }

    fn blob(&self, path: &str) -> Result<Digest> {
        let hex = path.strip_prefix("blobs/sha256/").ok_or_else(|| Error::format(format!("{}: no file {path}", self.describe())))?;
        Digest::parse(&format!("sha256:{hex}")).map_err(|_| Error::format(format!("{}: no file {path}", self.describe())))
    }
}

impl SourceFiles for ContainerdFiles {
    fn describe(&self) -> String {
        format!("containerd:{} at {}", self.ctd.namespace, self.ctd.endpoint.address.display())
    }
    fn exists(&self, path: &str) -> bool {
        path == "index.json" || self.blob(path).ok().and_then(|d| self.ctd.content_size(&d).ok().flatten()).is_some()
    }
    fn locate(&self, path: &str) -> Result<(BlobSource, u64)> {
        if path == "index.json" {
            return Ok((BlobSource::Bytes(self.index.clone()), self.index.len() as u64));
        }
        let digest = self.blob(path)?;
        let size = self.ctd.content_size(&digest)?.ok_or_else(|| {
            Error::format(format!("{}: the content store lacks {digest}", self.describe())).with_hint(
                "the image is not complete in containerd (only some platforms pulled?): pick one with --platform, or pull it again",
            )
        })?;
        Ok((BlobSource::Remote(Arc::new(ContentBlob { ctd: self.ctd.clone(), digest })), size))
    }
}

/// One blob of containerd's content store.
struct ContentBlob {
    ctd: Arc<Containerd>,
    digest: Digest,
}

impl std::fmt::Debug for ContentBlob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "containerd content {}", self.digest)
    }
}

impl OpenBlob for ContentBlob {
    fn open(&self) -> io::Result<Box<dyn Read + Send>> {
        Ok(Box::new(self.ctd.read(&self.digest)))
    }
}
