//! Reading the images a command names, from whatever sources they are in:
//! archives and OCI layouts (`image/`) and the Docker Engine (`engine/`). Used by
//! `save` and `flatten` alike.
use crate::bundle::Progress;
use crate::error::Result;
use crate::image::{open_source, ImageSet, SourceOptions};
use crate::reference::ImageRef;

/// Read all images into one set; all docker-daemon: images come from one
/// export call (shared layers once), placed where the first of them was named.
pub fn collect_images(images: &[ImageRef], source: &SourceOptions, progress: &dyn Progress) -> Result<ImageSet> {
    let daemon_names: Vec<String> =
        images.iter().filter_map(|i| if let ImageRef::DockerDaemon(n) = i { Some(n.clone()) } else { None }).collect();
    let mut from_daemon = if daemon_names.is_empty() { None } else { Some(crate::engine::export_images(&daemon_names, source, progress)?) };
    let mut set = ImageSet::default();
    for image in images {
        match image {
            ImageRef::DockerDaemon(_) => {
                if let Some(one) = from_daemon.take() {
                    set.merge(one);
                }
            }
            _ => set.merge(open_source(image, source)?),
        }
    }
    Ok(set)
}
