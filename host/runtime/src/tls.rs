//! TLS for channels (`wasi:tls`): the host runs the handshake and checks
//! the server's certificate, so a guest needs no crypto of its own.
//!
//! A guest can only wrap streams it already holds, which come from its
//! granted `wasi:sockets` connections: TLS adds no reach. The certificate
//! must chain to a public root (Mozilla's, from `webpki-roots`) or to one
//! of the extra CAs the operator trusts, and must name the server name the
//! guest asked for; otherwise the handshake fails and nothing is sent.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use wasmtime_wasi_tls::{TlsProvider, TlsStream, TlsTransport, WasiTlsCtx, WasiTlsCtxBuilder};

/// Why extra CA certificates could not be trusted.
#[derive(Debug, thiserror::Error)]
pub enum TlsRootsError {
    /// The PEM text holds no certificate, or one that cannot be parsed.
    #[error("no usable CA certificate in the PEM text: {0}")]
    Pem(String),
    /// A certificate parsed but is not a usable trust anchor.
    #[error("CA certificate refused: {0}")]
    Anchor(String),
    /// The TLS configuration could not be built.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The client configuration every channel's handshake uses.
#[derive(Clone)]
pub(crate) struct TlsRoots {
    config: Arc<rustls::ClientConfig>,
}

impl TlsRoots {
    /// Public roots plus the CA certificates in `extra_pem` (none if empty).
    pub fn new(extra_pem: &[u8]) -> Result<Self, TlsRootsError> {
        let mut roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        if !extra_pem.is_empty() {
            let certs = CertificateDer::pem_slice_iter(extra_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TlsRootsError::Pem(e.to_string()))?;
            if certs.is_empty() {
                return Err(TlsRootsError::Pem("no CERTIFICATE block".into()));
            }
            for cert in certs {
                roots
                    .add(cert)
                    .map_err(|e| TlsRootsError::Anchor(e.to_string()))?;
            }
        }
        // The provider is named rather than taken from the process default,
        // which is ambiguous when another crate enables a second one.
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsRootsError::Config(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self {
            config: Arc::new(config),
        })
    }

    /// The `wasi:tls` context of one store.
    pub fn ctx(&self) -> WasiTlsCtx {
        WasiTlsCtxBuilder::new()
            .provider(Box::new(Provider(self.config.clone())))
            .build()
    }
}

/// rustls with Talon's root store.
struct Provider(Arc<rustls::ClientConfig>);

impl TlsProvider for Provider {
    fn connect(
        &self,
        server_name: String,
        transport: Box<dyn TlsTransport>,
    ) -> std::pin::Pin<
        Box<dyn Future<Output = Result<Box<dyn TlsStream>, wasmtime_wasi_tls::Error>> + Send>,
    > {
        let config = self.0.clone();
        Box::pin(async move {
            let name = ServerName::try_from(server_name.clone()).map_err(|_| {
                wasmtime_wasi_tls::Error::msg(format!("invalid server name {server_name:?}"))
            })?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, transport)
                .await
                .map_err(|e| {
                    wasmtime_wasi_tls::Error::msg(format!("TLS with {server_name}: {e}"))
                })?;
            Ok(Box::new(stream) as Box<dyn TlsStream>)
        })
    }
}
