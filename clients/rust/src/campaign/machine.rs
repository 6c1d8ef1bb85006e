//! The campaign helper's term bookkeeping, without I/O: which pings are in
//! flight and when each was sent, the deadline of the current term (the send
//! time of an answered ping + its lease), when to start and stop the work,
//! which Lost to acknowledge, and the rule that no epoch is started twice nor
//! one lower than a term already run. The driver (`super`) feeds it what the
//! stream brings and the clock, and does what it answers. Tests:
//! `super::tests`.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

/// The work is stopped this long before the deadline at the least...
pub(crate) const MIN_MARGIN: Duration = Duration::from_millis(50);
/// ... or this fraction of the last lease, whichever is longer.
const MARGIN_FRACTION: f64 = 0.1;
/// Pings remembered while unanswered (a node answers them in order, so the
/// oldest are the ones it will never answer).
const MAX_PINGS_IN_FLIGHT: usize = 128;

/// The safety margin for a lease of `lease`: 10 % of it, at least 50 ms.
pub(crate) fn margin(lease: Duration) -> Duration {
    lease.mul_f64(MARGIN_FRACTION).max(MIN_MARGIN)
}

/// Why the work of a term is stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cause {
    /// The node said so (CampaignLost with this reason, as the proto's i32).
    Lost(i32),
    /// The deadline came within the safety margin without being extended.
    Expired,
    /// A Leading with a higher epoch came without a Lost for this one.
    Superseded,
}

/// What the driver must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Start the work of a new term.
    Start { epoch: i64, deadline: Instant },
    /// The running term's deadline moved later.
    Extend { deadline: Instant },
    /// Stop (cancel, drop) the running work of this term now.
    Stop { epoch: i64, cause: Cause },
    /// Send `ack{epoch}` (the work of that term, if any, has stopped: a Stop
    /// always comes before).
    Ack { epoch: i64 },
    /// Send a ping now (the node leads us but granted nothing yet).
    PingNow,
}

#[derive(Debug, Clone)]
struct Current {
    epoch: i64,
    /// send time of the best answered ping + its lease; None before a grant.
    deadline: Option<Instant>,
    /// The last lease granted in this term (its margin applies).
    lease: Duration,
    running: bool,
}

impl Current {
    fn stop_at(&self) -> Option<Instant> {
        self.deadline
            .map(|d| d.checked_sub(margin(self.lease)).unwrap_or(d))
    }
}

/// The bookkeeping of one campaign (it spans streams and nodes: the epoch
/// rule holds across failover).
#[derive(Debug)]
pub(crate) struct Machine {
    pings: VecDeque<(u64, Instant)>,
    next_nonce: u64,
    /// The highest epoch started or closed: never started (again).
    done: i64,
    current: Option<Current>,
    /// The last lease granted, for the ping interval.
    last_lease: Option<Duration>,
}

impl Machine {
    pub(crate) fn new() -> Machine {
        Machine {
            pings: VecDeque::new(),
            next_nonce: 1,
            done: 0,
            current: None,
            last_lease: None,
        }
    }

    /// A ping is sent now: its nonce (never 0, which means "no ping").
    pub(crate) fn ping_sent(&mut self, now: Instant) -> u64 {
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        if self.pings.len() == MAX_PINGS_IN_FLIGHT {
            self.pings.pop_front();
        }
        self.pings.push_back((nonce, now));
        nonce
    }

    /// The send time of ping `nonce` if it is still in flight; forgets it and
    /// every older one (answers come in order).
    fn answered(&mut self, nonce: u64) -> Option<Instant> {
        if nonce == 0 {
            return None;
        }
        let sent = self
            .pings
            .iter()
            .find(|(n, _)| *n == nonce)
            .map(|(_, t)| *t);
        if sent.is_some() {
            while self.pings.front().is_some_and(|(n, _)| *n <= nonce) {
                self.pings.pop_front();
            }
        }
        sent
    }

    /// A Queued answered ping `nonce`.
    pub(crate) fn queued(&mut self, nonce: u64) {
        self.answered(nonce);
    }

    /// A CampaignLeading arrived at `now`.
    pub(crate) fn leading(
        &mut self,
        epoch: i64,
        nonce: u64,
        lease_ms: i64,
        now: Instant,
    ) -> Vec<Step> {
        let lease = Duration::from_millis(lease_ms.max(0) as u64);
        let sent = self.answered(nonce);
        let deadline = sent.filter(|_| lease_ms > 0).map(|t| t + lease);
        let mut steps = Vec::new();
        match &self.current {
            Some(c) if c.epoch > epoch => return steps, // late answer of an older term
            Some(c) if c.epoch < epoch => {
                // No Lost came for the old term: it is over all the same.
                steps.extend(self.close(Cause::Superseded));
            }
            _ => {}
        }
        if self.current.is_none() {
            if epoch <= self.done {
                return steps; // a term already run (or closed): never again
            }
            self.current = Some(Current {
                epoch,
                deadline: None,
                lease,
                running: false,
            });
        }
        if deadline.is_some() {
            self.last_lease = Some(lease);
        }
        let c = self.current.as_mut().expect("set above");
        if let Some(d) = deadline
            && c.deadline.is_none_or(|old| d > old)
        {
            c.deadline = Some(d);
            c.lease = lease;
            if c.running {
                steps.push(Step::Extend { deadline: d });
            }
        }
        if !c.running {
            match c.stop_at() {
                Some(stop_at) if stop_at > now => {
                    c.running = true;
                    self.done = self.done.max(epoch);
                    steps.push(Step::Start {
                        epoch,
                        deadline: c.deadline.expect("stop_at implies a deadline"),
                    });
                }
                // Nothing granted yet: ask at once. (A grant too short to
                // act on waits for the next regular ping.)
                _ if c.deadline.is_none() => steps.push(Step::PingNow),
                _ => {}
            }
        }
        steps
    }

    /// A CampaignLost for `epoch` arrived.
    pub(crate) fn lost(&mut self, epoch: i64, reason: i32) -> Vec<Step> {
        let mut steps = Vec::new();
        if self.current.as_ref().is_some_and(|c| c.epoch <= epoch) {
            steps.extend(self.close(Cause::Lost(reason)));
            // An older term closed on the way still owes its own ack.
            if let Some(Step::Ack { epoch: e }) = steps.last()
                && *e == epoch
            {
                return steps;
            }
        }
        self.done = self.done.max(epoch);
        steps.push(Step::Ack { epoch });
        steps
    }

    /// The clock reached `now`: stops the work if the deadline is within the
    /// margin. After that the term counts as run: the driver gives it up on
    /// the node (it resigns) and never starts that epoch again.
    pub(crate) fn tick(&mut self, now: Instant) -> Vec<Step> {
        match &self.current {
            Some(c) if c.running && c.stop_at().is_none_or(|s| now >= s) => {
                let mut steps = self.close(Cause::Expired);
                // Nothing to acknowledge: no Lost came.
                steps.retain(|s| !matches!(s, Step::Ack { .. }));
                steps
            }
            _ => Vec::new(),
        }
    }

    /// The stream ended or broke: stops the work at once (nothing can be
    /// acknowledged any more), forgets the pings (they were on that stream).
    /// Returns the epoch whose work was stopped, if any.
    pub(crate) fn stream_ended(&mut self) -> Option<i64> {
        self.pings.clear();
        let c = self.current.take()?;
        self.done = self.done.max(c.epoch);
        c.running.then_some(c.epoch)
    }

    /// Closes the current term: Stop if its work runs, then Ack.
    fn close(&mut self, cause: Cause) -> Vec<Step> {
        let Some(c) = self.current.take() else {
            return Vec::new();
        };
        self.done = self.done.max(c.epoch);
        let mut steps = Vec::new();
        if c.running {
            steps.push(Step::Stop {
                epoch: c.epoch,
                cause,
            });
        }
        steps.push(Step::Ack { epoch: c.epoch });
        steps
    }

    /// When the running work must be stopped (deadline - margin), if any runs.
    pub(crate) fn stop_at(&self) -> Option<Instant> {
        self.current
            .as_ref()
            .filter(|c| c.running)
            .and_then(Current::stop_at)
    }

    /// The epoch whose work runs now.
    #[cfg(test)]
    pub(crate) fn running(&self) -> Option<i64> {
        self.current.as_ref().filter(|c| c.running).map(|c| c.epoch)
    }

    /// The pause between pings: the configured one, but never more than a
    /// third of the last lease granted.
    pub(crate) fn ping_interval(&self, configured: Duration) -> Duration {
        match self.last_lease {
            Some(lease) => configured.min(lease / 3).max(Duration::from_millis(1)),
            None => configured,
        }
    }
}
