// The campaign helper (client.campaign()): runs the caller's work while this candidate leads a
// named election, over one Campaign stream at a time with the client's failover and backoff.
// TermTracker is its transport-free core (deadlines from ping send times and lease_ms, which
// epochs may start, when a term must stop); Campaign drives the stream, the pings, the work
// and its AbortSignal, the acks and the resignation (the contract: ../../README.md and
// .tmp/design-12.md, "The client campaign helper").
import * as grpc from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import { Backoff } from './backoff.js';

const { status: Status } = grpc;

/** Default time between two pings (never more than a third of the last lease_ms granted). */
export const DEFAULT_PING_INTERVAL_MS = 500;
/** The work is stopped this long before the deadline at least ... */
export const MIN_SAFETY_MARGIN_MS = 50;
/** ... and at least this fraction of the lease_ms that set the deadline. */
export const SAFETY_MARGIN_FRACTION = 0.1;
/** Pings never go out faster than this, whatever lease_ms says. */
const MIN_PING_INTERVAL_MS = 10;
// An attempt that answered counts as healthy (resets the round and the backoff) after this long.
const HEALTHY_STREAM_MS = 1000;
const FAILOVER_CODES = new Set([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.RESOURCE_EXHAUSTED]);
const LOSS_PREFIX = 'LOSS_REASON_';

/** The safety margin for a grant of leaseMs: 10 % of it, at least 50 ms. */
export function safetyMargin(leaseMs) {
  return Math.max(MIN_SAFETY_MARGIN_MS, leaseMs * SAFETY_MARGIN_FRACTION);
}

/**
 * The deadline and epoch bookkeeping of a campaign, with no I/O and no clock of its own (every
 * time is passed in, in performance.now() milliseconds):
 *
 * - each ping's send time is remembered by nonce; a Leading answer for a known nonce with
 *   lease_ms > 0 moves the term's deadline to max(deadline, send time + lease_ms);
 * - a Leading of a higher epoch than any seen starts a new term; one of a lower or equal epoch
 *   (other than the open term's own) is stale and changes nothing, so a term never starts
 *   twice and epochs never go back, across streams too;
 * - a term may start while deadline - margin is ahead, and must stop once it is not.
 *
 * A term is { epoch, deadline, leaseMs, started, ended, lost, lapsed } (plain, mutable).
 */
export class TermTracker {
  #sent = new Map(); // nonce -> send time, of the pings not answered yet
  /** The highest epoch seen in a Leading or Lost (0n: none). */
  lastEpoch = 0n;
  /** The latest term (open or ended), or null. */
  term = null;
  /** The last lease_ms > 0 granted (0: none yet), which bounds the ping interval. */
  lastLeaseMs = 0;

  /** A ping with this nonce was sent at `at`. */
  sent(nonce, at) {
    this.#sent.set(nonce, at);
  }

  /** The stream changed: pings sent on the old one are never answered. */
  forgetPings() {
    this.#sent.clear();
  }

  /**
   * A CampaignLeading{epoch, nonce, leaseMs} arrived. Returns { kind, term, previous }:
   * kind 'stale' (ignore it), 'new' (a new term; `previous` is the term before it if that one
   * had not ended, which the caller must end) or 'same' (the open term, deadline maybe moved).
   */
  leading(epoch, nonce, leaseMs) {
    let kind;
    let previous = null;
    const open = this.term && !this.term.ended ? this.term : null;
    if (open && epoch === open.epoch) {
      kind = 'same';
    } else if (epoch > this.lastEpoch) {
      kind = 'new';
      previous = open;
      this.lastEpoch = epoch;
      this.term = { epoch, deadline: -Infinity, leaseMs: 0, started: false, ended: false, lost: false, lapsed: false };
    } else {
      return { kind: 'stale', term: null, previous: null };
    }
    const term = this.term;
    const at = this.#sent.get(nonce);
    if (nonce !== 0 && at !== undefined) {
      // Answers come in order: pings before this one will not be answered any more.
      for (const n of this.#sent.keys()) if (n <= nonce) this.#sent.delete(n);
      if (leaseMs > 0) {
        this.lastLeaseMs = leaseMs;
        if (at + leaseMs > term.deadline) {
          term.deadline = at + leaseMs;
          term.leaseMs = leaseMs;
        }
      }
    }
    return { kind, term, previous };
  }

  /**
   * A CampaignLost{epoch} arrived. Returns { kind, term }: 'current' (the open term ended; it is
   * marked ended and lost), or 'other' (no open term of that epoch: nothing runs for it; the
   * caller still acknowledges it). Either way no Leading of that epoch starts a term afterwards.
   */
  lost(epoch) {
    const term = this.term;
    if (term && term.epoch === epoch && !term.ended) {
      term.ended = true;
      term.lost = true;
      return { kind: 'current', term };
    }
    if (term && term.epoch === epoch) term.lost = true;
    if (epoch > this.lastEpoch) this.lastEpoch = epoch;
    return { kind: 'other', term: null };
  }

  /** When the term must have stopped: its deadline less the safety margin (-Infinity: no deadline yet). */
  stopAt(term = this.term) {
    if (!term || term.deadline === -Infinity) return -Infinity;
    return term.deadline - safetyMargin(term.leaseMs);
  }

  /** True if the latest term is open, has not started, and has more than its safety margin left at `now`. */
  canStart(now) {
    const term = this.term;
    return Boolean(term && !term.ended && !term.started && this.stopAt(term) > now);
  }

  /** True if the latest term started, is open, and is within its safety margin of the deadline at `now`. */
  expired(now) {
    const term = this.term;
    return Boolean(term && term.started && !term.ended && now >= this.stopAt(term));
  }

  /** The time to the next ping: pingIntervalMs, at most a third of the last lease granted. */
  pingInterval(pingIntervalMs) {
    const third = this.lastLeaseMs > 0 ? this.lastLeaseMs / 3 : Infinity;
    return Math.max(MIN_PING_INTERVAL_MS, Math.min(pingIntervalMs, third));
  }
}

/** The reason a work's signal is aborted with: an Error named AbortError, saying why. */
function abortReason(epoch, why) {
  const err = new Error(`electd campaign: term ${epoch} ended: ${why}`);
  err.name = 'AbortError';
  return err;
}

const describe = ({ code, details }) => {
  const name = Status[code] ?? String(code);
  return details ? `${name}: ${details}` : name;
};

/**
 * One running campaign (see ElectionClient.campaign()). Not constructed directly.
 */
export class Campaign {
  #t; // the client's transport (see ElectionClient.campaign)
  #election;
  #candidateId;
  #value;
  #labels;
  #priority;
  #neverLead;
  #onLoss;
  #pingIntervalMs;
  #work;
  #onEvent;
  #signal;
  #onSignal;
  #tracker = new TermTracker();
  #nonce = 0;
  #running = null; // the work in progress: { term, controller, settled, promise }
  #stream = null; // the current attempt's stream, or null
  #stopping = null; // { reason, error?, graceful } once the campaign ends
  #wake = new AbortController(); // interrupts a backoff sleep when the campaign ends
  #unclean = new Set(); // addresses whose last stream ended without a resignation
  #ranEpoch = 0n; // the highest epoch whose work started
  #expiryTimer = null;

  /** Resolves with { reason, lastEpoch } when the campaign has ended; rejects with ElectdError or the work's error. */
  done;

  constructor(transport, options) {
    this.#t = transport;
    transport.register(this);
    this.#election = options.election;
    this.#candidateId = options.candidateId;
    this.#value = options.value;
    this.#labels = options.labels;
    this.#priority = options.priority;
    this.#neverLead = options.neverLead;
    this.#onLoss = options.onLoss;
    this.#pingIntervalMs = options.pingIntervalMs;
    this.#work = options.work;
    this.#onEvent = options.onEvent;
    this.#signal = options.signal;
    if (this.#signal) {
      this.#onSignal = () => this.#finish({ reason: 'resigned', graceful: true }, 'the caller\'s signal was aborted');
      this.#signal.addEventListener('abort', this.#onSignal, { once: true });
    }
    this.done = this.#run();
    this.done.catch(() => {}); // a caller that only uses resign()/close() must not see an unhandled rejection
    if (this.#signal?.aborted) this.#onSignal();
  }

  /** The election this campaign runs in. */
  get election() {
    return this.#election;
  }

  /** The candidate id. */
  get candidateId() {
    return this.#candidateId;
  }

  /** The term whose work runs now, as { epoch, deadline }, or null. */
  get term() {
    const r = this.#running;
    return r && !r.term.ended && !r.settled ? r.publicTerm : null;
  }

  /**
   * Ends the campaign gracefully: aborts the work, waits for it to finish, tells the node
   * (CampaignResign, so the next candidate need not wait for the lease to run out) and resolves
   * with the campaign's result once the node confirmed (or after the call timeout).
   */
  resign() {
    this.#finish({ reason: 'resigned', graceful: true }, 'resign() was called');
    return this.done;
  }

  /**
   * Ends the campaign at once: aborts the work and cancels the stream without waiting for the
   * work (the node keeps a leader's entry until the last lease it granted ran out, so nobody
   * else leads before this candidate's deadline). `done` resolves once the work finished.
   * Idempotent.
   */
  close() {
    this.#finish({ reason: 'closed', graceful: false }, 'close() was called');
  }

  /**
   * Sets the leader's value (CampaignProclaim for the current term). Resolves with the new
   * value_revision (a bigint); rejects with ElectdError when not leading, when the node refuses
   * (code FAILED_PRECONDITION, details = the node's reason) or when the stream ends first.
   * @param {string|Uint8Array} value
   */
  proclaim(value) {
    const bytes = toBytes(value, 'proclaim: value');
    const s = this.#stream;
    const r = this.#running;
    if (!s || !s.answered || !r || r.settled || r.term.ended || r.term.stream !== s) {
      return Promise.reject(this.#t.error('proclaim: not leading', { code: Status.FAILED_PRECONDITION, details: 'not leading' }));
    }
    const epoch = r.term.epoch;
    return new Promise((resolve, reject) => {
      s.proclaims.push({ resolve, reject, value: bytes });
      s.call.write({ proclaim: { epoch: epoch.toString(), value: bytes } });
    });
  }

  // --- the loop over the addresses ---

  async #run() {
    const addresses = this.#t.addresses;
    const n = addresses.length;
    const backoff = new Backoff(this.#t.backoff);
    let index = this.#t.preferred;
    let fruitless = 0;
    let anyAnswered = false;
    let error;
    try {
      if (this.#t.closed()) this.#finish({ reason: 'closed', graceful: false }, 'the client is closed');
      while (!this.#stopping) {
        const attempt = await this.#attempt(index);
        if (this.#stopping) break;
        anyAnswered ||= attempt.answered;
        if (attempt.healthy) {
          fruitless = 0;
          backoff.reset();
        } else {
          fruitless++;
        }
        this.#emit({ type: 'failover', address: addresses[index], reason: attempt.reason });
        if (this.#stopping) break;
        if (!anyAnswered && fruitless >= n) throw this.#t.noNodeAnswered(attempt.failure);
        index = (index + 1) % n;
        if (fruitless > 0 && fruitless % n === 0) {
          try {
            await sleep(backoff.next(), undefined, { signal: this.#wake.signal });
          } catch {
            break; // the campaign ended meanwhile
          }
        }
      }
    } catch (err) {
      error = err;
      this.#finish({ reason: 'failed', error: err, graceful: false }, err.message);
    } finally {
      this.#signal?.removeEventListener('abort', this.#onSignal);
      clearTimeout(this.#expiryTimer);
      // The work must have finished before the campaign is done, whatever ended it.
      const r = this.#running;
      if (r && !r.settled) {
        if (!r.controller.signal.aborted) r.controller.abort(abortReason(r.term.epoch, 'the campaign ended'));
        await r.promise;
      }
      this.#t.release(this);
    }
    const stop = this.#stopping;
    if (stop.error !== undefined) throw stop.error;
    if (error !== undefined) throw error;
    return { reason: stop.reason, lastEpoch: this.#ranEpoch };
  }

  /** Ends the campaign (once): aborts the work; graceful: resign once it finished; else cancel now. */
  #finish(stop, why) {
    if (this.#stopping) return;
    this.#stopping = stop;
    this.#wake.abort();
    const r = this.#running;
    const workRunning = r && !r.settled;
    if (workRunning) this.#endTerm(r.term, stop.graceful ? 'RESIGNED' : 'CLOSED', why);
    const s = this.#stream;
    if (!s) return;
    if (!stop.graceful || !s.answered) s.call.cancel();
    else if (!workRunning) this.#resignStream(s);
    // else: #workDone resigns once the work has finished
  }

  // --- one stream ---

  /** One Campaign stream on one address, until it ends; resolves with { answered, healthy, reason, failure }. */
  #attempt(index) {
    return new Promise((resolve, reject) => {
      const address = this.#t.addresses[index];
      const guard = this.#t.guard(index);
      let call;
      try {
        call = this.#t.stub(index).Campaign();
      } catch (err) {
        if (this.#t.closed()) {
          this.#finish({ reason: 'closed', graceful: false }, 'the client is closed');
          resolve({ answered: false, healthy: false, reason: 'closed' });
        } else reject(err);
        return;
      }
      const s = {
        index, address, call, answered: false, firstAt: 0, queuedKey: null, proclaims: [],
        resignSent: false, lapsed: false, timedOut: undefined, status: null, ended: false, done: false,
        timers: new Set(),
      };
      this.#stream = s;
      this.#tracker.forgetPings();
      const timer = (fn, ms) => {
        const t = setTimeout(() => { s.timers.delete(t); fn(); }, ms);
        s.timers.add(t);
        return t;
      };
      s.timer = timer;
      const giveUp = (why) => {
        s.timedOut ??= why;
        call.cancel();
      };
      const ms = this.#t.firstMessageTimeoutMs;
      let firstTimer;
      s.stopWaiting = guard.whenReady(() => {
        if (!s.answered && !s.done) firstTimer = timer(() => giveUp(`no first message within ${ms} ms`), ms);
      });
      s.clearFirst = () => {
        s.stopWaiting();
        clearTimeout(firstTimer);
        clearTimeout(backstop);
      };
      const backstop = timer(() => giveUp(`no connection and no first message within ${ms + guard.connectTimeoutMs} ms`),
        ms + guard.connectTimeoutMs + 250);

      const finish = () => {
        if (s.done) return;
        s.done = true;
        try {
          resolve(this.#attemptEnded(s));
        } catch (err) {
          reject(err);
        }
      };
      call.on('data', (msg) => {
        if (s.done) return;
        try {
          this.#onMessage(s, msg);
        } catch (err) {
          this.#finish({ reason: 'failed', error: err, graceful: true }, String(err?.message ?? err));
        }
      });
      call.on('error', () => {}); // the status below says it all
      call.on('status', (st) => {
        s.status = st;
        if (s.ended) finish();
        else timer(finish, 50); // 'end' normally follows once the messages before it were read
      });
      call.on('end', () => {
        s.ended = true;
        if (s.status) finish();
      });

      call.write({
        start: {
          election: this.#election,
          candidateId: this.#candidateId,
          value: this.#value,
          labels: this.#labels,
          priority: this.#priority,
          neverLead: this.#neverLead,
        },
      });
      this.#ping(s);
    });
  }

  /** Cleans up after a stream ended and classifies how. Throws ElectdError for a rejection. */
  #attemptEnded(s) {
    for (const t of s.timers) clearTimeout(t);
    s.timers.clear();
    s.clearFirst();
    if (this.#stream === s) this.#stream = null;
    const st = s.status;
    const statusText = describe({ code: st.code, details: detailsOf(st.details) });
    for (const p of s.proclaims.splice(0)) {
      p.reject(this.#t.error(`proclaim: the stream to ${s.address} ended before the node answered (${statusText})`,
        { code: Status.UNAVAILABLE, details: 'stream ended', addresses: [s.address] }));
    }
    // A term of this stream that is still open ends with it.
    const term = this.#tracker.term;
    if (term && term.stream === s && !term.ended) {
      this.#endTerm(term, 'DISCONNECTED', `the stream to ${s.address} ended: ${statusText}`);
    }
    if (s.resignSent && st.code === Status.OK) this.#unclean.delete(s.address);
    else if (s.answered) this.#unclean.add(s.address);
    const healthy = s.firstAt > 0 && performance.now() - s.firstAt >= HEALTHY_STREAM_MS;
    const result = { answered: s.answered, healthy, reason: 'stream ended', failure: undefined };
    if (this.#stopping) return result;
    if (s.lapsed) {
      result.reason = 'the lease deadline passed without a renewal';
      return result;
    }
    if (s.timedOut) {
      result.failure = { code: Status.DEADLINE_EXCEEDED, details: s.timedOut };
      result.reason = describe(result.failure);
      return result;
    }
    if (st.code === Status.OK) return result;
    const retryable = FAILOVER_CODES.has(st.code) || st.code === Status.CANCELLED ||
      // Our own entry on that node, left by a stream that broke, until its lease runs out.
      (st.code === Status.ALREADY_EXISTS && this.#unclean.has(s.address) && !s.answered);
    if (!retryable) throw this.#t.rejected(s.index, 'Campaign', st);
    result.failure = this.#t.failure(s.index, st);
    result.reason = describe(result.failure);
    return result;
  }

  #ping(s) {
    if (s.done || s.resignSent) return;
    clearTimeout(s.pingTimer);
    const nonce = ++this.#nonce;
    this.#tracker.sent(nonce, performance.now()); // before the write: the deadline is on the safe side
    s.call.write({ ping: { nonce: String(nonce) } });
    const interval = this.#tracker.pingInterval(this.#pingIntervalMs);
    s.nextPingAt = performance.now() + interval;
    s.pingTimer = s.timer(() => this.#ping(s), interval);
  }

  #onMessage(s, msg) {
    if (!s.answered) {
      s.answered = true;
      s.firstAt = performance.now();
      s.clearFirst();
      this.#t.preferred = s.index;
    }
    switch (msg.response) {
      case 'queued': return this.#onQueued(s, msg.queued, msg.responderId);
      case 'leading': return this.#onLeading(s, msg.leading, msg.responderId);
      case 'lost': return this.#onLost(s, msg.lost);
      case 'proclaimed': return this.#onProclaimed(s, msg.proclaimed);
      case 'refused': return this.#onRefused(s, msg.refused);
      default: return undefined; // a response this client does not know yet: nothing to do
    }
  }

  #onQueued(s, q, responderId) {
    // Only changes are events (the node also answers every ping of a waiting candidate).
    const key = `${q.position}\n${q.waitingFor}\n${q.neverLead}`;
    if (key === s.queuedKey) return;
    s.queuedKey = key;
    this.#emit({
      type: 'queued', position: q.position, waitingFor: q.waitingFor, neverLead: q.neverLead,
      znode: q.znode, address: s.address, responderId,
    });
  }

  #onLeading(s, l, responderId) {
    const epoch = BigInt(l.epoch);
    const nonce = Number(l.nonce);
    const leaseMs = Number(l.leaseMs);
    const r = this.#tracker.leading(epoch, nonce, leaseMs);
    if (r.kind === 'stale') return;
    const term = r.term;
    if (r.kind === 'new') {
      if (r.previous) this.#endTerm(r.previous, 'SUPERSEDED', `epoch ${epoch} began`);
      term.stream = s;
      term.address = s.address;
      term.responderId = responderId;
      term.znode = l.znode;
      s.queuedKey = null;
      if (nonce === 0 || leaseMs <= 0) this.#ping(s); // no deadline yet: ask for one now
    }
    // A shorter lease than before: the next ping may have to come sooner.
    const due = performance.now() + this.#tracker.pingInterval(this.#pingIntervalMs);
    if (s.nextPingAt > due && !s.resignSent) {
      clearTimeout(s.pingTimer);
      s.pingTimer = s.timer(() => this.#ping(s), due - performance.now());
      s.nextPingAt = due;
    }
    this.#maybeStart();
    this.#armExpiry();
  }

  #onLost(s, l) {
    const epoch = BigInt(l.epoch);
    const reason = String(l.reason).startsWith(LOSS_PREFIX) ? String(l.reason).slice(LOSS_PREFIX.length) : String(l.reason);
    const r = this.#tracker.lost(epoch);
    if (r.kind !== 'current') {
      // Nothing runs for that epoch (it never started, or already stopped): acknowledge at once.
      if (reason !== 'RESIGNED') this.#ack(s, epoch);
      return;
    }
    const term = r.term;
    this.#endTerm(term, reason, l.detail);
    if (term.started && reason !== 'RESIGNED' && this.#onLoss === 'stop') {
      this.#finish({ reason: 'lost', graceful: true }, `term ${epoch} was lost (${reason})`);
    }
    const running = this.#running;
    if (!running || running.term !== term || running.settled) {
      if (reason !== 'RESIGNED') this.#ack(s, epoch);
      if (this.#stopping?.graceful && this.#stream === s) this.#resignStream(s);
    }
    // else: #workDone acknowledges once the work has stopped
  }

  #onProclaimed(s, p) {
    const pending = s.proclaims.shift();
    if (!pending) return;
    this.#value = pending.value; // a later stream starts with the value proclaimed last
    pending.resolve(BigInt(p.valueRevision));
  }

  #onRefused(s, f) {
    if (f.request === 'proclaim' && s.proclaims.length > 0) {
      s.proclaims.shift().reject(this.#t.error(`${s.address} refused the proclaim: ${f.reason}`,
        { code: Status.FAILED_PRECONDITION, details: f.reason, addresses: [s.address] }));
      return;
    }
    this.#emit({ type: 'refused', request: f.request, reason: f.reason, address: s.address });
  }

  #ack(s, epoch) {
    if (!s.done && !s.resignSent) s.call.write({ ack: { epoch: epoch.toString() } });
  }

  /** Sends CampaignResign (once) and bounds the wait for the node's answer by the call timeout. */
  #resignStream(s) {
    if (s.done || s.resignSent) return;
    s.resignSent = true;
    clearTimeout(s.pingTimer);
    s.call.write({ resign: {} });
    s.timer(() => s.call.cancel(), this.#t.callTimeoutMs);
  }

  // --- terms and the work ---

  /**
   * Ends a term on our side: marks it ended, reports the loss (once, if its work started: every
   * 'leading' event is followed by exactly one 'lost') and aborts its work.
   */
  #endTerm(term, reason, detail) {
    term.ended = true;
    if (term.started && !term.reported) {
      term.reported = true;
      this.#emit({ type: 'lost', epoch: term.epoch, reason, detail: detail ?? '', address: term.address });
    }
    const r = this.#running;
    if (r && r.term === term && !r.settled && !r.controller.signal.aborted) {
      r.controller.abort(abortReason(term.epoch, detail || reason || 'the campaign ended'));
    }
    if (this.#tracker.term === term) clearTimeout(this.#expiryTimer);
  }

  #maybeStart() {
    if (this.#stopping) return;
    if (this.#running && !this.#running.settled) return; // the previous term's work first
    const now = performance.now();
    if (!this.#tracker.canStart(now)) return;
    const term = this.#tracker.term;
    term.started = true;
    this.#ranEpoch = term.epoch;
    const controller = new AbortController();
    const publicTerm = Object.freeze({
      epoch: term.epoch,
      get deadline() { return term.deadline; },
    });
    const running = { term, controller, settled: false, publicTerm };
    this.#running = running;
    this.#emit({
      type: 'leading', epoch: term.epoch, deadline: term.deadline, leaseMs: term.leaseMs,
      address: term.address, responderId: term.responderId, znode: term.znode,
    });
    if (this.#stopping || term.ended) {
      // The event handler ended it: do not run the work at all.
      running.settled = true;
      running.promise = Promise.resolve();
      this.#workDone(running, { ok: true, aborted: true });
      return;
    }
    const work = this.#work;
    running.promise = Promise.resolve()
      .then(() => work(publicTerm, controller.signal))
      .then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }))
      .then((outcome) => {
        running.settled = true;
        this.#workDone(running, { ...outcome, aborted: controller.signal.aborted });
      });
  }

  #workDone(running, outcome) {
    const term = running.term;
    if (!outcome.aborted) {
      // The work ended on its own: the candidate resigns; a failure is the campaign's result.
      if (outcome.ok) this.#finish({ reason: 'returned', graceful: true }, 'the work returned');
      else this.#finish({ reason: 'failed', error: outcome.error, graceful: true }, 'the work failed');
      this.#endTerm(term, 'RESIGNED', outcome.ok ? 'the work returned' : `the work failed: ${outcome.error?.message ?? outcome.error}`);
    }
    const s = this.#stream;
    const here = s && term.stream === s && !s.done;
    if (here && term.lost) this.#ack(s, term.epoch); // the work has stopped: the next candidate may lead
    if (this.#stopping?.graceful) {
      if (s && !s.done) this.#resignStream(s);
      return;
    }
    if (here && term.lapsed && !term.lost) {
      // Our deadline passed while the node may still count us as leader: we cannot run this
      // epoch again, so end the candidacy on this stream and campaign again on the next address.
      s.lapsed = true;
      this.#resignStream(s);
      return;
    }
    this.#maybeStart();
    this.#armExpiry();
  }

  /** Arms the timer that stops the running term's work at deadline - margin. */
  #armExpiry() {
    clearTimeout(this.#expiryTimer);
    const r = this.#running;
    if (!r || r.settled || r.term.ended || r.term !== this.#tracker.term) return;
    const wait = this.#tracker.stopAt(r.term) - performance.now();
    this.#expiryTimer = setTimeout(() => {
      if (this.#tracker.expired(performance.now()) && this.#running === r) {
        r.term.lapsed = true;
        const margin = Math.round(safetyMargin(r.term.leaseMs));
        this.#endTerm(r.term, 'EXPIRED', `the lease deadline came within ${margin} ms without a renewal`);
        if (this.#onLoss === 'stop') this.#finish({ reason: 'lost', graceful: true }, `term ${r.term.epoch} expired`);
      } else {
        this.#armExpiry();
      }
    }, Math.max(0, wait));
  }

  #emit(event) {
    if (!this.#onEvent) return;
    try {
      this.#onEvent(event);
    } catch (err) {
      // As with watchLeader's failover hook: an exception from the hook ends the campaign with it.
      this.#finish({ reason: 'failed', error: err, graceful: true }, `onEvent threw: ${err?.message ?? err}`);
    }
  }
}

/** The details of a grpc-js status, without the empty "Resolution note:" it appends to connection errors. */
function detailsOf(details) {
  return (details ?? '').replace(/\s*Resolution note:\s*$/, '');
}

/** A value as a Buffer: a string is UTF-8; a Uint8Array is copied. */
export function toBytes(value, what) {
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (value instanceof Uint8Array) return Buffer.from(value);
  throw new TypeError(`${what} must be a string or a Uint8Array`);
}
