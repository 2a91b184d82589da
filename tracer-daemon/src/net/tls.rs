//! TLS client settings for every `https://` peer (Jaeger collectors, the kubelet, the API
//! server): the web PKI roots plus the CA certificates of a PEM file, or, when asked for, no
//! certificate verification.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// TLS settings that cannot be used: an unreadable or empty CA file, no usable protocol version.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// TLS settings for `https://` URLs.
#[derive(Clone, Debug, Default)]
pub struct TlsOptions {
    /// Extra trusted CA certificates (PEM), beside the web PKI roots.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate.
    pub insecure_skip_verify: bool,
}

/// A connector for `opts`.
pub fn connector(opts: &TlsOptions) -> Result<tokio_rustls::TlsConnector, TlsError> {
    Ok(tokio_rustls::TlsConnector::from(Arc::new(client_config(opts)?)))
}

/// Verifying settings: web PKI roots plus the CA certificates in `ca_file`.
fn verified(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, TlsError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    if let Some(path) = ca_file {
        let fail = |e: &dyn std::fmt::Display| TlsError(format!("{}: {e}", path.display()));
        let certs = CertificateDer::pem_file_iter(path).map_err(|e| fail(&e))?;
        let mut n = 0;
        for cert in certs {
            let cert = cert.map_err(|e| fail(&e))?;
            roots.add(cert).map_err(|e| fail(&e))?;
            n += 1;
        }
        if n == 0 {
            return Err(fail(&"no certificate found"));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// The client settings `opts` ask for.
pub fn client_config(opts: &TlsOptions) -> Result<rustls::ClientConfig, TlsError> {
    if !opts.insecure_skip_verify {
        return verified(opts.ca_file.as_deref());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
        .with_no_client_auth())
}

/// Accepts any certificate (still checking the handshake signatures it presents).
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_settings_build_with_and_without_verification() {
        assert!(client_config(&TlsOptions { ca_file: None, insecure_skip_verify: true }).is_ok());
        assert!(client_config(&TlsOptions::default()).is_ok());
        let missing = TlsOptions { ca_file: Some("/nonexistent/ca.crt".into()), insecure_skip_verify: false };
        assert!(matches!(client_config(&missing), Err(TlsError(_))));
    }

    #[test]
    fn bad_ca_files_are_errors() {
        let with = |p: &Path| TlsOptions { ca_file: Some(p.to_owned()), insecure_skip_verify: false };
        assert!(client_config(&with(Path::new("/nonexistent.pem"))).is_err());
        let empty = std::env::temp_dir().join(format!("tracer-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate").unwrap();
        assert!(client_config(&with(&empty)).is_err());
        std::fs::remove_file(&empty).unwrap();
    }
}
