//! Downloading price documents (`llm-cost pricing fetch URL`, `llm-cost price --pricing URL`):
//! HTTPS with `ureq` (rustls, Mozilla's roots; `--ca-cert` trusts a private CA instead).

use std::path::Path;
use std::time::Duration;

use ureq::tls::{Certificate, RootCerts, TlsConfig};

/// A document larger than this is refused (LiteLLM's whole file is about 3.5 MB).
pub const MAX_DOCUMENT_BYTES: u64 = 64 << 20;
/// The whole download, connect to last byte.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// True if `text` names an `http://` or `https://` URL rather than a file.
pub fn is_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

/// GETs `url`; a non-2xx status is an error. `ca_cert`: PEM file of the CA(s) to trust instead
/// of the public roots.
pub fn download(url: &str, ca_cert: Option<&Path>) -> Result<Vec<u8>, String> {
    let mut tls = TlsConfig::builder();
    if let Some(path) = ca_cert {
        let pem =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let certs = ureq::tls::parse_pem(&pem)
            .filter_map(|item| match item {
                Ok(ureq::tls::PemItem::Certificate(cert)) => Some(Ok(cert)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<Vec<Certificate<'static>>, _>>()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{}: no PEM certificate", path.display()));
        }
        tls = tls.root_certs(RootCerts::new_with_certs(&certs));
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_global(Some(TIMEOUT))
        .build()
        .into();
    let mut response = agent
        .get(url)
        .header("accept", "application/json")
        .call()
        .map_err(|e| format!("{url}: {e}"))?;
    response
        .body_mut()
        .with_config()
        .limit(MAX_DOCUMENT_BYTES)
        .read_to_vec()
        .map_err(|e| format!("{url}: {e}"))
}
