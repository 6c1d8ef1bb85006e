//! TLS against real tonic servers on loopback, with throwaway certificates
//! (rcgen): the construction errors of rules 2 and 3, mutual TLS, the server
//! name override, handshake failures as failovers (rule 4), and a rotated
//! client certificate picked up by the same client.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Code, Request, Response, Status};

use crate::pb::election_service_server::{ElectionService, ElectionServiceServer};
use crate::pb::{
    GetLeaderRequest, GetLeaderResponse, LeaderState, ListNodesRequest, ListNodesResponse,
    WatchLeaderRequest, WatchLeaderResponse,
};
use crate::testing::leader;
use crate::{Config, ElectionClient, Error};

/// A directory of PEM files, removed when dropped.
struct Pki {
    dir: PathBuf,
    ca: PathBuf,
    other_ca: PathBuf,
    /// DNS localhost, IP 127.0.0.1.
    server: (PathBuf, PathBuf),
    /// DNS node.electd.test only.
    named: (PathBuf, PathBuf),
    alice: (PathBuf, PathBuf),
    bob: (PathBuf, PathBuf),
    /// The DER of alice's and bob's certificates, for the server to say who called.
    known: Arc<Vec<(String, Vec<u8>)>>,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

fn write(dir: &Path, name: &str, pem: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, pem).unwrap();
    path
}

impl Pki {
    fn new() -> Pki {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "electd-rust-tls-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let authority = ca("electd test CA");
        let other = ca("other CA");
        let issue = |stem: &str, names: Vec<String>, cn: &str| {
            let mut params = CertificateParams::new(names).unwrap();
            params.distinguished_name.push(DnType::CommonName, cn);
            if cn == "alice" || cn == "bob" {
                let uri = format!("spiffe://electd.test/{cn}");
                params
                    .subject_alt_names
                    .push(SanType::URI(uri.try_into().unwrap()));
            }
            let key = KeyPair::generate().unwrap();
            let cert = params.signed_by(&key, &authority).unwrap();
            let paths = (
                write(&dir, &format!("{stem}.pem"), &cert.pem()),
                write(&dir, &format!("{stem}.key"), &key.serialize_pem()),
            );
            (paths, cert.der().to_vec())
        };
        let (server, _) = issue(
            "server",
            vec!["localhost".into(), "127.0.0.1".into()],
            "localhost",
        );
        let (named, _) = issue("named", vec!["node.electd.test".into()], "node");
        let (alice, alice_der) = issue("alice", vec![], "alice");
        let (bob, bob_der) = issue("bob", vec![], "bob");
        Pki {
            ca: write(&dir, "ca.pem", &authority.pem()),
            other_ca: write(&dir, "other.pem", &other.pem()),
            server,
            named,
            alice,
            bob,
            known: Arc::new(vec![("alice".into(), alice_der), ("bob".into(), bob_der)]),
            dir,
        }
    }

    fn config(&self, who: &(PathBuf, PathBuf)) -> Config {
        Config {
            tls_ca: Some(self.ca.clone()),
            tls_cert: Some(who.0.clone()),
            tls_key: Some(who.1.clone()),
            ..Config::default()
        }
    }
}

/// A node that answers GetLeader (and WatchLeader) with a leader whose id is
/// the caller's client certificate: "alice", "bob", or "anonymous".
struct Who(Arc<Vec<(String, Vec<u8>)>>);

impl Who {
    fn caller<T>(&self, request: &Request<T>) -> String {
        let certs = request.peer_certs();
        let first = certs.as_ref().and_then(|c| c.first());
        match first {
            None => "anonymous".into(),
            Some(der) => self
                .0
                .iter()
                .find(|(_, d)| d.as_slice() == der.as_ref())
                .map_or("stranger".into(), |(n, _)| n.clone()),
        }
    }
}

#[tonic::async_trait]
impl ElectionService for Who {
    async fn get_leader(
        &self,
        request: Request<GetLeaderRequest>,
    ) -> Result<Response<GetLeaderResponse>, Status> {
        Ok(Response::new(GetLeaderResponse {
            leader: Some(leader(&self.caller(&request), 7)),
            responder_id: "tls".into(),
        }))
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        Err(Status::unimplemented("not here"))
    }

    async fn watch_leader(
        &self,
        request: Request<WatchLeaderRequest>,
    ) -> Result<
        Response<
            std::pin::Pin<
                Box<
                    dyn tonic::codegen::tokio_stream::Stream<
                            Item = Result<WatchLeaderResponse, Status>,
                        > + Send,
                >,
            >,
        >,
        Status,
    > {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let msg = WatchLeaderResponse {
            state: LeaderState::Elected as i32,
            leader: Some(leader(&self.caller(&request), 7)),
            reason: String::new(),
            responder_id: "tls".into(),
        };
        tokio::spawn(async move {
            let _ = tx.send(Ok(msg)).await;
            tx.closed().await; // hold the stream open until the client goes
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// A TLS node on 127.0.0.1 with this certificate; `mutual`: it requires a
/// client certificate of the test CA. Stops when the sender is dropped.
async fn node(pki: &Pki, cert: &(PathBuf, PathBuf), mutual: bool) -> (String, oneshot::Sender<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let identity = Identity::from_pem(
        std::fs::read(&cert.0).unwrap(),
        std::fs::read(&cert.1).unwrap(),
    );
    let mut tls = ServerTlsConfig::new().identity(identity);
    if mutual {
        tls = tls.client_ca_root(Certificate::from_pem(std::fs::read(&pki.ca).unwrap()));
    }
    let service = ElectionServiceServer::new(Who(pki.known.clone()));
    let (stop, stopped) = oneshot::channel::<()>();
    let server = Server::builder().tls_config(tls).unwrap();
    tokio::spawn(async move {
        let _ = server
            .serve_with_incoming_shutdown(service, TcpIncoming::from(listener), async {
                let _ = stopped.await;
            })
            .await;
    });
    (addr, stop)
}

async fn leader_id(client: &ElectionClient) -> Result<String, Error> {
    let resp = client.get_leader().await?;
    Ok(resp.leader.unwrap().node.unwrap().id)
}

fn construction_error(addr: &str, config: Config) -> String {
    match ElectionClient::with_config([addr], config) {
        Ok(_) => panic!("the client was made"),
        Err(e) => {
            assert!(matches!(e, Error::Tls(_)), "{e:?}");
            assert_eq!(e.code(), Code::Unknown, "{e}");
            assert!(!e.no_node_answered() && e.addresses().is_empty(), "{e}");
            e.to_string()
        }
    }
}

#[tokio::test]
async fn a_certificate_and_its_key_go_together() {
    let pki = Pki::new();
    let msg = construction_error(
        "127.0.0.1:1",
        Config {
            tls_cert: Some(pki.alice.0.clone()),
            ..Config::default()
        },
    );
    assert_eq!(
        msg,
        "tls_cert: needs tls_key too (a client certificate and its private key)"
    );
    let msg = construction_error(
        "127.0.0.1:1",
        Config {
            tls_ca: Some(pki.ca.clone()),
            tls_key: Some(pki.alice.1.clone()),
            ..Config::default()
        },
    );
    assert!(msg.starts_with("tls_key: needs tls_cert too"), "{msg}");
}

#[tokio::test]
async fn files_that_cannot_be_read_or_used_name_the_option_and_the_path() {
    let pki = Pki::new();
    let missing = pki.dir.join("missing.pem");
    let shown = missing.display().to_string();
    for (config, option) in [
        (
            Config {
                tls_ca: Some(missing.clone()),
                ..Config::default()
            },
            "tls_ca: cannot read",
        ),
        (
            Config {
                tls_cert: Some(missing.clone()),
                ..pki.config(&pki.alice)
            },
            "tls_cert: cannot read",
        ),
        (
            Config {
                tls_key: Some(missing.clone()),
                ..pki.config(&pki.alice)
            },
            "tls_key: cannot read",
        ),
    ] {
        let msg = construction_error("127.0.0.1:1", config);
        assert!(msg.starts_with(option) && msg.contains(&shown), "{msg}");
    }
    // A key where the CAs belong, a certificate where the key belongs.
    let msg = construction_error(
        "127.0.0.1:1",
        Config {
            tls_ca: Some(pki.alice.1.clone()),
            ..Config::default()
        },
    );
    assert!(msg.starts_with("tls_ca: no PEM certificate"), "{msg}");
    assert!(msg.contains(&pki.alice.1.display().to_string()), "{msg}");
    let msg = construction_error(
        "127.0.0.1:1",
        Config {
            tls_key: Some(pki.alice.0.clone()),
            ..pki.config(&pki.alice)
        },
    );
    assert!(
        msg.starts_with("tls_key: no usable PEM private key"),
        "{msg}"
    );
    // Someone else's key: refused now, naming both files.
    let msg = construction_error(
        "127.0.0.1:1",
        Config {
            tls_key: Some(pki.bob.1.clone()),
            ..pki.config(&pki.alice)
        },
    );
    assert!(
        msg.contains(&pki.alice.0.display().to_string())
            && msg.contains(&pki.bob.1.display().to_string()),
        "{msg}"
    );
}

#[tokio::test]
async fn empty_options_mean_plaintext() {
    let config = Config {
        tls_ca: Some(PathBuf::new()),
        tls_server_name: Some(String::new()),
        ..Config::default()
    };
    let client = ElectionClient::with_config(["127.0.0.1:1"], config).unwrap();
    assert!(client.inner.tls.is_none());
}

#[tokio::test]
async fn mutual_tls_presents_the_client_certificate_to_calls_and_watches() {
    let pki = Pki::new();
    let (addr, _stop) = node(&pki, &pki.server, true).await;
    let client = ElectionClient::with_config([&addr], pki.config(&pki.alice)).unwrap();
    assert_eq!(leader_id(&client).await.unwrap(), "alice");
    let leader = client.watch_leader().next().await.unwrap();
    assert_eq!(leader.node.unwrap().id, "alice");
}

#[tokio::test]
async fn failed_handshakes_are_unavailable_and_the_next_address_answers() {
    let pki = Pki::new();
    let (mutual, _s1) = node(&pki, &pki.server, true).await;
    let (named, _s2) = node(&pki, &pki.named, false).await; // not valid for 127.0.0.1
    let (good, _s3) = node(&pki, &pki.server, false).await;
    let only_ca = Config {
        tls_ca: Some(pki.ca.clone()),
        ..Config::default()
    };
    // No client certificate for a node that wants one; a name mismatch.
    let client = ElectionClient::with_config([&mutual, &named, &good], only_ca.clone()).unwrap();
    assert_eq!(leader_id(&client).await.unwrap(), "anonymous");
    let client = ElectionClient::with_config([&mutual, &named], only_ca).unwrap();
    let err = leader_id(&client).await.unwrap_err();
    assert!(err.no_node_answered(), "{err}");
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    // A CA that did not sign the node; a plaintext client.
    let wrong_ca = Config {
        tls_ca: Some(pki.other_ca.clone()),
        ..Config::default()
    };
    for config in [wrong_ca, Config::default()] {
        let client = ElectionClient::with_config([&good], config).unwrap();
        let err = leader_id(&client).await.unwrap_err();
        assert!(err.no_node_answered(), "{err}");
        assert_eq!(err.code(), Code::Unavailable, "{err}");
    }
    // A watch fails over past a failed handshake too.
    let client = ElectionClient::with_config([&mutual, &good], pki.config(&pki.bob)).unwrap();
    let leader = client.watch_leader().next().await.unwrap();
    assert_eq!(leader.node.unwrap().id, "bob"); // answered by the mutual node, first
    let config = Config {
        tls_ca: Some(pki.other_ca.clone()),
        ..pki.config(&pki.bob)
    };
    let client = ElectionClient::with_config([&mutual], config).unwrap();
    let err = client.watch_leader().next().await.unwrap_err();
    assert!(err.no_node_answered(), "{err}");
    assert_eq!(err.code(), Code::Unavailable, "{err}");
}

#[tokio::test]
async fn the_server_name_is_what_the_certificates_must_carry() {
    let pki = Pki::new();
    let (named, _s1) = node(&pki, &pki.named, false).await;
    let (localhost, _s2) = node(&pki, &pki.server, false).await;
    let config = Config {
        tls_ca: Some(pki.ca.clone()),
        tls_server_name: Some("node.electd.test".into()),
        ..Config::default()
    };
    let client = ElectionClient::with_config([&named], config.clone()).unwrap();
    assert_eq!(leader_id(&client).await.unwrap(), "anonymous");
    let client = ElectionClient::with_config([&localhost], config).unwrap();
    let err = leader_id(&client).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err}");
    assert!(err.details().contains("node.electd.test"), "{err}");
}

#[tokio::test]
async fn a_rotated_client_certificate_is_used_by_the_same_client() {
    let pki = Pki::new();
    let (addr, _stop) = node(&pki, &pki.server, true).await;
    let cert = pki.dir.join("rotating.pem");
    let key = pki.dir.join("rotating.key");
    std::fs::copy(&pki.alice.0, &cert).unwrap();
    std::fs::copy(&pki.alice.1, &key).unwrap();
    let client =
        ElectionClient::with_config([&addr], pki.config(&(cert.clone(), key.clone()))).unwrap();
    assert_eq!(leader_id(&client).await.unwrap(), "alice");
    let watch_before = client.watch_leader();

    // New files renamed over the old ones, as deployment tools do.
    let (new_cert, new_key) = (pki.dir.join("new.pem"), pki.dir.join("new.key"));
    std::fs::copy(&pki.bob.0, &new_cert).unwrap();
    std::fs::copy(&pki.bob.1, &new_key).unwrap();
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    assert_eq!(leader_id(&client).await.unwrap(), "bob");
    let mut watch_before = watch_before;
    assert_eq!(watch_before.next().await.unwrap().node.unwrap().id, "bob");

    // Half a rotation (the certificate before its key) keeps the last good pair...
    std::fs::copy(&pki.alice.0, &cert).unwrap();
    assert_eq!(leader_id(&client).await.unwrap(), "bob");
    // ... until the key follows.
    std::fs::copy(&pki.alice.1, &key).unwrap();
    assert_eq!(leader_id(&client).await.unwrap(), "alice");
}
