// Scripted electd nodes and broken addresses on 127.0.0.1 for the tests (not a test file:
// `npm test` runs test/*.test.js only).
import { after } from 'node:test';
import { createServer } from 'node:net';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { loadElectdV1 } from '../src/index.js';

const { ElectionService } = loadElectdV1();
const cleanups = [];
after(async () => {
  for (const fn of cleanups.reverse()) await fn();
});

export const unavailable = (cb) => cb({ code: grpc.status.UNAVAILABLE, details: 'no session' });

/**
 * Starts a scripted node (a grpc-js server on port 0); handlers default to UNAVAILABLE / an
 * empty, ended stream. node.minEpochs records the min_epoch of every WatchLeader call.
 */
export async function serve(handlers = {}) {
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
      node.watchElections = [...(node.watchElections ?? []), call.request.election];
      (handlers.WatchLeader ?? ((c) => c.end()))(call);
    },
    Campaign: (call) => {
      node.calls++;
      (handlers.Campaign ?? ((c) => c.emit('error', { code: grpc.status.UNAVAILABLE, details: 'no session' })))(call);
    },
    Resign: (call, cb) => {
      node.calls++;
      (handlers.Resign ?? ((c, k) => unavailable(k)))(call, cb);
    },
    ListElections: (call, cb) => {
      node.calls++;
      (handlers.ListElections ?? ((c, k) => unavailable(k)))(call, cb);
    },
  });
  const port = await new Promise((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (e, p) => (e ? reject(e) : resolve(p))));
  cleanups.push(() => server.forceShutdown());
  node.address = `127.0.0.1:${port}`;
  node.server = server;
  return node;
}

/** An address where nothing listens: connections are refused at once. */
export async function deadAddress() {
  const s = createServer();
  await new Promise((resolve) => s.listen(0, '127.0.0.1', resolve));
  const { port } = s.address();
  await new Promise((resolve) => s.close(resolve));
  return `127.0.0.1:${port}`;
}

/**
 * A node that accepts TCP but never says a word (a stuck process): a net.Server that takes
 * every connection and never writes. silent.sockets counts the connections it got,
 * silent.closed how many of them the client has closed.
 */
export async function silentTcp() {
  const silent = { sockets: 0, closed: 0 };
  const open = new Set();
  const server = createServer((socket) => {
    silent.sockets++;
    open.add(socket);
    socket.on('error', () => {});
    socket.resume(); // reads (and drops) what the client sends, so that its close is seen
    socket.on('close', () => {
      silent.closed++;
      open.delete(socket);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  silent.address = `127.0.0.1:${server.address().port}`;
  cleanups.push(() => {
    for (const s of open) s.destroy();
    return new Promise((resolve) => server.close(resolve));
  });
  return silent;
}

let python;
function findPython() {
  if (python === undefined) {
    python = null;
    for (const candidate of ['python3', 'python']) {
      if (spawnSync(candidate, ['-c', 'import socket'], { stdio: 'ignore' }).status === 0) {
        python = candidate;
        break;
      }
    }
  }
  return python;
}

// A listening socket whose accept queue is full and never drained: the kernel drops every
// further SYN, so a connect() to it hangs as to a black-holed address (Node itself always
// accepts, hence a small Python helper). It exits when its stdin closes.
const BLACK_HOLE = `
import socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(0)
port = s.getsockname()[1]
fill = []
for _ in range(8):
    c = socket.socket()
    c.setblocking(False)
    try:
        c.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    fill.append(c)
time.sleep(0.3)
print(port, flush=True)
sys.stdin.read()
`;

/** Why black-hole tests are skipped here, or false if they can run. */
export const noBlackHole = findPython() ? false : 'needs python3 on PATH for the black-hole helper';

/** A black-holed address on 127.0.0.1: TCP connection attempts to it never complete. */
export async function blackHole() {
  const child = spawn(findPython(), ['-c', BLACK_HOLE], { stdio: ['pipe', 'pipe', 'inherit'] });
  cleanups.push(() => {
    child.stdin.end();
    child.kill('SIGKILL');
  });
  const [line] = await once(createInterface({ input: child.stdout }), 'line');
  return `127.0.0.1:${line.trim()}`;
}

/**
 * A scripted node in a child process, so that it can be frozen with SIGSTOP. Its WatchLeader
 * sends elected(id, epoch) and keeps the stream open; GetLeader answers the same leader.
 * Returns { address, process }.
 */
export async function childNode(id, epoch) {
  const script = fileURLToPath(new URL('./fixtures/node-server.js', import.meta.url));
  const child = spawn(process.execPath, [script, id, String(epoch)], { stdio: ['pipe', 'pipe', 'inherit'] });
  cleanups.push(() => {
    child.kill('SIGKILL'); // also ends a stopped process
  });
  const [line] = await once(createInterface({ input: child.stdout }), 'line');
  return { address: `127.0.0.1:${line.trim()}`, process: child };
}

export const leader = (id, epoch) => ({ node: { id, address: `${id}:7001`, sequence: '1' }, epoch: String(epoch) });
export const elected = (id, epoch) => ({ state: 'LEADER_STATE_ELECTED', leader: leader(id, epoch), responderId: id });
export const unknown = (id, reason) => ({ state: 'LEADER_STATE_UNKNOWN', reason, responderId: id });

/** Fast backoff for tests that go round the addresses many times. */
export const fast = { backoff: { initialMs: 10, maxMs: 100 } };

/** Collects a watch until stop() or the watch ends; returns { seen, failovers, done, stop }. */
export function collect(client, options = {}, { onLeader } = {}) {
  const controller = new AbortController();
  const seen = [];
  const failovers = [];
  const started = performance.now();
  const done = (async () => {
    for await (const l of client.watchLeader({
      signal: controller.signal,
      onFailover: (address, reason) => failovers.push({ address, reason, at: performance.now() - started }),
      ...options,
    })) {
      seen.push({ id: l.node.id, epoch: l.epoch, at: performance.now() - started });
      onLeader?.(l, seen);
    }
  })();
  return { seen, failovers, done, stop: () => controller.abort(), started };
}

/** Resolves when cond() is true, polling; rejects after ms. */
export async function waitFor(cond, ms, what) {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
