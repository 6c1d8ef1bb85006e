// Failover, epoch filtering and cancellation against scripted servers on 127.0.0.1.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as electd from '../src/index.js';
import { ElectionClient, ElectdError, validateAddress, loadElectdV1 } from '../src/index.js';
import { Backoff } from '../src/backoff.js';

const { ElectionService } = loadElectdV1();
const servers = [];
after(() => servers.forEach((s) => s.forceShutdown()));

const unavailable = (cb) => cb({ code: grpc.status.UNAVAILABLE, details: 'no session' });

/** Starts a scripted node; handlers default to UNAVAILABLE / an empty, ended stream. */
async function serve(handlers = {}) {
  const node = { calls: 0, minEpochs: [] };
  const server = new grpc.Server();
  server.addService(ElectionService.service, {
    GetLeader: (call, cb) => {
      node.calls++;
      (handlers.GetLeader ?? ((c, k) => unavailable(k)))(call, cb);
    },
    ListNodes: (call, cb) => {
      node.calls++;
      (handlers.ListNodes ?? ((c, k) => unavailable(k)))(call, cb);
    },
    WatchLeader: (call) => {
      node.calls++;
      node.minEpochs.push(call.request.minEpoch);
      (handlers.WatchLeader ?? ((c) => c.end()))(call);
    },
  });
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  servers.push(server);
  node.address = `127.0.0.1:${port}`;
  return node;
}

/** An address where nothing listens. */
async function deadAddress() {
  const s = createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return `127.0.0.1:${port}`;
}

const leader = (id, epoch) => ({ node: { id, address: `${id}:7001`, sequence: '1' }, epoch: String(epoch) });
const elected = (id, epoch) => ({ state: 'LEADER_STATE_ELECTED', leader: leader(id, epoch), responderId: id });
const fast = { backoff: { initialMs: 10, maxMs: 100 } };

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

test('an error other than UNAVAILABLE/DEADLINE_EXCEEDED is returned at once', async () => {
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

test('watch resumes with min_epoch and never repeats or goes back', async () => {
  const first = await serve({ WatchLeader: (c) => { c.write(elected('n1', 5)); c.end(); } });
  const unknown = await serve({
    WatchLeader: (c) => c.write({ state: 'LEADER_STATE_UNKNOWN', reason: 'disconnected from ZooKeeper', responderId: 'n9' }),
  });
  const second = await serve({
    WatchLeader: (c) => {
      c.write(elected('n1', 5)); // already reported
      c.write(elected('n0', 3)); // a lagging view: must never be reported
      c.write(elected('n2', 7));
    },
  });
  const client = new ElectionClient([first.address, await deadAddress(), unknown.address, second.address], fast);
  const stop = new AbortController();
  const seen = [];
  const failovers = [];
  const done = (async () => {
    for await (const l of client.watchLeader({ signal: stop.signal, onFailover: (a, r) => failovers.push(r) })) {
      seen.push(l.epoch);
      if (l.epoch === 7n) setTimeout(() => stop.abort(), 200); // give a repeat time to show up
    }
  })();
  await done;
  client.close();
  assert.deepEqual(seen, [5n, 7n]);
  assert.deepEqual(first.minEpochs, ['0']);
  assert.equal(unknown.minEpochs[0], '5');
  assert.equal(second.minEpochs[0], '5');
  assert.ok(failovers.some((r) => r.includes('disconnected from ZooKeeper')), failovers.join('; '));
});

test('leaving the loop cancels the stream on the node', async () => {
  let cancelled;
  const wasCancelled = new Promise((resolve) => { cancelled = resolve; });
  const node = await serve({ WatchLeader: (c) => { c.on('cancelled', cancelled); c.write(elected('n1', 1)); } });
  const client = new ElectionClient([node.address], fast);
  for await (const l of client.watchLeader()) {
    assert.equal(l.epoch, 1n);
    break;
  }
  await wasCancelled;
  client.close();
});

test('close() ends a running watch', async () => {
  const node = await serve({ WatchLeader: (c) => c.write(elected('n1', 1)) });
  const client = new ElectionClient([node.address], fast);
  const seen = [];
  for await (const l of client.watchLeader()) {
    seen.push(l.epoch);
    setTimeout(() => client.close(), 50);
  }
  assert.deepEqual(seen, [1n]);
});

test('watch throws when no node is reachable in the first round', async () => {
  const client = new ElectionClient([await deadAddress(), await deadAddress()], fast);
  await assert.rejects(async () => {
    for await (const l of client.watchLeader()) assert.fail(`unexpected ${l}`);
  }, (e) => e instanceof ElectdError && e.noNodeAnswered);
  client.close();
});

test('backoff doubles to the cap with jitter', () => {
  const b = new Backoff();
  for (const base of [50, 100, 200, 400, 800, 1600, 2000, 2000]) {
    const ms = b.next();
    assert.ok(ms >= base * 0.8 - 1 && ms <= Math.min(2000, base * 1.2), `${base} -> ${ms}`);
  }
  b.reset();
  assert.ok(b.next() <= 60);
});

test('addresses are checked', () => {
  for (const ok of ['127.0.0.1:7001', '[::1]:7001', 'node-1.example:1']) validateAddress(ok);
  for (const bad of ['', 'host', ':7001', 'host:', 'host:0', 'host:65536', '::1:7001', 'h:p']) {
    assert.throws(() => validateAddress(bad), TypeError, bad);
  }
});

test('the constructor validates every address', () => {
  assert.throws(() => new ElectionClient(['127.0.0.1:7001', 'no-port']), (e) => e instanceof TypeError && /no-port/.test(e.message));
  assert.throws(() => new ElectionClient([]), TypeError);
});

test('the package exports the contract names', () => {
  assert.deepEqual(Object.keys(electd).sort(),
    ['DEFAULT_CALL_TIMEOUT_MS', 'ElectdError', 'ElectionClient', 'loadElectdV1', 'protoDir', 'validateAddress']);
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

test('ElectdError from a watch: rejection and no node answered', async () => {
  const rejecting = await serve({ WatchLeader: (c) => c.emit('error', { code: grpc.status.UNIMPLEMENTED, details: 'nope' }) });
  let client = new ElectionClient([rejecting.address], fast);
  try {
    await assert.rejects(async () => {
      for await (const l of client.watchLeader()) assert.fail(`unexpected ${l}`);
    }, (e) => e instanceof ElectdError && !e.noNodeAnswered && e.code === grpc.status.UNIMPLEMENTED &&
      e.details === 'nope' && e.addresses.length === 1 && e.addresses[0] === rejecting.address);
  } finally {
    client.close();
  }
  const a = await deadAddress();
  const b = await deadAddress();
  client = new ElectionClient([a, b], fast);
  try {
    await assert.rejects(async () => {
      for await (const l of client.watchLeader()) assert.fail(`unexpected ${l}`);
    }, (e) => e instanceof ElectdError && e.noNodeAnswered && e.code === grpc.status.UNAVAILABLE &&
      typeof e.details === 'string' && !/Resolution note/.test(e.details) &&
      e.addresses.length === 2 && e.addresses[0] === a && e.addresses[1] === b);
  } finally {
    client.close();
  }
});

test('ElectdError without a gRPC status counts as no node answered', () => {
  const e = new ElectdError('no electd node answered', { addresses: ['h:1'] });
  assert.equal(e.code, undefined);
  assert.equal(e.details, undefined);
  assert.equal(e.noNodeAnswered, true);
  assert.equal(new ElectdError('x', { addresses: ['h:1'], code: grpc.status.DEADLINE_EXCEEDED }).noNodeAnswered, true);
  assert.equal(new ElectdError('x', { addresses: ['h:1'], code: grpc.status.NOT_FOUND }).noNodeAnswered, false);
});

test('CLI: usage errors exit 2, unreachable nodes exit 1, SIGTERM during watch exits 0', async () => {
  const bin = fileURLToPath(new URL('../bin/electd-client.js', import.meta.url));
  const run = (args, { onStdout } = {}) => new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args]);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; onStdout?.(p, out); });
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (code) => resolve({ code, out, err }));
  });
  assert.equal((await run([])).code, 2);
  assert.equal((await run(['leader'])).code, 2);
  assert.equal((await run(['--bogus', 'leader', '127.0.0.1:1'])).code, 2);
  assert.equal((await run(['leader', 'nohost'])).code, 2);
  const dead = await deadAddress();
  const r = await run(['--json', 'leader', dead]);
  assert.equal(r.code, 1);
  assert.match(r.err, new RegExp(`no electd node answered \\(tried ${dead}\\)`));

  const node = await serve({
    GetLeader: (c, cb) => cb(null, { leader: leader('n1', '4294967302'), responderId: 'n1' }),
    ListNodes: (c, cb) => cb(null, {
      nodes: [
        { id: 'n1', address: '127.0.0.1:7001', sequence: '0', isLeader: true, watches: '' },
        { id: 'n2', address: '127.0.0.1:7002', sequence: '1', watches: 'electd-x-0000000000' },
      ],
      epoch: '4294967302',
      responderId: 'n2',
    }),
    WatchLeader: (c) => c.write(elected('n1', '4294967302')),
  });
  assert.deepEqual(await run(['leader', '--json', node.address]), {
    code: 0, out: '{"id":"n1","address":"n1:7001","epoch":4294967302}\n', err: '',
  });
  assert.deepEqual(await run(['--json', 'nodes', node.address]), {
    code: 0,
    out: '{"id":"n1","address":"127.0.0.1:7001","sequence":0,"is_leader":true,"watches":""}\n' +
      '{"id":"n2","address":"127.0.0.1:7002","sequence":1,"is_leader":false,"watches":"electd-x-0000000000"}\n',
    err: '',
  });
  const w = await run(['--json', 'watch', node.address], { onStdout: (p) => p.kill('SIGTERM') });
  assert.deepEqual(w, { code: 0, out: '{"id":"n1","address":"n1:7001","epoch":4294967302}\n', err: '' });
});
