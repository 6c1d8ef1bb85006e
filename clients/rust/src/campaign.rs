//! The campaign helper (clients/README.md, "The campaign helper"): run a
//! piece of work while this candidate leads a named election, stop it before
//! the lease the node granted runs out, and re-campaign or stop on a loss.
//!
//! [`ElectionClient::campaign`] spawns a driver task that holds one
//! `Campaign` stream at a time (failing over across the client's addresses
//! like a watch), pings, turns every `CampaignLeading` into a deadline on
//! Tokio's monotonic clock (`machine.rs` keeps that bookkeeping) and polls
//! the work future itself, so that stopping the work is dropping it: it has
//! stopped when the driver goes on, which is when the ack is sent.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::future::{Future, IntoFuture};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tonic::{Code, Status, Streaming};

use crate::pb::{self, CampaignRequest, CampaignResponse, campaign_request, campaign_response};
use crate::{ElectionClient, Error, backoff_delay, connection_status, describe, retryable};

mod machine;
use machine::{Cause, Machine, Step};

/// The error type a work future may fail with (anything that converts into
/// it: `std::io::Error`, `String`, `anyhow::Error`, ...).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// What to do when a term is lost (a `CampaignLost`, a deadline that ran
/// out, a broken stream).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnLoss {
    /// Stay a candidate (on the same stream, or a new one on the next
    /// address) and wait to lead again (the default).
    #[default]
    Recampaign,
    /// End the campaign: it resolves to [`Ended::Lost`].
    Stop,
}

type EventHook = Box<dyn FnMut(&CampaignEvent) + Send>;

/// What [`ElectionClient::campaign`] campaigns for, and how. Made with
/// [`CampaignOptions::new`] and the builder methods.
///
/// ```
/// use electd_client::{CampaignOptions, OnLoss};
/// let options = CampaignOptions::new("jobs", "worker-1")
///     .value(b"10.0.0.5:8080".to_vec())
///     .label("zone", "a")
///     .priority(5)
///     .on_loss(OnLoss::Stop)
///     .on_event(|event| eprintln!("{event}"));
/// ```
pub struct CampaignOptions {
    election: String,
    candidate_id: String,
    value: Vec<u8>,
    labels: HashMap<String, String>,
    priority: i32,
    never_lead: bool,
    on_loss: OnLoss,
    ping_interval: Duration,
    hook: Option<EventHook>,
}

impl CampaignOptions {
    /// Campaign in election `election` as candidate `candidate_id`.
    pub fn new(election: impl Into<String>, candidate_id: impl Into<String>) -> CampaignOptions {
        CampaignOptions {
            election: election.into(),
            candidate_id: candidate_id.into(),
            value: Vec::new(),
            labels: HashMap::new(),
            priority: 0,
            never_lead: false,
            on_loss: OnLoss::Recampaign,
            ping_interval: Duration::from_millis(500),
            hook: None,
        }
    }

    /// The candidate's value (opaque bytes, at most 16 KiB), shown to
    /// watchers; [`Campaign::proclaim`] changes it while leading.
    pub fn value(mut self, value: impl Into<Vec<u8>>) -> Self {
        self.value = value.into();
        self
    }

    /// Adds a `KEY=VALUE` label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    /// Replaces all labels.
    pub fn labels(mut self, labels: HashMap<String, String>) -> Self {
        self.labels = labels;
        self
    }

    /// Higher leads first: a waiting candidate of higher priority preempts
    /// the leader (default 0).
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// A member only: listed, never leads, never holds anyone back.
    pub fn never_lead(mut self, never_lead: bool) -> Self {
        self.never_lead = never_lead;
        self
    }

    /// What to do on a loss (default [`OnLoss::Recampaign`]).
    pub fn on_loss(mut self, on_loss: OnLoss) -> Self {
        self.on_loss = on_loss;
        self
    }

    /// The pause between pings (default 500 ms; never more than a third of
    /// the last lease granted, whatever is set here).
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Calls `hook` with every [`CampaignEvent`], for logs and metrics. It
    /// runs on the campaign's task, so it must be quick. Replaces an earlier
    /// hook.
    pub fn on_event<F>(mut self, hook: F) -> Self
    where
        F: FnMut(&CampaignEvent) + Send + 'static,
    {
        self.hook = Some(Box::new(hook));
        self
    }
}

impl fmt::Debug for CampaignOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CampaignOptions")
            .field("election", &self.election)
            .field("candidate_id", &self.candidate_id)
            .field("value_len", &self.value.len())
            .field("labels", &self.labels)
            .field("priority", &self.priority)
            .field("never_lead", &self.never_lead)
            .field("on_loss", &self.on_loss)
            .field("ping_interval", &self.ping_interval)
            .finish_non_exhaustive()
    }
}

/// Why a term ended: the node's `LossReason`s, and two the client finds
/// itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LossReason {
    /// The candidate resigned.
    Resigned,
    /// Its entry was deleted by another client (an operator's Resign).
    Deleted,
    /// A waiting candidate of higher priority.
    Preempted,
    /// The node lost (or cannot prove) its ZooKeeper session.
    Zookeeper,
    /// The node is shutting down.
    Shutdown,
    /// Client side: the deadline came within the safety margin without a new
    /// grant (the term is given up: the candidate resigns it on the node).
    Expired,
    /// Client side: the stream broke or ended while leading.
    Disconnected,
    /// A reason this client does not know (a newer node), or none.
    Unspecified,
}

impl LossReason {
    fn from_proto(reason: i32) -> LossReason {
        match pb::LossReason::try_from(reason) {
            Ok(pb::LossReason::Resigned) => LossReason::Resigned,
            Ok(pb::LossReason::Deleted) => LossReason::Deleted,
            Ok(pb::LossReason::Preempted) => LossReason::Preempted,
            Ok(pb::LossReason::Zookeeper) => LossReason::Zookeeper,
            Ok(pb::LossReason::Shutdown) => LossReason::Shutdown,
            _ => LossReason::Unspecified,
        }
    }

    /// The name printed by the example (`lost epoch=E reason=NAME`), the same
    /// word in every client (clients/README.md): the proto's name without
    /// `LOSS_REASON_`, lower case, or `expired` / `disconnected`.
    pub fn as_str(&self) -> &'static str {
        match self {
            LossReason::Resigned => "resigned",
            LossReason::Deleted => "deleted",
            LossReason::Preempted => "preempted",
            LossReason::Zookeeper => "zookeeper",
            LossReason::Shutdown => "shutdown",
            LossReason::Expired => "expired",
            LossReason::Disconnected => "disconnected",
            LossReason::Unspecified => "unspecified",
        }
    }
}

impl fmt::Display for LossReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The end of a term whose work ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loss {
    pub epoch: i64,
    pub reason: LossReason,
    /// For people: the node's detail, or what the client saw.
    pub detail: String,
}

/// What happens to a campaign, as its [`on_event`](CampaignOptions::on_event)
/// hook sees it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum CampaignEvent {
    /// Waiting, `position` entries ahead (0: first, the old leader has not
    /// acknowledged yet). Reported when it changes, not for every ping.
    Queued {
        position: i32,
        /// The candidate id just ahead ("" when not known).
        waiting_for: String,
        never_lead: bool,
        /// The node holding the candidacy.
        addr: String,
    },
    /// A term started: the work runs (epochs strictly increase).
    Leading {
        epoch: i64,
        deadline: Instant,
        addr: String,
    },
    /// The work of a term was stopped.
    Lost(Loss),
    /// The campaign left an address (it moves to the next one).
    Failover { addr: String, reason: String },
    /// The node refused a request that does not end the stream (an ack).
    Refused { request: String, reason: String },
}

impl fmt::Display for CampaignEvent {
    /// The example program's lines (`queued position=P`, `leading epoch=E`,
    /// `lost epoch=E reason=R`), and similar ones for the others.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CampaignEvent::Queued { position, .. } => write!(f, "queued position={position}"),
            CampaignEvent::Leading { epoch, .. } => write!(f, "leading epoch={epoch}"),
            CampaignEvent::Lost(loss) => {
                write!(f, "lost epoch={} reason={}", loss.epoch, loss.reason)
            }
            CampaignEvent::Failover { addr, reason } => write!(f, "left {addr}: {reason}"),
            CampaignEvent::Refused { request, reason } => {
                write!(f, "refused {request}: {reason}")
            }
        }
    }
}

/// How a campaign ended (the errors are [`Error`]s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// [`Campaign::resign`] (or every handle was dropped).
    Resigned,
    /// The work returned `Ok(())`: the candidate resigned.
    WorkFinished,
    /// A loss with [`OnLoss::Stop`].
    Lost(Loss),
}

/// One term of leadership, handed to the work.
#[derive(Debug, Clone)]
pub struct Term {
    /// The fencing epoch: pass it to every resource the work writes to.
    pub epoch: i64,
    deadline: Arc<Mutex<Instant>>,
}

impl Term {
    /// The latest lease deadline (send time of the answered ping + lease, on
    /// Tokio's monotonic clock). It moves later as grants come; the work is
    /// stopped before it, by the safety margin (10 % of the lease, at least
    /// 50 ms).
    pub fn deadline(&self) -> Instant {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner())
    }
}

enum Cmd {
    Resign,
    Proclaim(Vec<u8>, oneshot::Sender<Result<i64, Error>>),
}

type EndSlot = Option<Result<Ended, Error>>;

/// A running campaign, made by [`ElectionClient::campaign`].
///
/// Await it (it is [`IntoFuture`]) or [`wait`](Campaign::wait) for its end;
/// [`resign`](Campaign::resign) ends it; [`proclaim`](Campaign::proclaim)
/// changes the value while leading. Clones share the campaign. Dropping every
/// clone resigns (the work is cancelled first), like dropping a
/// [`LeaderWatch`](crate::LeaderWatch) cancels it.
#[derive(Clone)]
#[must_use = "dropping every Campaign handle resigns"]
pub struct Campaign {
    cmds: mpsc::UnboundedSender<Cmd>,
    end: watch::Receiver<EndSlot>,
    epoch: Arc<AtomicI64>,
}

impl Campaign {
    /// Waits for the end: `Ok` with how it ended, or the error that ended
    /// it: [`Error::Work`] (the work failed; the candidate resigned),
    /// [`Error::Status`] (a node refused the campaign, for example
    /// `INVALID_ARGUMENT` or `PERMISSION_DENIED`), [`Error::NoNode`] (no
    /// node answered in the first round). Cancel-safe.
    pub async fn wait(&self) -> Result<Ended, Error> {
        let mut end = self.end.clone();
        match end.wait_for(Option::is_some).await {
            Ok(slot) => slot.clone().expect("waited for Some"),
            Err(_) => Err(Error::Work(Arc::new(std::io::Error::other(
                "the campaign's task ended without a result (its runtime shut down)",
            )))),
        }
    }

    /// Ends the campaign: cancels the work and waits until it stopped,
    /// resigns on the node, and returns how the campaign ended (which may be
    /// earlier, for another reason).
    pub async fn resign(&self) -> Result<Ended, Error> {
        let _ = self.cmds.send(Cmd::Resign);
        self.wait().await
    }

    /// Sets the leader's value (`CampaignProclaim` for the current term) and
    /// returns its new `value_revision`. Fails with [`Error::Refused`] when
    /// not leading or when the node refuses it (an epoch that is no longer
    /// the term), and with the stream's error if it breaks first.
    pub async fn proclaim(&self, value: impl Into<Vec<u8>>) -> Result<i64, Error> {
        let (tx, rx) = oneshot::channel();
        if self.cmds.send(Cmd::Proclaim(value.into(), tx)).is_err() {
            return Err(refused_locally("the campaign has ended"));
        }
        rx.await
            .unwrap_or_else(|_| Err(refused_locally("the campaign has ended")))
    }

    /// The epoch of the term whose work runs now, if any.
    pub fn leading_epoch(&self) -> Option<i64> {
        Some(self.epoch.load(Ordering::Relaxed)).filter(|e| *e > 0)
    }

    /// Whether the campaign has ended.
    pub fn is_ended(&self) -> bool {
        self.end.borrow().is_some()
    }
}

impl IntoFuture for Campaign {
    type Output = Result<Ended, Error>;
    type IntoFuture = Pin<Box<dyn Future<Output = Result<Ended, Error>> + Send>>;

    /// The end of the campaign (the handle is kept alive until then).
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.wait().await })
    }
}

impl fmt::Debug for Campaign {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Campaign")
            .field("leading_epoch", &self.leading_epoch())
            .field("end", &*self.end.borrow())
            .finish()
    }
}

fn refused_locally(reason: &str) -> Error {
    Error::Refused {
        addr: None,
        request: "proclaim".into(),
        reason: reason.into(),
    }
}

type WorkFuture = Pin<Box<dyn Future<Output = Result<(), BoxError>> + Send>>;
type WorkFn = Box<dyn FnMut(Term, CancellationToken) -> WorkFuture + Send>;

impl ElectionClient {
    /// Campaigns in a named election and runs `work` while leading.
    ///
    /// `work(term, token)` is called for each term (epochs strictly
    /// increase, never one already run) and its future is polled by the
    /// campaign's task until it returns or is cancelled. It is cancelled when
    /// the lease deadline comes within the safety margin (10 % of the lease,
    /// at least 50 ms) without a new grant, on `CampaignLost`, when the
    /// stream fails, and on [`Campaign::resign`]: `token` is cancelled, then
    /// the future is dropped, then (for a Lost) the ack is sent. Work that
    /// spawns tasks or threads must stop them when `token` is cancelled; work
    /// must not block the thread (use `spawn_blocking` and the token).
    ///
    /// Work that returns `Ok(())` ends the campaign (the candidate resigns:
    /// [`Ended::WorkFinished`]); work that fails (or panics) resigns too and
    /// the campaign ends with [`Error::Work`].
    ///
    /// The stream fails over like a watch: refused, black-holed or mute
    /// addresses, `UNAVAILABLE`, `DEADLINE_EXCEEDED`, `RESOURCE_EXHAUSTED`, no
    /// first answer within `first_message_timeout`, keepalive, a stream that
    /// ends: next address, with the contract's backoff after a full round.
    /// Other statuses end the campaign with [`Error::Status`]. Must be called
    /// inside a Tokio runtime.
    ///
    /// ```no_run
    /// # async fn demo(client: electd_client::ElectionClient) -> Result<(), electd_client::Error> {
    /// use electd_client::{CampaignOptions, Term};
    /// let campaign = client.campaign(
    ///     CampaignOptions::new("jobs", "worker-1").on_event(|e| eprintln!("{e}")),
    ///     |term: Term, _token| async move {
    ///         loop {
    ///             println!("leading, epoch {}", term.epoch); // fence writes with term.epoch
    ///             tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    ///         }
    ///         #[allow(unreachable_code)]
    ///         Ok::<(), std::io::Error>(())
    ///     },
    /// );
    /// tokio::signal::ctrl_c().await.ok();
    /// campaign.resign().await?;
    /// # Ok(()) }
    /// ```
    pub fn campaign<F, Fut, E>(&self, options: CampaignOptions, mut work: F) -> Campaign
    where
        F: FnMut(Term, CancellationToken) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: Into<BoxError> + 'static,
    {
        let work: WorkFn = Box::new(move |term, token| {
            let fut = work(term, token);
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (end_tx, end_rx) = watch::channel(None);
        let epoch = Arc::new(AtomicI64::new(0));
        let mut options = options;
        let hook = options.hook.take();
        let driver = Driver {
            idx: self.start(),
            client: self.clone(),
            options,
            hook,
            work,
            machine: Machine::new(),
            cmds: cmd_rx,
            epoch: epoch.clone(),
            running: None,
            proclaims: VecDeque::new(),
            last_queued: None,
            failures: 0,
            rounds: 0,
            answered: false,
            had_stream: false,
            last_error: String::new(),
            last_status: Status::unknown(""),
        };
        tokio::spawn(async move {
            let result = driver.run().await;
            end_tx.send_replace(Some(result));
        });
        Campaign {
            cmds: cmd_tx,
            end: end_rx,
            epoch,
        }
    }
}

/// The request stream of one `Campaign` call.
struct Requests(mpsc::UnboundedReceiver<CampaignRequest>);

impl futures_core::Stream for Requests {
    type Item = CampaignRequest;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<CampaignRequest>> {
        self.0.poll_recv(cx)
    }
}

fn request(r: campaign_request::Request) -> CampaignRequest {
    CampaignRequest { request: Some(r) }
}

fn ping(nonce: u64) -> CampaignRequest {
    request(campaign_request::Request::Ping(pb::CampaignPing { nonce }))
}

/// The work of the running term.
struct Running {
    epoch: i64,
    fut: WorkFuture,
    token: CancellationToken,
    deadline: Arc<Mutex<Instant>>,
}

/// How one stream attempt ended.
enum Attempt {
    /// The campaign is over.
    Done(Result<Ended, Error>),
    /// Open a new stream on the same address (a term given up on expiry).
    Reopen,
    /// Leave this address.
    Failed { reason: String, status: Status },
}

struct Driver {
    client: ElectionClient,
    options: CampaignOptions,
    hook: Option<EventHook>,
    work: WorkFn,
    machine: Machine,
    cmds: mpsc::UnboundedReceiver<Cmd>,
    epoch: Arc<AtomicI64>,
    running: Option<Running>,
    /// Proclaims sent on the current stream, answered in order.
    proclaims: VecDeque<oneshot::Sender<Result<i64, Error>>>,
    last_queued: Option<(i32, String, bool)>,
    idx: usize,
    /// Consecutive failed attempts, and full rounds of them.
    failures: usize,
    rounds: u32,
    /// Some node answered a Campaign call.
    answered: bool,
    /// A stream of this campaign was open before (a node may still hold the
    /// old candidacy for a moment: ALREADY_EXISTS is then retried).
    had_stream: bool,
    last_error: String,
    last_status: Status,
}

/// Polls the running work, if any (pending forever otherwise); a panic in
/// the work is its failure.
fn poll_work(running: &mut Option<Running>, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
    let Some(r) = running.as_mut() else {
        return Poll::Pending;
    };
    match std::panic::catch_unwind(AssertUnwindSafe(|| r.fut.as_mut().poll(cx))) {
        Ok(poll) => poll,
        Err(panic) => {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic".into());
            Poll::Ready(Err(format!("the work panicked: {what}").into()))
        }
    }
}

impl Driver {
    fn addr(&self) -> String {
        self.client.addrs()[self.idx].clone()
    }

    fn emit(&mut self, event: CampaignEvent) {
        if let Some(hook) = self.hook.as_mut() {
            hook(&event);
        }
    }

    async fn run(mut self) -> Result<Ended, Error> {
        loop {
            let outcome = self.attempt().await;
            self.fail_proclaims();
            match outcome {
                Attempt::Done(result) => {
                    self.stop_work();
                    return result;
                }
                Attempt::Reopen => {}
                Attempt::Failed { reason, status } => {
                    if let Some(done) = self.fail_over(reason, status).await {
                        self.stop_work();
                        return done;
                    }
                }
            }
        }
    }

    /// Cancels the token, then drops the work: it has stopped on return.
    fn stop_work(&mut self) -> Option<i64> {
        let r = self.running.take()?;
        r.token.cancel();
        drop(r.fut);
        self.epoch.store(0, Ordering::Relaxed);
        self.last_queued = None;
        Some(r.epoch)
    }

    fn fail_proclaims(&mut self) {
        for reply in self.proclaims.drain(..) {
            let _ = reply.send(Err(Error::Refused {
                addr: None,
                request: "proclaim".into(),
                reason: "the stream ended before the node answered".into(),
            }));
        }
    }

    /// One `Campaign` stream on the current address, until it fails or the
    /// campaign ends.
    async fn attempt(&mut self) -> Attempt {
        let addr = self.addr();
        let (tx, rx) = mpsc::unbounded_channel();
        let start = pb::CampaignStart {
            election: self.options.election.clone(),
            candidate_id: self.options.candidate_id.clone(),
            value: self.options.value.clone(),
            labels: self.options.labels.clone(),
            priority: self.options.priority,
            never_lead: self.options.never_lead,
        };
        let _ = tx.send(request(campaign_request::Request::Start(start)));
        let _ = tx.send(ping(self.machine.ping_sent(Instant::now())));
        self.last_queued = None;

        let timeout = self.client.config().first_message_timeout;
        let mut stub = self.client.stub(self.idx);
        let opening = async move {
            let mut stream = stub.campaign(Requests(rx)).await?.into_inner();
            let first = stream.message().await?;
            Ok::<_, Status>((stream, first))
        };
        let mut opening = std::pin::pin!(tokio::time::timeout(timeout, opening));
        let (mut stream, first) = loop {
            tokio::select! {
                opened = &mut opening => match opened {
                    Err(_) => {
                        return Attempt::Failed {
                            reason: format!("no first message within {timeout:?}"),
                            status: Status::deadline_exceeded("no first Campaign message"),
                        };
                    }
                    Ok(Err(status)) => return self.status_outcome(status),
                    Ok(Ok((_, None))) => return self.ended_outcome(None),
                    Ok(Ok((stream, Some(first)))) => break (stream, first),
                },
                cmd = self.cmds.recv() => match cmd {
                    // Nothing was granted on this stream yet: dropping it
                    // leaves at once.
                    None | Some(Cmd::Resign) => return Attempt::Done(Ok(Ended::Resigned)),
                    Some(Cmd::Proclaim(_, reply)) => {
                        let _ = reply.send(Err(refused_locally("not leading")));
                    }
                },
            }
        };
        self.answered = true;
        self.had_stream = true;
        self.failures = 0;
        self.rounds = 0;
        if let Some(done) = self.handle(first, &tx, &addr) {
            return self.finish(done, stream, tx).await;
        }

        let mut next_ping = Instant::now() + self.machine.ping_interval(self.options.ping_interval);
        loop {
            let stop_at = self.machine.stop_at();
            let far = Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                biased;
                _ = tokio::time::sleep_until(stop_at.unwrap_or(far)), if stop_at.is_some() => {
                    let steps = self.machine.tick(Instant::now());
                    if let Some(loss) = self.apply(steps, &tx, &addr, "the lease deadline came within the safety margin without a new grant") {
                        // Give the term up on the node: it never runs again.
                        let end = match self.options.on_loss {
                            OnLoss::Stop => Some(Ended::Lost(loss)),
                            OnLoss::Recampaign => None,
                        };
                        self.resign_on(&mut stream, tx).await;
                        return match end {
                            Some(end) => Attempt::Done(Ok(end)),
                            None => Attempt::Reopen,
                        };
                    }
                }
                msg = stream.message() => match msg {
                    Ok(Some(msg)) => {
                        if let Some(done) = self.handle(msg, &tx, &addr) {
                            return self.finish(done, stream, tx).await;
                        }
                    }
                    Ok(None) => return self.ended_outcome(None),
                    Err(status) => return self.ended_outcome(Some(status)),
                },
                cmd = self.cmds.recv() => match cmd {
                    None | Some(Cmd::Resign) => {
                        self.stop_term(LossReason::Resigned, "resigned by the caller");
                        return self.finish(Ended::Resigned, stream, tx).await;
                    }
                    Some(Cmd::Proclaim(value, reply)) => match self.running.as_ref() {
                        Some(r) => {
                            let epoch = r.epoch;
                            let _ = tx.send(request(campaign_request::Request::Proclaim(
                                pb::CampaignProclaim { epoch, value },
                            )));
                            self.proclaims.push_back(reply);
                        }
                        None => {
                            let _ = reply.send(Err(refused_locally("not leading")));
                        }
                    },
                },
                _ = tokio::time::sleep_until(next_ping) => {
                    let now = Instant::now();
                    let _ = tx.send(ping(self.machine.ping_sent(now)));
                    next_ping = now + self.machine.ping_interval(self.options.ping_interval);
                }
                result = std::future::poll_fn(|cx| poll_work(&mut self.running, cx)) => {
                    self.stop_term(LossReason::Resigned, "the work ended");
                    let end = match result {
                        Ok(()) => Ok(Ended::WorkFinished),
                        Err(e) => Err(Error::Work(Arc::from(e))),
                    };
                    self.resign_on(&mut stream, tx).await;
                    return Attempt::Done(end);
                }
            }
        }
    }

    /// Stops the running term's work (if any) and reports its loss.
    fn stop_term(&mut self, reason: LossReason, detail: &str) {
        if let Some(epoch) = self.stop_work() {
            self.emit(CampaignEvent::Lost(Loss {
                epoch,
                reason,
                detail: detail.into(),
            }));
        }
    }

    /// Resigns on the stream, then ends the campaign with `end`.
    async fn finish(
        &mut self,
        end: Ended,
        mut stream: Streaming<CampaignResponse>,
        tx: mpsc::UnboundedSender<CampaignRequest>,
    ) -> Attempt {
        self.resign_on(&mut stream, tx).await;
        Attempt::Done(Ok(end))
    }

    /// Sends `resign` (the work has stopped), half-closes, and waits (at most
    /// the call deadline) for the node to end the stream.
    async fn resign_on(
        &mut self,
        stream: &mut Streaming<CampaignResponse>,
        tx: mpsc::UnboundedSender<CampaignRequest>,
    ) {
        debug_assert!(self.running.is_none());
        let _ = tx.send(request(campaign_request::Request::Resign(
            pb::CampaignResign {},
        )));
        drop(tx);
        let deadline = Instant::now() + self.client.config().call_timeout;
        while let Ok(Ok(Some(msg))) = tokio::time::timeout_at(deadline, stream.message()).await {
            if let Some(campaign_response::Response::Proclaimed(p)) = msg.response
                && let Some(reply) = self.proclaims.pop_front()
            {
                let _ = reply.send(Ok(p.value_revision));
            }
        }
        self.machine.stream_ended();
    }

    /// One message from the node. Returns the end of the campaign if it
    /// brings one (a loss with OnLoss::Stop).
    fn handle(
        &mut self,
        msg: CampaignResponse,
        tx: &mpsc::UnboundedSender<CampaignRequest>,
        addr: &str,
    ) -> Option<Ended> {
        use campaign_response::Response;
        match msg.response? {
            Response::Queued(q) => {
                self.machine.queued(q.nonce);
                let key = (q.position, q.waiting_for.clone(), q.never_lead);
                if self.last_queued.as_ref() != Some(&key) {
                    self.last_queued = Some(key);
                    self.emit(CampaignEvent::Queued {
                        position: q.position,
                        waiting_for: q.waiting_for,
                        never_lead: q.never_lead,
                        addr: addr.to_string(),
                    });
                }
                None
            }
            Response::Leading(l) => {
                let steps = self
                    .machine
                    .leading(l.epoch, l.nonce, l.lease_ms, Instant::now());
                let loss = self.apply(steps, tx, addr, "a newer term began");
                self.end_on(loss)
            }
            Response::Lost(l) => {
                let steps = self.machine.lost(l.epoch, l.reason);
                let loss = self.apply(steps, tx, addr, &l.detail);
                self.end_on(loss)
            }
            Response::Proclaimed(p) => {
                if let Some(reply) = self.proclaims.pop_front() {
                    let _ = reply.send(Ok(p.value_revision));
                }
                None
            }
            Response::Refused(r) => {
                if r.request == "proclaim"
                    && let Some(reply) = self.proclaims.pop_front()
                {
                    let _ = reply.send(Err(Error::Refused {
                        addr: Some(addr.to_string()),
                        request: r.request,
                        reason: r.reason,
                    }));
                } else {
                    self.emit(CampaignEvent::Refused {
                        request: r.request,
                        reason: r.reason,
                    });
                }
                None
            }
        }
    }

    fn end_on(&self, loss: Option<Loss>) -> Option<Ended> {
        match (loss, self.options.on_loss) {
            (Some(loss), OnLoss::Stop) => Some(Ended::Lost(loss)),
            _ => None,
        }
    }

    /// Does what the machine says; returns the loss if running work stopped.
    fn apply(
        &mut self,
        steps: Vec<Step>,
        tx: &mpsc::UnboundedSender<CampaignRequest>,
        addr: &str,
        detail: &str,
    ) -> Option<Loss> {
        let mut loss = None;
        for step in steps {
            match step {
                Step::Start { epoch, deadline } => {
                    let token = CancellationToken::new();
                    let shared = Arc::new(Mutex::new(deadline));
                    let term = Term {
                        epoch,
                        deadline: shared.clone(),
                    };
                    let fut = (self.work)(term, token.clone());
                    self.running = Some(Running {
                        epoch,
                        fut,
                        token,
                        deadline: shared,
                    });
                    self.epoch.store(epoch, Ordering::Relaxed);
                    self.last_queued = None;
                    self.emit(CampaignEvent::Leading {
                        epoch,
                        deadline,
                        addr: addr.to_string(),
                    });
                }
                Step::Extend { deadline } => {
                    if let Some(r) = &self.running {
                        *r.deadline.lock().unwrap_or_else(|e| e.into_inner()) = deadline;
                    }
                }
                Step::Stop { epoch, cause } => {
                    self.stop_work();
                    let reason = match cause {
                        Cause::Lost(r) => LossReason::from_proto(r),
                        Cause::Expired => LossReason::Expired,
                        Cause::Superseded => LossReason::Unspecified,
                    };
                    let l = Loss {
                        epoch,
                        reason,
                        detail: detail.to_string(),
                    };
                    self.emit(CampaignEvent::Lost(l.clone()));
                    loss = Some(l);
                }
                Step::Ack { epoch } => {
                    let _ = tx.send(request(campaign_request::Request::Ack(pb::CampaignAck {
                        epoch,
                    })));
                }
                Step::PingNow => {
                    let _ = tx.send(ping(self.machine.ping_sent(Instant::now())));
                }
            }
        }
        loss
    }

    /// The stream ended (OK, or with `status`): a loss if a term ran.
    fn ended_outcome(&mut self, status: Option<Status>) -> Attempt {
        match status {
            Some(status)
                if !(retryable(&status)
                    || status.code() == Code::Cancelled
                    || self.retry_already_exists(&status)) =>
            {
                self.stop_term(LossReason::Disconnected, &describe(&status));
                Attempt::Done(Err(Error::Status {
                    addr: self.addr(),
                    status,
                }))
            }
            status => {
                let (reason, status) = match status {
                    Some(s) => {
                        let s = connection_status(s);
                        (describe(&s), s)
                    }
                    None => {
                        let r = "stream ended (node shutting down?)";
                        (r.to_string(), Status::unknown(r))
                    }
                };
                if let Some(epoch) = self.machine.stream_ended() {
                    self.stop_work();
                    let loss = Loss {
                        epoch,
                        reason: LossReason::Disconnected,
                        detail: reason.clone(),
                    };
                    self.emit(CampaignEvent::Lost(loss.clone()));
                    if self.options.on_loss == OnLoss::Stop {
                        return Attempt::Done(Ok(Ended::Lost(loss)));
                    }
                }
                Attempt::Failed { reason, status }
            }
        }
    }

    /// The call failed before its first message.
    fn status_outcome(&mut self, status: Status) -> Attempt {
        self.ended_outcome(Some(status))
    }

    fn retry_already_exists(&self, status: &Status) -> bool {
        status.code() == Code::AlreadyExists && self.had_stream
    }

    /// Leaves the current address; after a full round of failures backs off
    /// (or gives up with NoNode if no node ever answered). Returns the end
    /// when the campaign is over.
    async fn fail_over(&mut self, reason: String, status: Status) -> Option<Result<Ended, Error>> {
        self.machine.stream_ended();
        let addr = self.addr();
        self.last_error = format!("{addr}: {reason}");
        self.last_status = status;
        self.client.failed(self.idx);
        self.emit(CampaignEvent::Failover { addr, reason });
        let n = self.client.addrs().len();
        self.idx = (self.idx + 1) % n;
        self.failures += 1;
        if !self.failures.is_multiple_of(n) {
            return None;
        }
        if !self.answered {
            return Some(Err(Error::NoNode {
                addrs: self.client.addrs().to_vec(),
                last: self.last_error.clone(),
                status: self.last_status.clone(),
            }));
        }
        self.rounds = self.rounds.saturating_add(1);
        let pause = tokio::time::sleep(backoff_delay(self.client.config(), self.rounds));
        let mut pause = std::pin::pin!(pause);
        loop {
            tokio::select! {
                _ = &mut pause => return None,
                cmd = self.cmds.recv() => match cmd {
                    None | Some(Cmd::Resign) => return Some(Ok(Ended::Resigned)),
                    Some(Cmd::Proclaim(_, reply)) => {
                        let _ = reply.send(Err(refused_locally("not leading")));
                    }
                },
            }
        }
    }
}

#[cfg(test)]
mod tests;
