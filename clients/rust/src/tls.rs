//! TLS (clients/README.md, "TLS"): tonic's rustls client, configured from the
//! four options of [`Config`].
//!
//! The PEM files are read when the client is made: a file that cannot be read
//! or holds no usable PEM is [`Error::Tls`] naming the option and the path.
//! They are read again whenever one of them changed (device, inode, size or
//! modification time), checked each time a call or a watch picks the channel of
//! an address: a change gives every address a new channel, built with the new
//! files, so the next connection presents the rotated client certificate (and
//! trusts the rotated CAs). Calls and streams already open carry on on the old
//! connection. A new channel is also a new rustls configuration, so the next
//! handshake cannot resume a session of the old identity. A reload that fails
//! (say, a certificate rotated before its key) keeps the last good files and
//! is tried again when the files change again.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};

use crate::{Config, Error};

/// What says that a file changed without reading it.
type Stamp = Vec<Option<(u64, u64, u64, Option<SystemTime>)>>;

pub(crate) struct Tls {
    ca: Option<PathBuf>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
    server_name: Option<String>,
    handshake_timeout: Duration,
    state: Mutex<State>,
}

struct State {
    stamp: Stamp,
    /// Bumped on every successful reload; channels remember the one they
    /// were built with.
    generation: u64,
    config: ClientTlsConfig,
    /// The stamp of the last reload that failed, not to retry it per call.
    failed: Option<Stamp>,
}

fn given(p: &Option<PathBuf>) -> Option<PathBuf> {
    p.clone().filter(|p| !p.as_os_str().is_empty())
}

fn tls_error(message: String) -> Error {
    Error::Tls(message)
}

impl Tls {
    /// The client's TLS, or `None` for plaintext (none of the four options
    /// given). Checks rules 2 and 3 and reads the files once.
    pub(crate) fn new(config: &Config) -> Result<Option<Tls>, Error> {
        let (ca, cert, key) = (
            given(&config.tls_ca),
            given(&config.tls_cert),
            given(&config.tls_key),
        );
        let server_name = config.tls_server_name.clone().filter(|s| !s.is_empty());
        match (&cert, &key) {
            (Some(_), None) => {
                return Err(tls_error(
                    "tls_cert: needs tls_key too (a client certificate and its private key)".into(),
                ));
            }
            (None, Some(_)) => {
                return Err(tls_error(
                    "tls_key: needs tls_cert too (a client certificate and its private key)".into(),
                ));
            }
            _ => {}
        }
        if ca.is_none() && cert.is_none() && server_name.is_none() {
            return Ok(None);
        }
        let mut tls = Tls {
            ca,
            cert,
            key,
            server_name,
            handshake_timeout: config.connect_timeout,
            state: Mutex::new(State {
                stamp: Vec::new(),
                generation: 0,
                config: ClientTlsConfig::new(),
                failed: None,
            }),
        };
        let stamp = tls.stamp();
        let config = tls.read()?;
        *tls.state.get_mut().unwrap() = State {
            stamp,
            generation: 0,
            config,
            failed: None,
        };
        Ok(Some(tls))
    }

    fn paths(&self) -> impl Iterator<Item = &Path> {
        [&self.ca, &self.cert, &self.key]
            .into_iter()
            .filter_map(|p| p.as_deref())
    }

    fn stamp(&self) -> Stamp {
        self.paths()
            .map(|p| {
                let m = std::fs::metadata(p).ok()?;
                #[cfg(unix)]
                let (dev, ino) = {
                    use std::os::unix::fs::MetadataExt;
                    (m.dev(), m.ino())
                };
                #[cfg(not(unix))]
                let (dev, ino) = (0, 0);
                Some((dev, ino, m.len(), m.modified().ok()))
            })
            .collect()
    }

    /// Reads and checks the files; the tonic configuration made of them.
    fn read(&self) -> Result<ClientTlsConfig, Error> {
        let mut tls = ClientTlsConfig::new().timeout(self.handshake_timeout);
        match &self.ca {
            Some(ca) => {
                let pem = read_file("tls_ca", ca)?;
                let n = CertificateDer::pem_slice_iter(&pem)
                    .try_fold(0, |n, c| c.map(|_| n + 1))
                    .map_err(|e| tls_error(format!("tls_ca: bad PEM in {}: {e}", ca.display())))?;
                if n == 0 {
                    return Err(tls_error(format!(
                        "tls_ca: no PEM certificate (BEGIN CERTIFICATE) in {}",
                        ca.display()
                    )));
                }
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            None => tls = tls.with_native_roots(),
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            let cert_pem = read_file("tls_cert", cert)?;
            let key_pem = read_file("tls_key", key)?;
            let certs = CertificateDer::pem_slice_iter(&cert_pem)
                .try_fold(0, |n, c| c.map(|_| n + 1))
                .map_err(|e| tls_error(format!("tls_cert: bad PEM in {}: {e}", cert.display())))?;
            if certs == 0 {
                return Err(tls_error(format!(
                    "tls_cert: no PEM certificate (BEGIN CERTIFICATE) in {}",
                    cert.display()
                )));
            }
            PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
                tls_error(format!(
                    "tls_key: no usable PEM private key in {} (want unencrypted PKCS#8, \
                     or traditional RSA or EC): {e}",
                    key.display()
                ))
            })?;
            tls = tls.identity(Identity::from_pem(cert_pem, key_pem));
        }
        if let Some(name) = &self.server_name {
            tls = tls.domain_name(name.clone());
        }
        // tonic (rustls) parses everything when an endpoint takes the
        // configuration: do it once here, so that what it refuses (a key
        // that is not the certificate's, a bad server name, no system roots)
        // is an error now rather than a failure of every connection.
        Endpoint::from_static("https://127.0.0.1:1")
            .tls_config(tls.clone())
            .map_err(|e| tls_error(self.explain(&e)))?;
        Ok(tls)
    }

    /// tonic's refusal of files that parsed, said with the options concerned.
    fn explain(&self, e: &tonic::transport::Error) -> String {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            let t = s.to_string();
            if !text.contains(&t) {
                text = format!("{text}: {t}");
            }
            source = s.source();
        }
        let mut options = Vec::new();
        if let Some(p) = &self.ca {
            options.push(format!("tls_ca {}", p.display()));
        }
        if let (Some(c), Some(k)) = (&self.cert, &self.key) {
            options.push(format!("tls_cert {}", c.display()));
            options.push(format!("tls_key {}", k.display()));
        }
        if let Some(n) = &self.server_name {
            options.push(format!("tls_server_name {n:?}"));
        }
        if self.ca.is_none() {
            options.push("no tls_ca: the system's trust store".into());
        }
        format!("TLS options refused ({}): {text}", options.join(", "))
    }

    /// The configuration for a new channel and its generation, read again if
    /// a file changed since the last read.
    pub(crate) fn current(&self) -> (u64, ClientTlsConfig) {
        let now = self.stamp();
        let mut state = self.state.lock().unwrap();
        if now != state.stamp && state.failed.as_ref() != Some(&now) {
            match self.read() {
                Ok(config) => {
                    state.config = config;
                    state.stamp = now;
                    state.generation += 1;
                    state.failed = None;
                }
                Err(_) => state.failed = Some(now),
            }
        }
        (state.generation, state.config.clone())
    }
}

fn read_file(option: &str, path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path)
        .map_err(|e| tls_error(format!("{option}: cannot read {}: {e}", path.display())))
}

#[cfg(test)]
mod tests;
