// ElectionClient: failover across electd nodes for GetLeader, ListNodes and WatchLeader.
import * as grpc from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadElectdV1 } from './proto.js';
import { Backoff } from './backoff.js';

const { status: Status } = grpc;

/** Default deadline of each unary attempt. */
export const DEFAULT_CALL_TIMEOUT_MS = 2000;

const USER_AGENT = 'electd-node/0.1.0';

/**
 * The one error type of this library: a call failed because no node answered
 * (noNodeAnswered is true), or because a node rejected the call with an error that another
 * node would not fix (for example INVALID_ARGUMENT).
 */
export class ElectdError extends Error {
  /**
   * @param {string} message
   * @param {{addresses: string[], code?: number, details?: string, cause?: unknown}} info
   */
  constructor(message, { addresses, code, details, cause }) {
    super(message, { cause });
    this.name = 'ElectdError';
    /**
     * The addresses that were tried: all of them when no node answered, else the one whose
     * node rejected the call.
     * @type {string[]}
     */
    this.addresses = addresses;
    /**
     * The gRPC status code (a grpc.status number) of the rejection, or the last one seen when
     * no node answered; undefined if there was none.
     * @type {number|undefined}
     */
    this.code = code;
    /**
     * The details (message) of that gRPC status; undefined when code is.
     * @type {string|undefined}
     */
    this.details = details;
  }

  /**
   * True if no node answered at all, as opposed to a node rejecting the call.
   * @type {boolean}
   */
  get noNodeAnswered() {
    return this.code === undefined || isFailoverCode(this.code);
  }
}

function isFailoverCode(code) {
  return code === Status.UNAVAILABLE || code === Status.DEADLINE_EXCEEDED;
}

/** The details of a grpc-js error, without the empty "Resolution note:" it appends to connection errors. */
function detailsOf(err) {
  return (err.details ?? '').replace(/\s*Resolution note:\s*$/, '');
}

function describe(err) {
  const name = Status[err.code] ?? String(err.code);
  const details = detailsOf(err);
  return details ? `${name}: ${details}` : name;
}

/**
 * Checks an address up front, so that a typo is a usage error rather than a retry loop:
 * throws a TypeError unless `address` is HOST:PORT with a port from 1 to 65535 (an IPv6 host
 * goes in brackets, as in `[::1]:7001`). The ElectionClient constructor checks every address
 * this way.
 * @param {string} address
 * @throws {TypeError}
 */
export function validateAddress(address) {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s]+):([0-9]{1,5})$/.exec(address);
  const port = m ? Number(m[2]) : 0;
  if (!m || port < 1 || port > 65535) {
    throw new TypeError(`bad address '${address}': want HOST:PORT`);
  }
}

function toDate(ts) {
  if (!ts) return null;
  return new Date(Number(ts.seconds) * 1000 + Math.floor(ts.nanos / 1e6));
}

/** A Node message as plain JS, int64 fields as BigInt. */
function toNode(n) {
  return {
    id: n.id,
    address: n.address,
    znode: n.znode,
    sequence: BigInt(n.sequence),
    joinedAt: toDate(n.joinedAt),
    labels: { ...n.labels },
    isLeader: n.isLeader,
    watches: n.watches,
    sessionId: BigInt(n.sessionId),
    version: n.version,
  };
}

/** A Leader message as plain JS: { node, epoch: bigint, electedAt: Date|null }. */
function toLeader(l) {
  return { node: toNode(l.node ?? {}), epoch: BigInt(l.epoch), electedAt: toDate(l.electedAt) };
}

/**
 * A client for a cluster of electd nodes. Any node answers for the whole cluster, so the
 * client keeps one channel per address and moves on to the next address (round-robin) when
 * the node in use is unreachable or answers UNAVAILABLE or DEADLINE_EXCEEDED.
 *
 *   const client = new ElectionClient(['10.0.0.1:7001', '10.0.0.2:7001']);
 *   const { leader } = await client.getLeader();
 *   client.close();
 */
export class ElectionClient {
  #addresses;
  #stubs;
  #callTimeoutMs;
  #backoff;
  #preferred = 0; // the address that answered last: calls start there
  #closed = false;
  #watches = new Set(); // live WatchLeader calls, cancelled by close()

  /**
   * @param {string[]} addresses HOST:PORT of one or more nodes
   * @param {{callTimeoutMs?: number, backoff?: {initialMs?: number, maxMs?: number}}} [options]
   */
  constructor(addresses, { callTimeoutMs = DEFAULT_CALL_TIMEOUT_MS, backoff = {} } = {}) {
    if (!Array.isArray(addresses) || addresses.length === 0) {
      throw new TypeError('at least one address is needed');
    }
    addresses.forEach(validateAddress);
    this.#addresses = [...addresses];
    this.#callTimeoutMs = callTimeoutMs;
    this.#backoff = backoff;
    const { ElectionService } = loadElectdV1();
    this.#stubs = this.#addresses.map(
      (address) =>
        new ElectionService(address, grpc.credentials.createInsecure(), {
          'grpc.primary_user_agent': USER_AGENT,
          // HTTP/2 pings notice a node that vanished without closing its connections
          // (power loss, partition), which would otherwise hang a watch forever.
          'grpc.keepalive_time_ms': 10_000,
          'grpc.keepalive_timeout_ms': 5_000,
          // Our own backoff decides when to try a node again; without these the channel
          // would fail calls at once for up to 2 minutes after a failed connection attempt,
          // ignoring a node that came back.
          'grpc.initial_reconnect_backoff_ms': 50,
          'grpc.max_reconnect_backoff_ms': 2_000,
          // Addresses are HOST:PORT; don't ask DNS for TXT service configs.
          'grpc.service_config_disable_resolution': 1,
        }),
    );
  }

  /** The addresses this client uses, in order. */
  get addresses() {
    return [...this.#addresses];
  }

  /**
   * The current leader: { leader: {node, epoch, electedAt}, responderId }. Tries each address
   * once, starting with the one that answered last, each attempt with the call timeout.
   * @throws {ElectdError}
   */
  async getLeader() {
    const r = await this.#unary('GetLeader', {});
    return { leader: toLeader(r.leader ?? {}), responderId: r.responderId };
  }

  /**
   * The live members whose labels contain every pair of labelSelector, in election order
   * (the leader first): { nodes, epoch: bigint, responderId }.
   * @param {Record<string, string>} [labelSelector]
   * @throws {ElectdError}
   */
  async listNodes(labelSelector = {}) {
    const r = await this.#unary('ListNodes', { labelSelector });
    return { nodes: r.nodes.map(toNode), epoch: BigInt(r.epoch), responderId: r.responderId };
  }

  /**
   * Watches the leader across node failures: an async iterable of leaders whose epochs
   * strictly increase (each greater than minEpoch); a change is never yielded twice.
   *
   * It follows one node at a time. When that node is unreachable, ends its stream, or says it
   * cannot vouch for a leader, it moves to the next address, passing min_epoch so that a node
   * that is behind cannot take it back in time; after a full round without a leader it backs
   * off (50 ms doubling to 2 s, with jitter). If no node answers at all in the first round it
   * throws ElectdError; once some node has answered it keeps trying until stopped.
   *
   * Stop it by aborting `signal`, by leaving the `for await` loop, or with close(); each ends
   * the stream on the node at once, and the iteration then simply ends.
   *
   * @param {{minEpoch?: bigint|number|string, signal?: AbortSignal,
   *          onFailover?: (address: string, reason: string) => void}} [options]
   * @returns {AsyncGenerator<{node: object, epoch: bigint, electedAt: Date|null}>}
   */
  async *watchLeader({ minEpoch = 0n, signal, onFailover } = {}) {
    let last = BigInt(minEpoch);
    if (last < 0n) throw new RangeError('minEpoch must not be negative');
    const n = this.#addresses.length;
    const backoff = new Backoff(this.#backoff);
    let index = this.#preferred;
    let fruitless = 0; // attempts in a row that did not yield an elected leader
    let anyAnswered = false;
    const stopped = () => this.#closed || signal?.aborted;

    while (!stopped()) {
      const call = this.#stubs[index].WatchLeader({ minEpoch: last.toString() });
      // Errors reach us through the loop below; this keeps the one our own cancel() causes
      // after the loop has let go of the stream from crashing the process as unhandled.
      call.on('error', () => {});
      const cancel = () => call.cancel();
      signal?.addEventListener('abort', cancel, { once: true });
      this.#watches.add(call);
      let answered = false;
      let sawLeader = false;
      let reason = 'stream ended';
      let failure; // the gRPC error that ended this attempt, if any
      try {
        for await (const msg of call) {
          answered = true;
          if (msg.state !== 'LEADER_STATE_ELECTED' || !msg.leader) {
            reason = `${msg.responderId} cannot vouch for a leader: ${msg.reason}`;
            break;
          }
          sawLeader = true;
          const leader = toLeader(msg.leader);
          // A node may repeat what another node already told us (or, if it lags, hold it
          // back); only a strictly newer epoch is news.
          if (leader.epoch > last && !stopped()) {
            last = leader.epoch;
            this.#preferred = index;
            yield leader;
          }
        }
      } catch (err) {
        if (stopped()) return;
        // CANCELLED that we did not ask for comes from the node or a proxy dropping the
        // stream (for example on shutdown): as retryable as UNAVAILABLE.
        if (!isFailoverCode(err.code) && err.code !== Status.CANCELLED) {
          throw new ElectdError(`${this.#addresses[index]} rejected WatchLeader: ${describe(err)}`, {
            addresses: [this.#addresses[index]],
            code: err.code,
            details: detailsOf(err),
            cause: err,
          });
        }
        failure = err;
        reason = describe(err);
      } finally {
        // Also runs when the consumer leaves its loop: end the stream on the node too.
        signal?.removeEventListener('abort', cancel);
        this.#watches.delete(call);
        call.cancel();
      }
      if (stopped()) return;

      anyAnswered ||= answered;
      if (sawLeader) {
        fruitless = 0;
        backoff.reset();
      } else {
        fruitless++;
      }
      if (!anyAnswered && fruitless >= n) {
        throw this.#noNodeAnswered(reason, failure);
      }
      onFailover?.(this.#addresses[index], reason);
      index = (index + 1) % n;
      if (fruitless > 0 && fruitless % n === 0) {
        // A full round without a leader: wait before the next one (or until stopped).
        try {
          await sleep(backoff.next(), undefined, { signal });
        } catch {
          return; // aborted
        }
      }
    }
  }

  /** Closes the channels and ends running watches. Idempotent. */
  close() {
    this.#closed = true;
    for (const call of this.#watches) call.cancel();
    for (const stub of this.#stubs) stub.close();
  }

  async #unary(method, request) {
    if (this.#closed) throw new Error('ElectionClient is closed');
    const n = this.#addresses.length;
    const start = this.#preferred;
    let lastErr;
    for (let i = 0; i < n; i++) {
      const index = (start + i) % n;
      try {
        const response = await new Promise((resolve, reject) => {
          const deadline = Date.now() + this.#callTimeoutMs;
          this.#stubs[index][method](request, { deadline }, (err, res) => (err ? reject(err) : resolve(res)));
        });
        this.#preferred = index;
        return response;
      } catch (err) {
        if (err.code === undefined) throw err; // not a gRPC status: a bug, not a dead node
        if (!isFailoverCode(err.code)) {
          throw new ElectdError(`${this.#addresses[index]} rejected the call: ${describe(err)}`, {
            addresses: [this.#addresses[index]],
            code: err.code,
            details: detailsOf(err),
            cause: err,
          });
        }
        lastErr = err;
      }
    }
    throw this.#noNodeAnswered(describe(lastErr), lastErr, lastErr);
  }

  /**
   * @param {string} lastError what went wrong last, for the message
   * @param {{code: number, details?: string}} [last] the last gRPC error seen, if any
   * @param {unknown} [cause]
   */
  #noNodeAnswered(lastError, last, cause) {
    return new ElectdError(
      `no electd node answered (tried ${this.#addresses.join(', ')}); last error: ${lastError}`,
      { addresses: this.addresses, code: last?.code, details: last && detailsOf(last), cause },
    );
  }
}
