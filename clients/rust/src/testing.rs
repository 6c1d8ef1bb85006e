//! Test doubles: scripted in-process electd nodes (real tonic servers on
//! loopback), raw TCP listeners that never speak, a black-holed address and a
//! proxy that can freeze like a SIGSTOPped node.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Notify, mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tonic::codegen::tokio_stream::Stream;
use tonic::codegen::tokio_stream::wrappers::ReceiverStream;
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};

use crate::pb::election_service_server::{ElectionService, ElectionServiceServer};
use crate::pb::{
    CampaignRequest, CampaignResponse, GetLeaderRequest, GetLeaderResponse, Leader, LeaderState,
    ListNodesRequest, ListNodesResponse, Node, WatchLeaderRequest, WatchLeaderResponse,
};

/// One `Campaign` call as a scripted node sees it: the candidate's requests
/// and the sender of the responses (send an `Err` to fail the stream, drop
/// it to end the stream with OK).
pub(crate) struct CampaignCall {
    pub requests: tonic::Streaming<CampaignRequest>,
    pub responses: mpsc::Sender<Result<CampaignResponse, Status>>,
}

/// Plays one `Campaign` call.
pub(crate) type CampaignScript =
    Arc<dyn Fn(CampaignCall) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// One step of a scripted `WatchLeader` stream.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// Fail the call itself (before any message).
    Reject(Status),
    Send(Box<WatchLeaderResponse>),
    Sleep(Duration),
    /// End the stream with this status.
    Fail(Status),
    /// End the stream with OK.
    End,
    /// Keep the stream open, sending nothing, until the client cancels it.
    Hang,
}

pub(crate) fn leader(id: &str, epoch: i64) -> Leader {
    Leader {
        node: Some(Node {
            id: id.into(),
            address: format!("{id}.test:7001"),
            ..Default::default()
        }),
        epoch,
        elected_at: None,
    }
}

/// An elected-leader message.
pub(crate) fn elected(id: &str, epoch: i64) -> Step {
    Step::Send(Box::new(WatchLeaderResponse {
        state: LeaderState::Elected as i32,
        leader: Some(leader(id, epoch)),
        reason: String::new(),
        responder_id: "fake".into(),
    }))
}

/// A "cannot vouch" message.
pub(crate) fn unknown(reason: &str) -> Step {
    Step::Send(Box::new(WatchLeaderResponse {
        state: LeaderState::Unknown as i32,
        leader: None,
        reason: reason.into(),
        responder_id: "fake".into(),
    }))
}

#[derive(Default)]
struct Shared {
    /// The script of each coming `WatchLeader` call, in order; when none is
    /// left, `otherwise` is played.
    scripts: Mutex<VecDeque<Vec<Step>>>,
    otherwise: Mutex<Vec<Step>>,
    /// `min_epoch` of every `WatchLeader` call received.
    min_epochs: Mutex<Vec<i64>>,
    /// Streams that ended (the script ended or the client cancelled).
    finished: AtomicUsize,
    finished_changed: Notify,
    get_leader: Mutex<Option<Result<GetLeaderResponse, Status>>>,
    campaign: Mutex<Option<CampaignScript>>,
}

/// A scripted electd node served by tonic on 127.0.0.1. Stops when dropped.
pub(crate) struct FakeNode {
    pub addr: String,
    shared: Arc<Shared>,
    _stop: oneshot::Sender<()>,
}

impl FakeNode {
    /// A node whose `WatchLeader` calls play `scripts` in turn, then
    /// `otherwise` (by default: hang) for every further call.
    pub async fn start(scripts: Vec<Vec<Step>>) -> FakeNode {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let shared = Arc::new(Shared::default());
        *shared.scripts.lock().unwrap() = scripts.into();
        *shared.otherwise.lock().unwrap() = vec![Step::Hang];
        let service = ElectionServiceServer::new(Service(shared.clone()));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = Server::builder()
                .serve_with_incoming_shutdown(
                    service,
                    TcpIncoming::from(listener).with_nodelay(Some(true)),
                    async {
                        let _ = stopped.await;
                    },
                )
                .await;
        });
        FakeNode {
            addr,
            shared,
            _stop: stop,
        }
    }

    /// What every `WatchLeader` call plays once the scripts are used up.
    pub fn otherwise(self, steps: Vec<Step>) -> FakeNode {
        *self.shared.otherwise.lock().unwrap() = steps;
        self
    }

    /// What `GetLeader` answers (by default `UNAVAILABLE`).
    pub fn get_leader(self, answer: Result<GetLeaderResponse, Status>) -> FakeNode {
        *self.shared.get_leader.lock().unwrap() = Some(answer);
        self
    }

    /// What every `Campaign` call plays (by default it is `UNAVAILABLE`).
    pub fn campaign<F, Fut>(self, script: F) -> FakeNode
    where
        F: Fn(CampaignCall) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let script: CampaignScript = Arc::new(move |call| Box::pin(script(call)));
        *self.shared.campaign.lock().unwrap() = Some(script);
        self
    }

    /// The `min_epoch` of every `WatchLeader` call so far.
    pub fn min_epochs(&self) -> Vec<i64> {
        self.shared.min_epochs.lock().unwrap().clone()
    }

    /// Waits until `n` streams have ended on this node.
    pub async fn wait_finished(&self, n: usize) {
        loop {
            let changed = self.shared.finished_changed.notified();
            if self.shared.finished.load(Ordering::SeqCst) >= n {
                return;
            }
            changed.await;
        }
    }
}

pub(crate) fn leader_answer(id: &str, epoch: i64) -> Result<GetLeaderResponse, Status> {
    Ok(GetLeaderResponse {
        leader: Some(leader(id, epoch)),
        responder_id: id.into(),
    })
}

struct Service(Arc<Shared>);

type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchLeaderResponse, Status>> + Send>>;
type CampaignStream = Pin<Box<dyn Stream<Item = Result<CampaignResponse, Status>> + Send>>;

#[tonic::async_trait]
impl ElectionService for Service {
    async fn get_leader(
        &self,
        _request: Request<GetLeaderRequest>,
    ) -> Result<Response<GetLeaderResponse>, Status> {
        let answer = self.0.get_leader.lock().unwrap().clone();
        answer
            .unwrap_or_else(|| Err(Status::unavailable("fake node: no leader")))
            .map(Response::new)
    }

    async fn list_nodes(
        &self,
        _request: Request<ListNodesRequest>,
    ) -> Result<Response<ListNodesResponse>, Status> {
        Err(Status::unimplemented("fake node"))
    }

    async fn campaign(
        &self,
        request: Request<tonic::Streaming<CampaignRequest>>,
    ) -> Result<Response<CampaignStream>, Status> {
        let script = self.0.campaign.lock().unwrap().clone();
        let script = script.ok_or_else(|| Status::unavailable("fake node: no campaign"))?;
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(script(CampaignCall {
            requests: request.into_inner(),
            responses: tx,
        }));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn watch_leader(
        &self,
        request: Request<WatchLeaderRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let shared = self.0.clone();
        shared
            .min_epochs
            .lock()
            .unwrap()
            .push(request.get_ref().min_epoch);
        let next = shared.scripts.lock().unwrap().pop_front();
        let script = next.unwrap_or_else(|| shared.otherwise.lock().unwrap().clone());
        if let Some(Step::Reject(status)) = script.first() {
            shared.finished.fetch_add(1, Ordering::SeqCst);
            shared.finished_changed.notify_waiters();
            return Err(status.clone());
        }
        let (tx, rx) = mpsc::channel(16);
        tokio::spawn(async move {
            for step in script {
                match step {
                    Step::Reject(_) => unreachable!("Reject comes first"),
                    Step::Send(msg) => {
                        if tx.send(Ok(*msg)).await.is_err() {
                            break;
                        }
                    }
                    Step::Sleep(d) => {
                        tokio::select! {
                            _ = tokio::time::sleep(d) => {}
                            _ = tx.closed() => break,
                        }
                    }
                    Step::Fail(status) => {
                        let _ = tx.send(Err(status)).await;
                        break;
                    }
                    Step::End => break,
                    Step::Hang => {
                        tx.closed().await;
                        break;
                    }
                }
            }
            drop(tx);
            shared.finished.fetch_add(1, Ordering::SeqCst);
            shared.finished_changed.notify_waiters();
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Aborts the task when dropped.
pub(crate) struct Task(JoinHandle<()>);

impl Drop for Task {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A listener that accepts connections and reads from them but never writes
/// a byte: a stuck process.
pub(crate) async fn mute_listener() -> (String, Task) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        loop {
            let (mut conn, _) = listener.accept().await.unwrap();
            held.push(tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while conn.read(&mut buf).await.is_ok_and(|n| n > 0) {}
            }));
        }
    });
    (addr, Task(task))
}

/// A listening socket nobody accepts from: the kernel completes the TCP
/// handshake, and then nothing happens.
pub(crate) async fn never_accepting_listener() -> (String, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (listener.local_addr().unwrap().to_string(), listener)
}

/// An address whose TCP handshake never completes: a listener with a full
/// accept queue, for which Linux drops new SYNs (as a firewall dropping
/// packets would).
pub(crate) async fn black_hole() -> (String, (TcpListener, TcpStream)) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    // Fills the queue (a backlog of 0 holds one connection).
    let filler = TcpStream::connect(addr).await.unwrap();
    let probe = tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await;
    assert!(probe.is_err(), "{addr} is not black-holed: {probe:?}");
    (addr.to_string(), (listener, filler))
}

/// An address that refuses connections (nothing listens there).
pub(crate) async fn refused() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A TCP proxy in front of `upstream` that can freeze: while frozen it
/// forwards nothing in either direction but keeps every connection open, as
/// a SIGSTOPped process whose kernel still holds its sockets.
pub(crate) struct FreezableProxy {
    pub addr: String,
    frozen: watch::Sender<bool>,
    _task: Task,
}

impl FreezableProxy {
    pub async fn start(upstream: String) -> FreezableProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let (frozen, frozen_rx) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                let (client, _) = listener.accept().await.unwrap();
                let server = TcpStream::connect(upstream.as_str()).await.unwrap();
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, frozen_rx.clone()));
                tokio::spawn(pump(sr, cw, frozen_rx.clone()));
            }
        });
        FreezableProxy {
            addr,
            frozen,
            _task: Task(task),
        }
    }

    pub fn freeze(&self) {
        self.frozen.send_replace(true);
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if frozen.wait_for(|f| !*f).await.is_err() {
            return;
        }
        let n = tokio::select! {
            r = from.read(&mut buf) => match r {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            },
            _ = frozen.wait_for(|f| *f) => continue,
        };
        // Read just before a freeze: held back like the rest.
        if frozen.wait_for(|f| !*f).await.is_err() || to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
