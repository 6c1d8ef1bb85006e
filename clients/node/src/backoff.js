/**
 * Exponential backoff between full rounds over the address list, with full jitter: the n-th
 * delay is drawn uniformly from [0, min(maxMs, initialMs * 2^n)] (50 ms, 100 ms, 200 ms, ...
 * capped at 2 s by default), so that many clients that lost the same node do not all hit the
 * next one in lockstep.
 */
export class Backoff {
  #initial;
  #max;
  #ceiling;

  constructor({ initialMs = 50, maxMs = 2000 } = {}) {
    if (!(initialMs > 0 && maxMs >= initialMs && Number.isFinite(maxMs))) {
      throw new RangeError('backoff: need 0 < initialMs <= maxMs');
    }
    this.#initial = initialMs;
    this.#max = maxMs;
    this.#ceiling = initialMs;
  }

  /** The ceiling of the next delay, in ms. */
  get ceiling() {
    return this.#ceiling;
  }

  /** The delay to wait now, in ms; each call doubles the ceiling of the next, up to the cap. */
  next() {
    const ceiling = this.#ceiling;
    this.#ceiling = Math.min(this.#max, ceiling * 2);
    return Math.random() * ceiling;
  }

  /** Starts over from the initial delay, after a node answered. */
  reset() {
    this.#ceiling = this.#initial;
  }
}
