// The example program: exact --json lines, exit codes, the failover lines on stderr, and
// SIGTERM/SIGINT during watch (exit 0 within a second, also while connecting).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { serve, deadAddress, silentTcp, blackHole, noBlackHole, leader, elected, waitFor } from './helpers.js';

const bin = fileURLToPath(new URL('../bin/electd-client.js', import.meta.url));

/** Runs the CLI; onStdout/onStderr(p, text) see the output so far. Resolves {code, signal, out, err}. */
function run(args, { onStdout, onStderr } = {}) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args]);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; onStdout?.(p, out); });
    p.stderr.on('data', (d) => { err += d; onStderr?.(p, err); });
    const killer = setTimeout(() => p.kill('SIGKILL'), 30_000);
    p.on('close', (code, signal) => {
      clearTimeout(killer);
      resolve({ code, signal, out, err });
    });
  });
}

test('CLI: usage errors exit 2', async () => {
  for (const args of [[], ['leader'], ['--bogus', 'leader', '127.0.0.1:1'], ['leader', 'nohost'], ['lead', '127.0.0.1:1']]) {
    const r = await run(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.match(r.err, /^electd-client: /);
  }
  const help = await run(['--help']);
  assert.equal(help.code, 0);
  assert.match(help.out, /^usage: electd-client/);
});

test('CLI: no node answered exits 1, naming the addresses and the last error', async () => {
  const dead = await deadAddress();
  const r = await run(['--json', 'leader', dead]);
  assert.equal(r.code, 1);
  assert.equal(r.out, '');
  assert.match(r.err, new RegExp(`no electd node answered \\(tried ${dead}\\); last error: UNAVAILABLE`));
  const w = await run(['--json', 'watch', dead, await deadAddress()]);
  assert.equal(w.code, 1);
  assert.match(w.err, /no electd node answered/);
});

test('CLI: exact --json lines for leader, nodes and watch (option before or after the command)', async () => {
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
  const leaderRun = await run(['leader', '--json', node.address]);
  assert.equal(leaderRun.code, 0);
  assert.equal(leaderRun.out, '{"id":"n1","address":"n1:7001","epoch":4294967302}\n');
  assert.equal(leaderRun.err, '');
  const nodesRun = await run(['--json', 'nodes', node.address]);
  assert.equal(nodesRun.code, 0);
  assert.equal(nodesRun.out,
    '{"id":"n1","address":"127.0.0.1:7001","sequence":0,"is_leader":true,"watches":""}\n' +
    '{"id":"n2","address":"127.0.0.1:7002","sequence":1,"is_leader":false,"watches":"electd-x-0000000000"}\n');
  assert.equal(nodesRun.err, '');
  const watchRun = await run(['--json', 'watch', node.address], { onStdout: (p) => p.kill('SIGTERM') });
  assert.equal(watchRun.code, 0);
  assert.equal(watchRun.out, '{"id":"n1","address":"n1:7001","epoch":4294967302}\n');
  assert.equal(watchRun.err, '');
});

test('CLI: without --json, watch says on stderr why it leaves a node', async () => {
  const dead = await deadAddress();
  const node = await serve({ WatchLeader: (c) => c.write(elected('n1', 5)) });
  const r = await run(['watch', dead, node.address], { onStdout: (p) => p.kill('SIGINT') });
  assert.equal(r.code, 0);
  assert.match(r.out, /leader n1 at n1:7001, epoch 5\n$/);
  assert.match(r.err, new RegExp(`^electd-client: leaving ${dead}: UNAVAILABLE: `));
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  for (const kind of ['black-holed', 'silent']) {
    test(`CLI: ${signal} while watch is connecting to a ${kind} address exits 0 within a second`,
      { skip: kind === 'black-holed' && noBlackHole, timeout: 30_000 }, async (t) => {
        // Addresses that take the connect deadline (2 s) each, so that the first round lasts a
        // few seconds, and the signal comes in the middle of a pending connection. The first is
        // a silent node: its accepting TCP shows that the program is up, handlers in place.
        const probe = await silentTcp();
        let addresses;
        let pending;
        if (kind === 'black-holed') {
          addresses = [probe.address, await blackHole(), await blackHole()];
          pending = 3000; // after 2 s it gives up on the probe: now it connects to a black hole
        } else {
          addresses = [probe.address, (await silentTcp()).address];
          pending = 500;
        }
        const up = async () => {
          await waitFor(() => probe.sockets > 0, 15_000, 'the program to connect');
          await new Promise((resolve) => setTimeout(resolve, pending));
        };
        const p = spawn(process.execPath, [bin, '--json', 'watch', ...addresses]);
        t.after(() => p.kill('SIGKILL'));
        let err = '';
        p.stderr.on('data', (d) => { err += d; });
        await up();
        const sentAt = performance.now();
        p.kill(signal);
        const [code, sig] = await new Promise((resolve) => p.on('exit', (...a) => resolve(a)));
        const ms = performance.now() - sentAt;
        assert.equal(sig, null);
        assert.equal(code, 0, err);
        assert.ok(ms < 1000 + 1000, `exited ${ms} ms after ${signal}`);
      });
  }
}
