//! `oci:DIR[:REF]` target. Blobs are staged in a hidden sibling directory on
//! the same filesystem; on commit they are renamed into DIR and index.json is
//! replaced last, atomically. A failed load leaves DIR as it was.
use super::dir_handle::DirHandle;
use crate::bundle::layout::OCI_LAYOUT;
use crate::bundle::verify::{Sink, Verified};
use crate::digest::Digest;
use crate::disk::check_space;
use crate::error::{Error, Result};
use crate::image::media_types::{ANN_CONTAINERD_NAME, ANN_REF_NAME};
use crate::image::{parse_json, Descriptor, MAX_DOCUMENT};
use ferry_transports::local_file::{self, NotRegular};
use std::fs;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

pub struct OciDirSink {
    target: PathBuf,
    reference: Option<String>,
    staging: Option<tempfile::TempDir>,
    /// A delta's left-out blobs (hex), which the layout must still hold at commit.
    /// A delta's base blobs (hex digest, size), checked again at commit.
    left_out: Vec<(String, u64)>,
    /// Hash those blobs when the load begins, not only check their sizes.
    deep: bool,
}

impl OciDirSink {
    pub fn new(target: &Path, reference: Option<String>) -> Result<Self> {
        if target.exists() && !target.is_dir() {
            return Err(Error::usage(format!("{} exists and is not a directory", target.display())));
        }
        if target.is_dir() {
            check_layout_entries(target)?;
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
        Ok(OciDirSink { target: target.to_path_buf(), reference, staging: Some(staging), left_out: Vec::new(), deep: false })
    }

    /// `load --deep`: a delta's left-out layers are hashed in the layout.
    pub fn deep(mut self, on: bool) -> Self {
        self.deep = on;
        self
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
        let mut value: serde_json::Value = if let Some(bytes) = read_existing_index(&existing)? {
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

/// Entries of an existing layout that ferry writes through or reads: each
/// must be what it claims, itself. A symlink there could send a write outside
/// the layout (`File::create` follows a dangling one) and a FIFO would block
/// the read of index.json, so either is refused before anything is staged.
fn check_layout_entries(target: &Path) -> Result<()> {
    for (name, want_dir) in [("oci-layout", false), ("index.json", false), ("blobs", true), ("blobs/sha256", true)] {
        let path = target.join(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Error::io(format!("checking {}", path.display()), e)),
        };
        let kind = NotRegular::of(&meta);
        let wrong = match kind {
            Some(NotRegular::Directory) if want_dir => continue,
            None if want_dir => "a regular file".to_string(),
            None => continue,
            Some(kind) => kind.to_string(),
        };
        let why = match kind {
            Some(NotRegular::Symlink) => "a link there could send ferry's writes outside the layout",
            _ => "ferry reads and writes only real files and directories there",
        };
        return Err(Error::usage(format!(
            "{} is {wrong}, not a {}: refusing to load into {} ({why})",
            path.display(),
            if want_dir { "directory" } else { "regular file" },
            target.display()
        )));
    }
    Ok(())
}

/// The target's index.json, if it has one: the file itself (not a link), read
/// no further than a document may be.
fn read_existing_index(path: &Path) -> Result<Option<Vec<u8>>> {
    let ctx = || format!("reading {}", path.display());
    let file = match local_file::open_regular_here(path) {
        Ok(Ok(f)) => f,
        Ok(Err(kind)) => return Err(Error::usage(format!("{} is {kind}, not a regular file: refusing to merge into it", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(ctx(), e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_DOCUMENT + 1).read_to_end(&mut bytes).map_err(|e| Error::io(ctx(), e))?;
    if bytes.len() as u64 > MAX_DOCUMENT {
        return Err(Error::format(format!("{} is larger than a metadata document may be ({MAX_DOCUMENT} bytes)", path.display())));
    }
    Ok(Some(bytes))
}

/// A new file in the staging directory (ferry's own, fresh): created exclusively.
fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let ctx = || format!("writing {}", path.display());
    let mut f = local_file::create_new(path).map_err(|e| Error::io(ctx(), e))?;
    f.write_all(bytes).and_then(|_| f.sync_all()).map_err(|e| Error::io(ctx(), e))
}

impl Sink for OciDirSink {
    fn reserve(&mut self, total: u64) -> Result<()> {
        check_space(self.staging(), total)
    }

    fn begin_blob(&mut self, digest: &Digest, _size: u64) -> Result<Box<dyn Write + '_>> {
        let path = self.staging().join(digest.blob_path());
        let f = local_file::create_new(&path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
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
        // Blobs go into blobs/sha256 held open (never re-walked through a path a symlink
        // swapped in since `new` could redirect); a blob there already is kept only when
        // it is a regular file itself, anything else at its name is replaced.
        let blobs = self.target.join("blobs/sha256");
        let opening = |e| Error::io(format!("opening {}", blobs.display()), e);
        let blob_dir = DirHandle::open(&self.target).and_then(|t| t.subdir("blobs")).and_then(|b| b.subdir("sha256")).map_err(opening)?;
        for entry in fs::read_dir(stage.join("blobs/sha256")).map_err(|e| Error::io("reading the staging directory", e))? {
            let entry = entry.map_err(|e| Error::io("reading the staging directory", e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let moving = |e| Error::io(format!("moving {}", blobs.join(&name).display()), e);
            if !blob_dir.has_regular_file(&name).map_err(moving)? {
                blob_dir.rename_into(&entry.path(), &name).map_err(moving)?;
            }
        }
        // A delta's base is still there (checked when the load began; not removed since).
        for (hex, size) in &self.left_out {
            let there = blob_dir.regular_file_size(hex).map_err(|e| Error::io(format!("checking {}", blobs.join(hex).display()), e))?;
            if there != Some(*size) {
                return Err(Error::MissingBase(format!(
                    "{} went missing from {} (or changed size) while the delta loaded; index.json was not changed",
                    hex,
                    blobs.display()
                )));
            }
        }
        // Written in the staging directory and renamed in: a rename replaces a link, never follows it.
        if fs::symlink_metadata(self.target.join("oci-layout")).is_err() {
            let tmp = stage.join("oci-layout");
            write_file(&tmp, OCI_LAYOUT)?;
            fs::rename(&tmp, self.target.join("oci-layout")).map_err(|e| Error::io("writing oci-layout", e))?;
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

    /// A delta loads when the layout holds every left-out layer: a regular
    /// file at its blob path with its size (and, with `--deep`, its digest).
    fn delta(&mut self, delta: &crate::delta::Delta) -> Result<()> {
        let target = format!("oci:{}", self.target.display());
        let deep = self.deep;
        crate::delta::check_target(delta, &target, |l| {
            let path = self.target.join(l.digest.blob_path());
            let ctx = |e| Error::io(format!("checking {}", path.display()), e);
            let file = match local_file::open_regular_here(&path) {
                Ok(Ok(file)) => file,
                Ok(Err(_)) => return Ok(false),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(ctx(e)),
            };
            if file.metadata().map_err(ctx)?.len() != l.size {
                return Ok(false);
            }
            if !deep {
                return Ok(true);
            }
            let mut hashing = crate::digest::HashingReader::new(std::io::BufReader::with_capacity(1 << 20, file));
            std::io::copy(&mut hashing, &mut std::io::sink()).map_err(ctx)?;
            Ok(hashing.finish().0 == l.digest)
        })?;
        self.left_out = delta.left_out.iter().map(|l| (l.digest.hex().to_string(), l.size)).collect();
        Ok(())
    }
}
