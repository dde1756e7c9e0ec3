import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Backoff } from '../src/backoff.js';

test('grows exponentially without jitter and stops at max', () => {
  const b = new Backoff({ min: 100, max: 1000, factor: 2, jitter: 0 });
  assert.deepEqual(
    Array.from({ length: 7 }, () => b.duration()),
    [100, 200, 400, 800, 1000, 1000, 1000],
  );
  b.reset();
  assert.equal(b.duration(), 100);
});

test('jitter stays within ±jitter of the delay', () => {
  for (const r of [0, 0.25, 0.5, 0.999999]) {
    const b = new Backoff({ min: 1000, max: 100000, jitter: 0.5, random: () => r });
    const delays = Array.from({ length: 5 }, () => b.duration());
    delays.forEach((d, n) => {
      const base = 1000 * 2 ** n;
      assert.ok(d >= base * 0.5 && d <= base * 1.5, `attempt ${n}: ${d} not within [${base * 0.5}, ${base * 1.5}]`);
    });
  }
  const lo = new Backoff({ min: 1000, jitter: 0.5, random: () => 0 });
  assert.equal(lo.duration(), 500);
  const hi = new Backoff({ min: 1000, max: 10000, jitter: 0.5, random: () => 1 });
  assert.equal(hi.duration(), 1500);
});

test('real randomness spreads delays and respects the bounds', () => {
  const b = new Backoff({ min: 1000, max: 5000, jitter: 0.5 });
  const seen = new Set();
  for (let i = 0; i < 200; i++) {
    b.reset();
    const d = b.duration();
    assert.ok(d >= 500 && d <= 1500);
    seen.add(d);
  }
  assert.ok(seen.size > 50, 'jitter should spread the delays');
});

test('never exceeds max and never overflows, even after many attempts', () => {
  const b = new Backoff({ min: 1000, max: 5000, jitter: 0.5 });
  for (let i = 0; i < 2000; i++) {
    const d = b.duration();
    assert.ok(Number.isFinite(d) && d >= 2500 * (i > 3 ? 1 : 0) && d <= 5000, `attempt ${i}: ${d}`);
  }
  assert.equal(b.attempts, 2000);
});

test('setters change the parameters', () => {
  const b = new Backoff({ jitter: 0 });
  b.setMin(10);
  b.setMax(15);
  assert.equal(b.duration(), 10);
  assert.equal(b.duration(), 15);
  b.setJitter(0.5);
  assert.equal(b.jitter, 0.5);
});
