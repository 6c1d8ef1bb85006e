/**
 * Exponential backoff between full rounds over the address list: 50 ms, 100 ms, 200 ms, ...
 * capped at 2 s, each delay jittered by +/-20% so that many clients that lost the same node
 * do not all hit the next one in lockstep.
 */
export class Backoff {
  #initial;
  #max;
  #next;

  constructor({ initialMs = 50, maxMs = 2000 } = {}) {
    if (!(initialMs > 0 && maxMs >= initialMs)) throw new RangeError('need 0 < initialMs <= maxMs');
    this.#initial = initialMs;
    this.#max = maxMs;
    this.#next = initialMs;
  }

  /** The delay to wait now, in ms; each call doubles the one after it, up to the cap. */
  next() {
    const base = this.#next;
    this.#next = Math.min(this.#max, base * 2);
    const jitter = 1 + 0.2 * (Math.random() * 2 - 1);
    return Math.min(this.#max, Math.round(base * jitter));
  }

  /** Starts over from the initial delay, after a node answered. */
  reset() {
    this.#next = this.#initial;
  }
}
