// The TLS options (clients/README.md, "TLS") against scripted grpc-js nodes over TLS and mutual
// TLS, with the throwaway certificates of test/fixtures/tls (made by make.py there): errors at
// construction, mutual TLS, handshake failures as UNAVAILABLE and failover, and rotated files
// used by the next connection.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { ElectionClient, ElectdError, loadElectdV1 } from '../src/index.js';
import { elected, leader } from './helpers.js';

const { ElectionService } = loadElectdV1();
const fixture = (name) => fileURLToPath(new URL(`./fixtures/tls/${name}`, import.meta.url));
const CA = fixture('ca.pem');
const OTHER_CA = fixture('other-ca.pem');
const reader = { tlsCa: CA, tlsCert: fixture('reader.pem'), tlsKey: fixture('reader.key') };
const bin = fileURLToPath(new URL('../bin/electd-client.js', import.meta.url));

const scratch = mkdtempSync(join(tmpdir(), 'electd-node-tls-'));
process.on('exit', () => rmSync(scratch, { recursive: true, force: true }));

/** The CN of the certificate the client presented on this call's connection. */
function clientCn(call) {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  return cert?.subject?.CN ?? '(none)';
}

/**
 * A node over mutual TLS: its certificate `stem` (of the CA `signedBy` made), client
 * certificates of ca.pem required. GetLeader answers with the client certificate's CN as
 * responderId, WatchLeader sends n1/7 and stays open. restart() closes every connection and
 * serves again on the same port, so that the client's next call needs a new connection.
 */
async function tlsNode(stem = 'node', port = 0) {
  const server = new grpc.Server();
  server.addService(ElectionService.service, {
    GetLeader: (call, cb) => cb(null, { leader: leader('n1', 7), responderId: clientCn(call) }),
    ListNodes: (call, cb) => cb(null, { nodes: [leader('n1', 7).node], epoch: '7', responderId: clientCn(call) }),
    WatchLeader: (call) => call.write(elected('n1', 7)),
  });
  const creds = grpc.ServerCredentials.createSsl(readFileSync(CA),
    [{ private_key: readFileSync(fixture(`${stem}.key`)), cert_chain: readFileSync(fixture(`${stem}.pem`)) }], true);
  const bound = await new Promise((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, creds, (e, p) => (e ? reject(e) : resolve(p))));
  return {
    address: `127.0.0.1:${bound}`,
    stop: () => server.forceShutdown(),
    restart: async () => {
      server.forceShutdown();
      return tlsNode(stem, bound);
    },
  };
}

/** Replaces dst by a copy of src atomically, as a certificate manager does. */
function replace(src, dst) {
  copyFileSync(src, `${dst}.new`);
  renameSync(`${dst}.new`, dst);
}

/** The responderId of the first GetLeader that succeeds within a few tries. */
async function answeredBy(client) {
  let last;
  for (let i = 0; i < 20; i++) {
    try {
      return (await client.getLeader()).responderId;
    } catch (err) {
      last = err;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  throw last;
}

/** The error of constructing a client with these options. */
function captured(options) {
  try {
    new ElectionClient(['127.0.0.1:1'], options).close();
  } catch (err) {
    return err;
  }
  assert.fail('no error');
}

test('TLS: bad options are ElectdErrors at construction, naming the options and paths', () => {
  const missing = join(scratch, 'missing.pem');
  const notPem = join(scratch, 'not.pem');
  writeFileSync(notPem, 'hello\n');
  const cases = [
    [{ tlsCert: reader.tlsCert }, ['tlsCert: needs tlsKey too']],
    [{ tlsCa: CA, tlsKey: reader.tlsKey }, ['tlsKey: needs tlsCert too']],
    [{ tlsCa: missing }, [`tlsCa: cannot read ${missing}`, 'ENOENT']],
    [{ tlsCert: missing, tlsKey: reader.tlsKey }, [`tlsCert: cannot read ${missing}`]],
    [{ tlsCert: reader.tlsCert, tlsKey: missing }, [`tlsKey: cannot read ${missing}`]],
    [{ tlsCa: notPem }, [`tlsCa: no PEM certificate in ${notPem}`]],
    [{ tlsCert: fixture('foreign.pem'), tlsKey: reader.tlsKey },
      ['tlsCert, tlsKey: cannot use', fixture('foreign.pem'), reader.tlsKey]],
  ];
  for (const [options, wanted] of cases) {
    const err = captured(options);
    assert.ok(err instanceof ElectdError, String(err));
    assert.equal(err.noNodeAnswered, false);
    assert.equal(err.code, undefined);
    assert.deepEqual(err.addresses, []);
    for (const w of wanted) assert.ok(err.message.includes(w), `${err.message} lacks ${w}`);
  }
  assert.throws(() => new ElectionClient(['127.0.0.1:1'], { tlsCa: 42 }), TypeError);
  // Empty means "not given" (plaintext); only a server name is TLS with the system's roots.
  new ElectionClient(['127.0.0.1:1'], { tlsCa: '', tlsCert: '', tlsKey: '', tlsServerName: '' }).close();
  new ElectionClient(['127.0.0.1:1'], { tlsServerName: 'electd.example' }).close();
});

test('TLS: mutual TLS reads and watches; the server name is checked', async () => {
  const node = await tlsNode();
  try {
    const client = new ElectionClient([node.address], reader);
    assert.equal(await answeredBy(client), 'reader');
    const stop = new AbortController();
    for await (const l of client.watchLeader({ signal: stop.signal })) {
      assert.equal(l.node.id, 'n1');
      stop.abort();
    }
    client.close();
    const named = new ElectionClient([node.address], { ...reader, tlsServerName: 'localhost' });
    assert.equal(await answeredBy(named), 'reader');
    named.close();
  } finally {
    node.stop();
  }
});

test('TLS: a failed handshake is UNAVAILABLE, next address; none left: no node answered', async () => {
  const node = await tlsNode();
  const foreign = await tlsNode('foreign-node'); // a certificate of the other CA
  try {
    const cases = {
      plaintext: {},
      'untrusted node certificate': { ...reader, tlsCa: OTHER_CA },
      'name mismatch': { ...reader, tlsServerName: 'elsewhere.example' },
      'no client certificate': { tlsCa: CA },
      'client certificate of another CA': { tlsCa: CA, tlsCert: fixture('foreign.pem'), tlsKey: fixture('foreign.key') },
    };
    for (const [what, options] of Object.entries(cases)) {
      const client = new ElectionClient([node.address], { ...options, backoff: { initialMs: 10, maxMs: 50 } });
      try {
        const err = await client.getLeader().then(() => assert.fail(`${what}: answered`), (e) => e);
        assert.ok(err instanceof ElectdError, `${what}: ${err}`);
        assert.equal(err.code, grpc.status.UNAVAILABLE, `${what}: ${err.message}`);
        assert.equal(err.noNodeAnswered, true, what);
        const watchErr = await (async () => {
          for await (const l of client.watchLeader()) assert.fail(`${what}: watch reported ${l.node.id}`);
        })().then(() => assert.fail(`${what}: watch ended`), (e) => e);
        assert.ok(watchErr instanceof ElectdError && watchErr.noNodeAnswered, `${what}: ${watchErr}`);
        assert.equal(watchErr.code, grpc.status.UNAVAILABLE, what);
      } finally {
        client.close();
      }
    }
    const client = new ElectionClient([foreign.address, node.address], reader);
    assert.equal(await answeredBy(client), 'reader');
    client.close();
  } finally {
    node.stop();
    foreign.stop();
  }
});

test('TLS: rotated client certificate files are used by the next connection', async () => {
  let node = await tlsNode();
  const cert = join(scratch, 'client.pem');
  const key = join(scratch, 'client.key');
  replace(reader.tlsCert, cert);
  replace(reader.tlsKey, key);
  const client = new ElectionClient([node.address], { tlsCa: CA, tlsCert: cert, tlsKey: key });
  try {
    assert.equal(await answeredBy(client), 'reader');
    // Half a rotation (the new certificate, the old key) cannot be used: the one in use stays.
    replace(fixture('rotated.pem'), cert);
    node = await node.restart();
    assert.equal(await answeredBy(client), 'reader');
    // The key too: the open connection keeps its certificate, the next one has the new one.
    replace(fixture('rotated.key'), key);
    assert.equal(await answeredBy(client), 'reader');
    node = await node.restart();
    assert.equal(await answeredBy(client), 'rotated');
  } finally {
    client.close();
    node.stop();
  }
});

test('TLS: a rotated CA file verifies the next connection', async () => {
  const node = await tlsNode();
  const ca = join(scratch, 'ca.pem');
  replace(OTHER_CA, ca);
  const client = new ElectionClient([node.address], { ...reader, tlsCa: ca });
  try {
    const err = await client.getLeader().then(() => assert.fail('answered'), (e) => e);
    assert.equal(err.code, grpc.status.UNAVAILABLE, err.message);
    replace(CA, ca);
    assert.equal(await answeredBy(client), 'reader');
  } finally {
    client.close();
    node.stop();
  }
});

function runCli(args) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [bin, ...args]);
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => { out += d; });
    p.stderr.on('data', (d) => { err += d; });
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

test('CLI: --tls-* flags (also as --flag=value), their errors exit 2 naming the flags', async () => {
  const node = await tlsNode();
  try {
    const ok = await runCli(['--json', '--tls-ca', CA, `--tls-cert=${reader.tlsCert}`, 'leader', node.address,
      '--tls-key', reader.tlsKey, '--tls-server-name', 'localhost']);
    assert.equal(ok.code, 0, ok.err);
    assert.equal(ok.out, '{"id":"n1","address":"n1:7001","epoch":7}\n');
    assert.equal(ok.err, '');
    const wrongCa = await runCli(['--json', '--tls-ca', OTHER_CA, '--tls-cert', reader.tlsCert, '--tls-key', reader.tlsKey,
      'leader', node.address]);
    assert.equal(wrongCa.code, 1);
    assert.match(wrongCa.err, /no electd node answered .*UNAVAILABLE/);
  } finally {
    node.stop();
  }
  for (const [args, wanted] of [
    [['--tls-cert', reader.tlsCert, 'leader', '127.0.0.1:1'], '--tls-cert: needs --tls-key too'],
    [['--tls-key', reader.tlsKey, 'leader', '127.0.0.1:1'], '--tls-key: needs --tls-cert too'],
    [['leader', '127.0.0.1:1', '--tls-ca'], '--tls-ca needs a value'],
    [['--tls-ca', '/nonexistent/ca.pem', 'leader', '127.0.0.1:1'], '--tls-ca: cannot read /nonexistent/ca.pem'],
  ]) {
    const r = await runCli(args);
    assert.equal(r.code, 2, args.join(' '));
    assert.ok(r.err.includes(wanted), `${r.err} lacks ${wanted}`);
  }
});
