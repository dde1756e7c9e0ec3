// Exponential backoff with jitter, for reconnection delays.
//
// The n-th delay (from 0) is min * factor^n, randomized by ±jitter (a fraction of
// the delay), capped at max (the cap is applied before and after the jitter, so
// at the cap delays spread over [max*(1-jitter), max]).

export class Backoff {
  /**
   * @param {{ min?: number, max?: number, factor?: number, jitter?: number, random?: () => number }} [opts]
   */
  constructor(opts = {}) {
    this.min = opts.min ?? 1000;
    this.max = opts.max ?? 5000;
    this.factor = opts.factor ?? 2;
    this.jitter = Math.min(Math.max(opts.jitter ?? 0.5, 0), 1);
    this.random = opts.random ?? Math.random;
    this.attempts = 0;
  }

  /** The next delay in milliseconds; each call counts one attempt. */
  duration() {
    // Capped before the jitter so a long outage never overflows to Infinity/NaN.
    let ms = Math.min(this.min * Math.pow(this.factor, this.attempts++), this.max);
    if (this.jitter > 0) {
      const deviation = this.jitter * ms;
      // uniform in [ms - deviation, ms + deviation]
      ms = ms - deviation + this.random() * 2 * deviation;
    }
    return Math.floor(Math.min(ms, this.max));
  }

  /** Starts over from the minimum delay. */
  reset() {
    this.attempts = 0;
  }

  setMin(min) {
    this.min = min;
  }

  setMax(max) {
    this.max = max;
  }

  setJitter(jitter) {
    this.jitter = jitter;
  }
}
