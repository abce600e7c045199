//! What the pull side asks a registry besides blobs and manifests: the
//! repository catalog (`ferry have docker://`) and the OCI 1.1 referrers API.
//! A separate impl block of [`Client`] so the push side's file stays its own.
use super::client::{link_next, Client, Scope};
use super::error::RegistryError;
use crate::digest::Digest;
use crate::image::Descriptor;
use reqwest::header::ACCEPT;
use reqwest::StatusCode;

/// Most pages of a paged listing ferry follows.
const MAX_PAGES: usize = 10_000;

impl Client {
    /// Every repository the registry lists in `/v2/_catalog` (following `Link` pagination).
    pub fn catalog(&self) -> Result<Vec<String>, RegistryError> {
        let context = "listing the repositories (/v2/_catalog)";
        let scope = Scope::catalog();
        let mut url = self.url("v2/_catalog?n=1000");
        let mut repositories = Vec::new();
        for _ in 0..MAX_PAGES {
            let resp = self.retrying(|| self.send(context, &scope, &|h| h.get(url.clone())))?;
            if resp.status() != StatusCode::OK {
                return Err(self.status_error(context, resp));
            }
            let next = resp.headers().get("Link").and_then(|v| v.to_str().ok()).and_then(link_next).and_then(|n| resp.url().join(&n).ok());
            let v = self.read_json(resp, context)?;
            let page = v.get("repositories").and_then(|t| t.as_array()).into_iter().flatten();
            repositories.extend(page.filter_map(|t| t.as_str().map(str::to_string)));
            match next {
                Some(n) => url = n,
                None => return Ok(repositories),
            }
        }
        Err(self.protocol(context, format!("more than {MAX_PAGES} pages of repositories: refused")))
    }

    /// The manifests whose `subject` is `digest` (`GET /v2/REPO/referrers/DIGEST`);
    /// `None` when the registry has no referrers API (distribution 2.8 answers 404).
    pub fn referrers(&self, repo: &str, digest: &Digest) -> Result<Option<Vec<Descriptor>>, RegistryError> {
        let context = format!("listing the referrers of {digest} in {repo}");
        let scope = Scope::pull(repo);
        let url = self.url(&format!("v2/{repo}/referrers/{digest}"));
        let resp =
            self.retrying(|| self.send(&context, &scope, &|h| h.get(url.clone()).header(ACCEPT, crate::image::media_types::OCI_INDEX)))?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED | StatusCode::BAD_REQUEST => return Ok(None),
            _ => return Err(self.status_error(&context, resp)),
        }
        // A registry without the API may answer 200 with something else (an HTML page): not an index, no API.
        let is_index = resp
            .headers()
            .get("Content-Type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with(crate::image::media_types::OCI_INDEX));
        if !is_index {
            return Ok(None);
        }
        let v = self.read_json(resp, &context)?;
        let manifests = v.get("manifests").cloned().unwrap_or(serde_json::Value::Array(vec![]));
        serde_json::from_value(manifests).map(Some).map_err(|e| self.protocol(&context, format!("the referrers index is not valid: {e}")))
    }
}

impl Scope {
    /// `registry:catalog:*`, what token servers ask for the catalog.
    pub fn catalog() -> Scope {
        Scope(vec!["registry:catalog:*".to_string()])
    }
}
