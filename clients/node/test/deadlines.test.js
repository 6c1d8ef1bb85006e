// The connect deadline (a black-holed address; TCP accepted but never a word of HTTP/2) and
// HTTP/2 keepalive (a frozen node), against real sockets on 127.0.0.1. Bounds are the
// contract's (2 s, 6 s) plus generous margins: two shared cores.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ElectionClient } from '../src/index.js';
import { serve, silentTcp, blackHole, noBlackHole, childNode, leader, elected, collect, waitFor } from './helpers.js';

const MARGIN_MS = 3000;

test('connect deadline: a black-holed first address is left after 2 s (unary)', { skip: noBlackHole, timeout: 30_000 }, async () => {
  const hole = await blackHole();
  const good = await serve({ GetLeader: (c, cb) => cb(null, { leader: leader('n2', 7), responderId: 'n2' }) });
  // A long call deadline: what cuts the attempt short must be the connect deadline.
  const client = new ElectionClient([hole, good.address], { callTimeoutMs: 30_000 });
  try {
    const t = performance.now();
    assert.equal((await client.getLeader()).responderId, 'n2');
    const ms = performance.now() - t;
    assert.ok(ms >= 1500 && ms < 2000 + MARGIN_MS, `answered after ${ms} ms`);
  } finally {
    client.close();
  }
});

test('connect deadline: a black-holed first address is left after 2 s (watch)', { skip: noBlackHole, timeout: 30_000 }, async () => {
  const hole = await blackHole();
  const good = await serve({ WatchLeader: (c) => c.write(elected('n2', 7)) });
  const client = new ElectionClient([hole, good.address], { firstMessageTimeoutMs: 60_000 });
  const w = collect(client, {}, { onLeader: () => w.stop() });
  await w.done;
  client.close();
  assert.deepEqual(w.seen.map((l) => l.id), ['n2']);
  assert.deepEqual(w.failovers.map((f) => [f.address, f.reason]),
    [[hole, 'UNAVAILABLE: connect deadline exceeded: no TCP connection within 2000 ms']]);
  assert.ok(w.seen[0].at < 2000 + MARGIN_MS, `first leader after ${w.seen[0].at} ms`);
});

test('connect deadline covers the HTTP/2 handshake: TCP accepted, never a word (unary and watch)', { timeout: 30_000 }, async () => {
  const silent = await silentTcp();
  const good = await serve({
    GetLeader: (c, cb) => cb(null, { leader: leader('n2', 7), responderId: 'n2' }),
    WatchLeader: (c) => c.write(elected('n2', 7)),
  });
  let client = new ElectionClient([silent.address, good.address], { callTimeoutMs: 30_000 });
  try {
    const t = performance.now();
    assert.equal((await client.getLeader()).responderId, 'n2');
    const ms = performance.now() - t;
    assert.ok(ms >= 1500 && ms < 2000 + MARGIN_MS, `answered after ${ms} ms`);
    assert.ok(silent.sockets >= 1);
  } finally {
    client.close();
  }
  client = new ElectionClient([silent.address, good.address], { firstMessageTimeoutMs: 60_000 });
  const w = collect(client, {}, { onLeader: () => w.stop() });
  await w.done;
  client.close();
  assert.deepEqual(w.failovers.map((f) => [f.address, f.reason]),
    [[silent.address, 'UNAVAILABLE: connect deadline exceeded: TCP connected but no HTTP/2 response within 2000 ms']]);
  assert.ok(w.seen[0].at < 2000 + MARGIN_MS, `first leader after ${w.seen[0].at} ms`);
});

test('connectTimeoutMs sets the deadline; each try is a fresh connection, the stuck one closed', { timeout: 30_000 }, async () => {
  const silent = await silentTcp();
  const client = new ElectionClient([silent.address], { connectTimeoutMs: 300, callTimeoutMs: 30_000 });
  try {
    for (let i = 1; i <= 2; i++) {
      const t = performance.now();
      await assert.rejects(client.getLeader(), (e) => e.noNodeAnswered &&
        e.details === 'connect deadline exceeded: TCP connected but no HTTP/2 response within 300 ms' &&
        e.message.includes(silent.address));
      assert.ok(performance.now() - t < 300 + MARGIN_MS, `try ${i} took ${performance.now() - t} ms`);
      // The stuck connection is closed, not left to linger.
      await waitFor(() => silent.closed >= i, 2000, `connection ${i} to be closed by the client`);
    }
    assert.ok(silent.sockets >= 2, `${silent.sockets} connections`);
  } finally {
    client.close();
  }
});

test('keepalive: a watch leaves a frozen node (SIGSTOP) within 6 s', { timeout: 30_000 }, async (t) => {
  const frozen = await childNode('n1', 5);
  const good = await serve({ WatchLeader: (c) => c.write(elected('n2', 7)) });
  const client = new ElectionClient([frozen.address, good.address]);
  let stoppedAt;
  const w = collect(client, {}, {
    onLeader: (l) => {
      if (l.node.id === 'n1') {
        // Let the stream settle (a keepalive ping or two answered), then freeze the node.
        setTimeout(() => { frozen.process.kill('SIGSTOP'); stoppedAt = performance.now(); }, 3500);
      } else {
        w.stop();
      }
    },
  });
  await w.done;
  client.close();
  frozen.process.kill('SIGKILL');
  assert.deepEqual(w.seen.map((l) => l.id), ['n1', 'n2']);
  assert.equal(w.failovers.length, 1);
  const left = w.started + w.failovers[0].at - stoppedAt;
  t.diagnostic(`left the frozen node ${left} ms after SIGSTOP: ${w.failovers[0].reason}`);
  assert.equal(w.failovers[0].address, frozen.address);
  assert.match(w.failovers[0].reason, /^UNAVAILABLE: /);
  assert.ok(left < 6000 + MARGIN_MS, `left ${left} ms after SIGSTOP`);
});
