//! Watching the leader across nodes.

use tonic::{Code, Status, Streaming};

use crate::pb::{Leader, LeaderState, WatchLeaderRequest, WatchLeaderResponse};
use crate::{ElectionClient, Error, backoff_delay, describe, retryable};

/// A watch of the leader, made by [`ElectionClient::watch_leader`]. Call
/// [`LeaderWatch::next`] in a loop; each call returns the next new leader.
///
/// The watch streams `WatchLeader` from one node at a time. When that node is
/// unreachable, fails with `UNAVAILABLE` or `DEADLINE_EXCEEDED`, cannot vouch
/// for a leader (`LEADER_STATE_UNKNOWN`) or ends its stream, the watch moves to
/// the next address, passing the highest epoch returned so far as `min_epoch`.
/// A leader is returned only when its epoch is greater than the last one
/// returned, so the caller never sees an older leader nor the same change
/// twice, even across failover. After each full round of addresses without a
/// usable stream it backs off (50 ms doubling up to 2 s, jittered).
///
/// Cancellation: dropping the `LeaderWatch` (or a pending `next()` future, for
/// example in `tokio::select!`) cancels the open stream at once; `next()` is
/// cancel-safe.
///
/// `next()` fails with [`Error::NoNode`] if during the first round no node
/// answered at all, and at once with [`Error::Status`] for any other gRPC error
/// (for example `INVALID_ARGUMENT`). Once some node has answered it keeps
/// trying forever: a watcher is expected to outlive a cluster restart.
pub struct LeaderWatch {
    client: ElectionClient,
    stream: Option<Streaming<WatchLeaderResponse>>,
    /// Index of the address streamed from (or to try next).
    idx: usize,
    /// Highest epoch returned; 0 before the first.
    last_epoch: i64,
    /// Some node has sent at least one message.
    answered: bool,
    /// The current stream has delivered an elected leader.
    got_leader: bool,
    /// Consecutive attempts that gave no elected leader.
    failed: usize,
    /// Consecutive full rounds of such attempts.
    rounds: u32,
    last_error: String,
    /// The gRPC status of the last failure (`UNKNOWN` if it had none).
    last_status: Status,
}

impl LeaderWatch {
    pub(crate) fn new(client: ElectionClient) -> LeaderWatch {
        let idx = client.start();
        LeaderWatch {
            client,
            stream: None,
            idx,
            last_epoch: 0,
            answered: false,
            got_leader: false,
            failed: 0,
            rounds: 0,
            last_error: String::new(),
            last_status: Status::unknown(""),
        }
    }

    /// The epoch of the last leader returned (0 before the first).
    pub fn last_epoch(&self) -> i64 {
        self.last_epoch
    }

    /// Waits for the next leader whose epoch is greater than any returned so far.
    pub async fn next(&mut self) -> Result<Leader, Error> {
        loop {
            let stream = match &mut self.stream {
                Some(s) => s,
                None => {
                    let req = WatchLeaderRequest {
                        min_epoch: self.last_epoch,
                    };
                    match self.client.stub(self.idx).watch_leader(req).await {
                        Ok(resp) => self.stream.insert(resp.into_inner()),
                        Err(status) => {
                            self.on_status(status)?;
                            self.fail_over().await?;
                            continue;
                        }
                    }
                }
            };
            match stream.message().await {
                Ok(Some(msg)) => {
                    self.answered = true;
                    match (msg.state(), msg.leader) {
                        (LeaderState::Elected, Some(leader)) => {
                            self.got_leader = true;
                            if leader.epoch > self.last_epoch {
                                self.last_epoch = leader.epoch;
                                return Ok(leader);
                            }
                            // Already returned (or older): never again.
                        }
                        (state, _) => {
                            let why = if msg.reason.is_empty() {
                                state.as_str_name().to_string()
                            } else {
                                msg.reason
                            };
                            let why = format!("cannot vouch for a leader: {why}");
                            self.last_error = format!("{}: {why}", self.addr());
                            self.last_status = Status::unknown(why);
                            self.fail_over().await?;
                        }
                    }
                }
                Ok(None) => {
                    let why = "stream ended (node shutting down)";
                    self.last_error = format!("{}: {why}", self.addr());
                    self.last_status = Status::unknown(why);
                    self.fail_over().await?;
                }
                Err(status) => {
                    self.on_status(status)?;
                    self.fail_over().await?;
                }
            }
        }
    }

    fn addr(&self) -> &str {
        &self.client.addrs()[self.idx]
    }

    /// Records a failed stream, or returns the error if it is not one that
    /// another node could fix.
    fn on_status(&mut self, status: Status) -> Result<(), Error> {
        // CANCELLED reaching us means the server cancelled the stream (our own
        // cancellation drops the future instead), which a node does when it
        // is stopped: that also "ends its stream".
        if retryable(&status) || status.code() == Code::Cancelled {
            self.last_error = format!("{}: {}", self.addr(), describe(&status));
            self.last_status = status;
            Ok(())
        } else {
            Err(Error::Status {
                addr: self.addr().to_string(),
                status,
            })
        }
    }

    /// Drops the stream and moves to the next address, backing off after a
    /// full round of failures.
    async fn fail_over(&mut self) -> Result<(), Error> {
        self.stream = None; // cancels the stream on the server
        self.client.failed(self.idx);
        let n = self.client.addrs().len();
        self.idx = (self.idx + 1) % n;
        if std::mem::take(&mut self.got_leader) {
            // That node was healthy for a while: try the next one at once.
            self.failed = 0;
            self.rounds = 0;
            return Ok(());
        }
        self.failed += 1;
        if !self.failed.is_multiple_of(n) {
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
