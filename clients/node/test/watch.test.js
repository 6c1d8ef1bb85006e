// watchLeader: afterEpoch and the resume epoch, the failover hook, RESOURCE_EXHAUSTED, the
// first-message deadline, backoff, errors; against scripted servers on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ElectionClient, ElectdError } from '../src/index.js';
import { serve, deadAddress, elected, unknown, fast, collect, waitFor } from './helpers.js';

test('afterEpoch: only higher epochs are reported, the node is asked for min_epoch = afterEpoch', async () => {
  // A node that ignores min_epoch: the client must still hold back 4 and 5.
  const node = await serve({ WatchLeader: (c) => { c.write(elected('n1', 4)); c.write(elected('n1', 5)); c.write(elected('n2', 6)); } });
  const client = new ElectionClient([node.address], fast);
  const w = collect(client, { afterEpoch: 5n }, { onLeader: () => setTimeout(() => w.stop(), 200) });
  await w.done;
  client.close();
  assert.deepEqual(w.seen.map((l) => l.epoch), [6n]);
  assert.deepEqual(node.minEpochs, ['5']);
});

test('afterEpoch takes a bigint, a safe integer or a decimal string; 0 by default', async () => {
  const epoch = 2n ** 62n + 5n; // above every afterEpoch below, and past 2^53
  const node = await serve({ WatchLeader: (c) => c.write(elected('n1', String(epoch))) });
  const client = new ElectionClient([node.address], fast);
  try {
    for (const [afterEpoch, want] of [[undefined, '0'], [7, '7'], ['9007199254740993', '9007199254740993'], [2n ** 62n, String(2n ** 62n)]]) {
      for await (const l of client.watchLeader(afterEpoch === undefined ? {} : { afterEpoch })) {
        assert.equal(l.epoch, epoch);
        break;
      }
      assert.equal(node.minEpochs.at(-1), want);
    }
  } finally {
    client.close();
  }
});

test('watchLeader checks its options at once: minEpoch is gone, afterEpoch must be a non-negative integer', () => {
  const client = new ElectionClient(['127.0.0.1:1']);
  try {
    assert.throws(() => client.watchLeader({ minEpoch: 5 }), (e) => e instanceof TypeError && /minEpoch/.test(e.message) && /afterEpoch/.test(e.message));
    assert.throws(() => client.watchLeader({ afterEpoch: -1 }), RangeError);
    assert.throws(() => client.watchLeader({ afterEpoch: -1n }), RangeError);
    assert.throws(() => client.watchLeader({ afterEpoch: 1.5 }), TypeError);
    assert.throws(() => client.watchLeader({ afterEpoch: 2 ** 53 }), TypeError); // not exact: pass a bigint
    assert.throws(() => client.watchLeader({ afterEpoch: '0x10' }), TypeError);
    assert.throws(() => client.watchLeader({ afterEpoch: 2n ** 63n }), RangeError);
    assert.throws(() => client.watchLeader({ onFailover: 'log' }), TypeError);
    assert.throws(() => client.watchLeader({ signal: {} }), TypeError);
  } finally {
    client.close();
  }
});

test('resume: min_epoch = last reported across failover (the node answers at once); never a repeat or a step back', async () => {
  const first = await serve({ WatchLeader: (c) => { c.write(elected('n1', 5)); c.end(); } });
  const unsure = await serve({ WatchLeader: (c) => c.write(unknown('n9', 'disconnected from ZooKeeper')) });
  const second = await serve({
    WatchLeader: (c) => {
      c.write(elected('n1', 5)); // already reported
      c.write(elected('n0', 3)); // a lagging view: must never be reported
      c.write(elected('n2', 7));
    },
  });
  const client = new ElectionClient([first.address, await deadAddress(), unsure.address, second.address], fast);
  const w = collect(client, {}, { onLeader: (l) => { if (l.epoch === 7n) setTimeout(() => w.stop(), 200); } });
  await w.done;
  client.close();
  assert.deepEqual(w.seen.map((l) => l.epoch), [5n, 7n]);
  assert.deepEqual(first.minEpochs, ['0']);
  assert.equal(unsure.minEpochs[0], '5');
  assert.equal(second.minEpochs[0], '5');
});

test('the failover hook: once per address left, with the address and the reason; not on stop', async () => {
  const dead = await deadAddress();
  const unsure = await serve({ WatchLeader: (c) => c.write(unknown('n9', 'disconnected from ZooKeeper')) });
  const ended = await serve({ WatchLeader: (c) => c.end() });
  const full = await serve({ WatchLeader: (c) => c.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'max streams' }) });
  const good = await serve({ WatchLeader: (c) => c.write(elected('n2', 7)) });
  const client = new ElectionClient([dead, unsure.address, ended.address, full.address, good.address], fast);
  const w = collect(client, {}, { onLeader: () => setTimeout(() => w.stop(), 200) });
  await w.done;
  client.close();
  assert.deepEqual(w.seen.map((l) => l.id), ['n2']);
  assert.deepEqual(w.failovers.map((f) => f.address), [dead, unsure.address, ended.address, full.address]);
  const [refused, vouch, end, exhausted] = w.failovers.map((f) => f.reason);
  assert.match(refused, /^UNAVAILABLE: /);
  assert.match(vouch, /n9 cannot vouch for a leader: disconnected from ZooKeeper/);
  assert.equal(end, 'stream ended');
  assert.equal(exhausted, 'RESOURCE_EXHAUSTED: max streams');
});

test('RESOURCE_EXHAUSTED on a watch (a full node) fails over to the next address', async () => {
  const full = await serve({ WatchLeader: (c) => c.emit('error', { code: grpc.status.RESOURCE_EXHAUSTED, details: 'max streams' }) });
  const good = await serve({ WatchLeader: (c) => c.write(elected('n2', 7)) });
  const client = new ElectionClient([full.address, good.address], fast);
  try {
    for await (const l of client.watchLeader()) {
      assert.equal(l.node.id, 'n2');
      break;
    }
    assert.equal(full.calls, 1);
  } finally {
    client.close();
  }
});

test('first-message deadline: a watch that gets nothing is left after 2 s, its stream cancelled', { timeout: 30_000 }, async () => {
  let cancelled = 0;
  const mute = await serve({ WatchLeader: (c) => c.on('cancelled', () => cancelled++) }); // never sends
  const good = await serve({ WatchLeader: (c) => c.write(elected('n2', 7)) });
  const client = new ElectionClient([mute.address, good.address]);
  const w = collect(client, {}, { onLeader: () => w.stop() });
  await w.done;
  client.close();
  assert.deepEqual(w.seen.map((l) => l.id), ['n2']);
  assert.equal(w.failovers.length, 1);
  const [{ address, reason, at }] = w.failovers;
  assert.equal(address, mute.address);
  assert.equal(reason, 'DEADLINE_EXCEEDED: no first message within 2000 ms');
  assert.ok(at >= 1500 && at < 2000 + 3000, `left after ${at} ms`);
  await waitFor(() => cancelled === 1, 2000, 'the mute node to see its stream cancelled');
});

test('firstMessageTimeoutMs sets the first-message deadline', { timeout: 30_000 }, async () => {
  const mute = await serve({ WatchLeader: () => {} });
  const good = await serve({ WatchLeader: (c) => c.write(elected('n2', 7)) });
  const client = new ElectionClient([mute.address, good.address], { firstMessageTimeoutMs: 300 });
  const w = collect(client, {}, { onLeader: () => w.stop() });
  await w.done;
  client.close();
  assert.equal(w.failovers[0].reason, 'DEADLINE_EXCEEDED: no first message within 300 ms');
  assert.ok(w.failovers[0].at < 300 + 3000, `left after ${w.failovers[0].at} ms`);
});

test('a slow stream is not cut: the deadline is for the first message only', { timeout: 30_000 }, async () => {
  const node = await serve({
    WatchLeader: (c) => {
      c.write(elected('n1', 5));
      setTimeout(() => c.write(elected('n2', 6)), 700);
    },
  });
  const client = new ElectionClient([node.address], { firstMessageTimeoutMs: 300 });
  const w = collect(client, {}, { onLeader: (l) => { if (l.epoch === 6n) w.stop(); } });
  await w.done;
  client.close();
  assert.deepEqual(w.seen.map((l) => l.epoch), [5n, 6n]);
  assert.deepEqual(w.failovers, []);
  assert.equal(node.calls, 1);
});

test('rounds without a leader back off instead of spinning', async () => {
  const unsure = await serve({ WatchLeader: (c) => c.write(unknown('n9', 'lost session')) });
  // A node that sends its state and hangs up at once, over and over, is not a healthy stream.
  const flappy = await serve({ WatchLeader: (c) => { c.write(elected('n1', 5)); c.end(); } });
  for (const node of [unsure, flappy]) {
    const client = new ElectionClient([node.address]); // default backoff: 50 ms doubling to 2 s
    const w = collect(client);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    w.stop();
    await w.done;
    client.close();
    // Without backoff this would be hundreds of streams; with it, a handful.
    assert.ok(node.calls >= 2 && node.calls <= 25, `${node.calls} streams in 1.5 s`);
  }
});

test('other status codes reach the caller as ElectdError', async () => {
  const rejecting = await serve({ WatchLeader: (c) => c.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'nope' }) });
  const good = await serve({ WatchLeader: (c) => c.write(elected('n2', 7)) });
  const client = new ElectionClient([rejecting.address, good.address], fast);
  try {
    await assert.rejects(async () => {
      for await (const l of client.watchLeader()) assert.fail(`unexpected ${l}`);
    }, (e) => e instanceof ElectdError && !e.noNodeAnswered && e.code === grpc.status.UNIMPLEMENTED &&
      e.details === 'nope' && e.addresses.length === 1 && e.addresses[0] === rejecting.address &&
      e.message === `${rejecting.address} rejected WatchLeader: UNIMPLEMENTED: nope`);
    assert.equal(good.calls, 0);
  } finally {
    client.close();
  }
});

test('no node answered in the first round: ElectdError naming every address', async () => {
  const a = await deadAddress();
  const b = await deadAddress();
  const client = new ElectionClient([a, b], fast);
  const failovers = [];
  try {
    await assert.rejects(async () => {
      for await (const l of client.watchLeader({ onFailover: (address) => failovers.push(address) })) assert.fail(`unexpected ${l}`);
    }, (e) => e instanceof ElectdError && e.noNodeAnswered && e.code === grpc.status.UNAVAILABLE &&
      typeof e.details === 'string' && !/Resolution note/.test(e.details) &&
      e.addresses.length === 2 && e.addresses[0] === a && e.addresses[1] === b);
    assert.deepEqual(failovers, [a, b]);
  } finally {
    client.close();
  }
});

test('once a node has answered, the watch keeps trying until a leader comes back', { timeout: 30_000 }, async () => {
  let up = false;
  const node = await serve({ WatchLeader: (c) => c.write(up ? elected('n1', 9) : unknown('n1', 'joining')) });
  const client = new ElectionClient([node.address, await deadAddress()], fast);
  const w = collect(client, {}, { onLeader: () => w.stop() });
  await waitFor(() => w.failovers.length >= 6, 5000, 'a few rounds');
  up = true;
  await w.done;
  client.close();
  assert.deepEqual(w.seen.map((l) => l.epoch), [9n]);
});
