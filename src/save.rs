//! `ferry save`: open every image source, merge them (blobs once), write the bundle.
use crate::bundle::{names, write_bundle, Progress, SaveOptions, SaveReport};
use crate::error::{Error, Result};
use crate::image::{open_source, ImageSet, SourceOptions};
use crate::reference::ImageRef;
use ferry_transports::{Location, Transport};
use std::sync::Arc;

/// Read all images into one set.
pub fn collect_images(images: &[ImageRef], source: &SourceOptions) -> Result<ImageSet> {
    let mut set = ImageSet::default();
    for image in images {
        let one = match image {
            ImageRef::DockerDaemon(_) => {
                return Err(Error::usage(
                    "docker-daemon: sources are not available in this build; save from docker-archive:, oci-archive: or oci:",
                ))
            }
            _ => open_source(image, source)?,
        };
        set.merge(one);
    }
    Ok(set)
}

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
    progress: &dyn Progress,
) -> Result<SaveReport> {
    if let Some(dir) = &source.spool_dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    }
    let set = collect_images(images, source)?;
    let stem = stem.unwrap_or_else(|| names::default_stem(&set.images.iter().map(|i| i.display_name()).collect::<Vec<_>>()));
    names::check_stem(&stem)?;
    write_bundle(&set, output, make_options(stem), progress)
}
