// Waiting with deadlines, shared by the Node test suites (only Node built-ins).

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `condition` every 10 ms; rejects with `describe()` once `timeoutMs` passed. */
export async function waitUntil(condition, timeoutMs, describe = () => 'condition') {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms: ${describe()}`);
    await sleep(10);
  }
}

/** Resolves with the arguments of the next `event` on `emitter`, or rejects after `timeoutMs`. */
export function nextEvent(emitter, event, timeoutMs, what = `"${event}" event`) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    function onEvent(...args) {
      clearTimeout(timer);
      resolve(args);
    }
    emitter.once(event, onEvent);
  });
}
