//! Media types ferry reads and writes.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

pub fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

pub fn is_manifest(media_type: &str) -> bool {
    media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST
}

/// A layer (OCI or Docker, any compression; also foreign and non-distributable).
pub fn is_layer(media_type: &str) -> bool {
    media_type.starts_with("application/vnd.oci.image.layer.") || media_type.starts_with("application/vnd.docker.image.rootfs.")
}

/// The compression a layer media type declares.
pub fn layer_compression(media_type: &str) -> crate::compress::Compression {
    use crate::compress::Compression;
    if media_type.ends_with("+zstd") || media_type.ends_with(".zstd") {
        Compression::Zstd
    } else if media_type.ends_with("+gzip") || media_type.ends_with(".gzip") {
        Compression::Gzip
    } else {
        Compression::None
    }
}

/// Annotation keys.
pub const ANN_REF_NAME: &str = "org.opencontainers.image.ref.name";
pub const ANN_CONTAINERD_NAME: &str = "io.containerd.image.name";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_told_from_documents() {
        for layer in [OCI_LAYER, OCI_LAYER_ZSTD, DOCKER_LAYER_GZIP, "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"] {
            assert!(is_layer(layer), "{layer}");
        }
        for document in [OCI_INDEX, OCI_MANIFEST, OCI_CONFIG, DOCKER_LIST, DOCKER_MANIFEST, DOCKER_CONFIG] {
            assert!(!is_layer(document), "{document}");
        }
    }
}
