// Type declarations of @electd/client, the Node client of the electd.v1 ElectionService.
// Hand-written next to the plain ES modules of src/; test/types checks them with tsc and
// checks that they name exactly what src/index.js exports.
import type { GrpcObject, status } from '@grpc/grpc-js';

/** Default deadline of each unary attempt, in ms (2 s). */
export declare const DEFAULT_CALL_TIMEOUT_MS: number;
/** Default connect deadline per address and attempt, TCP and HTTP/2 handshake, in ms (2 s). */
export declare const DEFAULT_CONNECT_TIMEOUT_MS: number;
/** Default time a watch waits for its first message once connected, in ms (2 s). */
export declare const DEFAULT_FIRST_MESSAGE_TIMEOUT_MS: number;

/** One member of the election (the proto's electd.v1.Node). int64 fields are BigInt. */
export interface Node {
  /** The node's stable identifier (--node-id). */
  id: string;
  /** HOST:PORT where the node serves gRPC (--advertise). */
  address: string;
  /** The name of the node's ephemeral sequential znode. */
  znode: string;
  /** The sequence number ZooKeeper appended to the znode name (for display). */
  sequence: bigint;
  /** When ZooKeeper created the znode; null if not sent. */
  joinedAt: Date | null;
  /** The KEY=VALUE labels the node was started with. */
  labels: Record<string, string>;
  /** True for the member that leads. */
  isLeader: boolean;
  /** The znode name of the predecessor this node watches; empty for the leader. */
  watches: string;
  /** The ZooKeeper session that owns the znode. */
  sessionId: bigint;
  /** The electd version the node runs. */
  version: string;
  /** Set when the znode's data cannot be read as a node record (id, address, labels, version are then empty). */
  recordError: string;
  /** A named election's candidate: what it says about itself (at most 16 KiB); empty for electd nodes. */
  value: Buffer;
  /** 0 for the value the candidate started with, one more per proclamation. */
  valueRevision: bigint;
  /** The candidate's priority (higher leads first); 0 for electd nodes. */
  priority: number;
  /** A member that never leads (membership only). */
  neverLead: boolean;
  /** The id of the electd node whose session holds the candidate's entry; empty for electd nodes. */
  hostId: string;
}

/** The elected node and its fencing epoch (the proto's electd.v1.Leader). */
export interface Leader {
  node: Node;
  /** The fencing token of this term; strictly increases with every change of leader. */
  epoch: bigint;
  /** When the answering node first saw this leader with this epoch; null if not sent. */
  electedAt: Date | null;
}

export interface GetLeaderResponse {
  leader: Leader;
  /** The id of the node that answered. */
  responderId: string;
}

export interface ListNodesResponse {
  /** The live members in election order (the leader first). */
  nodes: Node[];
  /** The fencing epoch of the current leader when the list was read. */
  epoch: bigint;
  /** The id of the node that answered. */
  responderId: string;
}

/** The `election` option of getLeader, listNodes and watchLeader. */
export interface ElectionOption {
  /** A named election (1-128 letters, digits, '.', '_' or '-'); '' or absent: the electd nodes' own. */
  election?: string;
}

export interface ResignResponse {
  /** The leader whose term was ended. */
  leader: Leader;
  /** The id of the node that answered. */
  responderId: string;
}

export interface ElectionSummary {
  name: string;
  /** Its entries, never_lead members included. */
  candidates: number;
}

export interface ListElectionsResponse {
  /** Sorted by name. */
  elections: ElectionSummary[];
  responderId: string;
}

/** Default time between two campaign pings, in ms (500; never more than a third of the last lease). */
export declare const DEFAULT_PING_INTERVAL_MS: number;
/** The work is stopped at least this long before its deadline, in ms (50) ... */
export declare const MIN_SAFETY_MARGIN_MS: number;
/** ... and at least this fraction of the lease that set the deadline (0.1). */
export declare const SAFETY_MARGIN_FRACTION: number;

/** A term this candidate leads, as handed to the work. */
export interface Term {
  /** The fencing epoch of the term: pass it to whatever the work writes to. */
  readonly epoch: bigint;
  /**
   * Until when (performance.now() milliseconds) the node vouches for this term; it moves on with
   * every ping answered. The work's signal is aborted a safety margin before it.
   */
  readonly deadline: number;
}

/** Why a term ended: the node's LossReason without its prefix, or what the client saw. */
export type LossReason =
  | 'RESIGNED' | 'DELETED' | 'PREEMPTED' | 'ZOOKEEPER' | 'SHUTDOWN'
  | 'EXPIRED' | 'DISCONNECTED' | 'SUPERSEDED' | 'CLOSED' | (string & {});

/** What a campaign tells its onEvent hook (for logs and metrics). */
export type CampaignEvent =
  | { type: 'queued'; position: number; waitingFor: string; neverLead: boolean; znode: string; address: string; responderId: string }
  | { type: 'leading'; epoch: bigint; deadline: number; leaseMs: number; address: string; responderId: string; znode: string }
  | { type: 'lost'; epoch: bigint; reason: LossReason; detail: string; address: string }
  | { type: 'refused'; request: string; reason: string; address: string }
  | { type: 'failover'; address: string; reason: string };

export interface CampaignOptions {
  /** The named election (not empty). */
  election: string;
  /** This candidate's id (the rule of node ids). */
  candidateId: string;
  /**
   * Runs while this candidate leads; its signal is aborted before the deadline passes, on
   * Lost, on a stream failure, on resign() or close(). Returning on its own resigns and ends the
   * campaign; throwing resigns and rejects `done` with the error. Needed unless neverLead.
   */
  work?: (term: Term, signal: AbortSignal) => unknown;
  /** What the candidate says about itself (a string is UTF-8), at most 16 KiB. */
  value?: string | Uint8Array;
  labels?: Record<string, string>;
  /** Higher leads first (a 32-bit integer). Default 0. */
  priority?: number;
  /** A member only: listed, never leads. */
  neverLead?: boolean;
  /** After a lost term: campaign again (default) or end the campaign. */
  onLoss?: 'recampaign' | 'stop';
  /** Time between pings in ms (500), at most a third of the last lease granted. */
  pingIntervalMs?: number;
  /** Called with each event; an exception thrown by it ends the campaign with that error. */
  onEvent?: (event: CampaignEvent) => void;
  /** Aborting it resigns (as resign()). */
  signal?: AbortSignal;
}

export interface CampaignResult {
  /** resign() or the signal; the work returned; a term was lost with onLoss 'stop'; close(). */
  reason: 'resigned' | 'returned' | 'lost' | 'closed';
  /** The highest epoch whose work ran (0n: none). */
  lastEpoch: bigint;
}

/** A running campaign (ElectionClient.campaign()). */
export declare class Campaign {
  private constructor();
  readonly election: string;
  readonly candidateId: string;
  /** The term whose work runs now, or null. */
  readonly term: Term | null;
  /** Resolves when the campaign ended; rejects with ElectdError (a refusal, no node answered) or the work's error. */
  readonly done: Promise<CampaignResult>;
  /** Aborts the work, waits for it, tells the node, and resolves as `done` does. */
  resign(): Promise<CampaignResult>;
  /** Sets the leader's value; resolves with its new value revision. @throws {ElectdError} not leading, refused */
  proclaim(value: string | Uint8Array): Promise<bigint>;
  /** Aborts the work and cancels the stream at once; `done` resolves once the work finished. Idempotent. */
  close(): void;
}

export interface BackoffOptions {
  /** The ceiling of the first delay, in ms (50). */
  initialMs?: number;
  /** The cap of the ceiling, in ms (2000). */
  maxMs?: number;
}

export interface ElectionClientOptions {
  /** Deadline of each unary attempt (GetLeader, ListNodes), in ms. Default 2000. */
  callTimeoutMs?: number;
  /**
   * Connect deadline per address and connection attempt, in ms: a connection that is not a
   * working HTTP/2 connection by then (black-holed address, or TCP without HTTP/2) is dropped
   * and the next address is tried. Default 2000.
   */
  connectTimeoutMs?: number;
  /** How long a watch waits for the first message of a stream once connected, in ms. Default 2000. */
  firstMessageTimeoutMs?: number;
  /** Backoff between full rounds over the addresses (full jitter). */
  backoff?: BackoffOptions;
  /**
   * TLS (clients/README.md, "TLS"): any of the four, non-empty, turns TLS on; without them the
   * client speaks plaintext. The files are read by the constructor and read again for a new
   * connection whenever one of them changed (rotated certificates need no new client).
   *
   * PEM file of the CA certificates the nodes' certificates must chain to. Default with TLS:
   * the system's roots (Node's, as grpc-js's default).
   */
  tlsCa?: string;
  /** PEM file of the client certificate chain (leaf first) for mutual TLS; needs tlsKey. */
  tlsCert?: string;
  /** PEM file of tlsCert's unencrypted private key; needs tlsCert. */
  tlsKey?: string;
  /**
   * The DNS name the nodes' certificates must carry, checked instead of each address's host and
   * sent as SNI; one name for all addresses. Default: each address's host (an IP address is
   * checked against the certificate's IP SANs).
   */
  tlsServerName?: string;
}

/**
 * Called each time a watch leaves an address, with the address and why (for logs and metrics).
 * Not called when the watch is stopped.
 */
export type FailoverHook = (address: string, reason: string) => void;

export interface WatchLeaderOptions extends ElectionOption {
  /**
   * The highest epoch already handled: only leaders with a higher epoch are reported
   * (each stream asks its node for min_epoch = the last epoch reported, so the node answers at once). Default 0: from the
   * current leader on. A bigint, a safe integer or a decimal string.
   */
  afterEpoch?: bigint | number | string;
  /** Aborting it ends the watch at once. */
  signal?: AbortSignal;
  /** Called each time the watch leaves an address. */
  onFailover?: FailoverHook;
}

/**
 * A client for a cluster of electd nodes: one or more HOST:PORT addresses, any of which
 * answers for the whole cluster.
 */
export declare class ElectionClient {
  /**
   * @throws {TypeError} unless every address is HOST:PORT and the options are known
   * @throws {ElectdError} for TLS options that cannot be used: tlsCert without tlsKey (or the
   *   other way round), a file that cannot be read or used (named with its option and path);
   *   noNodeAnswered is false, code undefined, addresses empty
   */
  constructor(addresses: readonly string[], options?: ElectionClientOptions);
  /** The addresses this client uses, in order. */
  readonly addresses: string[];
  /** The current leader (of a named election: NOT_FOUND when it has none). @throws {ElectdError} */
  getLeader(options?: ElectionOption): Promise<GetLeaderResponse>;
  /** The live members whose labels contain every pair of labelSelector, in election order. @throws {ElectdError} */
  listNodes(labelSelector?: Record<string, string>, options?: ElectionOption): Promise<ListNodesResponse>;
  /**
   * Ends the current term of a named election; epoch must be the current leader's.
   * @throws {ElectdError} FAILED_PRECONDITION (another epoch leads), NOT_FOUND (no leader)
   */
  resign(election: string, epoch: bigint | number | string): Promise<ResignResponse>;
  /** The named elections, sorted by name. @throws {ElectdError} */
  listElections(): Promise<ListElectionsResponse>;
  /** Campaigns in a named election and runs the work while leading. @throws {TypeError|RangeError} bad options */
  campaign(options: CampaignOptions): Campaign;
  /**
   * The leader each time it changes, epochs strictly increasing, across node failures. End it
   * with `signal`, by leaving the `for await` loop (`return()`), or with close().
   * @throws {TypeError} for unknown options (such as the old `minEpoch`) or a bad signal/hook
   * @throws {RangeError} for a negative afterEpoch
   */
  watchLeader(options?: WatchLeaderOptions): AsyncGenerator<Leader, void, undefined>;
  /** Closes the channels and their connections, also those still connecting, and ends running watches and calls. Idempotent. */
  close(): void;
}

export interface ElectdErrorInfo {
  addresses: string[];
  code?: status;
  details?: string;
  cause?: unknown;
  /** Overrides noNodeAnswered (default: true when code is undefined or a failover code). */
  noNodeAnswered?: boolean;
}

/** The one error type of this library. */
export declare class ElectdError extends Error {
  constructor(message: string, info: ElectdErrorInfo);
  readonly name: 'ElectdError';
  /** All addresses when no node answered, else the one whose node rejected the call. */
  addresses: string[];
  /** The gRPC status of the rejection, or of the last address tried when no node answered. */
  code: status | undefined;
  /** The details of that status. */
  details: string | undefined;
  /** True if no node answered at all (as opposed to a node rejecting the call). */
  readonly noNodeAnswered: boolean;
}

/** Throws a TypeError unless `address` is HOST:PORT (an IPv6 host in brackets). */
export declare function validateAddress(address: string): void;

/** The electd.v1 package loaded from the .proto files: { ElectionService, ... }. */
export declare function loadElectdV1(): GrpcObject;

/** Where the .proto files are loaded from. */
export declare function protoDir(): string;
