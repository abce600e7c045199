//! What a Docker Engine holds, for a have-list: the layer stacks (diff_ids,
//! bottom first) of its images, from image inspect's `RootFS.Layers`.
use super::{Engine, EngineHost};
use crate::digest::Digest;
use crate::error::{Error, Result};
use std::collections::HashSet;

/// The diff_id stack of every image the engine lists (dangling ones too).
pub fn layer_stacks(engine: &Engine) -> Result<Vec<Vec<Digest>>> {
    let options = bollard::query_parameters::ListImagesOptions { all: false, ..Default::default() };
    let images = engine.block_on(engine.docker().list_images(Some(options))).map_err(|e| engine.error("listing images", &e))?;
    let mut stacks = Vec::with_capacity(images.len());
    for image in images {
        match layer_stack(engine, &image.id) {
            Ok(stack) => stacks.push(stack),
            // Removed between the listing and the inspect: it is not held any more.
            Err(Error::ImageNotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(stacks)
}

/// The diff_id stack of one image (a name or an ID).
pub fn layer_stack(engine: &Engine, name: &str) -> Result<Vec<Digest>> {
    let info = match engine.block_on(engine.docker().inspect_image(name)) {
        Ok(info) => info,
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
            return Err(Error::ImageNotFound(format!("image {name} not found in the Docker Engine at {}", engine.host.describe())));
        }
        Err(e) => return Err(engine.error(&format!("inspecting image {name}"), &e)),
    };
    let layers = info.root_fs.and_then(|r| r.layers).unwrap_or_default();
    layers
        .iter()
        .map(|l| {
            Digest::parse(l).map_err(|_| {
                Error::EngineFailed(format!(
                    "the Docker Engine at {} lists a layer {} of image {name} that is no sha256 digest",
                    engine.host.url,
                    crate::untrusted::shown(l)
                ))
            })
        })
        .collect()
}

/// Every layer chain ID the engine at `host` holds (of its images' stacks),
/// through a connection of its own.
pub fn chains_held(host: &EngineHost) -> Result<HashSet<Digest>> {
    let engine = Engine::connect_to(host.clone())?;
    Ok(layer_stacks(&engine)?.iter().flat_map(|stack| crate::have::chain_ids(stack)).collect())
}
