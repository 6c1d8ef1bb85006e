// Unary calls (GetLeader, ListNodes), the error type and address checks, against scripted
// servers on 127.0.0.1.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import * as electd from '../src/index.js';
import { ElectionClient, ElectdError, validateAddress } from '../src/index.js';
import { Backoff } from '../src/backoff.js';
import { serve, deadAddress, silentTcp, leader, fast } from './helpers.js';

test('getLeader fails over past dead and unavailable nodes, keeping int64 exact', async () => {
  const down = await serve();
  const good = await serve({
    GetLeader: (call, cb) => cb(null, { leader: leader('n3', '9007199254740993'), responderId: 'n3' }),
  });
  const client = new ElectionClient([await deadAddress(), down.address, good.address], fast);
  try {
    const r = await client.getLeader();
    assert.equal(r.leader.epoch, 9007199254740993n); // 2^53 + 1: a Number would round it
    assert.equal(r.responderId, 'n3');
    assert.equal(down.calls, 1);
    await client.getLeader(); // starts at the node that answered last
    assert.equal(down.calls, 1);
    assert.equal(good.calls, 2);
  } finally {
    client.close();
  }
});

test('listNodes: election order, int64 as BigInt, the selector reaches the node', async () => {
  let selector;
  const node = await serve({
    ListNodes: (call, cb) => {
      selector = call.request.labelSelector;
      cb(null, {
        nodes: [
          { id: 'n1', address: 'a:1', sequence: '0', isLeader: true, sessionId: '72057594037927937' },
          { id: '', sequence: '1', watches: 'electd-x-0000000000', recordError: 'unreadable record' },
        ],
        epoch: '4294967302',
        responderId: 'n1',
      });
    },
  });
  const client = new ElectionClient([node.address]);
  try {
    const r = await client.listNodes({ zone: 'a' });
    assert.deepEqual(selector, { zone: 'a' });
    assert.equal(r.epoch, 4294967302n);
    assert.deepEqual(r.nodes.map((n) => [n.id, n.sequence, n.isLeader]), [['n1', 0n, true], ['', 1n, false]]);
    assert.equal(r.nodes[0].sessionId, 72057594037927937n);
    assert.equal(r.nodes[1].recordError, 'unreadable record');
  } finally {
    client.close();
  }
});

test('RESOURCE_EXHAUSTED (a full node) fails over to the next address', async () => {
  const full = await serve({ GetLeader: (c, cb) => cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'max streams' }) });
  const good = await serve({ GetLeader: (c, cb) => cb(null, { leader: leader('n2', 7), responderId: 'n2' }) });
  const client = new ElectionClient([full.address, good.address]);
  try {
    const r = await client.getLeader();
    assert.equal(r.responderId, 'n2');
    assert.equal(full.calls, 1);
  } finally {
    client.close();
  }
});

test('every node full: no node answered, with RESOURCE_EXHAUSTED as the last error', async () => {
  const full = () => serve({ GetLeader: (c, cb) => cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'max streams' }) });
  const a = await full();
  const b = await full();
  const client = new ElectionClient([a.address, b.address]);
  try {
    await assert.rejects(client.getLeader(), (e) =>
      e instanceof ElectdError && e.noNodeAnswered && e.code === grpc.status.RESOURCE_EXHAUSTED &&
      e.details === 'max streams' && e.addresses.length === 2 && a.calls === 1 && b.calls === 1);
  } finally {
    client.close();
  }
});

test('an error other than UNAVAILABLE/DEADLINE_EXCEEDED/RESOURCE_EXHAUSTED is returned at once', async () => {
  const rejecting = await serve({ ListNodes: (c, cb) => cb({ code: grpc.status.INVALID_ARGUMENT, details: 'bad' }) });
  const good = await serve();
  const client = new ElectionClient([rejecting.address, good.address], fast);
  try {
    await assert.rejects(client.listNodes({ '': 'x' }), (e) =>
      e instanceof ElectdError && e.code === grpc.status.INVALID_ARGUMENT && !e.noNodeAnswered);
    assert.equal(good.calls, 0);
  } finally {
    client.close();
  }
});

test('a unary call with no answer in time: DEADLINE_EXCEEDED, next address', async () => {
  const slow = await serve({ GetLeader: () => {} }); // never answers
  const good = await serve({ GetLeader: (c, cb) => cb(null, { leader: leader('n2', 7), responderId: 'n2' }) });
  const client = new ElectionClient([slow.address, good.address], { callTimeoutMs: 300 });
  try {
    assert.equal((await client.getLeader()).responderId, 'n2');
    assert.equal(slow.calls, 1);
  } finally {
    client.close();
  }
});

test('no node answered: the error names every address and the last error', async () => {
  const a = await deadAddress();
  const b = (await serve()).address;
  const client = new ElectionClient([a, b], fast);
  try {
    await assert.rejects(client.listNodes(), (e) =>
      e.noNodeAnswered && e.message.includes(a) && e.message.includes(b) && /UNAVAILABLE/.test(e.message));
  } finally {
    client.close();
  }
});

test('ElectdError of a rejection: code, details, the one address, not noNodeAnswered', async () => {
  const dead = await deadAddress();
  const rejecting = await serve({ GetLeader: (c, cb) => cb({ code: grpc.status.PERMISSION_DENIED, details: 'go away' }) });
  const client = new ElectionClient([dead, rejecting.address], fast);
  try {
    const e = await client.getLeader().then(() => assert.fail('resolved'), (err) => err);
    assert.ok(e instanceof ElectdError && e instanceof Error);
    assert.equal(e.name, 'ElectdError');
    assert.equal(e.code, grpc.status.PERMISSION_DENIED);
    assert.equal(e.details, 'go away');
    assert.deepEqual(e.addresses, [rejecting.address]);
    assert.equal(e.noNodeAnswered, false);
    assert.equal(e.message, `${rejecting.address} rejected the call: PERMISSION_DENIED: go away`);
  } finally {
    client.close();
  }
});

test('ElectdError when no node answered: the last code and details, every address', async () => {
  const dead = await deadAddress();
  const down = await serve();
  const client = new ElectionClient([dead, down.address], fast);
  try {
    const e = await client.getLeader().then(() => assert.fail('resolved'), (err) => err);
    assert.ok(e instanceof ElectdError);
    assert.equal(e.noNodeAnswered, true);
    assert.equal(e.code, grpc.status.UNAVAILABLE); // the last attempt: down's "no session"
    assert.equal(e.details, 'no session');
    assert.deepEqual(e.addresses, [dead, down.address]);
  } finally {
    client.close();
  }
});

test('ElectdError without a gRPC status counts as no node answered', () => {
  const e = new ElectdError('no electd node answered', { addresses: ['h:1'] });
  assert.equal(e.code, undefined);
  assert.equal(e.details, undefined);
  assert.equal(e.noNodeAnswered, true);
  for (const code of [grpc.status.DEADLINE_EXCEEDED, grpc.status.RESOURCE_EXHAUSTED, grpc.status.UNAVAILABLE]) {
    assert.equal(new ElectdError('x', { addresses: ['h:1'], code }).noNodeAnswered, true);
  }
  assert.equal(new ElectdError('x', { addresses: ['h:1'], code: grpc.status.NOT_FOUND }).noNodeAnswered, false);
});

test('close() rejects a call in flight at once, and calls after it', async () => {
  const silent = await silentTcp();
  const client = new ElectionClient([silent.address], { callTimeoutMs: 30_000, connectTimeoutMs: 30_000 });
  const pending = client.getLeader();
  await new Promise((resolve) => setTimeout(resolve, 200));
  const t = performance.now();
  client.close();
  await assert.rejects(pending, /ElectionClient is closed/);
  assert.ok(performance.now() - t < 1000, `took ${performance.now() - t} ms`);
  await assert.rejects(client.getLeader(), /ElectionClient is closed/);
  assert.throws(() => client.watchLeader(), /ElectionClient is closed/);
  client.close(); // idempotent
});

test('backoff: full jitter under a ceiling that doubles to the cap', () => {
  const b = new Backoff();
  const samples = [];
  for (const ceiling of [50, 100, 200, 400, 800, 1600, 2000, 2000]) {
    assert.equal(b.ceiling, ceiling);
    const ms = b.next();
    assert.ok(ms >= 0 && ms <= ceiling, `${ceiling} -> ${ms}`);
    samples.push(ms);
  }
  b.reset();
  assert.equal(b.ceiling, 50);
  // Full jitter: many draws under a 2 s ceiling spread over the whole range.
  const capped = new Backoff({ initialMs: 2000, maxMs: 2000 });
  const draws = Array.from({ length: 200 }, () => capped.next());
  assert.ok(Math.min(...draws) < 400 && Math.max(...draws) > 1600, `${Math.min(...draws)}..${Math.max(...draws)}`);
  assert.throws(() => new Backoff({ initialMs: 0 }), RangeError);
  assert.throws(() => new Backoff({ initialMs: 100, maxMs: 50 }), RangeError);
});

test('addresses are checked', () => {
  for (const ok of ['127.0.0.1:7001', '[::1]:7001', 'node-1.example:1']) validateAddress(ok);
  for (const bad of ['', 'host', ':7001', 'host:', 'host:0', 'host:65536', '::1:7001', 'h:p', 'a/b:1', 7001]) {
    assert.throws(() => validateAddress(bad), TypeError, String(bad));
  }
});

test('the constructor validates every address and its options', () => {
  assert.throws(() => new ElectionClient(['127.0.0.1:7001', 'no-port']), (e) => e instanceof TypeError && /no-port/.test(e.message));
  assert.throws(() => new ElectionClient([]), TypeError);
  assert.throws(() => new ElectionClient(['127.0.0.1:7001'], { connectTimeout: 5 }), /unknown option 'connectTimeout'/);
  assert.throws(() => new ElectionClient(['127.0.0.1:7001'], { connectTimeoutMs: 0 }), RangeError);
  assert.throws(() => new ElectionClient(['127.0.0.1:7001'], { callTimeoutMs: -1 }), RangeError);
  assert.throws(() => new ElectionClient(['127.0.0.1:7001'], { firstMessageTimeoutMs: Infinity }), RangeError);
  assert.throws(() => new ElectionClient(['127.0.0.1:7001'], { backoff: { initialMs: 0 } }), RangeError);
  const c = new ElectionClient(['127.0.0.1:7001', '[::1]:7002'], { connectTimeoutMs: 500, firstMessageTimeoutMs: 500 });
  assert.deepEqual(c.addresses, ['127.0.0.1:7001', '[::1]:7002']);
  c.close();
});

test('the package exports the contract names', () => {
  assert.deepEqual(Object.keys(electd).sort(), [
    'Campaign', 'DEFAULT_CALL_TIMEOUT_MS', 'DEFAULT_CONNECT_TIMEOUT_MS', 'DEFAULT_FIRST_MESSAGE_TIMEOUT_MS',
    'DEFAULT_PING_INTERVAL_MS', 'ElectdError', 'ElectionClient', 'MIN_SAFETY_MARGIN_MS', 'SAFETY_MARGIN_FRACTION',
    'loadElectdV1', 'protoDir', 'validateAddress',
  ]);
  assert.equal(electd.DEFAULT_PING_INTERVAL_MS, 500);
  assert.equal(electd.MIN_SAFETY_MARGIN_MS, 50);
  assert.equal(electd.SAFETY_MARGIN_FRACTION, 0.1);
  assert.equal(electd.DEFAULT_CALL_TIMEOUT_MS, 2000);
  assert.equal(electd.DEFAULT_CONNECT_TIMEOUT_MS, 2000);
  assert.equal(electd.DEFAULT_FIRST_MESSAGE_TIMEOUT_MS, 2000);
});
