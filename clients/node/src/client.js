// ElectionClient: failover across electd nodes for GetLeader, ListNodes, WatchLeader, Resign
// and ListElections, with the bounds of the client contract (clients/README.md, "The client
// contract"), for the node election and for named elections; campaign() (src/campaign.js)
// runs on the same channels.
import * as grpc from '@grpc/grpc-js';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadElectdV1 } from './proto.js';
import { Backoff } from './backoff.js';
import { AddressGuard } from './connect.js';
import { TLS_OPTIONS, TlsFiles, TlsOptionError } from './tls.js';
import { Campaign, DEFAULT_PING_INTERVAL_MS, toBytes } from './campaign.js';

const { status: Status } = grpc;

/** Default deadline of each unary attempt. */
export const DEFAULT_CALL_TIMEOUT_MS = 2000;
/** Default connect deadline: TCP and the HTTP/2 handshake, per address and attempt. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 2000;
/** Default time a watch waits for its first message once connected. */
export const DEFAULT_FIRST_MESSAGE_TIMEOUT_MS = 2000;

// HTTP/2 keepalive: a ping every 3 s, the connection closed when one is not acked within 3 s,
// also when no call is open (electd accepts pings every second). A frozen node is left within
// 6 s, and a pooled connection to one is found dead before the next call needs it.
const KEEPALIVE_TIME_MS = 3000;
const KEEPALIVE_TIMEOUT_MS = 3000;

// A watch attempt that delivered a leader counts as healthy (it resets the failover round and
// the backoff) if it brought a newer epoch or stayed open at least this long; a node that sends
// its state and hangs up at once is retried with backoff, not in a tight loop.
const HEALTHY_STREAM_MS = 1000;

const USER_AGENT = 'electd-node/0.1.0';

const FAILOVER_CODES = new Set([Status.UNAVAILABLE, Status.DEADLINE_EXCEEDED, Status.RESOURCE_EXHAUSTED]);
const MAX_AFTER_EPOCH = (1n << 63n) - 2n; // an int64, with room for the next epoch

/**
 * The one error type of this library: a call failed because no node answered
 * (noNodeAnswered is true), or because a node rejected the call with an error that another
 * node would not fix (for example INVALID_ARGUMENT).
 */
export class ElectdError extends Error {
  #noNodeAnswered;

  /**
   * @param {string} message
   * @param {{addresses: string[], code?: number, details?: string, cause?: unknown,
   *          noNodeAnswered?: boolean}} info
   */
  constructor(message, { addresses, code, details, cause, noNodeAnswered }) {
    super(message, { cause });
    this.#noNodeAnswered = noNodeAnswered;
    this.name = 'ElectdError';
    /**
     * The addresses concerned: all of them when no node answered, else the one whose node
     * rejected the call.
     * @type {string[]}
     */
    this.addresses = addresses;
    /**
     * The gRPC status code (a grpc.status number) of the rejection, or of the last address
     * tried when no node answered; undefined if there was none.
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
    if (this.#noNodeAnswered !== undefined) return this.#noNodeAnswered;
    return this.code === undefined || FAILOVER_CODES.has(this.code);
  }
}

/** The details of a grpc-js error, without the empty "Resolution note:" it appends to connection errors. */
function detailsOf(err) {
  return (err.details ?? '').replace(/\s*Resolution note:\s*$/, '');
}

function describe({ code, details }) {
  const name = Status[code] ?? String(code);
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
  const m = typeof address === 'string' && /^(\[[0-9a-fA-F:.]+\]|[^:\[\]\s/]+):([0-9]{1,5})$/.exec(address);
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
    recordError: n.recordError,
    value: Buffer.from(n.value ?? []),
    valueRevision: BigInt(n.valueRevision ?? 0),
    priority: n.priority ?? 0,
    neverLead: n.neverLead ?? false,
    hostId: n.hostId ?? '',
  };
}

/** A Leader message as plain JS: { node, epoch: bigint, electedAt: Date|null }. */
function toLeader(l) {
  return { node: toNode(l.node ?? {}), epoch: BigInt(l.epoch), electedAt: toDate(l.electedAt) };
}

function checkKeys(what, options, allowed, hints = {}) {
  if (options === null || typeof options !== 'object') throw new TypeError(`${what}: options must be an object`);
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new TypeError(`${what}: unknown option '${key}'${hints[key] ? ` (${hints[key]})` : ''}`);
    }
  }
}

function checkMs(name, value) {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(`${name} must be a positive number of milliseconds, got ${value}`);
  }
  return value;
}

/** afterEpoch as a BigInt: a non-negative integer given as bigint, safe integer or decimal string. */
function toAfterEpoch(value) {
  let epoch;
  if (typeof value === 'bigint') epoch = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) epoch = BigInt(value);
  else if (typeof value === 'string' && /^[0-9]+$/.test(value)) epoch = BigInt(value);
  else {
    throw new TypeError(`afterEpoch must be a non-negative integer (a bigint, a safe integer or a decimal string), got ${value}`);
  }
  if (epoch < 0n || epoch > MAX_AFTER_EPOCH) throw new RangeError(`afterEpoch out of range: ${epoch}`);
  return epoch;
}

function isAbortSignal(signal) {
  return signal !== null && typeof signal === 'object' && typeof signal.aborted === 'boolean' &&
    typeof signal.addEventListener === 'function';
}

const closedError = () => new Error('ElectionClient is closed');

/** The `election` option: a string ('' or absent: the node election); the node checks the name. */
function toElection(what, value) {
  if (value === undefined) return '';
  if (typeof value !== 'string') throw new TypeError(`${what}: election must be a string, got ${typeof value}`);
  return value;
}

const INT32_MIN = -(2 ** 31);
const INT32_MAX = 2 ** 31 - 1;

/**
 * A client for a cluster of electd nodes. Any node answers for the whole cluster, so the
 * client keeps one channel per address and moves on to the next address when the node in use
 * cannot be reached in time or answers UNAVAILABLE, DEADLINE_EXCEEDED or RESOURCE_EXHAUSTED.
 *
 *   const client = new ElectionClient(['10.0.0.1:7001', '10.0.0.2:7001']);
 *   const { leader } = await client.getLeader();
 *   client.close();
 */
export class ElectionClient {
  #addresses;
  #tls; // TlsFiles, or null: plaintext
  #guards;
  #stubs;
  #callTimeoutMs;
  #firstMessageTimeoutMs;
  #backoff;
  #preferred = 0; // the address that answered last: calls start there
  #closed = false;
  #stops = new Set(); // one AbortController per running watch, aborted by close()
  #unaryCalls = new Set(); // unary calls in flight, cancelled by close()
  #campaigns = new Set(); // running campaigns, closed by close()

  /**
   * @param {string[]} addresses HOST:PORT of one or more nodes
   * @param {{callTimeoutMs?: number, connectTimeoutMs?: number, firstMessageTimeoutMs?: number,
   *          backoff?: {initialMs?: number, maxMs?: number},
   *          tlsCa?: string, tlsCert?: string, tlsKey?: string, tlsServerName?: string}} [options]
   * @throws {TypeError} a bad address, an unknown option or a value of the wrong type
   * @throws {RangeError} a non-positive timeout
   * @throws {ElectdError} a TLS option that cannot be used: tlsCert without tlsKey or the other
   *   way round, a file that cannot be read or used (the message names the option and the path)
   */
  constructor(addresses, options = {}) {
    if (!Array.isArray(addresses) || addresses.length === 0) {
      throw new TypeError('at least one address is needed');
    }
    addresses.forEach(validateAddress);
    checkKeys('ElectionClient', options, ['callTimeoutMs', 'connectTimeoutMs', 'firstMessageTimeoutMs', 'backoff', ...TLS_OPTIONS]);
    const {
      callTimeoutMs = DEFAULT_CALL_TIMEOUT_MS,
      connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_MS,
      firstMessageTimeoutMs = DEFAULT_FIRST_MESSAGE_TIMEOUT_MS,
      backoff = {},
    } = options;
    this.#callTimeoutMs = checkMs('callTimeoutMs', callTimeoutMs);
    checkMs('connectTimeoutMs', connectTimeoutMs);
    this.#firstMessageTimeoutMs = checkMs('firstMessageTimeoutMs', firstMessageTimeoutMs);
    checkKeys('ElectionClient backoff', backoff, ['initialMs', 'maxMs']);
    new Backoff(backoff); // checks it
    this.#backoff = { ...backoff };
    // TLS when any of tlsCa, tlsCert, tlsKey, tlsServerName is given; the files are read now.
    let tls;
    try {
      tls = TlsFiles.fromOptions(options);
    } catch (err) {
      if (!(err instanceof TlsOptionError)) throw err;
      throw new ElectdError(err.message, { addresses: [], noNodeAnswered: false, cause: err.cause });
    }
    this.#tls = tls;
    this.#addresses = [...addresses];
    const { ElectionService } = loadElectdV1();
    this.#guards = this.#addresses.map((address) => new AddressGuard(address, connectTimeoutMs, tls));
    this.#stubs = this.#guards.map((guard) => {
      const stub = new ElectionService(guard.target, guard.credentials, {
        'grpc.primary_user_agent': USER_AGENT,
        'grpc.keepalive_time_ms': KEEPALIVE_TIME_MS,
        'grpc.keepalive_timeout_ms': KEEPALIVE_TIMEOUT_MS,
        'grpc.keepalive_permit_without_calls': 1,
        // Our own backoff paces the rounds over the addresses; without these the channel would
        // fail calls at once for up to 2 minutes after a failed attempt, ignoring a node that
        // came back.
        'grpc.initial_reconnect_backoff_ms': 50,
        'grpc.max_reconnect_backoff_ms': 2000,
        // One subchannel per channel, owned by it: close() releases its connection.
        'grpc.use_local_subchannel_pool': 1,
      });
      guard.watch(stub.getChannel());
      return stub;
    });
  }

  /** The addresses this client uses, in order. */
  get addresses() {
    return [...this.#addresses];
  }

  /**
   * The current leader: { leader: {node, epoch, electedAt}, responderId }. Tries each address
   * once, starting with the one that answered last, each attempt with the call timeout.
   * `election` names a named election (default '': the electd nodes' own); one without a
   * leader is an ElectdError with code NOT_FOUND.
   * @param {{election?: string}} [options]
   * @throws {ElectdError}
   */
  async getLeader(options = {}) {
    checkKeys('getLeader', options, ['election']);
    const election = toElection('getLeader', options.election);
    const r = await this.#unary('GetLeader', { election });
    return { leader: toLeader(r.leader ?? {}), responderId: r.responderId };
  }

  /**
   * The live members whose labels contain every pair of labelSelector, in election order
   * (the leader first): { nodes, epoch: bigint, responderId }. `election` names a named
   * election (its candidates, never_lead members included); default '': the electd nodes.
   * @param {Record<string, string>} [labelSelector]
   * @param {{election?: string}} [options]
   * @throws {ElectdError}
   */
  async listNodes(labelSelector = {}, options = {}) {
    checkKeys('listNodes', options, ['election']);
    const election = toElection('listNodes', options.election);
    const r = await this.#unary('ListNodes', { labelSelector, election });
    return { nodes: r.nodes.map(toNode), epoch: BigInt(r.epoch), responderId: r.responderId };
  }

  /**
   * Ends the current term of a named election on an operator's behalf (the leader's entry is
   * deleted; its candidate is told Lost, reason DELETED). `epoch` must be the current leader's:
   * else ElectdError FAILED_PRECONDITION (the details name the current epoch), NOT_FOUND when
   * there is no leader. Resolves with { leader (the one whose term ended), responderId }.
   * @param {string} election
   * @param {bigint|number|string} epoch
   * @throws {ElectdError}
   */
  async resign(election, epoch) {
    if (typeof election !== 'string' || election === '') throw new TypeError('resign: election must be a non-empty string');
    let e;
    try {
      e = toAfterEpoch(epoch);
    } catch (err) {
      throw new err.constructor(err.message.replace('afterEpoch', 'resign: epoch'));
    }
    if (e === 0n) throw new RangeError('resign: epoch must be positive');
    const r = await this.#unary('Resign', { election, epoch: e.toString() });
    return { leader: toLeader(r.leader ?? {}), responderId: r.responderId };
  }

  /**
   * The named elections, sorted by name: { elections: [{ name, candidates }], responderId }.
   * @throws {ElectdError}
   */
  async listElections() {
    const r = await this.#unary('ListElections', {});
    return {
      elections: r.elections.map((e) => ({ name: e.name, candidates: e.candidates })),
      responderId: r.responderId,
    };
  }

  /**
   * Campaigns in a named election and runs `work(term, signal)` while this candidate leads
   * (see src/campaign.js and the README's "Campaigning"). Returns the running Campaign at once.
   *
   * @param {{election: string, candidateId: string,
   *          work?: (term: {epoch: bigint, deadline: number}, signal: AbortSignal) => unknown,
   *          value?: string|Uint8Array, labels?: Record<string, string>, priority?: number,
   *          neverLead?: boolean, onLoss?: 'recampaign'|'stop', pingIntervalMs?: number,
   *          onEvent?: (event: object) => void, signal?: AbortSignal}} options
   * @returns {Campaign}
   * @throws {TypeError|RangeError} a missing or bad option
   */
  campaign(options) {
    checkKeys('campaign', options ?? null, ['election', 'candidateId', 'work', 'value', 'labels', 'priority',
      'neverLead', 'onLoss', 'pingIntervalMs', 'onEvent', 'signal']);
    const {
      election, candidateId, work, value = '', labels = {}, priority = 0, neverLead = false,
      onLoss = 'recampaign', pingIntervalMs = DEFAULT_PING_INTERVAL_MS, onEvent, signal,
    } = options;
    if (typeof election !== 'string' || election === '') throw new TypeError('campaign: election must be a non-empty string');
    if (typeof candidateId !== 'string' || candidateId === '') throw new TypeError('campaign: candidateId must be a non-empty string');
    if (work !== undefined && typeof work !== 'function') throw new TypeError('campaign: work must be a function');
    if (work === undefined && !neverLead) throw new TypeError('campaign: work is needed (unless neverLead)');
    const bytes = toBytes(value, 'campaign: value');
    if (labels === null || typeof labels !== 'object' || Object.values(labels).some((v) => typeof v !== 'string')) {
      throw new TypeError('campaign: labels must be an object of strings');
    }
    if (!Number.isInteger(priority) || priority < INT32_MIN || priority > INT32_MAX) {
      throw new RangeError(`campaign: priority must be a 32-bit integer, got ${priority}`);
    }
    if (typeof neverLead !== 'boolean') throw new TypeError('campaign: neverLead must be a boolean');
    if (onLoss !== 'recampaign' && onLoss !== 'stop') throw new TypeError(`campaign: onLoss must be 'recampaign' or 'stop', got ${onLoss}`);
    checkMs('campaign: pingIntervalMs', pingIntervalMs);
    if (onEvent !== undefined && typeof onEvent !== 'function') throw new TypeError('campaign: onEvent must be a function');
    if (signal !== undefined && !isAbortSignal(signal)) throw new TypeError('campaign: signal must be an AbortSignal');
    if (this.#closed) throw closedError();
    const campaign = new Campaign(this.#transport(), {
      election, candidateId, work: work ?? (() => new Promise(() => {})), value: bytes, labels: { ...labels },
      priority, neverLead, onLoss, pingIntervalMs, onEvent, signal,
    });
    return campaign;
  }

  /** What a Campaign needs of this client: its channels, deadlines, backoff and errors. */
  #transport() {
    const client = this;
    const self = {
      addresses: [...this.#addresses],
      stub: (i) => this.#stubs[i],
      guard: (i) => this.#guards[i],
      firstMessageTimeoutMs: this.#firstMessageTimeoutMs,
      callTimeoutMs: this.#callTimeoutMs,
      backoff: { ...this.#backoff },
      get preferred() { return client.#preferred; },
      set preferred(i) { client.#preferred = i; },
      closed: () => this.#closed,
      failure: (i, err) => this.#failure(i, err),
      rejected: (i, what, err) => this.#rejected(i, what, err),
      noNodeAnswered: (last) => this.#noNodeAnswered(last),
      error: (message, info) => new ElectdError(message, { addresses: [], noNodeAnswered: false, ...info }),
      release: (c) => this.#campaigns.delete(c),
      register: (c) => this.#campaigns.add(c),
    };
    return self;
  }

  /**
   * Watches the leader across node failures: an async iterable of leaders whose epochs
   * strictly increase, each greater than afterEpoch (the highest epoch the caller already
   * handled; 0, the default, reports the current leader); a change is never yielded twice.
   *
   * It follows one node at a time and leaves it (calling onFailover(address, reason)) when it
   * cannot connect within the connect deadline, sends no first message within the first-message
   * deadline, stops answering keepalive pings, fails with UNAVAILABLE, DEADLINE_EXCEEDED or
   * RESOURCE_EXHAUSTED, ends its stream, or says it cannot vouch for a leader. It resumes on the
   * next address with min_epoch = the last epoch reported + 1; after a full round without a
   * leader it backs off (50 ms doubling to 2 s, full jitter). Any other status is thrown as
   * ElectdError, and so is a first round in which no node answered at all; once some node has
   * answered it keeps trying until stopped.
   *
   * Stop it by aborting `signal`, by leaving the `for await` loop, or with close(); each ends
   * the stream on the node at once (also during a connection attempt or a backoff), and the
   * iteration then simply ends.
   *
   * @param {{afterEpoch?: bigint|number|string, signal?: AbortSignal,
   *          onFailover?: (address: string, reason: string) => void}} [options]
   * @returns {AsyncGenerator<{node: object, epoch: bigint, electedAt: Date|null}, void, undefined>}
   */
  watchLeader(options = {}) {
    checkKeys('watchLeader', options, ['afterEpoch', 'signal', 'onFailover', 'election'], {
      minEpoch: 'renamed: afterEpoch is the highest epoch already handled, only higher ones are reported',
    });
    const { afterEpoch = 0n, signal, onFailover } = options;
    const election = toElection('watchLeader', options.election);
    const after = toAfterEpoch(afterEpoch);
    if (signal !== undefined && !isAbortSignal(signal)) throw new TypeError('signal must be an AbortSignal');
    if (onFailover !== undefined && typeof onFailover !== 'function') throw new TypeError('onFailover must be a function');
    if (this.#closed) throw closedError();
    return this.#watch(after, signal, onFailover, election);
  }

  async *#watch(afterEpoch, signal, onFailover, election) {
    // One controller ends everything of this watch: the caller's signal, close(), return().
    const stop = new AbortController();
    const onAbort = () => stop.abort();
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted || this.#closed) stop.abort(); // closed before the iteration started
    this.#stops.add(stop);
    try {
      const n = this.#addresses.length;
      const backoff = new Backoff(this.#backoff);
      // last: the highest epoch reported; revision: the value revision of that epoch reported
      // (undefined until one was seen: the first state of afterEpoch itself sets it unreported).
      const state = { last: afterEpoch, revision: undefined, election };
      let index = this.#preferred;
      let fruitless = 0; // attempts in a row that were not healthy
      let anyAnswered = false;
      while (!stop.signal.aborted) {
        const attempt = yield* this.#watchAttempt(index, state, stop.signal);
        if (stop.signal.aborted) return;
        anyAnswered ||= attempt.answered;
        if (attempt.healthy) {
          fruitless = 0;
          backoff.reset();
        } else {
          fruitless++;
        }
        onFailover?.(this.#addresses[index], attempt.reason);
        if (!anyAnswered && fruitless >= n) {
          throw this.#noNodeAnswered(attempt.failure);
        }
        index = (index + 1) % n;
        if (fruitless > 0 && fruitless % n === 0) {
          // A full round without a leader: wait before the next one (or until stopped).
          try {
            await sleep(backoff.next(), undefined, { signal: stop.signal });
          } catch {
            return; // stopped
          }
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#stops.delete(stop);
      stop.abort(); // also when the consumer left its loop: nothing of this watch stays behind
    }
  }

  /**
   * One WatchLeader stream on one address, until it fails, ends, or has nothing to vouch for.
   * Yields the leaders that are news and returns what happened.
   */
  async *#watchAttempt(index, state, stopSignal) {
    const guard = this.#guards[index];
    const result = { answered: false, healthy: false, reason: 'stream ended', failure: undefined };
    let call;
    try {
      // The last reported epoch itself, not one more: the node then sends its current state at
      // once (the first-message deadline relies on it) and the filter below drops the repeat.
      call = this.#stubs[index].WatchLeader({ minEpoch: state.last.toString(), election: state.election });
    } catch (err) {
      if (this.#closed) return result; // the channel was closed under us: stopped
      throw err;
    }
    // Errors reach us through the loop below; this keeps the one our own cancel() causes
    // after the loop has let go of the stream from crashing the process as unhandled.
    call.on('error', () => {});
    let timedOut; // why we cancelled the call ourselves, if we did
    const giveUp = (why) => {
      timedOut ??= why;
      call.cancel();
    };
    const cancel = () => call.cancel();
    stopSignal.addEventListener('abort', cancel, { once: true });
    // The first-message deadline runs once the connection is up (the connect deadline covers
    // the time before); the backstop covers both, should the channel neither connect nor fail.
    const ms = this.#firstMessageTimeoutMs;
    let firstTimer;
    const stopWaiting = guard.whenReady(() => {
      firstTimer = setTimeout(() => giveUp(`no first message within ${ms} ms`), ms);
    });
    const backstop = setTimeout(() => giveUp(`no connection and no first message within ${ms + guard.connectTimeoutMs} ms`),
      ms + guard.connectTimeoutMs + 250);
    let firstAt = 0;
    let yieldedNew = false;
    try {
      for await (const msg of call) {
        if (!result.answered) {
          result.answered = true;
          firstAt = performance.now();
          stopWaiting();
          clearTimeout(firstTimer);
          clearTimeout(backstop);
        }
        // A named election without a leader: the node vouches for that; stay on the stream.
        if (msg.state === 'LEADER_STATE_VACANT') continue;
        if (msg.state !== 'LEADER_STATE_ELECTED' || !msg.leader) {
          result.reason = `${msg.responderId || this.#addresses[index]} cannot vouch for a leader: ${msg.reason || msg.state}`;
          break;
        }
        const leader = toLeader(msg.leader);
        // A node may repeat what another node already told us (or, if it lags, hold it
        // back); only a strictly newer epoch is news, or in the epoch last reported a newer
        // value revision (a named election's leader proclaimed; always 0 in the node election).
        const revision = leader.node.valueRevision;
        let news = false;
        if (leader.epoch > state.last) news = true;
        else if (leader.epoch === state.last) {
          if (state.revision === undefined) state.revision = revision; // afterEpoch's own: a baseline
          else news = revision > state.revision;
        }
        if (news && !stopSignal.aborted) {
          state.last = leader.epoch;
          state.revision = revision;
          this.#preferred = index;
          yieldedNew = true;
          yield leader;
        }
      }
      result.healthy = firstAt > 0 && (yieldedNew || performance.now() - firstAt >= HEALTHY_STREAM_MS);
    } catch (err) {
      if (stopSignal.aborted) return result;
      result.healthy = firstAt > 0 && (yieldedNew || performance.now() - firstAt >= HEALTHY_STREAM_MS);
      if (timedOut) {
        result.failure = { code: Status.DEADLINE_EXCEEDED, details: timedOut };
      } else {
        if (err.code === undefined) throw err; // not a gRPC status: a bug, not a dead node
        // CANCELLED that we did not ask for comes from the node or a proxy dropping the
        // stream (for example on shutdown): as retryable as UNAVAILABLE.
        if (!FAILOVER_CODES.has(err.code) && err.code !== Status.CANCELLED) {
          throw this.#rejected(index, 'WatchLeader', err);
        }
        result.failure = this.#failure(index, err);
      }
      result.reason = describe(result.failure);
    } finally {
      stopSignal.removeEventListener('abort', cancel);
      stopWaiting();
      clearTimeout(firstTimer);
      clearTimeout(backstop);
      call.cancel(); // also runs when the consumer leaves its loop: end the stream on the node
    }
    return result;
  }

  /** Closes the channels, their connections (also those still connecting), and ends running watches and calls. Idempotent. */
  close() {
    if (this.#closed) return;
    this.#closed = true;
    for (const campaign of this.#campaigns) campaign.close();
    for (const stop of this.#stops) stop.abort();
    for (const call of this.#unaryCalls) call.cancel();
    for (const stub of this.#stubs) stub.close();
    for (const guard of this.#guards) guard.close();
  }

  async #unary(method, request) {
    if (this.#closed) throw closedError();
    const n = this.#addresses.length;
    const start = this.#preferred;
    let last;
    for (let i = 0; i < n; i++) {
      const index = (start + i) % n;
      try {
        const response = await this.#unaryAttempt(index, method, request);
        this.#preferred = index;
        return response;
      } catch (err) {
        if (this.#closed) throw closedError();
        if (err.code === undefined) throw err; // not a gRPC status: a bug, not a dead node
        if (!FAILOVER_CODES.has(err.code)) throw this.#rejected(index, 'the call', err);
        last = { ...this.#failure(index, err), cause: err };
      }
    }
    throw this.#noNodeAnswered(last);
  }

  #unaryAttempt(index, method, request) {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + this.#callTimeoutMs;
      const call = this.#stubs[index][method](request, { deadline }, (err, res) => {
        this.#unaryCalls.delete(call);
        if (err) reject(err);
        else resolve(res);
      });
      this.#unaryCalls.add(call);
    });
  }

  /** A failed attempt on one address as {code, details}, naming the connect deadline if that was it. */
  #failure(index, err) {
    const details = detailsOf(err);
    const deadline = err.code === Status.UNAVAILABLE ? this.#guards[index].explain(details) : undefined;
    // With TLS files that changed but cannot be used, a failed handshake may be why.
    const stale = err.code === Status.UNAVAILABLE && this.#tls?.staleReason
      ? ` (changed TLS files not used: ${this.#tls.staleReason})` : '';
    return { code: err.code, details: (deadline ?? details) + stale };
  }

  #rejected(index, what, err) {
    const address = this.#addresses[index];
    return new ElectdError(`${address} rejected ${what}: ${describe({ code: err.code, details: detailsOf(err) })}`, {
      addresses: [address],
      code: err.code,
      details: detailsOf(err),
      cause: err,
    });
  }

  /** @param {{code: number, details: string, cause?: unknown}} [last] the last address's failure */
  #noNodeAnswered(last) {
    return new ElectdError(
      `no electd node answered (tried ${this.#addresses.join(', ')}); last error: ${last ? describe(last) : 'none'}`,
      { addresses: this.addresses, code: last?.code, details: last?.details, cause: last?.cause },
    );
  }
}
