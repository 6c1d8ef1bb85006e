// The connect deadline, which grpc-js does not have: a connection attempt that has not become a
// working HTTP/2 connection within connectTimeoutMs is destroyed, whether it is still waiting
// for the TCP handshake (a black-holed address: grpc-js would wait for the kernel, about two
// minutes) or has TCP but no HTTP/2 SETTINGS from the server (a stuck process: grpc-js would
// wait forever). The channel then fails its calls with UNAVAILABLE, so the client moves on, and
// the next attempt is a fresh one. close() destroys every socket still in progress, so that a
// pending connection never keeps the process alive after the client is closed.
//
// grpc-js has no option for this, so it is built from two of its extension points, both used
// only through their published shapes:
//   - a resolver for our own scheme hands grpc-js the address object that grpc-js passes to
//     net.connect() for every attempt; each attempt we put an AbortSignal on it (net.connect's
//     `signal` option), which lets us destroy the socket in either phase;
//   - channel credentials of our own (plaintext: grpc-js's insecure ones inside; TLS: Node's
//     tls.connect over the TCP socket, with the SecureContext of the TLS files): their
//     connector's waitForReady() is called at the start of each attempt and connect(socket)
//     once TCP is up (with TLS, the handshake is part of connect(); the attempt is READY only
//     after it, so the connect deadline covers it too).
// The attempt counts as done when the channel reports READY.
import * as net from 'node:net';
import * as tls from 'node:tls';
import * as grpc from '@grpc/grpc-js';

const { connectivityState: ConnectivityState } = grpc;
const { registerResolver, splitHostPort, statusOrFromValue } = grpc.experimental;

const SCHEME = 'electd-node';

/** @type {Map<string, AddressGuard>} live guards by id, which is the authority of their target */
const guards = new Map();
let nextId = 0;

class GuardResolver {
  #listener;
  #guard;
  #returned = false;

  constructor(target, listener) {
    this.#listener = listener;
    this.#guard = guards.get(target.authority);
  }

  updateResolution() {
    // The address never changes (a host name is looked up by each connection attempt), so
    // there is one result only: asking again, as the channel does after each failed attempt,
    // must not make it reconnect in a tight loop.
    if (this.#returned) return;
    this.#returned = true;
    // Never synchronously (the Resolver contract).
    process.nextTick(() => {
      const guard = this.#guard;
      if (!guard || guard.closed) return; // the channel is being closed; nothing to connect to
      this.#listener(statusOrFromValue([{ addresses: [guard.subchannelAddress] }]), {}, null, '');
    });
  }

  destroy() {
    this.#returned = false;
  }

  static getDefaultAuthority(target) {
    return target.path; // the HOST:PORT the caller gave: the :authority of our requests
  }
}

let registered = false;
function register() {
  if (!registered) {
    registerResolver(SCHEME, GuardResolver);
    registered = true;
  }
}

/**
 * The TLS handshake of one connection attempt over `socket` (TCP, connected), with the
 * client's SecureContext (CA, client certificate): the node's certificate must chain to the CA
 * and carry `name` (tlsServerName, else the address's host; an IP address is checked against
 * the certificate's IP SANs). SNI is `name`, except for an IP address (RFC 6066 has no SNI for
 * those, and Node warns about one). ALPN offers h2. Resolves with what grpc-js's connector
 * contract asks for; rejects when the handshake fails, which grpc-js reports as a failed
 * connection (UNAVAILABLE).
 */
function tlsHandshake(socket, secureContext, name) {
  return new Promise((resolve, reject) => {
    const tlsSocket = tls.connect({
      socket,
      secureContext,
      servername: net.isIP(name) ? undefined : name,
      checkServerIdentity: (_host, cert) => tls.checkServerIdentity(name, cert),
      ALPNProtocols: ['h2'],
    });
    const fail = (err) => {
      tlsSocket.destroy();
      reject(err);
    };
    const onClose = () => fail(new Error(`TLS handshake with ${name} failed: connection closed`));
    tlsSocket.once('error', fail);
    tlsSocket.once('close', onClose);
    tlsSocket.once('secureConnect', () => {
      tlsSocket.removeListener('error', fail);
      tlsSocket.removeListener('close', onClose);
      if (!tlsSocket.authorized) {
        fail(tlsSocket.authorizationError ?? new Error('node certificate not verified'));
        return;
      }
      resolve({ socket: tlsSocket, secure: true });
    });
  });
}

/**
 * Channel credentials of one address, with each connection attempt timed: plaintext, or TLS
 * with the SecureContext a TlsFiles (src/tls.js) hands out at the start of each attempt, so
 * that files that changed are used by the next connection.
 */
class GuardedCredentials extends grpc.ChannelCredentials {
  #insecure = grpc.credentials.createInsecure();
  #guard;
  #tls;

  /**
   * @param {AddressGuard} guard
   * @param {import('./tls.js').TlsFiles|null} tlsFiles
   */
  constructor(guard, tlsFiles) {
    super();
    this.#guard = guard;
    this.#tls = tlsFiles;
  }

  compose() {
    throw new Error('cannot compose the credentials of an ElectionClient');
  }

  _isSecure() {
    return this.#tls !== null;
  }

  _equals(other) {
    return other === this;
  }

  _createSecureConnector(channelTarget, options, callCredentials) {
    // The plaintext connector of grpc-js: its connect() for plaintext, its call credentials
    // (none) in both cases.
    const inner = this.#insecure._createSecureConnector(channelTarget, options, callCredentials);
    const guard = this.#guard;
    const tlsFiles = this.#tls;
    let secureContext; // of the attempt in progress
    return {
      waitForReady: async () => {
        secureContext = tlsFiles?.current();
        await inner.waitForReady();
        await guard.settled();
        // grpc-js's subchannel may still retry after its channel was closed (its reconnect
        // backoff timer): no connection for a closed client (the attempt fails, no socket).
        if (guard.closed) throw new Error('ElectionClient is closed');
        guard.startAttempt(); // grpc-js calls net.connect(address) right after this
      },
      connect: (socket) => {
        guard.tcpConnected(socket);
        if (!tlsFiles) return inner.connect(socket);
        return tlsHandshake(socket, secureContext ?? tlsFiles.current(), tlsFiles.serverName ?? guard.host);
      },
      getCallCredentials: () => inner.getCallCredentials(),
      destroy: () => inner.destroy(),
    };
  }
}

/**
 * Times every connection attempt grpc-js makes to one address. Build the channel with
 * `guard.target` and `guard.credentials`, then call `guard.watch(channel)`.
 */
export class AddressGuard {
  #id = String(++nextId);
  #address;
  #connectTimeoutMs;
  #attempt = null; // the attempt in progress, if any
  #live = new Set(); // attempts whose sockets may still be open: close() destroys them
  #readyWaiters = new Set();
  #channel = null;
  closed = false;
  #deadlineFailure; // what the last attempt cut off by the deadline lacked, until one succeeds

  /**
   * @param {string} address HOST:PORT (already validated)
   * @param {number} connectTimeoutMs
   * @param {import('./tls.js').TlsFiles|null} [tls] TLS, or null for plaintext
   */
  constructor(address, connectTimeoutMs, tls = null) {
    register();
    this.#address = address;
    this.#connectTimeoutMs = connectTimeoutMs;
    const hp = splitHostPort(address);
    // What grpc-js hands to net.connect() on every attempt; each attempt sets `signal` on it.
    // A host name is resolved by net.connect itself, within the deadline.
    this.subchannelAddress = { host: hp.host, port: hp.port };
    /** The address's host (brackets of an IPv6 address removed): the name TLS checks by default. */
    this.host = hp.host;
    this.target = `${SCHEME}://${this.#id}/${address}`;
    this.credentials = new GuardedCredentials(this, tls);
    guards.set(this.#id, this);
  }

  /** Follows the channel's state, to know when an attempt has succeeded. */
  watch(channel) {
    this.#channel = channel;
    const follow = () => {
      let state;
      try {
        state = channel.getConnectivityState(false);
      } catch {
        return;
      }
      if (state === ConnectivityState.READY) this.#onReady();
      if (state === ConnectivityState.SHUTDOWN) return;
      try {
        channel.watchConnectivityState(state, Infinity, follow);
      } catch {
        // shut down meanwhile
      }
    };
    follow();
  }

  /** The connect deadline of each attempt, in ms. */
  get connectTimeoutMs() {
    return this.#connectTimeoutMs;
  }

  /** True if the channel has a working connection now. */
  get ready() {
    try {
      return this.#channel?.getConnectivityState(false) === ConnectivityState.READY;
    } catch {
      return false;
    }
  }

  /**
   * Calls fn once the channel is ready (at once if it is); returns a function that cancels it.
   * @param {() => void} fn
   */
  whenReady(fn) {
    if (this.ready) {
      fn();
      return () => {};
    }
    this.#readyWaiters.add(fn);
    return () => this.#readyWaiters.delete(fn);
  }

  startAttempt() {
    // A new attempt starts only after the previous one ended: if that one never got TCP, its
    // socket is gone; if it did, tcpConnected() tracks the socket until it closes.
    const previous = this.#attempt;
    if (previous) {
      clearTimeout(previous.timer);
      if (!previous.socket) this.#live.delete(previous);
    }
    const attempt = { controller: new AbortController(), socket: null, timer: null };
    if (this.closed) attempt.controller.abort();
    this.#attempt = attempt;
    this.#live.add(attempt);
    this.subchannelAddress.signal = attempt.controller.signal;
    attempt.timer = setTimeout(() => this.#expire(attempt), this.#connectTimeoutMs);
    attempt.timer.unref();
  }

  tcpConnected(socket) {
    const attempt = this.#attempt;
    if (!attempt || attempt.socket) return;
    attempt.socket = socket;
    attempt.closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.#live.delete(attempt);
        if (this.#attempt === attempt) this.#attempt = null;
        clearTimeout(attempt.timer);
        resolve();
      });
    });
  }

  /**
   * Resolves once the sockets of earlier attempts that are being torn down have closed (at most
   * a second). grpc-js's connector keeps one "current session" for all attempts, and the late
   * close event of a failed attempt's session would otherwise destroy the next attempt's.
   */
  async settled() {
    const closing = [...this.#live].filter((a) => a.socket?.destroyed).map((a) => a.closed);
    if (closing.length === 0) return;
    let timer;
    await Promise.race([
      Promise.all(closing),
      new Promise((resolve) => { timer = setTimeout(resolve, 1000); timer.unref(); }),
    ]);
    clearTimeout(timer);
    await new Promise((resolve) => setImmediate(resolve));
  }

  #onReady() {
    const attempt = this.#attempt;
    if (attempt) {
      clearTimeout(attempt.timer);
      this.#attempt = null; // done: the deadline no longer applies to it
      if (!attempt.socket) this.#live.delete(attempt);
    }
    this.#deadlineFailure = undefined;
    for (const fn of [...this.#readyWaiters]) {
      this.#readyWaiters.delete(fn);
      fn();
    }
  }

  #expire(attempt) {
    if (this.#attempt !== attempt) return;
    this.#attempt = null;
    const ms = this.#connectTimeoutMs;
    this.#deadlineFailure = attempt.socket
      ? `connect deadline exceeded: TCP connected but no HTTP/2 response within ${ms} ms`
      : `connect deadline exceeded: no TCP connection within ${ms} ms`;
    attempt.controller.abort(new Error(this.#deadlineFailure));
  }

  /**
   * What to say about a call that failed with UNAVAILABLE and these details: if the channel's
   * last connection attempt was the one we cut off (grpc-js then reports Node's AbortError,
   * "The operation was aborted"), the connect deadline and what was missing; else undefined.
   * @param {string} details
   */
  explain(details) {
    if (this.#deadlineFailure && /The operation was aborted/.test(details)) return this.#deadlineFailure;
    return undefined;
  }

  /** Destroys every connection of this address still open or in progress. Idempotent. */
  close() {
    this.closed = true;
    guards.delete(this.#id);
    this.#readyWaiters.clear();
    for (const attempt of this.#live) {
      clearTimeout(attempt.timer);
      attempt.controller.abort();
    }
    this.#live.clear();
    this.#attempt = null;
  }
}
