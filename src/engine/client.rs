//! Connecting to the Docker Engine: `DOCKER_HOST` (or the default socket),
//! API version negotiation, and error messages that name the socket.
use crate::error::{Error, Result};
use bollard::Docker;
use std::future::Future;
use std::path::Path;
use std::time::Duration;

/// Timeout for short requests (version, inspect, tag).
const SHORT: Duration = Duration::from_secs(60);
/// Exports and loads stream for as long as the image takes; bollard's timeout
/// only covers the wait for the response headers, which `/images/load` sends
/// once it has read the whole upload.
const LONG: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where the Engine API is.
#[derive(Debug, Clone)]
pub struct EngineHost {
    /// `unix:///var/run/docker.sock`, `tcp://127.0.0.1:2375`, ...
    pub url: String,
    /// It came from `DOCKER_HOST`.
    pub from_env: bool,
}

impl EngineHost {
    /// `DOCKER_HOST`, else the Docker socket, else a Podman socket if only that exists.
    pub fn from_env() -> EngineHost {
        if let Some(url) = std::env::var("DOCKER_HOST").ok().filter(|h| !h.trim().is_empty()) {
            return EngineHost { url: url.trim().to_string(), from_env: true };
        }
        let mut candidates = vec!["/var/run/docker.sock".to_string(), "/run/podman/podman.sock".to_string()];
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
            candidates.push(Path::new(&dir).join("podman/podman.sock").display().to_string());
        }
        let path = candidates.iter().find(|p| Path::new(p).exists()).unwrap_or(&candidates[0]);
        EngineHost { url: format!("unix://{path}"), from_env: false }
    }

    /// For messages: the URL and where it came from.
    pub fn describe(&self) -> String {
        if self.from_env {
            format!("{} (from DOCKER_HOST)", self.url)
        } else {
            format!("{} (the default; DOCKER_HOST is not set)", self.url)
        }
    }
}

/// A connection to one Engine, with the API version both sides speak.
pub struct Engine {
    rt: tokio::runtime::Runtime,
    docker: Docker,
    pub host: EngineHost,
    /// Negotiated API version (major, minor), e.g. (1, 41) for Docker 20.10.
    pub api: (usize, usize),
    /// What the daemon says it is, e.g. "Docker Engine 20.10.24".
    pub server: String,
}

impl Engine {
    /// Connect to the Engine `DOCKER_HOST` names.
    pub fn connect() -> Result<Engine> {
        Engine::connect_to(EngineHost::from_env())
    }

    pub fn connect_to(host: EngineHost) -> Result<Engine> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Error::io("starting the Docker Engine client", e))?;
        let url = host.url.as_str();
        let docker = if url.starts_with("unix://") || url.starts_with('/') {
            let path = url.trim_start_matches("unix://");
            Docker::connect_with_unix(path, SHORT.as_secs(), bollard::API_DEFAULT_VERSION)
        } else if url.starts_with("tcp://") || url.starts_with("http://") {
            Docker::connect_with_http(url, SHORT.as_secs(), bollard::API_DEFAULT_VERSION)
        } else {
            return Err(Error::usage(format!("DOCKER_HOST={url} is not supported: use unix:///path/to/docker.sock or tcp://HOST:PORT")));
        }
        .map_err(|e| unreachable(&host, &e))?;
        let docker = rt
            .block_on(async { tokio::time::timeout(SHORT, docker.negotiate_version()).await })
            .map_err(|_| Error::Engine(format!("the Docker Engine at {} did not answer within {}s", host.describe(), SHORT.as_secs())))?
            .map_err(|e| unreachable(&host, &e))?;
        let version = docker.client_version();
        let server = rt
            .block_on(docker.version())
            .ok()
            .map(|v| {
                // Podman names itself in a component; Docker's first component is "Engine".
                let podman = v.components.iter().flatten().find(|c| c.name.contains("Podman"));
                match podman {
                    Some(c) => format!("{} {}", c.name, c.version),
                    None => format!("Docker Engine {}", v.version.unwrap_or_default()).trim().to_string(),
                }
            })
            .unwrap_or_else(|| "Docker Engine".into());
        Ok(Engine { rt, docker, host, api: (version.major_version, version.minor_version), server })
    }

    /// The client for short requests.
    pub fn docker(&self) -> &Docker {
        &self.docker
    }

    /// A client for a request that streams for a long time.
    pub fn streaming(&self) -> Docker {
        self.docker.clone().with_timeout(LONG)
    }

    /// Run a future on this engine's runtime (not from inside another runtime).
    pub fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Docker reads zstd-compressed layers from API 1.42 (Docker 23) on.
    pub fn reads_zstd_layers(&self) -> bool {
        self.api >= (1, 42)
    }

    pub fn api_version(&self) -> String {
        format!("{}.{}", self.api.0, self.api.1)
    }

    /// Turn a bollard error of a request into ferry's, naming the daemon.
    pub fn error(&self, doing: &str, e: &bollard::errors::Error) -> Error {
        use bollard::errors::Error as B;
        match e {
            B::DockerResponseServerError { status_code, message } => {
                Error::EngineFailed(format!("{doing}: the Docker Engine at {} answered {status_code}: {message}", self.host.url))
            }
            B::DockerStreamError { error } => Error::EngineFailed(format!("{doing}: the Docker Engine at {} said: {error}", self.host.url)),
            _ => Error::Engine(format!("{doing}: lost the connection to the Docker Engine at {}: {}", self.host.url, chain(e))),
        }
    }
}

fn unreachable(host: &EngineHost, e: &bollard::errors::Error) -> Error {
    Error::Engine(format!("cannot reach the Docker Engine at {}: {}", host.describe(), chain(e)))
}

/// An error with its causes, each once: "client error (Connect): No such file or directory".
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    parts.join(": ")
}
