#!/usr/bin/env node
// The example program of clients/README.md: leader, nodes and watch, each taking one or
// more HOST:PORT addresses, with --json for one JSON object per line; and for named
// elections campaign (the campaign helper, printing one line per event), resign and elections.
import { appendFileSync } from 'node:fs';
import { ElectionClient, ElectdError, validateAddress } from '../src/index.js';

const USAGE = `usage: electd-client [--json] [--tls-ca FILE] [--tls-cert FILE --tls-key FILE] [--tls-server-name NAME] <command> ADDR [ADDR...]

commands:
  leader   [--election NAME] ADDR...   print the current leader
  nodes    [--election NAME] ADDR...   print the live members, in election order (the leader first)
  watch    [--election NAME] ADDR...   print the leader each time it changes, until interrupted
  campaign ELECTION ID ADDR...         campaign as candidate ID until interrupted (SIGINT/SIGTERM
                                       resign, exit 0); prints queued position=P, leading epoch=E,
                                       lost epoch=E reason=R, stopped; while leading appends
                                       "E ID" lines every 100 ms to $ELECTD_CAMPAIGN_LOG if set
      --value V  --priority N  --label KEY=VALUE  --never-lead  --stop-on-loss
  resign   ELECTION EPOCH ADDR...      end the term EPOCH of ELECTION (an operator's resign)
  elections ADDR...                    list the named elections

options (before or after the command):
  --election NAME         a named election (leader, nodes, watch; default: the nodes' own)
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

const COMMANDS = new Set(['leader', 'nodes', 'watch', 'campaign', 'resign', 'elections']);
// How many leading words (before the addresses) each command takes.
const POSITIONAL = { campaign: 2, resign: 2 };
// Options that take a value, besides the TLS ones; --label repeats.
const VALUE_FLAGS = new Set(['--election', '--value', '--priority', '--label']);
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
  const opts = { labels: {} };
  let neverLead = false;
  let stopOnLoss = false;
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
    } else if (VALUE_FLAGS.has(flag)) {
      let value;
      if (eq > 0) value = arg.slice(eq + 1);
      else if (i + 1 < argv.length) value = argv[++i];
      else return usage(`${flag} needs a value`);
      if (flag === '--label') {
        const at = value.indexOf('=');
        if (at <= 0) return usage(`--label: want KEY=VALUE, got '${value}'`);
        opts.labels[value.slice(0, at)] = value.slice(at + 1);
      } else opts[flag.slice(2)] = value;
    } else if (arg === '--never-lead') neverLead = true;
    else if (arg === '--stop-on-loss') stopOnLoss = true;
    else if (arg === '--json') json = true;
    else if (arg === '-h' || arg === '--help') {
      line(USAGE);
      return 0;
    } else if (arg.startsWith('-')) return usage(`unknown option ${arg}`);
    else if (command === undefined) command = arg;
    else addresses.push(arg);
  }
  if (command === undefined) return usage('missing command');
  if (!COMMANDS.has(command)) return usage(`unknown command ${command}`);
  const words = addresses.splice(0, POSITIONAL[command] ?? 0);
  if (words.length < (POSITIONAL[command] ?? 0)) {
    return usage(command === 'campaign' ? 'campaign needs ELECTION ID ADDR...' : 'resign needs ELECTION EPOCH ADDR...');
  }
  if (addresses.length === 0) return usage(`${command} needs at least one address`);
  if (opts.election !== undefined && !['leader', 'nodes', 'watch'].includes(command)) {
    return usage(`--election is for leader, nodes and watch (${command} takes the election as its first word)`);
  }
  if (command !== 'campaign' && (opts.value !== undefined || opts.priority !== undefined || neverLead || stopOnLoss ||
    Object.keys(opts.labels).length > 0)) {
    return usage('--value, --priority, --label, --never-lead and --stop-on-loss are for campaign');
  }
  let priority = 0;
  if (opts.priority !== undefined) {
    priority = /^-?[0-9]+$/.test(opts.priority) ? Number(opts.priority) : NaN;
    if (!Number.isInteger(priority) || priority < -(2 ** 31) || priority > 2 ** 31 - 1) {
      return usage(`--priority: want a 32-bit integer, got '${opts.priority}'`);
    }
  }
  if (command === 'resign' && !/^[0-9]+$/.test(words[1])) return usage(`resign: EPOCH must be a positive integer, got '${words[1]}'`);
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
    const election = opts.election === undefined ? {} : { election: opts.election };
    if (command === 'campaign') {
      return await campaign(client, {
        election: words[0], candidateId: words[1], value: opts.value ?? '', labels: opts.labels, priority, neverLead,
        onLoss: stopOnLoss ? 'stop' : 'recampaign',
      }, json);
    } else if (command === 'resign') {
      const { leader, responderId } = await client.resign(words[0], BigInt(words[1]));
      line(json ? leaderJson(leader)
        : `resigned ${leader.node.id}, epoch ${leader.epoch} (answered by ${responderId})`);
    } else if (command === 'elections') {
      const { elections, responderId } = await client.listElections();
      if (json) {
        for (const e of elections) line(`{"name":${str(e.name)},"candidates":${e.candidates}}`);
      } else {
        line(`${'ELECTION'.padEnd(32)} CANDIDATES`);
        for (const e of elections) line(`${e.name.padEnd(32)} ${String(e.candidates).padStart(10)}`);
        line(`(answered by ${responderId})`);
      }
    } else if (command === 'leader') {
      const { leader, responderId } = await client.getLeader(election);
      line(json ? leaderJson(leader)
        : `leader ${leader.node.id} at ${leader.node.address}, epoch ${leader.epoch} (answered by ${responderId})`);
    } else if (command === 'nodes') {
      const { nodes, epoch, responderId } = await client.listNodes({}, election);
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
      for await (const leader of client.watchLeader({ signal: stop.signal, onFailover, ...election })) {
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

/**
 * The campaign command: one line per event on stdout (queued position=P, leading epoch=E,
 * lost epoch=E reason=R, stopped), failovers on stderr; the work appends "E ID" lines to
 * $ELECTD_CAMPAIGN_LOG every 100 ms while leading. SIGINT/SIGTERM resign, then exit 0.
 */
async function campaign(client, options, json) {
  const logFile = process.env.ELECTD_CAMPAIGN_LOG || undefined;
  const stop = new AbortController();
  process.once('SIGINT', () => stop.abort());
  process.once('SIGTERM', () => stop.abort());
  let lastPosition; // one queued line per place in the queue (the library also reports who it waits for)
  const onEvent = (e) => {
    if (e.type !== 'queued' && e.type !== 'failover' && e.type !== 'refused') lastPosition = undefined;
    if (e.type === 'queued' && e.position === lastPosition) return;
    if (e.type === 'queued') lastPosition = e.position;
    if (e.type === 'queued') line(json ? `{"event":"queued","position":${e.position}}` : `queued position=${e.position}`);
    else if (e.type === 'leading') line(json ? `{"event":"leading","epoch":${e.epoch}}` : `leading epoch=${e.epoch}`);
    else if (e.type === 'lost') line(json ? `{"event":"lost","epoch":${e.epoch},"reason":${str(String(e.reason).toLowerCase())}}` : `lost epoch=${e.epoch} reason=${String(e.reason).toLowerCase()}`);
    else if (e.type === 'failover') process.stderr.write(`electd-client: leaving ${e.address}: ${e.reason}\n`);
    else if (e.type === 'refused') process.stderr.write(`electd-client: ${e.address} refused ${e.request}: ${e.reason}\n`);
  };
  // While leading: one line every 100 ms, each written only while the term is still ours
  // (the signal is aborted a safety margin before the deadline).
  const work = (term, signal) => new Promise((resolve) => {
    const tick = () => {
      if (signal.aborted || performance.now() >= term.deadline) return resolve();
      if (logFile) appendFileSync(logFile, `${term.epoch} ${options.candidateId}\n`);
      timer = setTimeout(tick, 100);
    };
    let timer;
    signal.addEventListener('abort', () => { clearTimeout(timer); resolve(); }, { once: true });
    tick();
  });
  const c = client.campaign({ ...options, work, onEvent, signal: stop.signal });
  await c.done;
  line(json ? '{"event":"stopped"}' : 'stopped');
  return 0;
}

process.exitCode = await main(process.argv.slice(2));
// close() has released every connection, so the process ends by itself now; should anything
// still hold it, the exit status is settled and nothing is left to print.
setTimeout(() => process.exit(), 500).unref();
