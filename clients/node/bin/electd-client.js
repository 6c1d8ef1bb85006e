#!/usr/bin/env node
// The example program of clients/README.md: leader, nodes and watch, each taking one or
// more HOST:PORT addresses, with --json for one JSON object per line.
import { ElectionClient, ElectdError, validateAddress } from '../src/index.js';

const USAGE = `usage: electd-client [--json] <command> ADDR [ADDR...]

commands:
  leader   print the current leader
  nodes    print the live members, in election order (the leader first)
  watch    print the leader each time it changes, until interrupted

options:
  --json      print one JSON object per line
  -h, --help  print this help

ADDR is the HOST:PORT of an electd node; any node answers for the cluster.
exit status: 0 ok (watch: also on SIGINT/SIGTERM), 1 no node answered, 2 bad usage`;

const COMMANDS = new Set(['leader', 'nodes', 'watch']);

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
  for (const arg of argv) {
    if (arg === '--json') json = true;
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

  const client = new ElectionClient(addresses);
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
