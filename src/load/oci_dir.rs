//! `oci:DIR[:REF]` target. Blobs are staged in a hidden sibling directory on
//! the same filesystem; on commit they are renamed into DIR and index.json is
//! replaced last, atomically. A failed load leaves DIR as it was.
use super::check_space;
use crate::bundle::layout::OCI_LAYOUT;
use crate::bundle::verify::{Sink, Verified};
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::image::media_types::{ANN_CONTAINERD_NAME, ANN_REF_NAME};
use crate::image::{parse_json, Descriptor};
use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

pub struct OciDirSink {
    target: PathBuf,
    reference: Option<String>,
    staging: Option<tempfile::TempDir>,
}

impl OciDirSink {
    pub fn new(target: &Path, reference: Option<String>) -> Result<Self> {
        if target.exists() && !target.is_dir() {
            return Err(Error::usage(format!("{} exists and is not a directory", target.display())));
        }
        if target.is_dir() && fs::read_dir(target).map(|mut d| d.next().is_some()).unwrap_or(false) && !target.join("oci-layout").exists() {
            return Err(Error::usage(format!("{} is neither empty nor an OCI image layout", target.display())));
        }
        let parent = match target.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        fs::create_dir_all(&parent).map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
        let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "oci".into());
        let staging = tempfile::Builder::new()
            .prefix(&format!(".{name}.ferry-staging-"))
            .tempdir_in(&parent)
            .map_err(|e| Error::io(format!("creating a staging directory in {}", parent.display()), e))?;
        fs::create_dir_all(staging.path().join("blobs/sha256")).map_err(|e| Error::io("creating the staging directory", e))?;
        Ok(OciDirSink { target: target.to_path_buf(), reference, staging: Some(staging) })
    }

    fn staging(&self) -> &Path {
        self.staging.as_ref().expect("present until commit or abort").path()
    }

    /// index.json for the target: the bundle's entries (renamed to REF if
    /// asked), merged into an existing layout's entries.
    fn target_index(&self, verified: &Verified) -> Result<Vec<u8>> {
        let mut ours: Vec<Descriptor> = verified.index.as_ref().map(|i| i.manifests.clone()).unwrap_or_default();
        if let Some(r) = &self.reference {
            if ours.len() != 1 {
                return Err(Error::usage(format!(
                    "oci:{}:{r}: the bundle holds {} images; a reference can name only one",
                    self.target.display(),
                    ours.len()
                )));
            }
            let ann = ours[0].annotations.get_or_insert_with(Default::default);
            ann.insert(ANN_REF_NAME.into(), r.clone());
            ann.remove(ANN_CONTAINERD_NAME);
        }
        let existing = self.target.join("index.json");
        let mut value: serde_json::Value = if existing.exists() {
            let bytes = fs::read(&existing).map_err(|e| Error::io(format!("reading {}", existing.display()), e))?;
            parse_json(&bytes, &existing.display().to_string())?
        } else {
            serde_json::json!({"schemaVersion": 2, "mediaType": crate::image::media_types::OCI_INDEX, "manifests": []})
        };
        let mut manifests: Vec<Descriptor> = serde_json::from_value(value["manifests"].take()).unwrap_or_default();
        // A name now points at the new image, as `skopeo copy` would do.
        let new_names: Vec<&str> = ours.iter().filter_map(|d| d.annotation(ANN_REF_NAME)).collect();
        manifests.retain(|d| d.annotation(ANN_REF_NAME).map(|n| !new_names.contains(&n)).unwrap_or(true));
        manifests.extend(ours);
        value["manifests"] = serde_json::to_value(manifests).expect("descriptors serialize");
        Ok(serde_json::to_vec_pretty(&value).expect("json serializes"))
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let ctx = || format!("writing {}", path.display());
    let mut f = File::create(path).map_err(|e| Error::io(ctx(), e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(ctx(), e))
}

impl Sink for OciDirSink {
    fn reserve(&mut self, total: u64) -> Result<()> {
        check_space(self.staging(), total)
    }

    fn begin_blob(&mut self, digest: &Digest, _size: u64) -> Result<Box<dyn Write + '_>> {
        let path = self.staging().join(digest.blob_path());
        let f = File::create(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
        Ok(Box::new(BufWriter::with_capacity(1 << 20, f)))
    }

    fn commit(&mut self, verified: &Verified) -> Result<()> {
        let index = self.target_index(verified)?;
        let staging = self.staging.take().expect("committed once");
        let stage = staging.path();
        if !self.target.exists() || fs::read_dir(&self.target).map(|mut d| d.next().is_none()).unwrap_or(false) {
            write_file(&stage.join("oci-layout"), OCI_LAYOUT)?;
            write_file(&stage.join("index.json"), &index)?;
            let _ = fs::remove_dir(&self.target);
            let stage = staging.keep();
            return fs::rename(&stage, &self.target).map_err(|e| {
                let _ = fs::remove_dir_all(&stage);
                Error::io(format!("moving the loaded layout to {}", self.target.display()), e)
            });
        }
        let blobs = self.target.join("blobs/sha256");
        fs::create_dir_all(&blobs).map_err(|e| Error::io(format!("creating {}", blobs.display()), e))?;
        for entry in fs::read_dir(stage.join("blobs/sha256")).map_err(|e| Error::io("reading the staging directory", e))? {
            let entry = entry.map_err(|e| Error::io("reading the staging directory", e))?;
            let dest = blobs.join(entry.file_name());
            if !dest.exists() {
                fs::rename(entry.path(), &dest).map_err(|e| Error::io(format!("moving {}", dest.display()), e))?;
            }
        }
        if !self.target.join("oci-layout").exists() {
            write_file(&self.target.join("oci-layout"), OCI_LAYOUT)?;
        }
        // index.json last, atomically: until now the layout still showed its old images.
        let tmp = stage.join("index.json");
        write_file(&tmp, &index)?;
        fs::rename(&tmp, self.target.join("index.json")).map_err(|e| Error::io("replacing index.json", e))?;
        Ok(())
    }

    fn abort(&mut self) {
        self.staging.take();
    }
}
