// The four TLS options of clients/README.md ("TLS"): tlsCa, tlsCert, tlsKey (PEM file paths)
// and tlsServerName. TlsFiles reads the files when the client is made and again, for a new
// connection, whenever one of them changed (connect.js asks it at the start of every connection
// attempt), so rotated certificates are used without a new client. Connections already open
// keep the certificates of their handshake.
import * as fs from 'node:fs';
import * as tls from 'node:tls';

/** A TLS option that cannot be used: the client constructor turns it into an ElectdError. */
export class TlsOptionError extends Error {
  constructor(message, options) {
    super(message, options);
    this.name = 'TlsOptionError';
  }
}

const FILE_OPTIONS = ['tlsCa', 'tlsCert', 'tlsKey'];
export const TLS_OPTIONS = [...FILE_OPTIONS, 'tlsServerName'];

/** undefined, null and '' mean "not given"; anything else must be a string. */
function given(name, value) {
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') {
    throw new TypeError(`${name} must be a string (${name === 'tlsServerName' ? 'a DNS name' : 'a file path'}), got ${typeof value}`);
  }
  return value;
}

/** What identifies a file's version without reading it (undefined if it cannot be stat'ed). */
function stamp(path) {
  try {
    const st = fs.statSync(path, { bigint: true });
    return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}`;
  } catch {
    return undefined;
  }
}

export class TlsFiles {
  #files; // [option, path] of the files given
  #stamps;
  #context;
  /** Why the changed files are not in use (a rotation caught half-way), or undefined. */
  staleReason;

  /**
   * The TLS of a client, or null when none of the four options is given (plaintext).
   * @throws {TypeError} a value that is not a string
   * @throws {TlsOptionError} tlsCert without tlsKey (or the other way round), a file that cannot be read or used
   */
  static fromOptions(options) {
    const o = Object.fromEntries(TLS_OPTIONS.map((name) => [name, given(name, options[name])]));
    if (TLS_OPTIONS.every((name) => o[name] === undefined)) return null;
    if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) {
      const [has, lacks] = o.tlsKey === undefined ? ['tlsCert', 'tlsKey'] : ['tlsKey', 'tlsCert'];
      throw new TlsOptionError(`${has}: needs ${lacks} too (a client certificate and its key)`);
    }
    return new TlsFiles(o);
  }

  constructor({ tlsCa, tlsCert, tlsKey, tlsServerName }) {
    this.serverName = tlsServerName;
    this.#files = [['tlsCa', tlsCa], ['tlsCert', tlsCert], ['tlsKey', tlsKey]].filter(([, path]) => path !== undefined);
    const stamps = this.#stat();
    this.#context = this.#load();
    this.#stamps = stamps;
  }

  #stat() {
    return this.#files.map(([, path]) => stamp(path)).join('|');
  }

  #read(option) {
    const entry = this.#files.find(([name]) => name === option);
    if (!entry) return null;
    const [, path] = entry;
    try {
      return fs.readFileSync(path);
    } catch (err) {
      throw new TlsOptionError(`${option}: cannot read ${path}: ${err.code ? `${err.code}: ` : ''}${err.message.replace(/^[A-Z]+: /, '').replace(/, open '.*'$/, '')}`, { cause: err });
    }
  }

  /**
   * Reads the files and makes a SecureContext of them (without tlsCa: Node's root
   * certificates, which are grpc-js's default roots too).
   */
  #load() {
    const ca = this.#read('tlsCa');
    if (ca && !/-----BEGIN CERTIFICATE-----/.test(ca.toString('latin1'))) {
      throw new TlsOptionError(`tlsCa: no PEM certificate in ${this.#path('tlsCa')}`);
    }
    const cert = this.#read('tlsCert');
    const key = this.#read('tlsKey');
    if (ca && cert) {
      // Made once without the client certificate too, to tell whose fault an error is.
      this.#secureContext(ca, null, null);
    }
    return this.#secureContext(ca, key, cert);
  }

  #secureContext(ca, key, cert) {
    try {
      return tls.createSecureContext({ ca: ca ?? undefined, key: key ?? undefined, cert: cert ?? undefined });
    } catch (err) {
      const what = cert ? `tlsCert, tlsKey: cannot use ${this.#path('tlsCert')} and ${this.#path('tlsKey')}`
        : `tlsCa: cannot use ${this.#path('tlsCa')}`;
      throw new TlsOptionError(`${what}: ${err.message}`, { cause: err });
    }
  }

  #path(option) {
    return this.#files.find(([name]) => name === option)?.[1];
  }

  /**
   * The SecureContext for a new connection: read again if any file changed since the last read.
   * Files that changed but cannot be used (a new certificate with the old key, a file missing
   * for a moment) leave the credentials in use as they are, and are tried again next time.
   */
  current() {
    const stamps = this.#stat();
    if (stamps === this.#stamps) return this.#context;
    try {
      this.#context = this.#load();
    } catch (err) {
      this.staleReason = err.message;
      return this.#context;
    }
    this.staleReason = undefined;
    // A file replaced while it was read is read again next time.
    if (this.#stat() === stamps) this.#stamps = stamps;
    return this.#context;
  }
}
