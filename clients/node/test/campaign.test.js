// The campaign helper: TermTracker's deadline/epoch rules (no I/O), and Campaign against
// scripted Campaign streams on 127.0.0.1: work started with the term and aborted before the
// deadline, on Lost and on a broken stream; the ack after the work stopped; resignation; epochs
// never run twice; proclaim; failover and errors.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ElectionClient, ElectdError, Campaign } from '../src/index.js';
import { TermTracker, safetyMargin } from '../src/campaign.js';
import { serve, deadAddress, fast, waitFor } from './helpers.js';

// --- TermTracker: pure bookkeeping, times passed in ---

test('safety margin: 10 % of the lease, at least 50 ms', () => {
  assert.equal(safetyMargin(2000), 200);
  assert.equal(safetyMargin(300), 50);
  assert.equal(safetyMargin(0), 50);
});

test('the deadline is the send time of the answered ping plus lease_ms, the max over answers', () => {
  const t = new TermTracker();
  t.sent(1, 1000);
  t.sent(2, 1400);
  const r = t.leading(7n, 1, 2000);
  assert.equal(r.kind, 'new');
  assert.equal(r.term.deadline, 3000);
  assert.equal(t.stopAt(), 3000 - 200);
  // An answer to a later ping with a shorter lease never moves the deadline back.
  assert.equal(t.leading(7n, 2, 500).kind, 'same');
  assert.equal(t.term.deadline, 3000);
  t.sent(3, 2000);
  t.leading(7n, 3, 2000);
  assert.equal(t.term.deadline, 4000);
  assert.equal(t.term.leaseMs, 2000);
});

test('no deadline from nonce 0, lease 0, an unknown nonce, or a ping already passed', () => {
  const t = new TermTracker();
  t.leading(5n, 0, 0); // Leading before any ping: the candidate must ping
  assert.equal(t.term.deadline, -Infinity);
  assert.equal(t.canStart(0), false);
  t.leading(5n, 42, 2000); // never sent
  assert.equal(t.term.deadline, -Infinity);
  t.sent(1, 100);
  t.sent(2, 200);
  t.leading(5n, 2, 0); // answered, no lease: no deadline, and ping 1 will not be answered now
  t.leading(5n, 1, 2000);
  assert.equal(t.term.deadline, -Infinity);
  t.sent(3, 300);
  t.leading(5n, 3, 1000);
  assert.equal(t.term.deadline, 1300);
});

test('pings of an old stream are forgotten', () => {
  const t = new TermTracker();
  t.sent(1, 100);
  t.forgetPings();
  t.leading(5n, 1, 2000);
  assert.equal(t.term.deadline, -Infinity);
});

test('canStart while more than the margin is left; expired once within it', () => {
  const t = new TermTracker();
  t.sent(1, 0);
  t.leading(9n, 1, 1000); // deadline 1000, margin 100
  assert.equal(t.canStart(899), true);
  assert.equal(t.canStart(900), false);
  t.term.started = true;
  assert.equal(t.canStart(0), false); // a term starts once
  assert.equal(t.expired(899), false);
  assert.equal(t.expired(900), true);
});

test('epochs: a lower or ended epoch never starts a term; Lost ends the open one', () => {
  const t = new TermTracker();
  t.sent(1, 0);
  assert.equal(t.leading(10n, 1, 1000).kind, 'new');
  assert.equal(t.leading(9n, 0, 0).kind, 'stale');
  const lost = t.lost(10n);
  assert.equal(lost.kind, 'current');
  assert.equal(lost.term.ended, true);
  assert.equal(lost.term.lost, true);
  t.sent(2, 10);
  assert.equal(t.leading(10n, 2, 1000).kind, 'stale'); // the same epoch again: never run twice
  assert.equal(t.canStart(20), false);
  assert.equal(t.lost(10n).kind, 'other'); // a repeat: acknowledged, nothing to stop
  // A Lost of an epoch never seen still moves the floor.
  assert.equal(t.lost(12n).kind, 'other');
  assert.equal(t.leading(11n, 0, 0).kind, 'stale');
  const next = t.leading(13n, 0, 0);
  assert.equal(next.kind, 'new');
  assert.equal(next.previous, null);
  assert.equal(t.lastEpoch, 13n);
});

test('a new epoch while a term is open reports the open one as previous', () => {
  const t = new TermTracker();
  const first = t.leading(3n, 0, 0).term;
  const r = t.leading(4n, 0, 0);
  assert.equal(r.kind, 'new');
  assert.equal(r.previous, first);
});

test('ping interval: the configured one, at most a third of the last lease granted', () => {
  const t = new TermTracker();
  assert.equal(t.pingInterval(500), 500);
  t.sent(1, 0);
  t.leading(1n, 1, 600);
  assert.equal(t.pingInterval(500), 200);
  assert.equal(t.pingInterval(100), 100);
});

// --- Campaign against scripted streams ---

const LOSS = (r) => `LOSS_REASON_${r}`;

/**
 * A scripted Campaign handler: script(stream, request) is called for every request; a stream
 * is { requests, log, send(response), fail(code, details), end() }. `log` is shared by all
 * streams of the handler (and the test) to check the order of events.
 */
function scripted(script, log = []) {
  const streams = [];
  const handler = (call) => {
    const st = {
      call, requests: [], log, cancelled: false,
      send: (m) => call.write({ responderId: 'n1', ...m }),
      fail: (code, details) => call.emit('error', { code, details }),
      end: () => call.end(),
    };
    streams.push(st);
    call.on('data', (req) => {
      st.requests.push(req);
      log.push(`node:${req.request}`);
      script(st, req);
    });
    call.on('cancelled', () => { st.cancelled = true; log.push('node:cancelled'); });
    call.on('error', () => {});
  };
  return { handler, streams, log };
}

/**
 * A node where the candidate waits once (position 1), then leads `epoch`, answering every ping
 * with a lease of leaseMs (until st.silent is set); resign -> Lost RESIGNED and OK.
 */
function leaderScript({ epoch = 7, leaseMs = 3000 } = {}) {
  return (st, req) => {
    if (req.request === 'start') st.send({ queued: { znode: 'c-1', position: 1, waitingFor: 'other' } });
    else if (req.request === 'ping' && !st.silent) {
      st.send({ leading: { epoch: String(st.epoch ?? epoch), nonce: req.ping.nonce, leaseMs: String(leaseMs), znode: 'c-1' } });
    } else if (req.request === 'resign') {
      st.send({ lost: { epoch: String(st.epoch ?? epoch), reason: LOSS('RESIGNED'), detail: 'resigned' } });
      st.end();
    }
  };
}

function recorder() {
  const events = [];
  return { events, onEvent: (e) => events.push(e) };
}

test('queued, then leading: the work gets the epoch and a deadline in the future; resign() stops it, then resigns', { timeout: 20_000 }, async () => {
  const node = scripted(leaderScript({ epoch: 7, leaseMs: 3000 }));
  const srv = await serve({ Campaign: node.handler });
  const client = new ElectionClient([srv.address], fast);
  const rec = recorder();
  let seen;
  const c = client.campaign({
    election: 'jobs', candidateId: 'c1', value: 'v1', labels: { zone: 'a' }, priority: 3, onEvent: rec.onEvent,
    work: async (term, signal) => {
      seen = { epoch: term.epoch, deadline: term.deadline, now: performance.now() };
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      node.log.push('work:stopped');
    },
  });
  assert.ok(c instanceof Campaign);
  await waitFor(() => seen, 10_000, 'the work to start');
  assert.equal(seen.epoch, 7n);
  assert.ok(seen.deadline > seen.now && seen.deadline <= seen.now + 3000, `deadline ${seen.deadline}, now ${seen.now}`);
  assert.equal(c.term.epoch, 7n);
  const result = await c.resign();
  assert.deepEqual(result, { reason: 'resigned', lastEpoch: 7n });
  const start = node.streams[0].requests[0].start;
  assert.equal(start.election, 'jobs');
  assert.equal(start.candidateId, 'c1');
  assert.equal(Buffer.from(start.value).toString(), 'v1');
  assert.deepEqual({ ...start.labels }, { zone: 'a' });
  assert.equal(start.priority, 3);
  // The node hears of the resignation only after the work stopped.
  assert.ok(node.log.indexOf('work:stopped') < node.log.indexOf('node:resign'), node.log.join(' '));
  assert.deepEqual(rec.events.filter((e) => e.type !== 'failover').map((e) => e.type), ['queued', 'leading', 'lost']);
  assert.equal(rec.events[0].position, 1);
  assert.equal(rec.events[2].reason, 'RESIGNED');
  assert.equal(c.term, null);
  client.close();
});

test('Lost: the work is aborted, the ack follows once it stopped; the same epoch never runs again, the next one does', { timeout: 20_000 }, async () => {
  const log = [];
  const node = scripted((st, req) => {
    if (req.request === 'start') st.send({ queued: { znode: 'c-1', position: 0 } });
    else if (req.request === 'ping') {
      if (st.phase === 'requeued') st.send({ queued: { znode: 'c-2', position: 1, nonce: req.ping.nonce } });
      else st.send({ leading: { epoch: String(st.epoch ?? 10), nonce: req.ping.nonce, leaseMs: '3000', znode: 'c-1' } });
    } else if (req.request === 'ack') {
      // After the ack: Leading 10 again (must be ignored), then a new term 12.
      st.phase = undefined;
      st.send({ leading: { epoch: '10', nonce: '0', leaseMs: '0' } });
      st.epoch = 12;
    } else if (req.request === 'resign') {
      st.send({ lost: { epoch: String(st.epoch), reason: LOSS('RESIGNED') } });
      st.end();
    }
  }, log);
  const srv = await serve({ Campaign: node.handler });
  const client = new ElectionClient([srv.address], fast);
  const rec = recorder();
  const terms = [];
  const c = client.campaign({
    election: 'jobs', candidateId: 'c1', onEvent: rec.onEvent,
    work: async (term, signal) => {
      terms.push(term.epoch);
      log.push(`work:start:${term.epoch}`);
      if (term.epoch === 10n) {
        const st = node.streams[0];
        st.phase = 'requeued';
        st.send({ lost: { epoch: '10', reason: LOSS('DELETED'), detail: 'deleted by an operator' } });
      }
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
      await new Promise((resolve) => setTimeout(resolve, 100)); // a work that takes a while to stop
      log.push(`work:stopped:${term.epoch}`);
      throw signal.reason; // throwing after the abort is a normal stop, not a failure
    },
  });
  await waitFor(() => terms.length === 2, 10_000, 'the second term');
  assert.deepEqual(terms, [10n, 12n]);
  const acks = node.streams[0].requests.filter((r) => r.request === 'ack');
  assert.deepEqual(acks.map((r) => r.ack.epoch), ['10']);
  assert.ok(log.indexOf('work:stopped:10') < log.indexOf('node:ack'), log.join(' '));
  assert.ok(log.indexOf('node:ack') < log.indexOf('work:start:12'), log.join(' '));
  const lost = rec.events.find((e) => e.type === 'lost');
  assert.equal(lost.epoch, 10n);
  assert.equal(lost.reason, 'DELETED');
  assert.equal(lost.detail, 'deleted by an operator');
  assert.deepEqual((await c.resign()).lastEpoch, 12n);
  client.close();
});

test('the node stops renewing: the signal is aborted before the deadline; resign on that stream, campaign on the next address, never the same epoch again', { timeout: 30_000 }, async () => {
  const a = scripted((st, req) => {
    leaderScript({ epoch: 20, leaseMs: 3000 })(st, req);
    if (req.request === 'ping') st.silent = true; // only the first ping is answered
  });
  const b = scripted((st, req) => {
    if (req.request === 'start') st.send({ leading: { epoch: '20', nonce: '0', leaseMs: '0' } }); // the lapsed term: not again
    else if (req.request === 'ping') {
      const epoch = st.requests.filter((r) => r.request === 'ping').length >= 2 ? '25' : '20';
      st.send({ leading: { epoch, nonce: req.ping.nonce, leaseMs: '3000' } });
    } else if (req.request === 'resign') {
      st.send({ lost: { epoch: '25', reason: LOSS('RESIGNED') } });
      st.end();
    }
  });
  const na = await serve({ Campaign: a.handler });
  const nb = await serve({ Campaign: b.handler });
  const client = new ElectionClient([na.address, nb.address], fast);
  const rec = recorder();
  const runs = [];
  const c = client.campaign({
    election: 'jobs', candidateId: 'c1', onEvent: rec.onEvent,
    work: (term, signal) => new Promise((resolve) => {
      const run = { epoch: term.epoch };
      runs.push(run);
      signal.addEventListener('abort', () => {
        run.abortedAt = performance.now();
        run.deadline = term.deadline;
        run.reason = signal.reason;
        resolve();
      }, { once: true });
    }),
  });
  await waitFor(() => runs.length === 2, 20_000, 'the term on the second node');
  assert.deepEqual(runs.map((r) => r.epoch), [20n, 25n]);
  assert.ok(runs[0].abortedAt < runs[0].deadline, `aborted at ${runs[0].abortedAt}, deadline ${runs[0].deadline}`);
  assert.equal(runs[0].reason.name, 'AbortError');
  assert.ok(a.streams[0].requests.some((r) => r.request === 'resign'), 'resigned on the lapsed stream');
  const lost = rec.events.find((e) => e.type === 'lost');
  assert.deepEqual([lost.epoch, lost.reason], [20n, 'EXPIRED']);
  assert.ok(rec.events.some((e) => e.type === 'failover' && e.address === na.address));
  await c.resign();
  client.close();
});

test('a broken stream aborts the work at once and campaigns again on the next address', { timeout: 20_000 }, async () => {
  const a = scripted((st, req) => {
    leaderScript({ epoch: 30 })(st, req);
    if (req.request === 'ping' && !st.broke) {
      st.broke = true;
      setTimeout(() => st.fail(grpc.status.UNAVAILABLE, 'shutting down'), 200);
    }
  });
  const b = scripted(leaderScript({ epoch: 31 }));
  const na = await serve({ Campaign: a.handler });
  const nb = await serve({ Campaign: b.handler });
  const client = new ElectionClient([na.address, nb.address], fast);
  const rec = recorder();
  const runs = [];
  const c = client.campaign({
    election: 'jobs', candidateId: 'c1', onEvent: rec.onEvent,
    work: (term, signal) => new Promise((resolve) => {
      runs.push(term.epoch);
      signal.addEventListener('abort', resolve, { once: true });
    }),
  });
  await waitFor(() => runs.length === 2, 10_000, 'the term on the second node');
  assert.deepEqual(runs, [30n, 31n]);
  const lost = rec.events.find((e) => e.type === 'lost');
  assert.deepEqual([lost.epoch, lost.reason], [30n, 'DISCONNECTED']);
  const failover = rec.events.find((e) => e.type === 'failover');
  assert.equal(failover.address, na.address);
  assert.match(failover.reason, /UNAVAILABLE: shutting down/);
  await c.resign();
  client.close();
});

test('onLoss stop: a Lost ends the campaign after the ack and a resignation', { timeout: 20_000 }, async () => {
  const node = scripted((st, req) => {
    leaderScript({ epoch: 40 })(st, req);
    if (req.request === 'ping' && !st.lostSent) {
      st.lostSent = true;
      setTimeout(() => st.send({ lost: { epoch: '40', reason: LOSS('PREEMPTED'), detail: 'c9 has priority 5' } }), 200);
    }
  });
  const srv = await serve({ Campaign: node.handler });
  const client = new ElectionClient([srv.address], fast);
  const c = client.campaign({
    election: 'jobs', candidateId: 'c1', onLoss: 'stop',
    work: (term, signal) => new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true })),
  });
  assert.deepEqual(await c.done, { reason: 'lost', lastEpoch: 40n });
  const kinds = node.streams[0].requests.map((r) => r.request);
  assert.deepEqual(kinds.filter((k) => k === 'ack' || k === 'resign'), ['ack', 'resign']);
  assert.equal(node.streams[0].requests.find((r) => r.request === 'ack').ack.epoch, '40');
  client.close();
});

test('the work returning resigns and ends the campaign; the work failing rejects done with its error', { timeout: 20_000 }, async () => {
  const node = scripted(leaderScript({ epoch: 50 }));
  const srv = await serve({ Campaign: node.handler });
  const client = new ElectionClient([srv.address], fast);
  const ok = client.campaign({ election: 'jobs', candidateId: 'c1', work: async () => 'done' });
  assert.deepEqual(await ok.done, { reason: 'returned', lastEpoch: 50n });
  assert.ok(node.streams[0].requests.some((r) => r.request === 'resign'));
  const boom = new Error('boom');
  const bad = client.campaign({ election: 'jobs', candidateId: 'c2', work: async () => { throw boom; } });
  await assert.rejects(bad.done, (e) => e === boom);
  assert.ok(node.streams[1].requests.some((r) => r.request === 'resign'));
  client.close();
});

test('proclaim: the new value revision; a refusal and "not leading" are ElectdError', { timeout: 20_000 }, async () => {
  const node = scripted((st, req) => {
    leaderScript({ epoch: 60 })(st, req);
    if (req.request === 'proclaim') {
      if (Buffer.from(req.proclaim.value).toString() === 'bad') st.send({ refused: { request: 'proclaim', reason: 'epoch 59 is not the current term' } });
      else st.send({ proclaimed: { epoch: req.proclaim.epoch, valueRevision: '3' } });
    }
  });
  const srv = await serve({ Campaign: node.handler });
  const client = new ElectionClient([srv.address], fast);
  let leading;
  const c = client.campaign({
    election: 'jobs', candidateId: 'c1',
    work: (term, signal) => new Promise((resolve) => { leading = true; signal.addEventListener('abort', resolve, { once: true }); }),
  });
  await assert.rejects(c.proclaim('early'), (e) => e instanceof ElectdError && e.code === grpc.status.FAILED_PRECONDITION);
  await waitFor(() => leading, 10_000, 'leading');
  assert.equal(await c.proclaim('v2'), 3n);
  const p = node.streams[0].requests.find((r) => r.request === 'proclaim').proclaim;
  assert.equal(p.epoch, '60');
  await assert.rejects(c.proclaim('bad'), (e) => e instanceof ElectdError && e.code === grpc.status.FAILED_PRECONDITION &&
    e.details === 'epoch 59 is not the current term' && !e.noNodeAnswered);
  await c.resign();
  client.close();
});

test('failover on UNAVAILABLE; another status rejects done at once; no node at all: noNodeAnswered', { timeout: 20_000 }, async () => {
  const down = await serve(); // Campaign: UNAVAILABLE
  const refusing = await serve({ Campaign: (call) => call.on('data', () => call.emit('error', { code: grpc.status.ALREADY_EXISTS, details: 'c1 already campaigns in jobs' })) });
  const client = new ElectionClient([down.address, refusing.address], fast);
  const rec = recorder();
  const c = client.campaign({ election: 'jobs', candidateId: 'c1', onEvent: rec.onEvent, work: async () => {} });
  await assert.rejects(c.done, (e) => e instanceof ElectdError && e.code === grpc.status.ALREADY_EXISTS &&
    e.addresses[0] === refusing.address && !e.noNodeAnswered);
  assert.equal(rec.events[0].type, 'failover');
  assert.equal(rec.events[0].address, down.address);
  client.close();

  const nobody = new ElectionClient([await deadAddress(), down.address], fast);
  const n = nobody.campaign({ election: 'jobs', candidateId: 'c1', work: async () => {} });
  await assert.rejects(n.done, (e) => e instanceof ElectdError && e.noNodeAnswered && e.addresses.length === 2);
  nobody.close();
});

test('close() cancels the stream at once and ends the work; client.close() closes campaigns', { timeout: 20_000 }, async () => {
  const node = scripted(leaderScript({ epoch: 70 }));
  const srv = await serve({ Campaign: node.handler });
  const client = new ElectionClient([srv.address], fast);
  let started;
  let aborted;
  const c = client.campaign({
    election: 'jobs', candidateId: 'c1',
    work: (term, signal) => new Promise((resolve) => {
      started = true;
      signal.addEventListener('abort', () => { aborted = true; resolve(); }, { once: true });
    }),
  });
  await waitFor(() => started, 10_000, 'leading');
  client.close();
  assert.deepEqual(await c.done, { reason: 'closed', lastEpoch: 70n });
  assert.equal(aborted, true);
  await waitFor(() => node.streams[0].cancelled, 5000, 'the node to see the cancel');
  assert.ok(!node.streams[0].requests.some((r) => r.request === 'resign'));
});

test('the caller\'s signal resigns', { timeout: 20_000 }, async () => {
  const node = scripted(leaderScript({ epoch: 80 }));
  const srv = await serve({ Campaign: node.handler });
  const client = new ElectionClient([srv.address], fast);
  const stop = new AbortController();
  const c = client.campaign({
    election: 'jobs', candidateId: 'c1', signal: stop.signal,
    work: (term, signal) => new Promise((resolve) => {
      signal.addEventListener('abort', resolve, { once: true });
      stop.abort();
    }),
  });
  assert.deepEqual(await c.done, { reason: 'resigned', lastEpoch: 80n });
  assert.ok(node.streams[0].requests.some((r) => r.request === 'resign'));
  client.close();
});

test('campaign() checks its options', () => {
  const client = new ElectionClient(['127.0.0.1:1']);
  const work = async () => {};
  try {
    assert.throws(() => client.campaign({ candidateId: 'c', work }), TypeError);
    assert.throws(() => client.campaign({ election: 'e', work }), TypeError);
    assert.throws(() => client.campaign({ election: 'e', candidateId: 'c' }), /work is needed/);
    assert.throws(() => client.campaign({ election: 'e', candidateId: 'c', work, onLoss: 'retry' }), TypeError);
    assert.throws(() => client.campaign({ election: 'e', candidateId: 'c', work, priority: 2 ** 31 }), RangeError);
    assert.throws(() => client.campaign({ election: 'e', candidateId: 'c', work, pingIntervalMs: 0 }), RangeError);
    assert.throws(() => client.campaign({ election: 'e', candidateId: 'c', work, value: 5 }), TypeError);
    assert.throws(() => client.campaign({ election: 'e', candidateId: 'c', work, bogus: 1 }), /unknown option 'bogus'/);
  } finally {
    client.close();
  }
});

// --- the unary calls and the election option ---

test('resign(election, epoch) and listElections(); election on getLeader and listNodes', async () => {
  const seen = {};
  const srv = await serve({
    Resign: (c, cb) => { seen.resign = c.request; cb(null, { leader: { node: { id: 'c1', value: Buffer.from('v'), valueRevision: '2', priority: 4, hostId: 'n1' }, epoch: c.request.epoch }, responderId: 'n1' }); },
    ListElections: (c, cb) => cb(null, { elections: [{ name: 'a', candidates: 2 }, { name: 'b', candidates: 0 }], responderId: 'n1' }),
    GetLeader: (c, cb) => { seen.get = c.request.election; cb(null, { leader: { node: { id: 'c1' }, epoch: '9' }, responderId: 'n1' }); },
    ListNodes: (c, cb) => { seen.list = c.request.election; cb(null, { nodes: [{ id: 'c1', neverLead: true }], epoch: '9', responderId: 'n1' }); },
  });
  const client = new ElectionClient([srv.address], fast);
  try {
    const r = await client.resign('jobs', 4294967302n);
    assert.deepEqual({ ...seen.resign }, { election: 'jobs', epoch: '4294967302' });
    assert.equal(r.leader.epoch, 4294967302n);
    assert.equal(r.leader.node.value.toString(), 'v');
    assert.equal(r.leader.node.valueRevision, 2n);
    assert.equal(r.leader.node.priority, 4);
    assert.equal(r.leader.node.hostId, 'n1');
    assert.deepEqual((await client.listElections()).elections, [{ name: 'a', candidates: 2 }, { name: 'b', candidates: 0 }]);
    await client.getLeader({ election: 'jobs' });
    assert.equal(seen.get, 'jobs');
    await client.getLeader();
    assert.equal(seen.get, '');
    const nodes = await client.listNodes({}, { election: 'jobs' });
    assert.equal(seen.list, 'jobs');
    assert.equal(nodes.nodes[0].neverLead, true);
    await assert.rejects(client.resign('', 5), TypeError);
    await assert.rejects(client.resign('jobs', 0), RangeError);
    await assert.rejects(client.resign('jobs', -1), RangeError);
    assert.throws(() => client.watchLeader({ election: 5 }), TypeError);
    await assert.rejects(client.getLeader({ electon: 'x' }), TypeError);
  } finally {
    client.close();
  }
});

test('watchLeader({ election }): VACANT keeps the stream; a proclaimed value in the same epoch is news, a repeat is not', { timeout: 20_000 }, async () => {
  const l = (epoch, rev) => ({ state: 'LEADER_STATE_ELECTED', leader: { node: { id: 'c1', valueRevision: String(rev) }, epoch: String(epoch) }, responderId: 'n1' });
  const node = await serve({
    WatchLeader: (c) => {
      c.write({ state: 'LEADER_STATE_VACANT', responderId: 'n1' });
      c.write(l(5, 0));
      c.write(l(5, 0));
      c.write(l(5, 1));
      c.write({ state: 'LEADER_STATE_VACANT', responderId: 'n1' });
      c.write(l(6, 0));
    },
  });
  const client = new ElectionClient([node.address], fast);
  const seen = [];
  const failovers = [];
  for await (const leader of client.watchLeader({ election: 'jobs', onFailover: (a, r) => failovers.push(r) })) {
    seen.push(`${leader.epoch}/${leader.node.valueRevision}`);
    if (seen.length === 3) break;
  }
  client.close();
  assert.deepEqual(seen, ['5/0', '5/1', '6/0']);
  assert.deepEqual(failovers, []);
  assert.deepEqual(node.watchElections, ['jobs']);
});

// --- the example program ---

test('CLI campaign: one line per event, log lines while leading, SIGTERM resigns and exits 0', { timeout: 30_000 }, async () => {
  const { spawn } = await import('node:child_process');
  const { mkdtempSync, readFileSync, existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const node = scripted((st, req) => {
    leaderScript({ epoch: 90 })(st, req);
    if (req.request === 'ping' && !st.lostAfter) {
      // Lead 90 for a while, lose it (PREEMPTED), then lead 95.
      st.lostAfter = setTimeout(() => {
        st.silent = true;
        st.send({ lost: { epoch: '90', reason: LOSS('PREEMPTED'), detail: 'c9 has a higher priority' } });
      }, 500);
    } else if (req.request === 'ack') {
      st.epoch = 95;
      st.silent = false;
    }
  });
  const srv = await serve({ Campaign: node.handler });
  const log = join(mkdtempSync(join(tmpdir(), 'electd-campaign-')), 'log');
  const bin = fileURLToPath(new URL('../bin/electd-client.js', import.meta.url));
  const p = spawn(process.execPath, [bin, 'campaign', 'jobs', 'c1', '--value', 'v', '--priority', '2', srv.address],
    { env: { ...process.env, ELECTD_CAMPAIGN_LOG: log } });
  let out = '';
  p.stdout.on('data', (d) => { out += d; });
  p.stderr.on('data', () => {});
  await waitFor(() => out.includes('leading epoch=95') && existsSync(log) && readFileSync(log, 'utf8').includes('95 c1'), 20_000, 'the second term');
  p.kill('SIGTERM');
  const code = await new Promise((resolve) => p.on('close', resolve));
  assert.equal(code, 0);
  assert.deepEqual(out.trim().split('\n'), ['queued position=1', 'leading epoch=90', 'lost epoch=90 reason=preempted', 'leading epoch=95', 'lost epoch=95 reason=resigned', 'stopped']);
  const lines = readFileSync(log, 'utf8').trim().split('\n');
  assert.ok(lines.every((l) => l === '90 c1' || l === '95 c1'), lines.join('|'));
  assert.equal(lines.findIndex((l) => l === '95 c1') > lines.lastIndexOf('90 c1'), true);
  const start = node.streams[0].requests[0].start;
  assert.equal(start.priority, 2);
  assert.ok(node.streams[0].requests.some((r) => r.request === 'resign'));
});
