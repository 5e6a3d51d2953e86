//! TLS where redis-rs makes the connections (Sentinel, Cluster): its rustls
//! client, given the same options as Node's TLS on the event-loop link.

use redis::{ClientTlsConfig, TlsCertificates};

use crate::config::TlsOptions;

/// A CA to trust and a client certificate, as redis-rs's TLS (rustls) takes them.
pub fn certificates(tls: &TlsOptions) -> TlsCertificates {
    TlsCertificates {
        client_tls: match (&tls.cert, &tls.key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: cert.clone().into_bytes(),
                client_key: key.clone().into_bytes(),
            }),
            _ => None,
        },
        root_cert: tls.ca.clone().map(String::into_bytes),
    }
}
