// Cancellation ends a watch at once: leaving the loop, aborting the signal or close(), also
// while a connection attempt or a backoff is pending; and close() lets the process exit.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { ElectionClient } from '../src/index.js';
import { serve, silentTcp, blackHole, noBlackHole, elected, unknown, collect, waitFor } from './helpers.js';

const PROMPT_MS = 1000; // "at once", with a margin for two shared cores

test('leaving the loop cancels the stream on the node', { timeout: 20_000 }, async () => {
  let cancelled;
  const wasCancelled = new Promise((resolve) => { cancelled = resolve; });
  const node = await serve({ WatchLeader: (c) => { c.on('cancelled', cancelled); c.write(elected('n1', 1)); } });
  const client = new ElectionClient([node.address]);
  for await (const l of client.watchLeader()) {
    assert.equal(l.epoch, 1n);
    break;
  }
  await wasCancelled;
  client.close();
});

test('close() ends a running watch', { timeout: 20_000 }, async () => {
  const node = await serve({ WatchLeader: (c) => c.write(elected('n1', 1)) });
  const client = new ElectionClient([node.address]);
  const seen = [];
  for await (const l of client.watchLeader()) {
    seen.push(l.epoch);
    setTimeout(() => client.close(), 50);
  }
  assert.deepEqual(seen, [1n]);
});

for (const kind of ['black-holed', 'silent']) {
  test(`aborting the signal while connecting to a ${kind} address ends the watch at once`, { skip: kind === 'black-holed' && noBlackHole, timeout: 20_000 }, async () => {
    const address = kind === 'black-holed' ? await blackHole() : (await silentTcp()).address;
    const client = new ElectionClient([address]);
    const w = collect(client);
    await new Promise((resolve) => setTimeout(resolve, 500)); // the connection attempt is pending
    const t = performance.now();
    w.stop();
    await w.done; // ends, does not throw
    const ms = performance.now() - t;
    client.close();
    assert.ok(ms < PROMPT_MS, `ended ${ms} ms after abort`);
    assert.deepEqual(w.failovers, []); // stopping is not a failover
  });
}

test('an already aborted signal: the watch ends before it starts', async () => {
  const node = await serve({ WatchLeader: (c) => c.write(elected('n1', 1)) });
  const client = new ElectionClient([node.address]);
  try {
    for await (const l of client.watchLeader({ signal: AbortSignal.abort() })) assert.fail(`unexpected ${l}`);
    assert.equal(node.calls, 0);
  } finally {
    client.close();
  }
});

test('close() does not wait out a backoff', { timeout: 20_000 }, async () => {
  // One node that never vouches for a leader, and a backoff of up to a minute between rounds.
  const node = await serve({ WatchLeader: (c) => c.write(unknown('n1', 'lost session')) });
  const client = new ElectionClient([node.address], { backoff: { initialMs: 60_000, maxMs: 60_000 } });
  const w = collect(client);
  await waitFor(() => w.failovers.length >= 1, 5000, 'the first round to fail');
  await new Promise((resolve) => setTimeout(resolve, 100)); // now (almost surely) in the backoff
  const t = performance.now();
  client.close();
  await w.done;
  const ms = performance.now() - t;
  assert.ok(ms < PROMPT_MS, `ended ${ms} ms after close()`);
});

test('close() closes connections still in progress (a node that accepted TCP)', { timeout: 20_000 }, async () => {
  const silent = await silentTcp();
  const client = new ElectionClient([silent.address], { connectTimeoutMs: 60_000, firstMessageTimeoutMs: 60_000 });
  const w = collect(client);
  await waitFor(() => silent.sockets === 1, 5000, 'the connection');
  client.close();
  await w.done;
  await waitFor(() => silent.closed === 1, 2000, 'the client to close its connection');
});

test('close() releases a pending connection: the process exits by itself', { skip: noBlackHole, timeout: 30_000 }, async () => {
  const hole = await blackHole();
  // A program that starts a watch on a black-holed address (the TCP handshake hangs for
  // about two minutes in the kernel), stops it and closes the client, and then just returns.
  const program = `
    import { ElectionClient } from ${JSON.stringify(new URL('../src/index.js', import.meta.url).href)};
    const client = new ElectionClient([${JSON.stringify(hole)}]);
    const stop = new AbortController();
    const done = (async () => { for await (const l of client.watchLeader({ signal: stop.signal })) console.log(l); })();
    setTimeout(async () => {
      stop.abort();
      await done;
      client.close();
      console.log('closed');
    }, 500);
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', program], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  let closedAt;
  child.stdout.on('data', (d) => {
    out += d;
    if (out.includes('closed') && !closedAt) closedAt = performance.now();
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
  const [code, signal] = await once(child, 'exit');
  clearTimeout(killer);
  assert.equal(signal, null, 'had to be killed: something kept it alive after close()');
  assert.equal(code, 0);
  assert.equal(out, 'closed\n');
  const ms = performance.now() - closedAt;
  assert.ok(ms < PROMPT_MS, `exited ${ms} ms after close()`);
});

test('close() before the iteration starts: the watch just ends', async () => {
  const node = await serve({ WatchLeader: (c) => c.write(elected('n1', 1)) });
  const client = new ElectionClient([node.address]);
  const watch = client.watchLeader({ onFailover: () => assert.fail('not a failover') });
  client.close();
  for await (const l of watch) assert.fail(`unexpected ${l}`);
  assert.equal(node.calls, 0);
});
