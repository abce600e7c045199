//! Where a verified bundle goes: the one dispatch over load targets, above the
//! file targets (`load/`) and the Docker Engine (`engine/`).
use crate::bundle::read::Decryptor;
use crate::bundle::verify::Sink;
use crate::bundle::Progress;
use crate::error::{Error, Result};
use crate::load::{ArchiveFileSink, OciDirSink};
use crate::reference::ImageRef;
use crate::trust::Trusted;
use crate::verified::{report, verify_into, LoadReport};

/// How a target is checked beyond the defaults.
#[derive(Debug, Clone, Default)]
pub struct TargetOptions {
    /// Hash a delta's left-out layers in an `oci:` target (`load --deep`).
    pub deep: bool,
    /// `load --platform`: the platforms a containerd target keeps and unpacks.
    pub platforms: crate::image::PlatformFilter,
    /// containerd's socket and snapshotter (`containerd:` targets).
    pub containerd: crate::containerd::Endpoint,
    /// TLS, credentials, retries of a `docker://` target.
    pub registry: crate::registry::RegistryOptions,
}

/// `ferry load --into TARGET`: the verified stream into the target it names.
pub fn load(bundle: &Trusted, into: &ImageRef, decryptor: Option<Decryptor>, progress: &dyn Progress) -> Result<LoadReport> {
    load_with(bundle, into, decryptor, &TargetOptions::default(), progress)
}

/// [`load`] with [`TargetOptions`].
pub fn load_with(
    bundle: &Trusted,
    into: &ImageRef,
    decryptor: Option<Decryptor>,
    options: &TargetOptions,
    progress: &dyn Progress,
) -> Result<LoadReport> {
    match into {
        ImageRef::OciDir { path, reference } => {
            let mut sink = OciDirSink::new(path, reference.clone())?.deep(options.deep);
            let (v, c, e) = verify_into(bundle, decryptor, &mut sink, None, progress)?;
            Ok(report(format!("oci:{}", path.display()), &v, c, e))
        }
        ImageRef::OciArchive { path, reference } | ImageRef::DockerArchive { path, reference } => {
            if reference.is_some() {
                return Err(Error::usage(
                    "archive targets keep the bundle's image names; give only a path (e.g. oci-archive:out.tar)",
                ));
            }
            let mut sink = ArchiveFileSink::new(path)?;
            let mut file = sink.take_file();
            let result = verify_into(bundle, decryptor, &mut CopyOnly, Some(&mut file), progress);
            match result {
                Ok((v, c, e)) => {
                    sink.commit_file(file)?;
                    let kind = if matches!(into, ImageRef::OciArchive { .. }) { "oci-archive" } else { "docker-archive" };
                    Ok(report(format!("{kind}:{}", path.display()), &v, c, e))
                }
                Err(e) => {
                    drop(file);
                    sink.abort();
                    Err(e)
                }
            }
        }
        ImageRef::Containerd { namespace, .. } => {
            crate::containerd::load_into_containerd(bundle, decryptor, &options.containerd, namespace, &options.platforms, progress)
        }
        ImageRef::DockerDaemon(name) if name.is_empty() => crate::engine::load_into_daemon(bundle, decryptor, progress),
        ImageRef::Registry(r) => {
            use crate::registry::push::{PushTarget, RegistryPush};
            let to = PushTarget::connect(r, &options.registry)?;
            let mut sink = RegistryPush::new(&to, r, &options.registry);
            let (v, c, e) = verify_into(bundle, decryptor, &mut sink, None, progress)?;
            let mut report = report(r.display(), &v, c, e);
            report.registry = Some(sink.report);
            Ok(report)
        }
        ImageRef::DockerDaemon(name) => Err(Error::usage(format!(
            "--into docker-daemon:{name}: the daemon target takes no name (images keep the names the bundle records); use --into docker-daemon:"
        ))),
    }
}

/// An archive target gets the verified tar as it streams and nothing else; it
/// refuses a delta (an archive of it would miss the layers left out).
struct CopyOnly;
impl Sink for CopyOnly {}
