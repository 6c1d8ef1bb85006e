//! Watching the leader across nodes.

use std::fmt;
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use futures_core::Stream;
use tokio::time::Instant;
use tonic::{Code, Request, Status, Streaming};

use crate::pb::{GetLeaderRequest, Leader, LeaderState, WatchLeaderRequest, WatchLeaderResponse};
use crate::{ElectionClient, Error, backoff_delay, connection_status, describe, retryable};

/// A watch of the leader, made by [`ElectionClient::watch_leader`] or
/// [`ElectionClient::watch_leader_after`].
///
/// It reports each new leader once: only leaders whose epoch is greater than
/// the last one reported (or than the `after_epoch` it started from), so it
/// never goes back to an older leader nor repeats a change, even across
/// failover. Use it as a [`Stream`] of `Result<Leader, Error>` (for example
/// with `futures::StreamExt` or `tokio_stream::StreamExt`), or call the
/// inherent [`next`](LeaderWatch::next), which yields the `Leader` itself.
///
/// The watch streams `WatchLeader` from one node at a time and moves to the
/// next address, calling the [`on_failover`](LeaderWatch::on_failover) hook,
/// when that node
///
/// * cannot be connected to within [`Config::connect_timeout`](crate::Config)
///   (refused, black-holed, or accepting TCP but never speaking HTTP/2);
/// * sends no first message within
///   [`Config::first_message_timeout`](crate::Config);
/// * stops answering HTTP/2 keepalive pings (a frozen node: left within
///   `keepalive_interval + keepalive_timeout`, 6 s by default);
/// * fails the stream with `UNAVAILABLE`, `DEADLINE_EXCEEDED` or
///   `RESOURCE_EXHAUSTED` (or the connection breaks);
/// * reports `LEADER_STATE_UNKNOWN`, or ends its stream.
///
/// It resumes on the next node with `min_epoch` = the last reported epoch + 1.
/// After every address has failed once in a row it pauses before the next
/// round: 50 ms doubling up to 2 s, with full jitter; a stream that delivers a
/// leader resets that.
///
/// Errors end the stream (after the error, [`Stream::poll_next`] gives `None`
/// and [`next`](LeaderWatch::next) the same error again):
/// [`Error::NoNode`] if no node answered at all during the first round, and
/// [`Error::Status`] at once for any other gRPC status (for example
/// `INVALID_ARGUMENT`). Once some node has answered it keeps trying for as
/// long as it is polled: a watcher is expected to outlive a cluster restart.
///
/// Cancellation: dropping the `LeaderWatch` ends the stream at once, also in
/// the middle of a backoff pause or a connection attempt. Dropping a pending
/// `next()` future (for example the losing branch of `tokio::select!`) loses
/// nothing: the work in progress stays in the watch and the next call picks it
/// up.
pub struct LeaderWatch {
    state: State,
    hook: SharedHook,
    /// The highest epoch reported, shared with the core.
    reported: Arc<AtomicI64>,
}

type Hook = Box<dyn FnMut(&str, &str) + Send>;
type SharedHook = Arc<Mutex<Option<Hook>>>;
type Step = Pin<Box<dyn Future<Output = (Box<Core>, Result<Leader, Error>)> + Send>>;

enum State {
    /// Between leaders.
    Idle(Box<Core>),
    /// Looking for the next leader.
    Running(Step),
    /// Ended by this error.
    Ended(Error),
    /// Only while switching states.
    Gone,
}

impl LeaderWatch {
    pub(crate) fn new(client: ElectionClient, election: String, after_epoch: i64) -> LeaderWatch {
        let hook = SharedHook::default();
        let reported = Arc::new(AtomicI64::new(after_epoch));
        let idx = client.start();
        let core = Core {
            client,
            election,
            last_revision: 0,
            hook: hook.clone(),
            reported: reported.clone(),
            stream: None,
            idx,
            last_epoch: after_epoch,
            answered: false,
            failures: 0,
            rounds: 0,
            last_error: String::new(),
            last_status: Status::unknown(""),
        };
        LeaderWatch {
            state: State::Idle(Box::new(core)),
            hook,
            reported,
        }
    }

    /// Calls `hook(address, reason)` each time the watch leaves an address,
    /// for logs and metrics: `reason` says why, for people (for example
    /// `"no first message within 2s"` or
    /// `"LEADER_STATE_UNKNOWN: disconnected from ZooKeeper"`). It runs on the
    /// task polling the watch, so it should be quick. Replaces an earlier hook.
    ///
    /// ```no_run
    /// # async fn demo(client: electd_client::ElectionClient) -> Result<(), electd_client::Error> {
    /// let mut watch = client
    ///     .watch_leader()
    ///     .on_failover(|addr, reason| eprintln!("left {addr}: {reason}"));
    /// let leader = watch.next().await?;
    /// # Ok(()) }
    /// ```
    pub fn on_failover<F>(self, hook: F) -> LeaderWatch
    where
        F: FnMut(&str, &str) + Send + 'static,
    {
        *self.hook.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(hook));
        self
    }

    /// Waits for the next leader whose epoch is greater than any reported so
    /// far. After an error, returns that error again. Cancel-safe.
    pub async fn next(&mut self) -> Result<Leader, Error> {
        std::future::poll_fn(|cx| self.poll_leader(cx)).await
    }

    /// The highest epoch reported so far (at first, the `after_epoch` the
    /// watch started from: 0 by default). Save it to resume later with
    /// [`watch_leader_after`](ElectionClient::watch_leader_after).
    pub fn last_epoch(&self) -> i64 {
        self.reported.load(Ordering::Relaxed)
    }

    fn poll_leader(&mut self, cx: &mut Context<'_>) -> Poll<Result<Leader, Error>> {
        loop {
            match std::mem::replace(&mut self.state, State::Gone) {
                State::Idle(mut core) => {
                    self.state = State::Running(Box::pin(async move {
                        let result = core.next_leader().await;
                        (core, result)
                    }));
                }
                State::Running(mut step) => match step.as_mut().poll(cx) {
                    Poll::Pending => {
                        self.state = State::Running(step);
                        return Poll::Pending;
                    }
                    Poll::Ready((core, Ok(leader))) => {
                        self.state = State::Idle(core);
                        return Poll::Ready(Ok(leader));
                    }
                    Poll::Ready((_, Err(e))) => {
                        self.state = State::Ended(e.clone());
                        return Poll::Ready(Err(e));
                    }
                },
                State::Ended(e) => {
                    self.state = State::Ended(e.clone());
                    return Poll::Ready(Err(e));
                }
                State::Gone => unreachable!("LeaderWatch polled while switching states"),
            }
        }
    }
}

impl Stream for LeaderWatch {
    type Item = Result<Leader, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        if matches!(this.state, State::Ended(_)) {
            return Poll::Ready(None);
        }
        this.poll_leader(cx).map(Some)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match self.state {
            State::Ended(_) => (0, Some(0)),
            _ => (0, None),
        }
    }
}

impl fmt::Debug for LeaderWatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.state {
            State::Idle(_) => "idle".to_string(),
            State::Running(_) => "looking for the next leader".into(),
            State::Ended(e) => format!("ended: {e}"),
            State::Gone => "switching".into(),
        };
        f.debug_struct("LeaderWatch")
            .field("last_epoch", &self.last_epoch())
            .field("state", &state)
            .finish()
    }
}

/// What one step of reading from a node gave.
enum Event {
    Message(Box<WatchLeaderResponse>),
    /// The stream ended with status OK (or the server cancelled it).
    End,
    Failed(Status),
    NoFirstMessage,
}

/// The state of a watch between polls; moved into the future that looks for
/// the next leader and back.
struct Core {
    client: ElectionClient,
    /// The named election watched ("" for the electd nodes' own).
    election: String,
    /// For a named election: the value revision of the last reported leader.
    last_revision: i64,
    hook: SharedHook,
    reported: Arc<AtomicI64>,
    /// The open stream, from the node at `idx`.
    stream: Option<Streaming<WatchLeaderResponse>>,
    /// Index of the address streamed from (or to try next).
    idx: usize,
    /// Highest epoch reported (or the after_epoch it started from).
    last_epoch: i64,
    /// Some node has sent at least one message.
    answered: bool,
    /// Consecutive attempts that gave no elected leader.
    failures: usize,
    /// Consecutive full rounds of such attempts.
    rounds: u32,
    last_error: String,
    /// The gRPC status of the last failure (`UNKNOWN` if it had none).
    last_status: Status,
}

impl Core {
    async fn next_leader(&mut self) -> Result<Leader, Error> {
        loop {
            let event = match self.stream.as_mut() {
                Some(stream) => match stream.message().await {
                    Ok(Some(msg)) => Event::Message(Box::new(msg)),
                    Ok(None) => Event::End,
                    Err(status) => Event::Failed(status),
                },
                None => self.open().await,
            };
            let (reason, status) = match event {
                Event::Message(msg) => {
                    self.answered = true;
                    let msg = *msg;
                    match (msg.state(), msg.leader) {
                        (LeaderState::Elected, Some(leader)) => {
                            // A healthy node: the next failure starts afresh.
                            self.failures = 0;
                            self.rounds = 0;
                            let revision = leader.node.as_ref().map_or(0, |n| n.value_revision);
                            // A named election's leader may proclaim a new
                            // value within its term: reported once too.
                            let new_value = !self.election.is_empty()
                                && leader.epoch == self.last_epoch
                                && revision > self.last_revision;
                            if leader.epoch > self.last_epoch || new_value {
                                self.last_epoch = leader.epoch;
                                self.last_revision = revision;
                                self.reported.store(leader.epoch, Ordering::Relaxed);
                                return Ok(leader);
                            }
                            continue; // already reported (or older): never again
                        }
                        // A named election without a leader: the node
                        // vouches for that, so stay.
                        (LeaderState::Vacant, _) if !self.election.is_empty() => {
                            self.failures = 0;
                            self.rounds = 0;
                            continue;
                        }
                        (state, _) => {
                            let name = match state {
                                LeaderState::Elected => "LEADER_STATE_ELECTED without a leader",
                                other => other.as_str_name(),
                            };
                            let reason = if msg.reason.is_empty() {
                                name.to_string()
                            } else {
                                format!("{name}: {}", msg.reason)
                            };
                            let status =
                                Status::unknown(format!("cannot vouch for a leader: {reason}"));
                            (reason, status)
                        }
                    }
                }
                Event::End => {
                    let reason = "stream ended (node shutting down?)";
                    (reason.to_string(), Status::unknown(reason))
                }
                // CANCELLED reaching us means the server cancelled the stream
                // (our own cancellation drops the future instead), which a
                // node does when it stops: that too ends its stream.
                Event::Failed(status) if retryable(&status) || status.code() == Code::Cancelled => {
                    let status = connection_status(status);
                    (describe(&status), status)
                }
                Event::Failed(status) => {
                    return Err(Error::Status {
                        addr: self.addr().to_string(),
                        status,
                    });
                }
                Event::NoFirstMessage => {
                    let t = self.client.config().first_message_timeout;
                    let reason = format!("no first message within {t:?}");
                    let status = Status::deadline_exceeded(reason.clone());
                    (reason, status)
                }
            };
            self.fail_over(reason, status).await?;
        }
    }

    /// Opens a stream on the current address and waits for its first message.
    ///
    /// A node sends the current state at once, except that it holds back a
    /// leader older than `min_epoch`: when resuming, a node that still sees
    /// the leader already reported (or lags behind) is silent, and lawfully
    /// so. To tell such a node from a stuck one, a resuming watch asks it
    /// `GetLeader` alongside: a node that answers with a leader no newer than
    /// the last reported one is kept, however long its first message takes
    /// (keepalive still watches the connection).
    async fn open(&mut self) -> Event {
        let timeout = self.client.config().first_message_timeout;
        let deadline = Instant::now() + timeout;
        let mut stub = self.client.stub(self.idx);
        let mut probe_stub = stub.clone();
        let last_epoch = self.last_epoch;
        let named = !self.election.is_empty();
        // A named election's node sends its current state at once with
        // min_epoch = the last epoch (a new value of that term included), so
        // it needs no probe; the nodes' own election holds that one back.
        let request = WatchLeaderRequest {
            min_epoch: if named {
                last_epoch
            } else {
                last_epoch.saturating_add(1)
            },
            election: self.election.clone(),
        };
        let mut first = pin!(async move {
            let mut stream = stub.watch_leader(request).await?.into_inner();
            let msg = stream.message().await?;
            Ok::<_, Status>((stream, msg))
        });
        let mut probe = pin!(async move {
            let mut req = Request::new(GetLeaderRequest {
                election: String::new(),
            });
            req.set_timeout(timeout);
            probe_stub.get_leader(req).await
        });
        let (mut probing, mut holds_back) = (last_epoch > 0 && !named, false);
        loop {
            tokio::select! {
                first = &mut first => {
                    return match first {
                        Ok((stream, Some(msg))) => {
                            self.stream = Some(stream);
                            Event::Message(Box::new(msg))
                        }
                        Ok((_, None)) => Event::End,
                        Err(status) => Event::Failed(status),
                    };
                }
                answer = &mut probe, if probing => {
                    probing = false;
                    holds_back = answer.is_ok_and(|resp| {
                        resp.into_inner().leader.is_some_and(|l| l.epoch <= last_epoch)
                    });
                }
                _ = tokio::time::sleep_until(deadline), if !holds_back => {
                    return Event::NoFirstMessage;
                }
            }
        }
    }

    fn addr(&self) -> &str {
        &self.client.addrs()[self.idx]
    }

    /// Drops the stream, tells the hook and moves to the next address,
    /// backing off after a full round of failures.
    async fn fail_over(&mut self, reason: String, status: Status) -> Result<(), Error> {
        self.stream = None; // cancels the stream on the server
        let addr = self.addr().to_string();
        self.last_error = format!("{addr}: {reason}");
        self.last_status = status;
        self.client.failed(self.idx);
        if let Some(hook) = self.hook.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
            hook(&addr, &reason);
        }
        let n = self.client.addrs().len();
        self.idx = (self.idx + 1) % n;
        self.failures += 1;
        if !self.failures.is_multiple_of(n) {
            return Ok(());
        }
        if !self.answered {
            return Err(Error::NoNode {
                addrs: self.client.addrs().to_vec(),
                last: self.last_error.clone(),
                status: self.last_status.clone(),
            });
        }
        self.rounds = self.rounds.saturating_add(1);
        tokio::time::sleep(backoff_delay(self.client.config(), self.rounds)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests;
