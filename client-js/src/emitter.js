// A minimal event emitter shared by every layer (no dependency on node:events,
// so the same code runs in browsers).

export class Emitter {
  constructor() {
    /** @type {Map<string, Function[]>} */
    this._listeners = new Map();
  }

  /**
   * Registers `fn` for `event`.
   * @param {string} event
   * @param {Function} fn
   * @returns {this}
   */
  on(event, fn) {
    const list = this._listeners.get(event);
    if (list) list.push(fn);
    else this._listeners.set(event, [fn]);
    return this;
  }

  /**
   * Registers `fn` for the next `event` only.
   * @param {string} event
   * @param {Function} fn
   * @returns {this}
   */
  once(event, fn) {
    const wrapper = (...args) => {
      this.off(event, wrapper);
      fn.apply(this, args);
    };
    wrapper.fn = fn;
    return this.on(event, wrapper);
  }

  /**
   * Removes `fn` from `event`; every listener of `event` without `fn`; every listener without arguments.
   * @param {string} [event]
   * @param {Function} [fn]
   * @returns {this}
   */
  off(event, fn) {
    if (event === undefined) {
      this._listeners.clear();
      return this;
    }
    if (fn === undefined) {
      this._listeners.delete(event);
      return this;
    }
    const list = this._listeners.get(event);
    if (!list) return this;
    const i = list.findIndex((l) => l === fn || /** @type {any} */ (l).fn === fn);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this._listeners.delete(event);
    return this;
  }

  /**
   * Calls every listener of `event` with `args`. A throwing listener does not stop the others;
   * its error is rethrown asynchronously so it still shows up.
   * @param {string} event
   * @param {...any} args
   * @returns {boolean} whether there were listeners
   */
  emitEvent(event, ...args) {
    const list = this._listeners.get(event);
    if (!list || list.length === 0) return false;
    for (const fn of list.slice()) {
      try {
        fn.apply(this, args);
      } catch (err) {
        setTimeout(() => {
          throw err;
        }, 0);
      }
    }
    return true;
  }

  /** Alias of on(). */
  addListener(event, fn) {
    return this.on(event, fn);
  }

  /** Alias of off(event, fn). */
  removeListener(event, fn) {
    return this.off(event, fn);
  }

  /** Removes every listener of `event` (of every event without argument). */
  removeAllListeners(event) {
    return this.off(event);
  }

  /**
   * @param {string} event
   * @returns {Function[]}
   */
  listeners(event) {
    return (this._listeners.get(event) ?? []).map((l) => /** @type {any} */ (l).fn ?? l);
  }

  /**
   * @param {string} event
   * @returns {boolean}
   */
  hasListeners(event) {
    return (this._listeners.get(event)?.length ?? 0) > 0;
  }
}
