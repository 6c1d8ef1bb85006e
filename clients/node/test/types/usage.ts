// A typed use of the public API, checked by `tsc --noEmit -p test/types` (test/types.test.js).
// It imports the package by its own name, so package.json's "types"/"exports" are checked too.
// Each @ts-expect-error line must be a type error: the declarations are strict where it matters.
import {
  ElectionClient,
  ElectdError,
  validateAddress,
  DEFAULT_CALL_TIMEOUT_MS,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_FIRST_MESSAGE_TIMEOUT_MS,
  loadElectdV1,
  protoDir,
  Campaign,
  DEFAULT_PING_INTERVAL_MS,
  MIN_SAFETY_MARGIN_MS,
  SAFETY_MARGIN_FRACTION,
} from '@electd/client';
import type {
  ElectionClientOptions,
  FailoverHook,
  GetLeaderResponse,
  Leader,
  ListNodesResponse,
  Node,
  WatchLeaderOptions,
  CampaignEvent,
  CampaignOptions,
  CampaignResult,
  ListElectionsResponse,
  ResignResponse,
  Term,
} from '@electd/client';
import { status } from '@grpc/grpc-js';

const options: ElectionClientOptions = {
  callTimeoutMs: DEFAULT_CALL_TIMEOUT_MS,
  connectTimeoutMs: DEFAULT_CONNECT_TIMEOUT_MS,
  firstMessageTimeoutMs: DEFAULT_FIRST_MESSAGE_TIMEOUT_MS,
  backoff: { initialMs: 50, maxMs: 2000 },
};
const tlsOptions: ElectionClientOptions = {
  tlsCa: '/etc/electd/ca.pem',
  tlsCert: '/etc/electd/client.pem',
  tlsKey: '/etc/electd/client.key',
  tlsServerName: 'electd.internal',
};
// @ts-expect-error TLS options are file paths, not contents
const badTls: ElectionClientOptions = { tlsCa: Buffer.from('') };
void [tlsOptions, badTls];
validateAddress('127.0.0.1:7001');
const client = new ElectionClient(['127.0.0.1:7001', '[::1]:7002'], options);
const addresses: string[] = client.addresses;

async function main(): Promise<bigint> {
  const got: GetLeaderResponse = await client.getLeader();
  const epoch: bigint = got.leader.epoch;
  const who: string = got.leader.node.id;
  const listed: ListNodesResponse = await client.listNodes({ zone: 'a' });
  const first: Node | undefined = listed.nodes[0];
  const seq: bigint | undefined = first?.sequence;
  const when: Date | null = got.leader.electedAt;

  const stop = new AbortController();
  const hook: FailoverHook = (address: string, reason: string) => console.error(address, reason);
  const watchOptions: WatchLeaderOptions = { afterEpoch: epoch, onFailover: hook, signal: stop.signal };
  let last = 0n;
  for await (const leader of client.watchLeader(watchOptions)) {
    const l: Leader = leader;
    last = l.epoch;
    if (l.node.isLeader && l.node.labels['zone'] === 'a') break;
  }
  client.watchLeader({ afterEpoch: 5 });
  client.watchLeader({ afterEpoch: '4294967302' });
  client.watchLeader();
  const it = client.watchLeader({});
  await it.return(undefined);

  try {
    await client.getLeader();
  } catch (err) {
    if (err instanceof ElectdError) {
      const code: status | undefined = err.code;
      const none: boolean = err.noNodeAnswered;
      const tried: string[] = err.addresses;
      const details: string | undefined = err.details;
      if (code === status.INVALID_ARGUMENT && !none) console.error(tried, details, err.message);
    }
  }
  // Named elections.
  const named: GetLeaderResponse = await client.getLeader({ election: 'jobs' });
  const members: ListNodesResponse = await client.listNodes({}, { election: 'jobs' });
  const rev: bigint = named.leader.node.valueRevision;
  const value: Buffer = named.leader.node.value;
  const resigned: ResignResponse = await client.resign('jobs', named.leader.epoch);
  const elections: ListElectionsResponse = await client.listElections();
  const count: number | undefined = elections.elections[0]?.candidates;
  client.watchLeader({ election: 'jobs', afterEpoch: 3n });
  const campaignOptions: CampaignOptions = {
    election: 'jobs',
    candidateId: 'worker-1',
    value: 'http://10.0.0.1:8080',
    labels: { zone: 'a' },
    priority: 1,
    onLoss: 'stop',
    pingIntervalMs: DEFAULT_PING_INTERVAL_MS,
    signal: stop.signal,
    onEvent: (e: CampaignEvent) => {
      if (e.type === 'leading') console.log(e.epoch + 1n, e.deadline - MIN_SAFETY_MARGIN_MS * SAFETY_MARGIN_FRACTION);
      if (e.type === 'lost') console.log(e.reason, e.detail);
      if (e.type === 'queued') console.log(e.position, e.waitingFor);
    },
    work: async (term: Term, signal: AbortSignal) => {
      const left: number = term.deadline - performance.now();
      const fence: bigint = term.epoch;
      if (!signal.aborted) console.log(left, fence);
    },
  };
  const c: Campaign = client.campaign(campaignOptions);
  const newRev: bigint = await c.proclaim(new Uint8Array([1]));
  const current: Term | null = c.term;
  const result: CampaignResult = await c.resign();
  const lastEpoch: bigint = (await c.done).lastEpoch;
  c.close();
  void [members, rev, value, resigned, count, newRev, current, result.reason, lastEpoch];
  void [addresses, who, seq, when, loadElectdV1().electd, protoDir().length];
  client.close();
  return last;
}
void main();

// --- what must not type-check ---
// @ts-expect-error the resume epoch is afterEpoch (the highest epoch already handled)
client.watchLeader({ minEpoch: 5n });
// @ts-expect-error an epoch is a bigint, not a number
const n: number = (await client.getLeader()).leader.epoch;
// @ts-expect-error options are named in milliseconds
new ElectionClient(['h:1'], { connectTimeout: 2 });
// @ts-expect-error the hook gets (address, reason)
client.watchLeader({ onFailover: (address: number) => address });
// @ts-expect-error close() returns nothing to await on
client.close().then(() => {});
// @ts-expect-error ElectdError.code is a grpc status, not a string
const c: string = new ElectdError('x', { addresses: [] }).code;
void [n, c];
// @ts-expect-error a campaign needs an election and a candidate id
client.campaign({ work: async () => {} });
// @ts-expect-error onLoss is 'recampaign' or 'stop'
client.campaign({ election: 'e', candidateId: 'c', work: async () => {}, onLoss: 'retry' });
// @ts-expect-error the term's epoch is a bigint
client.campaign({ election: 'e', candidateId: 'c', work: async (t: Term) => { const x: number = t.epoch; return x; } });
// @ts-expect-error a Campaign is made by client.campaign()
new Campaign();
// @ts-expect-error the election option goes in the options, not as the label selector
client.listNodes('jobs');
