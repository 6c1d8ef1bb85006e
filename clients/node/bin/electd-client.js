#!/usr/bin/env node
// The example program of clients/README.md: leader, nodes and watch, each taking one or
// more HOST:PORT addresses, with --json for one JSON object per line.
import { ElectionClient, ElectdError, validateAddress } from '../src/index.js';

const USAGE = `usage: electd-client [--json] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME] <command> ADDR [ADDR...]

commands:
  leader   print the current leader
  nodes    print the live members, in election order (the leader first)
  watch    print the leader each time it changes, until interrupted

options (before or after the command):
  --json                  print one JSON object per line
  --tls-ca FILE           PEM CA certificates to verify the nodes with (default with
                          TLS: the system's roots)
  --tls-cert FILE         PEM client certificate chain for mutual TLS (with --tls-key)
  --tls-key FILE          PEM private key of --tls-cert
  --tls-server-name NAME  name the nodes' certificates must carry (and SNI), instead of
                          each ADDR's host
  -h, --help              print this help
Any --tls-* option turns TLS on; without them the client speaks plaintext.

ADDR is the HOST:PORT of an electd node; any node answers for the cluster.
exit status: 0 ok (watch: also on SIGINT/SIGTERM), 1 no node answered, 2 bad usage`;

const COMMANDS = new Set(['leader', 'nodes', 'watch']);
// The TLS flags, named as the electd command line's, and the library options they set.
const TLS_FLAGS = {
  '--tls-ca': 'tlsCa',
  '--tls-cert': 'tlsCert',
  '--tls-key': 'tlsKey',
  '--tls-server-name': 'tlsServerName',
};
/** A library message with the flags' names for the options' (tlsCert: ... -> --tls-cert: ...). */
const flagNames = (message) =>
  Object.entries(TLS_FLAGS).reduce((m, [flag, option]) => m.replace(new RegExp(`\\b${option}\\b`, 'g'), flag), message);

// stdout is a pipe or file in tests; both are written synchronously on POSIX, so each line is
// out before the next event (and before process.exit).
const line = (s) => process.stdout.write(s + '\n');
const str = (s) => JSON.stringify(s);
// int64 values are BigInt: printed as exact JSON integers, which JSON.stringify cannot do.
const leaderJson = (l) => `{"id":${str(l.node.id)},"address":${str(l.node.address)},"epoch":${l.epoch}}`;

function usage(problem) {
  process.stderr.write(`electd-client: ${problem}\n${USAGE.split('\n')[0]}  (--help for more)\n`);
  return 2;
}

async function main(argv) {
  let json = false;
  let command;
  const addresses = [];
  const tls = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    if (Object.hasOwn(TLS_FLAGS, flag)) {
      let value;
      if (eq > 0) value = arg.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else return usage(`${flag} needs a value`);
      if (value === '') return usage(`${flag}: empty value`);
      tls[TLS_FLAGS[flag]] = value;
    } else if (arg === '--json') json = true;
    else if (arg === '-h' || arg === '--help') {
      line(USAGE);
      return 0;
    } else if (arg.startsWith('-')) return usage(`unknown option ${arg}`);
    else if (command === undefined) command = arg;
    else addresses.push(arg);
  }
  if (command === undefined) return usage('missing command');
  if (!COMMANDS.has(command)) return usage(`unknown command ${command}`);
  if (addresses.length === 0) return usage(`${command} needs at least one address`);
  try {
    addresses.forEach(validateAddress);
  } catch (err) {
    return usage(err.message);
  }
  if ((tls.tlsCert === undefined) !== (tls.tlsKey === undefined)) {
    return usage(tls.tlsCert === undefined ? '--tls-key: needs --tls-cert too' : '--tls-cert: needs --tls-key too');
  }

  let client;
  try {
    client = new ElectionClient(addresses, tls);
  } catch (err) {
    if (!(err instanceof ElectdError)) throw err;
    // A TLS file that cannot be read or used.
    process.stderr.write(`electd-client: ${flagNames(err.message)}\n`);
    return 2;
  }
  try {
    if (command === 'leader') {
      const { leader, responderId } = await client.getLeader();
      line(json ? leaderJson(leader)
        : `leader ${leader.node.id} at ${leader.node.address}, epoch ${leader.epoch} (answered by ${responderId})`);
    } else if (command === 'nodes') {
      const { nodes, epoch, responderId } = await client.listNodes();
      if (json) {
        for (const n of nodes) {
          line(`{"id":${str(n.id)},"address":${str(n.address)},"sequence":${n.sequence},` +
            `"is_leader":${n.isLeader},"watches":${str(n.watches)}}`);
        }
      } else {
        const row = (...c) => `${c[0].padEnd(12)} ${c[1].padEnd(22)} ${c[2].padStart(10)}  ${c[3].padEnd(6)}  ${c[4]}`.trimEnd();
        line(row('ID', 'ADDRESS', 'SEQUENCE', 'LEADER', 'WATCHES'));
        for (const n of nodes) line(row(n.id, n.address, String(n.sequence), n.isLeader ? 'yes' : '', n.watches));
        line(`epoch ${epoch} (answered by ${responderId})`);
      }
    } else {
      const stop = new AbortController();
      // Ctrl-C / SIGTERM end the watch at once, also while a connection attempt or a backoff
      // is pending (the node sees the stream cancelled), and the program exits 0 instead of
      // dying with 130/143.
      process.once('SIGINT', () => stop.abort());
      process.once('SIGTERM', () => stop.abort());
      // stdout gone (say, `watch | head -1`): nobody is listening any more.
      process.stdout.once('error', () => stop.abort());
      const onFailover = json ? undefined
        : (address, reason) => process.stderr.write(`electd-client: leaving ${address}: ${reason}\n`);
      for await (const leader of client.watchLeader({ signal: stop.signal, onFailover })) {
        line(json ? leaderJson(leader)
          : `${new Date().toISOString()} leader ${leader.node.id} at ${leader.node.address}, epoch ${leader.epoch}`);
      }
    }
    return 0;
  } catch (err) {
    if (!(err instanceof ElectdError)) throw err;
    process.stderr.write(`electd-client: ${err.message}\n`);
    return 1;
  } finally {
    client.close();
  }
}

process.exitCode = await main(process.argv.slice(2));
// close() has released every connection, so the process ends by itself now; should anything
// still hold it, the exit status is settled and nothing is left to print.
setTimeout(() => process.exit(), 500).unref();
