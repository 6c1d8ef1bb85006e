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
} from '@electd/client';
import type {
  ElectionClientOptions,
  FailoverHook,
  GetLeaderResponse,
  Leader,
  ListNodesResponse,
  Node,
  WatchLeaderOptions,
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
