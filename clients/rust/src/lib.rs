//! A small client for the electd leader-election service (package
//! `electd.v1`, service `ElectionService`), following the contract in
//! `clients/README.md`.
//!
//! An [`ElectionClient`] is given the addresses of one or more electd nodes.
//! Any node answers for the whole cluster, so the client sticks to one node and
//! moves to the next address (round-robin) when that node is unreachable, does
//! not connect or speak HTTP/2 within the connect deadline, answers
//! `UNAVAILABLE`, `DEADLINE_EXCEEDED` or `RESOURCE_EXHAUSTED`, times out, or
//! (while watching) sends no first message in time, freezes (HTTP/2 keepalive),
//! cannot vouch for a leader or ends its stream. The bounds are [`Config`]'s.
//!
//! ```no_run
//! # async fn demo() -> Result<(), electd_client::Error> {
//! use electd_client::ElectionClient;
//!
//! let client = ElectionClient::new(["127.0.0.1:7001", "127.0.0.1:7002"])?;
//! let resp = client.get_leader().await?;
//! let leader = resp.leader.unwrap_or_default();
//! println!("{} leads with epoch {}", leader.node.unwrap_or_default().id, leader.epoch);
//!
//! let mut watch = client
//!     .watch_leader_after(leader.epoch) // only leaders after this one
//!     .on_failover(|addr, reason| eprintln!("left {addr}: {reason}"));
//! loop {
//!     let leader = watch.next().await?; // epochs strictly increase
//!     println!("new leader, epoch {}", leader.epoch);
//! }
//! # }
//! ```
//!
//! [`LeaderWatch`] is also a [`futures_core::Stream`] of
//! `Result<Leader, Error>`, for the combinators of `futures::StreamExt` or
//! `tokio_stream::StreamExt`.
//!
//! Every failure is an [`Error`], which carries the gRPC status
//! ([`Error::code`], [`Error::details`]), says whether no node answered at all
//! ([`Error::no_node_answered`]) and which addresses were tried
//! ([`Error::addresses`]).
//!
//! TLS (clients/README.md, "TLS") is on when any of [`Config::tls_ca`],
//! [`Config::tls_cert`] with [`Config::tls_key`], or
//! [`Config::tls_server_name`] is set:
//!
//! ```no_run
//! # async fn demo() -> Result<(), electd_client::Error> {
//! let config = electd_client::Config {
//!     tls_ca: Some("/etc/electd/ca.pem".into()),
//!     tls_cert: Some("/etc/electd/client.pem".into()),
//!     tls_key: Some("/etc/electd/client.key".into()),
//!     ..Default::default()
//! };
//! let client = electd_client::ElectionClient::with_config(["10.0.0.1:7001"], config)?;
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::transport::Channel;
use tonic::{Code, Request, Status};

mod campaign;
mod connect;
#[cfg(test)]
mod testing;
mod tls;
mod watch;
pub use campaign::{
    BoxError, Campaign, CampaignEvent, CampaignOptions, Ended, Loss, LossReason, OnLoss, Term,
};
/// The cancellation signal handed to campaign work (tokio-util's).
pub use tokio_util::sync::CancellationToken;
pub use watch::LeaderWatch;

/// The code generated from `proto/electd/v1/election_service.proto` by build.rs.
pub mod pb {
    tonic::include_proto!("electd.v1");
}

use pb::election_service_client::ElectionServiceClient;

/// Tunables; the defaults are the contract's bounds (clients/README.md,
/// "Failover"). Change a few with struct update syntax:
///
/// ```
/// use std::time::Duration;
/// let config = electd_client::Config {
///     call_timeout: Duration::from_secs(1),
///     ..Default::default()
/// };
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Deadline of each unary call attempt, connecting included (default 2 s).
    /// Sent to the server as `grpc-timeout` and enforced locally.
    pub call_timeout: Duration,
    /// Deadline for connecting to one address (default 2 s): the TCP
    /// connection *and* the server's first HTTP/2 bytes, so it covers both a
    /// black-holed address and a process that accepts connections but never
    /// speaks.
    pub connect_timeout: Duration,
    /// Deadline for a watch's first message, from the moment the watch tries
    /// an address (connecting included; default 2 s). A live node sends the
    /// current state at once. When resuming, a node may lawfully hold back a
    /// leader the watch has already reported; the watch then stays if that
    /// node answers `GetLeader` within this deadline with that leader (or an
    /// older one).
    pub first_message_timeout: Duration,
    /// HTTP/2 keepalive ping interval when nothing was received (default 3 s);
    /// pings are sent also while no call is open.
    pub keepalive_interval: Duration,
    /// How long a ping may go unanswered before the connection is closed
    /// (default 3 s). With the interval, a frozen node is left within their
    /// sum (6 s).
    pub keepalive_timeout: Duration,
    /// The longest pause before a watch retries after every address failed
    /// once is `backoff_base` doubled per such round (default 50 ms)...
    pub backoff_base: Duration,
    /// ... capped at `backoff_max` (default 2 s); the actual pause is drawn at
    /// random between zero and that ("full jitter").
    pub backoff_max: Duration,
    /// TLS: PEM file of one or more CA certificates that the nodes'
    /// certificates must chain to (default, when TLS is on: the system's
    /// trust store). Setting any of the four `tls_*` fields (non-empty) turns
    /// TLS on; with none the client speaks plaintext.
    pub tls_ca: Option<PathBuf>,
    /// TLS: PEM file of the client's certificate chain, leaf first, presented
    /// for mutual TLS; needs [`tls_key`](Config::tls_key). Its URI/DNS SANs
    /// (else its CN) are the identity the nodes' `--allow-read`/`--allow-write`
    /// match.
    pub tls_cert: Option<PathBuf>,
    /// TLS: PEM file of `tls_cert`'s private key, unencrypted (PKCS#8, or
    /// traditional RSA or EC).
    pub tls_key: Option<PathBuf>,
    /// TLS: the DNS name the nodes' certificates must carry, checked instead
    /// of each address's host and sent as SNI; one name for all addresses
    /// (tonic's `ClientTlsConfig::domain_name`). Without it, each address's
    /// host is checked (an IP address against the certificate's IP SANs).
    pub tls_server_name: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            call_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(2),
            first_message_timeout: Duration::from_secs(2),
            keepalive_interval: Duration::from_secs(3),
            keepalive_timeout: Duration::from_secs(3),
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_secs(2),
            tls_ca: None,
            tls_cert: None,
            tls_key: None,
            tls_server_name: None,
        }
    }
}

/// Why a call failed: the one error type of the crate.
///
/// Whatever the variant, [`code`](Error::code) and
/// [`details`](Error::details) give its gRPC status,
/// [`no_node_answered`](Error::no_node_answered) says whether it means that no
/// node answered, and [`addresses`](Error::addresses) which addresses it comes
/// from. Variants without a gRPC status (a bad argument) have
/// [`Code::Unknown`], their text as details and no addresses. It is `Clone`,
/// `Send` and `Sync`, so it can be kept or passed between tasks.
///
/// ```no_run
/// # async fn demo(client: electd_client::ElectionClient) {
/// match client.get_leader().await {
///     Ok(resp) => println!("epoch {}", resp.leader.unwrap_or_default().epoch),
///     Err(e) if e.no_node_answered() => eprintln!("tried {:?}: {}", e.addresses(), e.details()),
///     Err(e) => eprintln!("{:?} answered {:?}: {}", e.addresses(), e.code(), e.details()),
/// }
/// # }
/// ```
#[derive(Debug, Clone)]
pub enum Error {
    /// The client was given no address.
    NoAddresses,
    /// An address is not of the form `HOST:PORT`.
    BadAddress(String),
    /// No address answered: each was unreachable, answered `UNAVAILABLE`,
    /// `DEADLINE_EXCEEDED` or `RESOURCE_EXHAUSTED`, or timed out. `addrs` are all the client's addresses, in client order;
    /// `last` describes the last failure (its address and cause) and `status`
    /// is that failure's gRPC status (`UNKNOWN` when it had none, for example
    /// a watch stream that ended without a message).
    NoNode {
        addrs: Vec<String>,
        last: String,
        status: Status,
    },
    /// A node answered with an error that another node would give too (for
    /// example `INVALID_ARGUMENT`); returned at once.
    Status { addr: String, status: Status },
    /// The TLS options are wrong, found when the client is made: `tls_cert`
    /// without `tls_key` (or the other way round), or a file that cannot be
    /// read or holds no usable PEM. The text names the option and the path.
    Tls(String),
    /// A campaign request was refused without ending the campaign
    /// (`CampaignRefused`, for example a proclaim whose epoch is no longer
    /// the term), or refused by the client itself (a proclaim while not
    /// leading: `addr` is then `None`). Its code is `FAILED_PRECONDITION`.
    Refused {
        addr: Option<String>,
        request: String,
        reason: String,
    },
    /// The campaign's work failed (returned an error or panicked); the
    /// candidate resigned. Code `UNKNOWN`, no addresses.
    Work(Arc<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// The gRPC status code: the one the node answered with or, when no node
    /// answered, that of the last address's failure (usually `Unavailable` or
    /// `DeadlineExceeded`). [`Code::Unknown`] for [`Error::NoAddresses`],
    /// [`Error::BadAddress`] and [`Error::Tls`], which have no status.
    pub fn code(&self) -> Code {
        match self {
            Error::NoNode { status, .. } | Error::Status { status, .. } => status.code(),
            Error::Refused { .. } => Code::FailedPrecondition,
            Error::NoAddresses | Error::BadAddress(_) | Error::Tls(_) | Error::Work(_) => {
                Code::Unknown
            }
        }
    }

    /// The gRPC status message (without the code), followed by its underlying
    /// causes such as "Connection refused" when the status was made from a
    /// transport error. For [`Error::NoAddresses`] and [`Error::BadAddress`],
    /// which have no status, the error's text.
    pub fn details(&self) -> String {
        match self {
            Error::NoNode { status, .. } | Error::Status { status, .. } => {
                with_sources(status.message().to_string(), status)
            }
            Error::Refused { reason, .. } => reason.clone(),
            Error::NoAddresses | Error::BadAddress(_) | Error::Tls(_) | Error::Work(_) => {
                self.to_string()
            }
        }
    }

    /// Whether no node answered (the [`Error::NoNode`] variant), as opposed to
    /// a node answering with an error or a bad argument.
    pub fn no_node_answered(&self) -> bool {
        matches!(self, Error::NoNode { .. })
    }

    /// The addresses the error comes from: every address of the client, in
    /// client order, when no node answered (all were tried); the one node that
    /// answered with the error for [`Error::Status`]; empty for
    /// [`Error::NoAddresses`] and [`Error::BadAddress`] (nothing was tried).
    pub fn addresses(&self) -> &[String] {
        match self {
            Error::NoNode { addrs, .. } => addrs,
            Error::Status { addr, .. }
            | Error::Refused {
                addr: Some(addr), ..
            } => std::slice::from_ref(addr),
            Error::NoAddresses
            | Error::BadAddress(_)
            | Error::Tls(_)
            | Error::Work(_)
            | Error::Refused { addr: None, .. } => &[],
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoAddresses => write!(f, "no address given"),
            Error::BadAddress(a) => write!(f, "bad address {a:?}: want HOST:PORT"),
            Error::NoNode { addrs, last, .. } => write!(
                f,
                "no electd node answered (tried {}): last error: {last}",
                addrs.join(", ")
            ),
            Error::Status { addr, status } => write!(f, "{addr}: {}", describe(status)),
            Error::Tls(message) => f.write_str(message),
            Error::Refused {
                addr,
                request,
                reason,
            } => match addr {
                Some(addr) => write!(f, "{addr}: {request} refused: {reason}"),
                None => write!(f, "{request} refused: {reason}"),
            },
            Error::Work(e) => write!(f, "the campaign's work failed: {e}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Work(e) => Some(&**e),
            _ => None,
        }
    }
}

/// A readable one-line form of a status, including its underlying cause (for
/// example "Connection refused"), which `Status`'s own Display leaves out.
pub(crate) fn describe(status: &Status) -> String {
    with_sources(format!("{:?}: {}", status.code(), status.message()), status)
}

/// `s` followed by the texts of the status's underlying causes.
fn with_sources(mut s: String, status: &Status) -> String {
    let mut source = std::error::Error::source(status);
    while let Some(e) = source {
        // Layers often repeat their inner error's text; keep each text once.
        let text = e.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = e.source();
    }
    s
}

/// Checks that `addr` has the form `HOST:PORT` (IPv6 hosts in brackets).
pub fn validate_address(addr: &str) -> Result<(), Error> {
    let bad = || Error::BadAddress(addr.to_string());
    let (host, port) = addr.rsplit_once(':').ok_or_else(bad)?;
    let port_ok = port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = !host.is_empty()
        && (!host.contains(':') || (host.starts_with('[') && host.ends_with(']')))
        && !host.contains('/');
    if port_ok && host_ok {
        Ok(())
    } else {
        Err(bad())
    }
}

/// A client of an electd cluster. Cloning is cheap and clones share the
/// connections; it is safe to use from many tasks. Dropping the last clone
/// releases the connections.
#[derive(Clone)]
pub struct ElectionClient {
    inner: Arc<Inner>,
}

struct Inner {
    addrs: Vec<String>,
    /// Each address's channel, with the TLS generation it was built with.
    channels: Vec<Mutex<(u64, Channel)>>,
    tls: Option<tls::Tls>,
    config: Config,
    /// Index of the address in use; advanced on failure.
    current: AtomicUsize,
}

impl ElectionClient {
    /// A client with the default [`Config`]. See [`ElectionClient::with_config`].
    pub fn new<I, S>(addrs: I) -> Result<ElectionClient, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ElectionClient::with_config(addrs, Config::default())
    }

    /// A client for the given `HOST:PORT` addresses. It does not connect:
    /// connections are made by the first call. Must be called inside a Tokio
    /// runtime (the connections' background tasks are spawned on it).
    ///
    /// Fails with [`Error::NoAddresses`], [`Error::BadAddress`], or
    /// [`Error::Tls`] when the TLS options are wrong (the message names the
    /// option and the path).
    pub fn with_config<I, S>(addrs: I, config: Config) -> Result<ElectionClient, Error>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let addrs: Vec<String> = addrs.into_iter().map(Into::into).collect();
        if addrs.is_empty() {
            return Err(Error::NoAddresses);
        }
        for addr in &addrs {
            validate_address(addr)?;
        }
        let tls = tls::Tls::new(&config)?;
        let (generation, tls_config) = match &tls {
            Some(t) => {
                let (g, c) = t.current();
                (g, Some(c))
            }
            None => (0, None),
        };
        let mut channels = Vec::with_capacity(addrs.len());
        for addr in &addrs {
            let channel = connect::channel(addr, &config, tls_config.clone())?;
            channels.push(Mutex::new((generation, channel)));
        }
        Ok(ElectionClient {
            inner: Arc::new(Inner {
                addrs,
                channels,
                tls,
                config,
                current: AtomicUsize::new(0),
            }),
        })
    }

    /// The addresses the client was created with.
    pub fn addrs(&self) -> &[String] {
        &self.inner.addrs
    }

    pub(crate) fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The stub of address `i`, for a new attempt. With TLS, a channel made
    /// before the TLS files last changed is replaced by one made with the new
    /// files (streams open on the old one carry on).
    pub(crate) fn stub(&self, i: usize) -> ElectionServiceClient<Channel> {
        let mut slot = self.inner.channels[i].lock().unwrap();
        if let Some(tls) = &self.inner.tls {
            let (generation, config) = tls.current();
            if generation != slot.0
                && let Ok(channel) =
                    connect::channel(&self.inner.addrs[i], &self.inner.config, Some(config))
            {
                *slot = (generation, channel);
            }
        }
        ElectionServiceClient::new(slot.1.clone())
    }

    pub(crate) fn start(&self) -> usize {
        self.inner.current.load(Ordering::Relaxed)
    }

    /// Moves the client off address `i`, unless another task already did.
    pub(crate) fn failed(&self, i: usize) {
        let next = (i + 1) % self.inner.addrs.len();
        let _ = self
            .inner
            .current
            .compare_exchange(i, next, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// Runs `call` against each address at most once, starting with the one in
    /// use, until one answers.
    async fn unary<T, F, Fut>(&self, call: F) -> Result<T, Error>
    where
        F: Fn(ElectionServiceClient<Channel>, Duration) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let n = self.inner.addrs.len();
        let first = self.start();
        let timeout = self.inner.config.call_timeout;
        let mut last = String::new();
        let mut last_status = Status::unknown("");
        for k in 0..n {
            let i = (first + k) % n;
            // The request carries the deadline to the server (grpc-timeout);
            // the local timeout also bounds connecting and a silent peer.
            let result = match tokio::time::timeout(timeout, call(self.stub(i), timeout)).await {
                Ok(r) => r,
                Err(_) => Err(Status::deadline_exceeded("deadline exceeded")),
            };
            match result {
                Ok(resp) => return Ok(resp.into_inner()),
                Err(status) if retryable(&status) => {
                    let status = connection_status(status);
                    last = format!("{}: {}", self.inner.addrs[i], describe(&status));
                    last_status = status;
                    self.failed(i);
                }
                Err(status) => {
                    return Err(Error::Status {
                        addr: self.inner.addrs[i].clone(),
                        status,
                    });
                }
            }
        }
        Err(Error::NoNode {
            addrs: self.inner.addrs.clone(),
            last,
            status: last_status,
        })
    }

    /// Returns the current leader, asking each address at most once. Fails
    /// with [`Error::NoNode`] when no address answered, and with
    /// [`Error::Status`] when a node answered with an error.
    pub async fn get_leader(&self) -> Result<pb::GetLeaderResponse, Error> {
        self.get_leader_of("").await
    }

    async fn get_leader_of(&self, election: &str) -> Result<pb::GetLeaderResponse, Error> {
        self.unary(|mut stub, timeout| async move {
            let mut req = Request::new(pb::GetLeaderRequest {
                election: election.to_string(),
            });
            req.set_timeout(timeout);
            stub.get_leader(req).await
        })
        .await
    }

    /// Returns the live members in election order (leader first). An empty
    /// selector returns every node; otherwise only nodes carrying every
    /// `KEY=VALUE` label of the selector. Fails like
    /// [`get_leader`](ElectionClient::get_leader).
    pub async fn list_nodes(
        &self,
        label_selector: HashMap<String, String>,
    ) -> Result<pb::ListNodesResponse, Error> {
        self.list_nodes_of("", label_selector).await
    }

    async fn list_nodes_of(
        &self,
        election: &str,
        label_selector: HashMap<String, String>,
    ) -> Result<pb::ListNodesResponse, Error> {
        self.unary(|mut stub, timeout| {
            let label_selector = label_selector.clone();
            async move {
                let mut req = Request::new(pb::ListNodesRequest {
                    label_selector,
                    election: election.to_string(),
                });
                req.set_timeout(timeout);
                stub.list_nodes(req).await
            }
        })
        .await
    }

    /// Watches the leader from the current one on (the `WatchLeader` RPC):
    /// the same as [`watch_leader_after(0)`](ElectionClient::watch_leader_after).
    pub fn watch_leader(&self) -> LeaderWatch {
        self.watch_leader_after(0)
    }

    /// Watches the leader, reporting only leaders whose epoch is greater than
    /// `epoch`: the highest epoch the caller has already handled, for example
    /// one saved before a restart (0: from the current leader on; a negative
    /// epoch counts as 0). The server is asked for `min_epoch = epoch + 1`.
    /// Nothing is sent until the watch is first polled; see [`LeaderWatch`].
    pub fn watch_leader_after(&self, epoch: i64) -> LeaderWatch {
        LeaderWatch::new(self.clone(), String::new(), epoch.max(0))
    }

    /// The named election `name` (the `election` field of the reads): its
    /// leader, members and leader changes. Cheap; checks nothing (a
    /// malformed name is the node's `INVALID_ARGUMENT`).
    pub fn election(&self, name: impl Into<String>) -> Election {
        Election {
            client: self.clone(),
            name: name.into(),
        }
    }

    /// Ends the current term of the named election `election` on an
    /// operator's behalf (the `Resign` RPC); `epoch` must be the current
    /// leader's. Returns the leader whose term ended. `FAILED_PRECONDITION`
    /// (the details name the current epoch), `NOT_FOUND` (no leader) and
    /// `INVALID_ARGUMENT` are [`Error::Status`].
    pub async fn resign(&self, election: &str, epoch: i64) -> Result<pb::ResignResponse, Error> {
        self.unary(|mut stub, timeout| async move {
            let mut req = Request::new(pb::ResignRequest {
                election: election.to_string(),
                epoch,
            });
            req.set_timeout(timeout);
            stub.resign(req).await
        })
        .await
    }

    /// The named elections, sorted by name, with their candidate counts
    /// (the `ListElections` RPC).
    pub async fn list_elections(&self) -> Result<pb::ListElectionsResponse, Error> {
        self.unary(|mut stub, timeout| async move {
            let mut req = Request::new(pb::ListElectionsRequest {});
            req.set_timeout(timeout);
            stub.list_elections(req).await
        })
        .await
    }
}

/// A named election seen through an [`ElectionClient`], made by
/// [`ElectionClient::election`]: the reads with `election` set. Cloning is
/// cheap.
///
/// ```no_run
/// # async fn demo(client: electd_client::ElectionClient) -> Result<(), electd_client::Error> {
/// let jobs = client.election("jobs");
/// let leader = jobs.get_leader().await?.leader.unwrap_or_default(); // NOT_FOUND: no leader
/// let members = jobs.list_nodes(Default::default()).await?;
/// let mut watch = jobs.watch_leader_after(leader.epoch);
/// let next = watch.next().await?; // a new term, or a new value of the same term
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Election {
    client: ElectionClient,
    name: String,
}

impl Election {
    /// The election's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its leader, as [`ElectionClient::get_leader`]; a named election
    /// without a leader is `NOT_FOUND` ([`Error::Status`]).
    pub async fn get_leader(&self) -> Result<pb::GetLeaderResponse, Error> {
        self.client.get_leader_of(&self.name).await
    }

    /// Its members (never_lead ones included), in election order, as
    /// [`ElectionClient::list_nodes`].
    pub async fn list_nodes(
        &self,
        label_selector: HashMap<String, String>,
    ) -> Result<pb::ListNodesResponse, Error> {
        self.client.list_nodes_of(&self.name, label_selector).await
    }

    /// Watches its leader from the current one on; see
    /// [`watch_leader_after`](Election::watch_leader_after).
    pub fn watch_leader(&self) -> LeaderWatch {
        self.watch_leader_after(0)
    }

    /// Watches its leader, as [`ElectionClient::watch_leader_after`], with
    /// two differences: a new value proclaimed by the leader (same epoch,
    /// higher `node.value_revision`) is reported too, and
    /// `LEADER_STATE_VACANT` (no leader) is a healthy answer: nothing is
    /// reported and the watch stays on the node.
    pub fn watch_leader_after(&self, epoch: i64) -> LeaderWatch {
        LeaderWatch::new(self.client.clone(), self.name.clone(), epoch.max(0))
    }

    /// Resigns its current term (see [`ElectionClient::resign`]).
    pub async fn resign(&self, epoch: i64) -> Result<pb::ResignResponse, Error> {
        self.client.resign(&self.name, epoch).await
    }
}

impl fmt::Debug for Election {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Election")
            .field("name", &self.name)
            .finish()
    }
}

/// Whether a status means "this node can't answer now, ask another one":
/// `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED` (a full node), or
/// a failure of the connection itself.
pub(crate) fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::ResourceExhausted
    ) || from_transport(status)
}

/// A failure of the connection itself as `UNAVAILABLE` (clients/README.md,
/// "TLS", rule 4). tonic says `UNKNOWN` for some: a TLS handshake the node
/// aborts after the client's part (no or an unaccepted client certificate, a
/// plaintext client) surfaces as a broken HTTP/2 connection, as does a node
/// killed mid-stream. The causes stay in the message.
pub(crate) fn connection_status(status: Status) -> Status {
    if status.code() == Code::Unknown && from_transport(&status) {
        Status::unavailable(with_sources(status.message().to_string(), &status))
    } else {
        status
    }
}

/// Whether the status was made here from a transport error rather than sent by
/// the server. tonic reports some broken connections (for example a node
/// killed mid-stream: "stream closed because of a broken pipe") as `UNKNOWN`;
/// such statuses carry the underlying error as their source, whereas statuses
/// read from a server's trailers never do.
fn from_transport(status: &Status) -> bool {
    std::error::Error::source(status).is_some()
}

/// The pause after `rounds` (1, 2, ...) consecutive failed rounds:
/// base * 2^(rounds-1), capped, with "full jitter" (anywhere between zero and
/// all of it) so that clients that lost the same node do not return in
/// lockstep.
pub(crate) fn backoff_delay(config: &Config, rounds: u32) -> Duration {
    backoff_ceiling(config, rounds).mul_f64(fastrand::f64())
}

/// The longest pause after `rounds` failed rounds.
pub(crate) fn backoff_ceiling(config: &Config, rounds: u32) -> Duration {
    let factor = 2u32.saturating_pow(rounds.saturating_sub(1).min(30));
    config
        .backoff_base
        .saturating_mul(factor)
        .min(config.backoff_max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        for ok in ["127.0.0.1:7001", "localhost:1", "[::1]:65535"] {
            assert!(validate_address(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "foo",
            ":7001",
            "host:0",
            "host:70000",
            "host:http",
            "::1:7001",
            "a/b:1",
        ] {
            assert!(validate_address(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap() {
        let config = Config::default();
        for (rounds, full) in [(1, 50), (2, 100), (3, 200), (7, 2000), (40, 2000)] {
            let full = Duration::from_millis(full);
            assert_eq!(backoff_ceiling(&config, rounds), full);
            let delays: Vec<Duration> = (0..200).map(|_| backoff_delay(&config, rounds)).collect();
            assert!(
                delays.iter().all(|d| *d <= full),
                "round {rounds}: {delays:?}"
            );
            // Full jitter: spread over the whole range, not only its top half.
            assert!(
                delays.iter().any(|d| *d < full / 4),
                "round {rounds}: {delays:?}"
            );
            assert!(
                delays.iter().any(|d| *d > full * 3 / 4),
                "round {rounds}: {delays:?}"
            );
        }
    }

    #[test]
    fn server_statuses_are_not_transport_failures() {
        assert!(!retryable(&Status::invalid_argument("bad selector")));
        assert!(!retryable(&Status::unknown("from the server")));
        assert!(retryable(&Status::unavailable("no session")));
        assert!(retryable(&Status::deadline_exceeded("slow")));
        assert!(retryable(&Status::resource_exhausted("--max-streams")));
        assert!(!retryable(&Status::permission_denied("no")));
        let mut broken = Status::unknown("error reading a body from connection");
        broken.set_source(Arc::new(std::io::Error::from(
            std::io::ErrorKind::BrokenPipe,
        )));
        assert!(retryable(&broken));
    }

    #[tokio::test]
    async fn no_node_error_names_every_address() {
        // Port 1 on loopback: nothing listens, connecting is refused at once.
        let addrs = ["127.0.0.1:1", "[::1]:1"];
        let client = ElectionClient::new(addrs).unwrap();
        let err = client.get_leader().await.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::NoNode { .. }), "{msg}");
        assert!(
            msg.contains("127.0.0.1:1") && msg.contains("[::1]:1"),
            "{msg}"
        );
        assert!(err.no_node_answered(), "{msg}");
        assert_eq!(err.addresses(), addrs);
        // A refused connection is UNAVAILABLE, and its cause is in the details.
        assert_eq!(err.code(), Code::Unavailable, "{msg}");
        assert!(
            !err.details().is_empty() && msg.contains(&err.details()),
            "{:?} not in {msg}",
            err.details()
        );
        let err = client.watch_leader().next().await.unwrap_err();
        assert!(matches!(err, Error::NoNode { .. }), "{err}");
        assert!(err.no_node_answered() && err.addresses() == addrs, "{err}");
    }

    #[tokio::test]
    async fn unary_calls_fail_over_on_resource_exhausted_and_unavailable() {
        use crate::testing::{FakeNode, leader_answer};
        let full = FakeNode::start(vec![])
            .await
            .get_leader(Err(Status::resource_exhausted("full")));
        let down = FakeNode::start(vec![]).await; // UNAVAILABLE
        let ok = FakeNode::start(vec![])
            .await
            .get_leader(leader_answer("n3", 9));
        let client = ElectionClient::new([&full.addr, &down.addr, &ok.addr]).unwrap();
        let resp = client.get_leader().await.unwrap();
        assert_eq!(resp.leader.unwrap().epoch, 9);
        // The next call starts with the node that answered.
        assert_eq!(client.start(), 2);

        let client = ElectionClient::new([&full.addr, &down.addr]).unwrap();
        let err = client.get_leader().await.unwrap_err();
        assert!(err.no_node_answered(), "{err}");
        assert_eq!(err.code(), Code::Unavailable, "the last address's: {err}");
        assert_eq!(err.addresses(), [full.addr.as_str(), down.addr.as_str()]);
    }

    #[tokio::test]
    async fn unary_calls_return_other_statuses_at_once() {
        use crate::testing::{FakeNode, leader_answer};
        let denied = FakeNode::start(vec![])
            .await
            .get_leader(Err(Status::permission_denied("not you")));
        let ok = FakeNode::start(vec![])
            .await
            .get_leader(leader_answer("n3", 9));
        let client = ElectionClient::new([&denied.addr, &ok.addr]).unwrap();
        let err = client.get_leader().await.unwrap_err();
        assert!(matches!(err, Error::Status { .. }), "{err}");
        assert_eq!(err.code(), Code::PermissionDenied);
        assert_eq!(err.addresses(), [denied.addr.as_str()]);
    }

    #[tokio::test]
    async fn unary_call_deadline_moves_on() {
        use crate::testing::{FakeNode, leader_answer};
        // A node that answers the HTTP/2 handshake but not the call: the
        // frozen proxy passes the handshake, then freezes.
        let slow = FakeNode::start(vec![])
            .await
            .get_leader(leader_answer("n1", 1));
        let proxy = crate::testing::FreezableProxy::start(slow.addr.clone()).await;
        let ok = FakeNode::start(vec![])
            .await
            .get_leader(leader_answer("n3", 9));
        let client = ElectionClient::new([&proxy.addr, &ok.addr]).unwrap();
        assert_eq!(client.get_leader().await.unwrap().leader.unwrap().epoch, 1);
        proxy.freeze();
        client.inner.current.store(0, Ordering::Relaxed); // the frozen node first
        let start = std::time::Instant::now();
        assert_eq!(client.get_leader().await.unwrap().leader.unwrap().epoch, 9);
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1500), "{took:?}");
        assert!(took < Duration::from_secs(5), "{took:?}");
    }

    #[test]
    fn status_error_accessors() {
        let err = Error::Status {
            addr: "127.0.0.1:7001".into(),
            status: Status::invalid_argument("bad selector"),
        };
        assert_eq!(err.code(), Code::InvalidArgument);
        assert_eq!(err.details(), "bad selector");
        assert!(!err.no_node_answered());
        assert_eq!(err.addresses(), ["127.0.0.1:7001"]);
        assert_eq!(
            err.to_string(),
            "127.0.0.1:7001: InvalidArgument: bad selector"
        );
    }

    #[test]
    fn no_node_error_accessors() {
        let mut status = Status::unavailable("tcp connect error");
        status.set_source(Arc::new(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        let err = Error::NoNode {
            addrs: vec!["a:1".into(), "b:2".into()],
            last: format!("b:2: {}", describe(&status)),
            status,
        };
        assert_eq!(err.code(), Code::Unavailable);
        assert_eq!(err.details(), "tcp connect error: connection refused");
        assert!(err.no_node_answered());
        assert_eq!(err.addresses(), ["a:1", "b:2"]);
        assert_eq!(
            err.to_string(),
            "no electd node answered (tried a:1, b:2): last error: \
             b:2: Unavailable: tcp connect error: connection refused"
        );
    }

    #[test]
    fn errors_without_status() {
        for err in [
            ElectionClient::new(Vec::<String>::new()).err().unwrap(),
            validate_address("no-port").unwrap_err(),
        ] {
            assert_eq!(err.code(), Code::Unknown, "{err}");
            assert_eq!(err.details(), err.to_string());
            assert!(!err.no_node_answered(), "{err}");
            assert!(err.addresses().is_empty(), "{err}");
        }
    }
}
